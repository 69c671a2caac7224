//! DNSSEC (SPEC section 1a): the building blocks of online signing that
//! the zone loader and the answer path use (docs/DNSSEC.md).
//!
//! - [`keys`]: a zone's one combined signing key (ECDSA P-256, algorithm
//!   13, the default; or Ed25519, 15): the key file, generating a key,
//!   keeping a generated key in `STATE_DIR/keys/`, the DNSKEY (flags 257)
//!   and its key tag, the DS (SHA-256), CDS and CDNSKEY.
//! - [`sign`]: RRSIGs for RRsets, with validity from an hour ago to 7-14
//!   days ahead, and the signature cache that reuses each until it is due
//!   for refresh, whatever the clock does.
//! - [`denial`]: compact denial of existence (RFC 9824): the NSEC for a
//!   name that does not exist (with NXNAME), for NODATA and for a cut
//!   without DS.
//!
//! The cryptography (signing, key generation, digests) is hickory-proto's
//! DNSSEC support on ring; none is written here.

pub mod denial;
pub mod keys;
pub mod sign;

use std::time::{SystemTime, UNIX_EPOCH};

pub use denial::{NXNAME, cut_nsec, nodata_nsec, nxname_nsec};
pub use keys::{KeyAlgorithm, KeyError, ZoneKey};
pub use sign::{CacheStats, SignError, SignedRrsig, Validity, ZoneSigner};

/// Seconds since the epoch, the clock signatures are made and checked by.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
