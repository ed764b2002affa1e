//! Operator tokens: platform-level, they create tenants. Stored hashed like tenant tokens.

use diesel::prelude::*;

use super::schema::operator_tokens;
use super::time::now_micros;
use super::write_transaction;
use super::{DbConnection, StoreError};
use crate::domain::TokenId;
use crate::vault::TokenHash;

pub fn count_active(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(operator_tokens::table
        .filter(operator_tokens::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}

pub fn insert(conn: &mut DbConnection, hash: TokenHash) -> Result<TokenId, StoreError> {
    let id = TokenId::generate();
    diesel::insert_into(operator_tokens::table)
        .values((
            operator_tokens::id.eq(id.to_string()),
            operator_tokens::token_hash.eq(hash.as_bytes()),
            operator_tokens::created_at.eq(now_micros()),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Stores a first operator token unless one is already live; `true` when it stored it.
pub fn insert_if_none(conn: &mut DbConnection, hash: TokenHash) -> Result<bool, StoreError> {
    write_transaction(conn, |conn| {
        // Two instances starting together on one PostgreSQL database would otherwise both
        // see no token and both mint one; the lock serialises their check-then-insert.
        // (SQLite: one process owns the file.)
        if let DbConnection::Postgresql(pg) = conn {
            diesel::connection::SimpleConnection::batch_execute(
                pg,
                "LOCK TABLE operator_tokens IN SHARE ROW EXCLUSIVE MODE",
            )?;
        }
        if count_active(conn)? > 0 {
            return Ok(false);
        }
        insert(conn, hash)?;
        Ok(true)
    })
}

pub fn authenticate(conn: &mut DbConnection, hash: TokenHash) -> Result<bool, StoreError> {
    let found = operator_tokens::table
        .filter(operator_tokens::token_hash.eq(hash.as_bytes()))
        .filter(operator_tokens::revoked_at.is_null())
        .select(operator_tokens::id)
        .first::<String>(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Revokes every operator token but `keep` (used when a lost token is replaced).
pub fn revoke_all_except(conn: &mut DbConnection, keep: TokenId) -> Result<usize, StoreError> {
    Ok(diesel::update(
        operator_tokens::table
            .filter(operator_tokens::id.ne(keep.to_string()))
            .filter(operator_tokens::revoked_at.is_null()),
    )
    .set(operator_tokens::revoked_at.eq(now_micros()))
    .execute(conn)?)
}
