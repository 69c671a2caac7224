//! Measured latency from mirrors (sites) to client sub-blocks.
//!
//! A measurement belongs to a mirror and a sub-block, not to a service: every
//! service that uses a mirror name shares what was measured from that site.

use std::collections::HashMap;

use ipnet::IpNet;

/// A mirror (site) across all services; stable for the life of the process.
pub type MirrorId = u16;

/// Seconds since the Unix epoch: all steering time is in whole seconds.
pub type Seconds = u64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rtt {
    Ms(f32),
    /// No answer within the prober's timeout: unreachable from that mirror.
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    Tcp,
    Icmp,
    Passive,
    #[default]
    Unspecified,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "tcp" => Some(Method::Tcp),
            "icmp" => Some(Method::Icmp),
            "passive" => Some(Method::Passive),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Method::Tcp => Some("tcp"),
            Method::Icmp => Some("icmp"),
            Method::Passive => Some("passive"),
            Method::Unspecified => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    pub rtt: Rtt,
    pub time: Seconds,
    pub method: Method,
}

impl Measurement {
    pub fn is_fresh(&self, now: Seconds, max_age: Seconds) -> bool {
        now.saturating_sub(self.time) <= max_age
    }
}

/// The latest measurement of each mirror for one sub-block, kept small
/// because there may be millions of sub-blocks.
#[derive(Clone, Debug, Default)]
pub struct BlockMeasurements {
    by_mirror: Vec<(MirrorId, Measurement)>,
}

impl BlockMeasurements {
    pub fn get(&self, mirror: MirrorId) -> Option<&Measurement> {
        self.by_mirror
            .iter()
            .find(|(m, _)| *m == mirror)
            .map(|(_, x)| x)
    }

    /// Keeps the newer of the stored and the given measurement; an equal time
    /// replaces, so the later of two batches wins as it was applied.
    fn record(&mut self, mirror: MirrorId, measurement: Measurement) {
        match self.by_mirror.iter_mut().find(|(m, _)| *m == mirror) {
            Some((_, existing)) if existing.time > measurement.time => {}
            Some((_, existing)) => *existing = measurement,
            None => self.by_mirror.push((mirror, measurement)),
        }
    }
}

/// Every sub-block's measurements, keyed by the sub-block prefix.
#[derive(Default)]
pub struct MeasurementStore {
    blocks: HashMap<IpNet, BlockMeasurements>,
}

impl MeasurementStore {
    pub fn record(&mut self, block: IpNet, mirror: MirrorId, measurement: Measurement) {
        self.blocks
            .entry(block)
            .or_default()
            .record(mirror, measurement);
    }

    pub fn get(&self, block: &IpNet) -> Option<&BlockMeasurements> {
        self.blocks.get(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: Seconds, ms: f32) -> Measurement {
        Measurement {
            rtt: Rtt::Ms(ms),
            time,
            method: Method::Tcp,
        }
    }

    #[test]
    fn an_older_measurement_never_replaces_a_newer_one() {
        let mut store = MeasurementStore::default();
        let block: IpNet = "198.51.100.0/24".parse().unwrap();
        store.record(block, 1, at(100, 10.0));
        store.record(block, 1, at(50, 99.0));
        assert_eq!(store.get(&block).unwrap().get(1), Some(&at(100, 10.0)));
        store.record(block, 1, at(100, 12.0));
        assert_eq!(store.get(&block).unwrap().get(1), Some(&at(100, 12.0)));
        assert_eq!(store.get(&block).unwrap().get(2), None);
    }
}
