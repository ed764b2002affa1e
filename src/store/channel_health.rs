//! The DNS health of the domains a channel carries, as its last check found it: one row per
//! tenant, channel and domain (the shared pool's fixed id stands for it in every tenant).
//! Every query takes the tenant.

use diesel::prelude::*;

use super::connection::each_backend;
use super::schema::channel_domain_health as rows;
use super::time::from_micros;
use super::{DbConnection, StoreError, write_transaction};
use crate::domain::channel_dns::ChannelDomainHealth;
use crate::domain::{ChannelId, TenantId};

/// Replaces the channel's results with `results`: domains it no longer carries lose theirs.
pub fn replace(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    results: &[ChannelDomainHealth],
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let kept: Vec<&str> = results.iter().map(|r| r.domain.as_str()).collect();
        diesel::delete(
            rows::table
                .filter(rows::tenant_id.eq(tenant.to_string()))
                .filter(rows::channel_id.eq(channel.to_string()))
                .filter(rows::domain.ne_all(kept)),
        )
        .execute(conn)?;
        for r in results {
            put(conn, tenant, channel, r)?;
        }
        Ok(())
    })
}

/// Records the result of one domain of the channel (the hourly pass, domain by domain).
pub fn record(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    result: &ChannelDomainHealth,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| put(conn, tenant, channel, result))
}

/// Writes one domain's result over an older one. An upsert, not a delete and an insert:
/// two checks of one channel at once (the check made on creation, a "Check now", the
/// hourly pass) would otherwise both insert, and on PostgreSQL the second one fails.
fn put(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    r: &ChannelDomainHealth,
) -> Result<(), StoreError> {
    let checks = serde_json::to_string(&r.checks).map_err(StoreError::corrupt)?;
    let checked_at = r.checked_at.timestamp_micros();
    // A check that started earlier and finished later does not hide a newer result.
    let newer: i64 = rows::table
        .filter(rows::tenant_id.eq(tenant.to_string()))
        .filter(rows::channel_id.eq(channel.to_string()))
        .filter(rows::domain.eq(&r.domain))
        .filter(rows::checked_at.gt(checked_at))
        .count()
        .get_result(conn)?;
    if newer > 0 {
        return Ok(());
    }
    each_backend!(conn, c => diesel::insert_into(rows::table)
        .values((
            rows::tenant_id.eq(tenant.to_string()),
            rows::channel_id.eq(channel.to_string()),
            rows::domain.eq(&r.domain),
            rows::checks.eq(&checks),
            rows::checked_at.eq(checked_at),
        ))
        .on_conflict((rows::tenant_id, rows::channel_id, rows::domain))
        .do_update()
        .set((rows::checks.eq(&checks), rows::checked_at.eq(checked_at)))
        .execute(c))?;
    Ok(())
}

/// The channel's last results, by domain name.
pub fn of_channel(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
) -> Result<Vec<ChannelDomainHealth>, StoreError> {
    let found: Vec<(String, String, i64)> = rows::table
        .filter(rows::tenant_id.eq(tenant.to_string()))
        .filter(rows::channel_id.eq(channel.to_string()))
        .order(rows::domain)
        .select((rows::domain, rows::checks, rows::checked_at))
        .load(conn)?;
    found
        .into_iter()
        .map(|(domain, checks, at)| {
            Ok(ChannelDomainHealth {
                domain,
                checks: serde_json::from_str(&checks).map_err(StoreError::corrupt)?,
                checked_at: from_micros(at)?,
            })
        })
        .collect()
}
