//! `POST /v1/domains/{id}/dkim/rotate`: a new DKIM key for a verified domain. The new key is
//! pending until its record is found in DNS; the active key keeps signing until then.

use actix_web::{post, web};

use super::AppState;
use super::auth::TenantCaller;
use super::domains::DomainView;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::path_id;
use crate::domain::{Action, AuditActor, DomainClaimId};

/// Make a new DKIM key for the domain. It is `pending`: publish its record (listed first in
/// `dkim`); it starts signing once Switchboard finds it (the domain's next check, or
/// `POST /v1/domains/{id}/verify`), and only then does the active key become `retiring`
/// (kept published for 7 days). Until then the active key keeps signing. Rotating while a
/// key is pending replaces that pending key (it never signed: its record can go). Returns
/// the claim with its records. Recorded as `dkim.key_rotated` (`dkim.key_created` when the
/// domain had no key).
#[utoipa::path(
    tag = "domains",
    params(("id" = String, Path, description = "domain id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DomainView), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "the domain is not verified (domain_not_verified): prove it first", body = Problem)
    )
)]
#[post("/domains/{id}/dkim/rotate")]
pub(super) async fn rotate_dkim_key(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<DomainView>, ApiError> {
    Ok(web::Json(rotate(&caller, &state, &id).await?))
}

/// `POST /v1/domains/{id}/dkim/rotate`, for the API and the Domains page.
pub(in crate::http) async fn rotate(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<DomainView, ApiError> {
    caller.require(Action::ManageDomains)?;
    let id: DomainClaimId = path_id(id, "domain")?;
    let (rotated, claim) = state
        .domains
        .rotate_dkim(
            caller.actor.tenant_id,
            id,
            AuditActor::User(caller.actor.user_id),
        )
        .await
        .or_not_found("domain")?;
    tracing::info!(
        domain_claim = %id,
        selector = %rotated.record.selector,
        replaced_pending = ?rotated.replaced_pending.as_ref().map(|s| s.as_str()),
        "DKIM key rotated"
    );
    super::gmail_bulk::view_of(state, claim).await
}
