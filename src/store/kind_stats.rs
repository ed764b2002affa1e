//! One day's figures of every channel of every tenant, summed by channel kind: what
//! `/metrics` reports next to the per-process counters, read from the daily counters so that
//! every instance reports the same shared figures. Kind, not channel: a label per channel
//! would grow without bound.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;

use super::channel_stats::{COUNTS, Counts};
use super::schema::{channel_daily_stats as stats, channels};
use super::{DbConnection, StoreError};
use crate::domain::ChannelId;

/// The kind a counter row belongs to when its channel is gone (its history stays).
pub const DELETED: &str = "deleted";

/// `day`'s figures (days since 1970-01-01 UTC) by channel kind (`smtp`, `gmail`,
/// `microsoft`, `shared_pool`, or `deleted`), kinds in name order.
pub fn day_by_kind(conn: &mut DbConnection, day: i64) -> Result<Vec<(String, Counts)>, StoreError> {
    let rows: Vec<(String, Counts)> = stats::table
        .filter(stats::day.eq(day))
        .select((stats::channel_id, COUNTS))
        .load(conn)?;
    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    let kinds: HashMap<String, String> = channels::table
        .filter(channels::id.eq_any(&ids))
        .select((channels::id, channels::kind))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let shared_pool = ChannelId::shared_pool().to_string();
    let mut by_kind: BTreeMap<String, Counts> = BTreeMap::new();
    for (channel, counts) in &rows {
        let kind = match kinds.get(channel) {
            Some(kind) => kind.clone(),
            None if *channel == shared_pool => "shared_pool".to_owned(),
            None => DELETED.to_owned(),
        };
        by_kind.entry(kind).or_default().add(counts);
    }
    Ok(by_kind.into_iter().collect())
}
