//! Tenant API tokens: stored as hashes, bound to one user, revocable. Authentication reads
//! the token and its user in one query, so a revoked token or a disabled user is refused on
//! the very next request.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{api_tokens, users};
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError};
use crate::domain::{Actor, TenantId, TokenId, UserId};
use crate::vault::TokenHash;

/// A token as listed: never its secret.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: TokenId,
    pub user_id: UserId,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: String,
    user_id: String,
    label: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(TokenRecord {
            id: row.id.parse().map_err(StoreError::corrupt)?,
            user_id: row.user_id.parse().map_err(StoreError::corrupt)?,
            label: row.label,
            created_at: from_micros(row.created_at)?,
            revoked_at: row.revoked_at.map(from_micros).transpose()?,
        })
    }
}

pub fn insert(
    conn: &mut DbConnection,
    tenant: TenantId,
    user: UserId,
    hash: TokenHash,
    label: Option<&str>,
    created_by: Option<UserId>,
) -> Result<TokenRecord, StoreError> {
    let id = TokenId::generate();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(id.to_string()),
            api_tokens::tenant_id.eq(tenant.to_string()),
            api_tokens::user_id.eq(user.to_string()),
            api_tokens::token_hash.eq(hash.as_bytes()),
            api_tokens::label.eq(label),
            api_tokens::created_by.eq(created_by.map(|u| u.to_string())),
            api_tokens::created_at.eq(now_micros()),
        ))
        .execute(conn)?;
    get(conn, tenant, id)
}

/// The user behind a presented token, if the token is live and its user enabled.
pub fn authenticate(conn: &mut DbConnection, hash: TokenHash) -> Result<Option<Actor>, StoreError> {
    Ok(live(conn, hash)?.map(|(_, actor)| actor))
}

/// A presented token's id and user, if the token is live and its user enabled.
pub fn live(
    conn: &mut DbConnection,
    hash: TokenHash,
) -> Result<Option<(TokenId, Actor)>, StoreError> {
    let row = api_tokens::table
        .inner_join(
            users::table.on(users::id
                .eq(api_tokens::user_id)
                .and(users::tenant_id.eq(api_tokens::tenant_id))),
        )
        .filter(api_tokens::token_hash.eq(hash.as_bytes()))
        .filter(api_tokens::revoked_at.is_null())
        .filter(users::disabled.eq(false))
        .select((api_tokens::id, users::tenant_id, users::id, users::role))
        .first::<(String, String, String, String)>(conn)
        .optional()?;
    let Some((id, tenant, user, role)) = row else {
        return Ok(None);
    };
    Ok(Some((
        id.parse().map_err(StoreError::corrupt)?,
        Actor {
            tenant_id: tenant.parse().map_err(StoreError::corrupt)?,
            user_id: user.parse().map_err(StoreError::corrupt)?,
            role: role.parse().map_err(StoreError::corrupt)?,
        },
    )))
}

pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: TokenId,
) -> Result<TokenRecord, StoreError> {
    api_tokens::table
        .filter(api_tokens::tenant_id.eq(tenant.to_string()))
        .filter(api_tokens::id.eq(id.to_string()))
        .select(TokenRow::as_select())
        .first(conn)?
        .try_into()
}

pub fn list_for_user(
    conn: &mut DbConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<TokenRecord>, StoreError> {
    api_tokens::table
        .filter(api_tokens::tenant_id.eq(tenant.to_string()))
        .filter(api_tokens::user_id.eq(user.to_string()))
        .order((api_tokens::created_at, api_tokens::id))
        .select(TokenRow::as_select())
        .load(conn)?
        .into_iter()
        .map(TokenRecord::try_from)
        .collect()
}

/// Marks the token revoked (kept for the record). Revoking twice is not an error.
pub fn revoke(conn: &mut DbConnection, tenant: TenantId, id: TokenId) -> Result<(), StoreError> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::tenant_id.eq(tenant.to_string()))
            .filter(api_tokens::id.eq(id.to_string()))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(now_micros()))
    .execute(conn)?;
    Ok(())
}
