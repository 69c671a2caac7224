//! The server's part of sharing: setting up the streams, the tasks that
//! keep this instance in step with them, and the one that hands its probe
//! work to the agents.
//!
//! Each runs for ever: when NATS is away it logs, waits with backoff and
//! starts again where it stopped. None of them holds anything the DNS
//! listeners wait for: a batch is applied by the state writer like an HTTP
//! one, so a slow consumer only makes learning late.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Message, consumer, stream};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::client::{self, Options, Publisher, Subjects};
use crate::metrics::Counters;
use crate::protocol::{self, Drain};
use crate::state::{COMPACT_AFTER_MAX_AGES, Journal};
use crate::steering::{self, Engine, MeasurementRequest, Seconds};

/// A publish retried within this window with the same id is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A durable consumer nobody has read for this long is removed by the
/// server; an instance back after that makes a new one at its position.
const CONSUMER_INACTIVE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Messages in flight to this instance at once.
const PULL_BATCH: usize = 64;
/// Batches handed to the state writer and not yet durable, at most.
const IN_FLIGHT: usize = 32;
/// Probe targets per message.
const PROBE_WORK_LIMIT: usize = 1000;

/// Starts sharing for a server: connects, sets up the streams (again and
/// again until NATS answers), then follows them from `position`, the last
/// stream message the instance's state holds. Returns at once, with the
/// publisher for the API's writes.
pub async fn start(
    options: &Options,
    instance_id: &str,
    engine: Arc<Engine>,
    counters: Arc<Counters>,
    journal: Journal,
    position: u64,
) -> Result<Publisher, String> {
    let client = client::connect(options, &format!("mirrordns serve {instance_id}")).await?;
    let js = client::jetstream(client.clone());
    let subjects = Subjects::new(&options.stream);
    let replicas = options.replicas;
    tokio::spawn(publish_probe_work(
        client,
        subjects.clone(),
        Arc::clone(&engine),
        options.probe_interval,
    ));
    let consumer = format!("mirrordns-{instance_id}");
    let publisher = Publisher::new(js.clone(), subjects.clone());
    tokio::spawn(async move {
        let mut backoff = Backoff::new();
        while let Err(e) = ensure_streams(&js, &subjects, replicas, engine.longest_max_age()).await
        {
            backoff.failed("cannot set up the shared streams", &e).await;
        }
        tokio::spawn(follow_drains(
            js.clone(),
            subjects.clone(),
            Arc::clone(&engine),
            journal.clone(),
        ));
        let follower = Follower {
            js,
            subjects,
            consumer_name: consumer,
            engine,
            counters,
            journal,
            position,
        };
        follow_measurements(follower).await;
    });
    Ok(publisher)
}

/// Creates both streams, or updates their limits to the current zones'.
async fn ensure_streams(
    js: &jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
    longest_max_age_s: u64,
) -> Result<(), String> {
    let retention = Duration::from_secs(
        longest_max_age_s
            .saturating_mul(COMPACT_AFTER_MAX_AGES)
            .max(60),
    );
    let measurements = stream::Config {
        name: subjects.stream().to_string(),
        subjects: vec![subjects.measurements(), subjects.load()],
        max_age: retention,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let drains = stream::Config {
        name: subjects.drain_stream(),
        subjects: vec![subjects.drain("*")],
        max_messages_per_subject: 1,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    for config in [measurements, drains] {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| format!("cannot set up stream {name}: {e}"))?;
    }
    Ok(())
}

/// Waits between attempts, longer after each failure.
struct Backoff {
    next: Duration,
    attempt_started: Instant,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            attempt_started: Instant::now(),
        }
    }

    /// Logs why the attempt failed and waits before the next one.
    async fn failed(&mut self, what: &str, error: &str) {
        // An attempt that went well for a while starts the backoff over.
        if self.attempt_started.elapsed() > MAX_BACKOFF {
            self.next = FIRST_BACKOFF;
        }
        warn!(error, retry_in = ?self.next, "{what}");
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        self.attempt_started = Instant::now();
    }
}

/// Applies the measurement stream to this instance, from the message after
/// the follower's position (the last one its state holds), for ever.
async fn follow_measurements(mut follower: Follower) {
    let mut backoff = Backoff::new();
    loop {
        let Err(e) = follower.follow().await;
        backoff.failed("measurement stream interrupted", &e).await;
    }
}

struct Follower {
    js: jetstream::Context,
    subjects: Subjects,
    consumer_name: String,
    engine: Arc<Engine>,
    counters: Arc<Counters>,
    journal: Journal,
    /// The last stream sequence applied (or skipped as unusable).
    position: u64,
}

impl Follower {
    /// Applies messages until something fails; never returns otherwise.
    async fn follow(&mut self) -> Result<Infallible, String> {
        let consumer = self.consumer_at_position().await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| format!("cannot pull: {e}"))?;
        // Batches handed to the state writer, oldest first: the next
        // message is parsed while earlier ones are being made durable.
        let mut in_flight = FuturesOrdered::new();
        let mut submitted = self.position;
        loop {
            tokio::select! {
                Some((seq, message, stored)) = in_flight.next(), if !in_flight.is_empty() => {
                    stored?;
                    self.applied(seq, &message).await;
                }
                next = messages.next(), if in_flight.len() < IN_FLIGHT => {
                    let Some(message) = next else {
                        return Err("the pull stream ended".to_string());
                    };
                    let message = message.map_err(|e| format!("pull failed: {e}"))?;
                    let seq = message
                        .info()
                        .map_err(|e| format!("message without stream metadata: {e}"))?
                        .stream_sequence;
                    if seq <= submitted {
                        let _ = message.ack().await;
                        continue;
                    }
                    submitted = seq;
                    let stored = self.submit(&message, seq)?;
                    in_flight.push_back(async move {
                        let result = match stored {
                            None => Ok(()),
                            Some(durable) => match durable.await {
                                Ok(r) => r.map_err(|e| format!("cannot store stream batch {seq}: {e}")),
                                Err(_) => Err("the state writer has stopped".to_string()),
                            },
                        };
                        (seq, message, result)
                    });
                }
            }
        }
    }

    /// Records that everything up to `seq` is applied and durable.
    async fn applied(&mut self, seq: u64, message: &Message) {
        self.position = seq;
        self.counters
            .stream_batches_applied
            .fetch_add(1, Ordering::Relaxed);
        self.counters.stream_position.store(seq, Ordering::Relaxed);
        if let Ok(info) = message.info() {
            self.counters
                .stream_last
                .store(seq + info.pending, Ordering::Relaxed);
        }
        // Only a courtesy to the server: the position that counts is the one
        // journaled with the batch.
        if let Err(e) = message.ack().await {
            debug!(error = %e, "ack failed");
        }
    }

    /// This instance's durable consumer, made afresh so it starts right after
    /// `position`: the server's record of it may be behind (a crash before
    /// the ack) or ahead (state restored from an older backup).
    async fn consumer_at_position(&mut self) -> Result<consumer::PullConsumer, String> {
        let mut stream = self
            .js
            .get_stream(self.subjects.stream())
            .await
            .map_err(|e| format!("no stream {}: {e}", self.subjects.stream()))?;
        let last = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        self.counters.stream_last.store(last, Ordering::Relaxed);
        self.counters
            .stream_position
            .store(self.position, Ordering::Relaxed);
        if self.position > last {
            warn!(
                position = self.position,
                stream_last = last,
                "the stream is behind this instance's position (was it recreated?): reading it from its start"
            );
            self.position = 0;
        }
        let _ = stream.delete_consumer(&self.consumer_name).await;
        let deliver_policy = match self.position {
            0 => consumer::DeliverPolicy::All,
            p => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: p + 1,
            },
        };
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(self.consumer_name.clone()),
                deliver_policy,
                ack_policy: consumer::AckPolicy::Explicit,
                inactive_threshold: CONSUMER_INACTIVE,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot create consumer {}: {e}", self.consumer_name))?;
        info!(
            consumer = %self.consumer_name,
            from = self.position + 1,
            stream_last = last,
            "following the shared measurement stream"
        );
        Ok(consumer)
    }

    /// Applies a load report at once, or hands a measurement batch to the
    /// state writer and returns what says when it is durable. A message that
    /// cannot be used is skipped with a log line; only a failing state
    /// directory stops the follower.
    fn submit(
        &self,
        message: &Message,
        seq: u64,
    ) -> Result<Option<oneshot::Receiver<io::Result<()>>>, String> {
        let now = stored_at(message);
        if message.subject.as_str() == self.subjects.load() {
            self.apply_load(&message.payload, now);
            return Ok(None);
        }
        let batch: Vec<MeasurementRequest> = match protocol::parse_batch(&message.payload) {
            Ok(b) => b.into_iter().map(MeasurementRequest::from).collect(),
            Err(e) => {
                warn!(seq, error = %e, "unusable batch in the stream, skipped");
                return Ok(None);
            }
        };
        // Item by item when the whole fails: an agent publishes without our
        // validation, and a mirror this instance's zones lack must not cost
        // it the others.
        let total = batch.len();
        let accepted: Vec<_> = self.engine.validate(&batch, now).unwrap_or_else(|_| {
            batch
                .chunks(1)
                .filter_map(|one| self.engine.validate(one, now).ok())
                .flatten()
                .collect()
        });
        if accepted.len() < total {
            debug!(
                seq,
                skipped = total - accepted.len(),
                "measurements this instance cannot use"
            );
        }
        if accepted.is_empty() {
            return Ok(None);
        }
        self.journal
            .submit_from_stream(accepted, now, seq)
            .map(Some)
            .map_err(|e| format!("cannot store stream batch {seq}: {e}"))
    }

    fn apply_load(&self, payload: &[u8], now: Seconds) {
        match protocol::parse_load(payload) {
            Ok(l) => {
                let _ = self.engine.report_load(&l.mirror, l.load, now);
            }
            Err(e) => warn!(error = %e, "unusable load report in the stream, skipped"),
        }
    }
}

/// The second the stream stored `message`: the same for every instance.
fn stored_at(message: &Message) -> Seconds {
    message
        .info()
        .map(|i| i.published.unix_timestamp().max(0) as Seconds)
        .unwrap_or_else(|_| steering::now())
}

/// Applies the last drain or undrain of every mirror, then each new one.
async fn follow_drains(
    js: jetstream::Context,
    subjects: Subjects,
    engine: Arc<Engine>,
    journal: Journal,
) {
    let mut backoff = Backoff::new();
    loop {
        let Err(e) = follow_drains_once(&js, &subjects, &engine, &journal).await;
        backoff.failed("drain stream interrupted", &e).await;
    }
}

async fn follow_drains_once(
    js: &jetstream::Context,
    subjects: &Subjects,
    engine: &Engine,
    journal: &Journal,
) -> Result<Infallible, String> {
    let stream = js
        .get_stream(subjects.drain_stream())
        .await
        .map_err(|e| format!("no stream {}: {e}", subjects.drain_stream()))?;
    // Ordered and ephemeral: the last state per mirror is the whole truth,
    // so every start reads it again rather than keeping a position.
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            filter_subject: subjects.drain("*"),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot read drains: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read drains: {e}"))?;
    let prefix = subjects.drain("");
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| format!("drain stream failed: {e}"))?;
        let Some(mirror) = message.subject.as_str().strip_prefix(&prefix) else {
            continue;
        };
        let Ok(Drain { drained }) = serde_json::from_slice(&message.payload) else {
            warn!(subject = %message.subject, "unusable drain message, skipped");
            continue;
        };
        let current = engine
            .mirror_states()
            .into_iter()
            .find(|m| m.name == mirror)
            .map(|m| m.drained);
        if current.is_some_and(|c| c != drained) {
            journal
                .drain(mirror, drained)
                .await
                .map_err(|e| format!("cannot store drain of {mirror}: {e}"))?;
            info!(
                mirror,
                drained, "mirror drain changed through the shared stream"
            );
            steering::warn_failing_open(engine);
        }
    }
    Err("the drain stream ended".to_string())
}

/// Publishes this instance's probe work for every mirror, every `every`.
/// Agents hear every instance and measure each target once. Listing the
/// work walks the table, so this is not done more often than agents poll.
async fn publish_probe_work(
    client: async_nats::Client,
    subjects: Subjects,
    engine: Arc<Engine>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let now = steering::now();
        for mirror in engine.mirror_states() {
            let Some(probes) = engine.probes(&mirror.name, now, PROBE_WORK_LIMIT) else {
                continue;
            };
            if probes.is_empty() {
                continue;
            }
            let Ok(body) = serde_json::to_vec(&steering::probe_work(&probes)) else {
                continue;
            };
            if let Err(e) = client
                .publish(subjects.probes(&mirror.name), body.into())
                .await
            {
                debug!(error = %e, "probe work not published");
            }
        }
    }
}
