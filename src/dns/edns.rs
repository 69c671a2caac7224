//! The EDNS options of a request that its response depends on, read from
//! the OPT record's RDATA without allocating: ECS (RFC 7871), COOKIE (RFC
//! 7873) and NSID (RFC 5001). The template path and the full path read them
//! with this one function, so they agree on what is malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub const OPTION_NSID: u16 = 3;
pub const OPTION_ECS: u16 = 8;
pub const OPTION_COOKIE: u16 = 10;
pub const OPTION_EDE: u16 = 15;

/// The DO bit in the OPT record's flags (RFC 3225).
pub const FLAG_DO: u16 = 0x8000;

/// A client cookie is 8 bytes; a server cookie 8 to 32 (RFC 7873 section 4).
pub const CLIENT_COOKIE_LEN: usize = 8;
const MAX_SERVER_COOKIE_LEN: usize = 32;

/// A request's ECS option, known to be well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecs {
    pub family: u16,
    pub source: u8,
    /// The address bytes the source prefix needs, then zeros.
    pub addr: [u8; 16],
}

impl Ecs {
    /// Address bytes on the wire: as many as the source prefix needs.
    pub fn addr_len(&self) -> usize {
        usize::from(self.source).div_ceil(8)
    }

    /// The client it speaks for; `None` for source prefix 0 ("use the
    /// resolver's address", RFC 7871).
    pub fn client(&self) -> Option<IpNet> {
        if self.source == 0 {
            return None;
        }
        let addr = match self.family {
            1 => IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            )),
            _ => IpAddr::V6(Ipv6Addr::from(self.addr)),
        };
        IpNet::new(addr, self.source).ok()
    }

    /// The option's body as echoed in a response: family, source, `scope`
    /// (0 for source 0), address.
    pub fn echo(&self, scope: u8) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.addr_len());
        body.extend_from_slice(&self.family.to_be_bytes());
        body.push(self.source);
        body.push(if self.source == 0 { 0 } else { scope });
        body.extend_from_slice(&self.addr[..self.addr_len()]);
        body
    }
}

/// A request's COOKIE option: the client cookie and, when the client has
/// learned one, the server cookie it sends back (not yet checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCookie {
    pub client: [u8; CLIENT_COOKIE_LEN],
    server: [u8; MAX_SERVER_COOKIE_LEN],
    server_len: u8,
}

impl RequestCookie {
    pub fn server(&self) -> &[u8] {
        &self.server[..usize::from(self.server_len)]
    }
}

/// What the options of one OPT record ask of the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    pub ecs: Option<Ecs>,
    pub cookie: Option<RequestCookie>,
    /// The requestor asks for our NSID (RFC 5001: an NSID option, empty).
    pub nsid: bool,
}

/// Options that make the request malformed (FORMERR): an option running
/// past the RDATA, a malformed ECS (RFC 7871 section 7.1.1) or COOKIE (RFC
/// 7873 section 5.2.2), or either of them twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads the options of an OPT record's RDATA. Other options (padding,
/// keepalive, DAU, ...) are skipped and change nothing in the response.
pub fn read_options(mut rdata: &[u8]) -> Result<RequestOptions, Malformed> {
    let mut options = RequestOptions::default();
    while !rdata.is_empty() {
        let [code_hi, code_lo, len_hi, len_lo, rest @ ..] = rdata else {
            return Err(Malformed);
        };
        let code = u16::from_be_bytes([*code_hi, *code_lo]);
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        let body = rest.get(..len).ok_or(Malformed)?;
        rdata = &rest[len..];
        match code {
            OPTION_ECS if options.ecs.is_none() => options.ecs = Some(read_ecs(body)?),
            OPTION_COOKIE if options.cookie.is_none() => options.cookie = Some(read_cookie(body)?),
            OPTION_ECS | OPTION_COOKIE => return Err(Malformed),
            OPTION_NSID => options.nsid = true,
            _ => {}
        }
    }
    Ok(options)
}

/// A well-formed ECS option body (RFC 7871 section 6): a known family, a
/// source prefix the family allows, address bytes as many as the source
/// prefix needs, no bit set beyond it.
fn read_ecs(body: &[u8]) -> Result<Ecs, Malformed> {
    let [family_hi, family_lo, source, _scope, addr @ ..] = body else {
        return Err(Malformed);
    };
    let family = u16::from_be_bytes([*family_hi, *family_lo]);
    let max_source = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed),
    };
    if *source > max_source {
        return Err(Malformed);
    }
    let mut ecs = Ecs {
        family,
        source: *source,
        addr: [0; 16],
    };
    if addr.len() != ecs.addr_len() {
        return Err(Malformed);
    }
    let spare_bits = ecs.addr_len() * 8 - usize::from(*source);
    if let Some(last) = addr.last()
        && last & ((1u16 << spare_bits) - 1) as u8 != 0
    {
        return Err(Malformed);
    }
    ecs.addr[..addr.len()].copy_from_slice(addr);
    Ok(ecs)
}

/// A COOKIE option of a length RFC 7873 section 5.2.2 allows: a client
/// cookie alone (8 bytes) or with a server cookie of 8 to 32 bytes.
fn read_cookie(body: &[u8]) -> Result<RequestCookie, Malformed> {
    let (client, server) = match body.len() {
        CLIENT_COOKIE_LEN | 16..=40 => body.split_at(CLIENT_COOKIE_LEN),
        _ => return Err(Malformed),
    };
    let mut cookie = RequestCookie {
        client: [0; CLIENT_COOKIE_LEN],
        server: [0; MAX_SERVER_COOKIE_LEN],
        server_len: server.len() as u8,
    };
    cookie.client.copy_from_slice(client);
    cookie.server[..server.len()].copy_from_slice(server);
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: u16, body: &[u8]) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_ecs_cookie_and_nsid_and_skips_the_rest() {
        let mut rdata = option(12, &[0; 5]); // padding
        rdata.extend(option(OPTION_NSID, &[]));
        rdata.extend(option(OPTION_COOKIE, &[7; 24]));
        rdata.extend(option(OPTION_ECS, &[0, 1, 24, 0, 198, 51, 100]));
        let o = read_options(&rdata).unwrap();
        assert!(o.nsid);
        let cookie = o.cookie.unwrap();
        assert_eq!(cookie.client, [7; 8]);
        assert_eq!(cookie.server(), &[7; 16]);
        assert_eq!(
            o.ecs.unwrap().client(),
            Some("198.51.100.0/24".parse().unwrap())
        );
        assert_eq!(read_options(&[]), Ok(RequestOptions::default()));
    }

    #[test]
    fn malformed_options_are_refused() {
        let ecs = |body: &[u8]| read_options(&option(OPTION_ECS, body));
        for bad in [
            &[0, 1, 24, 0, 198, 51, 100, 0][..], // an address byte too many
            &[0, 1, 23, 0, 198, 51, 101],        // a bit beyond the prefix
            &[0, 3, 24, 0, 198, 51, 100],        // no such family
            &[0, 1, 33, 0, 1, 2, 3, 4, 5],       // a prefix IPv4 cannot have
            &[0, 1, 24, 0, 198, 51],             // an address byte too few
            &[0, 1],                             // no prefixes
        ] {
            assert_eq!(ecs(bad), Err(Malformed), "{bad:?}");
        }
        for len in [0, 7, 9, 15, 41] {
            let cookie = option(OPTION_COOKIE, &vec![1; len]);
            assert_eq!(read_options(&cookie), Err(Malformed), "cookie of {len}");
        }
        for len in [8, 16, 24, 40] {
            let cookie = option(OPTION_COOKIE, &vec![1; len]);
            assert!(read_options(&cookie).is_ok(), "cookie of {len}");
        }
        let mut twice = option(OPTION_COOKIE, &[1; 8]);
        twice.extend(option(OPTION_COOKIE, &[1; 8]));
        assert_eq!(read_options(&twice), Err(Malformed));
        let overrun = [0, 10, 0, 20, 1, 2, 3];
        assert_eq!(read_options(&overrun), Err(Malformed));
        assert_eq!(read_options(&[0, 10, 0]), Err(Malformed));
    }

    #[test]
    fn the_ecs_echo_carries_the_scope_unless_the_source_is_zero() {
        let o = read_options(&option(OPTION_ECS, &[0, 1, 24, 0, 198, 51, 100])).unwrap();
        assert_eq!(o.ecs.unwrap().echo(16), [0, 1, 24, 16, 198, 51, 100]);
        let o = read_options(&option(OPTION_ECS, &[0, 2, 0, 0])).unwrap();
        assert_eq!(o.ecs.unwrap().echo(16), [0, 2, 0, 0]);
        assert_eq!(o.ecs.unwrap().client(), None);
    }
}
