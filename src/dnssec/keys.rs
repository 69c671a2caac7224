//! A zone's signing key: the key file, generating a key, the DNSKEY with its
//! key tag, and the DS, CDS and CDNSKEY records made from it.
//!
//! # The key file
//!
//! A small text file, written with mode 0600:
//!
//! ```text
//! # mirrordns DNSSEC signing key (one combined signing key, CSK).
//! # Keep it private (mode 0600); give every instance of the zone this file.
//! # DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==
//! # key tag 55648
//! algorithm: ecdsap256sha256
//! -----BEGIN PRIVATE KEY-----
//! MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGU6SnQ/Ojn6dS1uv
//! ...
//! -----END PRIVATE KEY-----
//! ```
//!
//! - Lines starting with `#` and blank lines are comments; the DNSKEY and
//!   key tag comments are written for the operator and never read.
//! - `algorithm:` is `ecdsap256sha256` (13) or `ed25519` (15); the number
//!   is accepted too. Without the line, the key says what it is.
//! - The private key is PKCS#8 in PEM (RFC 7468 `PRIVATE KEY`), the form
//!   `openssl pkey` reads, so `openssl pkey -in FILE -text` shows it.
//!   A P-256 key from `openssl genpkey -algorithm EC -pkeyopt
//!   ec_paramgen_curve:P-256` loads as it is; an Ed25519 key must be PKCS#8
//!   v2 (with its public key, as mirrordns writes it), which OpenSSL does
//!   not write.
//!
//! The flags of the DNSKEY are 257 (zone key and secure entry point): one
//! key signs everything, DNSKEY RRset included (a combined signing key).
//!
//! A damaged or unreadable key file is an error, never replaced: a new key
//! would make every answer bogus until the parent's DS changed too.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey, TBS};
use hickory_proto::rr::Name;
use tracing::{info, warn};

/// DNSKEY flags of a combined signing key: Zone Key (bit 7) and Secure
/// Entry Point (bit 15), RFC 4034 section 2.1.1.
pub const CSK_FLAGS: u16 = 257;

/// The subdirectory of the state directory holding generated keys.
pub const STATE_KEYS_DIR: &str = "keys";
/// The longest key file read (a key file is a few hundred bytes).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The signing algorithms mirrordns offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256, algorithm 13 (RFC 6605): the default.
    #[default]
    #[value(name = "ecdsap256sha256")]
    EcdsaP256Sha256,
    /// Ed25519, algorithm 15 (RFC 8080).
    #[value(name = "ed25519")]
    Ed25519,
}

impl KeyAlgorithm {
    /// The name used in zone files, key files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => "ecdsap256sha256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The IANA DNSSEC algorithm number.
    pub fn number(self) -> u8 {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => 13,
            KeyAlgorithm::Ed25519 => 15,
        }
    }

    /// The IANA mnemonic, as BIND prints it.
    pub fn mnemonic(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            KeyAlgorithm::Ed25519 => "ED25519",
        }
    }

    pub fn to_hickory(self) -> Algorithm {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => Algorithm::ECDSAP256SHA256,
            KeyAlgorithm::Ed25519 => Algorithm::ED25519,
        }
    }

    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::EcdsaP256Sha256, KeyAlgorithm::Ed25519];
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    /// The name, the mnemonic (any case) or the number.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| {
                s.eq_ignore_ascii_case(a.name())
                    || s.eq_ignore_ascii_case(a.mnemonic())
                    || s == a.number().to_string()
            })
            .ok_or_else(|| {
                format!(
                    "unknown DNSSEC algorithm {s:?}: use ecdsap256sha256 (13, the default) or ed25519 (15)"
                )
            })
    }
}

/// Why a key could not be read, written or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read the DNSSEC key file: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: cannot write the DNSSEC key file: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("cannot make a DNSSEC key: {0}")]
    Crypto(String),
}

/// A zone's signing key: the private key and the DNSKEY that publishes it.
pub struct ZoneKey {
    algorithm: KeyAlgorithm,
    /// PKCS#8 DER, kept to write the key file.
    pkcs8: Vec<u8>,
    signing: Box<dyn SigningKey>,
    dnskey: DNSKEY,
    key_tag: u16,
}

impl fmt::Debug for ZoneKey {
    /// Never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("algorithm", &self.algorithm)
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// A new random key (ring's system random generator).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<ZoneKey, KeyError> {
        let pkcs8 = match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => {
                EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256)
            }
            KeyAlgorithm::Ed25519 => Ed25519SigningKey::generate_pkcs8(),
        }
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
        ZoneKey::from_pkcs8(algorithm, pkcs8.secret_pkcs8_der()).map_err(KeyError::Crypto)
    }

    /// The key of a PKCS#8 document (DER).
    pub fn from_pkcs8(algorithm: KeyAlgorithm, der: &[u8]) -> Result<ZoneKey, String> {
        let signing: Box<dyn SigningKey> = match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => Box::new(
                EcdsaSigningKey::from_pkcs8(&der.into(), Algorithm::ECDSAP256SHA256)
                    .map_err(|e| format!("not an ECDSA P-256 private key in PKCS#8 ({e})"))?,
            ),
            KeyAlgorithm::Ed25519 => Box::new(
                Ed25519SigningKey::from_pkcs8(&der.into())
                    .map_err(|e| format!("not an Ed25519 private key in PKCS#8 v2 ({e})"))?,
            ),
        };
        let public = signing.to_public_key().map_err(|e| e.to_string())?;
        let dnskey = DNSKEY::with_flags(CSK_FLAGS, public);
        let key_tag = dnskey.calculate_key_tag().map_err(|e| e.to_string())?;
        Ok(ZoneKey {
            algorithm,
            pkcs8: der.to_vec(),
            signing,
            dnskey,
            key_tag,
        })
    }

    /// Reads a key file (see the module documentation). Every problem is
    /// an error naming the file (and the line where there is one).
    pub fn load(path: &Path) -> Result<ZoneKey, KeyError> {
        let read_error = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        // A key file is a few hundred bytes: stop early on anything that
        // never ends (a device, a log), which would hang a reload.
        fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_LEN + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > MAX_KEY_FILE_LEN {
            return Err(KeyError::Key {
                path: path.to_path_buf(),
                message: format!("larger than {MAX_KEY_FILE_LEN} bytes: not a key file"),
            });
        }
        let key = ZoneKey::parse(path, &text)?;
        if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            warn!(
                file = %path.display(),
                "the DNSSEC key file is readable by other users: whoever reads it can sign for the zone (chmod 600)"
            );
        }
        Ok(key)
    }

    /// Parses the text of a key file; `path` is for the messages.
    pub fn parse(path: &Path, text: &str) -> Result<ZoneKey, KeyError> {
        let format = |line: usize, message: String| KeyError::Format {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut algorithm: Option<KeyAlgorithm> = None;
        let mut body = String::new();
        // Where the PEM block starts and whether it ended.
        let mut begin: Option<usize> = None;
        let mut ended = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if begin.is_some() && !ended {
                if line == PEM_END {
                    ended = true;
                } else if line.starts_with("-----") {
                    return Err(format(n, format!("expected {PEM_END}")));
                } else {
                    body.push_str(line);
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if ended {
                return Err(format(n, "text after the private key".to_string()));
            }
            if line == PEM_BEGIN {
                begin = Some(n);
                continue;
            }
            if line.starts_with("-----BEGIN ") {
                return Err(format(
                    n,
                    format!("{line}: expected {PEM_BEGIN} (a PKCS#8 private key)"),
                ));
            }
            match line.split_once(':') {
                Some((key, value)) if key.trim() == "algorithm" => {
                    if algorithm.is_some() {
                        return Err(format(n, "algorithm given twice".to_string()));
                    }
                    algorithm = Some(value.parse().map_err(|e| format(n, e))?);
                }
                _ => {
                    return Err(format(
                        n,
                        "unexpected text (not quoted: a key file's lines may be secret): a key file holds comments (#), `algorithm: NAME` and the PEM private key".to_string(),
                    ));
                }
            }
        }
        let Some(begin) = begin else {
            return Err(KeyError::Key {
                path: path.to_path_buf(),
                message: format!("no private key ({PEM_BEGIN} ... {PEM_END})"),
            });
        };
        if !ended {
            return Err(format(begin, format!("{PEM_BEGIN} without {PEM_END}")));
        }
        let der = base64_decode(&body)
            .ok_or_else(|| format(begin, "the private key is not valid base64".to_string()))?;
        let key_error = |message: String| KeyError::Key {
            path: path.to_path_buf(),
            message,
        };
        // OpenSSL writes Ed25519 keys as PKCS#8 v1, without the public
        // key, which ring does not take.
        const ED25519_V1: [u8; 12] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
        ];
        if der.starts_with(&ED25519_V1) {
            return Err(key_error(
                "an Ed25519 key in PKCS#8 v1 (as OpenSSL writes it): mirrordns needs v2, with the public key; make one with `mirrordns dnssec keygen --algorithm ed25519`"
                    .to_string(),
            ));
        }
        match algorithm {
            Some(algorithm) => ZoneKey::from_pkcs8(algorithm, &der)
                .map_err(|e| key_error(format!("{e} (the file says algorithm: {algorithm})"))),
            None => KeyAlgorithm::ALL
                .into_iter()
                .find_map(|a| ZoneKey::from_pkcs8(a, &der).ok())
                .ok_or_else(|| {
                    key_error(
                        "the private key is neither ECDSA P-256 nor Ed25519 (PKCS#8 v2)"
                            .to_string(),
                    )
                }),
        }
    }

    /// The text of the key file.
    pub fn to_file_text(&self) -> String {
        let mut out = String::new();
        out.push_str("# mirrordns DNSSEC signing key (one combined signing key, CSK).\n");
        out.push_str("# Keep it private (mode 0600); give every instance of the zone this file.\n");
        out.push_str(&format!("# DNSKEY {}\n", self.dnskey));
        out.push_str(&format!("# key tag {}\n", self.key_tag));
        out.push_str(&format!("algorithm: {}\n", self.algorithm));
        out.push_str(PEM_BEGIN);
        out.push('\n');
        let encoded = base64_encode(&self.pkcs8);
        for chunk in encoded.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// Writes the key file at `path`, mode 0600; never over an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let write_error = |source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_error)?;
        file.write_all(self.to_file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_error)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DNSKEY record data (flags 257, protocol 3).
    pub fn dnskey(&self) -> &DNSKEY {
        &self.dnskey
    }

    /// The key tag (RFC 4034 Appendix B) that RRSIGs and the DS name.
    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// The public key as it stands in the DNSKEY.
    pub fn public_key(&self) -> &[u8] {
        self.dnskey.public_key().public_bytes()
    }

    /// The DS record data for the parent, digest type 2 (SHA-256).
    pub fn ds(&self, zone: &Name) -> Result<DS, String> {
        ds_of(&self.dnskey, zone)
    }

    /// The CDS record data (RFC 7344): the DS the parent should hold.
    pub fn cds(&self, zone: &Name) -> Result<CDS, String> {
        let ds = self.ds(zone)?;
        Ok(CDS::new(
            ds.key_tag(),
            Some(ds.algorithm()),
            ds.digest_type(),
            ds.digest().to_vec(),
        ))
    }

    /// The CDNSKEY record data (RFC 7344): the DNSKEY the parent should trust.
    pub fn cdnskey(&self) -> CDNSKEY {
        CDNSKEY::with_flags(
            CSK_FLAGS,
            Some(self.algorithm.to_hickory()),
            self.public_key().to_vec(),
        )
    }

    /// Signs the RFC 4034 signed data of an RRset.
    pub fn sign(&self, tbs: &TBS) -> Result<Vec<u8>, String> {
        self.signing.sign(tbs).map_err(|e| e.to_string())
    }
}

/// The DS record data of `dnskey` at `zone`: key tag, algorithm, digest
/// type 2 and the SHA-256 of the zone's name and the DNSKEY (RFC 4034
/// section 5.1.4, RFC 4509).
pub fn ds_of(dnskey: &DNSKEY, zone: &Name) -> Result<DS, String> {
    let digest = dnskey
        .to_digest(zone, DigestType::SHA256)
        .map_err(|e| e.to_string())?;
    Ok(DS::new(
        dnskey.calculate_key_tag().map_err(|e| e.to_string())?,
        dnskey.public_key().algorithm(),
        DigestType::SHA256,
        digest.as_ref().to_vec(),
    ))
}

/// Where a zone's generated key lives: `STATE_DIR/keys/<zone>.key`, the
/// zone's name lowercased without its final dot (`root.key` for the root).
pub fn state_key_path(state_dir: &Path, zone: &Name) -> PathBuf {
    let name = zone.to_lowercase().to_ascii();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let mut file = String::new();
    if name.is_empty() {
        file.push_str("root");
    }
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*') {
            file.push(c);
        } else {
            file.push_str(&format!("%{:02x}", u32::from(c)));
        }
    }
    file.push_str(".key");
    state_dir.join(STATE_KEYS_DIR).join(file)
}

/// The zone's key from `STATE_DIR/keys/`, generated there on the first call
/// and read on every later one, so a restart keeps the key. Returns whether
/// it was generated now.
///
/// An existing file that cannot be read, or holds another algorithm than
/// `algorithm` asks for, is an error: the key is never replaced behind the
/// operator's back (the parent's DS names it).
pub fn load_or_generate(
    state_dir: &Path,
    zone: &Name,
    algorithm: Option<KeyAlgorithm>,
) -> Result<(ZoneKey, bool), KeyError> {
    let path = state_key_path(state_dir, zone);
    let check = |key: ZoneKey| match algorithm {
        Some(wanted) if wanted != key.algorithm() => Err(KeyError::Key {
            path: path.clone(),
            message: format!(
                "the zone's key is {} but the zone asks for {wanted}: changing the algorithm is a key rollover, which mirrordns does not do; remove the file to start over with a new key (and a new DS at the parent)",
                key.algorithm()
            ),
        }),
        _ => Ok(key),
    };
    if path.exists() {
        return check(ZoneKey::load(&path)?).map(|k| (k, false));
    }
    let key = ZoneKey::generate(algorithm.unwrap_or_default())?;
    if !write_state_key(&path, &key)? {
        // Another process made the key meanwhile: its key wins.
        return check(ZoneKey::load(&path)?).map(|k| (k, false));
    }
    info!(
        zone = %zone,
        file = %path.display(),
        key_tag = key.key_tag(),
        algorithm = %key.algorithm(),
        "DNSSEC key generated"
    );
    Ok((key, true))
}

/// Puts `key`, the key a zone is served with now, back in the state
/// directory when its file there is gone (deleted by hand, a state
/// directory restored from an old backup): the key is never replaced
/// behind the operator's back, since the parent's DS names it. Returns
/// whether it was written.
pub fn keep_serving_key(state_dir: &Path, zone: &Name, key: &ZoneKey) -> Result<bool, KeyError> {
    let path = state_key_path(state_dir, zone);
    if path.exists() {
        return Ok(false);
    }
    let written = write_state_key(&path, key)?;
    if written {
        warn!(
            zone = %zone,
            file = %path.display(),
            key_tag = key.key_tag(),
            "the zone's DNSSEC key file was gone: the key it is served with is written back (a new key would need a new DS at the parent)"
        );
    }
    Ok(written)
}

/// Writes a state-directory key file whole under a temporary name, then
/// links it into place; `false` when another process linked one first.
fn write_state_key(path: &Path, key: &ZoneKey) -> Result<bool, KeyError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Write { path, source }
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_error(dir))?;
    }
    let tmp = path.with_extension(format!("key.tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    key.write_new(&tmp)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path).map_err(write_error(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(KeyError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The key a zone signs with: its `dnssec: {key_file}` when it has one
/// (the same file on every instance), else the one generated in the state
/// directory.
pub fn zone_key(
    key_file: Option<&Path>,
    state_dir: &Path,
    zone: &Name,
    algorithm: Option<KeyAlgorithm>,
) -> Result<ZoneKey, KeyError> {
    match key_file {
        Some(path) => {
            let key = ZoneKey::load(path)?;
            match algorithm {
                Some(wanted) if wanted != key.algorithm() => Err(KeyError::Key {
                    path: path.to_path_buf(),
                    message: format!(
                        "the key is {} but the zone's dnssec.algorithm says {wanted}",
                        key.algorithm()
                    ),
                }),
                _ => Ok(key),
            }
        }
        None => load_or_generate(state_dir, zone, algorithm).map(|(key, _)| key),
    }
}

/// Makes a new directory entry durable (fsync of the directory).
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Standard base64 with padding (RFC 4648 section 4), as PEM bodies are.
fn base64_encode(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// Standard base64 with padding, white space ignored; `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    data_encoding::BASE64.decode(&compact).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed ECDSA P-256 key: the private key of RFC 6605's example
    /// (whose DNSKEY is not this key's public key: an erratum) with its own
    /// public key, wrapped as PKCS#8 in ring's v1 template.
    pub(crate) fn fixed_p256_key() -> ZoneKey {
        let private = base64_decode("GU6SnQ/Ojn6dS1uvkBvamL0Jc2CCEdcRUyoL5bcG1BQ=").unwrap();
        let public = base64_decode(
            "rdfE5LD0iQh05v64RQOK9mI0iFB3WfrGgjCykfHLISp3QGWkM5GbM/dijgQY5YHANvzyf9HqcOqSKQU1ZNr0Ug==",
        )
        .unwrap();
        let mut der = vec![
            0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
            0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
            0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
        ];
        der.extend_from_slice(&private);
        der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00, 0x04]);
        der.extend_from_slice(&public);
        ZoneKey::from_pkcs8(KeyAlgorithm::EcdsaP256Sha256, &der).unwrap()
    }

    /// RFC 8080 section 6.1: the first example Ed25519 key, as PKCS#8 v2.
    pub(crate) fn rfc8080_key() -> ZoneKey {
        let seed = base64_decode("ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=").unwrap();
        let public = base64_decode("l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=").unwrap();
        let mut der = vec![
            0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        der.extend_from_slice(&[0x81, 0x21, 0x00]);
        der.extend_from_slice(&public);
        ZoneKey::from_pkcs8(KeyAlgorithm::Ed25519, &der).unwrap()
    }

    pub(crate) fn base64(bytes: &[u8]) -> String {
        base64_encode(bytes)
    }

    /// `dnssec-dsfromkey -2` of [`fixed_p256_key`]'s DNSKEY at example.net.
    pub(crate) const FIXED_P256_DS: &str =
        "49490 13 2 5E4A51D3D91D7CFDEC2C9C54982FFAB2CCA099DD1D396FC9F317CFEE50DD7464";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn ecdsa_p256_key_tag_and_ds_match_rfc_6605() {
        let public = base64_decode(
            "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
        )
        .unwrap();
        let dnskey = DNSKEY::with_flags(
            CSK_FLAGS,
            hickory_proto::dnssec::PublicKeyBuf::new(public, Algorithm::ECDSAP256SHA256),
        );
        let zone = Name::from_ascii("example.net.").unwrap();
        assert_eq!(dnskey.calculate_key_tag().unwrap(), 55648);
        let ds = ds_of(&dnskey, &zone).unwrap();
        assert_eq!(
            ds.to_string(),
            "55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
        assert_eq!(
            hex(ds.digest()),
            "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
        );
    }

    /// A key's own DS, CDS and CDNSKEY agree with its DNSKEY; its key tag
    /// and DS as `dnssec-dsfromkey -2` computes them for that DNSKEY.
    #[test]
    fn ds_cds_and_cdnskey_of_a_key() {
        let key = fixed_p256_key();
        let zone = Name::from_ascii("example.net.").unwrap();
        assert_eq!(
            key.dnskey().to_string(),
            "257 3 13 rdfE5LD0iQh05v64RQOK9mI0iFB3WfrGgjCykfHLISp3QGWkM5GbM/dijgQY5YHANvzyf9HqcOqSKQU1ZNr0Ug=="
        );
        let ds = key.ds(&zone).unwrap();
        assert_eq!(ds.key_tag(), key.key_tag());
        assert_eq!(ds, ds_of(key.dnskey(), &zone).unwrap());
        assert_eq!(ds.to_string(), FIXED_P256_DS);
        let cds = key.cds(&zone).unwrap();
        assert_eq!(cds.digest(), ds.digest());
        assert_eq!(cds.key_tag(), ds.key_tag());
        assert_eq!(cds.algorithm(), Some(Algorithm::ECDSAP256SHA256));
        let cdnskey = key.cdnskey();
        assert_eq!(cdnskey.flags(), 257);
        assert_eq!(
            cdnskey.public_key().unwrap().public_bytes(),
            key.public_key()
        );
    }

    /// RFC 8080 section 6.1: DNSKEY, key tag 3613 and the SHA-256 DS.
    #[test]
    fn ed25519_key_tag_and_ds_match_rfc_8080() {
        let key = rfc8080_key();
        let zone = Name::from_ascii("example.com.").unwrap();
        assert_eq!(
            key.dnskey().to_string(),
            "257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4="
        );
        assert_eq!(key.key_tag(), 3613);
        assert_eq!(
            hex(key.ds(&zone).unwrap().digest()),
            "3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b"
        );
    }

    #[test]
    fn key_files_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in KeyAlgorithm::ALL {
            let key = ZoneKey::generate(algorithm).unwrap();
            let path = dir.path().join(format!("{algorithm}.key"));
            key.write_new(&path).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let again = ZoneKey::load(&path).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            assert_eq!(again.dnskey(), key.dnskey());
            assert_eq!(again.key_tag(), key.key_tag());
            // Never over an existing file.
            assert!(matches!(key.write_new(&path), Err(KeyError::Write { .. })));
            // Without the algorithm line the key says what it is.
            let text = key
                .to_file_text()
                .replace(&format!("algorithm: {algorithm}\n"), "");
            let inferred = ZoneKey::parse(&path, &text).unwrap();
            assert_eq!(inferred.algorithm(), algorithm);
            assert_eq!(inferred.dnskey(), key.dnskey());
        }
    }

    #[test]
    fn bad_key_files_are_clear_errors() {
        let path = Path::new("zone.key");
        let good = ZoneKey::generate(KeyAlgorithm::EcdsaP256Sha256)
            .unwrap()
            .to_file_text();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no private key"),
            ("# only a comment\n".to_string(), "no private key"),
            (
                good.replace("algorithm: ecdsap256sha256", "algorithm: rsasha1"),
                "zone.key:5: unknown DNSSEC algorithm",
            ),
            (
                good.replace("algorithm: ecdsap256sha256", "algorithm: ed25519"),
                "not an Ed25519 private key",
            ),
            (
                good.replace("algorithm: ecdsap256sha256", "colour: blue"),
                "zone.key:5: unexpected text (not quoted",
            ),
            (
                good.replace(PEM_END, ""),
                "zone.key:6: -----BEGIN PRIVATE KEY----- without",
            ),
            (
                good.replace("BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY"),
                "zone.key:6: -----BEGIN EC PRIVATE KEY-----: expected",
            ),
            (format!("{good}more\n"), "text after the private key"),
            (
                good.replacen("MI", "M!", 1),
                "the private key is not valid base64",
            ),
            (
                good.replacen("MI", "AA", 1),
                "not an ECDSA P-256 private key",
            ),
            (
                good.replace("algorithm: ecdsap256sha256\n", "")
                    .replacen("MI", "AA", 1),
                "neither ECDSA P-256 nor Ed25519",
            ),
        ];
        for (text, expected) in cases {
            let e = ZoneKey::parse(path, &text).unwrap_err().to_string();
            assert!(e.contains(expected), "{e:?} should say {expected:?}");
        }
        // A key file whose BEGIN line is lost: its key's lines are never
        // quoted (errors reach logs, the API and the status page).
        let body_line = good.lines().nth(6).unwrap();
        let beheaded = good.replace(PEM_BEGIN, "");
        let e = ZoneKey::parse(path, &beheaded).unwrap_err().to_string();
        assert!(!e.contains(body_line), "{e}");
        let endless = ZoneKey::load(Path::new("/dev/zero")).unwrap_err();
        assert!(endless.to_string().contains("not a key file"), "{endless}");
        // `openssl genpkey -algorithm ed25519`
        let openssl_ed25519 = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIDDRVs7sNBhXWhTv6JKmA2nd9Jm7NhMj/rOg0YXY+yKd\n\
            -----END PRIVATE KEY-----\n";
        let e = ZoneKey::parse(path, openssl_ed25519)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PKCS#8 v1 (as OpenSSL writes it)"), "{e}");
        let missing = ZoneKey::load(Path::new("/nonexistent/zone.key")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/zone.key: cannot read the DNSSEC key file"),
            "{missing}"
        );
    }

    #[test]
    fn algorithms_parse_by_name_mnemonic_and_number() {
        for s in ["ecdsap256sha256", "ECDSAP256SHA256", "13"] {
            assert_eq!(s.parse(), Ok(KeyAlgorithm::EcdsaP256Sha256));
        }
        for s in ["ed25519", "ED25519", "15"] {
            assert_eq!(s.parse(), Ok(KeyAlgorithm::Ed25519));
        }
        assert!("8".parse::<KeyAlgorithm>().is_err());
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256Sha256);
    }

    #[test]
    fn the_state_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("Example.TEST.").unwrap();
        let path = state_key_path(dir.path(), &zone);
        assert_eq!(path, dir.path().join("keys/example.test.key"));
        let (first, generated) = load_or_generate(dir.path(), &zone, None).unwrap();
        assert!(generated);
        assert_eq!(first.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let (again, generated) = load_or_generate(dir.path(), &zone, None).unwrap();
        assert!(!generated);
        assert_eq!(again.dnskey(), first.dnskey());
        let (asked, _) =
            load_or_generate(dir.path(), &zone, Some(KeyAlgorithm::EcdsaP256Sha256)).unwrap();
        assert_eq!(asked.dnskey(), first.dnskey());
        // Another algorithm is a rollover: refused, the key kept.
        let e = load_or_generate(dir.path(), &zone, Some(KeyAlgorithm::Ed25519)).unwrap_err();
        assert!(e.to_string().contains("key rollover"), "{e}");
        // No temporary file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // A damaged key is an error, never replaced.
        fs::write(&path, "garbage\n").unwrap();
        assert!(load_or_generate(dir.path(), &zone, None).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage\n");

        let ed = Name::from_ascii("ed.test.").unwrap();
        let (key, _) = load_or_generate(dir.path(), &ed, Some(KeyAlgorithm::Ed25519)).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        assert_eq!(
            state_key_path(dir.path(), &Name::root()),
            dir.path().join("keys/root.key")
        );
    }

    #[test]
    fn a_key_file_wins_over_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let zone = Name::from_ascii("example.test.").unwrap();
        let file = dir.path().join("shared.key");
        let key = ZoneKey::generate(KeyAlgorithm::Ed25519).unwrap();
        key.write_new(&file).unwrap();
        let used = zone_key(Some(&file), dir.path(), &zone, None).unwrap();
        assert_eq!(used.dnskey(), key.dnskey());
        assert!(!state_key_path(dir.path(), &zone).exists());
        let e = zone_key(
            Some(&file),
            dir.path(),
            &zone,
            Some(KeyAlgorithm::EcdsaP256Sha256),
        )
        .unwrap_err();
        assert!(e.to_string().contains("dnssec.algorithm"), "{e}");
        let generated = zone_key(None, dir.path(), &zone, None).unwrap();
        assert!(state_key_path(dir.path(), &zone).exists());
        assert_ne!(generated.dnskey(), key.dnskey());
    }
}
