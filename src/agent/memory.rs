//! What the agent remembers between probe rounds, in bounded memory: the
//! address that answered last per sub-block, and the client addresses its
//! access log showed lately per sub-block (SPEC section 2, "Silent
//! targets"). A server may hand out up to a million sub-blocks per service,
//! so neither store may grow with the work: both forget the entries used
//! least recently.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use ipnet::IpNet;

/// A map of at most `capacity` entries that forgets the least recently used
/// ones first, approximately: entries live in the current generation; when
/// it is full it becomes the previous one, and what was left in the old
/// previous one (not used for a whole generation) is dropped. An entry used
/// again moves back to the current generation. O(1) per use, no list to keep.
pub struct Bounded<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    generation: usize,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    pub fn new(capacity: usize) -> Bounded<K, V> {
        Bounded {
            current: HashMap::new(),
            previous: HashMap::new(),
            generation: (capacity / 2).max(1),
        }
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.promote(key);
        self.current.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.previous.remove(&key);
        if !self.current.contains_key(&key) {
            self.make_room();
        }
        self.current.insert(key, value);
    }

    pub fn remove(&mut self, key: &K) {
        self.current.remove(key);
        self.previous.remove(key);
    }

    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.promote(&key);
        if !self.current.contains_key(&key) {
            self.make_room();
        }
        self.current.entry(key).or_insert_with(make)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Moves `key` from the previous generation to the current one.
    fn promote(&mut self, key: &K) {
        if self.current.contains_key(key) {
            return;
        }
        if let Some((key, value)) = self.previous.remove_entry(key) {
            self.make_room();
            self.current.insert(key, value);
        }
    }

    /// Starts a new generation if the current one is full.
    fn make_room(&mut self) {
        if self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
    }
}

/// Sub-blocks remembered at most, each for either store.
pub const MAX_BLOCKS: usize = 100_000;
/// Recent client addresses kept per sub-block: more than the tries a target
/// gets, fewer would leave a busy block with one stale address.
const SEEN_PER_BLOCK: usize = 4;

/// The sub-block holding `addr`, at the given lengths (IPv4-mapped IPv6
/// addresses count as IPv4).
pub fn sub_block(addr: IpAddr, block_v4: u8, block_v6: u8) -> Option<IpNet> {
    let addr = addr.to_canonical();
    let len = if addr.is_ipv4() { block_v4 } else { block_v6 };
    IpNet::new(addr, len).ok().map(|net| net.trunc())
}

/// Client addresses the access log showed lately, a few per sub-block,
/// newest first: real hosts that talked to this mirror, so likely to
/// answer a probe where the subnet's first host does not.
pub struct Sightings {
    block_v4: u8,
    block_v6: u8,
    blocks: Bounded<IpNet, Vec<IpAddr>>,
}

impl Sightings {
    pub fn new(block_v4: u8, block_v6: u8) -> Sightings {
        Sightings {
            block_v4,
            block_v6,
            blocks: Bounded::new(MAX_BLOCKS),
        }
    }

    pub fn record(&mut self, client: IpAddr) {
        let client = client.to_canonical();
        let Some(block) = sub_block(client, self.block_v4, self.block_v6) else {
            return;
        };
        let recent = self.blocks.get_or_insert_with(block, Vec::new);
        recent.retain(|a| *a != client);
        recent.insert(0, client);
        recent.truncate(SEEN_PER_BLOCK);
    }

    /// The addresses seen inside `block`, newest first. `block` is the
    /// server's sub-block; the agent's `--block-v4`/`--block-v6` should
    /// match the server's, else only the agent's sub-block holding the
    /// start of `block` is looked at.
    pub fn in_block(&mut self, block: IpNet) -> Vec<IpAddr> {
        let Some(key) = sub_block(block.network(), self.block_v4, self.block_v6) else {
            return Vec::new();
        };
        self.blocks
            .get(&key)
            .map(|recent| {
                recent
                    .iter()
                    .filter(|a| block.contains(*a))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn bounded_keeps_what_is_used_and_never_grows_past_its_capacity() {
        let mut map = Bounded::new(4);
        for k in 0..3 {
            map.insert(k, k * 10);
        }
        // 0 and 1 went to the previous generation when 2 came; using 0
        // brings it back, so the next generation change drops only 1.
        assert_eq!(map.get(&0), Some(&0));
        map.insert(3, 30);
        map.insert(4, 40);
        assert_eq!(map.get(&1), None, "1 was not used for a generation");
        assert_eq!(map.get(&0), Some(&0));
        for k in 5..1000 {
            map.insert(k, k);
            assert!(map.len() <= 4);
        }
        map.remove(&999);
        assert_eq!(map.get(&999), None);
        *map.get_or_insert_with(7, || 0) += 1;
        assert_eq!(map.get(&7), Some(&1));
    }

    #[test]
    fn sightings_keep_a_few_recent_clients_per_sub_block_newest_first() {
        let mut seen = Sightings::new(24, 48);
        for a in [
            "198.51.100.7",
            "198.51.100.9",
            "203.0.113.5",
            "198.51.100.7",
        ] {
            seen.record(ip(a));
        }
        assert_eq!(
            seen.in_block(net("198.51.100.0/24")),
            [ip("198.51.100.7"), ip("198.51.100.9")]
        );
        for last in 10..20 {
            seen.record(ip(&format!("198.51.100.{last}")));
        }
        assert_eq!(seen.in_block(net("198.51.100.0/24")).len(), SEEN_PER_BLOCK);
        assert_eq!(
            seen.in_block(net("198.51.100.0/24"))[0],
            ip("198.51.100.19")
        );
        assert!(seen.in_block(net("192.0.2.0/24")).is_empty());
        seen.record(ip("::ffff:192.0.2.1"));
        assert_eq!(seen.in_block(net("192.0.2.0/24")), [ip("192.0.2.1")]);
        seen.record(ip("2001:db8:1::7"));
        assert_eq!(seen.in_block(net("2001:db8:1::/48")), [ip("2001:db8:1::7")]);
    }

    #[test]
    fn sightings_in_a_narrower_server_block_are_filtered_to_it() {
        let mut seen = Sightings::new(24, 48);
        seen.record(ip("198.51.100.7"));
        seen.record(ip("198.51.100.200"));
        assert_eq!(seen.in_block(net("198.51.100.0/25")), [ip("198.51.100.7")]);
    }
}
