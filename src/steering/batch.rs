//! Measurement batches into the engine (SPEC section 3): every item of a
//! batch checked first (a known mirror, a client no shorter than a
//! sub-block, a plausible RTT, a time not in the future), then all applied
//! or none.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::measurements::{Measurement, Method, Rtt};
use super::{Bindings, Engine, Seconds, ServiceTable, table};
use crate::zone::Family;

/// Measurements may be stamped at most this far ahead of our clock (agents'
/// clocks drift a little); beyond it a time is "in the future" and rejected.
const CLOCK_SKEW: Seconds = 5;
/// The largest plausible RTT, in milliseconds.
const MAX_RTT_MS: f64 = 60_000.0;

/// One measurement as a client of the API sends it, before validation.
#[derive(Clone, Debug, Default)]
pub struct MeasurementRequest {
    pub mirror: String,
    pub client: String,
    pub rtt_ms: Option<f64>,
    pub timeout: bool,
    pub method: Option<String>,
    pub time: Option<Seconds>,
}

/// Why a batch was refused; nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    pub index: usize,
    pub reason: String,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "measurements[{}]: {}", self.index, self.reason)
    }
}

/// A validated measurement, in the form that is journaled and replayed:
/// by mirror name, because mirror ids only live as long as the process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub mirror: String,
    pub client: IpNet,
    pub measurement: Measurement,
}

impl Engine {
    /// Validates a whole batch, then applies it: all or nothing.
    pub fn apply(&self, batch: &[MeasurementRequest], now: Seconds) -> Result<usize, BatchError> {
        let accepted = self.validate(batch, now)?;
        self.apply_accepted(&accepted, now);
        Ok(accepted.len())
    }

    /// Checks every item of a batch (SPEC section 3); the first bad one
    /// rejects the batch.
    pub fn validate(
        &self,
        batch: &[MeasurementRequest],
        now: Seconds,
    ) -> Result<Vec<Accepted>, BatchError> {
        let bindings = self.bindings.read();
        batch
            .iter()
            .enumerate()
            .map(|(index, m)| {
                validate(m, &bindings, now).map_err(|reason| BatchError { index, reason })
            })
            .collect()
    }

    /// Applies validated measurements as of `now` (the time they were first
    /// applied, when replayed): stored per sub-block, then the clusters they
    /// touch re-decided. Measurements of mirrors no service uses any more are
    /// skipped.
    pub fn apply_accepted(&self, batch: &[Accepted], now: Seconds) {
        let bindings = self.bindings.read();
        let mut per_table: Vec<(Arc<ServiceTable>, BTreeSet<IpNet>)> = Vec::new();
        {
            let mut store = self.store.write();
            for m in batch {
                let Some(id) = bindings.mirror_ids.get(&m.mirror).copied() else {
                    continue;
                };
                if m.measurement.method == Method::Passive {
                    let mut seen = self.passive_seen.lock();
                    let last = seen.entry(id).or_default();
                    *last = (*last).max(m.measurement.time);
                }
                for table in bindings.services_of.get(&id).into_iter().flatten() {
                    let block = table.config.read().block_of(&m.client);
                    store.record(block, id, m.measurement);
                    match per_table.iter_mut().find(|(t, _)| Arc::ptr_eq(t, table)) {
                        Some((_, blocks)) => {
                            blocks.insert(block);
                        }
                        None => per_table.push((Arc::clone(table), BTreeSet::from([block]))),
                    }
                }
            }
        }
        let store = self.store.read();
        for (table, blocks) in per_table {
            let config = Arc::clone(&table.config.read());
            let inputs = self.inputs(&config, &store, now);
            let mut clusters = table.clusters.write();
            let dirty = table::register_measured(&mut clusters, &config, &blocks);
            table::reevaluate(&mut clusters, &inputs, dirty);
        }
    }
}

fn validate(m: &MeasurementRequest, bindings: &Bindings, now: Seconds) -> Result<Accepted, String> {
    let mirror = *bindings
        .mirror_ids
        .get(&m.mirror)
        .filter(|id| bindings.services_of.contains_key(id))
        .ok_or_else(|| format!("unknown mirror {:?}", m.mirror))?;
    let client = parse_client(&m.client)?;
    let family = Family::of(client.addr());
    let longest_block = bindings.services_of[&mirror]
        .iter()
        .map(|t| t.config.read().block_len(family))
        .max()
        .unwrap_or(0);
    if client.prefix_len() < longest_block {
        return Err(format!(
            "client {} is shorter than the sub-block /{longest_block}: measure an address or a prefix of at least /{longest_block}",
            m.client
        ));
    }
    let rtt = match (m.rtt_ms, m.timeout) {
        (Some(_), true) => return Err("give rtt_ms or timeout: true, not both".to_string()),
        (Some(ms), false) if ms.is_finite() && ms > 0.0 && ms <= MAX_RTT_MS => Rtt::Ms(ms as f32),
        (Some(ms), false) => return Err(format!("rtt_ms {ms} is not in (0, {MAX_RTT_MS}]")),
        (None, true) => Rtt::Timeout,
        (None, false) => return Err("missing rtt_ms (or timeout: true)".to_string()),
    };
    let method = match &m.method {
        None => Method::Unspecified,
        Some(text) => Method::parse(text)
            .ok_or_else(|| format!("unknown method {text:?} (tcp, icmp or passive)"))?,
    };
    let time = m.time.unwrap_or(now);
    if time > now + CLOCK_SKEW {
        return Err(format!("time is {} s in the future", time - now));
    }
    Ok(Accepted {
        mirror: m.mirror.clone(),
        client,
        measurement: Measurement { rtt, time, method },
    })
}

/// An address (a host) or a prefix in CIDR form, with no host bits set.
pub fn parse_client(text: &str) -> Result<IpNet, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("client {text:?} is not an address or a prefix"))?;
    if net.trunc() != net {
        return Err(format!(
            "client {text:?} has host bits set beyond the prefix"
        ));
    }
    Ok(net)
}
