//! The DNS health of the domains a channel carries, as its last check found it: one row per
//! tenant, channel and domain (the shared pool's fixed id stands for it in every tenant).
//! Every query takes the tenant.

use diesel::prelude::*;

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
        diesel::delete(
            rows::table
                .filter(rows::tenant_id.eq(tenant.to_string()))
                .filter(rows::channel_id.eq(channel.to_string())),
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
    write_transaction(conn, |conn| {
        diesel::delete(
            rows::table
                .filter(rows::tenant_id.eq(tenant.to_string()))
                .filter(rows::channel_id.eq(channel.to_string()))
                .filter(rows::domain.eq(&result.domain)),
        )
        .execute(conn)?;
        put(conn, tenant, channel, result)
    })
}

fn put(
    conn: &mut DbConnection,
    tenant: TenantId,
    channel: ChannelId,
    r: &ChannelDomainHealth,
) -> Result<(), StoreError> {
    let checks = serde_json::to_string(&r.checks).map_err(StoreError::corrupt)?;
    diesel::insert_into(rows::table)
        .values((
            rows::tenant_id.eq(tenant.to_string()),
            rows::channel_id.eq(channel.to_string()),
            rows::domain.eq(&r.domain),
            rows::checks.eq(checks),
            rows::checked_at.eq(r.checked_at.timestamp_micros()),
        ))
        .execute(conn)?;
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
