//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018): a
//! server cookie is version 1, three reserved bytes, a timestamp and a
//! SipHash-2-4 of the client cookie, those eight bytes and the client's
//! address, keyed with a 16-byte secret. Every instance holding the same
//! secret accepts the cookies of the others (ns1 and ns2 behind one name).
//!
//! Cookies are never required: a bad server cookie is answered as if the
//! client had sent only its client cookie (with a fresh server cookie),
//! never with BADCOOKIE. A valid one proves the source address is not
//! spoofed, so rate limiting lets it through.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher24;
use tracing::{info, warn};

use super::edns::{CLIENT_COOKIE_LEN, RequestCookie};

/// Our server cookies: version, reserved, timestamp, hash.
pub const SERVER_COOKIE_LEN: usize = 16;
/// The COOKIE option we send: the client cookie, then ours.
pub const RESPONSE_COOKIE_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
const VERSION: u8 = 1;
/// RFC 9018 section 4.3: a cookie older than an hour, or more than five
/// minutes in the future, is not valid; one older than half an hour is
/// replaced by a fresh one.
const MAX_AGE: u32 = 3600;
const MAX_AHEAD: u32 = 300;
const RENEW_AGE: u32 = 1800;
/// Where the generated secret lives in the state directory.
pub const SECRET_FILE: &str = "cookie.secret";

/// The secret server cookies are made and checked with.
#[derive(Clone)]
pub struct CookieSecret {
    hasher: SipHasher24,
}

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

/// The COOKIE option of a response, and whether the request's server
/// cookie was ours and valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseCookie {
    pub bytes: [u8; RESPONSE_COOKIE_LEN],
    pub valid: bool,
}

impl CookieSecret {
    pub fn new(secret: [u8; 16]) -> CookieSecret {
        CookieSecret {
            hasher: SipHasher24::new_with_key(&secret),
        }
    }

    /// A secret from the OS's random source, for a server that keeps none.
    pub fn random() -> CookieSecret {
        CookieSecret::new(rand::random())
    }

    /// 32 hex digits (surrounding white space allowed).
    pub fn from_hex(text: &str) -> Result<CookieSecret, String> {
        let text = text.trim();
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a cookie secret is 32 hex digits (16 bytes)".to_string());
        }
        let mut secret = [0u8; 16];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("a cookie secret is hex: {e}"))?;
        }
        Ok(CookieSecret::new(secret))
    }

    /// The server cookie for `client` cookie at `timestamp` (seconds since
    /// the epoch, modulo 2^32) to the client at `source`, with `reserved`
    /// bytes as RFC 9018 section 4.2 has them (zero in the cookies we make).
    pub fn server_cookie(
        &self,
        client: &[u8; CLIENT_COOKIE_LEN],
        reserved: [u8; 3],
        timestamp: u32,
        source: IpAddr,
    ) -> [u8; SERVER_COOKIE_LEN] {
        let mut input = [0u8; CLIENT_COOKIE_LEN + 8 + 16];
        input[..8].copy_from_slice(client);
        input[8] = VERSION;
        input[9..12].copy_from_slice(&reserved);
        input[12..16].copy_from_slice(&timestamp.to_be_bytes());
        let len = match source.to_canonical() {
            IpAddr::V4(a) => {
                input[16..20].copy_from_slice(&a.octets());
                20
            }
            IpAddr::V6(a) => {
                input[16..32].copy_from_slice(&a.octets());
                32
            }
        };
        let hash = self.hasher.hash(&input[..len]);
        let mut cookie = [0u8; SERVER_COOKIE_LEN];
        cookie[..8].copy_from_slice(&input[8..16]);
        cookie[8..].copy_from_slice(&hash.to_le_bytes());
        cookie
    }

    /// The COOKIE option answering `request` from `source` at `now`: the
    /// request's own server cookie when it is ours, valid and not due for
    /// renewal; else a fresh one.
    pub fn respond(&self, request: &RequestCookie, source: IpAddr, now: u32) -> ResponseCookie {
        let mut bytes = [0u8; RESPONSE_COOKIE_LEN];
        bytes[..CLIENT_COOKIE_LEN].copy_from_slice(&request.client);
        let age = self.age_if_valid(request, source, now);
        match age {
            Some(age) if age < RENEW_AGE => {
                bytes[CLIENT_COOKIE_LEN..].copy_from_slice(request.server());
            }
            _ => {
                let fresh = self.server_cookie(&request.client, [0; 3], now, source);
                bytes[CLIENT_COOKIE_LEN..].copy_from_slice(&fresh);
            }
        }
        ResponseCookie {
            bytes,
            valid: age.is_some(),
        }
    }

    /// The age in seconds of the request's server cookie, if it is one of
    /// ours for this client, made with this secret and still valid (RFC
    /// 9018 section 4.3; timestamps compare in serial number arithmetic).
    fn age_if_valid(&self, request: &RequestCookie, source: IpAddr, now: u32) -> Option<u32> {
        let server = request.server();
        if server.len() != SERVER_COOKIE_LEN || server[0] != VERSION {
            return None;
        }
        let timestamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        let age = now.wrapping_sub(timestamp);
        let ahead = timestamp.wrapping_sub(now);
        if age > MAX_AGE && ahead > MAX_AHEAD {
            return None;
        }
        let reserved = [server[1], server[2], server[3]];
        let expected = self.server_cookie(&request.client, reserved, timestamp, source);
        (expected == server).then_some(if age <= MAX_AGE { age } else { 0 })
    }

    /// The secret from `--cookie-secret-file`, else the one generated once
    /// in `state_dir` (mode 0600), generating it on the first start.
    pub fn load(file: Option<&Path>, state_dir: &Path) -> io::Result<CookieSecret> {
        if let Some(path) = file {
            let secret = read_secret(path)?;
            info!(file = %path.display(), "dns cookie secret read from --cookie-secret-file");
            if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                warn!(file = %path.display(), "the dns cookie secret is readable by other users: whoever reads it can pass rate limiting (chmod 600)");
            }
            return Ok(secret);
        }
        let path = state_dir.join(SECRET_FILE);
        if path.exists() {
            match read_secret(&path) {
                Ok(secret) => return Ok(secret),
                // A damaged generated secret is state like any other: set
                // it aside and make a new one (clients just learn new cookies).
                Err(e) => {
                    crate::state::set_aside(&path, &e.to_string(), false);
                }
            }
        }
        fs::create_dir_all(state_dir)?;
        let secret: [u8; 16] = rand::random();
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(out, "{hex}")?;
        out.sync_all()?;
        info!(file = %path.display(), "dns cookie secret generated");
        Ok(CookieSecret::new(secret))
    }
}

fn read_secret(path: &Path) -> io::Result<CookieSecret> {
    let text = fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read cookie secret {}: {e}", path.display()),
        )
    })?;
    CookieSecret::from_hex(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Seconds since the epoch, modulo 2^32, as cookie timestamps count them.
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::edns::{OPTION_COOKIE, read_options};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn request(cookie: &str) -> RequestCookie {
        let body = hex(cookie);
        let mut option = OPTION_COOKIE.to_be_bytes().to_vec();
        option.extend_from_slice(&(body.len() as u16).to_be_bytes());
        option.extend_from_slice(&body);
        read_options(&option).unwrap().cookie.unwrap()
    }

    /// RFC 9018 Appendix A.
    #[test]
    fn makes_the_server_cookies_of_the_rfc_9018_examples() {
        let a = CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let client: [u8; 8] = hex("2464c4abcf10c957").try_into().unwrap();
        let ip = "198.51.100.100".parse().unwrap();
        assert_eq!(
            a.server_cookie(&client, [0; 3], 1559731985, ip).to_vec(),
            hex("010000005cf79f111f8130c3eee29480")
        );
        assert_eq!(
            a.server_cookie(&client, [0; 3], 1559734385, ip).to_vec(),
            hex("010000005cf7a871d4a564a1442aca77")
        );
        let b = CookieSecret::from_hex("445536bcd2513298075a5d379663c962").unwrap();
        let client6: [u8; 8] = hex("22681ab97d52c298").try_into().unwrap();
        let ip6 = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        assert_eq!(
            b.server_cookie(&client6, [0; 3], 1559741961, ip6).to_vec(),
            hex("010000005cf7c609a6bb79d16625507a")
        );
    }

    #[test]
    fn a_valid_cookie_is_echoed_and_an_old_one_renewed() {
        let a = CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let issued = "2464c4abcf10c957010000005cf79f111f8130c3eee29480";
        // Ten minutes later: valid, echoed as it came.
        let r = a.respond(&request(issued), ip, 1559731985 + 600);
        assert!(r.valid);
        assert_eq!(r.bytes.to_vec(), hex(issued));
        // Forty minutes later (RFC 9018 A.2): valid, and renewed.
        let r = a.respond(&request(issued), ip, 1559734385);
        assert!(r.valid);
        assert_eq!(
            r.bytes.to_vec(),
            hex("2464c4abcf10c957010000005cf7a871d4a564a1442aca77")
        );
        // Reserved bytes the client set are part of the hash (A.3).
        let reserved = request("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        let ip3 = "203.0.113.203".parse().unwrap();
        let stamped = 0x5cf78f71;
        assert!(a.respond(&reserved, ip3, stamped + 10).valid);
        assert!(
            !a.respond(&reserved, ip, stamped + 10).valid,
            "another client"
        );
        // Past its hour it is renewed as RFC 9018 A.3 shows.
        let renewed = a.respond(&reserved, ip3, 1559734700);
        assert!(!renewed.valid);
        assert_eq!(
            renewed.bytes.to_vec(),
            hex("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e")
        );
    }

    #[test]
    fn expired_future_foreign_and_client_only_cookies_are_not_valid() {
        let a = CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let other = CookieSecret::from_hex("00e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let issued = request("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        let t = 1559731985;
        assert!(a.respond(&issued, ip, t + 3600).valid);
        assert!(!a.respond(&issued, ip, t + 3601).valid, "over an hour old");
        assert!(a.respond(&issued, ip, t - 300).valid);
        assert!(!a.respond(&issued, ip, t - 301).valid, "too far ahead");
        assert!(!other.respond(&issued, ip, t).valid, "another secret");
        let client_only = request("2464c4abcf10c957");
        let fresh = a.respond(&client_only, ip, t);
        assert!(!fresh.valid);
        assert_eq!(
            fresh.bytes.to_vec(),
            hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
        );
        // A cookie of another server's length is not ours.
        let long = request("2464c4abcf10c957010000005cf79f111f8130c3eee2948000");
        assert!(!a.respond(&long, ip, t).valid);
    }

    #[test]
    fn the_secret_is_32_hex_digits_and_generated_once() {
        assert!(CookieSecret::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf\n").is_ok());
        for bad in [
            "",
            "e5e973",
            "g5e973e5a6b2a43f48e7dc849e37bfcf",
            "+5e973e5a6b2a43f48e7dc849e37bfc",
        ] {
            assert!(CookieSecret::from_hex(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = CookieSecret::load(None, dir.path()).unwrap();
        let again = CookieSecret::load(None, dir.path()).unwrap();
        assert_eq!(
            first.server_cookie(&[1; 8], [0; 3], 7, ip),
            again.server_cookie(&[1; 8], [0; 3], 7, ip)
        );
        let mode = fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
