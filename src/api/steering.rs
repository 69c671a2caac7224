//! The steering endpoints: services, the learned cluster table, probe work
//! and measurement batches (SPEC section 3).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::errors::error_response;
use super::{ApiState, Writes};
use crate::nats;
use crate::protocol;
use crate::steering::{self, ClusterQuery, MeasurementRequest, Score, SortKey};

/// Probe work returned per request unless `limit` says otherwise.
const DEFAULT_PROBE_LIMIT: usize = 1000;

/// `GET /v1/services`: each service with its mirrors and cluster counts;
/// for the status page also, per mirror, the answers given, the rate over
/// the last quality sample and `capacity_qps` (null: unbounded).
pub async fn services(State(state): State<ApiState>) -> Json<Value> {
    let engine = &state.engine;
    let loads: HashMap<String, f64> = engine.reported_loads(steering::now()).into_iter().collect();
    let mirror_state: serde_json::Map<String, Value> = engine
        .mirror_states()
        .into_iter()
        .map(|m| {
            let mut item = json!({"drained": m.drained, "healthy": !m.down});
            if let Some(load) = loads.get(&m.name) {
                item["reported_load"] = json!(load);
            }
            (m.name, item)
        })
        .collect();
    let answers: HashMap<String, (Vec<(String, u64)>, u64)> = engine
        .answer_counts()
        .into_iter()
        .map(|a| (a.service, (a.by_mirror, a.failed_open)))
        .collect();
    let rates = state.quality.rates();
    let services: Vec<Value> = engine
        .services()
        .into_iter()
        .map(|s| {
            let (given, failed_open) = answers.get(&s.name).cloned().unwrap_or_default();
            let rate = rates.get(&s.name);
            let per_mirror = |f: &dyn Fn(usize, &String) -> Value| -> Value {
                let map: serde_json::Map<String, Value> = s
                    .mirrors
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.clone(), f(i, m)))
                    .collect();
                Value::Object(map)
            };
            json!({
                "name": s.name,
                "zone": s.zone,
                "mirrors": s.mirrors,
                "clusters": s.clusters,
                "complete": s.complete,
                "learning": s.clusters - s.complete,
                "answers": per_mirror(&|_, m| {
                    json!(given.iter().find(|(n, _)| n == m).map_or(0, |(_, c)| *c))
                }),
                "failed_open": failed_open,
                "qps": per_mirror(&|_, m| {
                    json!(rate.and_then(|r| r.get(m)).map(|q| (q * 100.0).round() / 100.0))
                }),
                "capacity_qps": per_mirror(&|i, _| json!(s.capacity_qps.get(i).copied().flatten())),
            })
        })
        .collect();
    Json(json!({ "services": services, "mirror_state": mirror_state }))
}

/// `GET /v1/services/{fqdn}/clusters`: the whole table as before, or with
/// any query parameter a page of it (`total` says how many matched).
pub async fn clusters(
    State(state): State<ApiState>,
    Path(fqdn): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if !params.is_empty() {
        return cluster_page(&state, &fqdn, &params);
    }
    let Some((name, views)) = state.engine.clusters(&fqdn, steering::now()) else {
        return error_response(StatusCode::NOT_FOUND, &format!("no service {fqdn}"));
    };
    let clusters: Vec<Value> = views.into_iter().map(cluster_json).collect();
    Json(json!({ "service": name, "clusters": clusters })).into_response()
}

/// Rows of a page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_PAGE: usize = 1000;
pub const MAX_PAGE: usize = 10_000;

fn cluster_page(state: &ApiState, fqdn: &str, params: &[(String, String)]) -> Response {
    let query = match parse_cluster_query(params) {
        Ok(q) => q,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let Some(page) = state.engine.cluster_page(fqdn, &query, steering::now()) else {
        return error_response(StatusCode::NOT_FOUND, &format!("no service {fqdn}"));
    };
    let clusters: Vec<Value> = page.clusters.into_iter().map(cluster_json).collect();
    Json(json!({
        "service": page.service,
        "clusters": clusters,
        "total": page.total,
        "offset": query.offset,
        "limit": query.limit,
    }))
    .into_response()
}

/// The page's parameters; anything unknown or malformed is an error that
/// names it.
pub fn parse_cluster_query(params: &[(String, String)]) -> Result<ClusterQuery, String> {
    let mut query = ClusterQuery {
        limit: DEFAULT_PAGE,
        ..ClusterQuery::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in params {
        if seen.contains(&key.as_str()) {
            return Err(format!("query parameter {key} given twice"));
        }
        seen.push(key);
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{key} must be a whole number, not {value:?}"))
        };
        match key.as_str() {
            "offset" => query.offset = number()?,
            "limit" => {
                query.limit = number()?;
                if query.limit > MAX_PAGE {
                    return Err(format!("limit {value} is above {MAX_PAGE}"));
                }
            }
            "prefix" => query.prefix = Some(parse_prefix_filter(value)?),
            "state" => {
                query.complete = match value.as_str() {
                    "complete" => Some(true),
                    "learning" => Some(false),
                    _ => return Err(format!("state must be complete or learning, not {value:?}")),
                }
            }
            "mirror" => {
                query.mirror = Some(match value.as_str() {
                    "" => return Err("mirror needs a name (or none)".to_string()),
                    "none" => None,
                    name => Some(name.to_string()),
                })
            }
            "exploring" => {
                query.exploring = match value.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => return Err(format!("exploring must be true or false, not {value:?}")),
                }
            }
            "sort" => {
                let (descending, name) = match value.strip_prefix('-') {
                    Some(name) => (true, name),
                    None => (false, value.as_str()),
                };
                query.descending = descending;
                query.sort = SortKey::parse(name).ok_or_else(|| {
                    let names: Vec<&str> = SortKey::NAMES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "sort must be one of {} (a leading - for descending), not {value:?}",
                        names.join(", ")
                    )
                })?;
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {key:?} (offset, limit, prefix, state, mirror, exploring, sort)"
                ));
            }
        }
    }
    Ok(query)
}

/// An address or a prefix (host bits beyond the length are ignored).
fn parse_prefix_filter(text: &str) -> Result<IpNet, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    text.parse::<IpNet>().map(|net| net.trunc()).map_err(|_| {
        format!("prefix must be an address or a prefix such as 198.51.100.0/24, not {text:?}")
    })
}

fn cluster_json(c: steering::ClusterView) -> Value {
    let rtt: serde_json::Map<String, Value> =
        c.rtt.into_iter().map(|(m, s)| (m, score_json(s))).collect();
    json!({
        "prefix": c.prefix.to_string(),
        "state": if c.complete { "complete" } else { "learning" },
        "mirror": c.mirror,
        "rtt_ms": rtt,
        "offloaded": c.offloaded,
        "blocks": c.blocks,
        "queries": c.queries,
        "exploring": c.exploring,
    })
}

fn score_json(score: Score) -> Value {
    match score {
        Score::Ms(ms) => json!((ms * 1000.0).round() / 1000.0),
        Score::Timeout => json!("timeout"),
        Score::Unknown => Value::Null,
    }
}

pub async fn probes(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(mirror) = params.get("mirror") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "missing query parameter mirror=NAME",
        );
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_PROBE_LIMIT,
        Some(Ok(l)) => l,
        Some(Err(_)) => {
            return error_response(StatusCode::BAD_REQUEST, "limit must be a whole number");
        }
    };
    let Some(probes) = state.engine.probes(mirror, steering::now(), limit) else {
        return error_response(StatusCode::NOT_FOUND, &format!("unknown mirror {mirror:?}"));
    };
    Json(steering::probe_work(&probes)).into_response()
}

pub async fn post_measurements(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counters = &state.counters;
    let reject = |status: StatusCode, count: usize, message: &str| {
        counters.batches_rejected.fetch_add(1, Ordering::Relaxed);
        counters
            .measurements_rejected
            .fetch_add(count as u64, Ordering::Relaxed);
        error_response(status, message)
    };
    let batch: Vec<MeasurementRequest> = match protocol::parse_batch(&body) {
        Ok(b) => b.into_iter().map(MeasurementRequest::from).collect(),
        Err(message) => return reject(StatusCode::BAD_REQUEST, 0, &message),
    };
    // Nothing to store: an agent checks its token this way at start.
    if batch.is_empty() {
        return Json(json!({ "accepted": 0 })).into_response();
    }
    let now = steering::now();
    let accepted = match state.engine.validate(&batch, now) {
        Ok(a) => a,
        Err(e) => return reject(StatusCode::BAD_REQUEST, batch.len(), &e.to_string()),
    };
    let count = accepted.len();
    // 200 only once the batch is on stable storage (SPEC section 4): this
    // instance's journal, or the shared stream, deduplicated by message id
    // so that a client's retry is stored once.
    let stored = match &state.writes {
        Writes::Local(journal) => journal
            .commit(accepted, now)
            .await
            .map_err(|e| e.to_string()),
        Writes::Shared(publisher) => {
            let msg_id = headers
                .get(nats::MSG_ID)
                .and_then(|v| v.to_str().ok())
                .map_or_else(nats::new_msg_id, str::to_string);
            match publisher.measurements(body, &msg_id).await {
                Err(too_large @ nats::PublishError::TooLarge { .. }) => {
                    let status = StatusCode::PAYLOAD_TOO_LARGE;
                    return reject(status, count, &too_large.to_string());
                }
                other => other.map_err(|e| e.to_string()),
            }
        }
    };
    match stored {
        Ok(()) => {
            counters
                .measurements_accepted
                .fetch_add(count as u64, Ordering::Relaxed);
            Json(json!({ "accepted": count })).into_response()
        }
        Err(e) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not stored, retry: {e}"),
        ),
    }
}

pub async fn drain(state: State<ApiState>, name: Path<String>) -> Response {
    set_drained(state, name, true).await
}

pub async fn undrain(state: State<ApiState>, name: Path<String>) -> Response {
    set_drained(state, name, false).await
}

/// Journals the drain first, so it survives a restart like a measurement.
async fn set_drained(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    drained: bool,
) -> Response {
    if !state.engine.has_mirror(&name) {
        return error_response(StatusCode::NOT_FOUND, &format!("unknown mirror {name:?}"));
    }
    let stored = match &state.writes {
        Writes::Local(journal) => journal
            .drain(&name, drained)
            .await
            .map_err(|e| e.to_string()),
        Writes::Shared(publisher) => publisher.drain(&name, drained).await,
    };
    match stored {
        Ok(()) => {
            tracing::info!(mirror = %name, drained, "mirror drain changed by the API");
            steering::warn_failing_open(&state.engine);
            Json(json!({ "mirror": name, "drained": drained })).into_response()
        }
        Err(e) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not stored, retry: {e}"),
        ),
    }
}

/// An agent's load figure for its mirror: 1.0 is at capacity.
pub async fn post_load(State(state): State<ApiState>, body: Bytes) -> Response {
    let report = match protocol::parse_load(&body) {
        Ok(r) => r,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, &message),
    };
    let engine = &state.engine;
    if !engine.has_mirror(&report.mirror) {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("unknown mirror {:?}", report.mirror),
        );
    }
    if let Writes::Shared(publisher) = &state.writes {
        if let Err(e) = publisher.load(body).await {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not shared, retry: {e}"),
            );
        }
    } else {
        engine.report_load(&report.mirror, report.load, steering::now());
    }
    Json(json!({ "mirror": report.mirror, "load": report.load })).into_response()
}

/// `GET /v1/explain?service=FQDN&client=ADDR_OR_PREFIX`.
pub async fn explain(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (Some(service), Some(client)) = (params.get("service"), params.get("client")) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "give service=FQDN and client=ADDRESS_OR_PREFIX",
        );
    };
    let client = match steering::parse_client(client) {
        Ok(c) => c,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e),
    };
    let Some(e) = state.engine.explain(service, client, steering::now()) else {
        return error_response(StatusCode::NOT_FOUND, &format!("no service {service}"));
    };
    let mirrors: Vec<Value> = e
        .mirrors
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "rtt_ms": match m.rtt { Score::Unknown => Value::Null, s => score_json(s) },
                "age_s": m.age_s,
                "method": m.method.and_then(|x| x.as_str()),
                "healthy": m.healthy,
                "drained": m.drained,
                "reported_load": m.reported_load,
            })
        })
        .collect();
    Json(json!({
        "service": e.service,
        "client": e.client.to_string(),
        "cluster": e.cluster.map(|c| c.to_string()),
        "state": if e.cluster.is_none() { "none" } else if e.complete { "complete" } else { "learning" },
        "mirror": e.mirror,
        "offloaded": e.offloaded,
        "silent": e.silent,
        "exploring": e.exploring.as_ref().map(|x| json!({"mirror": x.mirror, "answers": x.answers, "of": x.of})),
        "mirrors": mirrors,
        "margin": {"ms": e.margin.ms, "percent": e.margin.percent},
        "reason": e.reason,
    }))
    .into_response()
}
