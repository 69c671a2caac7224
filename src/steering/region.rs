//! Re-deciding a root region of a service's table from what is known of its
//! sub-blocks. A root is where clusters start: the longest listed prefix
//! holding an address, else its initial-length prefix. Every cluster inside
//! a root region (the root itself and the parts split from it) is rebuilt
//! from the region's sub-blocks at once, so the clusters are a function of
//! the measurements and queries, not of the order they came in.
//!
//! The rules, applied here and nowhere else:
//! - what a sub-block's measurements tell ([`block_samples`]): a timeout
//!   says "unreachable from this mirror" only where the sub-block answered
//!   some mirror's active probe; a silent sub-block's timeouts say nothing;
//! - when a region is complete, its parts (`Policy::carve`), and each
//!   cluster's ranking, with hysteresis for the answer it had;
//! - a cluster that holds no measured sub-block takes the choice of the
//!   busiest cluster of its region, never a tie by name;
//! - which silent sub-blocks to explore, with which mirror, and when an
//!   exploration counts as failed.

use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::decision::{BlockSamples, Sample, Score, Strictness};
use super::events::{self, EventLog};
use super::measurements::{MeasurementStore, MirrorId, Rtt, Seconds};
use super::table::{Block, Cluster, Clusters, Entry, Exploring, ServiceConfig};
use crate::zone::Family;

/// Exploration answers for one mirror before its silence counts against it.
pub const EXPLORE_TRIES: u32 = 3;
/// How long after an exploration starts a missing passive RTT may still
/// arrive: resolvers cache the answer for the service's TTL, then the
/// clients fetch, then the agent posts its window's medians.
pub const EXPLORE_PATIENCE: Seconds = 120;

/// What re-deciding needs besides the table.
pub struct Inputs<'a> {
    pub config: &'a ServiceConfig,
    pub store: &'a MeasurementStore,
    pub now: Seconds,
    /// Local mask of the mirrors whose agents post passive RTTs: only they
    /// are explored, so a deployment without access-log agents pays nothing.
    pub passive: u64,
    /// Where splits, merges and switches are recorded (none: not recorded).
    pub events: Option<&'a EventLog>,
}

/// What a cluster of the region was before, for hysteresis and continuity.
struct Before {
    prefix: IpNet,
    cluster: Cluster,
}

/// Rebuilds every cluster of the region rooted at `root`.
pub fn redecide(clusters: &mut Clusters, inputs: &Inputs, root: IpNet) {
    let before: Vec<Before> = clusters
        .region(root, inputs.config)
        .into_iter()
        .filter_map(|prefix| {
            let cluster = clusters.remove(&prefix)?;
            Some(Before { prefix, cluster })
        })
        .collect();
    let was_complete = before.iter().any(|b| b.cluster.is_complete());
    let mut entries: Vec<Entry> = Vec::new();
    let mut old: Vec<(IpNet, OldState)> = Vec::new();
    for b in before {
        let (state, blocks) = OldState::take(b.cluster);
        entries.extend(blocks);
        old.push((b.prefix, state));
    }
    if entries.is_empty() {
        return;
    }
    entries.sort_by_key(|(prefix, _, _)| *prefix);
    let samples: Vec<BlockSamples> = entries
        .iter()
        .map(|(prefix, block, _)| block_samples(*prefix, block, inputs))
        .collect();
    let policy = inputs.config.policy();
    let informed: Vec<&BlockSamples> = samples.iter().filter(|s| is_informed(s)).collect();
    let complete = was_complete || policy.is_complete(&informed);
    let parts = if complete {
        let best = policy.rank(&policy.scores(&informed), None)[0];
        let block_len = inputs.config.block_len(Family::of(root.addr()));
        let existed = |p: &IpNet| old.iter().any(|(q, _)| q == p);
        policy.carve(root, block_len, &informed, best, &|p| {
            if existed(p) {
                Strictness::Merge
            } else {
                Strictness::Split
            }
        })
    } else {
        Vec::new()
    };
    let mut groups = group(root, parts, entries, samples);
    for g in &mut groups {
        g.decide(complete, &old, inputs);
    }
    adopt_busiest_choice(&mut groups);
    keep_answers_of_the_unmeasured(&mut groups, &old);
    let after: Vec<IpNet> = groups.iter().map(|g| g.prefix).collect();
    for g in groups {
        g.install(clusters, &old, inputs);
    }
    events::regrouped(inputs, root, old.iter().map(|(p, _)| *p), &after);
    clusters.refresh_enclosing(root);
}

/// A cluster of the region being rebuilt: its prefix, sub-blocks and samples.
struct Group {
    prefix: IpNet,
    entries: Vec<Entry>,
    samples: Vec<BlockSamples>,
    ranking: Vec<MirrorId>,
    latency: Vec<f32>,
    /// Local mask of the mirrors that cannot reach the group's measured
    /// sub-blocks: not worth exploring for its silent ones.
    unreachable: u64,
    /// `ranking` is another group's (see [`adopt_busiest_choice`]).
    borrowed: bool,
}

/// Hands each sub-block to the longest of `root` and `parts` that holds it;
/// groups left without sub-blocks are dropped (no cluster is ever empty).
fn group(
    root: IpNet,
    parts: Vec<IpNet>,
    entries: Vec<Entry>,
    samples: Vec<BlockSamples>,
) -> Vec<Group> {
    let mut groups: Vec<Group> = std::iter::once(root)
        .chain(parts)
        .map(|prefix| Group {
            prefix,
            entries: Vec::new(),
            samples: Vec::new(),
            ranking: Vec::new(),
            latency: Vec::new(),
            unreachable: 0,
            borrowed: false,
        })
        .collect();
    for (entry, sample) in entries.into_iter().zip(samples) {
        let home = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.prefix.contains(&entry.0))
            .max_by_key(|(_, g)| g.prefix.prefix_len())
            .map_or(0, |(i, _)| i);
        groups[home].entries.push(entry);
        groups[home].samples.push(sample);
    }
    groups.retain(|g| !g.entries.is_empty());
    groups
}

impl Group {
    /// Ranks the group's mirrors from its own measured sub-blocks; the
    /// answer it had before stays unless clearly beaten.
    fn decide(&mut self, complete: bool, old: &[(IpNet, OldState)], inputs: &Inputs) {
        if !complete {
            return;
        }
        let informed: Vec<&BlockSamples> = self.samples.iter().filter(|s| is_informed(s)).collect();
        if informed.is_empty() {
            return;
        }
        let config = inputs.config;
        let policy = config.policy();
        let scores = policy.scores(&informed);
        let current = previous_answer(self.prefix, old).and_then(|id| config.local_index(id));
        let order = policy.rank(&scores, current);
        self.ranking = order.iter().map(|m| config.mirror_ids[*m]).collect();
        self.unreachable = (0..scores.len())
            .filter(|m| scores[*m] == Score::Timeout)
            .fold(0, |mask, m| mask | 1 << m);
        self.latency = order
            .iter()
            .map(|m| match scores[*m] {
                Score::Ms(ms) => ms as f32,
                _ => f32::INFINITY,
            })
            .collect();
    }

    fn queries(&self) -> u64 {
        self.entries
            .iter()
            .map(|(_, _, a)| u64::from(a.queries.load(Ordering::Relaxed)))
            .sum()
    }

    /// Puts the group into the table as a cluster, with what its prefix
    /// carried before (round robin turns, offload), and its explorations.
    fn install(mut self, clusters: &mut Clusters, old: &[(IpNet, OldState)], inputs: &Inputs) {
        let same = old.iter().find(|(p, _)| *p == self.prefix).map(|(_, s)| s);
        if same.is_some_and(|s| s.complete && s.answer() != self.ranking.first().copied()) {
            clusters
                .quality()
                .answer_changes
                .fetch_add(1, Ordering::Relaxed);
            let from = same.and_then(OldState::answer);
            events::switched(inputs, self.prefix, from, &self.ranking, &self.latency);
        }
        let mut exploring = false;
        for ((prefix, block, _), samples) in self.entries.iter_mut().zip(&self.samples) {
            let learning_order;
            let plan = if self.ranking.is_empty() {
                learning_order = rotated_mirrors(prefix, inputs.config);
                Plan {
                    ranking: &learning_order,
                    decided: false,
                    unreachable: 0,
                }
            } else {
                Plan {
                    ranking: &self.ranking,
                    decided: true,
                    unreachable: self.unreachable,
                }
            };
            exploring |= plan_exploration(*prefix, block, samples, &plan, inputs);
        }
        let queries = self.queries();
        let cluster = Cluster::rebuilt(
            self.entries,
            self.ranking,
            self.latency,
            same.map(|s| s.carry()),
            queries,
            exploring,
            self.borrowed,
        );
        clusters.insert(self.prefix, cluster);
    }
}

/// A cluster with no measured sub-block of its own answers as the busiest
/// measured cluster of its region: the nearest evidence, never a name.
fn adopt_busiest_choice(groups: &mut [Group]) {
    let busiest = groups
        .iter()
        .filter(|g| !g.ranking.is_empty())
        .max_by_key(|g| (g.queries(), std::cmp::Reverse(g.prefix)))
        .map(|g| (g.ranking.clone(), g.latency.clone(), g.unreachable));
    let Some((ranking, latency, unreachable)) = busiest else {
        return;
    };
    for g in groups.iter_mut().filter(|g| g.ranking.is_empty()) {
        if g.samples.iter().all(|s| !is_informed(s)) {
            g.ranking = ranking.clone();
            g.latency = latency.clone();
            g.unreachable = unreachable;
            g.borrowed = true;
        }
    }
}

/// A decided cluster whose measurements all aged out of the store, with no
/// decided cluster in its region to follow, keeps the ranking it had: it
/// never falls back to round robin.
fn keep_answers_of_the_unmeasured(groups: &mut [Group], old: &[(IpNet, OldState)]) {
    for g in groups.iter_mut().filter(|g| g.ranking.is_empty()) {
        if let Some((_, before)) = old.iter().find(|(p, _)| *p == g.prefix) {
            g.ranking = before.ranking.clone();
            g.borrowed = before.carried.borrowed;
        }
    }
}

/// The answer the cluster at `prefix` had, which hysteresis keeps. A part
/// new to the table has none: it was carved out because the answer around
/// it does not suit it. Nor does a cluster that answered as its region's
/// busiest: whether it existed then depended on which queries came first.
fn previous_answer(prefix: IpNet, old: &[(IpNet, OldState)]) -> Option<MirrorId> {
    old.iter()
        .find(|(p, _)| *p == prefix)
        .filter(|(_, s)| !s.carried.borrowed)
        .and_then(|(_, s)| s.answer())
}

/// What of a cluster outlives its rebuilding.
pub struct OldState {
    ranking: Vec<MirrorId>,
    complete: bool,
    carried: Carried,
}

/// Kept for a cluster whose prefix survives a rebuild.
pub struct Carried {
    pub offload: Option<MirrorId>,
    pub queries_at_tick: u64,
    pub sent: u64,
    pub turn: usize,
    pub borrowed: bool,
}

impl OldState {
    fn take(cluster: Cluster) -> (OldState, Vec<Entry>) {
        let complete = cluster.is_complete();
        let (ranking, carried, entries) = cluster.dismantle();
        (
            OldState {
                ranking,
                complete,
                carried,
            },
            entries,
        )
    }

    fn answer(&self) -> Option<MirrorId> {
        self.ranking.first().copied()
    }

    fn carry(&self) -> &Carried {
        &self.carried
    }
}

/// Whether a sub-block's samples tell anything: at least one RTT. A
/// sub-block that every mirror timed out on is silent whatever else it
/// did, and answers are never chosen by a name tie between timeouts.
pub fn is_informed(samples: &BlockSamples) -> bool {
    samples.samples.iter().any(|s| {
        matches!(
            s,
            Some(Sample {
                rtt: Rtt::Ms(_),
                ..
            })
        )
    })
}

/// The samples of `prefix` for the service's mirrors, as the rules read
/// them: a timeout counts where the sub-block answered some mirror's active
/// probe, or where exploring a mirror brought nothing back; a sub-block
/// without a single RTT has no samples at all.
pub fn block_samples(prefix: IpNet, block: &Block, inputs: &Inputs) -> BlockSamples {
    let config = inputs.config;
    let measured = inputs.store.get(&prefix);
    let answered = measured.and_then(|m| m.answered_active());
    let failed = block.explore_failed();
    let samples: Vec<Option<Sample>> = config
        .mirror_ids
        .iter()
        .enumerate()
        .map(|(local, id)| {
            let m = measured.and_then(|m| m.get(*id));
            let fresh = m.is_some_and(|m| m.is_fresh(inputs.now, config.max_age));
            match m.map(|m| m.rtt) {
                Some(Rtt::Ms(ms)) => Some(Sample {
                    rtt: Rtt::Ms(ms),
                    fresh,
                }),
                _ if failed & (1 << local) != 0 => Some(Sample {
                    rtt: Rtt::Timeout,
                    fresh: true,
                }),
                Some(Rtt::Timeout) if answered.is_some() => Some(Sample {
                    rtt: Rtt::Timeout,
                    fresh,
                }),
                _ => None,
            }
        })
        .collect();
    let mut samples = BlockSamples {
        block: prefix,
        samples,
    };
    if !is_informed(&samples) {
        samples.samples.iter_mut().for_each(|s| *s = None);
    }
    samples
}

/// Whether `prefix` is silent: no active probe of any mirror ever got an
/// answer from it. Once one did, the target is a real host and timeouts
/// from other mirrors mean what they say, even where the mirror that
/// answered is kept fresh by its access log rather than probed again.
fn is_silent(prefix: &IpNet, inputs: &Inputs) -> bool {
    inputs
        .store
        .get(prefix)
        .and_then(|m| m.answered_active())
        .is_none()
}

/// The order a cluster explores in, and the mirrors it skips.
struct Plan<'a> {
    ranking: &'a [MirrorId],
    /// The cluster answers the first of `ranking`, which needs no exploring.
    decided: bool,
    unreachable: u64,
}

/// The service's mirrors starting at one that depends on the sub-block, so
/// that the silent sub-blocks of a learning cluster, explored instead of
/// answered round robin, spread over the mirrors as round robin would.
fn rotated_mirrors(prefix: &IpNet, config: &ServiceConfig) -> Vec<MirrorId> {
    let ids = &config.mirror_ids;
    if ids.is_empty() {
        return Vec::new();
    }
    let bits = match prefix {
        IpNet::V4(n) => u128::from(u32::from(n.addr())) >> (32 - n.prefix_len().min(32)),
        IpNet::V6(n) => u128::from(n.addr()) >> (128 - n.prefix_len().clamp(1, 128)),
    };
    let start = (bits % ids.len() as u128) as usize;
    ids[start..].iter().chain(&ids[..start]).copied().collect()
}

/// Sets up (or moves on, or ends) the exploration of a silent sub-block of
/// a decided cluster: answered with each mirror it lacks an RTT from, in the
/// cluster's order, [`EXPLORE_TRIES`] times each, so its clients bring the
/// RTT back through that mirror's access log. Mirrors that cannot reach the
/// cluster's measured sub-blocks are skipped. A learning cluster's silent
/// sub-blocks are explored too, each from a mirror of its own: for a
/// cluster that nothing answers but clients, that is how it completes, a
/// mirror that brings no RTT back counting as unreachable. Returns whether
/// it explores.
fn plan_exploration(
    prefix: IpNet,
    block: &mut Block,
    samples: &BlockSamples,
    plan: &Plan,
    inputs: &Inputs,
) -> bool {
    let config = inputs.config;
    let silent = inputs.passive != 0 && is_silent(&prefix, inputs);
    let lacking = |local: usize| {
        inputs.passive & !plan.unreachable & (1 << local) != 0
            && !matches!(
                samples.samples[local],
                Some(Sample {
                    rtt: Rtt::Ms(_),
                    ..
                })
            )
    };
    if let Some(current) = block.exploring() {
        let local = usize::from(current.mirror);
        if silent && lacking(local) && block.explore_failed() & (1 << local) == 0 {
            let tried = current.answered.load(Ordering::Relaxed) >= EXPLORE_TRIES;
            if !tried || inputs.now < current.since + EXPLORE_PATIENCE {
                return true;
            }
            block.mark_explore_failed(local);
        }
    }
    let answer = plan
        .ranking
        .first()
        .filter(|_| plan.decided)
        .and_then(|id| config.local_index(*id));
    let next = plan
        .ranking
        .iter()
        .filter_map(|id| config.local_index(*id))
        .filter(|local| Some(*local) != answer)
        .find(|local| silent && lacking(*local) && block.explore_failed() & (1 << local) == 0);
    let started =
        next.and_then(|local| Some(Exploring::new(u8::try_from(local).ok()?, inputs.now)));
    let exploring = started.is_some();
    block.set_exploring(started);
    exploring
}
