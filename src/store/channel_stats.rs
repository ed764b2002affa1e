//! What each channel did per UTC day: the dashboard's 30 days and the bounce rate. Counted
//! where outcomes are recorded, in the same transaction, one upsert per channel and batch,
//! so the figures agree with the messages and cost no write per message.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::connection::each_backend;
use super::schema::channel_daily_stats as stats;
use super::{DbConnection, StoreError};
use crate::domain::{ChannelId, TenantId};

const DAY_MICROS: i64 = 86_400_000_000;

/// The count columns in the order of `Counts`' fields, to select into it.
pub(super) const COUNTS: (
    stats::sent,
    stats::deferred,
    stats::held,
    stats::failed,
    stats::recipients,
    stats::hard_bounces,
) = (
    stats::sent,
    stats::deferred,
    stats::held,
    stats::failed,
    stats::recipients,
    stats::hard_bounces,
);

/// The UTC day (days since 1970-01-01) of a time in microseconds.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

/// One channel's figures for one day (or a sum of days); loaded from `COUNTS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Queryable)]
pub struct Counts {
    /// Messages sent (to all or some of their recipients).
    pub sent: i64,
    /// Deferrals: a message deferred twice counts twice.
    pub deferred: i64,
    /// Messages held.
    pub held: i64,
    /// Messages failed for good.
    pub failed: i64,
    /// Recipients that accepted a message.
    pub recipients: i64,
    /// Recipients refused for good as unknown.
    pub hard_bounces: i64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    pub fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.deferred += other.deferred;
        self.held += other.held;
        self.failed += other.failed;
        self.recipients += other.recipients;
        self.hard_bounces += other.hard_bounces;
    }
}

/// A day of a channel, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStats {
    pub channel: ChannelId,
    pub day: i64,
    pub counts: Counts,
}

/// Adds `counts` to each (tenant, channel)'s row of `day`. Keys are visited in order, so two
/// recorders touching the same rows take their locks in the same order.
pub fn add(
    conn: &mut DbConnection,
    day: i64,
    counts: &BTreeMap<(TenantId, ChannelId), Counts>,
) -> Result<(), StoreError> {
    for ((tenant, channel), c) in counts.iter().filter(|(_, c)| !c.is_empty()) {
        let row = (
            stats::tenant_id.eq(tenant.to_string()),
            stats::channel_id.eq(channel.to_string()),
            stats::day.eq(day),
            stats::sent.eq(c.sent),
            stats::deferred.eq(c.deferred),
            stats::held.eq(c.held),
            stats::failed.eq(c.failed),
            stats::recipients.eq(c.recipients),
            stats::hard_bounces.eq(c.hard_bounces),
        );
        each_backend!(conn, c => diesel::insert_into(stats::table)
            .values(row)
            .on_conflict((stats::tenant_id, stats::channel_id, stats::day))
            .do_update()
            .set((
                stats::sent.eq(stats::sent + excluded(stats::sent)),
                stats::deferred.eq(stats::deferred + excluded(stats::deferred)),
                stats::held.eq(stats::held + excluded(stats::held)),
                stats::failed.eq(stats::failed + excluded(stats::failed)),
                stats::recipients.eq(stats::recipients + excluded(stats::recipients)),
                stats::hard_bounces.eq(stats::hard_bounces + excluded(stats::hard_bounces)),
            ))
            .execute(c))?;
    }
    Ok(())
}

/// The stored days from `from_day` to `to_day` (both included) of one channel, or of every
/// channel of the tenant; days without a row are absent (nothing happened).
pub fn days(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: Option<ChannelId>,
    from_day: i64,
    to_day: i64,
) -> Result<Vec<DayStats>, StoreError> {
    let tenant = tenant.to_string();
    let channel = channel.map(|c| c.to_string());
    let rows: Vec<(String, i64, Counts)> = each_backend!(conn, c => {
        let mut query = stats::table
            .filter(stats::tenant_id.eq(&tenant))
            .filter(stats::day.between(from_day, to_day))
            .into_boxed();
        if let Some(channel) = &channel {
            query = query.filter(stats::channel_id.eq(channel));
        }
        query
            .order((stats::channel_id, stats::day))
            .select((stats::channel_id, stats::day, COUNTS))
            .load(c)
    })?;
    rows.into_iter()
        .map(|(channel, day, counts)| {
            Ok(DayStats {
                channel: channel.parse().map_err(StoreError::corrupt)?,
                day,
                counts,
            })
        })
        .collect()
}

/// One channel's figures summed over `from_day..=to_day` (the bounce rate's window).
pub fn total(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    from_day: i64,
    to_day: i64,
) -> Result<Counts, StoreError> {
    let mut sum = Counts::default();
    for d in days(conn, tenant, Some(channel), from_day, to_day)? {
        sum.add(&d.counts);
    }
    Ok(sum)
}
