//! What the status page reads besides the steering endpoints: recent events
//! (`GET /v1/events`), steering quality over time (`GET /v1/quality`), and
//! the page itself (`GET /ui`), whose every asset is compiled in.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::ApiState;
use super::errors::error_response;
use crate::steering::{self, Choice, Engine, Event, EventKind, Regroup, Seconds};

/// Events returned per request unless `limit` says fewer: the whole ring.
const MAX_EVENTS: usize = steering::EVENT_CAPACITY;

/// `GET /v1/events?since=N&limit=L`: the events after sequence number `N`
/// (default 0), oldest first; `missed` counts those after `N` that fell off
/// the ring, `last` is the newest number given out (pass it as `since`
/// next time; a `last` below your `since` means the server restarted).
pub async fn events(
    State(state): State<ApiState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut since = 0u64;
    let mut limit = MAX_EVENTS;
    for (key, value) in &params {
        let parsed = value.parse::<u64>();
        match (key.as_str(), parsed) {
            ("since", Ok(n)) => since = n,
            ("limit", Ok(n)) => limit = usize::try_from(n).unwrap_or(MAX_EVENTS).min(MAX_EVENTS),
            ("since" | "limit", Err(_)) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("{key} must be a whole number, not {value:?}"),
                );
            }
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown query parameter {key:?} (since, limit)"),
                );
            }
        }
    }
    let page = state.engine.events(since, limit);
    let events: Vec<Value> = page.events.iter().map(event_json).collect();
    Json(json!({
        "events": events,
        "first": page.first,
        "last": page.last,
        "missed": page.missed,
        "capacity": MAX_EVENTS,
    }))
    .into_response()
}

fn event_json(event: &Event) -> Value {
    let mut item = match &event.kind {
        EventKind::Split(r) => regroup_json("split", r),
        EventKind::Merge(r) => regroup_json("merge", r),
        EventKind::Switch {
            service,
            cluster,
            from,
            to,
        } => json!({
            "kind": "switch",
            "service": service,
            "cluster": cluster.to_string(),
            "from": from.as_ref().map(choice_json),
            "to": to.as_ref().map(choice_json),
        }),
        EventKind::LoadMove {
            service,
            cluster,
            from,
            to,
            back,
            qps,
        } => json!({
            "kind": "load_move",
            "service": service,
            "cluster": cluster.to_string(),
            "from": from,
            "to": to,
            "back": back,
            "qps": (qps * 100.0).round() / 100.0,
        }),
        EventKind::Health { mirror, healthy } => {
            json!({"kind": "health", "mirror": mirror, "healthy": healthy})
        }
        EventKind::Drain { mirror, drained } => {
            json!({"kind": "drain", "mirror": mirror, "drained": drained})
        }
        EventKind::Reload { trigger, outcome } => match outcome {
            Ok((zones, services)) => json!({
                "kind": "reload", "trigger": trigger, "ok": true,
                "zones": zones, "services": services,
            }),
            Err(error) => {
                json!({"kind": "reload", "trigger": trigger, "ok": false, "error": error})
            }
        },
    };
    item["seq"] = json!(event.seq);
    item["time"] = json!(event.time);
    item
}

fn regroup_json(kind: &str, r: &Regroup) -> Value {
    let text = |ps: &[ipnet::IpNet]| ps.iter().map(ToString::to_string).collect::<Vec<_>>();
    json!({
        "kind": kind,
        "service": r.service,
        "region": r.region.to_string(),
        "added": text(&r.added),
        "removed": text(&r.removed),
        "added_total": r.added_total,
        "removed_total": r.removed_total,
    })
}

fn choice_json(c: &Choice) -> Value {
    json!({"mirror": c.mirror, "rtt_ms": c.rtt_ms})
}

/// How often the quality counters are sampled, and how many samples are
/// kept (an hour).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
const SAMPLES_KEPT: usize = 360;

/// The steering quality counters of every service, sampled every
/// [`SAMPLE_INTERVAL`]: the status page draws its charts from the
/// differences between samples.
#[derive(Default)]
pub struct QualityHistory {
    samples: Mutex<VecDeque<Arc<Sample>>>,
}

/// Every service's counters at one time.
pub struct Sample {
    time: Seconds,
    services: BTreeMap<String, Counts>,
}

/// One service's counters, as `/metrics` has them.
#[derive(Clone, Default)]
struct Counts {
    complete: u64,
    learning: u64,
    best: u64,
    regret_us: u64,
    answer_changes: u64,
    explored: u64,
    failed_open: u64,
    answers: BTreeMap<String, u64>,
}

impl QualityHistory {
    /// Takes a sample now and keeps it, dropping the oldest past an hour.
    pub fn sample(&self, engine: &Engine) {
        let sample = Arc::new(take_sample(engine, steering::now()));
        let mut samples = self.samples.lock();
        if samples.len() == SAMPLES_KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    fn since(&self, since: Seconds) -> Vec<Arc<Sample>> {
        self.samples
            .lock()
            .iter()
            .filter(|s| s.time > since)
            .cloned()
            .collect()
    }

    /// Answers per second by service and mirror over the last interval.
    pub fn rates(&self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let samples = self.samples.lock();
        let mut newest = samples.iter().rev();
        let (Some(last), Some(before)) = (newest.next(), newest.next()) else {
            return BTreeMap::new();
        };
        let seconds = last.time.saturating_sub(before.time).max(1) as f64;
        last.services
            .iter()
            .map(|(service, counts)| {
                let earlier = before.services.get(service);
                let rates = counts
                    .answers
                    .iter()
                    .map(|(mirror, n)| {
                        let then = earlier.and_then(|e| e.answers.get(mirror)).copied();
                        let delta = n.saturating_sub(then.unwrap_or(0));
                        (mirror.clone(), delta as f64 / seconds)
                    })
                    .collect();
                (service.clone(), rates)
            })
            .collect()
    }
}

fn take_sample(engine: &Engine, time: Seconds) -> Sample {
    let mut services: BTreeMap<String, Counts> = BTreeMap::new();
    for q in engine.quality() {
        let counts = services.entry(q.service).or_default();
        counts.complete = q.complete;
        counts.learning = q.learning;
        counts.best = q.best;
        counts.regret_us = q.regret_us;
        counts.answer_changes = q.answer_changes;
        counts.explored = q.explored;
    }
    for a in engine.answer_counts() {
        let counts = services.entry(a.service).or_default();
        counts.failed_open = a.failed_open;
        counts.answers = a.by_mirror.into_iter().collect();
    }
    Sample { time, services }
}

fn sample_json(sample: &Sample) -> Value {
    let services: Map<String, Value> = sample
        .services
        .iter()
        .map(|(name, c)| {
            let value = json!({
                "complete": c.complete,
                "learning": c.learning,
                "best": c.best,
                "regret_ms": (c.regret_us as f64 / 1000.0).round(),
                "answer_changes": c.answer_changes,
                "explored": c.explored,
                "failed_open": c.failed_open,
                "answers": c.answers,
            });
            (name.clone(), value)
        })
        .collect();
    json!({"time": sample.time, "services": services})
}

/// Runs the sampling until the API stops.
pub async fn sample_quality(history: Arc<QualityHistory>, engine: Arc<Engine>) {
    let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        history.sample(&engine);
    }
}

/// `GET /v1/quality?since=T`: every service's quality counters now
/// (cumulative, as `/metrics` has them: answers from complete and from
/// learning clusters, on the best mirror, latency lost in ms, flaps,
/// exploration), and the samples taken after unix time `T` (default: all
/// kept, an hour of them) for charts over time.
pub async fn quality(
    State(state): State<ApiState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut since = 0;
    for (key, value) in &params {
        match (key.as_str(), value.parse::<u64>()) {
            ("since", Ok(t)) => since = t,
            ("since", Err(_)) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("since must be a unix time in seconds, not {value:?}"),
                );
            }
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown query parameter {key:?} (since)"),
                );
            }
        }
    }
    let now = take_sample(&state.engine, steering::now());
    let history: Vec<Value> = state
        .quality
        .since(since)
        .iter()
        .map(|s| sample_json(s))
        .collect();
    Json(json!({
        "interval_s": SAMPLE_INTERVAL.as_secs(),
        "now": sample_json(&now),
        "history": history,
    }))
    .into_response()
}

/// The status page's files, compiled into the binary.
const PAGE: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// Nothing but this origin: no external fonts, scripts or requests, even
/// if a bug tried.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
