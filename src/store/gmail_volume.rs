//! What a tenant sent to personal Gmail addresses over a rolling window, per From address:
//! the input of Gmail's bulk-sender warning. Reads the partial index
//! `messages_personal_gmail`, so the cost follows the Gmail-bound mail of the window, not
//! the whole queue.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::schema::messages;
use super::{DbConnection, StoreError};
use crate::domain::TenantId;

/// Personal-Gmail recipients of the tenant's mail sent since `since` (microseconds), per
/// From address. Every channel counts, reps' own mailboxes included, as Google counts them.
pub fn sent_since(
    conn: &mut DbConnection,
    tenant: TenantId,
    since: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    // SUM of a BIGINT is NUMERIC on PostgreSQL; the cast keeps one Rust type for both.
    Ok(messages::table
        .filter(messages::tenant_id.eq(tenant.to_string()))
        .filter(messages::personal_gmail.gt(0))
        .filter(messages::sent_at.ge(since))
        .group_by(messages::from_email)
        .select((
            messages::from_email,
            sql::<BigInt>("CAST(COALESCE(SUM(personal_gmail), 0) AS BIGINT)"),
        ))
        .load(conn)?)
}
