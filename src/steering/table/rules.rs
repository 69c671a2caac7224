//! Learning: measured sub-blocks join the table, and the decision rules
//! (`region`) re-decide the regions whose clusters they touched.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::clusters::{Cluster, Clusters};
use super::config::ServiceConfig;
use crate::steering::decision::{BlockSamples, Score};
use crate::steering::region::{self, Inputs};

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
