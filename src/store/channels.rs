//! Send channels of a tenant. The credential is a sealed secret (`secrets`, owner = channel
//! id, field `password`); only its timestamp lives on the channel row.

use std::collections::HashMap;

use diesel::prelude::*;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::messages::{self, Release};
use super::notifications::{self, Event};
use super::schema::{channel_domains, channels};
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError, audit, health, secrets};
use crate::domain::pacing::{MinGapSpec, WarmupSpec, WindowsSpec};
use crate::domain::{
    AuditActor, CertificateFingerprint, ChannelHealth, ChannelId, ChannelLimits, ChannelOwner,
    ChannelSpec, ChannelStatus, DisplayName, Domain, EmailAddress, EventType, Hostname,
    MicrosoftTransport, ReturnPath, SendChannel, SmtpSettings, TenantId,
};
use crate::vault::Vault;

/// The secret field an SMTP channel's password or API key is sealed under.
pub const PASSWORD_FIELD: &str = "password";

/// The JSON document of settings nothing queries by.
#[derive(Serialize, Deserialize)]
struct StoredSettings {
    smtp: Option<StoredSmtp>,
    limits: StoredLimits,
    bcc_archive: Option<String>,
    reply_to: Option<String>,
    return_path: StoredReturnPath,
    /// Absent in settings stored before channels could DKIM-sign.
    #[serde(default)]
    dkim_sign: bool,
    /// Absent in settings stored before channels could name their relay's SPF include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spf_include: Option<String>,
    /// A Microsoft channel's transport; absent means Graph (and for every other kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    microsoft_transport: Option<String>,
    /// A connected mailbox's account kind (`google_workspace`, …); absent for other channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredSmtp {
    host: String,
    port: u16,
    security: String,
    auth: String,
    username: Option<String>,
    accept_invalid_certs: bool,
    ca_pem: Option<String>,
    /// Absent in settings stored before certificates could be trusted by fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_sha256: Option<String>,
    connect_timeout_secs: u32,
    command_timeout_secs: u32,
    pool_size: u32,
}

#[derive(Serialize, Deserialize)]
struct StoredLimits {
    per_minute: Option<u32>,
    per_day_recipients: Option<u32>,
    recipients_per_message: Option<u32>,
    /// Pacing (absent in settings stored before it): see `domain::pacing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_day_messages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    windows: Option<WindowsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warmup: Option<WarmupSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_gap: Option<MinGapSpec>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum StoredReturnPath {
    No,
    Yes,
    Specified { address: String },
}

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::corrupt(e)
}

impl StoredSettings {
    fn from_channel(c: &ChannelSpec) -> Self {
        Self {
            smtp: c.smtp.as_ref().map(|s| StoredSmtp {
                host: s.host.to_string(),
                port: s.port,
                security: s.security.as_str().to_owned(),
                auth: s.auth.as_str().to_owned(),
                username: s.username.clone(),
                accept_invalid_certs: s.accept_invalid_certs,
                ca_pem: s.ca_pem.clone(),
                pinned_sha256: s.pinned_sha256.map(|f| f.to_string()),
                connect_timeout_secs: s.connect_timeout_secs,
                command_timeout_secs: s.command_timeout_secs,
                pool_size: s.pool_size,
            }),
            limits: StoredLimits {
                per_minute: c.limits.per_minute,
                per_day_recipients: c.limits.per_day_recipients,
                recipients_per_message: c.limits.recipients_per_message,
                per_day_messages: c.limits.per_day_messages,
                windows: c.limits.windows.as_ref().map(WindowsSpec::from),
                warmup: c.limits.warmup.as_ref().map(WarmupSpec::from),
                min_gap: c.limits.min_gap.as_ref().map(MinGapSpec::from),
            },
            bcc_archive: c.bcc_archive.as_ref().map(|a| a.to_string()),
            reply_to: c.reply_to.as_ref().map(|a| a.to_string()),
            return_path: match &c.return_path {
                ReturnPath::No => StoredReturnPath::No,
                ReturnPath::Yes => StoredReturnPath::Yes,
                ReturnPath::Specified(a) => StoredReturnPath::Specified {
                    address: a.to_string(),
                },
            },
            dkim_sign: c.dkim_sign,
            spf_include: c.spf_include.clone(),
            microsoft_transport: (c.microsoft_transport != MicrosoftTransport::Graph)
                .then(|| c.microsoft_transport.as_str().to_owned()),
            account: c.account.map(|a| a.as_str().to_owned()),
        }
    }
}

fn parse_address(raw: Option<String>) -> Result<Option<EmailAddress>, StoreError> {
    raw.map(|a| EmailAddress::parse(&a).map_err(corrupt))
        .transpose()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = channels)]
struct ChannelRow {
    id: String,
    tenant_id: String,
    name: String,
    kind: String,
    owner_user_id: Option<String>,
    owner_team_id: Option<String>,
    owner_tenant: bool,
    scope: String,
    from_address: Option<String>,
    settings: String,
    provider: Option<String>,
    status: String,
    status_cause: Option<String>,
    credential_updated_at: Option<i64>,
    last_verified_at: Option<i64>,
    last_used_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    failure_count: i64,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    status_changed_at: Option<i64>,
    paused_until: Option<i64>,
    pause_detail: Option<String>,
}

impl ChannelRow {
    fn into_channel(self, domains: Vec<String>) -> Result<SendChannel, StoreError> {
        let settings: StoredSettings = serde_json::from_str(&self.settings).map_err(corrupt)?;
        let owner = match (self.owner_user_id, self.owner_team_id, self.owner_tenant) {
            (Some(u), None, false) => ChannelOwner::User(u.parse().map_err(corrupt)?),
            (None, Some(t), false) => ChannelOwner::Team(t.parse().map_err(corrupt)?),
            (None, None, true) => ChannelOwner::Tenant,
            _ => return Err(corrupt("channel owner")),
        };
        let smtp = settings
            .smtp
            .map(|s| -> Result<SmtpSettings, StoreError> {
                Ok(SmtpSettings {
                    host: Hostname::parse(&s.host).map_err(corrupt)?,
                    port: s.port,
                    security: s.security.parse().map_err(corrupt)?,
                    auth: s.auth.parse().map_err(corrupt)?,
                    username: s.username,
                    accept_invalid_certs: s.accept_invalid_certs,
                    ca_pem: s.ca_pem,
                    pinned_sha256: s
                        .pinned_sha256
                        .as_deref()
                        .map(CertificateFingerprint::parse)
                        .transpose()
                        .map_err(corrupt)?,
                    connect_timeout_secs: s.connect_timeout_secs,
                    command_timeout_secs: s.command_timeout_secs,
                    pool_size: s.pool_size,
                })
            })
            .transpose()?;
        let mut domains = domains
            .iter()
            .map(|d| Domain::parse(d).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        domains.sort();
        let spec = ChannelSpec {
            name: DisplayName::parse(&self.name).map_err(corrupt)?,
            kind: self.kind.parse().map_err(corrupt)?,
            owner,
            scope: self.scope.parse().map_err(corrupt)?,
            from_address: parse_address(self.from_address)?,
            domains,
            smtp,
            limits: ChannelLimits {
                per_minute: settings.limits.per_minute,
                per_day_recipients: settings.limits.per_day_recipients,
                recipients_per_message: settings.limits.recipients_per_message,
                per_day_messages: settings.limits.per_day_messages,
                windows: settings
                    .limits
                    .windows
                    .as_ref()
                    .map(|w| w.parse("limits.windows"))
                    .transpose()
                    .map_err(corrupt)?,
                warmup: settings
                    .limits
                    .warmup
                    .as_ref()
                    .map(|w| w.parse("limits.warmup", chrono::NaiveDate::MIN))
                    .transpose()
                    .map_err(corrupt)?,
                min_gap: settings
                    .limits
                    .min_gap
                    .as_ref()
                    .map(|g| g.parse("limits.min_gap"))
                    .transpose()
                    .map_err(corrupt)?,
            },
            bcc_archive: parse_address(settings.bcc_archive)?,
            reply_to: parse_address(settings.reply_to)?,
            return_path: match settings.return_path {
                StoredReturnPath::No => ReturnPath::No,
                StoredReturnPath::Yes => ReturnPath::Yes,
                StoredReturnPath::Specified { address } => {
                    ReturnPath::Specified(EmailAddress::parse(&address).map_err(corrupt)?)
                }
            },
            provider: self.provider,
            dkim_sign: settings.dkim_sign,
            spf_include: settings.spf_include,
            microsoft_transport: match settings.microsoft_transport.as_deref() {
                Some(t) => t.parse().map_err(corrupt)?,
                None => MicrosoftTransport::Graph,
            },
            account: settings
                .account
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(corrupt)?,
        };
        Ok(SendChannel {
            id: self.id.parse().map_err(corrupt)?,
            tenant_id: self.tenant_id.parse().map_err(corrupt)?,
            spec,
            status: self.status.parse().map_err(corrupt)?,
            status_cause: self.status_cause,
            credential_updated_at: self.credential_updated_at.map(from_micros).transpose()?,
            last_verified_at: self.last_verified_at.map(from_micros).transpose()?,
            last_used_at: self.last_used_at.map(from_micros).transpose()?,
            health: ChannelHealth {
                failures: u32::try_from(self.failure_count).unwrap_or(u32::MAX),
                last_error: self.last_error,
                last_error_at: self.last_error_at.map(from_micros).transpose()?,
                status_changed_at: self.status_changed_at.map(from_micros).transpose()?,
                paused_until: self.paused_until.map(from_micros).transpose()?,
                // Kept after a resume only as the bounce window's bookkeeping: shown while paused.
                pause_detail: self
                    .pause_detail
                    .filter(|_| self.status == crate::domain::ChannelStatus::Paused.as_str())
                    .and_then(|d| serde_json::from_str(&d).ok()),
            },
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

fn record(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    actor: AuditActor,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    audit::record_about(conn, tenant, &id, actor, action, detail)
}

/// A mailbox belongs to one person: another user of the tenant may not hold a channel for
/// the same address.
fn check_mailbox_owner(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: &ChannelSpec,
    except: Option<ChannelId>,
) -> Result<(), StoreError> {
    let (ChannelOwner::User(owner), Some(from)) = (channel.owner, &channel.from_address) else {
        return Ok(());
    };
    let holders: Vec<(String, Option<String>)> = channels::table
        .filter(channels::tenant_id.eq(tenant.to_string()))
        .filter(channels::from_address.eq(from.normalized()))
        .select((channels::id, channels::owner_user_id))
        .load(conn)?;
    let taken = holders.iter().any(|(id, user)| {
        Some(id.as_str()) != except.map(|e| e.to_string()).as_deref()
            && user.as_deref() != Some(&owner.to_string())
    });
    if taken {
        return Err(StoreError::Conflict {
            code: "mailbox_taken",
            detail: format!(
                "another user of this tenant already has a channel for {from}; a mailbox belongs to one person"
            ),
        });
    }
    Ok(())
}

fn write_domains(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    domains: &[Domain],
) -> Result<(), StoreError> {
    diesel::delete(channel_domains::table.filter(channel_domains::channel_id.eq(id.to_string())))
        .execute(conn)?;
    for domain in domains {
        diesel::insert_into(channel_domains::table)
            .values((
                channel_domains::channel_id.eq(id.to_string()),
                channel_domains::tenant_id.eq(tenant.to_string()),
                channel_domains::domain.eq(domain.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn settings_json(channel: &ChannelSpec) -> Result<String, StoreError> {
    serde_json::to_string(&StoredSettings::from_channel(channel))
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Creates a channel and, when given, seals its credential, in one transaction.
pub fn insert(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    channel: &ChannelSpec,
    credential: Option<&SecretString>,
    actor: AuditActor,
) -> Result<SendChannel, StoreError> {
    write_transaction(conn, |conn| {
        check_mailbox_owner(conn, tenant, channel, None)?;
        let id = ChannelId::generate();
        let now = now_micros();
        let (user, team, whole_tenant) = owner_columns(channel.owner)?;
        diesel::insert_into(channels::table)
            .values((
                channels::id.eq(id.to_string()),
                channels::tenant_id.eq(tenant.to_string()),
                channels::name.eq(channel.name.as_str()),
                channels::kind.eq(channel.kind.as_str()),
                channels::owner_user_id.eq(user),
                channels::owner_team_id.eq(team),
                channels::owner_tenant.eq(whole_tenant),
                channels::scope.eq(channel.scope.as_str()),
                channels::from_address
                    .eq(channel.from_address.as_ref().map(EmailAddress::normalized)),
                channels::settings.eq(settings_json(channel)?),
                channels::provider.eq(channel.provider.as_deref()),
                channels::status.eq(ChannelStatus::Active.as_str()),
                channels::credential_updated_at.eq(credential.map(|_| now)),
                channels::created_at.eq(now),
                channels::updated_at.eq(now),
            ))
            .execute(conn)?;
        write_domains(conn, tenant, id, &channel.domains)?;
        if let Some(secret) = credential {
            secrets::put(conn, vault, tenant, &id.to_string(), PASSWORD_FIELD, secret)?;
        }
        record(
            conn,
            tenant,
            id,
            actor,
            "channel.created",
            serde_json::json!({
                "kind": channel.kind.as_str(),
                "scope": channel.scope.as_str(),
                "has_credential": credential.is_some(),
            }),
        )?;
        get(conn, tenant, id)
    })
}

fn load_domains(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (channel, domain) in channel_domains::table
        .filter(channel_domains::channel_id.eq_any(ids))
        .select((channel_domains::channel_id, channel_domains::domain))
        .load::<(String, String)>(conn)?
    {
        map.entry(channel).or_default().push(domain);
    }
    Ok(map)
}

pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
) -> Result<SendChannel, StoreError> {
    let row: ChannelRow = channels::table
        .filter(channels::tenant_id.eq(tenant.to_string()))
        .filter(channels::id.eq(id.to_string()))
        .select(ChannelRow::as_select())
        .first(conn)?;
    let mut domains = load_domains(conn, std::slice::from_ref(&row.id))?;
    let own = domains.remove(&row.id).unwrap_or_default();
    row.into_channel(own)
}

/// Channels by status across all tenants, for `/metrics`.
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(channels::table
        .group_by(channels::status)
        .select((channels::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Every channel of the tenant, oldest first. Who may see which is the caller's business.
pub fn list(conn: &mut DbConnection, tenant: TenantId) -> Result<Vec<SendChannel>, StoreError> {
    let rows: Vec<ChannelRow> = channels::table
        .filter(channels::tenant_id.eq(tenant.to_string()))
        .order((channels::created_at, channels::id))
        .select(ChannelRow::as_select())
        .load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut domains = load_domains(conn, &ids)?;
    rows.into_iter()
        .map(|row| {
            let own = domains.remove(&row.id).unwrap_or_default();
            row.into_channel(own)
        })
        .collect()
}

/// Replaces the channel's settings (not its credential, kind or owner) and, when asked,
/// its status (enable/disable). Re-enabling releases the mail held for it.
pub fn update(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    channel: &ChannelSpec,
    status_change: Option<(ChannelStatus, Option<String>)>,
    actor: AuditActor,
) -> Result<SendChannel, StoreError> {
    write_transaction(conn, |conn| {
        check_mailbox_owner(conn, tenant, channel, Some(id))?;
        let before = get(conn, tenant, id)?;
        let target = || {
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(id.to_string()))
        };
        if before.spec.owner != channel.owner {
            reassign(
                conn,
                tenant,
                id,
                before.spec.owner,
                channel.owner,
                actor.clone(),
            )?;
        }
        let changed = diesel::update(target())
            .set((
                channels::name.eq(channel.name.as_str()),
                channels::from_address
                    .eq(channel.from_address.as_ref().map(EmailAddress::normalized)),
                channels::settings.eq(settings_json(channel)?),
                channels::updated_at.eq(now_micros()),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        write_domains(conn, tenant, id, &channel.domains)?;
        let mut released = 0;
        if let Some((status, cause)) = &status_change {
            diesel::update(target())
                .set((
                    channels::status.eq(status.as_str()),
                    channels::status_cause.eq(cause.as_deref()),
                ))
                .execute(conn)?;
            if *status == ChannelStatus::Active {
                released = messages::release_held(
                    conn,
                    tenant,
                    Release::Channel(id),
                    "the channel was enabled again",
                )?;
            }
        }
        record(
            conn,
            tenant,
            id,
            actor,
            "channel.updated",
            serde_json::json!({
                "status": status_change.as_ref().map(|(s, _)| s.as_str()),
                "released": released,
                // Who turned signing on or off is worth finding in the trail.
                "dkim_sign": (before.spec.dkim_sign != channel.dkim_sign)
                    .then_some(channel.dkim_sign),
                // A Microsoft channel moved between Graph and SMTP.
                "transport": (before.spec.microsoft_transport != channel.microsoft_transport)
                    .then_some(channel.microsoft_transport.as_str()),
            }),
        )?;
        get(conn, tenant, id)
    })
}

/// Trusts a server certificate for an SMTP channel by its fingerprint (replacing one trusted
/// before), read and written in one transaction so that a concurrent edit of the settings is
/// neither lost nor overwritten. Recorded as `channel.certificate_trusted`.
pub fn trust_certificate(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    fingerprint: CertificateFingerprint,
    actor: AuditActor,
) -> Result<SendChannel, StoreError> {
    write_transaction(conn, |conn| {
        let mut spec = get(conn, tenant, id)?.spec;
        let Some(smtp) = spec.smtp.as_mut() else {
            return Err(StoreError::Conflict {
                code: "not_smtp",
                detail: "only SMTP channels have a server certificate to trust".into(),
            });
        };
        let previous = smtp.pinned_sha256.replace(fingerprint);
        diesel::update(
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(id.to_string())),
        )
        .set((
            channels::settings.eq(settings_json(&spec)?),
            channels::updated_at.eq(now_micros()),
        ))
        .execute(conn)?;
        record(
            conn,
            tenant,
            id,
            actor,
            "channel.certificate_trusted",
            serde_json::json!({
                "sha256": fingerprint.to_string(),
                "replaced": previous.map(|p| p.to_string()),
            }),
        )?;
        get(conn, tenant, id)
    })
}

/// Hands the channel to another owner: who may send through it changes, so mail held for it
/// is routed afresh. Recorded as `channel.assigned`.
fn reassign(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    from: ChannelOwner,
    to: ChannelOwner,
    actor: AuditActor,
) -> Result<(), StoreError> {
    let (user, team, whole_tenant) = owner_columns(to)?;
    diesel::update(
        channels::table
            .filter(channels::tenant_id.eq(tenant.to_string()))
            .filter(channels::id.eq(id.to_string())),
    )
    .set((
        channels::owner_user_id.eq(user),
        channels::owner_team_id.eq(team),
        channels::owner_tenant.eq(whole_tenant),
    ))
    .execute(conn)?;
    let released = messages::release_held(
        conn,
        tenant,
        Release::Channel(id),
        "the channel was given to another owner",
    )?;
    record(
        conn,
        tenant,
        id,
        actor,
        "channel.assigned",
        serde_json::json!({"from": owner_json(from), "to": owner_json(to), "released": released}),
    )
}

/// How an owner is written in responses, events and the audit trail: `{"user": id}`,
/// `{"team": id}`, `{"tenant": true}` (or `{"platform": true}` for the shared pool).
pub fn owner_json(owner: ChannelOwner) -> serde_json::Value {
    match owner {
        ChannelOwner::User(u) => serde_json::json!({ "user": u }),
        ChannelOwner::Team(t) => serde_json::json!({ "team": t }),
        ChannelOwner::Tenant => serde_json::json!({ "tenant": true }),
        ChannelOwner::Platform => serde_json::json!({ "platform": true }),
    }
}

/// The owner columns of a stored channel: (user, team, whole tenant).
fn owner_columns(
    owner: ChannelOwner,
) -> Result<(Option<String>, Option<String>, bool), StoreError> {
    match owner {
        ChannelOwner::User(u) => Ok((Some(u.to_string()), None, false)),
        ChannelOwner::Team(t) => Ok((None, Some(t.to_string()), false)),
        ChannelOwner::Tenant => Ok((None, None, true)),
        ChannelOwner::Platform => Err(StoreError::Internal(
            "the shared pool is configuration, never a stored channel".into(),
        )),
    }
}

/// Deletes the channel and its sealed credential. A channel that still has mail (queued,
/// deferred, held or being sent through it) is kept unless `force`: then its held mail is
/// released and everything is routed afresh on its next attempt.
pub fn delete(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    force: bool,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let pending = messages::pending_for_channel(conn, tenant, id)?;
        if pending > 0 && !force {
            return Err(StoreError::Conflict {
                code: "channel_has_mail",
                detail: format!(
                    "{pending} message(s) wait for or are being sent through this channel; delete with ?force=true to route them afresh (they may go through another channel, or fail when none may carry them)"
                ),
            });
        }
        let deleted = diesel::delete(
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(id.to_string())),
        )
        .execute(conn)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        secrets::delete_owner(conn, tenant, &id.to_string())?;
        super::channel_health::replace(conn, tenant, id, &[])?;
        let released = messages::release_held(
            conn,
            tenant,
            Release::Channel(id),
            "the channel it waited for was deleted",
        )?;
        record(
            conn,
            tenant,
            id,
            actor,
            "channel.deleted",
            serde_json::json!({ "released": released }),
        )
    })
}

/// The channel's credential in the clear, for a connection attempt. Never log it.
pub fn credential(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    id: ChannelId,
) -> Result<Option<SecretString>, StoreError> {
    secrets::get(conn, vault, tenant, &id.to_string(), PASSWORD_FIELD)
}

/// Records a channel test: `last_verified_at` on success, and the audit event either way.
pub fn record_test(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    ok: bool,
    detail: serde_json::Value,
    actor: AuditActor,
) -> Result<(), StoreError> {
    record_login_check(conn, tenant, id, ok, "channel.tested", detail, actor)
}

/// Records a login check of the channel under `action`: `last_verified_at` on success, the
/// audit event either way.
pub fn record_login_check(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: ChannelId,
    ok: bool,
    action: &'static str,
    detail: serde_json::Value,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        if ok {
            diesel::update(
                channels::table
                    .filter(channels::tenant_id.eq(tenant.to_string()))
                    .filter(channels::id.eq(id.to_string())),
            )
            .set(channels::last_verified_at.eq(now_micros()))
            .execute(conn)?;
        }
        record(conn, tenant, id, actor, action, detail)
    })
}

/// A replacement credential: the secret, a new username when the pair changes together, and
/// whether the pair passed its test.
#[derive(Debug, Clone, Copy)]
pub struct NewCredential<'a> {
    pub secret: &'a SecretString,
    pub username: Option<&'a str>,
    pub verified: bool,
}

/// Replaces the credential (sealed) and, when it was verified, makes the channel active
/// again: a channel held for `needs_reauth` carries mail from here on. Recorded as
/// `credential.rotated`.
pub fn replace_credential(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    id: ChannelId,
    credential: &NewCredential<'_>,
    actor: AuditActor,
) -> Result<SendChannel, StoreError> {
    let NewCredential {
        secret: credential,
        username,
        verified,
    } = *credential;
    write_transaction(conn, |conn| {
        let current = get(conn, tenant, id)?;
        if let Some(username) = username {
            let mut settings = current.spec.clone();
            if let Some(smtp) = settings.smtp.as_mut() {
                smtp.username = Some(username.to_owned());
            }
            diesel::update(
                channels::table
                    .filter(channels::tenant_id.eq(tenant.to_string()))
                    .filter(channels::id.eq(id.to_string())),
            )
            .set(channels::settings.eq(settings_json(&settings)?))
            .execute(conn)?;
        }
        secrets::put(
            conn,
            vault,
            tenant,
            &id.to_string(),
            PASSWORD_FIELD,
            credential,
        )?;
        let now = now_micros();
        let reactivate = verified
            && matches!(
                current.status,
                ChannelStatus::NeedsReauth | ChannelStatus::Failing
            );
        let (status, cause) = if reactivate {
            (ChannelStatus::Active, None)
        } else {
            (current.status, current.status_cause.clone())
        };
        // Mail held for this channel goes out on the new credential, in the order it came.
        let released = if status == ChannelStatus::Active {
            messages::release_held(
                conn,
                tenant,
                Release::Channel(id),
                "the channel's credential was replaced",
            )?
        } else {
            0
        };
        diesel::update(
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(id.to_string())),
        )
        .set((
            channels::credential_updated_at.eq(now),
            channels::last_verified_at.eq(verified.then_some(now)),
            channels::status.eq(status.as_str()),
            channels::status_cause.eq(cause),
            channels::updated_at.eq(now),
        ))
        .execute(conn)?;
        let detail = serde_json::json!({
            "verified": verified,
            "reactivated": reactivate,
            "released": released,
            "username_changed": username.is_some(),
        });
        record(
            conn,
            tenant,
            id,
            actor.clone(),
            "credential.rotated",
            detail.clone(),
        )?;
        let mut data = detail;
        data["actor"] = serde_json::json!(actor.to_string());
        notifications::emit(
            conn,
            &Event {
                tenant,
                kind: EventType::CredentialRotated,
                channel: Some(id),
                data,
            },
        )?;
        if reactivate {
            health::record_manual_recovery(
                conn,
                tenant,
                id,
                current.status,
                current.status_cause.as_deref(),
                released,
                actor,
            )?;
        }
        get(conn, tenant, id)
    })
}

/// The tenant a channel belongs to, for the command line, which names a channel by its id
/// alone (channel ids are UUIDs, unique across tenants). It answers only whose channel it is:
/// loading the channel still goes through `get` with that tenant.
pub fn find_tenant(conn: &mut DbConnection, id: ChannelId) -> Result<TenantId, StoreError> {
    let tenant: String = channels::table
        .filter(channels::id.eq(id.to_string()))
        .select(channels::tenant_id)
        .first(conn)?;
    tenant.parse().map_err(corrupt)
}

/// Replaces the credential of several channels that share it (a team's relay account) in
/// one transaction: all of them, or none. Each group of channels says whether the new
/// credential logged in to its server.
pub fn replace_credentials(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    groups: &[(Vec<ChannelId>, bool)],
    secret: &SecretString,
    username: Option<&str>,
    actor: AuditActor,
) -> Result<Vec<SendChannel>, StoreError> {
    write_transaction(conn, |conn| {
        let mut replaced = Vec::new();
        for (ids, verified) in groups {
            let credential = NewCredential {
                secret,
                username,
                verified: *verified,
            };
            for id in ids {
                replaced.push(replace_credential(
                    conn,
                    vault,
                    tenant,
                    *id,
                    &credential,
                    actor.clone(),
                )?);
            }
        }
        Ok(replaced)
    })
}
