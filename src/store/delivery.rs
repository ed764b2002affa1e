//! Leases and outcomes: workers claim due messages for a while, send them, and record what
//! happened. A claim is one statement per backend, so two workers (or two processes on one
//! PostgreSQL) never hold the same message; a process found dead (see `processes`) loses its
//! leases at once, any other worker when they expire, and the message is claimed again.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::json;

use super::channel_stats;
use super::health::{self, Made};
use super::messages::{EventInsert, MessageRecord, MessageStatus, event, insert_events};
use super::notifications::{self, Event};
use super::pauses;
use super::schema::messages;
use super::suppressions;
use super::write_transaction;
use super::{DbConnection, StoreError};
use crate::domain::health::{FailureKind, FailureRule, Observation, ReauthCause, Transition};
use crate::domain::pause::PauseCause;
use crate::domain::recipients::{RcptOutcome, Recipients, Verdict};
use crate::domain::suppression::is_hard_bounce;
use crate::domain::{AuditActor, ChannelId, EventType, MessageId, TenantId};

diesel::define_sql_function! {
    /// The first argument that is not NULL (both backends have it).
    fn coalesce(x: diesel::sql_types::Nullable<Text>, y: diesel::sql_types::Nullable<Text>) -> diesel::sql_types::Nullable<Text>;
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = Text)]
    id: String,
}

/// The claim statements. Raw SQL because the backends differ exactly where it matters:
/// PostgreSQL skips rows another worker has locked (`FOR UPDATE SKIP LOCKED`), so claims
/// from several processes never wait on or take each other's rows; SQLite has one writer, so
/// the single UPDATE is already atomic.
const CLAIM_DUE_PG: &str = "UPDATE messages SET status = 'sending', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $3 \
     ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id";
const CLAIM_EXPIRED_PG: &str = "UPDATE messages SET status = 'sending', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM messages WHERE status = 'sending' AND lease_until < $3 \
     ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id";
const CLAIM_DUE_SQLITE: &str = "UPDATE messages SET status = 'sending', lease_owner = ?1, lease_until = ?2, \
     attempts = attempts + 1, updated_at = ?3 \
     WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?3 \
     ORDER BY next_attempt_at LIMIT ?4) RETURNING id";
const CLAIM_EXPIRED_SQLITE: &str = "UPDATE messages SET status = 'sending', lease_owner = ?1, lease_until = ?2, \
     attempts = attempts + 1, updated_at = ?3 \
     WHERE id IN (SELECT id FROM messages WHERE status = 'sending' AND lease_until < ?3 \
     ORDER BY lease_until LIMIT ?4) RETURNING id";

/// The messages of dead processes: leased by a process whose heartbeat row is stale or
/// marked dead, whatever their `lease_until`. Only owners that have a row qualify: a lease
/// written by a process without one (an older version, during a rolling upgrade) is left to
/// expire. Never our own leases: a process that was paused and found dead sends those still.
const CLAIM_ORPHANED_PG: &str = "UPDATE messages SET status = 'sending', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM messages WHERE status = 'sending' AND lease_owner <> $1 \
     AND lease_owner IN (SELECT id FROM processes WHERE found_dead_at IS NOT NULL OR heartbeat_at < $5) \
     ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id";
const CLAIM_ORPHANED_SQLITE: &str = "UPDATE messages SET status = 'sending', lease_owner = ?1, lease_until = ?2, \
     attempts = attempts + 1, updated_at = ?3 \
     WHERE id IN (SELECT id FROM messages WHERE status = 'sending' AND lease_owner <> ?1 \
     AND lease_owner IN (SELECT id FROM processes WHERE found_dead_at IS NOT NULL OR heartbeat_at < ?5) \
     ORDER BY lease_until LIMIT ?4) RETURNING id";

/// Runs a claim statement; `stale_before` is bound as the fifth parameter when given (only
/// the orphan claim has one: a backend refuses parameters a statement does not use).
fn claim_with(
    conn: &mut DbConnection,
    statements: (&'static str, &'static str),
    worker: &str,
    lease_until: i64,
    now: i64,
    limit: i64,
    stale_before: Option<i64>,
) -> Result<Vec<String>, StoreError> {
    let (pg, sqlite) = statements;
    macro_rules! run {
        ($c:expr, $sql:expr) => {{
            let query = diesel::sql_query($sql)
                .bind::<Text, _>(worker)
                .bind::<BigInt, _>(lease_until)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(limit);
            match stale_before {
                Some(stale) => query.bind::<BigInt, _>(stale).load::<ClaimedId>($c)?,
                None => query.load::<ClaimedId>($c)?,
            }
        }};
    }
    let rows: Vec<ClaimedId> = match conn {
        DbConnection::Postgresql(c) => run!(c, pg),
        DbConnection::Sqlite(c) => run!(c, sqlite),
    };
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Claims up to `limit` messages for `worker` until `lease_micros` from now: first those
/// leased by a process found dead or silent since before `stale_before` (see `processes`;
/// `None` when the caller knows of no such process),
/// then those whose lease expired, then those due, oldest first. Returns them in claim
/// order. Each claim counts as an attempt; each takeover is logged as `lease_expired`.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    limit: i64,
    lease_micros: i64,
    stale_before: Option<i64>,
    now: i64,
) -> Result<Vec<MessageRecord>, StoreError> {
    let until = now + lease_micros;
    // Only when a process may have died: the statement costs a round trip and a plan on
    // every pass, and almost every pass finds nobody dead.
    let orphaned = match stale_before {
        Some(stale_before) => claim_with(
            conn,
            (CLAIM_ORPHANED_PG, CLAIM_ORPHANED_SQLITE),
            worker,
            until,
            now,
            limit,
            Some(stale_before),
        )?,
        None => Vec::new(),
    };
    log_takeover(
        conn,
        &orphaned,
        now,
        "the process sending it stopped (its heartbeat is stale or its process is gone) before recording the outcome; it is sent again (it may have been delivered once already)",
    )?;
    let mut ids = orphaned;
    let room = limit - ids.len() as i64;
    if room > 0 {
        let expired = claim_with(
            conn,
            (CLAIM_EXPIRED_PG, CLAIM_EXPIRED_SQLITE),
            worker,
            until,
            now,
            room,
            None,
        )?;
        log_takeover(
            conn,
            &expired,
            now,
            "the worker sending it stopped before recording the outcome; it is sent again (it may have been delivered once already)",
        )?;
        ids.extend(expired);
    }
    let room = limit - ids.len() as i64;
    if room > 0 {
        ids.extend(claim_with(
            conn,
            (CLAIM_DUE_PG, CLAIM_DUE_SQLITE),
            worker,
            until,
            now,
            room,
            None,
        )?);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut records: Vec<MessageRecord> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(super::messages::INSERT_CHUNK) {
        records.extend(
            messages::table
                .filter(messages::id.eq_any(chunk))
                .select(MessageRecord::as_select())
                .load::<MessageRecord>(conn)?,
        );
    }
    records.sort_by_key(|r| (r.next_attempt_at, r.created_at));
    Ok(records)
}

/// Logs `lease_expired` on messages taken over from another worker.
fn log_takeover(
    conn: &mut DbConnection,
    ids: &[String],
    now: i64,
    detail: &str,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let events: Vec<EventInsert> = ids
        .iter()
        .filter_map(|id| id.parse::<MessageId>().ok())
        .map(|id| event(id, now, "lease_expired", json!({ "detail": detail })))
        .collect();
    insert_events(conn, &events)
}

/// What one attempt at the transport looked like, for the `attempt` event.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub channel: ChannelId,
    /// `ok`, or the failure class (`auth`, `tls`, `network`, `temporary`, `permanent`, `protocol`).
    pub class: &'static str,
    pub code: Option<u16>,
    pub reply: String,
    pub duration_ms: u64,
    /// Each RCPT's answer, when the server was asked.
    pub recipients: Vec<RcptOutcome>,
    /// The connection broke after the message's end, before the server answered: it may
    /// have been delivered, and the retry may deliver it again.
    pub possibly_delivered: bool,
    /// How the message was DKIM-signed (`{signed, selector}`, or `{signed: false, code,
    /// detail}`), when its channel signs.
    pub dkim: Option<serde_json::Value>,
    /// Before sending again, the message was found among what the mailbox had sent (Sent
    /// Items): an earlier attempt had delivered it, and it was not sent twice.
    pub reconciled: bool,
}

/// Where a claimed message goes next.
#[derive(Debug, Clone)]
pub enum Completion {
    Sent {
        channel: ChannelId,
        reply: String,
    },
    /// Some recipients have it and the others were refused for good: done, stored as `sent`
    /// with `failed_recipients` counted; `error` sums up the refusals.
    PartiallySent {
        channel: ChannelId,
        reply: String,
        error: String,
    },
    /// Try again at `until` (microseconds); `reason` is a stable code.
    Deferred {
        channel: Option<ChannelId>,
        until: i64,
        reason: &'static str,
        error: Option<String>,
    },
    /// Wait until released (`channel` active again, kill switch off).
    Held {
        channel: Option<ChannelId>,
        reason: &'static str,
        error: Option<String>,
    },
    Failed {
        channel: Option<ChannelId>,
        reason: &'static str,
        error: String,
    },
}

/// A message a worker is done with, for now.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: MessageId,
    pub tenant: TenantId,
    /// The message's recipients, counted as accepted when it is sent and the transport does
    /// not answer per recipient (APIs).
    pub recipient_count: i64,
    /// The router's decision for this attempt (JSON), stored on the row.
    pub route: Option<serde_json::Value>,
    /// Whether the decision differs from the one stored: logged as a `routed` event.
    pub rerouted: bool,
    pub attempt: Option<Attempt>,
    pub completion: Completion,
    /// Each recipient's outcome to store, when recipients parted ways (`None` leaves it).
    pub recipients: Option<Recipients>,
}

/// What an outcome says about a channel.
#[derive(Debug, Clone)]
pub enum ChannelEffect {
    /// The channel carried a message.
    Used { channel: ChannelId },
    /// The server refused the credential this version: the channel needs a new one. Ignored
    /// when the credential changed since (a rotation raced the send).
    NeedsReauth {
        tenant: TenantId,
        channel: ChannelId,
        credential_version: Option<i64>,
        cause: ReauthCause,
        reply: String,
    },
    /// The channel could not carry the message right now (a temporary reply, TLS or network
    /// error): one more failure in its run.
    Failed {
        tenant: TenantId,
        channel: ChannelId,
        kind: FailureKind,
        error: String,
    },
    /// The provider blocked the mailbox from sending (a sending limit, an outbound-spam
    /// block): the channel is paused, until the block's known end if it has one.
    Paused {
        tenant: TenantId,
        channel: ChannelId,
        cause: PauseCause,
        reply: String,
    },
}

impl ChannelEffect {
    fn channel(&self) -> ChannelId {
        match self {
            ChannelEffect::Used { channel }
            | ChannelEffect::NeedsReauth { channel, .. }
            | ChannelEffect::Failed { channel, .. }
            | ChannelEffect::Paused { channel, .. } => *channel,
        }
    }
}

/// What `complete` did.
#[derive(Debug, Default)]
pub struct Completed {
    /// Messages whose lease had passed to another worker: their outcome was not recorded.
    pub lost_leases: usize,
    /// Channels whose status this call changed, and how.
    pub transitions: Vec<(ChannelId, Transition)>,
    /// Channels the bounce rule paused.
    pub paused: Vec<ChannelId>,
}

/// Records outcomes and their channel effects in one transaction. Each update is guarded by
/// the lease, so a worker that lost its lease cannot overwrite the new owner's work.
pub fn complete(
    conn: &mut DbConnection,
    worker: &str,
    finished: &[Finished],
    effects: &[ChannelEffect],
    rule: &FailureRule,
    now: i64,
) -> Result<Completed, StoreError> {
    write_transaction(conn, |conn| {
        let mut report = Completed::default();
        let mut events = Vec::with_capacity(finished.len() * 2);
        // Sent messages, by far the most, are recorded a group at a time: one UPDATE for
        // every message sent through the same channel with the same route.
        let (sent, others): (Vec<&Finished>, Vec<&Finished>) = finished.iter().partition(|d| {
            matches!(d.completion, Completion::Sent { .. })
                && d.route.is_some()
                && d.recipients.is_none()
        });
        let mut counts = BTreeMap::new();
        for done in record_sent(conn, worker, now, &sent, &mut report)? {
            push_events(&mut events, now, done);
            count(&mut counts, done);
        }
        for done in others {
            if !record_one(conn, worker, now, done)? {
                report.lost_leases += 1;
                continue;
            }
            count(&mut counts, done);
            if let Some(attempt) = &done.attempt {
                let bounced: Vec<String> = attempt
                    .recipients
                    .iter()
                    .filter(|r| r.verdict == Verdict::Refused && is_hard_bounce(r.code, &r.reply))
                    .map(|r| r.address.clone())
                    .collect();
                suppressions::hard_bounced(conn, done.id, &bounced)?;
            }
            push_events(&mut events, now, done);
            match &done.completion {
                Completion::Failed { reason, error, .. } => {
                    announce(conn, done, EventType::MessageFailed, reason, error)?
                }
                Completion::PartiallySent { error, .. } => announce(
                    conn,
                    done,
                    EventType::MessagePartiallySent,
                    "recipients_refused",
                    error,
                )?,
                _ => {}
            }
        }
        insert_events(conn, &events)?;
        channel_stats::add(conn, channel_stats::day_of(now), &counts)?;
        // The bounce rule, once per channel that bounced in this batch, on the counts just
        // written.
        for ((tenant, channel), c) in &counts {
            if c.hard_bounces > 0 && pauses::evaluate_bounces(conn, *tenant, *channel, now)? {
                report.paused.push(*channel);
            }
        }
        let mut used: Vec<String> = Vec::new();
        // Channels are locked in id order (observations first, then the used ones, also
        // sorted), so two processes recording at once rarely wait on each other in a cycle;
        // when they do, the database aborts one and its recorder tries again.
        let mut effects: Vec<&ChannelEffect> = effects.iter().collect();
        effects.sort_by_key(|e| e.channel());
        for effect in effects {
            let (channel, transition) = match effect {
                ChannelEffect::Used { channel } => {
                    used.push(channel.to_string());
                    continue;
                }
                ChannelEffect::NeedsReauth {
                    tenant,
                    channel,
                    credential_version,
                    cause,
                    reply,
                } => (
                    *channel,
                    health::observe(
                        conn,
                        *tenant,
                        *channel,
                        Made::With(*credential_version),
                        Observation::Refused(*cause),
                        Some(reply),
                        rule,
                    )?,
                ),
                ChannelEffect::Paused {
                    tenant,
                    channel,
                    cause,
                    reply,
                } => {
                    let until = cause
                        .block_lasts()
                        .map(|d| now.saturating_add(d.num_microseconds().unwrap_or(i64::MAX)));
                    // A channel deleted meanwhile has nothing left to pause.
                    match pauses::pause(
                        conn,
                        *tenant,
                        *channel,
                        *cause,
                        until,
                        json!({ "reply": reply }),
                        AuditActor::System,
                        now,
                    ) {
                        Ok(_) | Err(StoreError::NotFound) => continue,
                        Err(e) => return Err(e),
                    }
                }
                ChannelEffect::Failed {
                    tenant,
                    channel,
                    kind,
                    error,
                } => (
                    *channel,
                    health::observe(
                        conn,
                        *tenant,
                        *channel,
                        Made::Now,
                        Observation::Failure(*kind),
                        Some(error),
                        rule,
                    )?,
                ),
            };
            report.transitions.extend(transition.map(|t| (channel, t)));
        }
        used.sort();
        used.dedup();
        for channel in health::record_successes(conn, &used, rule)? {
            report.transitions.push((channel, Transition::Recovered));
        }
        Ok(report)
    })
}

/// Adds a recorded outcome to its channel's figures of the day (outcomes without a channel,
/// such as mail held by a kill switch before routing, belong to no channel's chart).
fn count(counts: &mut BTreeMap<(TenantId, ChannelId), channel_stats::Counts>, done: &Finished) {
    let (channel, field): (Option<ChannelId>, fn(&mut channel_stats::Counts)) =
        match &done.completion {
            Completion::Sent { channel, .. } | Completion::PartiallySent { channel, .. } => {
                (Some(*channel), |c| c.sent += 1)
            }
            Completion::Deferred { channel, .. } => (*channel, |c| c.deferred += 1),
            Completion::Held { channel, .. } => (*channel, |c| c.held += 1),
            Completion::Failed { channel, .. } => (*channel, |c| c.failed += 1),
        };
    let Some(channel) = channel.or(done.attempt.as_ref().map(|a| a.channel)) else {
        return;
    };
    let entry = counts.entry((done.tenant, channel)).or_default();
    field(entry);
    let Some(attempt) = &done.attempt else {
        return;
    };
    let sent = matches!(
        done.completion,
        Completion::Sent { .. } | Completion::PartiallySent { .. }
    );
    if attempt.recipients.is_empty() {
        if sent {
            entry.recipients += done.recipient_count;
        }
        return;
    }
    for r in &attempt.recipients {
        match r.verdict {
            Verdict::Accepted if sent => entry.recipients += 1,
            Verdict::Refused if is_hard_bounce(r.code, &r.reply) => entry.hard_bounces += 1,
            _ => {}
        }
    }
}

/// Records sent messages in groups sharing channel and route; returns those recorded (a
/// message whose lease passed to another worker is not).
fn record_sent<'a>(
    conn: &mut DbConnection,
    worker: &str,
    now: i64,
    sent: &[&'a Finished],
    report: &mut Completed,
) -> Result<Vec<&'a Finished>, StoreError> {
    let mut groups: HashMap<(ChannelId, String), Vec<&'a Finished>> = HashMap::new();
    for done in sent {
        if let (Completion::Sent { channel, .. }, Some(route)) = (&done.completion, &done.route) {
            groups
                .entry((*channel, route.to_string()))
                .or_default()
                .push(done);
        }
    }
    let mut recorded = Vec::with_capacity(sent.len());
    for ((channel, route), members) in groups {
        for chunk in members.chunks(super::messages::INSERT_CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|d| d.id.to_string()).collect();
            let updated = diesel::update(
                messages::table
                    .filter(messages::id.eq_any(&ids))
                    .filter(messages::status.eq(MessageStatus::Sending.as_str()))
                    .filter(messages::lease_owner.eq(worker)),
            )
            .set((
                messages::status.eq(MessageStatus::Sent.as_str()),
                messages::channel_id.eq(channel.to_string()),
                messages::route.eq(&route),
                messages::hold_reason.eq(None::<String>),
                messages::last_error.eq(None::<String>),
                messages::sent_at.eq(now),
                messages::lease_owner.eq(None::<String>),
                messages::lease_until.eq(None::<i64>),
                messages::updated_at.eq(now),
            ))
            .execute(conn)?;
            if updated == chunk.len() {
                recorded.extend_from_slice(chunk);
                continue;
            }
            // Some leases were lost: ours are the rows this statement just marked sent.
            let mine: std::collections::HashSet<String> = messages::table
                .filter(messages::id.eq_any(&ids))
                .filter(messages::status.eq(MessageStatus::Sent.as_str()))
                .filter(messages::sent_at.eq(now))
                .select(messages::id)
                .load::<String>(conn)?
                .into_iter()
                .collect();
            for done in chunk {
                if mine.contains(&done.id.to_string()) {
                    recorded.push(done);
                } else {
                    report.lost_leases += 1;
                }
            }
        }
    }
    Ok(recorded)
}

fn record_one(
    conn: &mut DbConnection,
    worker: &str,
    now: i64,
    done: &Finished,
) -> Result<bool, StoreError> {
    let target = messages::table
        .filter(messages::id.eq(done.id.to_string()))
        .filter(messages::status.eq(MessageStatus::Sending.as_str()))
        .filter(messages::lease_owner.eq(worker));
    // A pass that did not route (an internal error) keeps the route shown so far.
    let route = coalesce(done.route.as_ref().map(|r| r.to_string()), messages::route);
    let lease_cleared = (
        messages::lease_owner.eq(None::<String>),
        messages::lease_until.eq(None::<i64>),
        messages::updated_at.eq(now),
    );
    if let Some(recipients) = &done.recipients {
        let json = serde_json::to_string(recipients).map_err(StoreError::corrupt)?;
        let updated = diesel::update(target.clone())
            .set((
                messages::recipients.eq(json),
                messages::failed_recipients.eq(recipients.tally().failed as i64),
            ))
            .execute(conn)?;
        if updated == 0 {
            return Ok(false);
        }
    }
    let updated = match &done.completion {
        Completion::PartiallySent { channel, error, .. } => diesel::update(target)
            .set((
                messages::status.eq(MessageStatus::Sent.as_str()),
                messages::channel_id.eq(channel.to_string()),
                messages::route.eq(route),
                messages::hold_reason.eq(None::<String>),
                messages::last_error.eq(error.clone()),
                messages::sent_at.eq(now),
                lease_cleared,
            ))
            .execute(conn)?,
        Completion::Sent { channel, .. } => diesel::update(target)
            .set((
                messages::status.eq(MessageStatus::Sent.as_str()),
                messages::channel_id.eq(channel.to_string()),
                messages::route.eq(route),
                messages::hold_reason.eq(None::<String>),
                messages::last_error.eq(None::<String>),
                messages::sent_at.eq(now),
                lease_cleared,
            ))
            .execute(conn)?,
        Completion::Deferred {
            channel,
            until,
            error,
            ..
        } => diesel::update(target)
            .set((
                messages::status.eq(MessageStatus::Deferred.as_str()),
                messages::channel_id.eq(channel.map(|c| c.to_string())),
                messages::route.eq(route),
                messages::next_attempt_at.eq(*until),
                messages::last_error.eq(error.clone()),
                lease_cleared,
            ))
            .execute(conn)?,
        Completion::Held {
            channel,
            reason,
            error,
        } => diesel::update(target)
            .set((
                messages::status.eq(MessageStatus::Held.as_str()),
                messages::channel_id.eq(channel.map(|c| c.to_string())),
                messages::route.eq(route),
                messages::hold_reason.eq(*reason),
                messages::last_error.eq(error.clone()),
                lease_cleared,
            ))
            .execute(conn)?,
        Completion::Failed { channel, error, .. } => diesel::update(target)
            .set((
                messages::status.eq(MessageStatus::Failed.as_str()),
                messages::channel_id.eq(channel.map(|c| c.to_string())),
                messages::route.eq(route),
                messages::last_error.eq(error.clone()),
                lease_cleared,
            ))
            .execute(conn)?,
    };
    if updated == 1 && done.attempt.is_none() {
        // The claim counted an attempt, but nothing was sent: attempts (and the backoff
        // built on them) count only tries at the transport.
        diesel::update(messages::table.filter(messages::id.eq(done.id.to_string())))
            .set(messages::attempts.eq(messages::attempts - 1))
            .execute(conn)?;
    }
    Ok(updated == 1)
}

fn push_events(events: &mut Vec<EventInsert>, now: i64, done: &Finished) {
    if done.rerouted
        && let Some(route) = &done.route
    {
        events.push(event(done.id, now, "routed", route.clone()));
    }
    if let Some(a) = &done.attempt {
        let mut detail = json!({"channel_id": a.channel, "result": a.class, "code": a.code, "reply": a.reply, "duration_ms": a.duration_ms});
        if !a.recipients.is_empty() {
            detail["recipients"] = json!(a.recipients);
        }
        if a.possibly_delivered {
            detail["possibly_delivered"] = json!(true);
        }
        if let Some(dkim) = &a.dkim {
            detail["dkim"] = dkim.clone();
        }
        if a.reconciled {
            detail["reconciled"] = json!(true);
        }
        events.push(event(done.id, now, "attempt", detail));
    }
    let (kind, detail) = match &done.completion {
        Completion::Sent { channel, reply } => {
            ("sent", json!({"channel_id": channel, "reply": reply}))
        }
        Completion::PartiallySent {
            channel,
            reply,
            error,
        } => {
            let tally = done
                .recipients
                .as_ref()
                .map(Recipients::tally)
                .unwrap_or_default();
            (
                "partially_sent",
                json!({"channel_id": channel, "reply": reply, "error": error, "sent": tally.sent, "failed": tally.failed}),
            )
        }
        Completion::Deferred {
            until,
            reason,
            error,
            ..
        } => (
            "deferred",
            json!({"reason": reason, "until": super::time::from_micros(*until).ok(), "error": error}),
        ),
        Completion::Held {
            channel,
            reason,
            error,
        } => (
            "held",
            json!({"reason": reason, "channel_id": channel, "error": error}),
        ),
        Completion::Failed { reason, error, .. } => {
            ("failed", json!({"reason": reason, "error": error}))
        }
    };
    events.push(event(done.id, now, kind, detail));
}

/// Tells the tenant's webhooks that a message failed for good, or reached only some of its
/// recipients; each recipient's outcome travels with it when recipients parted ways.
fn announce(
    conn: &mut DbConnection,
    done: &Finished,
    kind: EventType,
    reason: &str,
    error: &str,
) -> Result<(), StoreError> {
    let id = done.id;
    let row: Option<(String, String, Option<String>, i64)> = messages::table
        .filter(messages::id.eq(id.to_string()))
        .select((
            messages::tenant_id,
            messages::from_email,
            messages::channel_id,
            messages::attempts,
        ))
        .first(conn)
        .optional()?;
    let Some((tenant, from, channel, attempts)) = row else {
        return Ok(());
    };
    let mut data = json!({
        "message": {"id": id, "from": from, "channel_id": channel, "attempts": attempts},
        "reason": reason,
        "error": error,
    });
    if let Some(recipients) = &done.recipients {
        data["recipients"] = json!(recipients);
    }
    notifications::emit(
        conn,
        &Event {
            tenant: tenant.parse().map_err(StoreError::corrupt)?,
            kind,
            channel: None,
            data,
        },
    )?;
    Ok(())
}
