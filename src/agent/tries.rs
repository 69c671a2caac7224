//! Which addresses to probe for one target, in which order (SPEC section 2,
//! "Silent targets"). On the Internet the first host of a client subnet
//! rarely exists, so probing only it makes most sub-blocks look silent; the
//! agent tries the hosts most likely to answer first, and stops at the
//! first that does.

use std::net::IpAddr;

use ipnet::IpNet;

/// Addresses tried per target at most, so that one silent block cannot eat
/// the probe rate: every try of a silent block waits out the full timeout.
pub const MAX_TRIES: usize = 4;

/// A probe target as the server words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A resolver address: measured as it is.
    Address(IpAddr),
    /// A client subnet (ECS): any host in it stands for it.
    Subnet(IpNet),
}

impl Target {
    /// An address, or a CIDR subnet (a full-length prefix is an address).
    pub fn parse(text: &str) -> Option<Target> {
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Some(Target::Address(addr));
        }
        let net: IpNet = text.parse().ok()?;
        if net.prefix_len() == net.max_prefix_len() {
            return Some(Target::Address(net.addr()));
        }
        Some(Target::Subnet(net.trunc()))
    }
}

/// What is known about a subnet target besides the subnet itself.
#[derive(Debug, Default)]
pub struct Hints<'a> {
    /// The address that answered last time for this sub-block.
    pub remembered: Option<IpAddr>,
    /// Resolver addresses the server saw asking with this subnet, as the
    /// probe work gives them (unparseable ones are skipped).
    pub resolvers: &'a [String],
    /// Clients the access log showed inside the sub-block, newest first.
    pub seen: &'a [IpAddr],
}

/// The addresses to try for `target`, best first, without repeats, at most
/// `MAX_TRIES`: for a subnet the remembered address, the resolvers, the
/// clients seen, then the subnet's first host (the network address does not
/// answer); for an address, that address.
pub fn order(target: Target, hints: &Hints) -> Vec<IpAddr> {
    let net = match target {
        Target::Address(addr) => return vec![addr],
        Target::Subnet(net) => net,
    };
    let resolvers = hints.resolvers.iter().filter_map(|r| r.parse().ok());
    let candidates = hints
        .remembered
        .into_iter()
        .chain(resolvers)
        .chain(hints.seen.iter().copied())
        .chain(net.hosts().next())
        .map(|a: IpAddr| a.to_canonical())
        .filter(|a| probeable(*a));
    let mut out: Vec<IpAddr> = Vec::with_capacity(MAX_TRIES);
    for address in candidates {
        if out.len() == MAX_TRIES {
            break;
        }
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// Whether a probe to `addr` could reach one host: not the unspecified
/// address, not a multicast or broadcast group (which a server bug or a
/// spoofed query could otherwise make the agent probe).
fn probeable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn target(text: &str) -> Target {
        Target::parse(text).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_are_addresses_or_subnets() {
        assert_eq!(
            Target::parse("203.0.113.53"),
            Some(Target::Address(ip("203.0.113.53")))
        );
        assert_eq!(
            Target::parse("203.0.113.53/32"),
            Some(Target::Address(ip("203.0.113.53")))
        );
        assert_eq!(
            Target::parse("198.51.100.77/24"),
            Some(Target::Subnet("198.51.100.0/24".parse().unwrap()))
        );
        assert_eq!(Target::parse("not a target"), None);
    }

    #[test]
    fn an_address_target_is_tried_alone_whatever_the_hints() {
        let resolvers = strings(&["203.0.113.53"]);
        let hints = Hints {
            remembered: Some(ip("198.51.100.7")),
            resolvers: &resolvers,
            seen: &[ip("198.51.100.9")],
        };
        assert_eq!(order(target("192.0.2.53"), &hints), [ip("192.0.2.53")]);
    }

    #[test]
    fn a_subnet_tries_remembered_then_resolvers_then_seen_then_first_host() {
        let resolvers = strings(&["203.0.113.53"]);
        let hints = Hints {
            remembered: Some(ip("198.51.100.7")),
            resolvers: &resolvers,
            seen: &[ip("198.51.100.9")],
        };
        assert_eq!(
            order(target("198.51.100.0/24"), &hints),
            [
                ip("198.51.100.7"),
                ip("203.0.113.53"),
                ip("198.51.100.9"),
                ip("198.51.100.1")
            ]
        );
        assert_eq!(
            order(target("198.51.100.0/24"), &Hints::default()),
            [ip("198.51.100.1")],
            "without hints, the first host as before"
        );
        assert!(
            order(target("224.0.0.0/24"), &Hints::default()).is_empty(),
            "a multicast subnet has no host to probe"
        );
    }

    #[test]
    fn tries_are_capped_deduplicated_and_skip_what_cannot_answer() {
        let resolvers = strings(&[
            "198.51.100.7",
            "not-an-address",
            "0.0.0.0",
            "224.0.0.1",
            "::ffff:203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
        ]);
        let hints = Hints {
            remembered: Some(ip("198.51.100.7")),
            resolvers: &resolvers,
            seen: &[ip("198.51.100.9")],
        };
        assert_eq!(
            order(target("198.51.100.0/24"), &hints),
            [
                ip("198.51.100.7"),
                ip("203.0.113.1"),
                ip("203.0.113.2"),
                ip("203.0.113.3")
            ]
        );
    }
}
