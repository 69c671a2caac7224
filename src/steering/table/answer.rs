//! Answering a query: the client's cluster decides (its ranking, the
//! learning round robin, or an exploration of a silent sub-block), and a
//! client's first query registers its sub-block.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::blocks::Block;
use super::clusters::{Cluster, Clusters};
use super::config::ServiceConfig;
use crate::steering::region;
use crate::zone::Family;

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
pub fn register_queried(
    clusters: &mut Clusters,
    config: &ServiceConfig,
    seen: &crate::steering::SeenBlock,
) {
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
