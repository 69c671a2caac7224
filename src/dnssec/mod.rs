//! DNSSEC (SPEC section 1a): the building blocks of online signing, ready
//! for the answer path to use (docs/DNSSEC.md says how they plug in).
//!
//! - [`keys`]: a zone's one combined signing key (ECDSA P-256, algorithm
//!   13, the default; or Ed25519, 15): the key file, generating a key,
//!   keeping a generated key in `STATE_DIR/keys/`, the DNSKEY (flags 257)
//!   and its key tag, the DS (SHA-256), CDS and CDNSKEY.
//!
//! The cryptography (signing, key generation, digests) is hickory-proto's
//! DNSSEC support on ring; none is written here.

pub mod keys;

pub use keys::{KeyAlgorithm, KeyError, ZoneKey};
