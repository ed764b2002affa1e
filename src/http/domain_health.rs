//! The DNS health of verified domains as the API shows it (`health` in `GET /v1/domains/{id}`)
//! and the DKIM selectors an admin names for a domain (`PATCH /v1/domains/{id}`).

use actix_web::{patch, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::domains::DomainView;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::path_id;
use crate::domain::dns_checks::{DomainHealth, HealthCheck};
use crate::domain::{Action, AuditActor, ClaimState, DomainClaimId, DomainError};
use crate::store::domain_health;

/// Most DKIM selectors one domain may name.
const MAX_SELECTORS: usize = 10;

/// One DNS health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheckView {
    /// `spf`, `dkim`, `dmarc`, `mx` (and, per channel, `return_path` and `alignment`).
    #[schema(example = "spf")]
    pub(in crate::http) check: &'static str,
    /// `ok`, `missing`, `invalid` or `temp_error` (the DNS did not answer: nothing is
    /// concluded).
    #[schema(example = "ok")]
    pub(in crate::http) status: &'static str,
    /// A sentence a person can act on.
    pub(in crate::http) message: String,
    /// What was found: the SPF lookup count and chain, the DKIM selector and CNAME target,
    /// the DMARC policy, pct and report addresses, the MX hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(in crate::http) detail: Option<Value>,
}

impl From<&HealthCheck> for HealthCheckView {
    fn from(c: &HealthCheck) -> Self {
        let check = match c.check {
            crate::domain::dns_checks::CheckKind::Spf => "spf",
            crate::domain::dns_checks::CheckKind::Dkim => "dkim",
            crate::domain::dns_checks::CheckKind::Dmarc => "dmarc",
            crate::domain::dns_checks::CheckKind::ReturnPath => "return_path",
            crate::domain::dns_checks::CheckKind::Mx => "mx",
            crate::domain::dns_checks::CheckKind::Alignment => "alignment",
        };
        Self {
            check,
            status: c.status.as_str(),
            message: c.message.clone(),
            detail: c.detail.clone(),
        }
    }
}

/// The last run of a verified domain's DNS health checks (hourly, and with every
/// `POST /v1/domains/{id}/verify`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainHealthView {
    pub(in crate::http) checked_at: DateTime<Utc>,
    pub(in crate::http) checks: Vec<HealthCheckView>,
}

impl DomainHealthView {
    /// Shown only for a verified claim: nothing about a domain is shown before it is proven.
    pub(in crate::http) fn of(state: ClaimState, health: Option<&DomainHealth>) -> Option<Self> {
        let health = health.filter(|_| state == ClaimState::Verified)?;
        Some(Self {
            checked_at: health.checked_at,
            checks: health.checks.iter().map(HealthCheckView::from).collect(),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomainRequest {
    /// The DKIM selectors your relay signs this domain with (SendGrid `s1`, `s2`; SES's
    /// three tokens; Google Workspace `google`), checked with the domain's health. At most
    /// 10; replaces the list.
    #[schema(example = json!(["s1", "s2"]))]
    dkim_selectors: Vec<String>,
}

/// A DKIM selector: dot-separated labels of letters, digits, '-' and '_'.
fn selector(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim().to_ascii_lowercase();
    let fine = !s.is_empty()
        && s.len() <= 200
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if fine {
        Ok(s)
    } else {
        Err(DomainError::new(format!(
            "`{raw}` is not a DKIM selector (letters, digits, '-', '_', dot-separated), such as s1 or google"
        )))
    }
}

/// Name the DKIM selectors to check for the domain; the health checks run again at once
/// when the domain is verified.
#[utoipa::path(
    tag = "domains",
    params(("id" = String, Path, description = "domain id")),
    request_body = UpdateDomainRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = DomainView), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, description = "a selector that is not one, or more than 10 (invalid_field)", body = Problem)
    )
)]
#[patch("/domains/{id}")]
pub(super) async fn update_domain(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateDomainRequest>,
) -> Result<web::Json<DomainView>, ApiError> {
    Ok(web::Json(
        set_selectors(&caller, &state, &id, &body.dkim_selectors).await?,
    ))
}

/// `PATCH /v1/domains/{id}` (`dkim_selectors`), for the API and the Domains page.
pub(in crate::http) async fn set_selectors(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    wanted: &[String],
) -> Result<DomainView, ApiError> {
    caller.require(Action::ManageDomains)?;
    let id: DomainClaimId = path_id(id, "domain")?;
    let mut selectors = Vec::new();
    for raw in wanted {
        let s = selector(raw).map_err(|e| ApiError::invalid("dkim_selectors", e))?;
        if !selectors.contains(&s) {
            selectors.push(s);
        }
    }
    if selectors.len() > MAX_SELECTORS {
        return Err(ApiError::invalid(
            "dkim_selectors",
            DomainError::new(format!("at most {MAX_SELECTORS} selectors")),
        ));
    }
    let (tenant, actor) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
    );
    let mut claim = state
        .store
        .run(move |c| domain_health::set_dkim_selectors(c, tenant, id, &selectors, actor))
        .await
        .or_not_found("domain")?;
    if claim.state == ClaimState::Verified {
        claim = state.domains.refresh_health(tenant, id).await?;
    }
    super::gmail_bulk::view_of(state, claim).await
}
