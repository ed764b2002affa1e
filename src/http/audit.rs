//! `GET /v1/audit`: the tenant's audit trail for admins and IT, filtered by time, target
//! (a channel) and action. Events never hold a secret; they are only ever appended.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, Problem};
use crate::domain::{Action, ChannelId};
use crate::store::audit::{self, AuditFilter};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Only events about this channel.
    channel_id: Option<String>,
    /// Only this action (`credential.rotated`), or a family ending in a dot (`channel.`).
    action: Option<String>,
    /// At most this many events, 1 to 1000 (default 200); continue with `since` set to the
    /// last event's `at`.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub(in crate::http) at: DateTime<Utc>,
    /// `user:<id>`, `operator`, `cli` or `system`.
    pub(in crate::http) actor: String,
    pub(in crate::http) action: String,
    pub(in crate::http) target: Option<String>,
    #[schema(value_type = Object)]
    pub(in crate::http) detail: serde_json::Value,
}

fn bad(detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: detail.to_owned(),
    }
}

#[utoipa::path(
    tag = "tenancy",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = [AuditView]), (status = 400, body = Problem),
        (status = 403, body = Problem)
    )
)]
#[get("/audit")]
pub(super) async fn list_audit(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<Vec<AuditView>>, ApiError> {
    Ok(web::Json(
        search(&caller, &state, query.into_inner()).await?,
    ))
}

/// `GET /v1/audit`: the events matching `q`, oldest first; the audit page reads it too.
pub(in crate::http) async fn search(
    caller: &TenantCaller,
    state: &AppState,
    q: AuditQuery,
) -> Result<Vec<AuditView>, ApiError> {
    caller.require(Action::ReadAudit)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be 1 to 1000"));
    }
    let target = q
        .channel_id
        .as_deref()
        .map(|raw| raw.parse::<ChannelId>().map(|c| c.to_string()))
        .transpose()
        .map_err(|_| bad("channel_id must be a channel id"))?;
    if let Some(action) = &q.action
        && (action.is_empty()
            || !action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'))
    {
        return Err(bad(
            "action is a name such as credential.rotated, or a family such as channel.",
        ));
    }
    let filter = AuditFilter {
        since: q.since.map(|t| t.timestamp_micros()),
        until: q.until.map(|t| t.timestamp_micros()),
        target,
        action: q.action,
        limit,
    };
    let tenant = caller.actor.tenant_id;
    let records = state
        .store
        .run(move |conn| audit::search(conn, tenant, &filter))
        .await?;
    let views = records
        .into_iter()
        .map(|r| AuditView {
            at: DateTime::from_timestamp_micros(r.at).unwrap_or_default(),
            actor: r.actor,
            action: r.action,
            target: r.target,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(views)
}
