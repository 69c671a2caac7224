//! Steering: which mirror answers a client of a service, learned from
//! measured latency (SPEC section 2, the method of the patent claims). Pure
//! and synchronous: no I/O, no wire formats. The DNS front end asks a
//! [`ServiceHandle`] for a decision, as gdnsd's core asks a plugin; the API
//! feeds measurements to the [`Engine`].
//!
//! - `measurements`: RTTs per mirror (site) and sub-block, shared by services.
//! - `decision`: the rules as pure functions over samples: ranking,
//!   hysteresis, completeness, which parts to carve.
//! - `region`: applies them to a root region of a service's table at once:
//!   what a silent sub-block's timeouts mean, the parts and their answers,
//!   which silent sub-blocks to explore.
//! - `table`: a service's cluster tries, answering (round robin, ranking,
//!   explorations) and the sub-block containers.
//! - `batch`: measurement batches checked whole, then applied.
//! - `views`: what the engine shows of itself (quality, answer counts,
//!   probe work, clusters) to the API, metrics and the status page.
//!
//! Concurrency: each service's clusters sit behind one `RwLock`. Answering a
//! client whose sub-block is known takes only the read lock (query counters
//! are atomics); a batch takes the write lock per service for the time it
//! takes to re-decide the clusters it touched, never across a whole batch of
//! services, and measurements are stored under a lock of their own first.
//! Copy-on-write snapshots would spare readers even that short wait, at the
//! price of copying a table of a million clusters per batch.

mod batch;
mod decision;
mod events;
mod explain;
mod image;
mod load;
mod measurements;
mod messages;
mod query;
mod region;
mod report;
mod status;
mod table;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

pub use batch::{Accepted, BatchError, MeasurementRequest, parse_client};
pub use decision::Score;
pub use events::{
    CAPACITY as EVENT_CAPACITY, Choice, Event, EventKind, EventLog, EventPage, Regroup,
};
pub use explain::{Explanation, ExplorationFacts, MirrorFacts};
pub use image::Image;
pub use load::Move;
pub use measurements::{Measurement, Method, MirrorId, Rtt, Seconds};
pub use messages::probe_work;
pub use query::{ClusterPage, ClusterQuery, SortKey};
pub use report::warn_failing_open;
pub use table::Decision;
pub use views::{AnswerCount, ClusterView, MirrorState, Probe, QualityView, ServiceSummary};

use measurements::MeasurementStore;
use region::Inputs;
use status::MirrorStatus;
use table::{Clusters, OperatorPrefixes, ServiceConfig, family_index};

use crate::zone::{Family, Service, ZoneSet};

pub fn now() -> Seconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The learned state of every service and every mirror.
#[derive(Default)]
pub struct Engine {
    store: RwLock<MeasurementStore>,
    bindings: RwLock<Bindings>,
    tables: Mutex<BTreeMap<String, Arc<ServiceTable>>>,
    status: Arc<MirrorStatus>,
    /// Load figures agents reported: (load, when).
    reported_load: Mutex<HashMap<MirrorId, (f64, Seconds)>>,
    /// Sub-blocks a service may hold (`serve --max-blocks`); 0 until set.
    max_blocks: std::sync::atomic::AtomicUsize,
    /// When each mirror's agent last posted a passive (access-log) RTT:
    /// silent sub-blocks are explored only with mirrors that do.
    passive_seen: Mutex<HashMap<MirrorId, Seconds>>,
    /// Recent splits, merges, switches, load moves, health changes,
    /// drains and reloads (`GET /v1/events`).
    events: EventLog,
    /// Load ticks run ([`Engine::rebalance`]), moves or not.
    load_ticks: AtomicU64,
}

/// `serve --max-blocks` when nothing sets it.
pub const DEFAULT_MAX_BLOCKS: usize = 1_000_000;

/// Which services use which mirror, as of the last zone load.
#[derive(Default)]
struct Bindings {
    mirror_ids: HashMap<String, MirrorId>,
    mirror_names: Vec<String>,
    services_of: HashMap<MirrorId, Vec<Arc<ServiceTable>>>,
}

/// One service's clusters; outlives zone reloads while the service keeps its name.
pub struct ServiceTable {
    clusters: RwLock<Clusters>,
    /// Answers with every mirror because none was available.
    failed_open: AtomicU64,
    config: RwLock<Arc<ServiceConfig>>,
    zone: RwLock<String>,
    /// Sub-blocks first seen by a query since the state writer last took
    /// them: they are journaled, so a crash keeps them and their probe work.
    seen: Mutex<Vec<SeenBlock>>,
}

/// Sub-blocks waiting to be journaled, at most: a flood of new client
/// networks is not worth a journal as large, and loses only probe work.
const SEEN_PENDING: usize = 65_536;

/// A sub-block a query brought, as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeenBlock {
    pub service: String,
    pub block: IpNet,
    /// The query's client (its ECS subnet or its source address).
    pub client: IpNet,
    pub resolver: IpAddr,
}

/// A service as one zone snapshot sees it: its table and its configuration.
#[derive(Clone)]
pub struct ServiceHandle {
    table: Arc<ServiceTable>,
    config: Arc<ServiceConfig>,
    status: Arc<MirrorStatus>,
}

impl ServiceHandle {
    /// The mirror (an index into the service's mirrors) that answers `client`
    /// asking for `family` addresses; `None` when no mirror has an address of
    /// that family. Drained and down mirrors get no answers; when that leaves
    /// none, the service fails open: [`Decision::mirror`] is `None`.
    pub fn decide(&self, client: IpNet, family: Family) -> Option<Decision> {
        self.decide_for(client, client.addr(), family)
    }

    /// [`ServiceHandle::decide`] for a query that `resolver` sent: for an
    /// ECS client, the resolver becomes an address to probe for its subnet.
    pub fn decide_for(&self, client: IpNet, resolver: IpAddr, family: Family) -> Option<Decision> {
        let with_family = self.config.family_masks[family_index(family)];
        if with_family == 0 {
            return None;
        }
        let wanted = self.status.available(&self.config.mirror_ids, with_family);
        if wanted == 0 {
            self.table.failed_open.fetch_add(1, Ordering::Relaxed);
            return Some(Decision {
                mirror: None,
                scope: 0,
                exploring: false,
            });
        }
        if let Some(d) =
            table::answer_known(&self.table.clusters.read(), &self.config, &client, wanted)
        {
            return Some(d);
        }
        let (decision, is_new) = table::answer_new(
            &mut self.table.clusters.write(),
            &self.config,
            &client,
            resolver,
            wanted,
        )?;
        if is_new {
            let mut seen = self.table.seen.lock();
            if seen.len() < SEEN_PENDING {
                seen.push(SeenBlock {
                    service: self.config.name.clone(),
                    block: self.config.block_of(&client),
                    client,
                    resolver,
                });
            }
        }
        Some(decision)
    }
}

impl Engine {
    /// The handles for every service of `zones`, zone by zone in the set's
    /// order. Tables of services that still exist keep what they learned;
    /// tables of services that are gone are dropped.
    pub fn bind(&self, zones: &ZoneSet) -> Vec<Vec<ServiceHandle>> {
        let mut tables = self.tables.lock();
        let mut bindings = self.bindings.write();
        let mut kept = BTreeMap::new();
        let mut services_of: HashMap<MirrorId, Vec<Arc<ServiceTable>>> = HashMap::new();
        let handles = zones
            .zones()
            .iter()
            .map(|zone| {
                zone.services
                    .iter()
                    .map(|service| {
                        let config = Arc::new(service_config(service, &mut bindings));
                        let mirrors = bindings.mirror_names.len();
                        let table =
                            self.table_for(&tables, &config, &zone.origin.to_ascii(), mirrors);
                        for id in &config.mirror_ids {
                            services_of.entry(*id).or_default().push(Arc::clone(&table));
                        }
                        kept.insert(config.name.clone(), Arc::clone(&table));
                        ServiceHandle {
                            table,
                            config,
                            status: Arc::clone(&self.status),
                        }
                    })
                    .collect()
            })
            .collect();
        bindings.services_of = services_of;
        *tables = kept;
        handles
    }

    /// The existing table of the service, re-decided when its mirrors changed,
    /// or a new one.
    fn table_for(
        &self,
        tables: &BTreeMap<String, Arc<ServiceTable>>,
        config: &Arc<ServiceConfig>,
        zone: &str,
        mirrors: usize,
    ) -> Arc<ServiceTable> {
        let Some(table) = tables.get(&config.name) else {
            let mut clusters = Clusters::default();
            clusters.count_mirrors(mirrors);
            clusters.set_max_blocks(self.max_blocks());
            return Arc::new(ServiceTable {
                clusters: RwLock::new(clusters),
                failed_open: AtomicU64::new(0),
                config: RwLock::new(Arc::clone(config)),
                zone: RwLock::new(zone.to_string()),
                seen: Mutex::new(Vec::new()),
            });
        };
        table.clusters.write().count_mirrors(mirrors);
        table.clusters.write().set_max_blocks(self.max_blocks());
        let mirrors_changed = table.config.read().mirror_ids != config.mirror_ids;
        *table.config.write() = Arc::clone(config);
        *table.zone.write() = zone.to_string();
        if mirrors_changed {
            let mut clusters = table.clusters.write();
            clusters.forget_explorations();
            let all: BTreeSet<IpNet> = clusters.iter().map(|(p, _)| p).collect();
            let (store, now) = (self.store.read(), now());
            let inputs = self.inputs(config, &store, now);
            table::reevaluate(&mut clusters, &inputs, all);
        }
        Arc::clone(table)
    }

    /// What the rules read besides a table, as of `now`.
    fn inputs<'a>(
        &'a self,
        config: &'a ServiceConfig,
        store: &'a MeasurementStore,
        now: Seconds,
    ) -> Inputs<'a> {
        let seen = self.passive_seen.lock();
        let passive = config
            .mirror_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| seen.get(id).is_some_and(|t| t + config.max_age >= now))
            .fold(0u64, |mask, (local, _)| mask | 1 << local);
        Inputs {
            config,
            store,
            now,
            passive,
            events: Some(&self.events),
        }
    }

    /// The sub-blocks queries brought since the last call, for the journal.
    pub fn take_seen(&self) -> Vec<SeenBlock> {
        let tables: Vec<Arc<ServiceTable>> = self.tables.lock().values().cloned().collect();
        tables
            .iter()
            .flat_map(|t| std::mem::take(&mut *t.seen.lock()))
            .collect()
    }

    /// Registers journaled sub-blocks again (their queries are not counted),
    /// in services that still exist.
    pub fn restore_seen(&self, seen: &[SeenBlock]) {
        let tables = self.tables.lock();
        for s in seen {
            let Some(table) = tables.get(&s.service) else {
                continue;
            };
            let config = Arc::clone(&table.config.read());
            table::register_queried(&mut table.clusters.write(), &config, s);
        }
    }

    /// Drains (`true`) or undrains mirror `name`: a drained mirror gets no
    /// new answers, its clusters go to their next best at once. `None` for a
    /// mirror no zone names; else whether anything changed.
    pub fn set_drained(&self, name: &str, drained: bool) -> Option<bool> {
        let id = self.known_mirror(name)?;
        let changed = self.status.set_drained(id, drained);
        if changed {
            let mirror = name.to_string();
            self.events
                .record(now(), EventKind::Drain { mirror, drained });
        }
        Some(changed)
    }

    /// Marks mirror `name` down or up, as its health check found.
    pub fn set_down(&self, name: &str, down: bool) -> Option<bool> {
        let id = self.known_mirror(name)?;
        let changed = self.status.set_down(id, down);
        if changed {
            let (mirror, healthy) = (name.to_string(), !down);
            self.events
                .record(now(), EventKind::Health { mirror, healthy });
        }
        Some(changed)
    }

    /// The events recorded after `since`, oldest first, at most `limit`.
    pub fn events(&self, since: u64, limit: usize) -> EventPage {
        self.events.since(since, limit)
    }

    /// Records a reload of the zones, done or refused (`Err` says why).
    pub fn record_reload(&self, trigger: &str, outcome: Result<(usize, usize), String>) {
        let trigger = trigger.to_string();
        self.events
            .record(now(), EventKind::Reload { trigger, outcome });
    }

    /// Services whose every mirror is drained or down: they answer with all
    /// of their mirrors (fail open).
    pub fn failing_open(&self) -> Vec<String> {
        self.tables
            .lock()
            .values()
            .filter_map(|t| {
                let config = t.config.read();
                let all = config.family_masks[0] | config.family_masks[1];
                (self.status.available(&config.mirror_ids, all) == 0).then(|| config.name.clone())
            })
            .collect()
    }

    /// Caps the sub-blocks each service holds; applies from the next bind.
    pub fn set_max_blocks(&self, max: usize) {
        self.max_blocks.store(max, Ordering::Relaxed);
    }

    fn max_blocks(&self) -> usize {
        match self.max_blocks.load(Ordering::Relaxed) {
            0 => DEFAULT_MAX_BLOCKS,
            n => n,
        }
    }

    /// Records the load an agent reported for `mirror` (1.0 = at capacity).
    /// `None` for a mirror no zone names.
    pub fn report_load(&self, mirror: &str, load: f64, now: Seconds) -> Option<()> {
        let id = self.known_mirror(mirror)?;
        self.reported_load.lock().insert(id, (load, now));
        Some(())
    }

    /// Fresh reported loads by mirror name.
    pub fn reported_loads(&self, now: Seconds) -> Vec<(String, f64)> {
        let bindings = self.bindings.read();
        let mut loads: Vec<(String, f64)> = self
            .fresh_reports(now)
            .into_iter()
            .filter_map(|(id, l)| Some((bindings.mirror_names.get(usize::from(id))?.clone(), l)))
            .collect();
        loads.sort_by(|a, b| a.0.cmp(&b.0));
        loads
    }

    fn fresh_reports(&self, now: Seconds) -> HashMap<MirrorId, f64> {
        self.reported_load
            .lock()
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) <= load::REPORT_TTL)
            .map(|(id, (l, _))| (*id, *l))
            .collect()
    }

    /// Load ticks run so far: a tick that moves nothing shows here.
    pub fn load_ticks(&self) -> u64 {
        self.load_ticks.load(Ordering::Relaxed)
    }

    /// One load tick over every service (see `load`): moves clusters off
    /// mirrors over capacity and back; returns the moves with mirror names.
    pub fn rebalance(&self, now: Seconds, elapsed_s: f64) -> Vec<(Move, String, String)> {
        self.load_ticks.fetch_add(1, Ordering::Relaxed);
        let tables: Vec<Arc<ServiceTable>> = self.tables.lock().values().cloned().collect();
        let reported = self.fresh_reports(now);
        let mut moves = Vec::new();
        for table in tables {
            let config = Arc::clone(&table.config.read());
            let store = self.store.read();
            let inputs = load::TickInputs {
                store: &store,
                status: &self.status,
                reported: &reported,
                now,
                elapsed: elapsed_s,
            };
            let mut clusters = table.clusters.write();
            clusters.tick = clusters.tick.wrapping_add(1);
            moves.extend(load::rebalance(&mut clusters, &config, &inputs));
        }
        let bindings = self.bindings.read();
        let name = |id: MirrorId| {
            bindings
                .mirror_names
                .get(usize::from(id))
                .cloned()
                .unwrap_or_default()
        };
        moves
            .into_iter()
            .map(|m| {
                let (from, to) = (name(m.from), name(m.to));
                let kind = EventKind::LoadMove {
                    service: m.service.clone(),
                    cluster: m.cluster,
                    from: from.clone(),
                    to: to.clone(),
                    back: m.back,
                    qps: m.qps,
                };
                self.events.record(now, kind);
                (m, from, to)
            })
            .collect()
    }
}

fn normalize_name(fqdn: &str) -> String {
    let lower = fqdn.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

impl Bindings {
    /// The id of mirror `name`, registered on first sight.
    fn mirror_id(&mut self, name: &str) -> MirrorId {
        if let Some(id) = self.mirror_ids.get(name) {
            return *id;
        }
        let id = MirrorId::try_from(self.mirror_names.len()).unwrap_or(MirrorId::MAX);
        self.mirror_ids.insert(name.to_string(), id);
        self.mirror_names.push(name.to_string());
        id
    }
}

impl Engine {
    fn mirror_id(&self, name: &str) -> MirrorId {
        self.bindings.write().mirror_id(name)
    }
}

fn service_config(service: &Service, bindings: &mut Bindings) -> ServiceConfig {
    let mirror_ids: Vec<MirrorId> = service
        .mirrors
        .iter()
        .map(|m| bindings.mirror_id(&m.name))
        .collect();
    let mask = |family| {
        (0..service.mirrors.len())
            .filter(|i| !service.records(*i, family).is_empty())
            .fold(0u64, |acc, i| acc | (1 << i))
    };
    let c = &service.clusters;
    let mut local_of = vec![
        None;
        mirror_ids
            .iter()
            .map(|id| usize::from(*id) + 1)
            .max()
            .unwrap_or(0)
    ];
    for (local, id) in mirror_ids.iter().enumerate() {
        local_of[usize::from(*id)] = u8::try_from(local).ok();
    }
    ServiceConfig {
        name: normalize_name(&service.name.to_ascii()),
        local_of,
        mirror_ids,
        mirror_names: service.mirrors.iter().map(|m| m.name.clone()).collect(),
        family_masks: [mask(Family::V4), mask(Family::V6)],
        capacity_qps: service.mirrors.iter().map(|m| m.capacity_qps).collect(),
        initial_len: [c.initial_v4, c.initial_v6],
        block_len: [c.block_v4, c.block_v6],
        operator_prefixes: OperatorPrefixes::new(&c.prefixes),
        max_age: service.max_age_s,
        margin: service.switch_margin,
    }
}
