//! The DNS front end: everything that knows the wire format.
//!
//! - `handler`: one request in wire bytes → one response in wire bytes
//!   (header flags, EDNS, ECS, cookies, NSID, truncation, error rcodes).
//! - `request`: a request's header, question, OPT and TSIG, read from the
//!   wire without decoding record data.
//! - `edns`: the EDNS options a response depends on.
//! - `cookie`: DNS Cookies with RFC 9018 server cookies.
//! - `fast`: responses encoded once and reused with the query's ID, flags,
//!   question case, cookie and ECS patched in: the path most queries take.
//! - `lookup`: one question → answer sections, from a [`Catalog`].
//! - `signed`: the RRSIGs and compact-denial NSEC of an answer to a query
//!   with DO in a signed zone.
//! - `listen`: the UDP and TCP sockets.
//! - `rrl`: response rate limiting for UDP.
//!
//! It asks [`crate::steering`] which mirror answers a service name and never
//! how that was decided.

mod cookie;
mod edns;
mod fast;
mod handler;
mod listen;
mod lookup;
mod request;
mod rrl;
mod signed;
mod wire;

pub use cookie::CookieSecret;
pub use handler::{Handler, MAX_NSID_LEN, Options, Transport};
pub use listen::{Listeners, TcpLimits, bind};
pub use lookup::Answer;
pub use rrl::RrlConfig;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::steering::ServiceHandle;
use crate::zone::ZoneSet;

/// One consistent snapshot to answer from: the zones and, for each service of
/// each zone (same order as [`ZoneSet::zones`]), its steering handle.
pub struct Catalog {
    pub zones: ZoneSet,
    pub steering: Vec<Vec<ServiceHandle>>,
    /// Unique to this snapshot: encoded responses are reused only within it.
    generation: u64,
}

impl Catalog {
    pub fn new(zones: ZoneSet, steering: Vec<Vec<ServiceHandle>>) -> Catalog {
        static GENERATIONS: AtomicU64 = AtomicU64::new(1);
        Catalog {
            zones,
            steering,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }
}
