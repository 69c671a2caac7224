//! The HTTP control API (SPEC section 3) on axum. Reads are open; every write
//! needs `Authorization: Bearer TOKEN` and gets 401 without it.
//!
//! The API works on the handles the server hands it ([`Handles`]): the
//! engine, the counters, where writes go, what reloads the zones, and what
//! `/metrics` reads. It knows nothing of how they were put together.
//!
//! - `token`: where the token comes from.
//! - `errors`: every error as JSON, those answered before a handler too.
//! - `steering`: the learned table and measurement endpoints.
//! - `status`: events, quality over time and the status page (`GET /ui`).

mod errors;
mod status;
mod steering;
pub mod token;

pub use status::QualityHistory;
pub use steering::parse_cluster_query;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::error;

use crate::metrics::{self, Counters};
use crate::nats::Publisher;
use crate::state::Journal;
use crate::steering::Engine;
use errors::error_response;

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

/// What `POST /v1/reload` asks of the server.
pub trait Reload: Send + Sync {
    /// Loads the zone files again: what was loaded, or why the zones that
    /// were serving keep serving.
    fn reload_zones(&self) -> Result<Reloaded, String>;
}

/// What a successful reload loaded.
#[derive(Clone, Copy, Debug)]
pub struct Reloaded {
    pub zones: usize,
    pub services: usize,
}

/// What the API works with, handed in by the server.
#[derive(Clone)]
pub struct Handles {
    pub engine: Arc<Engine>,
    pub counters: Arc<Counters>,
    pub writes: Writes,
    pub reload: Arc<dyn Reload>,
    pub metrics: metrics::Sources,
}

#[derive(Clone)]
struct ApiState {
    engine: Arc<Engine>,
    counters: Arc<Counters>,
    writes: Writes,
    reload: Arc<dyn Reload>,
    metrics: metrics::Sources,
    /// Quality counters sampled over time, for the status page's charts.
    quality: Arc<QualityHistory>,
}

/// The API's routes over `handles`; writes need `token`; `quality` is the
/// history the status page draws.
pub fn router(handles: Handles, token: String, quality: Arc<QualityHistory>) -> Router {
    let state = ApiState {
        engine: handles.engine,
        counters: handles.counters,
        writes: handles.writes,
        reload: handles.reload,
        metrics: handles.metrics,
        quality,
    };
    let token: Arc<str> = token.into();
    // The token is checked once the method matched: a GET on a write's
    // path is a 405, whatever the token.
    let write = |route: MethodRouter<ApiState>| {
        route.route_layer(middleware::from_fn_with_state(
            Arc::clone(&token),
            require_token,
        ))
    };
    let api = Router::new()
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
        .route("/metrics", get(scrape))
        .route("/v1/reload", write(post(reload)))
        .route("/v1/measurements", write(post(steering::post_measurements)))
        .route("/v1/load", write(post(steering::post_load)))
        .route("/v1/mirrors/{name}/drain", write(post(steering::drain)))
        .route("/v1/mirrors/{name}/undrain", write(post(steering::undrain)))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .with_state(state);
    // Around the whole router, not each route: a 405's `Allow` is set by
    // the route outside any layer of its own.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(errors::json_errors))
}

/// Serves the API on `listener`, and samples the quality counters for the
/// status page while it runs.
pub async fn serve(listener: TcpListener, handles: Handles, token: String) {
    let quality = Arc::new(QualityHistory::default());
    let sampler = tokio::spawn(status::sample_quality(
        Arc::clone(&quality),
        Arc::clone(&handles.engine),
    ));
    let result = axum::serve(listener, router(handles, token, quality)).await;
    sampler.abort();
    if let Err(e) = result {
        error!(error = %e, "api server stopped");
    }
}

/// `GET /metrics` in the format the scraper's `Accept` prefers.
async fn scrape(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = metrics::Format::negotiate(accept);
    let sources = state.metrics.clone();
    match tokio::task::spawn_blocking(move || sources.render(format)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
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
    let reload = Arc::clone(&state.reload);
    match tokio::task::spawn_blocking(move || reload.reload_zones()).await {
        Ok(Ok(loaded)) => {
            Json(json!({"status": "ok", "zones": loaded.zones, "services": loaded.services}))
                .into_response()
        }
        Ok(Err(errors)) => error_response(StatusCode::BAD_REQUEST, &errors),
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload failed unexpectedly",
        ),
    }
}

async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => error_response(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; the scheme is
/// matched case-insensitively, as RFC 7235 says.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Compares without an early exit, so response timing does not leak a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
