//! Response rate limiting for UDP, as Knot's and BIND's RRL: a token bucket
//! per client prefix (/24, /56) and response. Over the limit a response is
//! dropped, except every `slip`-th, which goes out as an empty TC=1 answer so
//! a real client behind a spoofed flood can still retry over TCP.
//!
//! Responses are grouped as BIND groups them: positive answers by name and
//! type, NXDOMAIN by type alone (a flood of random names is one flood),
//! errors together.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use ipnet::IpNet;
use nix::time::{ClockId, clock_gettime};
use parking_lot::Mutex;

/// Buckets kept at most; beyond it idle ones are forgotten first.
const MAX_BUCKETS: usize = 1 << 20;
/// Buckets live in this many maps, each behind its own lock, chosen by the
/// bucket's key: UDP threads answering different clients rarely meet.
const SHARDS: usize = 16;

#[derive(Clone, Debug)]
pub struct RrlConfig {
    /// Responses per second per prefix and response; 0 turns RRL off.
    pub rate: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
    /// Sources never limited.
    pub exempt: Vec<IpNet>,
}

impl RrlConfig {
    /// The default exemption: loopback, so local monitoring and benchmarks
    /// are not limited.
    pub fn default_exempt() -> Vec<IpNet> {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Truncate,
    Drop,
}

struct Bucket {
    tokens: f64,
    last: f64,
    limited: u32,
}

/// The exempt networks as address bits and masks, asked on every answer.
struct Exempt {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Exempt {
    fn new(nets: &[IpNet]) -> Exempt {
        let mut exempt = Exempt {
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for net in nets {
            match net {
                IpNet::V4(n) => exempt
                    .v4
                    .push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => exempt
                    .v6
                    .push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        exempt
    }

    fn contains(&self, source: IpAddr) -> bool {
        match source.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|(net, mask)| a & mask == *net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|(net, mask)| a & mask == *net)
            }
        }
    }
}

type Buckets = HashMap<u64, Bucket, foldhash::fast::RandomState>;

pub struct Rrl {
    config: RrlConfig,
    exempt: Exempt,
    /// Seeded per process, so that nobody can aim two clients' traffic at
    /// one bucket.
    keys: foldhash::fast::RandomState,
    shards: Box<[Mutex<Buckets>]>,
    pub dropped: AtomicU64,
    pub slipped: AtomicU64,
}

impl Rrl {
    pub fn new(config: RrlConfig) -> Rrl {
        Rrl {
            exempt: Exempt::new(&config.exempt),
            config,
            keys: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            dropped: AtomicU64::new(0),
            slipped: AtomicU64::new(0),
        }
    }

    /// Whether responses to `source` are rate limited at all.
    #[inline]
    pub fn limits(&self, source: IpAddr) -> bool {
        self.config.rate != 0 && !self.exempt.contains(source)
    }

    /// Whether a response to `source` may go out.
    #[inline]
    pub fn check(
        &self,
        source: IpAddr,
        qname: &[u8],
        qtype: RecordType,
        rcode: ResponseCode,
    ) -> Verdict {
        if !self.limits(source) {
            return Verdict::Send;
        }
        self.take_token(self.bucket_key(source, qname, qtype, rcode))
    }

    fn take_token(&self, key: u64) -> Verdict {
        let now = coarse_seconds();
        let rate = f64::from(self.config.rate);
        let mut buckets = self.shards[key as usize % SHARDS].lock();
        if buckets.len() >= MAX_BUCKETS / SHARDS && !buckets.contains_key(&key) {
            // Full buckets have no memory worth keeping.
            buckets.retain(|_, b| b.tokens + (now - b.last) * rate < rate);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
            limited: 0,
        });
        bucket.tokens = (bucket.tokens + (now - bucket.last) * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if self.config.slip > 0 && bucket.limited.is_multiple_of(self.config.slip) {
            self.slipped.fetch_add(1, Ordering::Relaxed);
            Verdict::Truncate
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
    }

    /// The client's /24 or /56 and the response's group, hashed.
    /// `qname` is the name in lowercase wire form.
    fn bucket_key(
        &self,
        source: IpAddr,
        qname: &[u8],
        qtype: RecordType,
        rcode: ResponseCode,
    ) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u64(match source.to_canonical() {
            IpAddr::V4(a) => u64::from(u32::from(a) >> 8),
            IpAddr::V6(a) => (u128::from(a) >> 72) as u64 | 1 << 63,
        });
        match rcode {
            ResponseCode::NoError => {
                h.write_u8(0);
                h.write_u16(u16::from(qtype));
                h.write(qname);
            }
            ResponseCode::NXDomain => {
                h.write_u8(1);
                h.write_u16(u16::from(qtype));
            }
            _ => h.write_u8(2),
        }
        h.finish()
    }
}

/// Seconds on the monotonic clock, to the kernel's tick (1-4 ms): read
/// for every limited answer, where the precise clock cost about 20 ns more
/// (criterion `request_path/steered_ecs_rate_limited`, median 225 -> 198
/// ns) and a token bucket needs no better.
fn coarse_seconds() -> f64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
        // A kernel without the coarse clock: the precise one, same epoch.
        .or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC))
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::serialize::binary::BinEncodable;

    fn rrl(rate: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            rate,
            slip,
            exempt: vec!["127.90.0.0/16".parse().unwrap()],
        })
    }

    fn name(n: &str) -> Vec<u8> {
        hickory_proto::rr::Name::from_ascii(n)
            .unwrap()
            .to_lowercase()
            .to_bytes()
            .unwrap()
    }

    #[test]
    fn limits_a_burst_and_slips_every_second() {
        let r = rrl(10, 2);
        let src: IpAddr = "198.51.100.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..20)
            .map(|_| r.check(src, &name("www.t."), RecordType::A, ResponseCode::NoError))
            .collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 10);
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Truncate).count(),
            5
        );
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Drop).count(), 5);
        // Another /24 has its own bucket, and so has another name.
        assert_eq!(
            r.check(
                "198.51.101.7".parse().unwrap(),
                &name("www.t."),
                RecordType::A,
                ResponseCode::NoError
            ),
            Verdict::Send
        );
        assert_eq!(
            r.check(src, &name("api.t."), RecordType::A, ResponseCode::NoError),
            Verdict::Send
        );
        // The same /24: still limited.
        assert_ne!(
            r.check(
                "198.51.100.200".parse().unwrap(),
                &name("www.t."),
                RecordType::A,
                ResponseCode::NoError
            ),
            Verdict::Send
        );
    }

    #[test]
    fn random_names_that_do_not_exist_share_one_bucket() {
        let r = rrl(5, 0);
        let src: IpAddr = "203.0.113.9".parse().unwrap();
        let sent = (0..50)
            .filter(|i| {
                r.check(
                    src,
                    &name(&format!("r{i}.t.")),
                    RecordType::A,
                    ResponseCode::NXDomain,
                ) == Verdict::Send
            })
            .count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_56() {
        let r = rrl(3, 0);
        let www = |src: &str| {
            r.check(
                src.parse().unwrap(),
                &name("www.t."),
                RecordType::AAAA,
                ResponseCode::NoError,
            )
        };
        let sent = ["2001:db8:0:1::1", "2001:db8:0:ff::2", "2001:db8:0:7::3"]
            .iter()
            .filter(|src| www(src) == Verdict::Send)
            .count();
        assert_eq!(sent, 3);
        assert_eq!(www("2001:db8:0:42::9"), Verdict::Drop);
        assert_eq!(www("2001:db8:0:100::1"), Verdict::Send);
    }

    #[test]
    fn exempt_sources_and_rate_zero_are_never_limited() {
        let always_sent = |r: &Rrl, source: &str| {
            (0..100).all(|_| {
                let verdict = r.check(
                    source.parse().unwrap(),
                    &name("a.t."),
                    RecordType::A,
                    ResponseCode::NoError,
                );
                verdict == Verdict::Send
            })
        };
        let r = rrl(1, 2);
        assert!(always_sent(&r, "127.90.1.1"));
        assert!(always_sent(&r, "::ffff:127.90.1.1"), "IPv4-mapped is IPv4");
        assert!(!always_sent(&r, "127.91.1.1"));
        assert!(always_sent(&rrl(0, 2), "198.51.100.1"));
    }
}
