//! Tenants: created by the platform operator; their policy set by the tenant's admins.

use crate::domain::pacing::WindowsSpec;
use crate::store::pacing;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{OperatorCaller, TenantCaller};
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::path_id;
use crate::domain::bounces::BouncePolicy;
use crate::domain::{
    Action, AuditActor, ClaimState, DisplayName, Domain, EmailAddress, Tenant, TenantId,
};
use crate::store::write_transaction;
use crate::store::{DbConnection, StoreError, tenants};
use crate::store::{domains, pauses};
use crate::vault::IssuedToken;

/// Most sending domains one tenant may list.
const MAX_DOMAINS: usize = 500;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    name: String,
    /// The first admin's address; they receive the returned token.
    admin_email: String,
    /// The first admin's name (defaults to the part of the address before @).
    admin_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAdmin {
    #[schema(value_type = String, format = Uuid)]
    user_id: crate::domain::UserId,
    email: String,
    /// The admin's API token. Shown this once; only its hash is stored.
    token: String,
    #[schema(value_type = String, format = Uuid)]
    token_id: crate::domain::TokenId,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    #[schema(value_type = String, format = Uuid)]
    id: crate::domain::TenantId,
    name: String,
    admin: CreatedAdmin,
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String, format = Uuid)]
    pub(in crate::http) id: crate::domain::TenantId,
    pub(in crate::http) name: String,
    /// Kill switch: when false nothing of this tenant is sent.
    pub(in crate::http) sending_enabled: bool,
    /// `hold` (default) or `fallback`: what happens when a sender's own channel cannot send.
    pub(in crate::http) fallback_policy: String,
    pub(in crate::http) shared_pool_allowed: bool,
    /// The domains the tenant claimed (any state), lower-case ASCII (IDN as punycode),
    /// sorted. Each is a claim under `/v1/domains`; only verified ones are sent as.
    pub(in crate::http) domains: Vec<String>,
    /// The claimed domains that are verified: sent as through domain channels and the
    /// shared pool.
    pub(in crate::http) verified_domains: Vec<String>,
    /// Messages that do not say (`unsubscribe`) and are not transactional carry one-click
    /// unsubscribe headers.
    pub(in crate::http) unsubscribe_by_default: bool,
    /// Windows and a daily cap for channels that set none (docs/pacing.md):
    /// `{windows?: {time_zone, windows: [...]}, per_day_messages?}`.
    #[schema(value_type = Object)]
    pub(in crate::http) sending_defaults: serde_json::Value,
    /// When hard bounces pause a channel (see docs/bounces.md).
    pub(in crate::http) bounce_pause: BouncePauseView,
    pub(in crate::http) created_at: DateTime<Utc>,
    pub(in crate::http) updated_at: DateTime<Utc>,
}

/// The bounce auto-pause rule: a channel whose hard-bounced recipients reach
/// `threshold_percent` of its recipients over the last `window_days` UTC days, once it has
/// at least `min_sends`, is paused.
#[derive(Serialize, ToSchema)]
pub struct BouncePauseView {
    pub(in crate::http) threshold_percent: f64,
    pub(in crate::http) min_sends: u32,
    pub(in crate::http) window_days: u32,
}

impl From<BouncePolicy> for BouncePauseView {
    fn from(p: BouncePolicy) -> Self {
        Self {
            threshold_percent: p.threshold_percent(),
            min_sends: p.min_sends,
            window_days: p.window_days,
        }
    }
}

/// A change of the bounce rule; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BouncePauseInput {
    /// Above 0, at most 20, two decimals at most (default 3).
    threshold_percent: Option<f64>,
    /// At least 1 (default 50).
    min_sends: Option<u32>,
    /// 1 to 90 days (default 7).
    window_days: Option<u32>,
}

impl BouncePauseInput {
    /// Checks each given field (they do not depend on each other), so a bad one is refused
    /// before anything changes; returns the same change, checked.
    fn check(self) -> Result<Self, ApiError> {
        let defaults = BouncePolicy::default();
        BouncePolicy::parse(
            self.threshold_percent
                .unwrap_or_else(|| defaults.threshold_percent()),
            self.min_sends.unwrap_or(defaults.min_sends),
            self.window_days.unwrap_or(defaults.window_days),
        )
        .map_err(|(field, e)| ApiError::InvalidField {
            field: match field {
                "threshold_percent" => "bounce_pause.threshold_percent",
                "min_sends" => "bounce_pause.min_sends",
                _ => "bounce_pause.window_days",
            },
            reason: e.reason,
        })?;
        Ok(self)
    }

    /// The current rule with the checked change applied.
    fn apply(&self, current: BouncePolicy) -> BouncePolicy {
        BouncePolicy {
            threshold_basis_points: self
                .threshold_percent
                .map_or(current.threshold_basis_points, |p| {
                    (p * 100.0).round() as u32
                }),
            min_sends: self.min_sends.unwrap_or(current.min_sends),
            window_days: self.window_days.unwrap_or(current.window_days),
        }
    }
}

impl TenantView {
    /// The tenant with its claimed domains (sorted) and their states.
    fn of(t: Tenant, claims: &[(Domain, ClaimState)], bounce_pause: BouncePolicy) -> Self {
        let names = |only_verified: bool| {
            claims
                .iter()
                .filter(|(_, state)| !only_verified || *state == ClaimState::Verified)
                .map(|(domain, _)| domain.to_string())
                .collect()
        };
        Self {
            id: t.id,
            name: t.name.to_string(),
            sending_enabled: t.policy.sending_enabled,
            fallback_policy: t.policy.fallback_policy.as_str().to_owned(),
            shared_pool_allowed: t.policy.shared_pool_allowed,
            domains: names(false),
            verified_domains: names(true),
            unsubscribe_by_default: t.policy.unsubscribe_by_default,
            sending_defaults: serde_json::json!({}),
            bounce_pause: bounce_pause.into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The tenant with its claimed domains.
fn view(conn: &mut DbConnection, tenant: Tenant) -> Result<TenantView, StoreError> {
    let mut claims: Vec<(Domain, ClaimState)> =
        domains::states(conn, tenant.id)?.into_iter().collect();
    claims.sort_by(|a, b| a.0.cmp(&b.0));
    let defaults = pacing::tenant_defaults(conn, tenant.id)?;
    let bounce_pause = pauses::policy(conn, tenant.id)?;
    let mut view = TenantView::of(tenant, &claims, bounce_pause);
    view.sending_defaults =
        serde_json::to_value(pacing::SendingDefaultsDoc::from(&defaults)).unwrap_or_default();
    Ok(view)
}

/// Create a tenant with its first admin and that admin's token.
#[utoipa::path(
    tag = "tenancy",
    request_body = CreateTenantRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedTenant),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/tenants")]
pub(super) async fn create_tenant(
    _operator: OperatorCaller,
    state: web::Data<AppState>,
    body: web::Json<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = DisplayName::parse(&body.name).map_err(|e| ApiError::invalid("name", e))?;
    let admin_email =
        EmailAddress::parse(&body.admin_email).map_err(|e| ApiError::invalid("admin_email", e))?;
    let admin_name = match &body.admin_name {
        Some(n) => DisplayName::parse(n).map_err(|e| ApiError::invalid("admin_name", e))?,
        None => DisplayName::parse(admin_email.local_part())
            .map_err(|e| ApiError::invalid("admin_email", e))?,
    };
    let token = IssuedToken::generate();
    let hash = token.hash;
    let vault = state.vault.clone();
    let created = state
        .store
        .run(move |conn| {
            tenants::create_with_admin(
                conn,
                &vault,
                AuditActor::Operator,
                &name,
                &admin_email,
                &admin_name,
                hash,
            )
        })
        .await?;
    tracing::info!(tenant_id = %created.tenant.id, admin_id = %created.admin.id, "tenant created");
    Ok(HttpResponse::Created().json(CreatedTenant {
        id: created.tenant.id,
        name: created.tenant.name.to_string(),
        admin: CreatedAdmin {
            user_id: created.admin.id,
            email: created.admin.email.to_string(),
            token: token.expose().to_owned(),
            token_id: created.admin_token_id,
        },
    }))
}

/// Every tenant on this platform.
#[utoipa::path(
    tag = "tenancy",
    security(("bearer" = [])),
    responses((status = 200, body = [TenantView]), (status = 401, body = Problem), (status = 403, body = Problem))
)]
#[get("/tenants")]
pub(super) async fn list_tenants(
    _operator: OperatorCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<TenantView>>, ApiError> {
    let all = state
        .store
        .run(|c| {
            tenants::list(c)?
                .into_iter()
                .map(|t| view(c, t))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(web::Json(all))
}

/// Delete a tenant and everything it owns. Its data keys are destroyed with it, so its
/// sealed credentials cannot be recovered, not even from a copy of their rows.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "tenant id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[delete("/tenants/{id}")]
pub(super) async fn delete_tenant(
    _operator: OperatorCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: TenantId = path_id(&id, "tenant")?;
    state
        .store
        .run(move |conn| tenants::delete(conn, id, AuditActor::Operator))
        .await
        .or_not_found("tenant")?;
    state.vault.forget_tenant(id);
    tracing::info!(tenant_id = %id, "tenant deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's tenant and its sending policy.
#[utoipa::path(
    tag = "tenancy",
    security(("bearer" = [])),
    responses((status = 200, body = TenantView), (status = 401, body = Problem))
)]
#[get("/tenant")]
pub(super) async fn get_tenant(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<TenantView>, ApiError> {
    Ok(web::Json(read_tenant(&caller, &state).await?))
}

/// The caller's tenant as `GET /v1/tenant` shows it (the settings page reads it too).
pub(in crate::http) async fn read_tenant(
    caller: &TenantCaller,
    state: &AppState,
) -> Result<TenantView, ApiError> {
    caller.require(Action::ReadTenant)?;
    let id = caller.actor.tenant_id;
    state
        .store
        .run(move |c| {
            let tenant = tenants::get(c, id)?;
            view(c, tenant)
        })
        .await
        .or_not_found("tenant")
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    name: Option<String>,
    sending_enabled: Option<bool>,
    /// `hold` or `fallback`.
    fallback_policy: Option<String>,
    shared_pool_allowed: Option<bool>,
    /// Replaces the tenant's domain claims: new domains are claimed (pending until their
    /// TXT record is found, see `/v1/domains`), unlisted claims are dropped. Kept for
    /// clients written before claims; `/v1/domains` manages them one by one.
    domains: Option<Vec<String>>,
    /// Add one-click unsubscribe headers to every message that does not say otherwise
    /// (`"unsubscribe"` on the message) and is not transactional. Such a message must have
    /// exactly one recipient.
    unsubscribe_by_default: Option<bool>,
    /// Windows and a daily cap for channels that set none; each key absent keeps, `null`
    /// removes.
    sending_defaults: Option<SendingDefaultsInput>,
    /// When hard bounces pause a channel: `{threshold_percent, min_sends, window_days}`.
    bounce_pause: Option<BouncePauseInput>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SendingDefaultsInput {
    /// `{time_zone: "Europe/Berlin", windows: [{days: ["mon", …], start: "09:00", end: "17:30"}]}`.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<Object>, nullable)]
    windows: Option<Option<WindowsSpec>>,
    /// Messages per rolling 24 h.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<u32>, nullable)]
    per_day_messages: Option<Option<u32>>,
}

type DefaultsChange = (
    Option<Option<crate::domain::pacing::SendingWindows>>,
    Option<Option<u32>>,
);

impl SendingDefaultsInput {
    fn parse(self) -> Result<DefaultsChange, ApiError> {
        let windows = self
            .windows
            .map(|w| w.map(|w| w.parse("sending_defaults.windows")).transpose())
            .transpose()?;
        if self.per_day_messages == Some(Some(0)) {
            return Err(ApiError::InvalidMessage {
                code: "invalid_limits",
                field: "sending_defaults.per_day_messages".into(),
                detail: "a daily cap is a positive number, or null for none".into(),
            });
        }
        Ok((windows, self.per_day_messages))
    }
}

/// Change the tenant's name or sending policy; absent fields stay as they are.
#[utoipa::path(
    tag = "tenancy",
    request_body = UpdateTenantRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    )
)]
#[patch("/tenant")]
pub(super) async fn update_tenant(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<UpdateTenantRequest>,
) -> Result<web::Json<TenantView>, ApiError> {
    Ok(web::Json(
        change_tenant(&caller, &state, body.into_inner()).await?,
    ))
}

/// `PATCH /v1/tenant`: checks the caller may change the policy, then every field, and
/// changes nothing unless all are valid. The settings page posts through here too.
pub(in crate::http) async fn change_tenant(
    caller: &TenantCaller,
    state: &AppState,
    body: UpdateTenantRequest,
) -> Result<TenantView, ApiError> {
    caller.require(Action::UpdateTenantPolicy)?;
    let name = body
        .name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("name", e))?;
    let fallback = body
        .fallback_policy
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("fallback_policy", e))?;
    let wanted_domains = match body.domains {
        Some(list) if list.len() > MAX_DOMAINS => {
            return Err(ApiError::InvalidField {
                field: "domains",
                reason: format!("at most {MAX_DOMAINS} domains"),
            });
        }
        Some(list) => {
            let mut parsed = list
                .iter()
                .map(|d| super::domains::claimable(d, state))
                .collect::<Result<Vec<Domain>, _>>()
                .map_err(|e| match e {
                    ApiError::InvalidField { reason, .. } => ApiError::InvalidField {
                        field: "domains",
                        reason,
                    },
                    other => other,
                })?;
            parsed.sort();
            parsed.dedup();
            Some(parsed)
        }
        None => None,
    };
    let defaults_change = body
        .sending_defaults
        .map(SendingDefaultsInput::parse)
        .transpose()?;
    let placement = state.config.domains.placement.clone();
    let first_check = chrono::Utc::now()
        + chrono::Duration::from_std(state.config.domains.schedule.pending_every)
            .unwrap_or_default();
    let actor = AuditActor::User(caller.actor.user_id);
    let id = caller.actor.tenant_id;
    let (sending_enabled, shared_pool_allowed) = (body.sending_enabled, body.shared_pool_allowed);
    let unsubscribe_by_default = body.unsubscribe_by_default;
    let bounce_pause = body.bounce_pause.map(BouncePauseInput::check).transpose()?;
    let now = state.config.clock.now_micros();
    let (claimed, key_actor) = (wanted_domains.clone(), actor.clone());
    let updated = state
        .store
        .run(move |conn| {
            write_transaction(conn, |conn| {
                let current = tenants::get(conn, id)?;
                let mut policy = current.policy;
                if let Some(v) = sending_enabled {
                    policy.sending_enabled = v;
                }
                if let Some(v) = fallback {
                    policy.fallback_policy = v;
                }
                if let Some(v) = shared_pool_allowed {
                    policy.shared_pool_allowed = v;
                }
                if let Some(wanted) = &wanted_domains {
                    domains::sync(
                        conn,
                        id,
                        wanted,
                        |d| placement.record_name(d),
                        first_check,
                        actor.clone(),
                    )?;
                }
                if let Some(v) = unsubscribe_by_default {
                    policy.unsubscribe_by_default = v;
                }
                if let Some(change) = &bounce_pause {
                    let rule = change.apply(pauses::policy(conn, id)?);
                    pauses::set_policy(conn, id, &rule, now)?;
                }
                if let Some((windows, per_day)) = &defaults_change {
                    let mut defaults = pacing::tenant_defaults(conn, id)?;
                    if let Some(w) = windows {
                        defaults.windows = w.clone();
                    }
                    if let Some(p) = per_day {
                        defaults.per_day_messages = *p;
                    }
                    pacing::set_tenant_defaults(conn, id, &defaults)?;
                }
                let updated =
                    tenants::update(conn, id, name.as_ref().unwrap_or(&current.name), &policy)?;
                view(conn, updated)
            })
        })
        .await
        .or_not_found("tenant")?;
    // Each claim comes with its DKIM key, made outside the transaction (RSA generation is
    // slow); a failure here is mended by the claim's next check, which makes a missing key.
    for domain in claimed.into_iter().flatten() {
        if let Err(e) = state
            .domains
            .ensure_dkim_key(id, domain, key_actor.clone())
            .await
        {
            tracing::warn!(error = %e, "making a claim's DKIM key failed");
        }
    }
    tracing::info!(
        sending_enabled = updated.sending_enabled,
        "tenant policy updated"
    );
    Ok(updated)
}
