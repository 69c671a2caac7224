//! Measured latency from mirrors (sites) to client sub-blocks.
//!
//! A measurement belongs to a mirror and a sub-block, not to a service: every
//! service that uses a mirror name shares what was measured from that site.

use std::collections::HashMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A mirror (site) across all services; stable for the life of the process.
pub type MirrorId = u16;

/// Seconds since the Unix epoch: all steering time is in whole seconds.
pub type Seconds = u64;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rtt {
    Ms(f32),
    /// No answer within the prober's timeout: unreachable from that mirror.
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

/// The weight of a new RTT in the moving average: a half, so two probes
/// carry a lasting change three quarters of the way.
const SMOOTHING: f32 = 0.5;
/// A new RTT this many times higher or lower than the average is a route
/// change, not noise: it replaces the average.
const ROUTE_CHANGE: f32 = 1.5;

/// One stored measurement: 12 bytes. A negative RTT is a timeout; time 0
/// marks an empty slot; the time fits 32 bits until 2106.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    rtt_ms: f32,
    time: u32,
    method: Method,
}

impl Slot {
    fn new(m: Measurement) -> Slot {
        Slot {
            rtt_ms: match m.rtt {
                Rtt::Ms(ms) => ms,
                Rtt::Timeout => -1.0,
            },
            time: u32::try_from(m.time).unwrap_or(u32::MAX).max(1),
            method: m.method,
        }
    }

    /// The slot after a newer measurement: a moving average of RTTs, so
    /// that noise in single probes does not switch answers, but a jump (the
    /// route changed) or a timeout (unreachable now) is taken as it is.
    fn followed_by(self, new: Slot) -> Slot {
        let (old, latest) = (self.rtt_ms, new.rtt_ms);
        let comparable = self.time != 0 && old > 0.0 && latest > 0.0;
        if !comparable || latest > old * ROUTE_CHANGE || latest < old / ROUTE_CHANGE {
            return new;
        }
        Slot {
            rtt_ms: old + SMOOTHING * (latest - old),
            ..new
        }
    }

    fn holds_rtt(self) -> bool {
        self.time != 0 && self.rtt_ms > 0.0
    }

    fn get(self) -> Option<Measurement> {
        (self.time != 0).then(|| Measurement {
            rtt: if self.rtt_ms < 0.0 {
                Rtt::Timeout
            } else {
                Rtt::Ms(self.rtt_ms)
            },
            time: Seconds::from(self.time),
            method: self.method,
        })
    }
}

/// Every sub-block's latest measurement from each mirror.
///
/// Laid out for millions of sub-blocks: an index from sub-block to row, and
/// one flat array of rows with a slot per mirror id. No allocation per
/// sub-block, no mirror id stored per slot; the price is empty slots where a
/// mirror never measured a sub-block (rows widen when a new mirror appears).
#[derive(Default)]
pub struct MeasurementStore {
    rows: HashMap<IpNet, u32>,
    stride: usize,
    slots: Vec<Slot>,
    /// Per row: when some mirror's active probe last got an RTT from the
    /// sub-block (0: never). Kept beside the slots because a passive RTT
    /// may replace the active one in its mirror's slot.
    answered: Vec<u32>,
}

/// One sub-block's row.
#[derive(Clone, Copy)]
pub struct BlockMeasurements<'a> {
    slots: &'a [Slot],
    answered: u32,
}

impl BlockMeasurements<'_> {
    pub fn get(&self, mirror: MirrorId) -> Option<Measurement> {
        self.slots.get(usize::from(mirror)).and_then(|s| s.get())
    }

    /// When an active probe of some mirror last got an answer from the
    /// sub-block, if one ever did: until then it is silent, and its
    /// timeouts say nothing about reachability.
    pub fn answered_active(&self) -> Option<Seconds> {
        (self.answered != 0).then_some(Seconds::from(self.answered))
    }
}

impl Measurement {
    /// An RTT that an active probe (not an access log) measured.
    pub fn is_active_reply(&self) -> bool {
        matches!(self.rtt, Rtt::Ms(_)) && self.method != Method::Passive
    }
}

impl MeasurementStore {
    /// Keeps the newer of the stored and the given measurement; an equal time
    /// replaces, so the later of two batches wins as it was applied.
    pub fn record(&mut self, block: IpNet, mirror: MirrorId, measurement: Measurement) {
        let column = usize::from(mirror);
        if column >= self.stride {
            self.widen(column + 1);
        }
        let next_row = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        let row = *self.rows.entry(block).or_insert(next_row) as usize;
        if row * self.stride >= self.slots.len() {
            self.slots.resize((row + 1) * self.stride, Slot::default());
            self.answered.resize(row + 1, 0);
        }
        let slot = &mut self.slots[row * self.stride + column];
        let new = Slot::new(measurement);
        if slot.holds_rtt() && new.rtt_ms < 0.0 && self.answered[row] < slot.time {
            // The sub-block answered no active probe since this RTT (an
            // access-log one, say) was taken: the timeout tells nothing
            // about it, only that the mirror tried again.
            slot.time = slot.time.max(new.time);
        } else if slot.time <= new.time {
            *slot = slot.followed_by(new);
        }
        if measurement.is_active_reply() {
            self.answered[row] = self.answered[row].max(new.time);
        }
    }

    pub fn get(&self, block: &IpNet) -> Option<BlockMeasurements<'_>> {
        let row = *self.rows.get(block)? as usize;
        let start = row * self.stride;
        Some(BlockMeasurements {
            slots: self.slots.get(start..start + self.stride)?,
            answered: self.answered.get(row).copied().unwrap_or(0),
        })
    }

    /// Every stored measurement: sub-block, mirror, measurement.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, MirrorId, Measurement)> + '_ {
        self.rows.iter().flat_map(move |(block, row)| {
            let start = *row as usize * self.stride;
            self.slots[start..start + self.stride]
                .iter()
                .enumerate()
                .filter_map(move |(mirror, slot)| {
                    Some((*block, MirrorId::try_from(mirror).ok()?, slot.get()?))
                })
        })
    }

    /// Drops measurements taken before `cutoff`, and sub-blocks left empty.
    pub fn compact(&mut self, cutoff: Seconds) {
        let mut kept = MeasurementStore::default();
        for (block, mirror, m) in self.iter().filter(|(_, _, m)| m.time >= cutoff) {
            kept.record(block, mirror, m);
        }
        for (block, row) in &kept.rows {
            let answered = self.get(block).and_then(|m| m.answered_active());
            kept.answered[*row as usize] = answered.map_or(0, |t| t as u32);
        }
        *self = kept;
    }

    fn widen(&mut self, stride: usize) {
        let rows = self.rows.len();
        let mut slots = vec![Slot::default(); rows * stride];
        for row in 0..rows {
            let old = &self.slots[row * self.stride..(row + 1) * self.stride];
            slots[row * stride..row * stride + self.stride].copy_from_slice(old);
        }
        self.slots = slots;
        self.stride = stride;
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
        store.record("203.0.113.0/24".parse().unwrap(), 0, at(7, 1.0));
        store.record(block, 5, at(9, 2.0)); // widens every row
        assert_eq!(store.get(&block).unwrap().get(1), Some(at(100, 10.0)));
        store.record(block, 1, at(100, 12.0));
        assert_eq!(
            store.get(&block).unwrap().get(1),
            Some(at(100, 11.0)),
            "averaged with the last"
        );
        store.record(block, 1, at(101, 50.0));
        assert_eq!(
            store.get(&block).unwrap().get(1),
            Some(at(101, 50.0)),
            "a jump replaces"
        );
        store.record(
            block,
            2,
            Measurement {
                rtt: Rtt::Timeout,
                ..at(101, 0.0)
            },
        );
        assert_eq!(
            store.get(&block).unwrap().get(2).map(|m| m.rtt),
            Some(Rtt::Timeout)
        );
        assert_eq!(store.get(&block).unwrap().get(3), None);
        assert_eq!(store.get(&block).unwrap().get(5), Some(at(9, 2.0)));
        assert_eq!(
            store
                .get(&"203.0.113.0/24".parse().unwrap())
                .unwrap()
                .get(0),
            Some(at(7, 1.0))
        );
    }
}
