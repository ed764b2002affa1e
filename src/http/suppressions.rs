//! The tenant's suppression list: `GET /v1/suppressions` (admins and IT),
//! `POST /v1/suppressions` and `DELETE /v1/suppressions/{address}` (admins). Recipients add
//! themselves through a message's unsubscribe link (`http::unsubscribe`); the send path
//! refuses and the outbox skips whoever is on it.

use actix_web::{HttpResponse, delete, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use crate::domain::{Action, AuditActor, EmailAddress, SuppressionReason};
use crate::store::suppressions::{self, ListFilter, NewSuppression, Suppression};

/// Where an entry came from.
#[derive(Serialize, ToSchema)]
pub struct SuppressionSource {
    /// The message whose unsubscribe link the recipient used, or that bounced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::http) message_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionView {
    /// Lower case.
    pub(in crate::http) address: String,
    /// `unsubscribed`, `hard_bounce` or `manual`.
    pub(in crate::http) reason: &'static str,
    pub(in crate::http) source: SuppressionSource,
    pub(in crate::http) created_at: DateTime<Utc>,
    /// The user who added it (absent for a recipient's own unsubscribe or a bounce).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::http) created_by: Option<String>,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        Self {
            address: s.address,
            reason: s.reason.as_str(),
            source: SuppressionSource {
                message_id: s.message_id,
            },
            created_at: s.created_at,
            created_by: s.created_by,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    pub(in crate::http) suppressions: Vec<SuppressionView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub(in crate::http) next: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this address (any case).
    pub(in crate::http) address: Option<String>,
    /// Continue after this cursor (`next` of the previous page).
    pub(in crate::http) before: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub(in crate::http) limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppressionRequest {
    /// The address to stop mailing.
    pub(in crate::http) address: String,
    /// `manual` (the default); `unsubscribed` or `hard_bounce` when importing a list kept
    /// elsewhere.
    pub(in crate::http) reason: Option<String>,
}

fn bad_query(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: detail.into(),
    }
}

/// The cursor after an entry: opaque to clients (base64url), so that an address with `+` or
/// `&` needs no escaping in the query string.
fn cursor(s: &Suppression) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}_{}", s.created_micros, s.address))
}

fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (at, address) = text.split_once('_')?;
    Some((at.parse().ok()?, address.to_owned()))
}

#[utoipa::path(
    tag = "suppressions",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the tenant's suppressed addresses, newest first", body = SuppressionList),
        (status = 400, body = Problem), (status = 403, body = Problem)
    )
)]
#[get("/suppressions")]
pub(super) async fn list_suppressions(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<SuppressionList>, ApiError> {
    Ok(web::Json(list(&caller, &state, query.into_inner()).await?))
}

/// A page of the tenant's list: the work of `GET /v1/suppressions` and of the Suppressions
/// page.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
    q: ListQuery,
) -> Result<SuppressionList, ApiError> {
    caller.require(Action::ReadSuppressions)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit must be 1 to 500"));
    }
    let address = q
        .address
        .as_deref()
        .map(|a| EmailAddress::parse(a.trim()).map(|a| a.normalized()))
        .transpose()
        .map_err(|e| bad_query(format!("address: {}", e.reason)))?;
    let before = q
        .before
        .as_deref()
        .map(|c| {
            parse_cursor(c)
                .ok_or_else(|| bad_query("before must be a `next` cursor from a previous page"))
        })
        .transpose()?;
    let filter = ListFilter {
        address,
        before,
        limit: limit + 1,
    };
    let tenant = caller.actor.tenant_id;
    let mut page = state
        .store
        .run(move |conn| suppressions::list(conn, tenant, &filter))
        .await?;
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let next = if more { page.last().map(cursor) } else { None };
    Ok(SuppressionList {
        suppressions: page.into_iter().map(SuppressionView::from).collect(),
        next,
    })
}

#[utoipa::path(
    tag = "suppressions",
    request_body = AddSuppressionRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "added", body = SuppressionView),
        (status = 200, description = "already on the list: the entry as it was", body = SuppressionView),
        (status = 403, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/suppressions")]
pub(super) async fn add_suppression(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<AddSuppressionRequest>,
) -> Result<HttpResponse, ApiError> {
    let (entry, added) = add(&caller, &state, body.into_inner()).await?;
    let mut response = if added {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(entry))
}

/// Puts an address on the list (the work of `POST /v1/suppressions` and of the page's form);
/// says whether it was new.
pub(in crate::http) async fn add(
    caller: &TenantCaller,
    state: &AppState,
    body: AddSuppressionRequest,
) -> Result<(SuppressionView, bool), ApiError> {
    caller.require(Action::ManageSuppressions)?;
    let address = EmailAddress::parse(body.address.trim())
        .map_err(|e| ApiError::invalid("address", e))?
        .normalized();
    let reason = match body.reason.as_deref() {
        None => SuppressionReason::Manual,
        Some(raw) => raw.parse().map_err(|e| ApiError::invalid("reason", e))?,
    };
    let tenant = caller.actor.tenant_id;
    let new = NewSuppression {
        address,
        reason,
        message: None,
        actor: AuditActor::User(caller.actor.user_id),
    };
    let (entry, added) = state
        .store
        .run(move |conn| suppressions::add(conn, tenant, &new))
        .await?;
    if added {
        tracing::info!(reason = entry.reason.as_str(), "suppression added");
    }
    Ok((SuppressionView::from(entry), added))
}

#[utoipa::path(
    tag = "suppressions",
    params(("address" = String, Path, description = "the suppressed address (URL-encoded; any case)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "taken off the list: mail to the address is accepted again"),
        (status = 403, body = Problem), (status = 404, body = Problem)
    )
)]
#[delete("/suppressions/{address}")]
pub(super) async fn remove_suppression(
    caller: TenantCaller,
    state: web::Data<AppState>,
    address: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    remove(&caller, &state, &address).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Takes an address off the list: the work of `DELETE /v1/suppressions/{address}` and of the
/// page's Remove button.
pub(in crate::http) async fn remove(
    caller: &TenantCaller,
    state: &AppState,
    address: &str,
) -> Result<(), ApiError> {
    caller.require(Action::ManageSuppressions)?;
    let not_found = ApiError::NotFound {
        what: "suppression",
    };
    // What does not parse as an address cannot be on the list.
    let address = EmailAddress::parse(address.trim())
        .map_err(|_| not_found.clone())?
        .normalized();
    let tenant = caller.actor.tenant_id;
    let actor = AuditActor::User(caller.actor.user_id);
    state
        .store
        .run(move |conn| suppressions::remove(conn, tenant, &address, actor))
        .await
        .or_not_found("suppression")?;
    tracing::info!("suppression removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_any_address_through_a_query_string() {
        let s = Suppression {
            address: "a+b&c_d@example.com".into(),
            reason: SuppressionReason::Manual,
            message_id: None,
            created_by: None,
            created_at: Utc::now(),
            created_micros: 1_700_000_000_000_123,
        };
        let c = cursor(&s);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            parse_cursor(&c),
            Some((1_700_000_000_000_123, "a+b&c_d@example.com".to_owned()))
        );
        assert_eq!(parse_cursor("not a cursor"), None);
    }
}
