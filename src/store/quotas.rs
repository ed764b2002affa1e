//! Channel quotas, counted in the database so that every process on it shares them: the
//! messages of the current minute (`per_minute`) and the recipients of the last 1,440 minutes
//! (`per_day_recipients`, a rolling day as providers count it). A reservation is one short
//! transaction that serialises on the channel, so two workers never both take the last unit.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::connection::each_backend;
use super::notifications::{self, Event};
use super::schema::channel_usage;
use super::{DbConnection, StoreError, write_transaction};
use crate::domain::{ChannelId, ChannelLimits, EventType, TenantId};
use serde_json::json;

const MINUTE: i64 = 60_000_000;
const DAY_MINUTES: i64 = 1440;

fn minute_of(micros: i64) -> i64 {
    micros.div_euclid(MINUTE)
}

fn has_quota(limits: &ChannelLimits) -> bool {
    limits.per_minute.is_some() || limits.per_day_recipients.is_some()
}

/// When the channel can take a message with `recipients` recipients, if not now (in
/// microseconds). Reads only.
pub fn blocked_until(
    conn: &mut DbConnection,
    channel: ChannelId,
    limits: &ChannelLimits,
    recipients: i64,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    if !has_quota(limits) {
        return Ok(None);
    }
    let current = minute_of(now);
    let rows: Vec<(i64, i64, i64)> = channel_usage::table
        .filter(channel_usage::channel_id.eq(channel.to_string()))
        .filter(channel_usage::minute.gt(current - DAY_MINUTES))
        .order(channel_usage::minute)
        .select((
            channel_usage::minute,
            channel_usage::messages,
            channel_usage::recipients,
        ))
        .load(conn)?;
    Ok(until_free(&rows, current, limits, recipients))
}

/// The quota arithmetic over (minute, messages, recipients) rows of the last day.
fn until_free(
    rows: &[(i64, i64, i64)],
    current: i64,
    limits: &ChannelLimits,
    recipients: i64,
) -> Option<i64> {
    let mut until = None;
    if let Some(per_minute) = limits.per_minute {
        let used = rows.iter().find(|r| r.0 == current).map_or(0, |r| r.1);
        if used + 1 > i64::from(per_minute) {
            until = Some((current + 1) * MINUTE);
        }
    }
    if let Some(per_day) = limits.per_day_recipients.map(i64::from)
        // A message larger than the whole allowance would wait forever; the provider decides.
        && recipients <= per_day
    {
        let total: i64 = rows.iter().map(|r| r.2).sum();
        let mut excess = total + recipients - per_day;
        if excess > 0 {
            // The minute at which enough of the oldest recipients leave the rolling day.
            let freed = rows.iter().find_map(|r| {
                excess -= r.2;
                (excess <= 0).then_some((r.0 + DAY_MINUTES) * MINUTE)
            });
            until = until.max(freed);
        }
    }
    until
}

/// Takes one message with `recipients` recipients from the channel's quota, or says when
/// there will be room. Channels without limits always have room and cost nothing.
pub fn reserve(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    limits: &ChannelLimits,
    recipients: i64,
    now: i64,
) -> Result<Result<(), i64>, StoreError> {
    Ok(
        match reserve_many(conn, tenant, channel, limits, &[recipients], now)? {
            (1, _) => Ok(()),
            (_, until) => Err(until.unwrap_or(now)),
        },
    )
}

/// Takes quota for messages in order (`recipients` of each), as many as fit, in one
/// transaction: how many fitted and, when not all did, when there will be room again. A
/// reservation that crosses 90 % of a limit raises `quota.near_limit`, once per channel,
/// limit and period (the hour for `per_minute`, the day for `per_day_recipients`).
pub fn reserve_many(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    limits: &ChannelLimits,
    recipients: &[i64],
    now: i64,
) -> Result<(usize, Option<i64>), StoreError> {
    if !has_quota(limits) || recipients.is_empty() {
        return Ok((recipients.len(), None));
    }
    let current = minute_of(now);
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
        let mut rows: Vec<(i64, i64, i64)> = channel_usage::table
            .filter(channel_usage::channel_id.eq(&id))
            .filter(channel_usage::minute.gt(current - DAY_MINUTES))
            .order(channel_usage::minute)
            .select((
                channel_usage::minute,
                channel_usage::messages,
                channel_usage::recipients,
            ))
            .load(conn)?;
        let before = usage(&rows, current);
        let (mut taken, mut taken_recipients, mut until) = (0, 0, None);
        for &n in recipients {
            if let Some(at) = until_free(&rows, current, limits, n) {
                until = Some(at);
                break;
            }
            if let Some(row) = rows.iter_mut().find(|r| r.0 == current) {
                row.1 += 1;
                row.2 += n;
            }
            taken += 1;
            taken_recipients += n;
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

    fn limits(per_minute: Option<u32>, per_day: Option<u32>) -> ChannelLimits {
        ChannelLimits {
            per_minute,
            per_day_recipients: per_day,
            recipients_per_message: None,
        }
    }

    #[test]
    fn the_minute_quota_frees_at_the_next_minute() {
        let rows = [(100, 5, 5)];
        assert_eq!(
            until_free(&rows, 100, &limits(Some(5), None), 1),
            Some(101 * MINUTE)
        );
        assert_eq!(until_free(&rows, 100, &limits(Some(6), None), 1), None);
        assert_eq!(until_free(&rows, 101, &limits(Some(5), None), 1), None);
    }

    #[test]
    fn the_day_quota_rolls_and_frees_when_the_oldest_recipients_leave() {
        // 300 recipients at minute 10, 200 at minute 500: a 500-a-day channel is full.
        let rows = [(10, 3, 300), (500, 2, 200)];
        let day = limits(None, Some(500));
        assert_eq!(
            until_free(&rows, 600, &day, 1),
            Some((10 + DAY_MINUTES) * MINUTE)
        );
        // 250 more on a 700-a-day channel: the oldest minute leaving is enough.
        assert_eq!(
            until_free(&rows, 600, &limits(None, Some(700)), 250),
            Some((10 + DAY_MINUTES) * MINUTE)
        );
        // 450 more on a 600-a-day channel: both old minutes must leave.
        assert_eq!(
            until_free(&rows, 600, &limits(None, Some(600)), 450),
            Some((500 + DAY_MINUTES) * MINUTE)
        );
        assert_eq!(until_free(&rows, 600, &limits(None, Some(501)), 1), None);
        // Larger than the whole allowance: not held back forever.
        assert_eq!(until_free(&rows, 600, &day, 501), None);
    }

    #[test]
    fn both_quotas_wait_for_the_later_of_the_two() {
        let rows = [(10, 1, 500), (600, 9, 0)];
        let both = limits(Some(9), Some(500));
        assert_eq!(
            until_free(&rows, 600, &both, 1),
            Some((10 + DAY_MINUTES) * MINUTE)
        );
    }
}
