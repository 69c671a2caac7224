//! What just changed in steering, for `GET /v1/events` and the status page:
//! a bounded ring of events, each with a sequence number that only grows.
//!
//! The engine owns the ring and records into it where the change happens:
//! `region` when a rebuild changes a region's clusters (a split or merge)
//! or a complete cluster's answer (a switch, with the latencies that
//! decided it), the load tick for its moves, drains and health changes as
//! they are set; the application records reloads. Readers copy out what
//! they ask for under a short lock; nothing here does I/O.

use std::collections::VecDeque;

use ipnet::IpNet;
use parking_lot::Mutex;

use super::measurements::{MirrorId, Seconds};
use super::region::Inputs;

/// Events kept; older ones fall off (a client asking from before them is
/// told how many it missed).
pub const CAPACITY: usize = 4096;
/// Prefixes listed per split or merge at most (the totals are exact), so
/// that one rebuild of a large region cannot make an event of megabytes.
pub const MAX_LISTED: usize = 32;

/// One event with its place in the sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1 for the first event since the server started, then one more each.
    pub seq: u64,
    /// Unix seconds, as of the change (a replayed measurement's own time).
    pub time: Seconds,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A rebuild of a region gave it more (or narrower) clusters.
    Split(Regroup),
    /// A rebuild gave a region fewer (or wider) clusters.
    Merge(Regroup),
    /// A complete cluster's answer changed.
    Switch {
        service: String,
        cluster: IpNet,
        /// The mirror answered before, and its latency as the new decision sees it.
        from: Option<Choice>,
        /// The mirror answered now (none: the cluster lost its measurements).
        to: Option<Choice>,
    },
    /// The load tick moved a cluster off a mirror over capacity, or back.
    LoadMove {
        service: String,
        cluster: IpNet,
        from: String,
        to: String,
        back: bool,
        qps: f64,
    },
    /// A mirror's health checks failed (`healthy: false`) or passed again.
    Health { mirror: String, healthy: bool },
    /// An operator drained or undrained a mirror.
    Drain { mirror: String, drained: bool },
    /// The zones were reloaded: the counts, or why the reload was refused.
    Reload {
        trigger: String,
        outcome: Result<(usize, usize), String>,
    },
}

/// The clusters of a region before and after a rebuild that changed them.
#[derive(Clone, Debug, PartialEq)]
pub struct Regroup {
    pub service: String,
    /// The root of the rebuilt region.
    pub region: IpNet,
    /// Prefixes new to the table (at most [`MAX_LISTED`]).
    pub added: Vec<IpNet>,
    /// Prefixes gone from it (at most [`MAX_LISTED`]).
    pub removed: Vec<IpNet>,
    pub added_total: usize,
    pub removed_total: usize,
}

/// A mirror and its latency for the cluster (`None`: unreachable or unmeasured).
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub mirror: String,
    pub rtt_ms: Option<f64>,
}

/// What a reader gets: the events after its `since`, and where the ring stands.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The oldest sequence number held (0: nothing recorded yet).
    pub first: u64,
    /// The newest sequence number given out (0: nothing recorded yet).
    pub last: u64,
    /// Events after `since` that have fallen off the ring.
    pub missed: u64,
}

/// The ring. Recording takes a short lock of its own, never held while
/// anything else is locked by it.
pub struct EventLog {
    ring: Mutex<Ring>,
}

struct Ring {
    events: VecDeque<Event>,
    last: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(CAPACITY),
                last: 0,
            }),
        }
    }
}

impl EventLog {
    /// Appends an event, dropping the oldest when the ring is full.
    pub fn record(&self, time: Seconds, kind: EventKind) {
        let mut ring = self.ring.lock();
        ring.last += 1;
        let seq = ring.last;
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(Event { seq, time, kind });
    }

    /// The events with a sequence number above `since`, oldest first, at
    /// most `limit` of them.
    pub fn since(&self, since: u64, limit: usize) -> EventPage {
        let ring = self.ring.lock();
        let first = ring.events.front().map_or(0, |e| e.seq);
        // Every number in (since, first) was given out and is gone.
        let missed = if first > 0 {
            first.saturating_sub(since.saturating_add(1))
        } else {
            0
        };
        let start = ring.events.partition_point(|e| e.seq <= since);
        let events = ring.events.range(start..).take(limit).cloned().collect();
        EventPage {
            events,
            first,
            last: ring.last,
            missed,
        }
    }
}

/// After `region` rebuilt the region at `root`: a split or merge when the
/// set of its cluster prefixes changed.
pub(super) fn regrouped(
    inputs: &Inputs,
    root: IpNet,
    before: impl Iterator<Item = IpNet>,
    after: &[IpNet],
) {
    let Some(log) = inputs.events else {
        return;
    };
    let before: Vec<IpNet> = before.collect();
    let mut added: Vec<IpNet> = after
        .iter()
        .filter(|p| !before.contains(p))
        .copied()
        .collect();
    let mut removed: Vec<IpNet> = before.into_iter().filter(|p| !after.contains(p)).collect();
    if added.is_empty() && removed.is_empty() {
        return;
    }
    added.sort();
    removed.sort();
    // More clusters, or as many but narrower: a split.
    let shortest = |ps: &[IpNet]| ps.iter().map(IpNet::prefix_len).min().unwrap_or(0);
    let split = added.len() > removed.len()
        || (added.len() == removed.len() && shortest(&added) > shortest(&removed));
    let (added_total, removed_total) = (added.len(), removed.len());
    added.truncate(MAX_LISTED);
    removed.truncate(MAX_LISTED);
    let regroup = Regroup {
        service: inputs.config.name.clone(),
        region: root,
        added,
        removed,
        added_total,
        removed_total,
    };
    let kind = if split {
        EventKind::Split(regroup)
    } else {
        EventKind::Merge(regroup)
    };
    log.record(inputs.now, kind);
}

/// A complete cluster's answer changed from `from` to the first of
/// `ranking`; `latency` holds the ranking's latencies, in its order.
pub(super) fn switched(
    inputs: &Inputs,
    cluster: IpNet,
    from: Option<MirrorId>,
    ranking: &[MirrorId],
    latency: &[f32],
) {
    let Some(log) = inputs.events else {
        return;
    };
    let config = inputs.config;
    let choice = |id: MirrorId| {
        let name = config.mirror_names.get(config.local_index(id)?)?.clone();
        let ms = ranking
            .iter()
            .position(|r| *r == id)
            .and_then(|at| latency.get(at))
            .filter(|ms| ms.is_finite())
            .map(|ms| (f64::from(*ms) * 1000.0).round() / 1000.0);
        Some(Choice {
            mirror: name,
            rtt_ms: ms,
        })
    };
    let kind = EventKind::Switch {
        service: config.name.clone(),
        cluster,
        from: from.and_then(choice),
        to: ranking.first().and_then(|id| choice(*id)),
    };
    log.record(inputs.now, kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(n: usize) -> EventKind {
        EventKind::Drain {
            mirror: format!("m{n}"),
            drained: true,
        }
    }

    #[test]
    fn a_reader_gets_what_came_after_its_number_and_how_much_it_missed() {
        let log = EventLog::default();
        assert_eq!(
            log.since(0, 10),
            EventPage {
                events: Vec::new(),
                first: 0,
                last: 0,
                missed: 0
            }
        );
        for n in 0..CAPACITY + 10 {
            log.record(n as u64, drain(n));
        }
        let page = log.since(0, usize::MAX);
        assert_eq!(page.events.len(), CAPACITY, "the ring is bounded");
        assert_eq!((page.first, page.last, page.missed), (11, 4106, 10));
        assert_eq!(page.events[0].seq, 11);
        assert!(page.events.windows(2).all(|w| w[0].seq + 1 == w[1].seq));

        let page = log.since(4100, 2);
        assert_eq!(page.missed, 0);
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4101, 4102], "oldest first, at most the limit");
        assert_eq!(log.since(10, 1).missed, 0, "10 is the last one gone");
        assert_eq!(log.since(4106, 5).events, []);
        assert_eq!(log.since(u64::MAX, 5).missed, 0);
    }
}
