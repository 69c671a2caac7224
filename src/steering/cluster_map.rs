//! Values by IP prefix, for a service's clusters: a trie per family answers
//! the structural questions (what encloses a prefix, what lies inside it,
//! everything in order), and a flat array of disjoint address ranges answers
//! the one question every query asks, the longest match of an address.
//!
//! Walking the trie costs a query about 300 instructions (IPv4) to 550
//! (IPv6) and a cache line per level; a binary search over a few hundred
//! sorted range starts costs a sixth of that. Rebuilding the ranges is
//! linear in the number of prefixes, so it is not done on every insert (a
//! flood of new clients would make that quadratic): a change marks them
//! stale, lookups use the trie until [`ClusterMap::refresh`] (each load tick)
//! rebuilds them.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// Where a value lives in `ClusterMap::slots`.
type Slot = u32;
const NO_SLOT: Slot = Slot::MAX;

pub struct ClusterMap<T> {
    v4: PrefixMap<Ipv4Net, Slot>,
    v6: PrefixMap<Ipv6Net, Slot>,
    slots: Vec<Option<(IpNet, T)>>,
    free: Vec<Slot>,
    /// Per family (IPv4, IPv6); `None` while stale.
    ranges: Option<[Ranges; 2]>,
}

impl<T> Default for ClusterMap<T> {
    fn default() -> Self {
        ClusterMap {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            ranges: None,
        }
    }
}

impl<T> ClusterMap<T> {
    /// The longest prefix holding `addr`, and its value.
    pub fn longest_match(&self, addr: IpAddr) -> Option<(IpNet, &T)> {
        let slot = match (&self.ranges, addr) {
            (Some([v4, _]), IpAddr::V4(a)) => v4.owner(u128::from(u32::from(a))),
            (Some([_, v6]), IpAddr::V6(a)) => v6.owner(u128::from(a)),
            (None, IpAddr::V4(a)) => self.v4.get_lpm(&Ipv4Net::from(a)).map(|(_, s)| *s),
            (None, IpAddr::V6(a)) => self.v6.get_lpm(&Ipv6Net::from(a)).map(|(_, s)| *s),
        }?;
        let (prefix, value) = self.slots.get(slot as usize)?.as_ref()?;
        Some((*prefix, value))
    }

    /// The longest prefix in the map that contains `prefix` (or is it).
    pub fn longest_match_prefix(&self, prefix: &IpNet) -> Option<IpNet> {
        match prefix {
            IpNet::V4(p) => self.v4.get_lpm_prefix(p).map(IpNet::V4),
            IpNet::V6(p) => self.v6.get_lpm_prefix(p).map(IpNet::V6),
        }
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&T> {
        let slot = self.slot_of(prefix)?;
        self.slots[slot as usize].as_ref().map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut T> {
        let slot = self.slot_of(prefix)?;
        self.slots[slot as usize].as_mut().map(|(_, v)| v)
    }

    fn slot_of(&self, prefix: &IpNet) -> Option<Slot> {
        match prefix {
            IpNet::V4(p) => self.v4.get(p).copied(),
            IpNet::V6(p) => self.v6.get(p).copied(),
        }
    }

    /// Sets the value of `prefix` (host bits cleared), replacing any.
    pub fn insert(&mut self, prefix: IpNet, value: T) {
        let prefix = prefix.trunc();
        if let Some(slot) = self.slot_of(&prefix) {
            self.slots[slot as usize] = Some((prefix, value));
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((prefix, value));
                slot
            }
            None => {
                self.slots.push(Some((prefix, value)));
                (self.slots.len() - 1) as Slot
            }
        };
        match prefix {
            IpNet::V4(p) => self.v4.insert(p, slot),
            IpNet::V6(p) => self.v6.insert(p, slot),
        };
        self.ranges = None;
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<T> {
        let slot = match prefix {
            IpNet::V4(p) => self.v4.remove(p),
            IpNet::V6(p) => self.v6.remove(p),
        }?;
        self.ranges = None;
        self.free.push(slot);
        self.slots[slot as usize].take().map(|(_, v)| v)
    }

    /// Whether any prefix lies strictly inside `prefix`.
    pub fn has_inner(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.children(p).any(|(c, _)| c != *p),
            IpNet::V6(p) => self.v6.children(p).any(|(c, _)| c != *p),
        }
    }

    /// Whether `prefix` or any prefix inside it is in the map.
    pub fn has_inner_or_is(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(p) => self.v4.children(p).next().is_some(),
            IpNet::V6(p) => self.v6.children(p).next().is_some(),
        }
    }

    /// In the tries' order: IPv4 first, each prefix before those inside it.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> {
        self.ordered_slots()
            .filter_map(|slot| self.slots[slot as usize].as_ref())
            .map(|(prefix, value)| (*prefix, value))
    }

    /// In the order of [`ClusterMap::iter`].
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpNet, &mut T)> {
        let order: Vec<Slot> = self.ordered_slots().collect();
        let mut values: Vec<Option<&mut (IpNet, T)>> =
            self.slots.iter_mut().map(Option::as_mut).collect();
        order
            .into_iter()
            .filter_map(move |slot| values[slot as usize].take())
            .map(|(prefix, value)| (*prefix, value))
    }

    fn ordered_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        let v4 = self.v4.iter().map(|(_, slot)| *slot);
        let v6 = self.v6.iter().map(|(_, slot)| *slot);
        v4.chain(v6)
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Rebuilds the longest-match ranges if a change made them stale.
    pub fn refresh(&mut self) {
        if self.ranges.is_some() {
            return;
        }
        let v4 = self.v4.iter().map(|(p, slot)| {
            let start = u128::from(u32::from(p.network()));
            (start, start + (1u128 << (32 - p.prefix_len())) - 1, *slot)
        });
        let v6 = self.v6.iter().map(|(p, slot)| {
            let start = u128::from(p.network());
            let host_bits = u128::MAX.checked_shr(u32::from(p.prefix_len()));
            (start, start | host_bits.unwrap_or(0), *slot)
        });
        self.ranges = Some([Ranges::build(v4), Ranges::build(v6)]);
    }
}

/// One family's address space cut into disjoint ranges, in order: range `i`
/// runs from `starts[i]` up to the next start and belongs to the slot
/// `owners[i]` (the longest prefix holding it), or to none.
#[derive(Debug)]
struct Ranges {
    starts: Vec<u128>,
    owners: Vec<Slot>,
}

impl Ranges {
    /// From prefixes as (first address, last address, slot), each prefix
    /// before the prefixes inside it (the tries' order).
    fn build(prefixes: impl Iterator<Item = (u128, u128, Slot)>) -> Ranges {
        let mut ranges = Ranges {
            starts: vec![0],
            owners: vec![NO_SLOT],
        };
        // The prefixes holding the current address, innermost last.
        let mut open: Vec<(u128, Slot)> = Vec::new();
        for (first, last, slot) in prefixes {
            ranges.close(&mut open, Some(first));
            ranges.push(first, slot);
            open.push((last, slot));
        }
        ranges.close(&mut open, None);
        ranges
    }

    /// Ends the open prefixes that end before `next` (all, for `None`):
    /// past each, the address space goes back to the prefix around it.
    fn close(&mut self, open: &mut Vec<(u128, Slot)>, next: Option<u128>) {
        while let Some(&(last, _)) = open.last() {
            if next.is_some_and(|first| first <= last) {
                return;
            }
            open.pop();
            if let Some(after) = last.checked_add(1) {
                self.push(after, open.last().map_or(NO_SLOT, |(_, slot)| *slot));
            }
        }
    }

    fn push(&mut self, start: u128, owner: Slot) {
        if self.starts.last() == Some(&start) {
            // A prefix starting where another range starts is the narrower one.
            self.owners.pop();
            self.starts.pop();
        }
        if self.owners.last() != Some(&owner) {
            self.starts.push(start);
            self.owners.push(owner);
        }
    }

    fn owner(&self, addr: u128) -> Option<Slot> {
        let after = self.starts.partition_point(|start| *start <= addr);
        let owner = *self.owners.get(after.checked_sub(1)?)?;
        (owner != NO_SLOT).then_some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_innermost_prefix_wins_and_gaps_have_none() {
        let mut map = ClusterMap::default();
        for (p, v) in [("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 3)] {
            map.insert(net(p), v);
        }
        map.insert(net("2001:db8::/32"), 6);
        map.refresh();
        let at = |a: &str| map.longest_match(a.parse().unwrap()).map(|(p, v)| (p, *v));
        assert_eq!(at("10.1.2.9"), Some((net("10.1.2.0/24"), 3)));
        assert_eq!(at("10.1.3.0"), Some((net("10.1.0.0/16"), 2)));
        assert_eq!(at("10.2.0.0"), Some((net("10.0.0.0/8"), 1)));
        assert_eq!(at("11.0.0.0"), None);
        assert_eq!(at("9.255.255.255"), None);
        assert_eq!(at("2001:db8:ffff::1"), Some((net("2001:db8::/32"), 6)));
        assert_eq!(at("2001:db9::"), None);
    }

    #[test]
    fn a_change_is_seen_before_the_next_refresh() {
        let mut map = ClusterMap::default();
        map.insert(net("10.0.0.0/8"), 1);
        map.refresh();
        map.insert(net("10.1.0.0/16"), 2);
        let at = |map: &ClusterMap<i32>| {
            map.longest_match("10.1.0.1".parse().unwrap())
                .map(|(_, v)| *v)
        };
        assert_eq!(at(&map), Some(2));
        map.refresh();
        assert_eq!(at(&map), Some(2));
        assert_eq!(map.remove(&net("10.1.0.0/16")), Some(2));
        assert_eq!(at(&map), Some(1));
    }

    fn prefixes() -> impl Strategy<Value = Vec<(IpNet, bool)>> {
        // Few distinct high bits, and often the lowest or highest address
        // below them, so that prefixes nest, share edges and touch.
        let low = || prop_oneof![Just(0u128), Just(u128::MAX), any::<u128>()];
        let v4 = (0u32..8, 0u8..=32, low()).prop_map(|(high, len, low)| {
            let addr = std::net::Ipv4Addr::from((high << 29) | (low as u32 >> 3));
            IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
        });
        let v6 = (0u128..8, 0u8..=128, low()).prop_map(|(high, len, low)| {
            let addr = std::net::Ipv6Addr::from((high << 125) | (low >> 3));
            IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
        });
        proptest::collection::vec((prop_oneof![v4, v6], any::<bool>()), 0..40)
    }

    proptest! {
        /// The ranges answer as the trie does, after inserts and removals
        /// (`true`: remove the prefix if it is there).
        #[test]
        fn ranges_agree_with_the_trie(changes in prefixes(), probes in proptest::collection::vec(any::<(bool, u128)>(), 1..64)) {
            let mut map = ClusterMap::default();
            for (i, (prefix, remove)) in changes.iter().enumerate() {
                if *remove {
                    map.remove(prefix);
                } else {
                    map.insert(*prefix, i);
                }
            }
            let mut addrs: Vec<IpAddr> = probes
                .iter()
                .map(|(v4, bits)| match v4 {
                    true => IpAddr::from(std::net::Ipv4Addr::from(*bits as u32)),
                    false => IpAddr::from(std::net::Ipv6Addr::from(*bits)),
                })
                .collect();
            // The edges of every prefix, and just past them.
            for (prefix, _) in &changes {
                addrs.push(prefix.network());
                addrs.push(prefix.broadcast());
                let next = match prefix.broadcast() {
                    IpAddr::V4(a) => IpAddr::from(std::net::Ipv4Addr::from(u32::from(a).wrapping_add(1))),
                    IpAddr::V6(a) => IpAddr::from(std::net::Ipv6Addr::from(u128::from(a).wrapping_add(1))),
                };
                addrs.push(next);
            }
            let by_trie: Vec<_> = addrs.iter().map(|a| map.longest_match(*a).map(|(p, v)| (p, *v))).collect();
            map.refresh();
            let by_ranges: Vec<_> = addrs.iter().map(|a| map.longest_match(*a).map(|(p, v)| (p, *v))).collect();
            prop_assert_eq!(by_trie, by_ranges);
        }
    }
}
