//! Send channels: create (from a preset or by hand), list what the caller may see, read,
//! change, delete; and the provider presets. Scope rules come from `domain::channel`.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::channel_input::{
    LimitsInput, OwnerInput, ReturnPathInput, SmtpInput, find_preset, parse_address, parse_domains,
    refuse_secret_username, scope, smtp_settings,
};
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::{optional_json, path_id, present};
use crate::domain::channel::check_scope;
use crate::domain::providers::PRESETS;
use crate::domain::{
    Action, AuditActor, ChannelId, ChannelKind, ChannelOwner, ChannelSpec, ChannelStatus,
    DisplayName, ReturnPath, SendChannel, SmtpAuth,
};
use crate::store::channels;
use crate::store::{StoreError, teams, tenants, users};
use crate::transport::tester::{TestReport, test_smtp};

#[derive(Debug, Serialize, ToSchema)]
pub struct Warning {
    code: &'static str,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpView {
    host: String,
    port: u16,
    security: &'static str,
    auth: &'static str,
    username: Option<String>,
    accept_invalid_certs: bool,
    ca_pem: Option<String>,
    connect_timeout_secs: u32,
    command_timeout_secs: u32,
    pool_size: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    #[schema(value_type = String, format = Uuid)]
    id: ChannelId,
    name: String,
    kind: &'static str,
    /// `{"user": id}`, `{"team": id}` or `{"tenant": true}`.
    #[schema(value_type = Object)]
    owner: serde_json::Value,
    scope: &'static str,
    from_address: Option<String>,
    domains: Vec<String>,
    smtp: Option<SmtpView>,
    #[schema(value_type = Object)]
    limits: serde_json::Value,
    bcc_archive: Option<String>,
    reply_to: Option<String>,
    #[schema(value_type = Object)]
    return_path: serde_json::Value,
    provider: Option<String>,
    status: &'static str,
    status_cause: Option<String>,
    /// Whether a password or API key is stored; the secret itself is never returned.
    has_credential: bool,
    credential_updated_at: Option<DateTime<Utc>>,
    last_verified_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    warnings: Vec<Warning>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SendChannel> for ChannelView {
    fn from(c: SendChannel) -> Self {
        let warnings = c
            .spec
            .smtp
            .as_ref()
            .map(|s| {
                s.warnings()
                    .into_iter()
                    .map(|(code, message)| Warning { code, message })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            id: c.id,
            name: c.spec.name.to_string(),
            kind: c.spec.kind.as_str(),
            owner: match c.spec.owner {
                ChannelOwner::User(u) => serde_json::json!({ "user": u }),
                ChannelOwner::Team(t) => serde_json::json!({ "team": t }),
                ChannelOwner::Tenant => serde_json::json!({ "tenant": true }),
                ChannelOwner::Platform => serde_json::json!({ "platform": true }),
            },
            scope: c.spec.scope.as_str(),
            from_address: c.spec.from_address.map(|a| a.to_string()),
            domains: c.spec.domains.iter().map(ToString::to_string).collect(),
            smtp: c.spec.smtp.map(|s| SmtpView {
                host: s.host.to_string(),
                port: s.port,
                security: s.security.as_str(),
                auth: s.auth.as_str(),
                username: s.username,
                accept_invalid_certs: s.accept_invalid_certs,
                ca_pem: s.ca_pem,
                connect_timeout_secs: s.connect_timeout_secs,
                command_timeout_secs: s.command_timeout_secs,
                pool_size: s.pool_size,
            }),
            limits: serde_json::json!({
                "per_minute": c.spec.limits.per_minute,
                "per_day_recipients": c.spec.limits.per_day_recipients,
                "recipients_per_message": c.spec.limits.recipients_per_message,
            }),
            bcc_archive: c.spec.bcc_archive.map(|a| a.to_string()),
            reply_to: c.spec.reply_to.map(|a| a.to_string()),
            return_path: match c.spec.return_path {
                ReturnPath::No => serde_json::json!({ "mode": "no" }),
                ReturnPath::Yes => serde_json::json!({ "mode": "yes" }),
                ReturnPath::Specified(a) => {
                    serde_json::json!({ "mode": "specified", "address": a.to_string() })
                }
            },
            provider: c.spec.provider,
            status: c.status.as_str(),
            status_cause: c.status_cause,
            // The shared pool's credential is the operator's configuration, not a stored secret.
            has_credential: c.credential_updated_at.is_some()
                || c.spec.kind == ChannelKind::SharedPool,
            credential_updated_at: c.credential_updated_at,
            last_verified_at: c.last_verified_at,
            last_used_at: c.last_used_at,
            warnings,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Refuses unless the caller may create, change or delete a channel with this owner.
fn require_manage(caller: &TenantCaller, owner: ChannelOwner) -> Result<(), ApiError> {
    let action = match owner {
        ChannelOwner::User(u) if u == caller.actor.user_id => Action::ManageOwnMailboxChannels,
        ChannelOwner::User(_) => Action::ManageAnyMailboxChannel,
        ChannelOwner::Team(_) | ChannelOwner::Tenant => Action::ManageSharedChannels,
        ChannelOwner::Platform => {
            return Err(ApiError::Forbidden {
                code: "shared_pool_is_operator_configured",
                detail: "the shared pool is configured by the platform operator (SWITCHBOARD_SHARED_POOL_URL); a tenant admin can only allow or forbid it (PATCH /v1/tenant)".into(),
            });
        }
    };
    caller.require(action)
}

fn scope_error(v: crate::domain::channel::ScopeViolation) -> ApiError {
    if v.conflict {
        ApiError::Conflict {
            code: v.code,
            detail: v.message,
        }
    } else {
        ApiError::Unprocessable {
            code: v.code,
            detail: v.message,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelRequest {
    name: String,
    /// `smtp` (Gmail channels are created by connecting Gmail; the shared pool by the operator).
    kind: String,
    /// Defaults to the caller for a mailbox channel.
    owner: Option<OwnerInput>,
    /// `mailbox` or `domain`; a preset supplies it when absent.
    scope: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    from_address: Option<String>,
    /// A provider preset from `GET /v1/providers`: fills in host, port, security, username
    /// and limits that the request leaves out.
    preset: Option<String>,
    #[serde(default)]
    smtp: SmtpInput,
    limits: Option<LimitsInput>,
    bcc_archive: Option<String>,
    reply_to: Option<String>,
    return_path: Option<ReturnPathInput>,
}

#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    #[serde(default)]
    verify: bool,
}

/// Create a channel. Reps create their own mailbox channels; admins also team and tenant
/// channels. The password is stored sealed and never returned.
#[utoipa::path(
    tag = "channels",
    request_body = CreateChannelRequest,
    params(("verify" = Option<bool>, Query, description = "test connection and login first; refuse to save (422 verification_failed) if they fail")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = ChannelView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/channels")]
pub(super) async fn create_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<VerifyQuery>,
    body: web::Json<CreateChannelRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let kind: ChannelKind = body
        .kind
        .parse()
        .map_err(|e| ApiError::invalid("kind", e))?;
    match kind {
        ChannelKind::Smtp => {}
        ChannelKind::Gmail => {
            return Err(ApiError::Unprocessable {
                code: "use_oauth_connect",
                detail: "Gmail channels are created by connecting Gmail (POST /v1/oauth/google/start), never with a password".into(),
            });
        }
        ChannelKind::SharedPool => {
            return Err(ApiError::Unprocessable {
                code: "shared_pool_is_operator_configured",
                detail: "the shared pool is configured by the platform operator (SWITCHBOARD_SHARED_POOL_URL)".into(),
            });
        }
    }
    let preset = body.preset.as_deref().map(find_preset).transpose()?;
    let scope = scope(body.scope.as_deref(), preset)?;
    let owner = match &body.owner {
        Some(o) => o.parse()?,
        None => ChannelOwner::User(caller.actor.user_id),
    };
    require_manage(&caller, owner)?;
    let smtp = smtp_settings(&body.smtp, None, preset)?;
    let password: Option<SecretString> = body.smtp.password;
    if let Some(secret) = &password {
        refuse_secret_username(smtp.username.as_deref(), secret)?;
    }
    if smtp.auth != SmtpAuth::None && password.is_none() {
        return Err(ApiError::InvalidField {
            field: "smtp.password",
            reason: format!("auth `{}` needs a password or API key", smtp.auth),
        });
    }
    let channel = ChannelSpec {
        name: DisplayName::parse(&body.name).map_err(|e| ApiError::invalid("name", e))?,
        kind,
        owner,
        scope,
        from_address: parse_address("from_address", body.from_address.as_deref())?,
        domains: parse_domains(&body.domains)?,
        limits: body
            .limits
            .unwrap_or_default()
            .apply(preset.map(|p| p.limits).unwrap_or_default())?,
        smtp: Some(smtp),
        bcc_archive: parse_address("bcc_archive", body.bcc_archive.as_deref())?,
        reply_to: parse_address("reply_to", body.reply_to.as_deref())?,
        return_path: body
            .return_path
            .as_ref()
            .map(ReturnPathInput::parse)
            .transpose()?
            .unwrap_or(ReturnPath::No),
        provider: preset.map(|p| p.id.to_owned()),
    };
    let tenant = caller.actor.tenant_id;
    check_scope(
        channel.owner,
        channel.scope,
        channel.from_address.as_ref(),
        &channel.domains,
        &tenant_domains(&state, tenant).await?,
    )
    .map_err(scope_error)?;
    if query.verify {
        let report = test_smtp(
            channel.smtp.as_ref().expect("smtp channel"),
            password.as_ref(),
            channel.provider.as_deref(),
            &state.config.outbound,
            None,
        )
        .await;
        if !report.ok {
            return Err(ApiError::VerificationFailed(report_json(report)));
        }
    }
    let verified = query.verify;
    let vault = state.vault.clone();
    let actor = AuditActor::User(caller.actor.user_id);
    let created = state
        .store
        .run(move |conn| {
            match channel.owner {
                ChannelOwner::User(u) => {
                    users::get(conn, tenant, u).map_err(|e| missing_as(e, "user"))?;
                }
                ChannelOwner::Team(t) if !teams::exists(conn, tenant, t)? => {
                    return Err(StoreError::MissingReference("team"));
                }
                _ => {}
            }
            let created = channels::insert(
                conn,
                &vault,
                tenant,
                &channel,
                password.as_ref(),
                actor.clone(),
            )?;
            if verified {
                let detail = serde_json::json!({ "ok": true, "on": "create" });
                channels::record_test(conn, tenant, created.id, true, detail, actor)?;
                return channels::get(conn, tenant, created.id);
            }
            Ok(created)
        })
        .await?;
    tracing::info!(channel_id = %created.id, kind = %created.spec.kind, scope = %created.spec.scope, "channel created");
    Ok(HttpResponse::Created().json(ChannelView::from(created)))
}

fn missing_as(e: StoreError, what: &'static str) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::MissingReference(what),
        other => other,
    }
}

async fn tenant_domains(
    state: &AppState,
    tenant: crate::domain::TenantId,
) -> Result<Vec<crate::domain::Domain>, ApiError> {
    Ok(state
        .store
        .run(move |conn| tenants::get(conn, tenant))
        .await?
        .policy
        .domains)
}

/// The shared pool as a tenant sees it: the tenant's domains, none of the relay's account.
fn shared_pool_channel(
    pool: &crate::transport::SharedPool,
    tenant: &crate::domain::Tenant,
) -> SendChannel {
    let mut settings = pool.settings.clone();
    settings.username = None;
    SendChannel {
        id: ChannelId::shared_pool(),
        tenant_id: tenant.id,
        spec: ChannelSpec {
            name: DisplayName::parse("Shared pool").expect("a valid name"),
            kind: ChannelKind::SharedPool,
            owner: ChannelOwner::Platform,
            scope: crate::domain::CredentialScope::Domain,
            from_address: None,
            domains: tenant.policy.domains.clone(),
            smtp: Some(settings),
            limits: Default::default(),
            bcc_archive: None,
            reply_to: None,
            return_path: ReturnPath::No,
            provider: None,
        },
        status: ChannelStatus::Active,
        status_cause: None,
        credential_updated_at: None,
        last_verified_at: None,
        last_used_at: None,
        created_at: tenant.created_at,
        updated_at: tenant.updated_at,
    }
}

/// The channels the caller may see: all of them for admins and IT; for reps, their own,
/// their team's and the tenant's; and the shared pool when the operator configured one and
/// the tenant allows it.
async fn visible(caller: &TenantCaller, state: &AppState) -> Result<Vec<SendChannel>, ApiError> {
    let (tenant, user) = (caller.actor.tenant_id, caller.actor.user_id);
    let all_visible = caller.actor.may(Action::ReadAllChannels);
    let shared_pool = state.config.shared_pool.clone();
    Ok(state
        .store
        .run(move |conn| {
            let mut all = channels::list(conn, tenant)?;
            if let Some(pool) = &shared_pool {
                let tenant = tenants::get(conn, tenant)?;
                if tenant.policy.shared_pool_allowed {
                    all.push(shared_pool_channel(pool, &tenant));
                }
            }
            if all_visible {
                return Ok(all);
            }
            let team = users::get(conn, tenant, user)?.team_id;
            Ok(all
                .into_iter()
                .filter(|c| match c.spec.owner {
                    ChannelOwner::User(u) => u == user,
                    ChannelOwner::Team(t) => Some(t) == team,
                    ChannelOwner::Tenant | ChannelOwner::Platform => true,
                })
                .collect())
        })
        .await?)
}

/// The channels the caller may see.
#[utoipa::path(
    tag = "channels",
    security(("bearer" = [])),
    responses((status = 200, body = [ChannelView]), (status = 401, body = Problem))
)]
#[get("/channels")]
pub(super) async fn list_channels(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ChannelView>>, ApiError> {
    let list = visible(&caller, &state).await?;
    Ok(web::Json(list.into_iter().map(ChannelView::from).collect()))
}

async fn visible_one(
    caller: &TenantCaller,
    state: &AppState,
    raw: &str,
) -> Result<SendChannel, ApiError> {
    let id: ChannelId = path_id(raw, "channel")?;
    visible(caller, state)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or(ApiError::NotFound { what: "channel" })
}

/// One channel.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem))
)]
#[get("/channels/{id}")]
pub(super) async fn get_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<ChannelView>, ApiError> {
    Ok(web::Json(visible_one(&caller, &state, &id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannelRequest {
    name: Option<String>,
    /// Replaces the list (domain channels).
    domains: Option<Vec<String>>,
    from_address: Option<String>,
    /// Fields given replace the current ones; the password is changed with
    /// `PUT /v1/channels/{id}/credentials`, not here.
    smtp: Option<SmtpInput>,
    limits: Option<LimitsInput>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    bcc_archive: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    reply_to: Option<Option<String>>,
    return_path: Option<ReturnPathInput>,
    /// `true` stops the channel (its mail is held); `false` makes a disabled channel active.
    disabled: Option<bool>,
}

/// Change a channel; absent fields stay as they are.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    request_body = UpdateChannelRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    )
)]
#[patch("/channels/{id}")]
pub(super) async fn update_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateChannelRequest>,
) -> Result<web::Json<ChannelView>, ApiError> {
    let current = visible_one(&caller, &state, &id).await?;
    require_manage(&caller, current.spec.owner)?;
    let body = body.into_inner();
    if body.smtp.as_ref().is_some_and(|s| s.password.is_some()) {
        return Err(ApiError::Unprocessable {
            code: "use_credentials_endpoint",
            detail: "change the password with PUT /v1/channels/{id}/credentials: it is verified before it replaces the working one".into(),
        });
    }
    let mut next = current.spec.clone();
    if let Some(name) = &body.name {
        next.name = DisplayName::parse(name).map_err(|e| ApiError::invalid("name", e))?;
    }
    if let Some(domains) = &body.domains {
        next.domains = parse_domains(domains)?;
    }
    if body.from_address.is_some() {
        next.from_address = parse_address("from_address", body.from_address.as_deref())?;
    }
    if let Some(smtp) = &body.smtp {
        let preset = current
            .spec
            .provider
            .as_deref()
            .and_then(crate::domain::providers::preset);
        next.smtp = Some(smtp_settings(smtp, current.spec.smtp.as_ref(), preset)?);
    }
    if let Some(limits) = body.limits {
        next.limits = limits.apply(current.spec.limits)?;
    }
    if let Some(bcc) = &body.bcc_archive {
        next.bcc_archive = parse_address("bcc_archive", bcc.as_deref())?;
    }
    if let Some(reply_to) = &body.reply_to {
        next.reply_to = parse_address("reply_to", reply_to.as_deref())?;
    }
    if let Some(rp) = &body.return_path {
        next.return_path = rp.parse()?;
    }
    let (status, cause) = match (body.disabled, current.status) {
        (Some(true), _) => (
            ChannelStatus::Disabled,
            Some(format!("disabled by user {}", caller.actor.user_id)),
        ),
        (Some(false), ChannelStatus::Disabled) => (ChannelStatus::Active, None),
        _ => (current.status, current.status_cause.clone()),
    };
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        current.id,
        AuditActor::User(caller.actor.user_id),
    );
    check_scope(
        next.owner,
        next.scope,
        next.from_address.as_ref(),
        &next.domains,
        &tenant_domains(&state, tenant).await?,
    )
    .map_err(scope_error)?;
    let updated = state
        .store
        .run(move |conn| {
            channels::update(
                conn,
                tenant,
                channel_id,
                &next,
                status,
                cause.as_deref(),
                actor,
            )
        })
        .await
        .or_not_found("channel")?;
    Ok(web::Json(updated.into()))
}

/// Delete a channel and its stored credential.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[delete("/channels/{id}")]
pub(super) async fn delete_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let current = visible_one(&caller, &state, &id).await?;
    require_manage(&caller, current.spec.owner)?;
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        current.id,
        AuditActor::User(caller.actor.user_id),
    );
    state
        .store
        .run(move |conn| channels::delete(conn, tenant, channel_id, actor))
        .await
        .or_not_found("channel")?;
    tracing::info!(channel_id = %channel_id, "channel deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestChannelRequest {
    /// Also send a short test message to this address.
    send_to: Option<String>,
    /// The From of the test message (domain channels; defaults to no-reply@ its first
    /// domain). Mailbox channels always use their own address.
    from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestStageView {
    /// `connect`, `tls`, `ehlo`, `auth` or `send`.
    stage: String,
    ok: bool,
    code: Option<u16>,
    message: String,
    hint: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResultView {
    ok: bool,
    stages: Vec<TestStageView>,
    /// `auth`, `tls`, `network`, `temporary`, `permanent` or `protocol`, when a stage failed.
    classification: Option<String>,
}

fn report_view(report: TestReport) -> TestResultView {
    TestResultView {
        ok: report.ok,
        stages: report
            .stages
            .into_iter()
            .map(|s| TestStageView {
                stage: s.stage.to_owned(),
                ok: s.ok,
                code: s.code,
                message: s.message,
                hint: s.hint,
            })
            .collect(),
        classification: report
            .classification
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    }
}

fn report_json(report: TestReport) -> serde_json::Value {
    serde_json::to_value(report_view(report)).unwrap_or_default()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// The new password (mailboxes) …
    #[schema(value_type = Option<String>, write_only)]
    password: Option<SecretString>,
    /// … or API key (relays): one of the two.
    #[schema(value_type = Option<String>, write_only)]
    api_key: Option<SecretString>,
    /// A new username, for credentials that come as a pair (new SES SMTP credentials, a new
    /// Postmark SMTP token): tested and stored together with the secret.
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ForceQuery {
    #[serde(default)]
    force: bool,
}

/// Replace a channel's password or API key. The new credential is tested against the server
/// first and stored only if the login works (or, with `?force=true`, stored unverified);
/// until then the old one stays in use. A verified credential makes a `needs_reauth`
/// channel active again.
#[utoipa::path(
    tag = "channels",
    params(
        ("id" = String, Path, description = "channel id"),
        ("force" = Option<bool>, Query, description = "store even though the test fails")
    ),
    request_body = CredentialRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)
    )
)]
#[put("/channels/{id}/credentials")]
pub(super) async fn replace_credential(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ForceQuery>,
    body: web::Json<CredentialRequest>,
) -> Result<web::Json<ChannelView>, ApiError> {
    let channel = visible_one(&caller, &state, &id).await?;
    let own = matches!(channel.spec.owner, ChannelOwner::User(u) if u == caller.actor.user_id);
    if channel.spec.owner == ChannelOwner::Platform {
        require_manage(&caller, channel.spec.owner)?;
    }
    if !own {
        caller.require(Action::RotateAnyCredential)?;
    }
    let body = body.into_inner();
    let credential = match (body.password, body.api_key) {
        (Some(secret), None) | (None, Some(secret)) if !secret.expose_secret().is_empty() => secret,
        _ => {
            return Err(ApiError::InvalidField {
                field: "password",
                reason: "give exactly one of password or api_key, not empty".into(),
            });
        }
    };
    let Some(mut smtp) = channel.spec.smtp.clone() else {
        return Err(ApiError::Unprocessable {
            code: "not_testable",
            detail: "this channel has no password (Gmail channels reconnect instead)".into(),
        });
    };
    let new_username = match body.username {
        Some(u) if u.trim().is_empty() || u.chars().any(char::is_control) => {
            return Err(ApiError::InvalidField {
                field: "username",
                reason: "must not be empty or hold control characters".into(),
            });
        }
        other => other,
    };
    if let Some(username) = &new_username {
        smtp.username = Some(username.clone());
    }
    refuse_secret_username(smtp.username.as_deref(), &credential)?;
    let report = test_smtp(
        &smtp,
        Some(&credential),
        channel.spec.provider.as_deref(),
        &state.config.outbound,
        None,
    )
    .await;
    let verified = report.ok;
    if !verified && !query.force {
        return Err(ApiError::VerificationFailed(report_json(report)));
    }
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        channel.id,
        AuditActor::User(caller.actor.user_id),
    );
    let vault = state.vault.clone();
    let updated = state
        .store
        .run(move |conn| {
            let credential = channels::NewCredential {
                secret: &credential,
                username: new_username.as_deref(),
                verified,
            };
            channels::replace_credential(conn, &vault, tenant, channel_id, &credential, actor)
        })
        .await
        .or_not_found("channel")?;
    tracing::info!(channel_id = %channel_id, verified, "credential replaced");
    Ok(web::Json(updated.into()))
}

/// Test a channel: connect, TLS, EHLO, login and, when asked, send a test message. Each
/// stage reports the server's reply and a hint. The owner, admins and IT may test.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    request_body(content = Option<TestChannelRequest>),
    security(("bearer" = [])),
    responses((status = 200, body = TestResultView), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[post("/channels/{id}/test")]
pub(super) async fn test_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<TestResultView>, ApiError> {
    let channel = visible_one(&caller, &state, &id).await?;
    let own = matches!(channel.spec.owner, ChannelOwner::User(u) if u == caller.actor.user_id);
    if !own {
        caller.require(Action::TestAnyChannel)?;
    }
    let request: TestChannelRequest = optional_json(&body)?;
    let Some(smtp) = channel.spec.smtp.clone() else {
        return Err(ApiError::Unprocessable {
            code: "not_testable",
            detail: "only SMTP channels can be tested this way".into(),
        });
    };
    let send = match parse_address("send_to", request.send_to.as_deref())? {
        None => None,
        Some(to) => {
            let from = match (
                &channel.spec.from_address,
                parse_address("from", request.from.as_deref())?,
            ) {
                (Some(own), _) => own.clone(),
                (None, Some(from)) if channel.spec.domains.contains(from.domain()) => from,
                (None, Some(_)) => {
                    return Err(ApiError::InvalidField {
                        field: "from",
                        reason: "must be an address in one of the channel's domains".into(),
                    });
                }
                (None, None) => {
                    let domain = channel
                        .spec
                        .domains
                        .first()
                        .ok_or(ApiError::Unprocessable {
                            code: "no_from",
                            detail: "give `from`".into(),
                        })?;
                    crate::domain::EmailAddress::parse(&format!("no-reply@{domain}"))
                        .map_err(|e| ApiError::invalid("from", e))?
                }
            };
            Some(crate::transport::tester::TestSend { from, to })
        }
    };
    let (tenant, channel_id) = (caller.actor.tenant_id, channel.id);
    let vault = state.vault.clone();
    let credential = match (&state.config.shared_pool, channel.spec.kind) {
        (Some(pool), ChannelKind::SharedPool) => pool.credential.clone(),
        _ => {
            state
                .store
                .run(move |conn| channels::credential(conn, &vault, tenant, channel_id))
                .await?
        }
    };
    let report = test_smtp(
        &smtp,
        credential.as_ref(),
        channel.spec.provider.as_deref(),
        &state.config.outbound,
        send,
    )
    .await;
    let failed_stage = report.stages.iter().find(|s| !s.ok).map(|s| s.stage);
    let detail = serde_json::json!({
        "ok": report.ok,
        "failed_stage": failed_stage,
        "classification": report.classification,
    });
    let (ok, actor) = (report.ok, AuditActor::User(caller.actor.user_id));
    state
        .store
        .run(move |conn| channels::record_test(conn, tenant, channel_id, ok, detail, actor))
        .await?;
    tracing::info!(channel_id = %channel_id, ok = report.ok, failed_stage = ?failed_stage, "channel tested");
    Ok(web::Json(report_view(report)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    id: &'static str,
    name: &'static str,
    /// `{region}` stands for one of `regions`.
    host: &'static str,
    port: u16,
    security: &'static str,
    auth: &'static str,
    username_hint: &'static str,
    scope: &'static str,
    #[schema(value_type = Object)]
    limits: serde_json::Value,
    guidance: Vec<&'static str>,
    regions: Vec<&'static str>,
    docs: &'static str,
}

/// Provider presets: the settings of Gmail, Yahoo, Office 365, SparkPost, SendGrid, Amazon
/// SES, Mailgun and Postmark, with their limits and what people trip over.
#[utoipa::path(
    tag = "channels",
    security(("bearer" = [])),
    responses((status = 200, body = [ProviderView]))
)]
#[get("/providers")]
pub(super) async fn list_providers(_caller: TenantCaller) -> web::Json<Vec<ProviderView>> {
    web::Json(
        PRESETS
            .iter()
            .map(|p| ProviderView {
                id: p.id,
                name: p.name,
                host: p.host,
                port: p.port,
                security: p.security.as_str(),
                auth: p.auth.as_str(),
                username_hint: p.username_hint,
                scope: p.scope.as_str(),
                limits: serde_json::json!({
                    "per_minute": p.limits.per_minute,
                    "per_day_recipients": p.limits.per_day_recipients,
                    "recipients_per_message": p.limits.recipients_per_message,
                }),
                guidance: p.guidance.to_vec(),
                regions: p.regions.to_vec(),
                docs: p.docs,
            })
            .collect(),
    )
}
