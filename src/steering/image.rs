//! The learned state as plain data, for the state directory to persist and
//! restore: measurements by sub-block, and each service's clusters. Mirrors
//! are written by name, since ids only live as long as the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::measurements::{Measurement, MirrorId, Seconds};
use super::table::Cluster;
use super::{Engine, ServiceTable};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub mirrors: Vec<String>,
    pub blocks: Vec<BlockImage>,
    pub services: Vec<ServiceImage>,
    /// Mirrors an operator drained (by name).
    pub drained: Vec<String>,
}

/// A sub-block's measurements; mirrors as indexes into [`Image::mirrors`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockImage {
    pub block: IpNet,
    pub measurements: Vec<(u16, Measurement)>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceImage {
    pub name: String,
    pub clusters: Vec<ClusterImage>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterImage {
    pub prefix: IpNet,
    /// Best first, as indexes into [`Image::mirrors`]; empty while learning.
    pub ranking: Vec<u16>,
    pub may_enclose: bool,
    /// Sub-block, probe target, queries seen.
    pub blocks: Vec<(IpNet, Option<IpNet>, u32)>,
}

impl Engine {
    /// Everything learned, leaving out measurements taken before `cutoff`.
    pub fn export(&self, cutoff: Seconds) -> Image {
        // Lock order as in `bind`: the table list first, released, then the rest.
        let tables: Vec<Arc<ServiceTable>> = self.tables.lock().values().cloned().collect();
        let bindings = self.bindings.read();
        let store = self.store.read();
        let mut blocks: HashMap<IpNet, Vec<(u16, Measurement)>> = HashMap::new();
        for (block, mirror, m) in store.iter().filter(|(_, _, m)| m.time >= cutoff) {
            blocks.entry(block).or_default().push((mirror, m));
        }
        let mut blocks: Vec<BlockImage> = blocks
            .into_iter()
            .map(|(block, measurements)| BlockImage {
                block,
                measurements,
            })
            .collect();
        blocks.sort_by_key(|b| b.block);
        let services = tables.iter().map(|t| service_image(t)).collect();
        let drained = (0..bindings.mirror_names.len())
            .filter(|id| MirrorId::try_from(*id).is_ok_and(|id| self.status.is_drained(id)))
            .map(|id| bindings.mirror_names[id].clone())
            .collect();
        Image {
            mirrors: bindings.mirror_names.clone(),
            blocks,
            services,
            drained,
        }
    }

    /// Loads an image into an engine that has been bound to its zones:
    /// measurements of every mirror, clusters of services that still exist.
    pub fn import(&self, image: Image) {
        let ids: Vec<MirrorId> = image
            .mirrors
            .iter()
            .map(|name| self.mirror_id(name))
            .collect();
        let id_of = |index: u16| ids.get(usize::from(index)).copied();
        {
            let mut store = self.store.write();
            for b in &image.blocks {
                for (index, m) in &b.measurements {
                    if let Some(id) = id_of(*index) {
                        store.record(b.block, id, *m);
                    }
                }
            }
        }
        for name in &image.drained {
            let id = self.mirror_id(name);
            self.status.set_drained(id, true);
        }
        let tables = self.tables.lock();
        for service in image.services {
            let Some(table) = tables.get(&service.name) else {
                continue;
            };
            let mut clusters = table.clusters.write();
            for c in service.clusters {
                let ranking = c.ranking.iter().filter_map(|i| id_of(*i)).collect();
                clusters.insert(
                    c.prefix,
                    Cluster::restored(ranking, c.may_enclose, c.blocks),
                );
            }
            clusters.mark_measured(&self.store.read());
            clusters.recount();
        }
    }

    /// Forgets measurements taken before `cutoff`.
    pub fn compact(&self, cutoff: Seconds) {
        self.store.write().compact(cutoff);
    }

    /// The longest `max_age_s` of any service: what compaction must keep.
    pub fn longest_max_age(&self) -> Seconds {
        self.tables
            .lock()
            .values()
            .map(|t| t.config.read().max_age)
            .max()
            .unwrap_or(0)
    }
}

fn service_image(table: &ServiceTable) -> ServiceImage {
    let clusters = table.clusters.read();
    ServiceImage {
        name: table.config.read().name.clone(),
        clusters: clusters
            .iter()
            .map(|(prefix, c)| ClusterImage {
                prefix,
                ranking: c.ranking.clone(),
                may_enclose: c.may_enclose(),
                blocks: c
                    .blocks
                    .iter()
                    .map(|(p, b, activity)| {
                        (*p, b.target, activity.queries.load(Ordering::Relaxed))
                    })
                    .collect(),
            })
            .collect(),
    }
}
