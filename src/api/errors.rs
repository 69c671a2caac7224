//! Every error the API answers is JSON `{"error": "..."}` (SPEC section 3):
//! the handlers' own, and those axum and tower-http answer before a handler
//! runs (an unknown path, a wrong method, a body over the limit, a timeout),
//! which would otherwise be plain text or empty.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{MAX_BODY, REQUEST_TIMEOUT};

/// Error bodies read back to be wrapped in JSON are this long at most.
const MAX_ERROR_TEXT: usize = 4096;

pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Wraps every error response that is not JSON yet, keeping its status and
/// its other headers (a 405's `Allow`).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no such path {path}"),
        StatusCode::METHOD_NOT_ALLOWED => not_allowed(&method, &path, &parts.headers),
        StatusCode::PAYLOAD_TOO_LARGE => format!("request body larger than {MAX_BODY} bytes"),
        StatusCode::REQUEST_TIMEOUT => format!(
            "request not completed within {} s",
            REQUEST_TIMEOUT.as_secs()
        ),
        _ => body_text(body, status).await,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let json = error_response(status, &message);
    parts.headers.extend(json.headers().clone());
    Response::from_parts(parts, json.into_body())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn not_allowed(method: &Method, path: &str, headers: &HeaderMap) -> String {
    let allowed = headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    format!("{method} is not allowed on {path} (allowed: {allowed})")
}

/// What the layer that refused said, or the status's own reason when it
/// said nothing.
async fn body_text(body: Body, status: StatusCode) -> String {
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn answer(router: Router, path: &str) -> (StatusCode, String, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), MAX_ERROR_TEXT)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_plain_text_server_error_becomes_json_with_its_text() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "the disk is full") }),
            )
            .route("/empty", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .layer(axum::middleware::from_fn(json_errors));
        assert_eq!(
            answer(router.clone(), "/boom").await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json".to_string(),
                r#"{"error":"the disk is full"}"#.to_string()
            )
        );
        assert_eq!(
            answer(router, "/empty").await.2,
            r#"{"error":"Service Unavailable"}"#
        );
    }
}
