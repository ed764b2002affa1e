//! Pacing as people see it: the tenant's sending defaults, and one channel's pacing status
//! (today's count against the day's cap, the ramp, the window). The counting itself is in
//! `quotas`; this reads it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::tenants;
use super::{DbConnection, StoreError, quotas};
use crate::domain::pacing::{Pacing, SendingDefaults, WindowsSpec};
use crate::domain::{SendChannel, TenantId};

/// The tenant's defaults as stored and as the API shows and takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendingDefaultsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day_messages: Option<u32>,
}

impl From<&SendingDefaults> for SendingDefaultsDoc {
    fn from(d: &SendingDefaults) -> Self {
        Self {
            windows: d.windows.as_ref().map(WindowsSpec::from),
            per_day_messages: d.per_day_messages,
        }
    }
}

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(format!("tenant sending_defaults: {e}"))
}

/// The tenant's defaults for channels that set no windows or daily cap of their own.
pub fn tenant_defaults(
    conn: &mut DbConnection,
    tenant: TenantId,
) -> Result<SendingDefaults, StoreError> {
    let stored: Option<String> = tenants::table
        .find(tenant.to_string())
        .select(tenants::sending_defaults)
        .first(conn)?;
    let Some(text) = stored else {
        return Ok(SendingDefaults::default());
    };
    let doc: SendingDefaultsDoc = serde_json::from_str(&text).map_err(corrupt)?;
    Ok(SendingDefaults {
        windows: doc
            .windows
            .map(|w| w.parse("sending_defaults.windows"))
            .transpose()
            .map_err(corrupt)?,
        per_day_messages: doc.per_day_messages,
    })
}

pub fn set_tenant_defaults(
    conn: &mut DbConnection,
    tenant: TenantId,
    defaults: &SendingDefaults,
) -> Result<(), StoreError> {
    let doc = SendingDefaultsDoc::from(defaults);
    let text = (doc != SendingDefaultsDoc::default())
        .then(|| serde_json::to_string(&doc))
        .transpose()
        .map_err(corrupt)?;
    diesel::update(tenants::table.find(tenant.to_string()))
        .set(tenants::sending_defaults.eq(text))
        .execute(conn)?;
    Ok(())
}

/// A channel's pacing now: what a channel page and the dashboard show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PacingStatus {
    /// Messages sent over the rolling 24 h ending now.
    pub today_count: i64,
    /// The day's message cap (`None`: no cap).
    pub day_cap: Option<u32>,
    /// Which limit sets it: `per_day_messages`, `tenant_default` or `warmup`.
    pub day_cap_set_by: Option<String>,
    pub ramp: Option<RampStatus>,
    /// Whether the sending window is open now (always, without windows).
    pub window_open: bool,
    /// `Mon–Fri 09:00–17:30 Europe/Berlin`, when windows apply.
    pub windows: Option<String>,
    /// `channel` or `tenant_default`.
    pub windows_set_by: Option<String>,
    pub next_window_opening: Option<DateTime<Utc>>,
    /// The earliest next send the gap or the spreading allows, when in the future.
    pub next_send_after: Option<DateTime<Utc>>,
    /// What holds the channel now, if anything.
    pub blocked: Option<PacingBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RampStatus {
    /// 1 on the day it started.
    pub day: u32,
    pub today_cap: u32,
    pub start: u32,
    pub step: u32,
    pub target: u32,
    /// `YYYY-MM-DD`.
    pub started_on: String,
    /// The first day at the target, `YYYY-MM-DD`.
    pub ends_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PacingBlock {
    /// `outside_window`, `daily_cap`, `warmup_cap`, `min_gap`, `per_minute`, `per_day_recipients`.
    pub limit: String,
    pub until: DateTime<Utc>,
    pub detail: String,
}

/// The pacing status of `channel` at `now`, with the tenant's `defaults`.
pub fn status(
    conn: &mut DbConnection,
    channel: &SendChannel,
    defaults: &SendingDefaults,
    now: DateTime<Utc>,
) -> Result<PacingStatus, StoreError> {
    let limits = &channel.spec.limits;
    let pacing = Pacing::of(limits, defaults);
    let micros = now.timestamp_micros();
    let today_count = quotas::day_messages(conn, channel.id, micros)?;
    let cap = pacing.day_cap(now);
    let ramp = pacing.warmup.map(|w| {
        let day = w.day(pacing.today(now));
        RampStatus {
            day: day.day,
            today_cap: day.cap,
            start: w.start,
            step: w.step,
            target: w.target,
            started_on: w.started_on.format("%Y-%m-%d").to_string(),
            ends_on: day.ends_on.format("%Y-%m-%d").to_string(),
        }
    });
    let next_send_after = quotas::next_send_after(conn, &channel.id.to_string())?
        .filter(|at| *at > micros)
        .and_then(DateTime::from_timestamp_micros);
    let blocked = quotas::blocked_until(conn, channel.id, limits, defaults, 1, micros)?.map(
        |(until, limit)| {
            let until = DateTime::from_timestamp_micros(until).unwrap_or_default();
            PacingBlock {
                limit: limit.code().to_owned(),
                until,
                detail: describe_block(&pacing, limit, until),
            }
        },
    );
    Ok(PacingStatus {
        today_count,
        day_cap: cap.map(|c| c.0),
        day_cap_set_by: cap.map(|c| c.1.as_str().to_owned()),
        ramp,
        window_open: pacing.windows.is_none_or(|w| w.is_open(now)),
        windows: pacing.windows.map(|w| w.describe()),
        windows_set_by: pacing.windows.map(|_| {
            if limits.windows.is_some() {
                "channel"
            } else {
                "tenant_default"
            }
            .to_owned()
        }),
        next_window_opening: pacing.windows.and_then(|w| w.next_opening(now)),
        next_send_after,
        blocked,
    })
}

/// The sentence for a block, naming the window in the rep's zone when it is the window.
pub fn describe_block(
    pacing: &Pacing<'_>,
    limit: crate::domain::pacing::PaceLimit,
    until: DateTime<Utc>,
) -> String {
    match (limit, pacing.windows) {
        (crate::domain::pacing::PaceLimit::OutsideWindow, Some(w)) => w.describe_wait(until),
        _ => limit.describe(until),
    }
}
