//! The outbox: messages accepted for sending, their lease while a worker owns them, and
//! their event log. A message row is written before the API answers, and every change of
//! status writes an event in the same transaction, so the log never disagrees with the row.

use diesel::prelude::*;
use serde_json::json;

use super::connection::each_backend;
use super::schema::{message_events, messages};
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError};
use crate::domain::{ChannelId, Domain, MessageId, TenantId, UserId};

diesel::define_sql_function! {
    /// The first time that is not NULL (both backends have it).
    #[sql_name = "coalesce"]
    fn coalesce_time(x: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, y: diesel::sql_types::BigInt) -> diesel::sql_types::BigInt;
}

/// A stored time as RFC 3339, for event details.
fn rfc3339(micros: i64) -> Option<String> {
    from_micros(micros).ok().map(|t| t.to_rfc3339())
}

/// Rows per INSERT: about 20 bind parameters a row stays well below both backends' limits
/// (SQLite 32,766, PostgreSQL 65,535).
pub(super) const INSERT_CHUNK: usize = 400;

/// Where a message stands. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Deferred,
    Held,
    Failed,
    /// Withdrawn by a user before it was sent.
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Held => "held",
            MessageStatus::Failed => "failed",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        Ok(match raw {
            "queued" => MessageStatus::Queued,
            "sending" => MessageStatus::Sending,
            "sent" => MessageStatus::Sent,
            "deferred" => MessageStatus::Deferred,
            "held" => MessageStatus::Held,
            "failed" => MessageStatus::Failed,
            "cancelled" => MessageStatus::Cancelled,
            other => return Err(StoreError::corrupt(format!("message status `{other}`"))),
        })
    }
}

/// A message to store, validated and routed by the caller.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub sender: UserId,
    pub idempotency_key: Option<String>,
    pub message_id_header: String,
    /// The From as given (display name included), for the log.
    pub from_address: String,
    /// The From address alone, which the router matches.
    pub from_email: String,
    pub recipient_count: i64,
    /// Recipients at personal Gmail addresses (Gmail's bulk-sender count).
    pub personal_gmail: i64,
    pub subject: String,
    /// JSON `{to, cc, bcc}`.
    pub envelope: String,
    /// JSON `{reply_to, text, html, headers}`.
    pub body: String,
    pub size_bytes: i64,
    /// The router's decision at acceptance (JSON), recorded as the `routed` event.
    pub route: serde_json::Value,
    /// The channel it is routed to (or held for).
    pub channel: Option<ChannelId>,
    /// The hold reason when the message is held from the start.
    pub held: Option<&'static str>,
    /// Its unsubscribe link, stored with it when the message carries one.
    pub unsubscribe: Option<super::suppressions::LinkToken>,
    /// Not to be sent before this time (microseconds), when the client scheduled it.
    pub send_at: Option<i64>,
}

/// A stored message as the API shows it in lists and answers.
#[derive(Debug, Clone)]
pub struct MessageSummary {
    pub id: MessageId,
    pub status: MessageStatus,
    pub sender: UserId,
}

/// What `accept` did with one input.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// Stored now.
    New(MessageSummary),
    /// The idempotency key was used before: the first message, untouched.
    Existing(MessageSummary),
}

// NULL rather than DEFAULT for `None`: SQLite has no DEFAULT keyword in multi-row VALUES.
#[derive(Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
struct MessageInsert<'a> {
    id: String,
    tenant_id: String,
    sender_user_id: String,
    idempotency_key: Option<&'a str>,
    message_id_header: &'a str,
    from_address: &'a str,
    from_email: &'a str,
    recipient_count: i64,
    personal_gmail: i64,
    subject: &'a str,
    envelope: &'a str,
    body: Option<&'a str>,
    size_bytes: i64,
    status: &'static str,
    hold_reason: Option<&'static str>,
    channel_id: Option<String>,
    route: Option<String>,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
    send_at: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = message_events)]
pub(super) struct EventInsert {
    message_id: String,
    at: i64,
    kind: &'static str,
    detail: String,
}

pub(super) fn event(
    id: MessageId,
    at: i64,
    kind: &'static str,
    detail: serde_json::Value,
) -> EventInsert {
    EventInsert {
        message_id: id.to_string(),
        at,
        kind,
        detail: detail.to_string(),
    }
}

pub(super) fn insert_events(
    conn: &mut DbConnection,
    events: &[EventInsert],
) -> Result<(), StoreError> {
    for chunk in events.chunks(INSERT_CHUNK) {
        each_backend!(conn, c => diesel::insert_into(message_events::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// Stores messages in one transaction; the caller answers 202 only after this returns.
/// A message whose idempotency key this tenant used before (or that repeats a key earlier in
/// the same call) is not stored again: the first one is returned instead. Concurrent repeats
/// are settled by the unique index, never by a read-then-write race.
pub fn accept(
    conn: &mut DbConnection,
    tenant: TenantId,
    batch: &[NewMessage],
) -> Result<Vec<Accepted>, StoreError> {
    write_transaction(conn, |conn| {
        let now = now_micros();
        let tenant_text = tenant.to_string();
        // One microsecond apart, so that the claim order (next attempt, then acceptance) is
        // the order of the batch even when every row was accepted in the same instant.
        let rows: Vec<MessageInsert<'_>> = batch
            .iter()
            .zip(now..)
            .map(|(m, at)| MessageInsert {
                id: m.id.to_string(),
                tenant_id: tenant_text.clone(),
                sender_user_id: m.sender.to_string(),
                idempotency_key: m.idempotency_key.as_deref(),
                message_id_header: &m.message_id_header,
                from_address: &m.from_address,
                from_email: &m.from_email,
                recipient_count: m.recipient_count,
                personal_gmail: m.personal_gmail,
                subject: &m.subject,
                envelope: &m.envelope,
                body: Some(&m.body),
                size_bytes: m.size_bytes,
                status: if m.held.is_some() {
                    MessageStatus::Held.as_str()
                } else {
                    MessageStatus::Queued.as_str()
                },
                hold_reason: m.held,
                channel_id: m.channel.map(|c| c.to_string()),
                route: Some(m.route.to_string()),
                attempts: 0,
                next_attempt_at: m.send_at.map_or(at, |send_at| send_at.max(at)),
                created_at: at,
                updated_at: at,
                send_at: m.send_at,
            })
            .collect();
        for chunk in rows.chunks(INSERT_CHUNK) {
            each_backend!(conn, c => diesel::insert_into(messages::table)
                .values(chunk)
                .on_conflict((messages::tenant_id, messages::idempotency_key))
                .do_nothing()
                .execute(c))?;
        }
        // Which keyed messages are ours and which were there first.
        let keys: Vec<&str> = batch
            .iter()
            .filter_map(|m| m.idempotency_key.as_deref())
            .collect();
        let owners = by_idempotency_keys(conn, tenant, &keys)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len() * 2);
        let mut links = Vec::new();
        for m in batch {
            let status = if m.held.is_some() {
                MessageStatus::Held
            } else {
                MessageStatus::Queued
            };
            if let Some(key) = &m.idempotency_key {
                let owner = owners
                    .get(key)
                    .ok_or_else(|| StoreError::Internal("idempotent insert lost its row".into()))?;
                if owner.id != m.id {
                    results.push(Accepted::Existing(owner.clone()));
                    continue;
                }
            }
            events.push(event(
                m.id,
                now,
                "accepted",
                json!({"message_id": m.message_id_header, "recipients": m.recipient_count, "size_bytes": m.size_bytes, "send_at": m.send_at.and_then(rfc3339)}),
            ));
            events.push(event(m.id, now, "routed", m.route.clone()));
            links.extend(m.unsubscribe.clone());
            if let Some(reason) = m.held {
                events.push(event(
                    m.id,
                    now,
                    "held",
                    json!({"reason": reason, "channel_id": m.channel}),
                ));
            }
            results.push(Accepted::New(MessageSummary {
                id: m.id,
                status,
                sender: m.sender,
            }));
        }
        insert_events(conn, &events)?;
        super::suppressions::insert_tokens(conn, tenant, &links)?;
        // Mail held from the start never reaches a worker's outcome: it is counted here, on
        // the channel it waits for, so the channel's day shows it.
        let mut held = std::collections::BTreeMap::new();
        for (m, result) in batch.iter().zip(&results) {
            if let (Some(channel), Some(_), Accepted::New(_)) = (m.channel, m.held, result) {
                let counts: &mut super::channel_stats::Counts =
                    held.entry((tenant, channel)).or_default();
                counts.held += 1;
            }
        }
        super::channel_stats::add(conn, super::channel_stats::day_of(now), &held)?;
        Ok(results)
    })
}

/// A message as stored, for the API and for a worker.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRecord {
    pub id: String,
    pub tenant_id: String,
    pub sender_user_id: String,
    pub idempotency_key: Option<String>,
    pub message_id_header: String,
    pub from_address: String,
    pub from_email: String,
    pub recipient_count: i64,
    pub subject: String,
    pub envelope: String,
    pub body: Option<String>,
    pub size_bytes: i64,
    pub status: String,
    pub hold_reason: Option<String>,
    pub channel_id: Option<String>,
    pub route: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    /// Each recipient's own outcome (JSON `Recipients`), once recipients part ways.
    pub recipients: Option<String>,
    /// Recipients refused for good: a `sent` message with some was partially sent.
    pub failed_recipients: i64,
    /// When the client asked for it to be sent, if it scheduled it.
    pub send_at: Option<i64>,
}

impl MessageRecord {
    pub fn message_id(&self) -> Result<MessageId, StoreError> {
        self.id.parse().map_err(StoreError::corrupt)
    }

    pub fn tenant(&self) -> Result<TenantId, StoreError> {
        self.tenant_id.parse().map_err(StoreError::corrupt)
    }

    pub fn sender(&self) -> Result<UserId, StoreError> {
        self.sender_user_id.parse().map_err(StoreError::corrupt)
    }
}

/// One step in a message's life.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    pub at: chrono::DateTime<chrono::Utc>,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// A tenant's message, or `NotFound` (also for another tenant's id).
pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: MessageId,
) -> Result<MessageRecord, StoreError> {
    Ok(messages::table
        .filter(messages::tenant_id.eq(tenant.to_string()))
        .filter(messages::id.eq(id.to_string()))
        .select(MessageRecord::as_select())
        .first(conn)?)
}

/// The messages already holding some of these idempotency keys: key → (id, status).
pub fn by_idempotency_keys(
    conn: &mut DbConnection,
    tenant: TenantId,
    keys: &[&str],
) -> Result<std::collections::HashMap<String, MessageSummary>, StoreError> {
    let mut found = std::collections::HashMap::new();
    for chunk in keys.chunks(INSERT_CHUNK) {
        let rows: Vec<(Option<String>, String, String, String)> = messages::table
            .filter(messages::tenant_id.eq(tenant.to_string()))
            .filter(messages::idempotency_key.eq_any(chunk))
            .select((
                messages::idempotency_key,
                messages::id,
                messages::status,
                messages::sender_user_id,
            ))
            .load(conn)?;
        for (key, id, status, sender) in rows {
            if let Some(key) = key {
                found.insert(
                    key,
                    MessageSummary {
                        id: id.parse().map_err(StoreError::corrupt)?,
                        status: MessageStatus::parse(&status)?,
                        sender: sender.parse().map_err(StoreError::corrupt)?,
                    },
                );
            }
        }
    }
    Ok(found)
}

/// The event log of a message (the caller has already checked the tenant), oldest first.
pub fn events(conn: &mut DbConnection, id: MessageId) -> Result<Vec<MessageEvent>, StoreError> {
    message_events::table
        .filter(message_events::message_id.eq(id.to_string()))
        .order(message_events::id)
        .select((
            message_events::at,
            message_events::kind,
            message_events::detail,
        ))
        .load::<(i64, String, String)>(conn)?
        .into_iter()
        .map(|(at, kind, detail)| {
            Ok(MessageEvent {
                at: from_micros(at)?,
                kind,
                detail: serde_json::from_str(&detail).map_err(StoreError::corrupt)?,
            })
        })
        .collect()
}

/// A status as the API shows it: a stored one, or `partially_sent`, which is stored as
/// `sent` with recipients refused for good (`failed_recipients`). SQLite cannot widen the
/// status column's CHECK without rebuilding the table, and `sent` is right for the queue:
/// the message is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownStatus {
    Stored(MessageStatus),
    PartiallySent,
}

impl ShownStatus {
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "partially_sent" => Ok(ShownStatus::PartiallySent),
            other => MessageStatus::parse(other).map(ShownStatus::Stored),
        }
    }

    /// The status to show for a stored row.
    pub fn of(status: &str, failed_recipients: i64) -> &str {
        if status == MessageStatus::Sent.as_str() && failed_recipients > 0 {
            "partially_sent"
        } else {
            status
        }
    }
}

/// Which messages a listing shows.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub sender: Option<UserId>,
    pub status: Option<ShownStatus>,
    pub channel: Option<ChannelId>,
    /// Only messages accepted before this one (keyset pagination, newest first).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// A tenant's messages, newest first.
pub fn list(
    conn: &mut DbConnection,
    tenant: TenantId,
    filter: &MessageFilter,
) -> Result<Vec<MessageRecord>, StoreError> {
    let mut query = messages::table
        .filter(messages::tenant_id.eq(tenant.to_string()))
        .select(MessageRecord::as_select())
        .order((messages::created_at.desc(), messages::id.desc()))
        .limit(filter.limit)
        .into_boxed();
    if let Some(sender) = filter.sender {
        query = query.filter(messages::sender_user_id.eq(sender.to_string()));
    }
    match filter.status {
        None => {}
        Some(ShownStatus::Stored(MessageStatus::Sent)) => {
            query = query
                .filter(messages::status.eq(MessageStatus::Sent.as_str()))
                .filter(messages::failed_recipients.eq(0));
        }
        Some(ShownStatus::PartiallySent) => {
            query = query
                .filter(messages::status.eq(MessageStatus::Sent.as_str()))
                .filter(messages::failed_recipients.gt(0));
        }
        Some(ShownStatus::Stored(status)) => {
            query = query.filter(messages::status.eq(status.as_str()));
        }
    }
    if let Some(channel) = filter.channel {
        query = query.filter(messages::channel_id.eq(channel.to_string()));
    }
    if let Some((at, id)) = &filter.before {
        query = query.filter(
            messages::created_at.lt(*at).or(messages::created_at
                .eq(*at)
                .and(messages::id.lt(id.clone()))),
        );
    }
    Ok(query.load(conn)?)
}

/// Counts of a tenant's messages that still wait for a channel: held or not yet sent.
pub fn pending_for_channel(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
) -> Result<i64, StoreError> {
    Ok(messages::table
        .filter(messages::tenant_id.eq(tenant.to_string()))
        .filter(messages::channel_id.eq(channel.to_string()))
        .filter(messages::status.eq_any(["queued", "deferred", "held", "sending"]))
        .count()
        .get_result(conn)?)
}

/// Which held messages to let go.
#[derive(Debug, Clone, Copy)]
pub enum Release<'a> {
    /// Everything held for this channel (it is active again, or gone).
    Channel(ChannelId),
    /// Everything held for this reason (`sending_disabled`, `team_sending_disabled`,
    /// `channel_unavailable` when the tenant switches to fallback).
    Reason(&'static str),
    /// Everything held for this reason whose From is at this domain (`domain_not_verified`
    /// when the domain is verified).
    FromDomain {
        reason: &'static str,
        domain: &'a Domain,
    },
}

/// Returns held messages to the queue, oldest first: their next attempt is set to when they
/// were accepted, so the claim order (by next attempt) sends them in the order they came.
/// Each gets a `released` event naming why. Returns how many were released.
pub fn release_held(
    conn: &mut DbConnection,
    tenant: TenantId,
    which: Release<'_>,
    why: &str,
) -> Result<usize, StoreError> {
    let mut query = messages::table
        .filter(messages::tenant_id.eq(tenant.to_string()))
        .filter(messages::status.eq(MessageStatus::Held.as_str()))
        .select((messages::id, messages::from_email))
        .order(messages::created_at)
        .into_boxed();
    query = match which {
        Release::Channel(channel) => query.filter(messages::channel_id.eq(channel.to_string())),
        Release::Reason(reason) | Release::FromDomain { reason, .. } => {
            query.filter(messages::hold_reason.eq(reason))
        }
    };
    let held: Vec<(String, String)> = query.load(conn)?;
    // Addresses are stored as accepted (validated, domain lower-cased by the parser).
    let ids: Vec<String> = held
        .into_iter()
        .filter(|(_, from)| match which {
            Release::FromDomain { domain, .. } => from
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain.as_str())),
            _ => true,
        })
        .map(|(id, _)| id)
        .collect();
    let now = now_micros();
    let mut events = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(INSERT_CHUNK) {
        diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
            .set((
                messages::status.eq(MessageStatus::Queued.as_str()),
                messages::hold_reason.eq(None::<String>),
                // A scheduled message keeps its time.
                messages::next_attempt_at
                    .eq(coalesce_time(messages::send_at, messages::created_at)),
                messages::updated_at.eq(now),
            ))
            .execute(conn)?;
        for id in chunk {
            events.push(EventInsert {
                message_id: id.clone(),
                at: now,
                kind: "released",
                detail: json!({ "why": why }).to_string(),
            });
        }
    }
    insert_events(conn, &events)?;
    Ok(ids.len())
}

/// Removes the bodies of finished (sent, failed or cancelled) messages last changed before `before`,
/// at most `limit` of them; the envelope, route and log stay. Returns how many.
pub fn prune_bodies(conn: &mut DbConnection, before: i64, limit: i64) -> Result<usize, StoreError> {
    let ids: Vec<String> = messages::table
        .filter(messages::body.is_not_null())
        .filter(messages::status.eq_any(["sent", "failed", "cancelled"]))
        .filter(messages::updated_at.lt(before))
        .order(messages::updated_at)
        .limit(limit)
        .select(messages::id)
        .load(conn)?;
    let mut pruned = 0;
    for chunk in ids.chunks(INSERT_CHUNK) {
        pruned += diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
            .set(messages::body.eq(None::<String>))
            .execute(conn)?;
    }
    Ok(pruned)
}

/// Counts by status across all tenants, for `/metrics`.
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(messages::table
        .group_by(messages::status)
        .select((messages::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// What became of a request to cancel a message.
#[derive(Debug)]
pub enum Cancelled {
    /// It was waiting (queued, scheduled, deferred or held) and will never be sent.
    Now(MessageRecord),
    /// It had been cancelled before: nothing changed.
    Already(MessageRecord),
    /// A worker is sending it at this moment: it may already be on its way.
    InFlight(MessageRecord),
    /// It was sent or failed already.
    Finished(MessageRecord),
}

/// Cancels a message that has not been sent yet. The status is changed only from a waiting
/// one in a single guarded UPDATE, so a worker claiming it at the same moment either got it
/// first (the answer is `InFlight`) or never will. `only_sender` limits it to one sender's
/// mail (a rep's); another's is `NotFound`, as when reading it.
pub fn cancel(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: MessageId,
    only_sender: Option<UserId>,
    actor: &str,
    now: i64,
) -> Result<Cancelled, StoreError> {
    write_transaction(conn, |conn| {
        let record = get(conn, tenant, id)?;
        if only_sender.is_some_and(|s| s.to_string() != record.sender_user_id) {
            return Err(StoreError::NotFound);
        }
        let waiting = [
            MessageStatus::Queued.as_str(),
            MessageStatus::Deferred.as_str(),
            MessageStatus::Held.as_str(),
        ];
        let updated = diesel::update(
            messages::table
                .filter(messages::id.eq(id.to_string()))
                .filter(messages::status.eq_any(waiting)),
        )
        .set((
            messages::status.eq(MessageStatus::Cancelled.as_str()),
            messages::hold_reason.eq(None::<String>),
            messages::updated_at.eq(now),
        ))
        .execute(conn)?;
        let record = get(conn, tenant, id)?;
        if updated == 1 {
            insert_events(conn, &[event(id, now, "cancelled", json!({"by": actor}))])?;
            return Ok(Cancelled::Now(record));
        }
        Ok(match MessageStatus::parse(&record.status)? {
            MessageStatus::Cancelled => Cancelled::Already(record),
            MessageStatus::Sending => Cancelled::InFlight(record),
            _ => Cancelled::Finished(record),
        })
    })
}
