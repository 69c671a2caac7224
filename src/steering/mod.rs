//! Steering: which mirror answers a client of a service, and how widely that
//! answer holds (the ECS scope). Pure decisions, no I/O, no wire formats: the
//! DNS front end hands in a client prefix and a family and gets a mirror index
//! back, as gdnsd's core asks a plugin.
//!
//! This first version answers every client round robin across the mirrors
//! that have an address of the asked family, with the scope of the cluster the
//! client will belong to (the configured initial length). Clusters, learning
//! and splitting build on this interface.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use parking_lot::Mutex;

use crate::zone::{Family, Service, ZoneSet};

/// The answer for one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index into the service's mirrors.
    pub mirror: usize,
    /// The prefix length of the cluster that decided: every client inside
    /// that prefix gets the same answer, so resolvers may cache it that widely.
    pub scope: u8,
}

/// The learned state of one service; it outlives zone reloads as long as the
/// service keeps its name.
#[derive(Debug, Default)]
pub struct ServiceTable {
    next: AtomicUsize,
}

impl ServiceTable {
    /// Decides the answer for `client` asking for `family` addresses; `None`
    /// when no mirror of the service has an address of that family.
    pub fn decide(&self, service: &Service, client: IpNet, family: Family) -> Option<Decision> {
        let candidates = service
            .mirrors
            .iter()
            .enumerate()
            .filter(|(i, _)| !service.records(*i, family).is_empty());
        let count = candidates.clone().count();
        if count == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let (mirror, _) = candidates.clone().nth(turn)?;
        let client_family = Family::of(client.addr());
        let scope = service.clusters.initial(client_family);
        Some(Decision { mirror, scope })
    }
}

/// All service tables, by service name.
#[derive(Default)]
pub struct Steering {
    tables: Mutex<HashMap<String, Arc<ServiceTable>>>,
}

impl Steering {
    /// The tables for every service of `zones`, zone by zone in the set's
    /// order: existing tables are kept (a reload keeps what was learned),
    /// new services get empty ones, and tables of services that are gone are dropped.
    pub fn bind(&self, zones: &ZoneSet) -> Vec<Vec<Arc<ServiceTable>>> {
        let mut tables = self.tables.lock();
        let mut kept = HashMap::new();
        let bound = zones
            .zones()
            .iter()
            .map(|zone| {
                zone.services
                    .iter()
                    .map(|service| {
                        let key = service.name.to_ascii().to_ascii_lowercase();
                        let table = tables.get(&key).cloned().unwrap_or_default();
                        kept.insert(key, Arc::clone(&table));
                        table
                    })
                    .collect()
            })
            .collect();
        *tables = kept;
        bound
    }
}
