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
    for g in groups {
        g.install(clusters, &old, inputs);
    }
    clusters.refresh_enclosing(root);
}

/// A cluster of the region being rebuilt: its prefix, sub-blocks and samples.
struct Group {
    prefix: IpNet,
    entries: Vec<Entry>,
    samples: Vec<BlockSamples>,
    ranking: Vec<MirrorId>,
    latency: Vec<f32>,
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
        }
        let mut exploring = false;
        if !self.ranking.is_empty() {
            for ((prefix, block, _), samples) in self.entries.iter_mut().zip(&self.samples) {
                exploring |= plan_exploration(*prefix, block, samples, &self.ranking, inputs);
            }
        }
        let queries = self.queries();
        let cluster = Cluster::rebuilt(
            self.entries,
            self.ranking,
            self.latency,
            same.map(|s| s.carry()),
            queries,
            exploring,
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
        .map(|g| (g.ranking.clone(), g.latency.clone()));
    let Some((ranking, latency)) = busiest else {
        return;
    };
    for g in groups.iter_mut().filter(|g| g.ranking.is_empty()) {
        if g.samples.iter().all(|s| !is_informed(s)) {
            g.ranking = ranking.clone();
            g.latency = latency.clone();
        }
    }
}

/// The answer the clients of `prefix` had: its own cluster's, else the
/// answer of the cluster that held it.
fn previous_answer(prefix: IpNet, old: &[(IpNet, OldState)]) -> Option<MirrorId> {
    old.iter()
        .filter(|(p, _)| p.contains(&prefix))
        .max_by_key(|(p, _)| p.prefix_len())
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
/// them: a timeout counts where the sub-block answered an active probe
/// within `max_age` of it, or where exploring a mirror brought nothing
/// back; a sub-block without a single RTT has no samples at all.
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
            match m.map(|m| (m.rtt, m.time)) {
                Some((Rtt::Ms(ms), _)) => Some(Sample {
                    rtt: Rtt::Ms(ms),
                    fresh,
                }),
                _ if failed & (1 << local) != 0 => Some(Sample {
                    rtt: Rtt::Timeout,
                    fresh: true,
                }),
                Some((Rtt::Timeout, at)) if answered.is_some_and(|a| a + config.max_age >= at) => {
                    Some(Sample {
                        rtt: Rtt::Timeout,
                        fresh,
                    })
                }
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

/// Whether `prefix` is silent now: no active probe of any mirror got an
/// answer from it within `max_age`.
fn is_silent(prefix: &IpNet, inputs: &Inputs) -> bool {
    let answered = inputs.store.get(prefix).and_then(|m| m.answered_active());
    answered.is_none_or(|a| a + inputs.config.max_age < inputs.now)
}

/// Sets up (or moves on, or ends) the exploration of a silent sub-block of
/// a decided cluster: answered with each mirror it lacks an RTT from, in the
/// cluster's order, [`EXPLORE_TRIES`] times each, so its clients bring the
/// RTT back through that mirror's access log. Returns whether it explores.
fn plan_exploration(
    prefix: IpNet,
    block: &mut Block,
    samples: &BlockSamples,
    ranking: &[MirrorId],
    inputs: &Inputs,
) -> bool {
    let config = inputs.config;
    let silent = inputs.passive != 0 && is_silent(&prefix, inputs);
    let lacking = |local: usize| {
        inputs.passive & (1 << local) != 0
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
    let answer = ranking.first().and_then(|id| config.local_index(*id));
    let next = ranking
        .iter()
        .filter_map(|id| config.local_index(*id))
        .filter(|local| Some(*local) != answer)
        .find(|local| silent && lacking(*local) && block.explore_failed() & (1 << local) == 0);
    let plan = next.and_then(|local| Some(Exploring::new(u8::try_from(local).ok()?, inputs.now)));
    let exploring = plan.is_some();
    block.set_exploring(plan);
    exploring
}
