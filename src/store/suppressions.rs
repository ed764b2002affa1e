//! A tenant's suppression list (addresses its mail no longer goes to) and the tokens of its
//! messages' unsubscribe links. Addresses are stored lower-case, the form `EmailAddress::
//! normalized` gives, and every lookup is by (tenant, address): the primary key.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::connection::each_backend;
use super::notifications::{self, Event};
use super::schema::{suppressions, tenants, unsubscribe_tokens};
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, audit, write_transaction};
use crate::domain::{AuditActor, EventType, MessageId, SuppressionReason, TenantId};
use crate::vault::TokenHash;

/// Addresses per `IN (…)` list: well below both backends' limits on bound parameters
/// (SQLite 32,766, PostgreSQL 65,535), so one statement covers a whole message (at most
/// 1,000 recipients) and a usual batch.
const LOOKUP_CHUNK: usize = 5000;

/// One suppressed address.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub address: String,
    pub reason: SuppressionReason,
    /// The message whose unsubscribe link added it.
    pub message_id: Option<String>,
    /// The user who added it by hand.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `created_at` as stored, for the listing's cursor.
    pub created_micros: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = suppressions)]
struct SuppressionRow {
    address: String,
    reason: String,
    message_id: Option<String>,
    created_by: Option<String>,
    created_at: i64,
}

impl TryFrom<SuppressionRow> for Suppression {
    type Error = StoreError;

    fn try_from(row: SuppressionRow) -> Result<Self, StoreError> {
        Ok(Suppression {
            reason: row.reason.parse().map_err(StoreError::corrupt)?,
            created_at: from_micros(row.created_at)?,
            created_micros: row.created_at,
            address: row.address,
            message_id: row.message_id,
            created_by: row.created_by,
        })
    }
}

/// An address to suppress, already normalized.
#[derive(Debug, Clone)]
pub struct NewSuppression {
    pub address: String,
    pub reason: SuppressionReason,
    pub message: Option<MessageId>,
    pub actor: AuditActor,
}

/// Adds an address unless it is there already; returns the entry and whether this call
/// added it (an existing entry is left as it is). Audited as `suppression.added`.
pub fn add(
    conn: &mut DbConnection,
    tenant: TenantId,
    new: &NewSuppression,
) -> Result<(Suppression, bool), StoreError> {
    write_transaction(conn, |conn| {
        let created_by = match new.actor {
            AuditActor::User(user) => Some(user.to_string()),
            _ => None,
        };
        let values = (
            suppressions::tenant_id.eq(tenant.to_string()),
            suppressions::address.eq(&new.address),
            suppressions::reason.eq(new.reason.as_str()),
            suppressions::message_id.eq(new.message.map(|m| m.to_string())),
            suppressions::created_by.eq(created_by),
            suppressions::created_at.eq(now_micros()),
        );
        let inserted = each_backend!(conn, c => diesel::insert_into(suppressions::table)
            .values(values)
            .on_conflict((suppressions::tenant_id, suppressions::address))
            .do_nothing()
            .execute(c))?;
        if inserted == 1 {
            audit::record_about(
                conn,
                tenant,
                &new.address,
                new.actor.clone(),
                "suppression.added",
                json!({"reason": new.reason.as_str(), "message_id": new.message}),
            )?;
        }
        Ok((get(conn, tenant, &new.address)?, inserted == 1))
    })
}

/// Puts the recipients of `message` that a server refused for good as nonexistent (a hard
/// bounce) on its tenant's list, reason `hard_bounce`, so that later mail to them is refused
/// at acceptance; each new entry is audited like any other. Runs inside the transaction
/// that records the attempt, so the bounce and the suppression are stored together.
pub fn hard_bounced(
    conn: &mut DbConnection,
    message: MessageId,
    addresses: &[String],
) -> Result<usize, StoreError> {
    if addresses.is_empty() {
        return Ok(0);
    }
    let tenant: String = super::schema::messages::table
        .filter(super::schema::messages::id.eq(message.to_string()))
        .select(super::schema::messages::tenant_id)
        .first(conn)?;
    let tenant: TenantId = tenant.parse().map_err(StoreError::corrupt)?;
    let mut added = 0;
    for address in addresses {
        let address = match crate::domain::EmailAddress::parse(address) {
            Ok(parsed) => parsed.normalized(),
            Err(_) => address.to_ascii_lowercase(),
        };
        let new = NewSuppression {
            address,
            reason: SuppressionReason::HardBounce,
            message: Some(message),
            actor: AuditActor::System,
        };
        if add(conn, tenant, &new)?.1 {
            added += 1;
        }
    }
    Ok(added)
}

/// One entry, or `NotFound` (also for another tenant's).
pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    address: &str,
) -> Result<Suppression, StoreError> {
    suppressions::table
        .filter(suppressions::tenant_id.eq(tenant.to_string()))
        .filter(suppressions::address.eq(address))
        .select(SuppressionRow::as_select())
        .first(conn)?
        .try_into()
}

/// Takes an address off the list (`NotFound` when it is not on it). Audited as
/// `suppression.removed`.
pub fn remove(
    conn: &mut DbConnection,
    tenant: TenantId,
    address: &str,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let was = get(conn, tenant, address)?;
        diesel::delete(
            suppressions::table
                .filter(suppressions::tenant_id.eq(tenant.to_string()))
                .filter(suppressions::address.eq(address)),
        )
        .execute(conn)?;
        audit::record_about(
            conn,
            tenant,
            &address,
            actor,
            "suppression.removed",
            json!({"reason": was.reason.as_str()}),
        )
    })
}

/// Which entries a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this (normalized) address.
    pub address: Option<String>,
    /// Only entries older than this one (keyset pagination, newest first).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// A tenant's entries, newest first.
pub fn list(
    conn: &mut DbConnection,
    tenant: TenantId,
    filter: &ListFilter,
) -> Result<Vec<Suppression>, StoreError> {
    let mut query = suppressions::table
        .filter(suppressions::tenant_id.eq(tenant.to_string()))
        .select(SuppressionRow::as_select())
        .order((
            suppressions::created_at.desc(),
            suppressions::address.desc(),
        ))
        .limit(filter.limit)
        .into_boxed();
    if let Some(address) = &filter.address {
        query = query.filter(suppressions::address.eq(address.clone()));
    }
    if let Some((at, address)) = &filter.before {
        query = query.filter(
            suppressions::created_at.lt(*at).or(suppressions::created_at
                .eq(*at)
                .and(suppressions::address.lt(address.clone()))),
        );
    }
    query
        .load::<SuppressionRow>(conn)?
        .into_iter()
        .map(Suppression::try_from)
        .collect()
}

/// Which of these (normalized) addresses the tenant suppresses: one indexed statement for a
/// message's or a batch's recipients.
pub fn among(
    conn: &mut DbConnection,
    tenant: TenantId,
    addresses: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let mut found = HashSet::new();
    for chunk in addresses.chunks(LOOKUP_CHUNK) {
        found.extend(
            suppressions::table
                .filter(suppressions::tenant_id.eq(tenant.to_string()))
                .filter(suppressions::address.eq_any(chunk))
                .select(suppressions::address)
                .load::<String>(conn)?,
        );
    }
    Ok(found)
}

/// The same for the recipients of several tenants' messages at once (a worker's claimed
/// batch): the suppressed (tenant, address) pairs among them.
pub fn among_tenants(
    conn: &mut DbConnection,
    wanted: &HashMap<TenantId, HashSet<String>>,
) -> Result<HashSet<(TenantId, String)>, StoreError> {
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let tenant_ids: Vec<String> = wanted.keys().map(ToString::to_string).collect();
    let mut addresses: Vec<&str> = wanted.values().flatten().map(String::as_str).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut found = HashSet::new();
    for chunk in addresses.chunks(LOOKUP_CHUNK) {
        let rows: Vec<(String, String)> = suppressions::table
            .filter(suppressions::tenant_id.eq_any(&tenant_ids))
            .filter(suppressions::address.eq_any(chunk))
            .select((suppressions::tenant_id, suppressions::address))
            .load(conn)?;
        for (tenant, address) in rows {
            let tenant: TenantId = tenant.parse().map_err(StoreError::corrupt)?;
            // The statement matches every listed tenant with every listed address.
            if wanted.get(&tenant).is_some_and(|a| a.contains(&address)) {
                found.insert((tenant, address));
            }
        }
    }
    Ok(found)
}

/// The stored form of one message's unsubscribe link.
#[derive(Debug, Clone)]
pub struct LinkToken {
    pub hash: TokenHash,
    /// The one recipient it unsubscribes, normalized.
    pub address: String,
    pub message: MessageId,
}

/// Stores the tokens of messages being accepted (in their transaction).
pub fn insert_tokens(
    conn: &mut DbConnection,
    tenant: TenantId,
    tokens: &[LinkToken],
) -> Result<(), StoreError> {
    let now = now_micros();
    let rows: Vec<_> = tokens
        .iter()
        .map(|t| {
            (
                unsubscribe_tokens::token_hash.eq(t.hash.as_bytes()),
                unsubscribe_tokens::tenant_id.eq(tenant.to_string()),
                unsubscribe_tokens::address.eq(t.address.as_str()),
                unsubscribe_tokens::message_id.eq(t.message.to_string()),
                unsubscribe_tokens::created_at.eq(now),
            )
        })
        .collect();
    for chunk in rows.chunks(super::messages::INSERT_CHUNK) {
        each_backend!(conn, c => diesel::insert_into(unsubscribe_tokens::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// What a presented link token stands for.
#[derive(Debug, Clone)]
pub struct Link {
    pub tenant: TenantId,
    /// For the page: whose mail the recipient stops.
    pub tenant_name: String,
    pub address: String,
    pub message: MessageId,
}

/// The link a token belongs to, if any.
pub fn link(conn: &mut DbConnection, hash: &TokenHash) -> Result<Option<Link>, StoreError> {
    let row: Option<(String, String, String, String)> = unsubscribe_tokens::table
        .inner_join(tenants::table.on(tenants::id.eq(unsubscribe_tokens::tenant_id)))
        .filter(unsubscribe_tokens::token_hash.eq(hash.as_bytes()))
        .select((
            unsubscribe_tokens::tenant_id,
            tenants::name,
            unsubscribe_tokens::address,
            unsubscribe_tokens::message_id,
        ))
        .first(conn)
        .optional()?;
    row.map(|(tenant, tenant_name, address, message)| {
        Ok(Link {
            tenant: tenant.parse().map_err(StoreError::corrupt)?,
            tenant_name,
            address,
            message: message.parse().map_err(StoreError::corrupt)?,
        })
    })
    .transpose()
}

/// A recipient used their link: their address goes on the tenant's list at once (reason
/// `unsubscribed`, the message as its source), audited with the recipient as actor, and the
/// tenant's webhooks hear `recipient.unsubscribed`. A repeat changes nothing and tells no
/// one. `None` for an unknown token.
pub fn unsubscribe(
    conn: &mut DbConnection,
    hash: &TokenHash,
) -> Result<Option<(Link, bool)>, StoreError> {
    write_transaction(conn, |conn| {
        let Some(link) = link(conn, hash)? else {
            return Ok(None);
        };
        let (entry, added) = add(
            conn,
            link.tenant,
            &NewSuppression {
                address: link.address.clone(),
                reason: SuppressionReason::Unsubscribed,
                message: Some(link.message),
                actor: AuditActor::Recipient,
            },
        )?;
        if added {
            notifications::emit(
                conn,
                &Event {
                    tenant: link.tenant,
                    kind: EventType::RecipientUnsubscribed,
                    channel: None,
                    data: json!({
                        "address": entry.address,
                        "message_id": link.message,
                        "at": entry.created_at,
                    }),
                },
            )?;
        }
        Ok(Some((link, added)))
    })
}
