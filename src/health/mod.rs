//! Health checks the server runs itself (SPEC section 2 "Health", zone
//! `health:`): a TCP connect to a port, or an HTTP GET expecting 2xx, every
//! `interval_s`, with `rise` successes to come up and `fall` failures to go
//! down, as gdnsd does. A mirror starts up; it is down while any of its
//! checks (one per service that declares one) is down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::steering::Engine;
use crate::zone::{HealthCheck, HealthProbe, ZoneSet};

/// Runs the checks of the loaded zones; a reload replaces them.
pub struct Health {
    engine: Arc<Engine>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The checks currently failing, per mirror.
    failing: Arc<Mutex<BTreeMap<String, BTreeSet<usize>>>>,
}

impl Health {
    pub fn new(engine: Arc<Engine>) -> Health {
        Health {
            engine,
            tasks: Mutex::new(Vec::new()),
            failing: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Stops the running checks and starts those of `zones`; mirrors whose
    /// checks are gone count as up again.
    pub fn start(&self, zones: &ZoneSet) {
        let mut tasks = self.tasks.lock();
        for t in tasks.drain(..) {
            t.abort();
        }
        let checks: BTreeSet<(String, HealthCheckKey)> = zones
            .services()
            .flat_map(|s| s.mirrors.iter())
            .filter_map(|m| {
                m.health
                    .clone()
                    .map(|h| (m.name.clone(), HealthCheckKey(h)))
            })
            .collect();
        {
            let mut failing = self.failing.lock();
            for (mirror, _) in std::mem::take(&mut *failing) {
                self.engine.set_down(&mirror, false);
            }
        }
        for (id, (mirror, HealthCheckKey(check))) in checks.into_iter().enumerate() {
            let monitor = Monitor {
                id,
                mirror,
                check,
                engine: Arc::clone(&self.engine),
                failing: Arc::clone(&self.failing),
            };
            tasks.push(tokio::spawn(monitor.run()));
        }
    }
}

/// A check with an order, so the same mirror and check is started once.
#[derive(Clone, Debug, PartialEq)]
struct HealthCheckKey(HealthCheck);

impl Eq for HealthCheckKey {}

impl PartialOrd for HealthCheckKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HealthCheckKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        format!("{:?}", self.0).cmp(&format!("{:?}", other.0))
    }
}

struct Monitor {
    id: usize,
    mirror: String,
    check: HealthCheck,
    engine: Arc<Engine>,
    failing: Arc<Mutex<BTreeMap<String, BTreeSet<usize>>>>,
}

impl Monitor {
    async fn run(self) {
        let mut tally = Tally::new(self.check.rise, self.check.fall);
        let mut interval = tokio::time::interval(Duration::from_secs(self.check.interval_s));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let ok = probe(&self.check).await;
            if let Some(up) = tally.record(ok) {
                self.changed(up);
            }
        }
    }

    fn changed(&self, up: bool) {
        let mut failing = self.failing.lock();
        let set = failing.entry(self.mirror.clone()).or_default();
        if up {
            set.remove(&self.id);
        } else {
            set.insert(self.id);
        }
        let down = !set.is_empty();
        drop(failing);
        if up {
            info!(mirror = %self.mirror, probe = ?self.check.probe, "health check up");
        } else {
            warn!(mirror = %self.mirror, probe = ?self.check.probe, "health check down: no new answers for this mirror");
        }
        self.engine.set_down(&self.mirror, down);
        crate::steering::warn_failing_open(&self.engine);
    }
}

/// Counts consecutive results: `rise` successes bring a down check up,
/// `fall` failures take an up one down.
struct Tally {
    up: bool,
    streak: u32,
    rise: u32,
    fall: u32,
}

impl Tally {
    fn new(rise: u32, fall: u32) -> Tally {
        Tally {
            up: true,
            streak: 0,
            rise,
            fall,
        }
    }

    /// Records one result; returns the new state when it changed.
    fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(ok)
    }
}

async fn probe(check: &HealthCheck) -> bool {
    let timeout = Duration::from_millis(check.timeout_ms);
    match &check.probe {
        HealthProbe::Tcp { address, port } => {
            let connect = tokio::net::TcpStream::connect((*address, *port));
            matches!(tokio::time::timeout(timeout, connect).await, Ok(Ok(_)))
        }
        HealthProbe::Http { url } => {
            let Ok(client) = reqwest::Client::builder().timeout(timeout).build() else {
                return false;
            };
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut t = Tally::new(2, 3);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None, "a success resets the failures");
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false), "third failure in a row: down");
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true), "second success in a row: up");
    }
}
