//! What a service's table knows of the service's configuration: its
//! mirrors, sub-block and initial cluster lengths, the operator's prefix
//! list, and from them where a client's sub-block and cluster begin.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixSet;

use crate::steering::decision::Policy;
use crate::steering::measurements::{MirrorId, Seconds};
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
    pub(super) fn creation_prefix(&self, addr: IpAddr) -> IpNet {
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

    pub(in crate::steering) fn policy(&self) -> Policy<'_> {
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
