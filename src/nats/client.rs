//! The NATS side every process shares, the agent's included: connecting,
//! the subjects under a stream name, and publishing writes (measurement
//! batches, load reports, drains) with JetStream's acknowledgement.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use tracing::{info, warn};

use crate::protocol::Drain;

/// The header JetStream deduplicates publishes by.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Bytes kept free for a message's headers under max_payload.
const HEADER_ROOM: usize = 256;
/// How long a JetStream request (a publish's acknowledgement) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the shared streams are (`--nats`, `--nats-stream`, `--nats-creds`).
#[derive(Clone, Debug)]
pub struct Options {
    pub url: String,
    pub stream: String,
    pub creds: Option<PathBuf>,
    /// Replicas of each stream: 3 in a three-node NATS cluster.
    pub replicas: usize,
    /// How often a server publishes its probe work.
    pub probe_interval: Duration,
}

/// The subjects under one stream name.
#[derive(Clone, Debug)]
pub struct Subjects {
    stream: String,
}

impl Subjects {
    pub fn new(stream: &str) -> Subjects {
        Subjects {
            stream: stream.to_string(),
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn drain_stream(&self) -> String {
        format!("{}-drains", self.stream)
    }

    pub fn measurements(&self) -> String {
        format!("{}.measurements", self.stream)
    }

    pub fn load(&self) -> String {
        format!("{}.load", self.stream)
    }

    pub fn drain(&self, mirror: &str) -> String {
        format!("{}.drain.{mirror}", self.stream)
    }

    pub fn probes(&self, mirror: &str) -> String {
        format!("{}.probes.{mirror}", self.stream)
    }
}

/// Connects in the background: a NATS server that is down at start only
/// delays sharing, it never stops the caller (which keeps answering from
/// its own state). Reconnects for ever, with backoff.
pub async fn connect(options: &Options, name: &str) -> Result<async_nats::Client, String> {
    let mut connect = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => info!("connected to NATS"),
                async_nats::Event::Disconnected => {
                    warn!("lost NATS; answering from local state, reconnecting")
                }
                other => info!(event = %other, "NATS"),
            }
        });
    if let Some(creds) = &options.creds {
        connect = connect
            .credentials_file(creds)
            .await
            .map_err(|e| format!("cannot read NATS credentials {}: {e}", creds.display()))?;
    }
    // A cluster's seed list, comma separated: any one that answers will do.
    let servers: Vec<&str> = options.url.split(',').map(str::trim).collect();
    connect
        .connect(servers)
        .await
        .map_err(|e| format!("cannot use NATS at {}: {e}", options.url))
}

pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

/// Publishes the API's writes to the shared streams; every instance,
/// this one included, applies them from there.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    subjects: Subjects,
}

impl Publisher {
    pub fn new(js: jetstream::Context, subjects: Subjects) -> Publisher {
        Publisher { js, subjects }
    }

    /// A measurement batch (the HTTP body, already validated), stored once
    /// per `msg_id`; returns when JetStream has acknowledged it.
    pub async fn measurements(&self, body: Bytes, msg_id: &str) -> Result<(), PublishError> {
        // NATS refuses a message over the server's max_payload (1 MiB by
        // default, the API's own body limit): say so rather than retry.
        let limit = self.js.client().server_info().max_payload;
        if limit > 0 && body.len() + HEADER_ROOM > limit {
            return Err(PublishError::TooLarge { limit });
        }
        self.publish(self.subjects.measurements(), body, Some(msg_id))
            .await
            .map_err(PublishError::Unavailable)
    }

    pub async fn load(&self, body: Bytes) -> Result<(), String> {
        self.publish(self.subjects.load(), body, None).await
    }

    pub async fn drain(&self, mirror: &str, drained: bool) -> Result<(), String> {
        let body = serde_json::to_vec(&Drain { drained }).map_err(|e| e.to_string())?;
        self.publish(self.subjects.drain(mirror), body.into(), None)
            .await
    }

    async fn publish(
        &self,
        subject: String,
        body: Bytes,
        msg_id: Option<&str>,
    ) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert(MSG_ID, id);
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(|e| format!("not published: {e}"))?;
        ack.await
            .map(|_| ())
            .map_err(|e| format!("not acknowledged by JetStream: {e}"))
    }
}

/// Why a batch was not published.
#[derive(Debug)]
pub enum PublishError {
    /// Larger than the NATS server takes: split it.
    TooLarge { limit: usize },
    /// NATS or JetStream did not take it now: retry.
    Unavailable(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::TooLarge { limit } => write!(
                f,
                "batch larger than the NATS server's max_payload ({limit} bytes): send smaller batches"
            ),
            PublishError::Unavailable(reason) => f.write_str(reason),
        }
    }
}

/// A message id for a batch that came without one.
pub fn new_msg_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
