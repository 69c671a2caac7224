//! One service's clusters: an IPv4 and an IPv6 prefix trie, longest match
//! wins. Owns each `Cluster` (its sub-blocks, ranking and learning turns),
//! creating clusters around new clients, the ECS scope of an answer,
//! evicting sub-blocks at `--max-blocks`, and counting answers and their
//! quality.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use super::answer::Decision;
use super::blocks::{Activity, Block, Blocks, Entry, Exploring};
use super::config::ServiceConfig;
use crate::steering::measurements::{MeasurementStore, MirrorId};
use crate::steering::region::Carried;

/// A set of clients answered alike.
#[derive(Debug, Default)]
pub struct Cluster {
    pub blocks: Blocks,
    /// Mirrors best first; empty while the cluster is learning.
    pub ranking: Vec<MirrorId>,
    /// Local mirror indexes answered while learning, so each gets a turn
    /// before any gets a second.
    pub(super) sent: AtomicU64,
    pub(super) turn: AtomicUsize,
    /// Some cluster may lie inside this one (parts were split off, or it was
    /// created around existing ones): answers then need a narrower scope.
    /// Looking that up in the trie on every query would cost more than the
    /// rest of the decision.
    may_enclose: bool,
    /// Moved off its best mirror to this one while that was over capacity.
    pub offload: Option<MirrorId>,
    /// The cluster's query count at the last load tick.
    pub queries_at_tick: u64,
    /// The latency of each mirror of `ranking`, in the same order, as of
    /// the last decision (infinite: unreachable or unmeasured).
    pub latency: Vec<f32>,
    /// Some sub-block is being explored: only then does an answer look
    /// beyond the sub-block's counters.
    pub(super) exploring: bool,
    /// The ranking is its region's busiest cluster's, not its own: no
    /// hysteresis holds it once the cluster has measurements of its own.
    borrowed: bool,
}

impl Cluster {
    pub fn is_complete(&self) -> bool {
        !self.ranking.is_empty()
    }

    pub fn may_enclose(&self) -> bool {
        self.may_enclose
    }

    /// The exploration of sub-block `block`, if it is explored.
    pub(in crate::steering) fn exploration_of(&self, block: &IpNet) -> Option<&Exploring> {
        self.blocks.find(block)?.0.exploring()
    }

    /// A cluster as a state snapshot kept it; `blocks` in any order.
    pub fn restored(
        ranking: Vec<MirrorId>,
        may_enclose: bool,
        blocks: Vec<(IpNet, Option<IpNet>, u32)>,
    ) -> Cluster {
        let mut entries: Vec<Entry> = blocks
            .into_iter()
            .map(|(prefix, target, queries)| {
                (
                    prefix,
                    Block::restored(target),
                    Activity::with_queries(queries),
                )
            })
            .collect();
        entries.sort_by_key(|(prefix, _, _)| *prefix);
        entries.dedup_by(|(a, _, _), (b, _, _)| a == b);
        Cluster {
            blocks: Blocks::new(entries),
            ranking,
            may_enclose,
            ..Cluster::default()
        }
    }

    /// A cluster as `region` rebuilt it, carrying what its prefix had.
    pub(in crate::steering) fn rebuilt(
        entries: Vec<Entry>,
        ranking: Vec<MirrorId>,
        latency: Vec<f32>,
        carried: Option<&Carried>,
        queries: u64,
        exploring: bool,
        borrowed: bool,
    ) -> Cluster {
        let mut cluster = Cluster {
            blocks: Blocks::new(entries),
            ranking,
            latency,
            exploring,
            borrowed,
            queries_at_tick: queries,
            ..Cluster::default()
        };
        if let Some(c) = carried {
            cluster.offload = c.offload.filter(|_| !cluster.ranking.is_empty());
            cluster.queries_at_tick = c.queries_at_tick;
            cluster.sent = AtomicU64::new(c.sent);
            cluster.turn = AtomicUsize::new(c.turn);
        }
        cluster
    }

    /// Takes the cluster apart for `region` to rebuild.
    pub(in crate::steering) fn dismantle(self) -> (Vec<MirrorId>, Carried, Vec<Entry>) {
        let carried = Carried {
            offload: self.offload,
            queries_at_tick: self.queries_at_tick,
            sent: self.sent.into_inner(),
            turn: self.turn.into_inner(),
            borrowed: self.borrowed,
        };
        (self.ranking, carried, self.blocks.into_entries())
    }
}

/// Both tries of a service.
#[derive(Default)]
pub struct Clusters {
    v4: PrefixMap<Ipv4Net, Cluster>,
    v6: PrefixMap<Ipv6Net, Cluster>,
    /// Answers given, by mirror id: counted here, under the lock every
    /// decision already holds.
    answered: Vec<AtomicU64>,
    quality: Quality,
    /// Sub-blocks held, and the most allowed (`serve --max-blocks`).
    pub(super) blocks_total: usize,
    max_blocks: usize,
    /// Counts load ticks: the clock of `Block::last_tick`.
    pub tick: u32,
}

/// Eviction brings the table down to this share of `--max-blocks`, so it
/// runs once per tenth of the cap, not on every new sub-block.
const EVICT_TO: f64 = 0.9;

/// How good the answers are, as far as the table knows (SPEC: a server that
/// can say how good its answers are).
#[derive(Default)]
pub struct Quality {
    /// Answers from complete clusters, and from learning ones.
    pub complete: AtomicU64,
    pub learning: AtomicU64,
    /// Answers from complete clusters with their measured-fastest mirror.
    pub best: AtomicU64,
    /// Sum over answers of (answered mirror's RTT - fastest mirror's RTT), in µs.
    pub regret_us: AtomicU64,
    /// Complete clusters whose best mirror changed.
    pub answer_changes: AtomicU64,
    /// Answers that explored a silent sub-block.
    pub explored: AtomicU64,
}

impl Clusters {
    /// Marks the sub-blocks `store` holds measurements for (after a restore).
    pub fn mark_measured(&mut self, store: &MeasurementStore) {
        for (_, cluster) in self.iter_mut() {
            for (prefix, block) in cluster.blocks.iter_mut() {
                block.measured = store.get(prefix).is_some();
            }
        }
    }

    pub fn set_max_blocks(&mut self, max: usize) {
        self.max_blocks = max.max(1);
    }

    /// Counts the sub-blocks again (after a restore).
    pub fn recount(&mut self) {
        self.blocks_total = self.iter().map(|(_, c)| c.blocks.len()).sum();
    }

    /// Makes room for one more sub-block: at the cap, drops the sub-blocks
    /// that matter least (never measured first, then least recently and
    /// least often queried) down to [`EVICT_TO`] of it, and the learning
    /// clusters left empty.
    pub(super) fn make_room(&mut self) {
        if self.blocks_total < self.max_blocks {
            return;
        }
        let keep = (self.max_blocks as f64 * EVICT_TO) as usize;
        let mut all: Vec<(bool, u32, u32, IpNet, IpNet)> = self
            .iter()
            .flat_map(|(prefix, c)| {
                c.blocks.iter().map(move |(b, info, activity)| {
                    (
                        info.measured,
                        activity.last_tick.load(Ordering::Relaxed),
                        activity.queries.load(Ordering::Relaxed),
                        prefix,
                        *b,
                    )
                })
            })
            .collect();
        all.sort_unstable();
        let mut doomed: std::collections::BTreeMap<IpNet, Vec<IpNet>> =
            std::collections::BTreeMap::new();
        for (_, _, _, cluster, block) in
            all.into_iter().take(self.blocks_total.saturating_sub(keep))
        {
            doomed.entry(cluster).or_default().push(block);
        }
        for (prefix, mut blocks) in doomed {
            blocks.sort_unstable();
            let Some(cluster) = self.get_mut(&prefix) else {
                continue;
            };
            let removed = cluster.blocks.remove_sorted(&blocks);
            let empty = cluster.blocks.len() == 0;
            self.blocks_total -= removed;
            if empty {
                self.remove(&prefix);
            }
        }
    }

    /// Makes room to count answers for mirror ids below `mirrors`.
    pub fn count_mirrors(&mut self, mirrors: usize) {
        while self.answered.len() < mirrors {
            self.answered.push(AtomicU64::new(0));
        }
    }

    pub(super) fn count_answer(
        &self,
        decision: &Decision,
        config: &ServiceConfig,
        cluster: &Cluster,
    ) {
        let Some(id) = decision.mirror.and_then(|m| config.mirror_ids.get(m)) else {
            return;
        };
        if let Some(counter) = self.answered.get(usize::from(*id)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if !cluster.is_complete() {
            self.quality.learning.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.quality.complete.fetch_add(1, Ordering::Relaxed);
        if decision.exploring {
            self.quality.explored.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let best = cluster
            .latency
            .iter()
            .copied()
            .filter(|ms| ms.is_finite())
            .fold(f32::INFINITY, f32::min);
        let answered = cluster
            .ranking
            .iter()
            .position(|r| r == id)
            .and_then(|i| cluster.latency.get(i))
            .copied();
        if let Some(ms) = answered.filter(|ms| ms.is_finite() && best.is_finite()) {
            if ms <= best {
                self.quality.best.fetch_add(1, Ordering::Relaxed);
            }
            self.quality
                .regret_us
                .fetch_add(((ms - best) * 1000.0) as u64, Ordering::Relaxed);
        }
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    /// Answers given so far, by mirror id.
    pub fn answered(&self) -> impl Iterator<Item = (MirrorId, u64)> + '_ {
        self.answered
            .iter()
            .enumerate()
            .filter_map(|(id, n)| Some((MirrorId::try_from(id).ok()?, n.load(Ordering::Relaxed))))
    }

    pub fn longest_match(&self, addr: IpAddr) -> Option<(IpNet, &Cluster)> {
        match addr {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(p, c)| (IpNet::V4(p), c)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(p, c)| (IpNet::V6(p), c)),
        }
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Cluster> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }
    }

    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut Cluster> {
        match prefix {
            IpNet::V4(p) => self.v4.get_mut(p),
            IpNet::V6(p) => self.v6.get_mut(p),
        }
    }

    /// Every cluster of the region rooted at `root`: the root and the parts
    /// split from it, not the regions of longer listed prefixes inside it.
    pub(in crate::steering) fn region(&self, root: IpNet, config: &ServiceConfig) -> Vec<IpNet> {
        self.inside(&root)
            .into_iter()
            .filter(|(p, _)| config.root_of(p) == root)
            .map(|(p, _)| p)
            .collect()
    }

    /// Every cluster at or inside `prefix`.
    fn inside(&self, prefix: &IpNet) -> Vec<(IpNet, &Cluster)> {
        match prefix {
            IpNet::V4(p) => self
                .v4
                .children(p)
                .map(|(c, v)| (IpNet::V4(c), v))
                .collect(),
            IpNet::V6(p) => self
                .v6
                .children(p)
                .map(|(c, v)| (IpNet::V6(c), v))
                .collect(),
        }
    }

    /// After a region was rebuilt: which of its clusters, and the cluster
    /// around it, may enclose others.
    pub(in crate::steering) fn refresh_enclosing(&mut self, root: IpNet) {
        let inside: Vec<IpNet> = self.inside(&root).into_iter().map(|(p, _)| p).collect();
        for prefix in inside {
            let inner = self.has_inner(&prefix);
            if let Some(c) = self.get_mut(&prefix) {
                c.may_enclose = inner;
            }
        }
        if let Some(outer) = self.enclosing(&root)
            && let Some(c) = self.get_mut(&outer)
        {
            c.may_enclose = true;
        }
    }

    /// Forgets every sub-block's exploration (the service's mirrors changed).
    pub(in crate::steering) fn forget_explorations(&mut self) {
        for (_, cluster) in self.iter_mut() {
            for (_, block) in cluster.blocks.iter_mut() {
                block.forget_explorations();
            }
        }
    }

    pub fn insert(&mut self, prefix: IpNet, cluster: Cluster) {
        match prefix {
            IpNet::V4(p) => self.v4.insert(p, cluster),
            IpNet::V6(p) => self.v6.insert(p, cluster),
        };
    }

    pub(in crate::steering) fn remove(&mut self, prefix: &IpNet) -> Option<Cluster> {
        match prefix {
            IpNet::V4(p) => self.v4.remove(p),
            IpNet::V6(p) => self.v6.remove(p),
        }
    }

    /// The cluster strictly enclosing `prefix`, if any.
    fn enclosing(&self, prefix: &IpNet) -> Option<IpNet> {
        let parent = prefix.supernet()?;
        self.longest_match_prefix(&parent)
    }

    fn longest_match_prefix(&self, prefix: &IpNet) -> Option<IpNet> {
        match prefix {
            IpNet::V4(p) => self.v4.get_lpm_prefix(p).map(IpNet::V4),
            IpNet::V6(p) => self.v6.get_lpm_prefix(p).map(IpNet::V6),
        }
    }

    /// Whether any cluster lies strictly inside `prefix`.
    fn has_inner(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.children(p).any(|(c, _)| c != *p),
            IpNet::V6(p) => self.v6.children(p).any(|(c, _)| c != *p),
        }
    }

    /// The ECS scope for `addr` answered by `cluster` at `prefix`: the
    /// cluster's length, or longer when clusters were carved out of it, so
    /// that the scope never covers a client that gets another answer.
    pub(super) fn scope(
        &self,
        prefix: IpNet,
        cluster: &Cluster,
        addr: IpAddr,
        block_len: u8,
    ) -> u8 {
        if !cluster.may_enclose || !self.has_inner(&prefix) {
            return prefix.prefix_len();
        }
        (prefix.prefix_len() + 1..=block_len)
            .find(|len| IpNet::new(addr, *len).is_ok_and(|p| !self.has_inner_or_is(&p.trunc())))
            .unwrap_or(block_len)
    }

    fn has_inner_or_is(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.children(p).next().is_some(),
            IpNet::V6(p) => self.v6.children(p).next().is_some(),
        }
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpNet, &mut Cluster)> {
        let v4 = self.v4.iter_mut().map(|(p, c)| (IpNet::V4(p), c));
        let v6 = self.v6.iter_mut().map(|(p, c)| (IpNet::V6(p), c));
        v4.chain(v6)
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Cluster)> {
        let v4 = self.v4.iter().map(|(p, c)| (IpNet::V4(p), c));
        let v6 = self.v6.iter().map(|(p, c)| (IpNet::V6(p), c));
        v4.chain(v6)
    }

    pub(in crate::steering) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The cluster holding `addr`; when none does, or only one around the
    /// root `addr` belongs in, the root is created. A root created inside
    /// a decided region (its clusters all moved into parts) answers as the
    /// busiest of them until it is decided.
    pub(super) fn find_or_create(&mut self, addr: IpAddr, config: &ServiceConfig) -> IpNet {
        let root = config.creation_prefix(addr);
        if let Some((prefix, _)) = self.longest_match(addr)
            && prefix.prefix_len() >= root.prefix_len()
        {
            return prefix;
        }
        let inherited = self.busiest_inside(&root, config);
        let mut cluster = Cluster {
            may_enclose: inherited.is_some(),
            borrowed: inherited.is_some(),
            ..Cluster::default()
        };
        if let Some((ranking, latency)) = inherited {
            cluster.ranking = ranking;
            cluster.latency = latency;
        }
        self.insert(root, cluster);
        self.refresh_enclosing(root);
        root
    }

    /// The ranking of the busiest decided cluster of the region of `root`.
    fn busiest_inside(
        &self,
        root: &IpNet,
        config: &ServiceConfig,
    ) -> Option<(Vec<MirrorId>, Vec<f32>)> {
        self.inside(root)
            .into_iter()
            .filter(|(p, c)| c.is_complete() && config.root_of(p) == *root)
            .max_by_key(|(p, c)| (c.blocks.queries(), std::cmp::Reverse(*p)))
            .map(|(_, c)| (c.ranking.clone(), c.latency.clone()))
    }
}
