//! The agent over NATS: every server publishes its probe work for this
//! mirror on `<stream>.probes.<mirror>`; the agent measures each target once
//! however many servers asked, and publishes each batch once to the
//! measurement stream, which every server consumes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{BATCH, MAX_BACKOFF, Measurer};
use crate::nats::client::{self as nats, Publisher, Subjects};
use crate::protocol::{Measurement, MeasurementBatch, ProbeItem, ProbeWork};

/// A block measured this recently is not measured again for another
/// server: its result is on its way to every server through the stream.
const RECENTLY_MEASURED: Duration = Duration::from_secs(60);

/// Subscribes to this mirror's probe work and starts publishing results;
/// returns where the agent's other results (access-log RTTs) go.
pub(super) async fn start(
    options: &nats::Options,
    measurer: Arc<Measurer>,
) -> Result<mpsc::Sender<Vec<Measurement>>, String> {
    let client = nats::connect(options, &format!("mirrordns agent {}", measurer.mirror)).await?;
    let subjects = Subjects::new(&options.stream);
    let publisher = Publisher::new(nats::jetstream(client.clone()), subjects.clone());
    let (results, batches) = mpsc::channel::<Vec<Measurement>>(64);
    tokio::spawn(publish_loop(publisher, batches));
    // Subscribing only queues the request while NATS is away; the client
    // sends it again on every reconnect.
    let work = client
        .subscribe(subjects.probes(&measurer.mirror))
        .await
        .map_err(|e| format!("cannot subscribe to probe work: {e}"))?;
    tokio::spawn(measure_work(work, measurer, results.clone()));
    Ok(results)
}

async fn measure_work(
    mut work: async_nats::Subscriber,
    measurer: Arc<Measurer>,
    results: mpsc::Sender<Vec<Measurement>>,
) {
    let mut recent = RecentBlocks::default();
    while let Some(message) = work.next().await {
        let Ok(list) = serde_json::from_slice::<ProbeWork>(&message.payload) else {
            warn!(subject = %message.subject, "unusable probe work, skipped");
            continue;
        };
        let fresh = recent.take_new(list.probes, Instant::now());
        if fresh.is_empty() {
            continue;
        }
        debug!(probes = fresh.len(), "probe work from NATS");
        let measured = measurer.measure_all(fresh).await;
        for chunk in measured.chunks(BATCH) {
            if results.send(chunk.to_vec()).await.is_err() {
                return;
            }
        }
    }
}

/// The blocks taken as work lately, so that the same block asked for by
/// several servers is measured once.
#[derive(Default)]
struct RecentBlocks {
    taken: HashMap<String, Instant>,
}

impl RecentBlocks {
    fn take_new(&mut self, work: Vec<ProbeItem>, now: Instant) -> Vec<ProbeItem> {
        self.taken
            .retain(|_, at| now.duration_since(*at) < RECENTLY_MEASURED);
        work.into_iter()
            .filter(|item| self.taken.insert(item.block.clone(), now).is_none())
            .collect()
    }
}

/// Publishes batches in order, each retried under the same message id until
/// JetStream acknowledges it, so a retry is never stored twice.
async fn publish_loop(publisher: Publisher, mut batches: mpsc::Receiver<Vec<Measurement>>) {
    while let Some(measurements) = batches.recv().await {
        let count = measurements.len();
        let body = match serde_json::to_vec(&MeasurementBatch { measurements }) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => {
                warn!(error = %e, "batch not encodable; dropped");
                continue;
            }
        };
        let msg_id = nats::new_msg_id();
        let mut backoff = Duration::from_secs(1);
        loop {
            match publisher.measurements(body.clone(), &msg_id).await {
                Ok(()) => {
                    debug!(measurements = count, "batch published");
                    break;
                }
                Err(e @ nats::PublishError::TooLarge { .. }) => {
                    warn!(error = %e, "batch dropped");
                    break;
                }
                Err(e) => warn!(error = %e, retry_in = ?backoff, "batch not published"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    info!("publishing stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(block: &str) -> ProbeItem {
        ProbeItem {
            target: block.to_string(),
            block: block.to_string(),
            resolvers: Vec::new(),
        }
    }

    fn blocks(items: &[ProbeItem]) -> Vec<&str> {
        items.iter().map(|i| i.block.as_str()).collect()
    }

    #[test]
    fn a_block_asked_for_by_two_servers_is_measured_once_until_it_may_be_stale() {
        let mut recent = RecentBlocks::default();
        let start = Instant::now();
        let first = recent.take_new(vec![item("198.51.100.0/24"), item("203.0.113.0/24")], start);
        assert_eq!(blocks(&first), ["198.51.100.0/24", "203.0.113.0/24"]);
        let second = recent.take_new(
            vec![item("203.0.113.0/24"), item("192.0.2.0/24")],
            start + Duration::from_secs(5),
        );
        assert_eq!(blocks(&second), ["192.0.2.0/24"]);
        let later = recent.take_new(
            vec![item("198.51.100.0/24")],
            start + RECENTLY_MEASURED + Duration::from_secs(1),
        );
        assert_eq!(blocks(&later), ["198.51.100.0/24"]);
    }
}
