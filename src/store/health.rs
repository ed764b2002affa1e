//! Channel health in the database: what sends and checks observed, the status transitions
//! they cause (`domain::health` decides), and the record of each transition: the audit
//! trail, the events for webhooks and owners, and held mail released on recovery.

use chrono::Utc;
use diesel::prelude::*;
use serde_json::json;

use super::messages::{self, Release};
use super::notifications::{self, Event};
use super::schema::channels;
use super::time::{from_micros, now_micros};
use super::{DbConnection, StoreError, audit, write_transaction};
use crate::domain::health::{self, FailureRule, HealthState, Observation, Transition};
use crate::domain::{AuditActor, AuditEvent, ChannelId, ChannelStatus, EventType, TenantId};

/// Which credential an observation was made with: a refusal of an older credential than the
/// channel's current one says nothing (a rotation raced the send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// With the credential of this version (`credential_updated_at`; `None` for none).
    With(Option<i64>),
    /// Whatever the channel holds now.
    Now,
}

/// Applies one observation to a channel and records the transition it causes. `error` is the
/// server's reply or the failure, kept as the channel's last error.
pub fn observe(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    made: Made,
    observation: Observation,
    error: Option<&str>,
    rule: &FailureRule,
) -> Result<Option<Transition>, StoreError> {
    write_transaction(conn, |conn| {
        let target = || {
            channels::table
                .filter(channels::tenant_id.eq(tenant.to_string()))
                .filter(channels::id.eq(channel.to_string()))
        };
        // Take the row's lock first (PostgreSQL), so concurrent observations of one channel
        // apply one after the other and a transition is recorded once.
        if diesel::update(target())
            .set(channels::failure_count.eq(channels::failure_count))
            .execute(conn)?
            == 0
        {
            return Ok(None);
        }
        let (status, cause, failures, first, version): (
            String,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
        ) = target()
            .select((
                channels::status,
                channels::status_cause,
                channels::failure_count,
                channels::first_failure_at,
                channels::credential_updated_at,
            ))
            .first(conn)?;
        if let (Made::With(used), Observation::Refused(_)) = (made, observation)
            && used != version
        {
            return Ok(None);
        }
        let state = HealthState {
            status: status
                .parse()
                .map_err(|e: crate::domain::DomainError| StoreError::corrupt(e))?,
            cause,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            first_failure_at: first.map(from_micros).transpose()?,
        };
        let now = Utc::now();
        let (next, transition) = health::observe(&state, observation, now, rule);
        let at = now.timestamp_micros();
        let failed = error.filter(|_| observation != Observation::Success);
        diesel::update(target())
            .set(&HealthChange {
                status: next.status.as_str(),
                status_cause: Some(next.cause.as_deref()),
                failure_count: i64::from(next.failures),
                first_failure_at: Some(next.first_failure_at.map(|t| t.timestamp_micros())),
                last_error: failed,
                last_error_at: failed.map(|_| at),
                status_changed_at: transition.map(|_| at),
                updated_at: transition.map(|_| at),
            })
            .execute(conn)?;
        if let Some(transition) = transition {
            record_transition(conn, tenant, channel, &state, transition, error)?;
        }
        Ok(transition)
    })
}

/// What an observation writes; `None` leaves a column as it is (the last error stays
/// through successes; the status time moves only with a transition).
#[derive(AsChangeset)]
#[diesel(table_name = channels)]
struct HealthChange<'a> {
    status: &'a str,
    status_cause: Option<Option<&'a str>>,
    failure_count: i64,
    first_failure_at: Option<Option<i64>>,
    last_error: Option<&'a str>,
    last_error_at: Option<i64>,
    status_changed_at: Option<i64>,
    updated_at: Option<i64>,
}

/// Channels that carried mail: their failure runs end, `last_used_at` moves, and a channel
/// that was `failing` recovers. One statement for all of them; recoveries (rare) one each.
pub fn record_successes(
    conn: &mut DbConnection,
    used: &[String],
    rule: &FailureRule,
) -> Result<Vec<ChannelId>, StoreError> {
    if used.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_micros();
    diesel::update(channels::table.filter(channels::id.eq_any(used)))
        .set((
            channels::last_used_at.eq(now),
            channels::failure_count.eq(0),
            channels::first_failure_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    let failing: Vec<(String, String)> = channels::table
        .filter(channels::id.eq_any(used))
        .filter(channels::status.eq(ChannelStatus::Failing.as_str()))
        .select((channels::tenant_id, channels::id))
        .load(conn)?;
    let mut recovered = Vec::new();
    for (tenant, id) in failing {
        let (tenant, id): (TenantId, ChannelId) = (
            tenant.parse().map_err(StoreError::corrupt)?,
            id.parse().map_err(StoreError::corrupt)?,
        );
        if observe(
            conn,
            tenant,
            id,
            Made::Now,
            Observation::Success,
            None,
            rule,
        )?
        .is_some()
        {
            recovered.push(id);
        }
    }
    Ok(recovered)
}

/// Records a transition: the audit trail (actor `system`), the event for webhooks and
/// owners, and on recovery the release of the mail held for the channel.
fn record_transition(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    before: &HealthState,
    transition: Transition,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let (action, kind, detail) = match transition {
        Transition::NeedsReauth(cause) => (
            "channel.needs_reauth",
            EventType::ChannelNeedsReauth,
            json!({"cause": cause.as_str(), "advice": cause.advice(), "reply": error}),
        ),
        Transition::Failing(kind) => (
            "channel.failing",
            EventType::ChannelFailing,
            json!({
                "cause": kind.failing_cause(),
                "failures": before.failures + 1,
                "since": before.first_failure_at,
                "last_error": error,
            }),
        ),
        Transition::Recovered => {
            let released = messages::release_held(
                conn,
                tenant,
                Release::Channel(channel),
                "the channel works again",
            )?;
            (
                "channel.recovered",
                EventType::ChannelRecovered,
                json!({"from": before.status.as_str(), "cause_was": before.cause, "released": released}),
            )
        }
    };
    audit::record(
        conn,
        &AuditEvent {
            tenant: Some(tenant),
            actor: AuditActor::System,
            action,
            target: Some(channel.to_string()),
            detail: detail.clone(),
        },
    )?;
    notifications::emit(
        conn,
        &Event {
            tenant,
            kind,
            channel: Some(channel),
            data: detail,
        },
    )?;
    Ok(())
}

/// A channel that came back to `active` by a person's hand (a verified new credential, a
/// reconnect): the event owners and webhooks wait for. Call inside the transaction that
/// made it active, with the status it had before.
pub fn record_manual_recovery(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    from: ChannelStatus,
    cause_was: Option<&str>,
    released: usize,
    actor: AuditActor,
) -> Result<(), StoreError> {
    let at = now_micros();
    diesel::update(
        channels::table
            .filter(channels::tenant_id.eq(tenant.to_string()))
            .filter(channels::id.eq(channel.to_string())),
    )
    .set((
        channels::status_changed_at.eq(at),
        channels::failure_count.eq(0),
        channels::first_failure_at.eq(None::<i64>),
    ))
    .execute(conn)?;
    let detail = json!({"from": from.as_str(), "cause_was": cause_was, "released": released});
    audit::record_about(
        conn,
        tenant,
        &channel,
        actor,
        "channel.recovered",
        detail.clone(),
    )?;
    notifications::emit(
        conn,
        &Event {
            tenant,
            kind: EventType::ChannelRecovered,
            channel: Some(channel),
            data: detail,
        },
    )?;
    Ok(())
}

/// Records a scheduled check's verdict in the audit trail and, when the login worked,
/// `last_verified_at`.
pub fn record_check(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    ok: bool,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    let action = if ok {
        "channel.verified"
    } else {
        "channel.verification_failed"
    };
    super::channels::record_login_check(
        conn,
        tenant,
        channel,
        ok,
        action,
        detail,
        AuditActor::System,
    )
}

/// A channel due for a scheduled check.
#[derive(Debug, Clone)]
pub struct DueCheck {
    pub tenant: TenantId,
    pub channel: ChannelId,
}

/// Claims channels due for a check: `failing` ones every `probe_every`, so they recover as
/// soon as their server does; active SMTP and Gmail channels idle (neither used nor verified)
/// for `idle_after`, so a dead credential is found before mail needs it. A claim moves the
/// channel's `next_check_at`, so of several processes one checks it.
pub fn claim_due_checks(
    conn: &mut DbConnection,
    probe_every: std::time::Duration,
    idle_after: Option<std::time::Duration>,
    limit: i64,
) -> Result<Vec<DueCheck>, StoreError> {
    let now = now_micros();
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let not_claimed = channels::next_check_at
        .is_null()
        .or(channels::next_check_at.le(now));
    let mut candidates: Vec<(String, String, String)> = channels::table
        .filter(channels::status.eq(ChannelStatus::Failing.as_str()))
        .filter(not_claimed)
        .select((channels::tenant_id, channels::id, channels::status))
        .limit(limit)
        .load(conn)?;
    if let Some(idle) = idle_after {
        let cutoff = now.saturating_sub(micros(idle));
        candidates.extend(
            channels::table
                .filter(channels::status.eq(ChannelStatus::Active.as_str()))
                .filter(channels::kind.eq_any(["smtp", "gmail", "microsoft"]))
                .filter(not_claimed)
                .filter(channels::created_at.lt(cutoff))
                .filter(
                    channels::last_used_at
                        .is_null()
                        .or(channels::last_used_at.lt(cutoff)),
                )
                .filter(
                    channels::last_verified_at
                        .is_null()
                        .or(channels::last_verified_at.lt(cutoff)),
                )
                .select((channels::tenant_id, channels::id, channels::status))
                .limit(limit)
                .load::<(String, String, String)>(conn)?,
        );
    }
    let mut claimed = Vec::new();
    for (tenant, id, status) in candidates {
        let status: ChannelStatus = status.parse().map_err(StoreError::corrupt)?;
        let next = match status {
            ChannelStatus::Failing => now.saturating_add(micros(probe_every)),
            _ => now.saturating_add(idle_after.map(micros).unwrap_or(i64::MAX / 2)),
        };
        let won = diesel::update(
            channels::table.filter(channels::id.eq(&id)).filter(
                channels::next_check_at
                    .is_null()
                    .or(channels::next_check_at.le(now)),
            ),
        )
        .set(channels::next_check_at.eq(next))
        .execute(conn)?;
        if won == 1 {
            claimed.push(DueCheck {
                tenant: tenant.parse().map_err(StoreError::corrupt)?,
                channel: id.parse().map_err(StoreError::corrupt)?,
            });
        }
    }
    Ok(claimed)
}
