//! A span per request with a request id (taken from `x-request-id` when it is sane, made up
//! otherwise, and returned in the response), and one log line per finished request. Only
//! the path is logged (an unsubscribe link's token blanked out), never the query string
//! (OAuth callbacks carry codes there) or headers.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The path as logged: an unsubscribe link's token is a credential for its recipient's
/// opt-out, so it is never written down.
fn logged_path(path: &str) -> &str {
    if path.starts_with(crate::domain::suppression::UNSUBSCRIBE_PATH) {
        "/unsubscribe/{token}"
    } else {
        path
    }
}

pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %logged_path(req.path()),
        tenant_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let quiet = matches!(req.path(), "/healthz" | "/readyz");
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    let mut response = result?;
    let status = response.status().as_u16();
    if status >= 500 {
        tracing::error!(status, elapsed_ms, "request failed");
    } else if quiet {
        tracing::debug!(status, elapsed_ms, "request finished");
    } else {
        tracing::info!(status, elapsed_ms, "request finished");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}
