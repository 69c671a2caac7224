//! Response rate limiting for UDP, as Knot's and BIND's RRL: a token bucket
//! per client prefix (/24, /56) and response. Over the limit a response is
//! dropped, except every `slip`-th, which goes out as an empty TC=1 answer so
//! a real client behind a spoofed flood can still retry over TCP.
//!
//! Responses are grouped as BIND groups them: positive answers by name and
//! type, NXDOMAIN by type alone (a flood of random names is one flood),
//! errors together.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use ipnet::IpNet;
use parking_lot::Mutex;

/// Buckets kept at most; beyond it idle ones are forgotten first.
const MAX_BUCKETS: usize = 1 << 20;

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

pub struct Rrl {
    config: RrlConfig,
    started: Instant,
    buckets: Mutex<HashMap<u64, Bucket>>,
    pub dropped: AtomicU64,
    pub slipped: AtomicU64,
}

impl Rrl {
    pub fn new(config: RrlConfig) -> Rrl {
        Rrl {
            config,
            started: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            slipped: AtomicU64::new(0),
        }
    }

    /// Whether responses to `source` are rate limited at all.
    pub fn limits(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        self.config.rate != 0 && !self.config.exempt.iter().any(|n| n.contains(&source))
    }

    /// Whether a response to `source` may go out.
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
        let source = source.to_canonical();
        let key = bucket_key(source, qname, qtype, rcode);
        let now = self.started.elapsed().as_secs_f64();
        let rate = f64::from(self.config.rate);
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
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
}

/// The client's /24 or /56 and the response's group, hashed.
/// `qname` is the name in lowercase wire form.
fn bucket_key(source: IpAddr, qname: &[u8], qtype: RecordType, rcode: ResponseCode) -> u64 {
    let prefix = match source {
        IpAddr::V4(_) => IpNet::new(source, 24),
        IpAddr::V6(_) => IpNet::new(source, 56),
    }
    .map(|n| n.trunc())
    .unwrap_or_else(|_| IpNet::from(source));
    let mut h = DefaultHasher::new();
    prefix.hash(&mut h);
    match rcode {
        ResponseCode::NoError => {
            qname.hash(&mut h);
            u16::from(qtype).hash(&mut h);
        }
        ResponseCode::NXDomain => {
            "nxdomain".hash(&mut h);
            u16::from(qtype).hash(&mut h);
        }
        _ => "error".hash(&mut h),
    }
    h.finish()
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
    fn exempt_sources_and_rate_zero_are_never_limited() {
        let r = rrl(1, 2);
        assert!((0..100).all(|_| r.check(
            "127.90.1.1".parse().unwrap(),
            &name("a.t."),
            RecordType::A,
            ResponseCode::NoError
        ) == Verdict::Send));
        let off = rrl(0, 2);
        assert!((0..100).all(|_| off.check(
            "198.51.100.1".parse().unwrap(),
            &name("a.t."),
            RecordType::A,
            ResponseCode::NoError
        ) == Verdict::Send));
    }
}
