//! A cluster's sub-blocks: what is known of each (`Block`), how much it is
//! queried (`Activity`), and `Blocks`, the compact sorted container the
//! answering path searches on every query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;

use crate::steering::measurements::Seconds;

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
    /// A sub-block as a state snapshot kept it: its probe target only.
    pub(super) fn restored(target: Option<IpNet>) -> Block {
        Block {
            target,
            ..Block::default()
        }
    }

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
    pub(super) fn forget_explorations(&mut self) {
        if let Some(extra) = &mut self.extra {
            extra.explore_failed = 0;
            extra.exploring = None;
        }
    }

    /// The first query with the sub-block's own client.
    pub(super) fn first_seen(&mut self, client: &IpNet, resolver: IpAddr) {
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
    pub(super) fn with_queries(queries: u32) -> Activity {
        Activity {
            queries: AtomicU32::new(queries),
            ..Activity::default()
        }
    }

    pub(super) fn record_query(&self, tick: u32) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.last_tick.store(tick, Ordering::Relaxed);
    }
}

/// A sub-block as it moves between clusters.
pub(in crate::steering) type Entry = (IpNet, Block, Activity);

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
    pub(super) fn new(entries: Vec<Entry>) -> Blocks {
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

    pub(super) fn into_entries(self) -> Vec<Entry> {
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
    pub(super) fn find(&self, prefix: &IpNet) -> Option<(&Block, &Activity)> {
        let i = self.position(prefix).ok()?;
        Some((&self.entries[i].1, &self.slots[i].activity))
    }

    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.position(prefix).is_ok()
    }

    pub(super) fn get_or_insert(&mut self, prefix: IpNet) -> (&mut Block, &Activity) {
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
    pub(super) fn remove_sorted(&mut self, doomed: &[IpNet]) -> usize {
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

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&IpNet, &mut Block)> {
        self.entries
            .iter_mut()
            .map(|(prefix, block)| (&*prefix, block))
    }

    #[cfg(test)]
    fn keys(&self) -> impl Iterator<Item = &IpNet> {
        self.entries.iter().map(|(prefix, _)| prefix)
    }

    pub(in crate::steering) fn len(&self) -> usize {
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
