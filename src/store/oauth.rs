//! OAuth connections: authorizations in progress (states) and the tokens of connected
//! channels, with the refresh lease that makes one refresh serve every worker of every
//! process. Tokens and PKCE verifiers are sealed secrets; only hashes and times are here.

use diesel::prelude::*;
use secrecy::SecretString;

use super::schema::{channels, oauth_states, oauth_tokens};
use super::time::now_micros;
use super::{DbConnection, StoreError, audit, health, messages, secrets, write_transaction};
use crate::domain::{AuditActor, AuditEvent, ChannelId, ChannelStatus, TenantId, UserId};
use crate::vault::Vault;

pub const PKCE_VERIFIER_FIELD: &str = "pkce_verifier";
pub const REFRESH_TOKEN_FIELD: &str = "refresh_token";
pub const ACCESS_TOKEN_FIELD: &str = "access_token";

/// An authorization being started.
pub struct NewState<'a> {
    pub state_hash: &'a [u8],
    pub tenant: TenantId,
    pub user: UserId,
    pub provider: &'static str,
    /// The channel being reconnected, if any.
    pub channel: Option<ChannelId>,
    pub verifier: &'a SecretString,
    pub expires_at: i64,
}

pub fn insert_state(
    conn: &mut DbConnection,
    vault: &Vault,
    new: &NewState<'_>,
) -> Result<(), StoreError> {
    insert_state_returning_to(conn, vault, new, None)
}

/// Like `insert_state`, for a connection started from the admin pages: `return_to` is the
/// page the browser goes back to once Google has answered (a local `/ui/…` path).
pub fn insert_state_returning_to(
    conn: &mut DbConnection,
    vault: &Vault,
    new: &NewState<'_>,
    return_to: Option<&str>,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let id = uuid::Uuid::new_v4().to_string();
        diesel::insert_into(oauth_states::table)
            .values((
                oauth_states::id.eq(&id),
                oauth_states::state_hash.eq(new.state_hash),
                oauth_states::tenant_id.eq(new.tenant.to_string()),
                oauth_states::user_id.eq(new.user.to_string()),
                oauth_states::provider.eq(new.provider),
                oauth_states::channel_id.eq(new.channel.map(|c| c.to_string())),
                oauth_states::created_at.eq(now_micros()),
                oauth_states::expires_at.eq(new.expires_at),
                oauth_states::return_to.eq(return_to),
            ))
            .execute(conn)?;
        secrets::put(
            conn,
            vault,
            new.tenant,
            &id,
            PKCE_VERIFIER_FIELD,
            new.verifier,
        )?;
        Ok(())
    })
}

/// Why a state was not accepted. Each is answered with a page saying so; nothing is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRejection {
    Unknown,
    Reused,
    Expired,
}

/// An authorization that came back with a valid state.
pub struct TakenState {
    pub tenant: TenantId,
    pub user: UserId,
    pub provider: String,
    pub channel: Option<ChannelId>,
    pub verifier: SecretString,
    /// The admin page to go back to, when the connection was started there.
    pub return_to: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = oauth_states)]
struct StateRow {
    id: String,
    tenant_id: String,
    user_id: String,
    provider: String,
    channel_id: Option<String>,
    expires_at: i64,
    used_at: Option<i64>,
    return_to: Option<String>,
}

/// Uses a state exactly once: marks it used and hands out (and deletes) its verifier. A
/// second use of the same state, even concurrent, is `Reused`.
pub fn take_state(
    conn: &mut DbConnection,
    vault: &Vault,
    state_hash: &[u8],
) -> Result<Result<TakenState, StateRejection>, StoreError> {
    write_transaction(conn, |conn| {
        let now = now_micros();
        let row: Option<StateRow> = oauth_states::table
            .filter(oauth_states::state_hash.eq(state_hash))
            .select(StateRow::as_select())
            .first(conn)
            .optional()?;
        let Some(StateRow {
            id,
            tenant_id: tenant,
            user_id: user,
            provider,
            channel_id: channel,
            expires_at,
            used_at,
            return_to,
        }) = row
        else {
            return Ok(Err(StateRejection::Unknown));
        };
        if used_at.is_some() {
            return Ok(Err(StateRejection::Reused));
        }
        let claimed = diesel::update(
            oauth_states::table
                .filter(oauth_states::id.eq(&id))
                .filter(oauth_states::used_at.is_null()),
        )
        .set(oauth_states::used_at.eq(now))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(Err(StateRejection::Reused));
        }
        let tenant: TenantId = tenant.parse().map_err(StoreError::corrupt)?;
        let verifier = secrets::get(conn, vault, tenant, &id, PKCE_VERIFIER_FIELD)?;
        secrets::delete_owner(conn, tenant, &id)?;
        if expires_at <= now {
            return Ok(Err(StateRejection::Expired));
        }
        let verifier =
            verifier.ok_or_else(|| StoreError::corrupt("an OAuth state lost its verifier"))?;
        Ok(Ok(TakenState {
            tenant,
            user: user.parse().map_err(StoreError::corrupt)?,
            provider,
            channel: channel
                .map(|c| c.parse().map_err(StoreError::corrupt))
                .transpose()?,
            verifier,
            return_to,
        }))
    })
}

/// Forgets states that expired a while ago.
pub fn prune_states(conn: &mut DbConnection, before: i64) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(before)))
            .execute(conn)?,
    )
}

/// Tokens obtained from the provider.
pub struct Grant<'a> {
    pub subject: &'a str,
    /// Microsoft's `tid`: the directory of the account, where its refreshes go.
    pub account_tenant: Option<&'a str>,
    pub scopes: &'a str,
    pub access_token: &'a SecretString,
    pub access_expires_at: i64,
    /// Absent when the provider did not return one (a reconnect may keep the old one).
    pub refresh_token: Option<&'a SecretString>,
}

/// Stores a fresh grant for a channel (connect or reconnect): the tokens, a new credential
/// version, the channel active again, its held mail released.
pub fn store_grant(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    channel: ChannelId,
    provider: &'static str,
    grant: &Grant<'_>,
    actor: AuditActor,
) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        let now = now_micros();
        let owner = channel.to_string();
        if let Some(refresh) = grant.refresh_token {
            secrets::put(conn, vault, tenant, &owner, REFRESH_TOKEN_FIELD, refresh)?;
        } else if secrets::get(conn, vault, tenant, &owner, REFRESH_TOKEN_FIELD)?.is_none() {
            return Err(StoreError::Conflict {
                code: "no_refresh_token",
                detail: if provider == "microsoft" {
                    "Microsoft returned no refresh token (was offline_access granted?); connect again and accept the permissions".into()
                } else {
                    "Google returned no refresh token; remove Switchboard's access at https://myaccount.google.com/permissions and connect again".into()
                },
            });
        }
        secrets::put(
            conn,
            vault,
            tenant,
            &owner,
            ACCESS_TOKEN_FIELD,
            grant.access_token,
        )?;
        let updated =
            diesel::update(oauth_tokens::table.filter(oauth_tokens::channel_id.eq(&owner)))
                .set((
                    oauth_tokens::subject.eq(grant.subject),
                    oauth_tokens::account_tenant.eq(grant.account_tenant),
                    oauth_tokens::scopes.eq(grant.scopes),
                    oauth_tokens::access_expires_at.eq(grant.access_expires_at),
                    // A code exchange yields a token for the provider's API (Graph).
                    oauth_tokens::access_resource.eq(None::<String>),
                    oauth_tokens::version.eq(oauth_tokens::version + 1),
                    oauth_tokens::refresh_lease_owner.eq(None::<String>),
                    oauth_tokens::refresh_lease_until.eq(None::<i64>),
                    oauth_tokens::updated_at.eq(now),
                ))
                .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(oauth_tokens::table)
                .values((
                    oauth_tokens::channel_id.eq(&owner),
                    oauth_tokens::tenant_id.eq(tenant.to_string()),
                    oauth_tokens::provider.eq(provider),
                    oauth_tokens::subject.eq(grant.subject),
                    oauth_tokens::account_tenant.eq(grant.account_tenant),
                    oauth_tokens::scopes.eq(grant.scopes),
                    oauth_tokens::access_expires_at.eq(grant.access_expires_at),
                    oauth_tokens::version.eq(1),
                    oauth_tokens::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        let channel_row = || {
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(&owner))
        };
        let before: Option<(String, Option<String>)> = channel_row()
            .select((channels::status, channels::status_cause))
            .first(conn)
            .optional()?;
        diesel::update(channel_row())
            .set((
                channels::credential_updated_at.eq(now),
                channels::last_verified_at.eq(now),
                channels::updated_at.eq(now),
            ))
            .execute(conn)?;
        // A channel an admin disabled stays disabled, a paused one paused (a new grant does
        // not lift a provider's block or clean a list); any other status is cured by it.
        diesel::update(channel_row().filter(
            channels::status.ne_all(
                [ChannelStatus::Disabled, ChannelStatus::Paused].map(ChannelStatus::as_str),
            ),
        ))
        .set((
            channels::status.eq("active"),
            channels::status_cause.eq(None::<String>),
        ))
        .execute(conn)?;
        let paused = before
            .as_ref()
            .is_some_and(|(status, _)| status == ChannelStatus::Paused.as_str());
        let released = if paused {
            0
        } else {
            messages::release_held(
                conn,
                tenant,
                messages::Release::Channel(channel),
                "the mailbox was connected again",
            )?
        };
        audit::record(
            conn,
            &AuditEvent {
                tenant: Some(tenant),
                actor: actor.clone(),
                action: "channel.reconnected",
                target: Some(owner.clone()),
                detail: serde_json::json!({"provider": provider, "released": released}),
            },
        )?;
        if let Some((status, cause)) = before
            && let Ok(status @ (ChannelStatus::NeedsReauth | ChannelStatus::Failing)) =
                status.parse::<ChannelStatus>()
        {
            health::record_manual_recovery(
                conn,
                tenant,
                channel,
                status,
                cause.as_deref(),
                released,
                actor,
            )?;
        }
        Ok(released)
    })
}

/// What a worker knows about a channel's tokens.
#[derive(Debug, Clone)]
pub struct TokenState {
    pub version: i64,
    pub access_expires_at: Option<i64>,
    /// Microsoft's `tid` of the account.
    pub account_tenant: Option<String>,
    /// What the access token is for: `None` the provider's API, `Some("smtp")` Exchange
    /// Online's SMTP submission (Microsoft issues one resource per token).
    pub access_resource: Option<String>,
}

pub fn token_state(
    conn: &mut DbConnection,
    channel: ChannelId,
) -> Result<Option<TokenState>, StoreError> {
    Ok(oauth_tokens::table
        .filter(oauth_tokens::channel_id.eq(channel.to_string()))
        .select((
            oauth_tokens::version,
            oauth_tokens::access_expires_at,
            oauth_tokens::account_tenant,
            oauth_tokens::access_resource,
        ))
        .first::<(i64, Option<i64>, Option<String>, Option<String>)>(conn)
        .optional()?
        .map(
            |(version, access_expires_at, account_tenant, access_resource)| TokenState {
                version,
                access_expires_at,
                account_tenant,
                access_resource,
            },
        ))
}

/// The accounts behind a tenant's channels of one provider: channel → (subject, account
/// tenant). Kept through a disconnect, so that reconnecting the same account finds its
/// channel again.
pub fn accounts(
    conn: &mut DbConnection,
    tenant: TenantId,
    provider: &str,
) -> Result<std::collections::HashMap<ChannelId, (String, Option<String>)>, StoreError> {
    let rows: Vec<(String, String, Option<String>)> = oauth_tokens::table
        .filter(oauth_tokens::tenant_id.eq(tenant.to_string()))
        .filter(oauth_tokens::provider.eq(provider))
        .select((
            oauth_tokens::channel_id,
            oauth_tokens::subject,
            oauth_tokens::account_tenant,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(channel, subject, tid)| {
            Ok((
                channel.parse().map_err(StoreError::corrupt)?,
                (subject, tid),
            ))
        })
        .collect()
}

pub fn token(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    channel: ChannelId,
    field: &str,
) -> Result<Option<SecretString>, StoreError> {
    secrets::get(conn, vault, tenant, &channel.to_string(), field)
}

/// Takes the right to refresh this channel's access token at `version`, until `until`. Only
/// one caller in any process gets it; the others wait for the version to change.
pub fn take_refresh_lease(
    conn: &mut DbConnection,
    channel: ChannelId,
    version: i64,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    let taken = diesel::update(
        oauth_tokens::table
            .filter(oauth_tokens::channel_id.eq(channel.to_string()))
            .filter(oauth_tokens::version.eq(version))
            .filter(
                oauth_tokens::refresh_lease_until
                    .is_null()
                    .or(oauth_tokens::refresh_lease_until.lt(now)),
            ),
    )
    .set((
        oauth_tokens::refresh_lease_owner.eq(owner),
        oauth_tokens::refresh_lease_until.eq(until),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// The result of a refresh.
#[derive(Clone, Copy)]
pub struct Refreshed<'a> {
    pub access_token: &'a SecretString,
    pub access_expires_at: i64,
    /// A rotated refresh token, when the provider sent one.
    pub refresh_token: Option<&'a SecretString>,
    /// What the access token is for (see `TokenState::access_resource`).
    pub access_resource: Option<&'static str>,
}

/// Stores a refreshed access token (and a rotated refresh token, when the provider sent one)
/// under the lease, in one transaction: the new version is visible to everyone at once.
/// Returns that version, or `None` when the lease had passed to another refresh.
pub fn store_refreshed(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    channel: ChannelId,
    owner: &str,
    refreshed: &Refreshed<'_>,
) -> Result<Option<i64>, StoreError> {
    let Refreshed {
        access_token,
        access_expires_at,
        refresh_token,
        access_resource,
    } = *refreshed;
    write_transaction(conn, |conn| {
        let id = channel.to_string();
        let mine = diesel::update(
            oauth_tokens::table
                .filter(oauth_tokens::channel_id.eq(&id))
                .filter(oauth_tokens::refresh_lease_owner.eq(owner)),
        )
        .set((
            oauth_tokens::access_expires_at.eq(access_expires_at),
            oauth_tokens::access_resource.eq(access_resource),
            oauth_tokens::version.eq(oauth_tokens::version + 1),
            oauth_tokens::refresh_lease_owner.eq(None::<String>),
            oauth_tokens::refresh_lease_until.eq(None::<i64>),
            oauth_tokens::updated_at.eq(now_micros()),
        ))
        .execute(conn)?;
        if mine == 0 {
            // The lease expired and someone else refreshed: theirs stands.
            return Ok(None);
        }
        secrets::put(conn, vault, tenant, &id, ACCESS_TOKEN_FIELD, access_token)?;
        if let Some(refresh) = refresh_token {
            secrets::put(conn, vault, tenant, &id, REFRESH_TOKEN_FIELD, refresh)?;
        }
        let version = oauth_tokens::table
            .filter(oauth_tokens::channel_id.eq(&id))
            .select(oauth_tokens::version)
            .first(conn)?;
        Ok(Some(version))
    })
}

/// Gives up a refresh lease (the refresh failed), so the next caller may try.
pub fn release_refresh_lease(
    conn: &mut DbConnection,
    channel: ChannelId,
    owner: &str,
) -> Result<(), StoreError> {
    diesel::update(
        oauth_tokens::table
            .filter(oauth_tokens::channel_id.eq(channel.to_string()))
            .filter(oauth_tokens::refresh_lease_owner.eq(owner)),
    )
    .set((
        oauth_tokens::refresh_lease_owner.eq(None::<String>),
        oauth_tokens::refresh_lease_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Removes a channel's tokens (disconnect): the channel stays, waiting for a reconnect. The
/// row naming the account stays too (without tokens, it yields none), so that the same
/// account reconnects this channel.
pub fn remove_tokens(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    provider: &str,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let id = channel.to_string();
        diesel::update(oauth_tokens::table.filter(oauth_tokens::channel_id.eq(&id)))
            .set((
                oauth_tokens::access_expires_at.eq(None::<i64>),
                oauth_tokens::version.eq(oauth_tokens::version + 1),
                oauth_tokens::refresh_lease_owner.eq(None::<String>),
                oauth_tokens::refresh_lease_until.eq(None::<i64>),
                oauth_tokens::updated_at.eq(now_micros()),
            ))
            .execute(conn)?;
        secrets::delete_owner(conn, tenant, &id)?;
        diesel::update(
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(&id)),
        )
        .set((
            channels::status.eq("needs_reauth"),
            channels::status_cause.eq("disconnected"),
            channels::credential_updated_at.eq(None::<i64>),
            channels::updated_at.eq(now_micros()),
        ))
        .execute(conn)?;
        audit::record(
            conn,
            &AuditEvent {
                tenant: Some(tenant),
                actor,
                action: "credential.revoked",
                target: Some(id),
                detail: serde_json::json!({ "provider": provider }),
            },
        )
    })
}
