//! The agent with a server's HTTP API: the token checked at start, probe
//! work fetched from `GET /v1/probes`, results posted to
//! `POST /v1/measurements`.
//!
//! A poster retries a batch with backoff until it gets an answer; a batch
//! that got its 200 is never sent again, one refused as invalid (400) is
//! logged and dropped, since sending it again cannot help. A 401 stops the
//! agent: every batch after it would be refused too.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::{BATCH, MAX_BACKOFF, Measurer};
use crate::nats::client::{MSG_ID, new_msg_id};
use crate::protocol::{Measurement, MeasurementBatch, ProbeItem, ProbeWork};

/// How long a request to a server may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a poster says that the agent must stop, and why.
pub(super) type Fatal = mpsc::Sender<String>;

/// Asks `server` whether it takes the agent's token, with an empty batch
/// (which stores nothing). A 401 is an error that stops the agent at once;
/// a server that cannot be asked now is checked by the first batch instead.
pub(super) async fn check_token(server: &str, token: Option<&str>) -> Result<(), String> {
    let empty = MeasurementBatch::default();
    let request = post_batch(
        &reqwest::Client::new(),
        server,
        token,
        &empty,
        &new_msg_id(),
    );
    match request.timeout(FETCH_TIMEOUT).send().await {
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => Err(refused(server, token)),
        Ok(r) if !r.status().is_success() => {
            warn!(server, status = %r.status(), "cannot check the API token now; the first batch will");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(server, error = %e, "cannot check the API token now; the first batch will");
            Ok(())
        }
    }
}

/// The error that stops the agent when `server` refuses its token.
fn refused(server: &str, token: Option<&str>) -> String {
    match token {
        None => format!(
            "{server} needs an API token (401): give it with --api-token-file or MIRRORDNS_API_TOKEN"
        ),
        Some(_) => format!(
            "{server} refused the API token (401): give the server's token with --api-token-file or MIRRORDNS_API_TOKEN"
        ),
    }
}

fn post_batch(
    client: &reqwest::Client,
    server: &str,
    token: Option<&str>,
    body: &MeasurementBatch,
    msg_id: &str,
) -> reqwest::RequestBuilder {
    // A server sharing through NATS stores a retry of this batch once.
    let request = client
        .post(format!("{server}/v1/measurements"))
        .header(MSG_ID, msg_id)
        .json(body);
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

/// Fetches one server's probe work for the mirror again and again, and
/// hands what was measured to that server's poster.
pub(super) struct WorkLoop {
    pub server: String,
    pub measurer: Arc<Measurer>,
    pub results: mpsc::Sender<Vec<Measurement>>,
    pub interval: Duration,
}

impl WorkLoop {
    pub(super) async fn run(self) {
        let client = reqwest::Client::new();
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.fetch(&client).await {
                Ok(work) => {
                    backoff = Duration::from_secs(1);
                    if !work.is_empty() {
                        let measured = self.measurer.measure_all(work).await;
                        for chunk in measured.chunks(BATCH) {
                            if self.results.send(chunk.to_vec()).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(self.interval).await;
                }
                Err(e) => {
                    warn!(server = %self.server, error = %e, retry_in = ?backoff, "cannot fetch probe work");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Vec<ProbeItem>, String> {
        // Mirror names are letters, digits, '-' and '_': nothing to escape.
        let url = format!("{}/v1/probes?mirror={}", self.server, self.measurer.mirror);
        let response = client
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "{} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        let work: ProbeWork = response.json().await.map_err(|e| e.to_string())?;
        Ok(work.probes)
    }
}

/// Posts batches to one server, in order, retrying each until it is
/// answered; a 401 is reported to `fatal` and ends the posting.
pub(super) async fn post_loop(
    server: String,
    token: Option<String>,
    mut batches: mpsc::Receiver<Vec<Measurement>>,
    fatal: Fatal,
) {
    let client = reqwest::Client::new();
    while let Some(measurements) = batches.recv().await {
        let batch = MeasurementBatch { measurements };
        let msg_id = new_msg_id();
        let mut backoff = Duration::from_secs(1);
        loop {
            let request = post_batch(&client, &server, token.as_deref(), &batch, &msg_id);
            match request.timeout(POST_TIMEOUT).send().await {
                Ok(r) if r.status().is_success() => {
                    debug!(server = %server, measurements = batch.measurements.len(), "batch posted");
                    break;
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    let _ = fatal.send(refused(&server, token.as_deref())).await;
                    return;
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let answer = r.text().await.unwrap_or_default();
                    error!(server = %server, %status, %answer, "batch refused; dropped");
                    break;
                }
                Ok(r) => {
                    warn!(server = %server, status = %r.status(), retry_in = ?backoff, "batch not stored")
                }
                Err(e) => {
                    warn!(server = %server, error = %e, retry_in = ?backoff, "cannot post batch")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
