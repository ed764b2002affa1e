//! Admin UI sessions. A session is opened with an API token and is only as alive as that
//! token: authentication joins through `api_tokens` and `users`, so revoking the token or
//! disabling the user ends every session opened with it on the next request.

use diesel::prelude::*;

use super::schema::{api_tokens, ui_sessions, users};
use super::time::now_micros;
use super::{DbConnection, StoreError, tokens};
use crate::domain::{Actor, TokenId};
use crate::vault::TokenHash;

/// How long a session lives without use, and at most.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle_micros: i64,
    pub absolute_micros: i64,
}

impl SessionLimits {
    /// Eight hours idle, one working week in all.
    pub const DEFAULT: SessionLimits = SessionLimits {
        idle_micros: 8 * 3_600_000_000,
        absolute_micros: 5 * 24 * 3_600_000_000,
    };
}

/// A session found by its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub actor: Actor,
    /// The API token the session was opened with (and lives as long as).
    pub token_id: TokenId,
}

/// Last-seen times are written at most this often, so a page view is not a write.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

/// Opens a session for the holder of `token`, if the token is live and its user enabled.
/// Returns `None` (and writes nothing) otherwise.
pub fn open(
    conn: &mut DbConnection,
    token: TokenHash,
    session: TokenHash,
    limits: SessionLimits,
) -> Result<Option<Session>, StoreError> {
    let Some((token_id, actor)) = tokens::live(conn, token)? else {
        return Ok(None);
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_micros();
    diesel::insert_into(ui_sessions::table)
        .values((
            ui_sessions::id.eq(&id),
            ui_sessions::session_hash.eq(session.as_bytes()),
            ui_sessions::tenant_id.eq(actor.tenant_id.to_string()),
            ui_sessions::user_id.eq(actor.user_id.to_string()),
            ui_sessions::token_id.eq(token_id.to_string()),
            ui_sessions::created_at.eq(now),
            ui_sessions::last_seen_at.eq(now),
            ui_sessions::expires_at.eq(now + limits.absolute_micros),
        ))
        .execute(conn)?;
    Ok(Some(Session {
        id,
        actor,
        token_id,
    }))
}

/// The live session behind a cookie: not expired, not idle too long, its token not revoked
/// and its user enabled. Records the visit.
pub fn authenticate(
    conn: &mut DbConnection,
    session: TokenHash,
    limits: SessionLimits,
) -> Result<Option<Session>, StoreError> {
    let now = now_micros();
    let row = ui_sessions::table
        .inner_join(api_tokens::table.on(api_tokens::id.eq(ui_sessions::token_id)))
        .inner_join(
            users::table.on(users::id
                .eq(ui_sessions::user_id)
                .and(users::tenant_id.eq(ui_sessions::tenant_id))),
        )
        .filter(ui_sessions::session_hash.eq(session.as_bytes()))
        .filter(ui_sessions::expires_at.gt(now))
        .filter(ui_sessions::last_seen_at.gt(now - limits.idle_micros))
        .filter(api_tokens::revoked_at.is_null())
        .filter(users::disabled.eq(false))
        .select((
            ui_sessions::id,
            ui_sessions::token_id,
            ui_sessions::last_seen_at,
            users::tenant_id,
            users::id,
            users::role,
        ))
        .first::<(String, String, i64, String, String, String)>(conn)
        .optional()?;
    let Some((id, token_id, last_seen, tenant, user, role)) = row else {
        return Ok(None);
    };
    if now - last_seen > TOUCH_EVERY_MICROS {
        diesel::update(ui_sessions::table.filter(ui_sessions::id.eq(&id)))
            .set(ui_sessions::last_seen_at.eq(now))
            .execute(conn)?;
    }
    Ok(Some(Session {
        id,
        actor: actor(&tenant, &user, &role)?,
        token_id: token_id.parse().map_err(StoreError::corrupt)?,
    }))
}

/// Ends a session (sign out). Ending an unknown session is not an error.
pub fn close(conn: &mut DbConnection, session: TokenHash) -> Result<(), StoreError> {
    diesel::delete(ui_sessions::table.filter(ui_sessions::session_hash.eq(session.as_bytes())))
        .execute(conn)?;
    Ok(())
}

/// Removes sessions that can no longer be used; returns how many.
pub fn prune(conn: &mut DbConnection, limits: SessionLimits) -> Result<usize, StoreError> {
    let now = now_micros();
    Ok(diesel::delete(
        ui_sessions::table.filter(
            ui_sessions::expires_at
                .le(now)
                .or(ui_sessions::last_seen_at.le(now - limits.idle_micros)),
        ),
    )
    .execute(conn)?)
}

fn actor(tenant: &str, user: &str, role: &str) -> Result<Actor, StoreError> {
    Ok(Actor {
        tenant_id: tenant.parse().map_err(StoreError::corrupt)?,
        user_id: user.parse().map_err(StoreError::corrupt)?,
        role: role.parse().map_err(StoreError::corrupt)?,
    })
}
