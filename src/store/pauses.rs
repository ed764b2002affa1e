//! Paused channels in the database: pausing (the bounce rule, a provider's block, an admin),
//! resuming (an admin, or the end of a provider's block), and the record of each: the audit
//! trail, the `channel.paused` / `channel.resumed` events, the held mail released on resume.
//! Times are passed in (`now`, microseconds), never read here.

use diesel::prelude::*;
use serde_json::{Value, json};

use super::channel_stats::{self, Counts, day_of};
use super::messages::{self, Release};
use super::notifications::{self, Event};
use super::schema::{channels, tenant_bounce_pause};
use super::time::from_micros;
use super::{DbConnection, StoreError, audit, write_transaction};
use crate::domain::bounces::{BounceFigures, BouncePolicy, crosses};
use crate::domain::pause::PauseCause;
use crate::domain::{AuditActor, ChannelId, ChannelStatus, EventType, TenantId};

/// What `pause` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    Paused,
    /// Only an active (or failing) channel is paused; this one was not.
    NotPausable(ChannelStatus),
}

/// What `resume` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Resumed; so many held messages went back to the queue.
    Resumed {
        released: usize,
    },
    NotPaused(ChannelStatus),
}

/// The channel's row, within its tenant.
macro_rules! target {
    ($tenant:expr, $channel:expr) => {
        channels::table
            .filter(channels::tenant_id.eq($tenant.to_string()))
            .filter(channels::id.eq($channel.to_string()))
    };
}

/// Locks the channel's row (PostgreSQL) and reads its status: a pause and a resume of one
/// channel apply one after the other, and each is recorded once.
fn locked_status(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
) -> Result<Option<(ChannelStatus, Option<String>)>, StoreError> {
    let touched = diesel::update(target!(tenant, channel))
        .set(channels::failure_count.eq(channels::failure_count))
        .execute(conn)?;
    if touched == 0 {
        return Ok(None);
    }
    let (status, cause): (String, Option<String>) = target!(tenant, channel)
        .select((channels::status, channels::status_cause))
        .first(conn)?;
    Ok(Some((status.parse().map_err(StoreError::corrupt)?, cause)))
}

/// Pauses an active or failing channel with `cause`: its mail is held from now on (the
/// router holds or falls back, per the tenant's policy), the owner and the admins are told,
/// the audit trail names `actor`. `until` ends a provider's block by itself. `detail`
/// carries the figures or the provider's reply. NotFound when there is no such channel.
#[allow(clippy::too_many_arguments)]
pub fn pause(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    cause: PauseCause,
    until: Option<i64>,
    detail: Value,
    actor: AuditActor,
    now: i64,
) -> Result<Paused, StoreError> {
    write_transaction(conn, |conn| {
        let (status, _) = locked_status(conn, tenant, channel)?.ok_or(StoreError::NotFound)?;
        if !matches!(status, ChannelStatus::Active | ChannelStatus::Failing) {
            return Ok(Paused::NotPausable(status));
        }
        let mut detail = detail;
        if let Some(object) = detail.as_object_mut() {
            object.insert("cause".into(), json!(cause.as_str()));
            object.insert("advice".into(), json!(cause.advice()));
            object.insert("since".into(), json!(from_micros(now)?));
            object.insert("until".into(), json!(until.map(from_micros).transpose()?));
            object.insert("by".into(), json!(actor.to_string()));
        }
        diesel::update(target!(tenant, channel))
            .set((
                channels::status.eq(ChannelStatus::Paused.as_str()),
                channels::status_cause.eq(cause.as_str()),
                channels::paused_until.eq(until),
                channels::pause_detail.eq(detail.to_string()),
                channels::failure_count.eq(0),
                channels::first_failure_at.eq(None::<i64>),
                channels::status_changed_at.eq(now),
                channels::updated_at.eq(now),
            ))
            .execute(conn)?;
        let mut data = detail.clone();
        data["from"] = json!(status.as_str());
        audit::record_about(
            conn,
            tenant,
            &channel,
            actor,
            "channel.paused",
            data.clone(),
        )?;
        notifications::emit(
            conn,
            &Event {
                tenant,
                kind: EventType::ChannelPaused,
                channel: Some(channel),
                data,
            },
        )?;
        Ok(Paused::Paused)
    })
}

/// Resumes a paused channel: active again, its held mail back in the queue, its bounce
/// window started afresh at `now` (the bounces that paused it do not pause it again),
/// audited with `actor`, `channel.resumed` emitted.
pub fn resume(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    actor: AuditActor,
    now: i64,
) -> Result<Resumed, StoreError> {
    write_transaction(conn, |conn| {
        let (status, cause) = locked_status(conn, tenant, channel)?.ok_or(StoreError::NotFound)?;
        if status != ChannelStatus::Paused {
            return Ok(Resumed::NotPaused(status));
        }
        let before: Option<String> = target!(tenant, channel)
            .select(channels::pause_detail)
            .first(conn)?;
        // The bounce window starts over now: what today already counted is set aside.
        let today = day_of(now);
        let counted = channel_stats::total(conn, tenant, channel, today, today)?;
        let baseline = json!({"window_baseline": {
            "day": today,
            "recipients": counted.recipients,
            "hard_bounces": counted.hard_bounces,
        }});
        diesel::update(target!(tenant, channel))
            .set((
                channels::status.eq(ChannelStatus::Active.as_str()),
                channels::status_cause.eq(None::<String>),
                channels::paused_until.eq(None::<i64>),
                channels::pause_detail.eq(baseline.to_string()),
                channels::bounce_window_from.eq(now),
                channels::failure_count.eq(0),
                channels::first_failure_at.eq(None::<i64>),
                channels::status_changed_at.eq(now),
                channels::updated_at.eq(now),
            ))
            .execute(conn)?;
        let released = messages::release_held(
            conn,
            tenant,
            Release::Channel(channel),
            "the channel was resumed",
        )?;
        let was: Value = before
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let data = json!({
            "cause_was": cause,
            "paused": was,
            "released": released,
            "by": actor.to_string(),
        });
        audit::record_about(
            conn,
            tenant,
            &channel,
            actor,
            "channel.resumed",
            data.clone(),
        )?;
        notifications::emit(
            conn,
            &Event {
                tenant,
                kind: EventType::ChannelResumed,
                channel: Some(channel),
                data,
            },
        )?;
        Ok(Resumed::Resumed { released })
    })
}

/// Resumes the channels whose provider block ended by `now` (actor `system`). Returns them.
pub fn resume_ended_blocks(
    conn: &mut DbConnection,
    now: i64,
) -> Result<Vec<ChannelId>, StoreError> {
    let ended: Vec<(String, String)> = channels::table
        .filter(channels::status.eq(ChannelStatus::Paused.as_str()))
        .filter(channels::paused_until.le(now))
        .select((channels::tenant_id, channels::id))
        .limit(100)
        .load(conn)?;
    let mut resumed = Vec::new();
    for (tenant, id) in ended {
        let (tenant, id): (TenantId, ChannelId) = (
            tenant.parse().map_err(StoreError::corrupt)?,
            id.parse().map_err(StoreError::corrupt)?,
        );
        // Another process may have resumed it meanwhile: then it is not paused any more.
        if let Resumed::Resumed { .. } = resume(conn, tenant, id, AuditActor::System, now)? {
            resumed.push(id);
        }
    }
    Ok(resumed)
}

/// The tenant's bounce rule (the defaults when it set none).
pub fn policy(conn: &mut DbConnection, tenant: TenantId) -> Result<BouncePolicy, StoreError> {
    let row: Option<(i64, i64, i64)> = tenant_bounce_pause::table
        .filter(tenant_bounce_pause::tenant_id.eq(tenant.to_string()))
        .select((
            tenant_bounce_pause::threshold_basis_points,
            tenant_bounce_pause::min_sends,
            tenant_bounce_pause::window_days,
        ))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((bp, sends, days)) => BouncePolicy {
            threshold_basis_points: u32::try_from(bp).map_err(StoreError::corrupt)?,
            min_sends: u32::try_from(sends).map_err(StoreError::corrupt)?,
            window_days: u32::try_from(days).map_err(StoreError::corrupt)?,
        },
        None => BouncePolicy::default(),
    })
}

/// Sets the tenant's bounce rule.
pub fn set_policy(
    conn: &mut DbConnection,
    tenant: TenantId,
    policy: &BouncePolicy,
    now: i64,
) -> Result<(), StoreError> {
    let values = (
        tenant_bounce_pause::threshold_basis_points.eq(i64::from(policy.threshold_basis_points)),
        tenant_bounce_pause::min_sends.eq(i64::from(policy.min_sends)),
        tenant_bounce_pause::window_days.eq(i64::from(policy.window_days)),
        tenant_bounce_pause::updated_at.eq(now),
    );
    let updated = diesel::update(
        tenant_bounce_pause::table.filter(tenant_bounce_pause::tenant_id.eq(tenant.to_string())),
    )
    .set(values)
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(tenant_bounce_pause::table)
            .values((
                tenant_bounce_pause::tenant_id.eq(tenant.to_string()),
                values.0,
                values.1,
                values.2,
                values.3,
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A channel's bounce figures under its tenant's rule now (`now`, microseconds): hard-bounced
/// recipients over recipients attempted (accepted + hard-bounced) from the daily counts of
/// the rule's window, which starts afresh on the day of the last resume with what that day
/// held at the resume subtracted. For the pause rule and for the channel's dashboard.
pub fn window_figures(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    now: i64,
) -> Result<(BouncePolicy, BounceFigures), StoreError> {
    let row: Option<(Option<i64>, Option<String>)> = target!(tenant, channel)
        .select((channels::bounce_window_from, channels::pause_detail))
        .first(conn)
        .optional()?;
    let (resumed_at, detail) = row.unwrap_or_default();
    let policy = policy(conn, tenant)?;
    let today = day_of(now);
    let mut first = today - i64::from(policy.window_days.saturating_sub(1));
    let mut baseline = Counts::default();
    if let Some(resumed_at) = resumed_at.map(day_of).filter(|d| *d >= first) {
        first = resumed_at;
        baseline = stored_baseline(detail.as_deref(), resumed_at);
    }
    let total = channel_stats::total(conn, tenant, channel, first, today)?;
    let hard_bounces = (total.hard_bounces - baseline.hard_bounces).max(0);
    let accepted = (total.recipients - baseline.recipients).max(0);
    Ok((
        policy,
        BounceFigures {
            sends: u64::try_from(accepted + hard_bounces).unwrap_or(0),
            hard_bounces: u64::try_from(hard_bounces).unwrap_or(0),
        },
    ))
}

/// Applies the tenant's bounce rule to a channel after outcomes were recorded (same
/// transaction, `window_figures`). Pauses an active or failing channel that crosses it;
/// returns whether it did. Called only for channels that bounced in the batch: a batch
/// without bounces can only lower the rate.
pub fn evaluate_bounces(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    now: i64,
) -> Result<bool, StoreError> {
    let status: Option<String> = target!(tenant, channel)
        .select(channels::status)
        .first(conn)
        .optional()?;
    // The shared pool has no row: the operator's relay is not the tenant's to pause.
    let Some(status) = status else {
        return Ok(false);
    };
    if status != ChannelStatus::Active.as_str() && status != ChannelStatus::Failing.as_str() {
        return Ok(false);
    }
    let (policy, figures) = window_figures(conn, tenant, channel, now)?;
    if !crosses(&policy, figures) {
        return Ok(false);
    }
    let paused = pause(
        conn,
        tenant,
        channel,
        PauseCause::BounceRate,
        None,
        bounce_detail(&policy, figures),
        AuditActor::System,
        now,
    )?;
    Ok(paused == Paused::Paused)
}

/// What the resume day's counts held at the resume, kept in `pause_detail` while active.
fn stored_baseline(detail: Option<&str>, day: i64) -> Counts {
    let detail: Value = detail
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let base = &detail["window_baseline"];
    if base["day"].as_i64() != Some(day) {
        return Counts::default();
    }
    Counts {
        recipients: base["recipients"].as_i64().unwrap_or(0),
        hard_bounces: base["hard_bounces"].as_i64().unwrap_or(0),
        ..Counts::default()
    }
}

/// The figures that go into a bounce pause's detail.
pub fn bounce_detail(policy: &BouncePolicy, figures: BounceFigures) -> Value {
    json!({
        "figures": {
            "sends": figures.sends,
            "hard_bounces": figures.hard_bounces,
            "rate_percent": (figures.rate_percent() * 100.0).round() / 100.0,
            "threshold_percent": policy.threshold_percent(),
            "min_sends": policy.min_sends,
            "window_days": policy.window_days,
        }
    })
}
