use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use crate::store::migrations;

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
