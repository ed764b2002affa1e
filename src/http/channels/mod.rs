//! Send channels: create (from a preset or by hand), list what the caller may see, read,
//! change, delete. Scope rules come from `domain::channel`; the connection test and the
//! replacement of credentials are in `checks`, the provider presets in `providers`, trusting
//! a server's certificate by its fingerprint in `trust`.

mod bulk;
mod checks;
mod dns_health;
mod input;
mod oauth;
mod pause;
mod providers;
pub(in crate::http) mod stats;
mod trust;
mod view;

pub(super) use bulk::rotate_shared_credential;
pub(super) use checks::{replace_credential, test_channel};
pub(in crate::http) use checks::{rotate_verified, run_test};
pub(super) use dns_health::check_channel_health;
pub(super) use oauth::disconnect_oauth;
pub(in crate::http) use oauth::{disconnect, remove_access_at};
pub(in crate::http) use pause::{pause, resume};
pub(super) use pause::{pause_channel, resume_channel};
pub(super) use providers::list_providers;
pub(super) use stats::get_channel_stats;
pub(in crate::http) use stats::{ChannelFigures, channel_days, figures_of, tenant_days};
pub(in crate::http) use trust::trust;
pub(super) use trust::trust_certificate;
pub(in crate::http) use view::advice;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use self::checks::report_json;
use self::input::{
    LimitsInput, OwnerInput, ReturnPathInput, SmtpInput, find_preset, parse_address, parse_domains,
    parse_spf_include, refuse_secret_username, scope, smtp_settings,
};
use self::view::ChannelView;
use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::{path_id, present};
use crate::domain::channel::{check_dkim_sign, check_scope};
use crate::domain::health::ReauthCause;
use crate::domain::{
    Action, AuditActor, ChannelId, ChannelKind, ChannelOwner, ChannelSpec, ChannelStatus,
    ClaimState, CredentialScope, DisplayName, Domain, MicrosoftTransport, ReturnPath, SendChannel,
    SmtpAuth, TenantId, UserId,
};
use crate::store::DbConnection;
use crate::store::channels;
use crate::store::{StoreError, domains, teams, tenants, users};
use crate::transport::tester::test_smtp;
use secrecy::SecretString;

/// Refuses unless the caller may create, change or delete a channel with this owner.
pub(in crate::http) fn require_manage(
    caller: &TenantCaller,
    owner: ChannelOwner,
) -> Result<(), ApiError> {
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
    /// Domain channels only: Switchboard DKIM-signs what the channel sends, with the tenant's
    /// key for the From domain. For relays that do not sign themselves; leave it off for
    /// SES, SendGrid or SparkPost with link tracking (they rewrite the body). Default false.
    dkim_sign: Option<bool>,
    /// The SPF include your relay needs (`_spf.relay.example`), for a relay without a preset:
    /// the channel's SPF check then asks each domain's record for it. A preset knows its own.
    spf_include: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    #[serde(default)]
    verify: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceQuery {
    #[serde(default)]
    force: bool,
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
    let created = create(&caller, &state, body.into_inner(), query.verify).await?;
    Ok(HttpResponse::Created().json(ChannelView::from(created)))
}

/// Creates an SMTP channel (the API's `POST /v1/channels` and the channel form). With
/// `verify`, the connection and login are tested first and a failure saves nothing
/// (`ApiError::VerificationFailed` carries the test report).
pub(in crate::http) async fn create(
    caller: &TenantCaller,
    state: &AppState,
    body: CreateChannelRequest,
    verify: bool,
) -> Result<SendChannel, ApiError> {
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
        ChannelKind::Microsoft => {
            return Err(ApiError::Unprocessable {
                code: "use_oauth_connect",
                detail: "Microsoft channels are created by connecting Microsoft (POST /v1/oauth/microsoft/start), never with a password".into(),
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
    require_manage(caller, owner)?;
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
    let from_address = parse_address("from_address", body.from_address.as_deref())?;
    let channel = ChannelSpec {
        name: DisplayName::parse(&body.name).map_err(|e| ApiError::invalid("name", e))?,
        kind,
        owner,
        scope,
        domains: parse_domains(&body.domains)?,
        limits: body.limits.unwrap_or_default().apply(
            preset
                .map(|p| p.limits_for(from_address.as_ref()))
                .unwrap_or_default(),
            state.config.clock.now().date_naive(),
        )?,
        from_address,
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
        dkim_sign: body.dkim_sign.unwrap_or(false),
        spf_include: body
            .spf_include
            .as_deref()
            .map(parse_spf_include)
            .transpose()?,
        microsoft_transport: MicrosoftTransport::Graph,
        account: None,
    };
    check_dkim_sign(channel.kind, channel.scope, channel.dkim_sign)
        .map_err(|e| ApiError::invalid("dkim_sign", e))?;
    let tenant = caller.actor.tenant_id;
    check_scope(
        channel.owner,
        channel.scope,
        channel.from_address.as_ref(),
        &channel.domains,
        &sendable_domains(state, tenant).await?,
    )
    .map_err(scope_error)?;
    if verify {
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
    let verified = verify;
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
    dns_health::check_soon(state, tenant, created.clone());
    Ok(created)
}

fn missing_as(e: StoreError, what: &'static str) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::MissingReference(what),
        other => other,
    }
}

/// The domains the tenant has proven: the only ones a domain channel may list.
async fn sendable_domains(
    state: &AppState,
    tenant: crate::domain::TenantId,
) -> Result<Vec<Domain>, ApiError> {
    let states = state
        .store
        .run(move |conn| domains::states(conn, tenant))
        .await?;
    Ok(states
        .into_iter()
        .filter(|(_, s)| *s == ClaimState::Verified)
        .map(|(d, _)| d)
        .collect())
}

/// The shared pool as a tenant sees it: the domains it sends for (the tenant's verified ones
/// and the platform's), none of the relay's account.
fn shared_pool_channel(
    pool: &crate::transport::SharedPool,
    tenant: &crate::domain::Tenant,
    domains: Vec<Domain>,
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
            domains,
            smtp: Some(settings),
            limits: Default::default(),
            bcc_archive: None,
            reply_to: None,
            return_path: ReturnPath::No,
            provider: None,
            // Signed with the tenant's key whenever it has one for the From domain.
            dkim_sign: true,
            spf_include: None,
            microsoft_transport: MicrosoftTransport::Graph,
            account: None,
        },
        status: ChannelStatus::Active,
        status_cause: None,
        credential_updated_at: None,
        last_verified_at: None,
        last_used_at: None,
        health: Default::default(),
        created_at: tenant.created_at,
        updated_at: tenant.updated_at,
    }
}

/// Who is looking at channels: admins and IT see all of them; reps their own, their team's,
/// the tenant's and the shared pool.
struct Viewer {
    tenant: TenantId,
    user: UserId,
    sees_all: bool,
}

impl Viewer {
    fn of(caller: &TenantCaller) -> Self {
        Self {
            tenant: caller.actor.tenant_id,
            user: caller.actor.user_id,
            sees_all: caller.actor.may(Action::ReadAllChannels),
        }
    }

    /// Keeps the channels this viewer may see (reads the viewer's team only when needed).
    fn keep_visible(
        &self,
        conn: &mut DbConnection,
        channels: Vec<SendChannel>,
    ) -> Result<Vec<SendChannel>, StoreError> {
        if self.sees_all {
            return Ok(channels);
        }
        let team = users::get(conn, self.tenant, self.user)?.team_id;
        Ok(channels
            .into_iter()
            .filter(|c| match c.spec.owner {
                ChannelOwner::User(u) => u == self.user,
                ChannelOwner::Team(t) => Some(t) == team,
                ChannelOwner::Tenant | ChannelOwner::Platform => true,
            })
            .collect())
    }
}

/// The shared pool, when the operator configured one and the tenant allows it.
fn allowed_shared_pool(
    conn: &mut DbConnection,
    pool: Option<&crate::transport::SharedPool>,
    tenant: TenantId,
) -> Result<Option<SendChannel>, StoreError> {
    let Some(pool) = pool else {
        return Ok(None);
    };
    let tenant = tenants::get(conn, tenant)?;
    if !tenant.policy.shared_pool_allowed {
        return Ok(None);
    }
    let mut sendable: Vec<Domain> = domains::states(conn, tenant.id)?
        .into_iter()
        .filter(|(_, s)| *s == ClaimState::Verified)
        .map(|(d, _)| d)
        .chain(pool.platform_domain.clone())
        .collect();
    sendable.sort();
    sendable.dedup();
    Ok(Some(shared_pool_channel(pool, &tenant, sendable)))
}

/// The channels the caller may see: their own, their team's, the tenant's and the shared
/// pool (admins and IT: every channel of the tenant).
pub(in crate::http) async fn visible(
    caller: &TenantCaller,
    state: &AppState,
) -> Result<Vec<SendChannel>, ApiError> {
    let viewer = Viewer::of(caller);
    let shared_pool = state.config.shared_pool.clone();
    Ok(state
        .store
        .run(move |conn| {
            let mut all = channels::list(conn, viewer.tenant)?;
            all.extend(allowed_shared_pool(
                conn,
                shared_pool.as_ref(),
                viewer.tenant,
            )?);
            viewer.keep_visible(conn, all)
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

/// One channel the caller may see, by its id as written in a path; any other id (malformed,
/// another tenant's, a channel the caller may not see) is simply not found.
pub(in crate::http) async fn visible_one(
    caller: &TenantCaller,
    state: &AppState,
    raw: &str,
) -> Result<SendChannel, ApiError> {
    let id: ChannelId = path_id(raw, "channel")?;
    let viewer = Viewer::of(caller);
    let shared_pool = state.config.shared_pool.clone();
    let found = state
        .store
        .run(move |conn| {
            let candidate = if id == ChannelId::shared_pool() {
                allowed_shared_pool(conn, shared_pool.as_ref(), viewer.tenant)?
            } else {
                match channels::get(conn, viewer.tenant, id) {
                    Ok(channel) => Some(channel),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                }
            };
            viewer.keep_visible(conn, candidate.into_iter().collect())
        })
        .await?;
    found
        .into_iter()
        .next()
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
    let channel = visible_one(&caller, &state, &id).await?;
    let health = state
        .domains
        .channel_health(caller.actor.tenant_id, &channel)
        .await?;
    let tenant = caller.actor.tenant_id;
    let now = state.config.clock.now();
    let (channel, pacing) = state
        .store
        .run(move |conn| {
            let defaults = crate::store::pacing::tenant_defaults(conn, tenant)?;
            let status = crate::store::pacing::status(conn, &channel, &defaults, now)?;
            Ok::<_, StoreError>((channel, status))
        })
        .await?;
    Ok(web::Json(
        ChannelView::from(channel)
            .with_domains(view::ChannelDomainHealthView::list(health))
            .with_pacing(pacing),
    ))
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
    /// Hands a domain channel to another team or to the whole tenant (`{"team": id}`,
    /// `{"tenant": true}`, `{"user": id}`); a mailbox channel keeps its owner.
    owner: Option<OwnerInput>,
    /// Domain channels only: turn Switchboard's DKIM signing on or off.
    dkim_sign: Option<bool>,
    /// The SPF include the relay needs; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    spf_include: Option<Option<String>>,
    /// `microsoft` channels only: `graph` (the default) or `smtp` (smtp.office365.com with
    /// AUTH XOAUTH2, for tenants that allow SMTP AUTH).
    transport: Option<String>,
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
    let updated = update(&caller, &state, &id, body.into_inner()).await?;
    Ok(web::Json(updated.into()))
}

/// Changes a channel (the API's `PATCH /v1/channels/{id}` and the edit form): absent fields
/// stay as they are; `disabled` switches it off or on.
pub(in crate::http) async fn update(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    body: UpdateChannelRequest,
) -> Result<SendChannel, ApiError> {
    let current = visible_one(caller, state, id).await?;
    require_manage(caller, current.spec.owner)?;
    if body.smtp.as_ref().is_some_and(|s| s.password.is_some()) {
        return Err(ApiError::Unprocessable {
            code: "use_credentials_endpoint",
            detail: "change the password with PUT /v1/channels/{id}/credentials: it is verified before it replaces the working one".into(),
        });
    }
    if current.spec.kind.is_connected_mailbox()
        && (body.smtp.is_some() || body.from_address.is_some() || body.return_path.is_some())
    {
        return Err(match current.spec.kind {
            ChannelKind::Gmail => ApiError::Unprocessable {
                code: "not_editable_for_gmail",
                detail: "a Gmail channel sends as the connected Google account through the Gmail API: it has no SMTP settings, its from_address is the account's, and Gmail sets the return path; connect another account instead".into(),
            },
            _ => ApiError::Unprocessable {
                code: "not_editable_for_microsoft",
                detail: "a Microsoft channel sends as the connected Microsoft account through Microsoft Graph: it has no SMTP settings, its from_address is the account's, and Exchange sets the return path; connect another account instead".into(),
            },
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
        next.limits = limits.apply(
            current.spec.limits.clone(),
            state.config.clock.now().date_naive(),
        )?;
        // A connected mailbox's provider limits are hard: lower, never higher or removed.
        if let Some((field, detail)) = current
            .spec
            .account
            .and_then(|account| account.over_limit(&next.limits))
        {
            return Err(ApiError::InvalidMessage {
                code: "limit_above_provider",
                field: format!("limits.{field}"),
                detail,
            });
        }
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
    if let Some(sign) = body.dkim_sign {
        next.dkim_sign = sign;
        check_dkim_sign(next.kind, next.scope, next.dkim_sign)
            .map_err(|e| ApiError::invalid("dkim_sign", e))?;
    }
    if let Some(include) = &body.spf_include {
        next.spf_include = include.as_deref().map(parse_spf_include).transpose()?;
    }
    if let Some(transport) = &body.transport {
        if current.spec.kind != ChannelKind::Microsoft {
            return Err(ApiError::Unprocessable {
                code: "transport_only_for_microsoft",
                detail: "only a microsoft channel chooses its transport (graph or smtp); this channel's kind sends one way".into(),
            });
        }
        next.microsoft_transport = transport
            .parse()
            .map_err(|e| ApiError::invalid("transport", e))?;
    }
    if let Some(owner) = &body.owner {
        let owner = owner.parse()?;
        if owner != current.spec.owner {
            if current.spec.scope == CredentialScope::Mailbox {
                return Err(ApiError::Conflict {
                    code: "mailbox_owner_fixed",
                    detail: "a mailbox channel belongs to the person whose mailbox it is; the new owner connects their own mailbox instead".into(),
                });
            }
            require_manage(caller, owner)?;
            next.owner = owner;
        }
    }
    // Only an explicit switch changes the status: a status read here may be stale by the time
    // the update runs (a worker may have marked the channel needs_reauth meanwhile).
    let status_change = match (body.disabled, current.status) {
        (Some(true), status) if status != ChannelStatus::Disabled => Some((
            ChannelStatus::Disabled,
            Some(format!("disabled by user {}", caller.actor.user_id)),
        )),
        (Some(false), ChannelStatus::Disabled) => Some((ChannelStatus::Active, None)),
        // SMTP AUTH refused for the tenant is cured by leaving SMTP: the grant is fine.
        (None, ChannelStatus::NeedsReauth)
            if next.microsoft_transport != current.spec.microsoft_transport
                && current.status_cause.as_deref()
                    == Some(ReauthCause::SmtpAuthDisabled.as_str()) =>
        {
            Some((ChannelStatus::Active, None))
        }
        _ => None,
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
        // Domains the channel listed before stay allowed (a lapsed one is simply not routed
        // to): an admin renaming a channel is not asked to re-prove its domains.
        &[
            sendable_domains(state, tenant).await?,
            current.spec.domains.clone(),
        ]
        .concat(),
    )
    .map_err(scope_error)?;
    let updated = state
        .store
        .run(move |conn| {
            if let ChannelOwner::Team(t) = next.owner
                && !teams::exists(conn, tenant, t)?
            {
                return Err(StoreError::MissingReference("team"));
            }
            channels::update(conn, tenant, channel_id, &next, status_change, actor)
        })
        .await
        .or_not_found("channel")?;
    dns_health::check_soon(state, tenant, updated.clone());
    Ok(updated)
}

/// Delete a channel and its stored credential.
#[utoipa::path(
    tag = "channels",
    params(
        ("id" = String, Path, description = "channel id"),
        ("force" = Option<bool>, Query, description = "delete even though mail waits for the channel; that mail is routed afresh")
    ),
    security(("bearer" = [])),
    responses(
        (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "mail still waits for the channel (channel_has_mail)", body = Problem)
    )
)]
#[delete("/channels/{id}")]
pub(super) async fn delete_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ForceQuery>,
) -> Result<HttpResponse, ApiError> {
    delete(&caller, &state, &id, query.force).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes a channel and its stored credential (the API's `DELETE /v1/channels/{id}` and the
/// channel page's Delete). Without `force`, a channel that mail still waits for is kept
/// (409 `channel_has_mail`).
pub(in crate::http) async fn delete(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    force: bool,
) -> Result<(), ApiError> {
    let current = visible_one(caller, state, id).await?;
    require_manage(caller, current.spec.owner)?;
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        current.id,
        AuditActor::User(caller.actor.user_id),
    );
    // A Gmail grant is given back to Google once the channel is gone (read first: deleting
    // the channel deletes its tokens).
    let grant = match (current.spec.kind, &state.google) {
        (ChannelKind::Gmail, Some(_)) => {
            let vault = state.vault.clone();
            state
                .store
                .run(move |c| {
                    crate::store::oauth::token(
                        c,
                        &vault,
                        tenant,
                        channel_id,
                        crate::store::oauth::REFRESH_TOKEN_FIELD,
                    )
                })
                .await?
        }
        _ => None,
    };
    state
        .store
        .run(move |conn| channels::delete(conn, tenant, channel_id, force, actor))
        .await
        .or_not_found("channel")?;
    if let (Some(rt), Some(google)) = (grant, &state.google)
        && google.revoke(&rt).await.is_err()
    {
        tracing::warn!(channel_id = %channel_id, "Google did not confirm revoking the deleted channel's grant");
    }
    tracing::info!(channel_id = %channel_id, "channel deleted");
    Ok(())
}
