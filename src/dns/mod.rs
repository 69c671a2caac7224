//! The DNS front end: everything that knows the wire format.
//!
//! - `handler`: one request in wire bytes → one response in wire bytes
//!   (header flags, EDNS, ECS, truncation, error rcodes).
//! - `lookup`: one question → answer sections, from a [`Catalog`].
//! - `listen`: the UDP and TCP sockets.
//! - `rrl`: response rate limiting for UDP.
//!
//! It asks [`crate::steering`] which mirror answers a service name and never
//! how that was decided.

mod handler;
mod listen;
mod lookup;
mod rrl;

pub use handler::{Handler, Transport};
pub use listen::{Listeners, TcpLimits, bind};
pub use lookup::Answer;
pub use rrl::RrlConfig;

use crate::steering::ServiceHandle;
use crate::zone::ZoneSet;

/// One consistent snapshot to answer from: the zones and, for each service of
/// each zone (same order as [`ZoneSet::zones`]), its steering handle.
pub struct Catalog {
    pub zones: ZoneSet,
    pub steering: Vec<Vec<ServiceHandle>>,
}
