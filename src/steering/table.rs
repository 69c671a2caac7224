//! One service's clusters: an IPv4 and an IPv6 prefix trie, longest match
//! wins. Owns cluster creation, answering (the learning round robin, the
//! decided ranking, explorations), and the sub-block containers; `region`
//! applies the decision rules to the clusters they concern.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::{PrefixMap, PrefixSet};

use super::decision::{BlockSamples, Policy, Score};
use super::measurements::{MeasurementStore, MirrorId, Seconds};
use super::region::{self, Carried, Inputs};
use crate::zone::{Family, SwitchMargin};

/// What a service's table needs to know of the service's configuration.
pub struct ServiceConfig {
    pub name: String,
    pub mirror_ids: Vec<MirrorId>,
    /// The inverse of `mirror_ids`, indexed by mirror id.
    pub local_of: Vec<Option<u8>>,
    pub mirror_names: Vec<String>,
    /// Bit `i` set: mirror `i` has an address of that family (IPv4, IPv6).
    pub family_masks: [u64; 2],
    /// Answers per second mirror `i` takes for this service, if it has a limit.
    pub capacity_qps: Vec<Option<u64>>,
    pub initial_len: [u8; 2],
    pub block_len: [u8; 2],
    pub operator_prefixes: OperatorPrefixes,
    pub max_age: Seconds,
    pub margin: SwitchMargin,
}

impl ServiceConfig {
    pub fn local_index(&self, id: MirrorId) -> Option<usize> {
        self.local_of
            .get(usize::from(id))
            .copied()
            .flatten()
            .map(usize::from)
    }

    pub fn block_len(&self, family: Family) -> u8 {
        self.block_len[family_index(family)]
    }

    /// The sub-block holding `client`: its address cut to the sub-block length.
    pub fn block_of(&self, client: &IpNet) -> IpNet {
        let len = self.block_len(Family::of(client.addr()));
        IpNet::new(client.addr(), len)
            .map(|n| n.trunc())
            .unwrap_or(*client)
    }

    /// The prefix of a new cluster for `addr`: the longest operator prefix
    /// holding it (never longer than a sub-block), else the initial length.
    fn creation_prefix(&self, addr: IpAddr) -> IpNet {
        let family = family_index(Family::of(addr));
        let len = self
            .operator_prefixes
            .longest_match(addr)
            .map_or(self.initial_len[family], |p| {
                p.prefix_len().min(self.block_len[family])
            });
        IpNet::new(addr, len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(addr))
    }

    /// The root of the region holding `prefix`: the longest listed prefix
    /// holding it (never longer than a sub-block), else its initial-length
    /// prefix. Listed prefixes are roots in their own right, whatever order
    /// their clients come in.
    pub fn root_of(&self, prefix: &IpNet) -> IpNet {
        let created = self.creation_prefix(prefix.addr());
        if created.prefix_len() <= prefix.prefix_len() {
            return created;
        }
        let family = family_index(Family::of(prefix.addr()));
        let len = self
            .operator_prefixes
            .longest_holding(prefix)
            .map_or(self.initial_len[family], |p| {
                p.prefix_len().min(self.block_len[family])
            })
            .min(prefix.prefix_len());
        IpNet::new(prefix.addr(), len)
            .map(|n| n.trunc())
            .unwrap_or(*prefix)
    }

    pub(super) fn policy(&self) -> Policy<'_> {
        Policy {
            names: &self.mirror_names,
            margin: self.margin,
        }
    }
}

pub fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The operator's prefix list (e.g. BGP announcements), for longest match.
#[derive(Default)]
pub struct OperatorPrefixes {
    v4: PrefixSet<Ipv4Net>,
    v6: PrefixSet<Ipv6Net>,
}

impl OperatorPrefixes {
    pub fn new(prefixes: &[IpNet]) -> Self {
        let mut set = OperatorPrefixes::default();
        for p in prefixes {
            match p {
                IpNet::V4(n) => set.v4.insert(*n),
                IpNet::V6(n) => set.v6.insert(*n),
            };
        }
        set
    }

    fn longest_match(&self, addr: IpAddr) -> Option<IpNet> {
        self.longest_holding(&IpNet::from(addr))
    }

    fn longest_holding(&self, prefix: &IpNet) -> Option<IpNet> {
        match prefix {
            IpNet::V4(p) => self.v4.get_lpm(p).map(IpNet::V4),
            IpNet::V6(p) => self.v6.get_lpm(p).map(IpNet::V6),
        }
    }
}

/// A client sub-block the cluster has seen or has measurements for.
#[derive(Debug, Default)]
pub struct Block {
    /// What to probe: the first resolver address or ECS subnet seen in it.
    pub target: Option<IpNet>,
    /// A mirror measured it: kept longer than sub-blocks only queried.
    pub measured: bool,
    /// Boxed, since most sub-blocks have none of it.
    extra: Option<Box<BlockExtra>>,
}

/// What only some sub-blocks carry.
#[derive(Debug, Default)]
struct BlockExtra {
    /// The resolver that first asked with this sub-block as its ECS subnet:
    /// an address the agent may find answering where the subnet's own
    /// hosts do not.
    resolver: Option<IpAddr>,
    /// Local mask of the mirrors whose exploration brought no RTT back.
    explore_failed: u64,
    exploring: Option<Exploring>,
}

/// A silent sub-block being answered with `mirror` so that its clients'
/// RTTs come back through that mirror's access log.
#[derive(Debug)]
pub struct Exploring {
    /// Local index of the mirror.
    pub mirror: u8,
    /// When this mirror's exploration began.
    pub since: Seconds,
    /// Exploration answers given so far.
    pub answered: AtomicU32,
}

impl Exploring {
    pub fn new(mirror: u8, since: Seconds) -> Exploring {
        Exploring {
            mirror,
            since,
            answered: AtomicU32::new(0),
        }
    }
}

impl Block {
    fn extra(&mut self) -> &mut BlockExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn resolver(&self) -> Option<IpAddr> {
        self.extra.as_ref()?.resolver
    }

    pub fn explore_failed(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.explore_failed)
    }

    pub fn mark_explore_failed(&mut self, local: usize) {
        self.extra().explore_failed |= 1 << local;
    }

    pub fn exploring(&self) -> Option<&Exploring> {
        self.extra.as_ref()?.exploring.as_ref()
    }

    pub fn set_exploring(&mut self, plan: Option<Exploring>) {
        if plan.is_none() && self.extra.is_none() {
            return;
        }
        self.extra().exploring = plan;
    }

    /// Forgets exploration outcomes, whose mirror indexes belong to the
    /// service's old list of mirrors.
    fn forget_explorations(&mut self) {
        if let Some(extra) = &mut self.extra {
            extra.explore_failed = 0;
            extra.exploring = None;
        }
    }

    /// The first query with the sub-block's own client.
    fn first_seen(&mut self, client: &IpNet, resolver: IpAddr) {
        if self.target.is_some() {
            return;
        }
        self.target = Some(*client);
        if !client.contains(&resolver) {
            self.extra().resolver = Some(resolver);
        }
    }
}

/// How much and how recently a sub-block is queried: what every answer writes.
#[derive(Debug, Default)]
pub struct Activity {
    pub queries: AtomicU32,
    /// The load tick of its last query.
    pub last_tick: AtomicU32,
}

impl Activity {
    fn with_queries(queries: u32) -> Activity {
        Activity {
            queries: AtomicU32::new(queries),
            ..Activity::default()
        }
    }

    fn record_query(&self, tick: u32) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.last_tick.store(tick, Ordering::Relaxed);
    }
}

/// A sub-block as it moves between clusters.
pub(super) type Entry = (IpNet, Block, Activity);

/// `IpNet`'s own order (family, address, length) as plain integers: the
/// derived comparison is a call per comparison, this one inlines.
fn order_key(prefix: &IpNet) -> (bool, u128, u8) {
    match prefix {
        IpNet::V4(n) => (false, u128::from(u32::from(n.addr())), n.prefix_len()),
        IpNet::V6(n) => (true, u128::from(n.addr()), n.prefix_len()),
    }
}

/// Address bits of an IPv6 prefix that its search key keeps: enough for
/// the sub-blocks operators use (/48 by default, /56 for ISPs' customers).
const V6_KEY_BITS: u8 = 56;

/// A prefix squeezed into 64 bits that sorts as the prefix does: IPv4 whole
/// (address, length); IPv6 above all IPv4, its first 56 bits and its length,
/// every length past 56 counted as 57. Two prefixes share a key only when
/// both are IPv6 longer than /56 ([`key_is_exact`]). A search then reads 8
/// bytes a step instead of 18 and, for most prefixes, never the prefixes
/// themselves: its cache misses were the largest cost of an ECS answer
/// that is ours.
fn search_key(prefix: &IpNet) -> u64 {
    match prefix {
        IpNet::V4(n) => u64::from(u32::from(n.addr())) << 8 | u64::from(n.prefix_len()),
        IpNet::V6(n) => {
            let kept = (u128::from(n.addr()) >> (128 - V6_KEY_BITS)) as u64;
            let length = n.prefix_len().min(V6_KEY_BITS + 1);
            1 << 63 | kept << 6 | u64::from(length)
        }
    }
}

/// How many of `sorted` have a key below `key`, reading them all: no
/// branch to mispredict, and no load waits for another.
fn count_below<T>(sorted: &[T], key_of: impl Fn(&T) -> u64, key: u64) -> usize {
    sorted.iter().filter(|item| key_of(item) < key).count()
}

/// Whether no other prefix has this prefix's [`search_key`].
fn key_is_exact(prefix: &IpNet) -> bool {
    match prefix {
        IpNet::V4(_) => true,
        IpNet::V6(n) => n.prefix_len() <= V6_KEY_BITS,
    }
}

/// A cluster's sub-blocks in prefix order, in exactly sized slices: most
/// clusters hold a handful of sub-blocks and a million clusters must fit in
/// memory (a B-tree allocates eleven entries for even one, a vector four).
/// Inserting copies the slices, as inserting into a sorted vector moves it.
///
/// The answering path reads only `slots` (and `fences`): the search for
/// the client's sub-block ends on the cache line that holds the counters
/// the answer then writes. Under an ECS-heavy load the cache misses of
/// that search were the largest cost of an answer that is ours; see
/// `benches/steering.rs`, `decide/ecs_27k_sub_blocks_in_257_clusters`.
#[derive(Debug, Default)]
pub struct Blocks {
    slots: Box<[Slot]>,
    /// What else is known of each sub-block, in the same order.
    entries: Box<[(IpNet, Block)]>,
    /// Above [`FENCED_FROM`] sub-blocks, the key of every [`FENCE_EVERY`]th
    /// slot: small enough to stay in the cache, they lead a search to the
    /// one or two cache lines of slots that can hold its key.
    fences: Box<[u64]>,
    /// Above [`INDEXED_FROM`] sub-blocks (an IPv6 /32 full of /48s, an
    /// operator's /12), a hash index of the exact keys ([`key_is_exact`]):
    /// halving thousands of fences would miss the cache at every step, on
    /// every query.
    index: Option<Box<BlockIndex>>,
}

/// A sub-block's [`search_key`] and its activity, side by side (16 bytes).
#[derive(Debug)]
struct Slot {
    key: u64,
    activity: Activity,
}

/// Sub-blocks up to which a search reads every slot: their cache lines
/// load side by side, where the steps of a binary search wait for each
/// other.
const FENCED_FROM: usize = 32;

/// Slots per fence: a cache line of them.
const FENCE_EVERY: usize = 4;

/// Fences a search reads all of, rather than halving them: four cache lines.
const SCANNED_FENCES: usize = 32;

/// Sub-blocks above which a cluster keeps a hash index: above the 256 /24s
/// of a /16, so the common IPv4 clusters pay no memory for one.
const INDEXED_FROM: usize = 256;

type BlockIndex = HashMap<u64, u32, foldhash::fast::RandomState>;

impl Blocks {
    /// From entries sorted by prefix.
    fn new(entries: Vec<Entry>) -> Blocks {
        let (slots, entries): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .map(|(prefix, block, activity)| {
                let key = search_key(&prefix);
                (Slot { key, activity }, (prefix, block))
            })
            .unzip();
        let mut made = Blocks {
            slots: slots.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
            ..Blocks::default()
        };
        made.refence();
        made.reindex();
        made
    }

    fn into_entries(self) -> Vec<Entry> {
        self.entries
            .into_vec()
            .into_iter()
            .zip(self.slots.into_vec())
            .map(|((prefix, block), slot)| (prefix, block, slot.activity))
            .collect()
    }

    /// Rebuilds the fences after the slots changed.
    fn refence(&mut self) {
        self.fences = if self.slots.len() > FENCED_FROM {
            let keys = self.slots.iter().step_by(FENCE_EVERY);
            keys.map(|s| s.key).collect()
        } else {
            Box::default()
        };
    }

    /// Rebuilds the index after the entries changed (every change already
    /// copies them, so this keeps the cost of a change where it was).
    fn reindex(&mut self) {
        self.index = (self.len() > INDEXED_FROM).then(|| {
            let mut index = BlockIndex::with_capacity_and_hasher(
                self.len(),
                foldhash::fast::RandomState::default(),
            );
            let positions = self.entries.iter().enumerate();
            let exact = positions.filter(|(_, (p, _))| key_is_exact(p));
            index.extend(exact.map(|(i, (p, _))| (search_key(p), i as u32)));
            Box::new(index)
        });
    }

    /// Where `prefix` is, or where it would go.
    fn position(&self, prefix: &IpNet) -> Result<usize, usize> {
        let key = search_key(prefix);
        let exact = key_is_exact(prefix);
        if let Some(index) = &self.index
            && exact
            && let Some(i) = index.get(&key)
        {
            return Ok(*i as usize);
        }
        let first = self.first_key_from(key);
        if exact {
            return match self.slots.get(first) {
                Some(s) if s.key == key => Ok(first),
                _ => Err(first),
            };
        }
        let wanted = order_key(prefix);
        let tied = self.slots[first..].iter().take_while(|s| s.key == key);
        let mut at = first;
        for (p, _) in &self.entries[first..first + tied.count()] {
            match order_key(p).cmp(&wanted) {
                std::cmp::Ordering::Less => at += 1,
                std::cmp::Ordering::Equal => return Ok(at),
                std::cmp::Ordering::Greater => break,
            }
        }
        Err(at)
    }

    /// The first slot whose key is `key` or above.
    fn first_key_from(&self, key: u64) -> usize {
        let (start, end) = if self.fences.is_empty() {
            (0, self.slots.len())
        } else {
            match self.fences_below(key) {
                0 => return 0,
                below => {
                    let start = (below - 1) * FENCE_EVERY;
                    (start, (start + FENCE_EVERY).min(self.slots.len()))
                }
            }
        };
        start + count_below(&self.slots[start..end], |s| s.key, key)
    }

    /// How many fences are below `key`: halving down to [`SCANNED_FENCES`],
    /// then reading them all.
    fn fences_below(&self, key: u64) -> usize {
        let (mut low, mut len) = (0, self.fences.len());
        while len > SCANNED_FENCES {
            let half = len / 2;
            if self.fences[low + half] < key {
                low += half;
            }
            len -= half;
        }
        low + count_below(&self.fences[low..low + len], |f| *f, key)
    }

    #[cfg(test)]
    fn get(&self, prefix: &IpNet) -> Option<&Block> {
        self.position(prefix).ok().map(|i| &self.entries[i].1)
    }

    pub fn activity(&self, prefix: &IpNet) -> Option<&Activity> {
        self.position(prefix).ok().map(|i| &self.slots[i].activity)
    }

    /// The sub-block at `prefix` with its activity.
    fn find(&self, prefix: &IpNet) -> Option<(&Block, &Activity)> {
        let i = self.position(prefix).ok()?;
        Some((&self.entries[i].1, &self.slots[i].activity))
    }

    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.position(prefix).is_ok()
    }

    fn get_or_insert(&mut self, prefix: IpNet) -> (&mut Block, &Activity) {
        let i = match self.position(&prefix) {
            Ok(i) => i,
            Err(i) => {
                self.insert_at(i, prefix);
                i
            }
        };
        (&mut self.entries[i].1, &self.slots[i].activity)
    }

    fn insert_at(&mut self, i: usize, prefix: IpNet) {
        let mut slots = std::mem::take(&mut self.slots).into_vec();
        let mut entries = std::mem::take(&mut self.entries).into_vec();
        let key = search_key(&prefix);
        let activity = Activity::default();
        slots.insert(i, Slot { key, activity });
        entries.insert(i, (prefix, Block::default()));
        self.slots = slots.into_boxed_slice();
        self.entries = entries.into_boxed_slice();
        self.refence();
        // Shifting the positions after `i` is far cheaper than hashing
        // every prefix again: a /32 of /48s learns thousands of sub-blocks
        // one query at a time.
        match &mut self.index {
            Some(index) => {
                index
                    .values_mut()
                    .filter(|at| **at as usize >= i)
                    .for_each(|at| *at += 1);
                if key_is_exact(&prefix) {
                    index.insert(key, i as u32);
                }
            }
            None => self.reindex(),
        }
    }

    /// Drops the sub-blocks `doomed` (sorted) in one pass; returns how many.
    fn remove_sorted(&mut self, doomed: &[IpNet]) -> usize {
        let before = self.len();
        let kept: Vec<Entry> = std::mem::take(self)
            .into_entries()
            .into_iter()
            .filter(|(p, _, _)| doomed.binary_search(p).is_err())
            .collect();
        *self = Blocks::new(kept);
        before - self.len()
    }

    /// Moves out every sub-block inside `part`, in one pass.
    #[cfg(test)]
    fn split_off(&mut self, part: &IpNet) -> Blocks {
        let (inside, outside): (Vec<_>, Vec<_>) = std::mem::take(self)
            .into_entries()
            .into_iter()
            .partition(|(p, _, _)| part.contains(p));
        *self = Blocks::new(outside);
        Blocks::new(inside)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Block, &Activity)> {
        self.entries
            .iter()
            .zip(self.slots.iter())
            .map(|((prefix, block), slot)| (prefix, block, &slot.activity))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&IpNet, &mut Block)> {
        self.entries
            .iter_mut()
            .map(|(prefix, block)| (&*prefix, block))
    }

    #[cfg(test)]
    fn keys(&self) -> impl Iterator<Item = &IpNet> {
        self.entries.iter().map(|(prefix, _)| prefix)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many sub-blocks are being explored.
    pub fn exploring(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, b)| b.exploring().is_some())
            .count()
    }

    pub fn queries(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| u64::from(s.activity.queries.load(Ordering::Relaxed)))
            .sum()
    }
}

/// A set of clients answered alike.
#[derive(Debug, Default)]
pub struct Cluster {
    pub blocks: Blocks,
    /// Mirrors best first; empty while the cluster is learning.
    pub ranking: Vec<MirrorId>,
    /// Local mirror indexes answered while learning, so each gets a turn
    /// before any gets a second.
    sent: AtomicU64,
    turn: AtomicUsize,
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
    exploring: bool,
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
    pub(super) fn exploration_of(&self, block: &IpNet) -> Option<&Exploring> {
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
                let block = Block {
                    target,
                    ..Block::default()
                };
                (prefix, block, Activity::with_queries(queries))
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
    pub(super) fn rebuilt(
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
    pub(super) fn dismantle(self) -> (Vec<MirrorId>, Carried, Vec<Entry>) {
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

/// The answer for one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index into the service's mirrors; `None`: every mirror is drained or
    /// down, answer with all of them (fail open).
    pub mirror: Option<usize>,
    /// The prefix length of the deciding cluster (the ECS scope).
    pub scope: u8,
    /// An exploration answer: a mirror the client's silent sub-block has
    /// no RTT from, given so that its clients bring one back.
    pub exploring: bool,
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
    blocks_total: usize,
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
    fn make_room(&mut self) {
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

    fn count_answer(&self, decision: &Decision, config: &ServiceConfig, cluster: &Cluster) {
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
    pub(super) fn region(&self, root: IpNet, config: &ServiceConfig) -> Vec<IpNet> {
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
    pub(super) fn refresh_enclosing(&mut self, root: IpNet) {
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
    pub(super) fn forget_explorations(&mut self) {
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

    pub(super) fn remove(&mut self, prefix: &IpNet) -> Option<Cluster> {
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
    fn scope(&self, prefix: IpNet, cluster: &Cluster, addr: IpAddr, block_len: u8) -> u8 {
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

    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The cluster holding `addr`; when none does, or only one around the
    /// root `addr` belongs in, the root is created. A root created inside
    /// a decided region (its clusters all moved into parts) answers as the
    /// busiest of them until it is decided.
    fn find_or_create(&mut self, addr: IpAddr, config: &ServiceConfig) -> IpNet {
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

/// Answers a query from the cluster that holds the client, when that cluster
/// already knows the client's sub-block (the common, read-only case).
pub fn answer_known(
    clusters: &Clusters,
    config: &ServiceConfig,
    client: &IpNet,
    wanted: u64,
) -> Option<Decision> {
    let (prefix, cluster) = clusters.longest_match(client.addr())?;
    let block_len = config.block_len(Family::of(client.addr()));
    let block_prefix = config.block_of(client);
    let decision = if cluster.exploring {
        let (block, activity) = cluster.blocks.find(&block_prefix)?;
        activity.record_query(clusters.tick);
        explore(block, block_len, wanted)
    } else {
        let activity = cluster.blocks.activity(&block_prefix)?;
        activity.record_query(clusters.tick);
        None
    };
    let decision = decision.unwrap_or_else(|| {
        let scope = clusters.scope(prefix, cluster, client.addr(), block_len);
        answer(cluster, scope, config, wanted)
    });
    clusters.count_answer(&decision, config, cluster);
    Some(decision)
}

/// Answers a query, creating the cluster or registering the sub-block
/// first; says whether the sub-block is new.
pub fn answer_new(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    client: &IpNet,
    resolver: IpAddr,
    wanted: u64,
) -> Option<(Decision, bool)> {
    let (prefix, is_new) = register(clusters, config, client, resolver)?;
    let block_len = config.block_len(Family::of(client.addr()));
    let scope = clusters.scope(prefix, clusters.get(&prefix)?, client.addr(), block_len);
    let tick = clusters.tick;
    let cluster = clusters.get(&prefix)?;
    cluster
        .blocks
        .activity(&config.block_of(client))?
        .record_query(tick);
    let decision = answer(cluster, scope, config, wanted);
    clusters.count_answer(&decision, config, cluster);
    Some((decision, is_new))
}

/// A sub-block a journal says was queried, registered as its first query did.
pub fn register_queried(clusters: &mut Clusters, config: &ServiceConfig, seen: &super::SeenBlock) {
    register(clusters, config, &seen.client, seen.resolver);
}

/// Puts `client`'s sub-block into its cluster, making room and the cluster
/// first where needed; returns the cluster and whether the sub-block is new.
fn register(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    client: &IpNet,
    resolver: IpAddr,
) -> Option<(IpNet, bool)> {
    let block_prefix = config.block_of(client);
    let is_new = clusters
        .longest_match(client.addr())
        .is_none_or(|(_, c)| !c.blocks.contains(&block_prefix));
    if is_new {
        clusters.make_room();
        clusters.blocks_total += 1;
    }
    let prefix = clusters.find_or_create(client.addr(), config);
    let (block, _) = clusters
        .get_mut(&prefix)?
        .blocks
        .get_or_insert(block_prefix);
    block.first_seen(client, resolver);
    Some((prefix, is_new))
}

/// An exploration answer for `block`, while it has tries left and its
/// mirror may answer this query.
fn explore(block: &Block, block_len: u8, wanted: u64) -> Option<Decision> {
    let exploring = block.exploring()?;
    let mirror = usize::from(exploring.mirror);
    if wanted & (1 << mirror) == 0
        || exploring.answered.load(Ordering::Relaxed) >= region::EXPLORE_TRIES
    {
        return None;
    }
    exploring.answered.fetch_add(1, Ordering::Relaxed);
    Some(Decision {
        mirror: Some(mirror),
        scope: block_len,
        exploring: true,
    })
}

/// The best ranked mirror that has an address of the asked family; round
/// robin while learning, never-answered mirrors first.
fn answer(cluster: &Cluster, scope: u8, config: &ServiceConfig, wanted: u64) -> Decision {
    let ranked = cluster
        .offload
        .iter()
        .chain(&cluster.ranking)
        .filter_map(|id| config.local_index(*id))
        .find(|local| wanted & (1 << local) != 0);
    if let Some(mirror) = ranked {
        return Decision {
            mirror: Some(mirror),
            scope,
            exploring: false,
        };
    }
    let untried = wanted & !cluster.sent.load(Ordering::Relaxed);
    let pool = if untried != 0 { untried } else { wanted };
    let turn = cluster.turn.fetch_add(1, Ordering::Relaxed) % pool.count_ones() as usize;
    let mirror = nth_set_bit(pool, turn);
    cluster.sent.fetch_or(1 << mirror, Ordering::Relaxed);
    Decision {
        mirror: Some(mirror),
        scope,
        exploring: false,
    }
}

fn nth_set_bit(mut bits: u64, n: usize) -> usize {
    for _ in 0..n {
        bits &= bits - 1;
    }
    bits.trailing_zeros() as usize
}

/// The cluster's latency per mirror (local index order), as the decision uses it.
pub fn cluster_scores(cluster: &Cluster, inputs: &Inputs) -> Vec<Score> {
    let samples: Vec<BlockSamples> = cluster
        .blocks
        .iter()
        .map(|(prefix, block, _)| region::block_samples(*prefix, block, inputs))
        .filter(region::is_informed)
        .collect();
    let refs: Vec<&BlockSamples> = samples.iter().collect();
    inputs.config.policy().scores(&refs)
}

/// Registers measured sub-blocks (creating clusters for them where none
/// holds them) and returns the clusters they landed in.
pub fn register_measured(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    blocks: &BTreeSet<IpNet>,
) -> BTreeSet<IpNet> {
    let mut touched = BTreeSet::new();
    for block in blocks {
        if clusters
            .longest_match(block.addr())
            .is_none_or(|(_, c)| !c.blocks.contains(block))
        {
            clusters.make_room();
            clusters.blocks_total += 1;
        }
        let prefix = clusters.find_or_create(block.addr(), config);
        if let Some(cluster) = clusters.get_mut(&prefix) {
            cluster.blocks.get_or_insert(*block).0.measured = true;
        }
        touched.insert(prefix);
    }
    touched
}

/// Re-decides the regions of the clusters in `dirty`, in prefix order so
/// the same inputs always give the same table.
pub fn reevaluate(clusters: &mut Clusters, inputs: &Inputs, dirty: BTreeSet<IpNet>) {
    let roots: BTreeSet<IpNet> = dirty.iter().map(|p| inputs.config.root_of(p)).collect();
    for root in roots {
        region::redecide(clusters, inputs, root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slash56(i: u16) -> IpNet {
        let addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, i >> 8, (i & 0xff) << 8, 0, 0, 0, 0);
        IpNet::new(addr.into(), 56).unwrap()
    }

    #[test]
    fn a_large_cluster_finds_inserts_splits_and_drops_sub_blocks_through_its_index() {
        let even = (0..1000)
            .step_by(2)
            .map(|i| (slash56(i), Block::default(), Activity::default()));
        let mut blocks = Blocks::new(even.collect());
        assert!(blocks.index.is_some());
        assert!(blocks.contains(&slash56(998)) && !blocks.contains(&slash56(999)));
        blocks.get_or_insert(slash56(999)).0.measured = true;
        assert!(blocks.get(&slash56(999)).is_some_and(|b| b.measured));
        assert!(blocks.keys().is_sorted());

        let upper = blocks.split_off(&"2001:db8:3::/48".parse().unwrap());
        assert_eq!((blocks.len(), upper.len()), (384, 117));
        assert!(upper.index.is_none(), "117 sub-blocks need no index");
        assert!(upper.contains(&slash56(999)) && !blocks.contains(&slash56(999)));

        assert_eq!(blocks.remove_sorted(&[slash56(0), slash56(2)]), 2);
        assert!(blocks.index.is_some());
        assert!(blocks.contains(&slash56(4)) && !blocks.contains(&slash56(2)));
    }

    /// Prefixes of both families and of any length, packed into a few
    /// neighbourhoods so that shared search keys (IPv6 past /56) happen.
    fn any_prefix() -> impl Strategy<Value = IpNet> {
        let v4 = (0u32..4, any::<u32>(), 0u8..=32).prop_map(|(hi, lo, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | hi << 16 | (lo & 0xffff));
            IpNet::new(addr.into(), len).unwrap().trunc()
        });
        let v6 = (0u128..4, any::<u128>(), prop_oneof![0u8..=128, 54u8..=66]).prop_map(
            |(hi, lo, len)| {
                let base = 0x2001_0db8u128 << 96 | hi << 72;
                let addr = std::net::Ipv6Addr::from(base | (lo & ((1 << 80) - 1)));
                IpNet::new(addr.into(), len).unwrap().trunc()
            },
        );
        prop_oneof![v4, v6]
    }

    proptest! {
        /// The search over keys and fences finds what a binary search of
        /// the sorted prefixes finds, present or absent, indexed or not.
        #[test]
        fn finding_a_sub_block_agrees_with_a_sorted_search(
            mut held in proptest::collection::vec(any_prefix(), 0..400),
            asked in proptest::collection::vec(any_prefix(), 0..50),
        ) {
            held.sort();
            held.dedup();
            let entries = held
                .iter()
                .map(|p| (*p, Block::default(), Activity::default()))
                .collect();
            let blocks = Blocks::new(entries);
            for prefix in held.iter().chain(&asked) {
                prop_assert_eq!(blocks.position(prefix), held.binary_search(prefix), "{}", prefix);
            }
        }
    }

    #[test]
    fn the_order_key_sorts_as_ipnet_does() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.1.0/24",
            "9.255.255.0/24",
            "255.255.255.255/32",
            "::/0",
            "2001:db8::/32",
            "2001:db8::/56",
            "2001:db8:0:100::/56",
            "ffff::/16",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        for a in &nets {
            for b in &nets {
                assert_eq!(order_key(a).cmp(&order_key(b)), a.cmp(b), "{a} vs {b}");
            }
        }
    }
}
