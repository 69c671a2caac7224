//! What the engine shows of itself: per-service quality and answer counts,
//! measurement ages, mirror states, probe work for agents, service
//! summaries and the learned clusters, for the API, metrics and the status
//! page. Read-only views over the engine's tables.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;

use super::{Engine, MirrorId, Score, Seconds, ServiceTable, normalize_name};

/// Probe work for a mirror: a target to measure and the sub-block it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub target: IpNet,
    pub block: IpNet,
    /// For a subnet target: resolver addresses the server saw asking with
    /// it, which the agent tries before the subnet's own hosts.
    pub resolvers: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualityView {
    pub service: String,
    pub complete: u64,
    pub learning: u64,
    pub best: u64,
    pub regret_us: u64,
    pub answer_changes: u64,
    /// Answers that explored a silent sub-block.
    pub explored: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerCount {
    pub service: String,
    pub by_mirror: Vec<(String, u64)>,
    pub failed_open: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorState {
    pub name: String,
    pub drained: bool,
    pub down: bool,
}

#[derive(Clone, Debug)]
pub struct ServiceSummary {
    pub name: String,
    pub zone: String,
    pub mirrors: Vec<String>,
    /// Each mirror's `capacity_qps` for the service, in `mirrors` order.
    pub capacity_qps: Vec<Option<u64>>,
    pub clusters: usize,
    pub complete: usize,
}

#[derive(Clone, Debug)]
pub struct ClusterView {
    pub prefix: IpNet,
    pub complete: bool,
    /// The mirror a client of the cluster gets now.
    pub mirror: Option<String>,
    /// Moved off its best mirror, which is over capacity.
    pub offloaded: bool,
    /// Latency per mirror as the decision uses it; unmeasured mirrors absent.
    pub rtt: Vec<(String, Score)>,
    pub blocks: usize,
    pub queries: u64,
    /// Silent sub-blocks being explored.
    pub exploring: usize,
}

impl Engine {
    /// How good each service's answers are, as far as its table knows.
    pub fn quality(&self) -> Vec<QualityView> {
        let tables: Vec<Arc<ServiceTable>> = self.tables.lock().values().cloned().collect();
        tables
            .iter()
            .map(|t| {
                let clusters = t.clusters.read();
                let q = clusters.quality();
                QualityView {
                    service: t.config.read().name.clone(),
                    complete: q.complete.load(Ordering::Relaxed),
                    learning: q.learning.load(Ordering::Relaxed),
                    best: q.best.load(Ordering::Relaxed),
                    regret_us: q.regret_us.load(Ordering::Relaxed),
                    answer_changes: q.answer_changes.load(Ordering::Relaxed),
                    explored: q.explored.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Mean and largest age of the stored measurements, per mirror.
    pub fn measurement_ages(&self, now: Seconds) -> Vec<(String, f64, Seconds)> {
        let bindings = self.bindings.read();
        let mut ages: BTreeMap<MirrorId, (f64, u64, Seconds)> = BTreeMap::new();
        for (_, mirror, m) in self.store.read().iter() {
            let age = now.saturating_sub(m.time);
            let entry = ages.entry(mirror).or_insert((0.0, 0, 0));
            entry.0 += age as f64;
            entry.1 += 1;
            entry.2 = entry.2.max(age);
        }
        ages.into_iter()
            .filter_map(|(id, (sum, n, max))| {
                Some((
                    bindings.mirror_names.get(usize::from(id))?.clone(),
                    sum / n as f64,
                    max,
                ))
            })
            .collect()
    }

    /// Answers given per service and mirror, and fail-open answers per service.
    pub fn answer_counts(&self) -> Vec<AnswerCount> {
        let tables: Vec<Arc<ServiceTable>> = self.tables.lock().values().cloned().collect();
        let bindings = self.bindings.read();
        tables
            .iter()
            .map(|t| AnswerCount {
                service: t.config.read().name.clone(),
                by_mirror: t
                    .clusters
                    .read()
                    .answered()
                    .filter(|(_, n)| *n > 0)
                    .filter_map(|(id, n)| {
                        Some((bindings.mirror_names.get(usize::from(id))?.clone(), n))
                    })
                    .collect(),
                failed_open: t.failed_open.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Whether some service answers with mirror `name`.
    pub fn has_mirror(&self, name: &str) -> bool {
        self.known_mirror(name).is_some()
    }

    pub(super) fn known_mirror(&self, name: &str) -> Option<MirrorId> {
        let bindings = self.bindings.read();
        bindings
            .mirror_ids
            .get(name)
            .copied()
            .filter(|id| bindings.services_of.contains_key(id))
    }

    /// Every mirror the zones name, with whether it is drained and down.
    pub fn mirror_states(&self) -> Vec<MirrorState> {
        let bindings = self.bindings.read();
        let mut states: Vec<MirrorState> = bindings
            .services_of
            .keys()
            .map(|id| MirrorState {
                name: bindings.mirror_names[usize::from(*id)].clone(),
                drained: self.status.is_drained(*id),
                down: self.status.is_down(*id),
            })
            .collect();
        states.sort_by(|a, b| a.name.cmp(&b.name));
        states
    }

    /// Probe work for `mirror`: sub-blocks of every service using it that lack
    /// a fresh measurement from it, never-measured and oldest first, one target
    /// per sub-block, at most `limit`. `None` for an unknown mirror.
    pub fn probes(&self, mirror: &str, now: Seconds, limit: usize) -> Option<Vec<Probe>> {
        let bindings = self.bindings.read();
        let id = *bindings.mirror_ids.get(mirror)?;
        let store = self.store.read();
        let mut wanted: BTreeMap<IpNet, (Seconds, IpNet, Option<IpAddr>)> = BTreeMap::new();
        for table in bindings.services_of.get(&id).into_iter().flatten() {
            let config = table.config.read();
            let clusters = table.clusters.read();
            for (_, cluster) in clusters.iter() {
                for (block, info, _) in cluster.blocks.iter() {
                    let last = store.get(block).and_then(|m| m.get(id));
                    if last.is_some_and(|m| m.is_fresh(now, config.max_age)) {
                        continue;
                    }
                    let age_key = last.map_or(0, |m| m.time);
                    let target = info.target.unwrap_or(*block);
                    wanted
                        .entry(*block)
                        .or_insert((age_key, target, info.resolver()));
                }
            }
        }
        let mut probes: Vec<(Seconds, Probe)> = wanted
            .into_iter()
            .map(|(block, (time, target, resolver))| {
                let probe = Probe {
                    target,
                    block,
                    resolvers: resolver.into_iter().collect(),
                };
                (time, probe)
            })
            .collect();
        probes.sort_by_key(|(time, p)| (*time, p.block));
        Some(probes.into_iter().take(limit).map(|(_, p)| p).collect())
    }

    pub fn services(&self) -> Vec<ServiceSummary> {
        self.tables
            .lock()
            .values()
            .map(|table| {
                let config = table.config.read();
                let clusters = table.clusters.read();
                ServiceSummary {
                    name: config.name.clone(),
                    zone: table.zone.read().clone(),
                    mirrors: config.mirror_names.clone(),
                    capacity_qps: config.capacity_qps.clone(),
                    clusters: clusters.len(),
                    complete: clusters.iter().filter(|(_, c)| c.is_complete()).count(),
                }
            })
            .collect()
    }

    /// The learned table of the service named `fqdn` (with or without the final dot).
    pub fn clusters(&self, fqdn: &str, now: Seconds) -> Option<(String, Vec<ClusterView>)> {
        let table = Arc::clone(self.tables.lock().get(&normalize_name(fqdn))?);
        let config = Arc::clone(&table.config.read());
        let bindings = self.bindings.read();
        let store = self.store.read();
        let inputs = self.inputs(&config, &store, now);
        let clusters = table.clusters.read();
        let views = clusters
            .iter()
            .map(|(prefix, cluster)| self.view(prefix, cluster, &bindings.mirror_names, &inputs))
            .collect();
        Some((config.name.clone(), views))
    }
}
