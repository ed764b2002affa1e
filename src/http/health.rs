use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, get, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::store::{channels, kind_stats, messages, migrations, notifications, processes};

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
    })
}

/// The database answers and every migration of this binary is applied.
#[utoipa::path(
    tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Problem))
)]
#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pending = state
        .store
        .run(migrations::pending)
        .await
        .map_err(|e| ApiError::NotReady(format!("the database does not answer: {e}")))?;
    if pending {
        return Err(ApiError::NotReady(
            "database migrations are pending; run `switchboard migrate` or restart the service"
                .into(),
        ));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        database: Some(state.store.backend().name()),
    }))
}

/// Prometheus metrics: delivery outcomes and attempt latency of this process, queue depth and
/// channel health of the shared database. Bounded labels only. When
/// `SWITCHBOARD_METRICS_TOKEN` is set, scrapers send it as a bearer token.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, body = Problem)
    )
)]
#[get("/metrics")]
pub(super) async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.config.metrics_token {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(expected.expose_secret().as_bytes()),
        ) {
            return Err(if presented.is_empty() {
                ApiError::MissingToken
            } else {
                ApiError::InvalidToken
            });
        }
    }
    let timeout = state.config.delivery.heartbeat_timeout;
    let stale_before = chrono::Utc::now().timestamp_micros()
        - i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
    let today = crate::store::channel_stats::day_of(state.config.clock.now_micros());
    let (queue, channel_states, notices, fleet) = state
        .store
        .run(move |conn| {
            Ok((
                messages::count_by_status(conn)?,
                channels::count_by_status(conn)?,
                notifications::count_by_status(conn)?,
                processes::count_by_state(conn, stale_before)?,
            ))
        })
        .await?;
    let by_kind = state
        .store
        .run(move |conn| kind_stats::day_by_kind(conn, today))
        .await?;
    let mut body = state
        .outbox
        .metrics()
        .render(&queue, &channel_states, &notices, &fleet);
    let by_kind: Vec<(String, [i64; 6])> = by_kind
        .into_iter()
        .map(|(kind, c)| {
            let figures = [
                c.sent,
                c.deferred,
                c.held,
                c.failed,
                c.recipients,
                c.hard_bounces,
            ];
            (kind, figures)
        })
        .collect();
    crate::metrics::render_day_by_kind(&mut body, &by_kind);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}
