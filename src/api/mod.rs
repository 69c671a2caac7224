//! The HTTP control API (SPEC section 3) on axum. Reads are open; every write
//! needs `Authorization: Bearer TOKEN` and gets 401 without it.
//!
//! - `token`: where the token comes from.
//! - `steering`: the learned table and measurement endpoints.
//! - `status`: events, quality over time and the status page (`GET /ui`).

mod status;
mod steering;
pub mod token;

pub use status::QualityHistory;
pub use steering::{parse_batch, parse_cluster_query, parse_load, probe_list_json};

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::error;

use crate::app::App;
use crate::nats::Publisher;
use crate::state::Journal;

/// Largest request body accepted (a batch of about 10,000 measurements); larger gets 413.
const MAX_BODY: usize = 1024 * 1024;
/// A request (a slow client's body included) gets this long, then 408.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Requests handled at once; more wait their turn, so a flood of batches
/// cannot take every worker from the DNS listeners.
const MAX_CONCURRENT_REQUESTS: usize = 32;

/// Where the API's writes go: into this instance's journal, or with
/// `--nats` to the shared streams, which every instance (this one too)
/// applies from there.
#[derive(Clone)]
pub enum Writes {
    Local(Journal),
    Shared(Box<Publisher>),
}

#[derive(Clone)]
struct ApiState {
    app: Arc<App>,
    token: Arc<str>,
    writes: Writes,
    /// Quality counters sampled over time, for the status page's charts.
    quality: Arc<QualityHistory>,
}

pub fn router(
    app: Arc<App>,
    token: String,
    writes: Writes,
    quality: Arc<QualityHistory>,
) -> Router {
    let state = ApiState {
        app,
        token: token.into(),
        writes,
        quality,
    };
    let writes = Router::new()
        .route("/v1/reload", post(reload))
        .route("/v1/measurements", post(steering::post_measurements))
        .route("/v1/load", post(steering::post_load))
        .route("/v1/mirrors/{name}/drain", post(steering::drain))
        .route("/v1/mirrors/{name}/undrain", post(steering::undrain))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/services", get(steering::services))
        .route("/v1/services/{fqdn}/clusters", get(steering::clusters))
        .route("/v1/probes", get(steering::probes))
        .route("/v1/explain", get(steering::explain))
        .route("/v1/events", get(status::events))
        .route("/v1/quality", get(status::quality))
        .route("/ui", get(status::page))
        .route("/ui/app.js", get(status::script))
        .route("/ui/style.css", get(status::style))
        .route("/metrics", get(metrics))
        .merge(writes)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .with_state(state)
}

/// Serves the API on `listener`, and samples the quality counters for the
/// status page while it runs.
pub async fn serve(listener: TcpListener, app: Arc<App>, token: String, writes: Writes) {
    let quality = Arc::new(QualityHistory::default());
    let sampler = tokio::spawn(status::sample_quality(
        Arc::clone(&quality),
        app.shared_engine(),
    ));
    let result = axum::serve(listener, router(app, token, writes, quality)).await;
    sampler.abort();
    if let Err(e) = result {
        error!(error = %e, "api server stopped");
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let app = Arc::clone(&state.app);
    match tokio::task::spawn_blocking(move || crate::metrics::render(&app)).await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        _ => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        ),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn reload(State(state): State<ApiState>) -> Response {
    let app = Arc::clone(&state.app);
    match tokio::task::spawn_blocking(move || app.reload_logged("api")).await {
        Ok(Ok(loaded)) => {
            Json(json!({"status": "ok", "zones": loaded.zones, "services": loaded.services}))
                .into_response()
        }
        Ok(Err(errors)) => error_response(StatusCode::BAD_REQUEST, &errors.to_string()),
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload failed unexpectedly",
        ),
    }
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.trim().as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => error_response(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"),
    }
}

/// Compares without an early exit, so response timing does not leak a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
