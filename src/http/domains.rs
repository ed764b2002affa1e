//! Sending domains: a tenant's admins claim a domain (`POST /v1/domains`), publish the TXT
//! record it returns, and the domain is verified when Switchboard finds it (now, with
//! `POST /v1/domains/{id}/verify`, or on the scheduler's next look). Only verified domains
//! are sent as through domain channels and the shared pool.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::domain_health::DomainHealthView;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::path_id;
use super::gmail_bulk::{self, GmailBulkView};
use crate::domain::claims::is_mailbox_provider;
use crate::domain::{Action, AuditActor, Domain, DomainClaimId};
use crate::store::domains::{self, DomainClaim};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimDomainRequest {
    /// The domain to send as, e.g. `acme.example` or `mail.acme.example` (each subdomain is
    /// claimed and proven on its own). IDNs are accepted and stored as punycode.
    #[schema(example = "acme.example")]
    domain: String,
}

/// The record that proves a claim.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationRecord {
    /// Always `TXT`.
    #[serde(rename = "type")]
    #[schema(example = "TXT")]
    pub(in crate::http) kind: &'static str,
    #[schema(example = "_switchboard.acme.example")]
    pub(in crate::http) name: String,
    #[schema(example = "switchboard-domain-verification=5f0c…")]
    pub(in crate::http) value: String,
}

/// One check of a domain: what was looked at, what was found, and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainCheckView {
    /// `ownership` (the claim's TXT record).
    #[schema(example = "ownership")]
    pub(in crate::http) check: &'static str,
    /// `ok`, `missing`, `invalid` or `temp_error`.
    #[schema(example = "missing")]
    pub(in crate::http) status: String,
    /// Stable detail: `nxdomain`, `no_txt_record`, `wrong_value`, `temp_error`.
    pub(in crate::http) code: Option<String>,
    /// A sentence a person can act on.
    pub(in crate::http) message: String,
    pub(in crate::http) at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    #[schema(value_type = String, format = Uuid)]
    pub(in crate::http) id: DomainClaimId,
    #[schema(example = "acme.example")]
    pub(in crate::http) domain: String,
    /// `pending` (publish the record), `verified` (may be sent as), `lapsed` (the record went
    /// missing: no sending until it is back), `failed` (not proven within 72 hours).
    #[schema(example = "pending")]
    pub(in crate::http) state: &'static str,
    /// What the state means, in one sentence.
    pub(in crate::http) state_detail: &'static str,
    /// The TXT record to publish (and keep published: it is checked about daily).
    pub(in crate::http) verification: VerificationRecord,
    pub(in crate::http) created_at: DateTime<Utc>,
    pub(in crate::http) verified_at: Option<DateTime<Utc>>,
    pub(in crate::http) lapsed_at: Option<DateTime<Utc>>,
    pub(in crate::http) last_checked_at: Option<DateTime<Utc>>,
    /// When the scheduler looks next (none for a failed claim: check it on demand).
    pub(in crate::http) next_check_at: Option<DateTime<Utc>>,
    /// Checks in a row that did not find the record (a verified domain lapses at the
    /// operator's limit, 3 by default). Temporary DNS failures are not counted here.
    pub(in crate::http) misses: u32,
    /// The last check of each kind.
    pub(in crate::http) checks: Vec<DomainCheckView>,
    /// The DKIM records to publish: Switchboard signs this tenant's mail from the domain on
    /// the shared pool and on relays with `dkim_sign` ([dkim.md]). A claim comes with a
    /// `pending` key: publish its record with the proof; it signs once it is found. A
    /// retiring record stays published until `retire_after`.
    pub(in crate::http) dkim: Vec<DkimRecordView>,
    /// DKIM selectors named for the domain (`PATCH /v1/domains/{id}`), checked with its health.
    pub(in crate::http) dkim_selectors: Vec<String>,
    /// DNS health (SPF, DKIM, DMARC, MX), for verified domains only; `null` before.
    pub(in crate::http) health: Option<DomainHealthView>,
    /// Gmail's bulk-sender standing, for verified domains only; `null` before.
    pub(in crate::http) gmail_bulk: Option<GmailBulkView>,
}

/// A DKIM key's record in DNS.
#[derive(Debug, Serialize, ToSchema)]
pub struct DkimRecordView {
    #[schema(example = "sb-20261202-k3j9x2qa")]
    pub(in crate::http) selector: String,
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub(in crate::http) kind: &'static str,
    #[schema(example = "sb-20261202-k3j9x2qa._domainkey.acme.example")]
    pub(in crate::http) name: String,
    #[schema(example = "v=DKIM1; k=rsa; p=MIIBIjANBg…")]
    pub(in crate::http) value: String,
    /// `pending` (publish it: it signs once Switchboard finds it in DNS, on the domain's
    /// next check; until then the active key, if any, keeps signing), `active` (signs now)
    /// or `retiring` (signs nothing; keep it published until `retire_after`).
    #[schema(example = "pending")]
    pub(in crate::http) state: &'static str,
    /// What the state asks of you, in one sentence.
    pub(in crate::http) state_detail: &'static str,
    pub(in crate::http) created_at: DateTime<Utc>,
    /// When it started signing (none while pending).
    pub(in crate::http) activated_at: Option<DateTime<Utc>>,
    pub(in crate::http) retire_after: Option<DateTime<Utc>>,
}

impl From<DomainClaim> for DomainView {
    fn from(c: DomainClaim) -> Self {
        let dkim = c
            .dkim
            .iter()
            .map(|r| DkimRecordView {
                selector: r.selector.as_str().to_owned(),
                kind: "TXT",
                name: r.name.clone(),
                value: r.value.clone(),
                state: r.state.as_str(),
                state_detail: r.state.describe(),
                created_at: r.created_at,
                activated_at: r.activated_at,
                retire_after: r.retire_after,
            })
            .collect();
        let record = c.record();
        let checks = c
            .last_check
            .as_ref()
            .map(|last| DomainCheckView {
                check: "ownership",
                status: last["status"].as_str().unwrap_or("temp_error").to_owned(),
                code: last["code"].as_str().map(str::to_owned),
                message: last["message"].as_str().unwrap_or_default().to_owned(),
                at: serde_json::from_value(last["at"].clone()).ok(),
            })
            .into_iter()
            .collect();
        Self {
            id: c.id,
            domain: c.domain.to_string(),
            state: c.state.as_str(),
            state_detail: c.state.describe(),
            verification: VerificationRecord {
                kind: "TXT",
                name: record.name,
                value: record.value,
            },
            created_at: c.created_at,
            verified_at: c.verified_at,
            lapsed_at: c.lapsed_at,
            last_checked_at: c.last_checked_at,
            next_check_at: c.next_check_at,
            misses: c.misses,
            checks,
            dkim,
            health: DomainHealthView::of(c.state, c.health.as_ref()),
            dkim_selectors: c.dkim_selectors,
            gmail_bulk: None,
        }
    }
}

/// The domain a claim names, refused when nobody could prove it.
pub(super) fn claimable(raw: &str, state: &AppState) -> Result<Domain, ApiError> {
    let domain = Domain::parse(raw).map_err(|e| ApiError::invalid("domain", e))?;
    if is_mailbox_provider(&domain) {
        return Err(ApiError::Unprocessable {
            code: "mailbox_provider_domain",
            detail: format!(
                "{domain} belongs to a mailbox provider and cannot be proven by a tenant; reps send as their {domain} address by connecting that mailbox (Connect Gmail, or a mailbox SMTP channel)"
            ),
        });
    }
    if state.config.domains.platform_domain.as_ref() == Some(&domain) {
        return Err(ApiError::Unprocessable {
            code: "platform_domain",
            detail: format!(
                "{domain} is the platform's own domain: the shared pool sends for it without a claim"
            ),
        });
    }
    Ok(domain)
}

/// Claim a sending domain: returns the TXT record to publish. The domain is sent as only
/// once the record is found (`POST /v1/domains/{id}/verify`, or the scheduler within
/// minutes).
#[utoipa::path(
    tag = "domains",
    request_body = ClaimDomainRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = DomainView), (status = 403, body = Problem),
        (status = 409, description = "already claimed by this tenant (domain_already_claimed), or too many claims (too_many_domains)", body = Problem),
        (status = 422, description = "not a domain (invalid_field), a mailbox provider's domain (mailbox_provider_domain) or the platform's (platform_domain)", body = Problem)
    )
)]
#[post("/domains")]
pub(super) async fn claim_domain(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<ClaimDomainRequest>,
) -> Result<HttpResponse, ApiError> {
    let claimed = claim(&caller, &state, &body.domain).await?;
    Ok(HttpResponse::Created().json(claimed))
}

/// `POST /v1/domains`, for the API and the Domains page.
pub(in crate::http) async fn claim(
    caller: &TenantCaller,
    state: &AppState,
    raw: &str,
) -> Result<DomainView, ApiError> {
    caller.require(Action::ManageDomains)?;
    let domain = claimable(raw, state)?;
    let claim = state
        .domains
        .claim(
            caller.actor.tenant_id,
            domain,
            AuditActor::User(caller.actor.user_id),
        )
        .await?;
    tracing::info!(domain_claim = %claim.id, domain = %claim.domain, "domain claimed");
    Ok(claim.into())
}

/// The tenant's domain claims, by name.
#[utoipa::path(
    tag = "domains",
    security(("bearer" = [])),
    responses((status = 200, body = [DomainView]), (status = 403, body = Problem))
)]
#[get("/domains")]
pub(super) async fn list_domains(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<DomainView>>, ApiError> {
    Ok(web::Json(list(&caller, &state).await?))
}

/// `GET /v1/domains`, for the API and the Domains page.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
) -> Result<Vec<DomainView>, ApiError> {
    caller.require(Action::ReadDomains)?;
    let tenant = caller.actor.tenant_id;
    let all = state
        .store
        .run(move |conn| domains::list_with_dkim(conn, tenant))
        .await?;
    let mut views: Vec<DomainView> = all.into_iter().map(DomainView::from).collect();
    gmail_bulk::fill(state, tenant, &mut views).await?;
    Ok(views)
}

/// One domain claim with its record and last checks.
#[utoipa::path(
    tag = "domains",
    params(("id" = String, Path, description = "domain id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DomainView), (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/domains/{id}")]
pub(super) async fn get_domain(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<DomainView>, ApiError> {
    caller.require(Action::ReadDomains)?;
    let id: DomainClaimId = path_id(&id, "domain")?;
    let tenant = caller.actor.tenant_id;
    let found = state
        .store
        .run(move |conn| domains::get(conn, tenant, id))
        .await
        .or_not_found("domain")?;
    Ok(web::Json(gmail_bulk::view_of(&state, found).await?))
}

/// Look for the claim's TXT record now. A found record verifies the domain (and releases
/// mail held for it); a miss counts like a scheduled one; a DNS failure counts for nothing.
#[utoipa::path(
    tag = "domains",
    params(("id" = String, Path, description = "domain id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DomainView), (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[post("/domains/{id}/verify")]
pub(super) async fn verify_domain(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<DomainView>, ApiError> {
    Ok(web::Json(verify(&caller, &state, &id).await?))
}

/// `POST /v1/domains/{id}/verify`, for the API and the Domains page.
pub(in crate::http) async fn verify(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<DomainView, ApiError> {
    caller.require(Action::ReadDomains)?;
    let id: DomainClaimId = path_id(id, "domain")?;
    let recorded = state
        .domains
        .verify(
            caller.actor.tenant_id,
            id,
            AuditActor::User(caller.actor.user_id),
        )
        .await
        .or_not_found("domain")?;
    gmail_bulk::view_of(state, recorded.claim).await
}

/// Drop a claim. Refused while a channel lists the domain (remove it there first); queued
/// mail from the domain is held until it is claimed and verified again.
#[utoipa::path(
    tag = "domains",
    params(("id" = String, Path, description = "domain id")),
    security(("bearer" = [])),
    responses(
        (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "a channel lists the domain (domain_in_use)", body = Problem)
    )
)]
#[delete("/domains/{id}")]
pub(super) async fn delete_domain(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    remove(&caller, &state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/domains/{id}`, for the API and the Domains page.
pub(in crate::http) async fn remove(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<(), ApiError> {
    caller.require(Action::ManageDomains)?;
    let id: DomainClaimId = path_id(id, "domain")?;
    let (tenant, actor) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
    );
    state
        .store
        .run(move |conn| domains::delete(conn, tenant, id, actor))
        .await
        .or_not_found("domain")
}
