//! Channel quotas, counted in the database so that every process on it shares them: the
//! messages of the current minute (`per_minute`) and the recipients of the last 1,440 minutes
//! (`per_day_recipients`, a rolling day as providers count it). A reservation is one short
//! transaction that serialises on the channel, so two workers never both take the last unit.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::connection::each_backend;
use super::notifications::{self, Event};
use super::schema::{channel_pacing, channel_usage};
use super::{DbConnection, StoreError, write_transaction};
use crate::domain::pacing::{CapSource, PaceLimit, Pacing, SendingDefaults};
use crate::domain::{ChannelId, ChannelLimits, EventType, TenantId};
use chrono::DateTime;
use serde_json::json;

const MINUTE: i64 = 60_000_000;
const DAY_MINUTES: i64 = 1440;

fn minute_of(micros: i64) -> i64 {
    micros.div_euclid(MINUTE)
}

fn has_quota(limits: &ChannelLimits, pacing: &Pacing<'_>) -> bool {
    limits.per_minute.is_some() || limits.per_day_recipients.is_some() || pacing.is_paced()
}

/// What blocks a channel: which limit, and when (microseconds) it lets go.
pub type Block = (i64, PaceLimit);

/// The later of two blocks: the one that binds.
fn later(a: Option<Block>, b: Option<Block>) -> Option<Block> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 > x.0 { y } else { x }),
        (x, y) => x.or(y),
    }
}

/// The usage rows of the last day, oldest first: (minute, messages, recipients).
fn day_rows(
    conn: &mut DbConnection,
    id: &str,
    current: i64,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    Ok(channel_usage::table
        .filter(channel_usage::channel_id.eq(id))
        .filter(channel_usage::minute.gt(current - DAY_MINUTES))
        .order(channel_usage::minute)
        .select((
            channel_usage::minute,
            channel_usage::messages,
            channel_usage::recipients,
        ))
        .load(conn)?)
}

/// The earliest instant the channel may send again (its jittered gap or spread slot).
pub(crate) fn next_send_after(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(channel_pacing::table
        .find(id)
        .select(channel_pacing::next_send_after)
        .first(conn)
        .optional()?)
}

/// When the channel can take a message with `recipients` recipients, if not now (in
/// microseconds), and which limit says so. Reads only.
pub fn blocked_until(
    conn: &mut DbConnection,
    channel: ChannelId,
    limits: &ChannelLimits,
    defaults: &SendingDefaults,
    recipients: i64,
    now: i64,
) -> Result<Option<Block>, StoreError> {
    let pacing = Pacing::of(limits, defaults);
    if !has_quota(limits, &pacing) {
        return Ok(None);
    }
    let current = minute_of(now);
    let id = channel.to_string();
    let rows = day_rows(conn, &id, current)?;
    let slot = next_send_after(conn, &id)?;
    Ok(blocked(&rows, now, limits, &pacing, slot, recipients))
}

/// Everything that keeps the channel from sending a message now, the binding block first:
/// the window, the gap since the last send, then the counted quotas.
fn blocked(
    rows: &[(i64, i64, i64)],
    now: i64,
    limits: &ChannelLimits,
    pacing: &Pacing<'_>,
    slot: Option<i64>,
    recipients: i64,
) -> Option<Block> {
    let at = DateTime::from_timestamp_micros(now).unwrap_or_default();
    let window = pacing
        .closed_until(at)
        .map(|opening| (opening.timestamp_micros(), PaceLimit::OutsideWindow));
    let gap = slot.filter(|s| *s > now).map(|s| (s, PaceLimit::MinGap));
    let caps = Caps {
        per_minute: limits.per_minute,
        per_day_recipients: limits.per_day_recipients,
        day_cap: pacing.day_cap(at),
    };
    later(
        later(window, gap),
        until_free(rows, minute_of(now), &caps, recipients),
    )
}

/// The counted limits: per minute, recipients and messages per rolling day.
struct Caps {
    per_minute: Option<u32>,
    per_day_recipients: Option<u32>,
    day_cap: Option<(u32, CapSource)>,
}

/// The minute at which enough of the oldest usage leaves the rolling day for `excess` to
/// fit, counting the column `count` picks.
fn frees_at(
    rows: &[(i64, i64, i64)],
    mut excess: i64,
    count: impl Fn(&(i64, i64, i64)) -> i64,
) -> Option<i64> {
    rows.iter().find_map(|r| {
        excess -= count(r);
        (excess <= 0).then_some((r.0 + DAY_MINUTES) * MINUTE)
    })
}

/// The quota arithmetic over (minute, messages, recipients) rows of the last day.
fn until_free(
    rows: &[(i64, i64, i64)],
    current: i64,
    caps: &Caps,
    recipients: i64,
) -> Option<Block> {
    let mut until = None;
    if let Some(per_minute) = caps.per_minute {
        let used = rows.iter().find(|r| r.0 == current).map_or(0, |r| r.1);
        if used + 1 > i64::from(per_minute) {
            until = Some(((current + 1) * MINUTE, PaceLimit::PerMinute));
        }
    }
    if let Some(per_day) = caps.per_day_recipients.map(i64::from)
        // A message larger than the whole allowance would wait forever; the provider decides.
        && recipients <= per_day
    {
        let total: i64 = rows.iter().map(|r| r.2).sum();
        let excess = total + recipients - per_day;
        if excess > 0 {
            let freed = frees_at(rows, excess, |r| r.2).map(|at| (at, PaceLimit::PerDayRecipients));
            until = later(until, freed);
        }
    }
    if let Some((cap, source)) = caps.day_cap {
        let total: i64 = rows.iter().map(|r| r.1).sum();
        let excess = total + 1 - i64::from(cap);
        if excess > 0 {
            let freed = frees_at(rows, excess, |r| r.1).map(|at| (at, source.limit()));
            until = later(until, freed);
        }
    }
    until
}

/// Takes one message with `recipients` recipients from the channel's quota, or says when
/// there will be room and which limit. Channels without limits always have room.
pub fn reserve(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    limits: &ChannelLimits,
    defaults: &SendingDefaults,
    recipients: i64,
    now: i64,
) -> Result<Result<(), Block>, StoreError> {
    Ok(
        match reserve_many(conn, tenant, channel, limits, defaults, &[recipients], now)? {
            (1, _) => Ok(()),
            (_, until) => Err(until.unwrap_or((now, PaceLimit::PerMinute))),
        },
    )
}

/// Takes quota for messages in order (`recipients` of each), as many as fit, in one
/// transaction: how many fitted and, when not all did, when there will be room again and
/// which limit blocks. A channel with a gap or spread slot takes one message and moves its
/// slot in the same transaction. A reservation that crosses 90 % of a limit raises
/// `quota.near_limit`, once per channel, limit and period (the hour for `per_minute`, the day
/// for `per_day_recipients`).
pub fn reserve_many(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    limits: &ChannelLimits,
    defaults: &SendingDefaults,
    recipients: &[i64],
    now: i64,
) -> Result<(usize, Option<Block>), StoreError> {
    let pacing = Pacing::of(limits, defaults);
    if !has_quota(limits, &pacing) || recipients.is_empty() {
        return Ok((recipients.len(), None));
    }
    let current = minute_of(now);
    let at = DateTime::from_timestamp_micros(now).unwrap_or_default();
    let id = channel.to_string();
    write_transaction(conn, |conn| {
        // The row must exist for the increment below (SQLite's BEGIN IMMEDIATE already
        // holds the write lock, so the counts cannot go stale there).
        each_backend!(conn, c => diesel::insert_into(channel_usage::table)
            .values((
                channel_usage::channel_id.eq(&id),
                channel_usage::minute.eq(current),
                channel_usage::messages.eq(0),
                channel_usage::recipients.eq(0),
            ))
            .on_conflict((channel_usage::channel_id, channel_usage::minute))
            .do_nothing()
            .execute(c))?;
        // On PostgreSQL, reservations for one channel queue on its row until this commits.
        if let DbConnection::Postgresql(c) = conn {
            diesel::sql_query("SELECT id FROM channels WHERE id = $1 FOR UPDATE")
                .bind::<Text, _>(&id)
                .execute(c)?;
        }
        let mut rows = day_rows(conn, &id, current)?;
        let mut slot = next_send_after(conn, &id)?;
        let slot_before = slot;
        let before = usage(&rows, current);
        let (mut taken, mut taken_recipients, mut until) = (0, 0, None);
        for &n in recipients {
            if let Some(block) = blocked(&rows, now, limits, &pacing, slot, n) {
                until = Some(block);
                break;
            }
            if let Some(row) = rows.iter_mut().find(|r| r.0 == current) {
                row.1 += 1;
                row.2 += n;
            }
            taken += 1;
            taken_recipients += n;
            if let Some(next) = pacing.next_slot(at, &mut rand::rng()) {
                slot = Some(next.timestamp_micros());
            }
        }
        if slot != slot_before
            && let Some(next) = slot
        {
            each_backend!(conn, c => diesel::insert_into(channel_pacing::table)
                .values((
                    channel_pacing::channel_id.eq(&id),
                    channel_pacing::next_send_after.eq(next),
                ))
                .on_conflict(channel_pacing::channel_id)
                .do_update()
                .set(channel_pacing::next_send_after.eq(next))
                .execute(c))?;
        }
        if taken > 0 {
            diesel::update(
                channel_usage::table
                    .filter(channel_usage::channel_id.eq(&id))
                    .filter(channel_usage::minute.eq(current)),
            )
            .set((
                channel_usage::messages.eq(channel_usage::messages + taken as i64),
                channel_usage::recipients.eq(channel_usage::recipients + taken_recipients),
            ))
            .execute(conn)?;
            let after = usage(&rows, current);
            for (limit, max, used_before, used_after, period) in [
                (
                    "per_minute",
                    limits.per_minute,
                    before.0,
                    after.0,
                    current / 60,
                ),
                (
                    "per_day_recipients",
                    limits.per_day_recipients,
                    before.1,
                    after.1,
                    current / DAY_MINUTES,
                ),
            ] {
                let Some(max) = max.map(i64::from) else {
                    continue;
                };
                // 90 %, rounded up: a limit of 10 warns at the 9th message.
                let threshold = (max * 9 + 9) / 10;
                if used_before < threshold && used_after >= threshold {
                    notifications::emit_once(
                        conn,
                        &format!("quota:{channel}:{limit}:{period}"),
                        &Event {
                            tenant,
                            kind: EventType::QuotaNearLimit,
                            channel: Some(channel),
                            data: json!({"limit": limit, "max": max, "used": used_after, "threshold_percent": 90}),
                        },
                    )?;
                }
            }
        }
        Ok((taken, until))
    })
}

/// Messages over the rolling day ending at `now`: the count a daily cap is held against.
pub fn day_messages(
    conn: &mut DbConnection,
    channel: ChannelId,
    now: i64,
) -> Result<i64, StoreError> {
    let rows = day_rows(conn, &channel.to_string(), minute_of(now))?;
    Ok(rows.iter().map(|r| r.1).sum())
}

/// Messages this minute and recipients over the rolling day, from the loaded rows.
fn usage(rows: &[(i64, i64, i64)], current: i64) -> (i64, i64) {
    (
        rows.iter().find(|r| r.0 == current).map_or(0, |r| r.1),
        rows.iter().map(|r| r.2).sum(),
    )
}

/// Forgets usage older than a day (nothing reads it).
pub fn prune(conn: &mut DbConnection, now: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        channel_usage::table.filter(channel_usage::minute.le(minute_of(now) - DAY_MINUTES)),
    )
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: Option<u32>, per_day: Option<u32>) -> Caps {
        Caps {
            per_minute,
            per_day_recipients: per_day,
            day_cap: None,
        }
    }

    fn until(rows: &[(i64, i64, i64)], current: i64, caps: &Caps, n: i64) -> Option<i64> {
        until_free(rows, current, caps, n).map(|b| b.0)
    }

    #[test]
    fn the_minute_quota_frees_at_the_next_minute() {
        let rows = [(100, 5, 5)];
        assert_eq!(
            until_free(&rows, 100, &limits(Some(5), None), 1),
            Some((101 * MINUTE, PaceLimit::PerMinute))
        );
        assert_eq!(until(&rows, 100, &limits(Some(6), None), 1), None);
        assert_eq!(until(&rows, 101, &limits(Some(5), None), 1), None);
    }

    #[test]
    fn the_day_quota_rolls_and_frees_when_the_oldest_recipients_leave() {
        // 300 recipients at minute 10, 200 at minute 500: a 500-a-day channel is full.
        let rows = [(10, 3, 300), (500, 2, 200)];
        let day = limits(None, Some(500));
        assert_eq!(
            until_free(&rows, 600, &day, 1),
            Some(((10 + DAY_MINUTES) * MINUTE, PaceLimit::PerDayRecipients))
        );
        // 250 more on a 700-a-day channel: the oldest minute leaving is enough.
        assert_eq!(
            until(&rows, 600, &limits(None, Some(700)), 250),
            Some((10 + DAY_MINUTES) * MINUTE)
        );
        // 450 more on a 600-a-day channel: both old minutes must leave.
        assert_eq!(
            until(&rows, 600, &limits(None, Some(600)), 450),
            Some((500 + DAY_MINUTES) * MINUTE)
        );
        assert_eq!(until(&rows, 600, &limits(None, Some(501)), 1), None);
        // Larger than the whole allowance: not held back forever.
        assert_eq!(until(&rows, 600, &day, 501), None);
    }

    #[test]
    fn both_quotas_wait_for_the_later_of_the_two() {
        let rows = [(10, 1, 500), (600, 9, 0)];
        let both = limits(Some(9), Some(500));
        assert_eq!(
            until_free(&rows, 600, &both, 1),
            Some(((10 + DAY_MINUTES) * MINUTE, PaceLimit::PerDayRecipients))
        );
    }

    #[test]
    fn the_daily_cap_counts_messages_over_the_rolling_day_and_names_its_source() {
        // 12 messages at minute 10, 8 at minute 900: 20 in the rolling day.
        let rows = [(10, 12, 40), (900, 8, 8)];
        let ramp = Caps {
            day_cap: Some((20, CapSource::Warmup)),
            ..limits(None, None)
        };
        assert_eq!(
            until_free(&rows, 1000, &ramp, 1),
            Some(((10 + DAY_MINUTES) * MINUTE, PaceLimit::WarmupCap)),
            "the 21st waits for the oldest minute to leave the day"
        );
        let cap = Caps {
            day_cap: Some((21, CapSource::Channel)),
            ..limits(None, None)
        };
        assert_eq!(until(&rows, 1000, &cap, 1), None);
        // Once minute 10 has left the rolling day there is room again.
        assert_eq!(until(&rows[1..], 10 + DAY_MINUTES, &ramp, 1), None);
        let tenant = Caps {
            day_cap: Some((5, CapSource::TenantDefault)),
            ..limits(None, None)
        };
        assert_eq!(
            until_free(&rows, 1000, &tenant, 1),
            Some(((900 + DAY_MINUTES) * MINUTE, PaceLimit::DailyCap)),
            "16 over a cap of 5: both minutes must leave"
        );
    }

    /// Random usage against random caps: whenever the arithmetic says "room", the counts are
    /// under every cap; when it says "wait", they are not, and at the until they are.
    #[test]
    fn random_usage_agrees_with_the_caps() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(4_000);
        for case in 0..4_000 {
            let current = 5_000;
            let mut rows: Vec<(i64, i64, i64)> = (0..rng.random_range(0..6))
                .map(|_| {
                    let m = rng.random_range(0..5);
                    (
                        current - rng.random_range(0..DAY_MINUTES),
                        m,
                        m * rng.random_range(1..4),
                    )
                })
                .collect();
            rows.sort();
            rows.dedup_by_key(|r| r.0);
            let caps = Caps {
                per_minute: None,
                per_day_recipients: rng.random_bool(0.5).then(|| rng.random_range(1..40)),
                day_cap: rng
                    .random_bool(0.7)
                    .then(|| (rng.random_range(1..20), CapSource::Channel)),
            };
            let n = rng.random_range(1..4);
            let fits = |rows: &[(i64, i64, i64)]| {
                let (m, r): (i64, i64) = (
                    rows.iter().map(|r| r.1).sum(),
                    rows.iter().map(|r| r.2).sum(),
                );
                caps.day_cap.is_none_or(|c| m < i64::from(c.0))
                    && caps
                        .per_day_recipients
                        .is_none_or(|c| n > i64::from(c) || r + n <= i64::from(c))
            };
            match until_free(&rows, current, &caps, n) {
                None => assert!(fits(&rows), "case {case}"),
                Some((at, _)) => {
                    assert!(!fits(&rows), "case {case}");
                    let minute = at / MINUTE;
                    let left: Vec<_> = rows
                        .iter()
                        .copied()
                        .filter(|r| r.0 > minute - DAY_MINUTES)
                        .collect();
                    assert!(fits(&left), "case {case}: room at the until");
                    assert_eq!(until_free(&left, minute, &caps, n), None, "case {case}");
                }
            }
        }
    }
}
