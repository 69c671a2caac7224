//! `/metrics` in the Prometheus text format or OpenMetrics (prometheus-client
//! encodes both), whichever the scraper's `Accept` prefers.
//!
//! The hot paths count in plain atomics (the DNS handler per query type and
//! rcode, the steering tables per mirror); a scrape reads those and the
//! engine's state into a fresh registry and encodes it. Each subsystem
//! registers its own families:
//!
//! - `dns`: queries and rate limiting, from the DNS handler.
//! - `steering`: answers, quality, clusters and mirrors, from the engine.
//! - `server`: measurements posted, reloads and the shared stream, from
//!   [`Counters`].
//! - `format`: which exposition format a scraper asked for.
//!
//! The metric list is in docs/METRICS.md; the names are a contract.

mod dns;
mod format;
mod server;
mod steering;

pub use format::Format;
pub use server::Counters;

use std::sync::Arc;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use crate::dns::Handler;
use crate::steering::Engine;

/// What a scrape reads, handed in by the server.
#[derive(Clone)]
pub struct Sources {
    handler: Arc<Handler>,
    engine: Arc<Engine>,
    counters: Arc<Counters>,
    backlog: Arc<steering::BacklogCache>,
}

impl Sources {
    pub fn new(handler: Arc<Handler>, engine: Arc<Engine>, counters: Arc<Counters>) -> Sources {
        Sources {
            handler,
            engine,
            counters,
            backlog: Arc::default(),
        }
    }

    /// Every family, encoded in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("mirrordns");
        let now = crate::steering::now();
        dns::register(&mut registry, &self.handler);
        steering::register(&mut registry, &self.engine, &self.backlog, now);
        server::register(&mut registry, &self.counters);
        let mut text = String::new();
        encode_registry(&mut text, &registry)?;
        match format {
            Format::OpenMetrics => {
                encode_eof(&mut text)?;
                Ok(text)
            }
            Format::Text => Ok(format::counters_named_as_samples(&text)),
        }
    }
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
