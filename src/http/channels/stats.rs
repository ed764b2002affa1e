//! What a channel did per day: `GET /v1/channels/{id}/stats`, and the loaders the
//! dashboard pages share with it. Whoever may see a channel may see its figures; every day of
//! the span is present, zeros included.

use std::collections::HashMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::visible_one;
use crate::domain::daily_stats::{
    DEFAULT_DAYS, DayCounts, DayFigures, DaySpan, MAX_DAYS, date_of, totals,
};
use crate::domain::{ChannelId, SendChannel, TenantId};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, Problem};
use crate::store::channel_stats::{Counts, DayStats, days as stored_days};
use crate::store::pacing::PacingStatus;

/// How many days back, today (UTC) included.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// 1 to 90; default 30.
    days: Option<String>,
}

/// The figures of one day, or of the span (`totals`).
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct CountsView {
    /// Messages sent (to all or some of their recipients).
    sent: u64,
    /// Deferrals (a message deferred twice counts twice).
    deferred: u64,
    /// Messages held (the channel could not carry them).
    held: u64,
    /// Messages failed for good.
    failed: u64,
    /// Recipients that accepted a message.
    recipients: u64,
    /// Recipients refused for good as unknown (they are suppressed).
    hard_bounces: u64,
}

impl From<DayCounts> for CountsView {
    fn from(c: DayCounts) -> Self {
        CountsView {
            sent: c.sent,
            deferred: c.deferred,
            held: c.held,
            failed: c.failed,
            recipients: c.recipients,
            hard_bounces: c.hard_bounces,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    /// The UTC day, `2026-12-02`.
    #[schema(value_type = String, format = Date)]
    day: NaiveDate,
    #[serde(flatten)]
    counts: CountsView,
}

/// A channel's mail per UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    #[schema(value_type = String, format = Uuid)]
    channel_id: ChannelId,
    /// First day of the span (UTC).
    #[schema(value_type = String, format = Date)]
    from: NaiveDate,
    /// Last day of the span: today (UTC).
    #[schema(value_type = String, format = Date)]
    to: NaiveDate,
    /// Every day from `from` to `to`, oldest first; a day without mail is all zeros.
    days: Vec<DayView>,
    totals: CountsView,
    /// Today's count against the day's cap, the warm-up ramp, the next window opening: the
    /// same object as the channel's `pacing`. Absent where the channel has no pacing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::http) pacing: Option<PacingStatus>,
    /// The hard-bounce rate against the pause threshold. Absent where it is not computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(in crate::http) bounces: Option<BouncesView>,
}

/// The span `days` asks for, ending today; 422 `invalid_field` outside 1..=90.
pub(in crate::http) fn span(days: Option<&str>, now: DateTime<Utc>) -> Result<DaySpan, ApiError> {
    let invalid = || ApiError::InvalidField {
        field: "days",
        reason: format!("must be a whole number of days from 1 to {MAX_DAYS} (today included)"),
    };
    let days = match days {
        None => i64::from(DEFAULT_DAYS),
        Some(raw) => raw.trim().parse::<i64>().map_err(|_| invalid())?,
    };
    DaySpan::ending_at(now, days).map_err(|_| invalid())
}

/// A stored row's figures; a negative count (which the counters never write) reads as 0.
fn counts(c: &Counts) -> DayCounts {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    DayCounts {
        sent: n(c.sent),
        deferred: n(c.deferred),
        held: n(c.held),
        failed: n(c.failed),
        recipients: n(c.recipients),
        hard_bounces: n(c.hard_bounces),
    }
}

fn rows(stats: impl IntoIterator<Item = DayStats>) -> impl Iterator<Item = (NaiveDate, DayCounts)> {
    stats
        .into_iter()
        .filter_map(|d| date_of(d.day).map(|day| (day, counts(&d.counts))))
}

/// One channel's days over `span`, zeros filled. The caller has checked it may see it.
pub(in crate::http) async fn channel_days(
    state: &AppState,
    tenant: TenantId,
    channel: ChannelId,
    span: DaySpan,
) -> Result<Vec<DayFigures>, ApiError> {
    let (from, to) = span.day_numbers();
    let stored = state
        .store
        .run(move |conn| stored_days(conn, tenant, Some(channel), from, to))
        .await?;
    Ok(span.fill(rows(stored)))
}

/// Every channel's days over `span` in one read, zeros filled (a channel without a row gets
/// an empty map entry: ask with `unwrap_or_else(|| span.fill([]))`).
pub(in crate::http) async fn tenant_days(
    state: &AppState,
    tenant: TenantId,
    span: DaySpan,
) -> Result<HashMap<ChannelId, Vec<DayFigures>>, ApiError> {
    let (from, to) = span.day_numbers();
    let stored = state
        .store
        .run(move |conn| stored_days(conn, tenant, None, from, to))
        .await?;
    let mut by_channel: HashMap<ChannelId, Vec<DayStats>> = HashMap::new();
    for d in stored {
        by_channel.entry(d.channel).or_default().push(d);
    }
    Ok(by_channel
        .into_iter()
        .map(|(channel, stats)| (channel, span.fill(rows(stats))))
        .collect())
}

/// A channel's hard bounces over its tenant's rule's window, against the rule that pauses it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BouncesView {
    /// Recipients attempted in the window: accepted plus hard-bounced.
    pub sends: u64,
    /// Recipients refused for good as unknown in the window.
    pub hard_bounces: u64,
    pub rate_percent: f64,
    /// The channel pauses at or above this rate…
    pub threshold_percent: f64,
    /// …once it has at least this many sends in the window.
    pub min_sends: u32,
    /// The rolling window in UTC days, today included (it starts afresh at a resume).
    pub window_days: u32,
}

/// What the stats and the dashboards show beside a channel's days.
#[derive(Debug, Clone, Default)]
pub(in crate::http) struct ChannelFigures {
    /// For a channel paced at all: a day's cap, windows, a ramp or a gap, its own or the
    /// tenant's.
    pub pacing: Option<PacingStatus>,
    /// For a tenant's own channels (the shared pool is never paused for bounces).
    pub bounces: Option<BouncesView>,
}

/// The pacing and bounce figures of each of `channels` now, by id, in one database visit:
/// the same status `GET /v1/channels/{id}` shows, and the figures the pause rule judges.
pub(in crate::http) async fn figures_of(
    state: &AppState,
    tenant: TenantId,
    channels: Vec<SendChannel>,
) -> Result<HashMap<ChannelId, ChannelFigures>, ApiError> {
    let now = state.config.clock.now();
    Ok(state
        .store
        .run(move |conn| {
            let defaults = crate::store::pacing::tenant_defaults(conn, tenant)?;
            let mut figures = HashMap::new();
            for channel in &channels {
                let status = crate::store::pacing::status(conn, channel, &defaults, now)?;
                let paced = status.day_cap.is_some()
                    || status.windows.is_some()
                    || status.ramp.is_some()
                    || channel.spec.limits.min_gap.is_some();
                let bounces = if channel.id == ChannelId::shared_pool() {
                    None
                } else {
                    let (policy, counted) = crate::store::pauses::window_figures(
                        conn,
                        tenant,
                        channel.id,
                        now.timestamp_micros(),
                    )?;
                    Some(BouncesView {
                        sends: counted.sends,
                        hard_bounces: counted.hard_bounces,
                        rate_percent: counted.rate_percent(),
                        threshold_percent: policy.threshold_percent(),
                        min_sends: policy.min_sends,
                        window_days: policy.window_days,
                    })
                };
                figures.insert(
                    channel.id,
                    ChannelFigures {
                        pacing: paced.then_some(status),
                        bounces,
                    },
                );
            }
            Ok::<_, crate::store::StoreError>(figures)
        })
        .await?)
}

/// The response for a channel's days.
pub(in crate::http) fn view(channel: ChannelId, span: DaySpan, days: &[DayFigures]) -> StatsView {
    StatsView {
        channel_id: channel,
        from: span.from,
        to: span.to,
        totals: totals(days).into(),
        days: days
            .iter()
            .map(|d| DayView {
                day: d.day,
                counts: d.counts.into(),
            })
            .collect(),
        pacing: None,
        bounces: None,
    }
}

/// A channel's mail per UTC day over the last `days` days (today included): sent,
/// deferred, held, failed, recipients and hard bounces, every day present. Anyone who may
/// see the channel may see its figures.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id"), StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = StatsView), (status = 404, body = Problem),
        (status = 422, body = Problem)
    )
)]
#[get("/channels/{id}/stats")]
pub(in crate::http) async fn get_channel_stats(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let span = span(query.days.as_deref(), state.config.clock.now())?;
    let channel = visible_one(&caller, &state, &id).await?;
    let tenant = caller.actor.tenant_id;
    let days = channel_days(&state, tenant, channel.id, span).await?;
    let id = channel.id;
    let mut stats = view(id, span, &days);
    let figures = figures_of(&state, tenant, vec![channel])
        .await?
        .remove(&id)
        .unwrap_or_default();
    (stats.pacing, stats.bounces) = (figures.pacing, figures.bounces);
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_default_to_thirty_and_stay_within_one_to_ninety() {
        let now: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        let default = span(None, now).unwrap();
        assert_eq!(default.from.to_string(), "2026-11-03");
        assert_eq!(span(Some("90"), now).unwrap().to.to_string(), "2026-12-02");
        for bad in ["0", "91", "-1", "thirty", "", "1.5"] {
            let err = span(Some(bad), now).unwrap_err();
            assert_eq!(err.code(), "invalid_field", "{bad}");
        }
    }

    #[test]
    fn stored_rows_become_dated_days_and_negative_counts_read_as_zero() {
        let channel = ChannelId::shared_pool();
        let stored = DayStats {
            channel,
            day: 20_789,
            counts: Counts {
                sent: 4,
                failed: -2,
                ..Counts::default()
            },
        };
        let got: Vec<_> = rows([stored]).collect();
        assert_eq!(got[0].0.to_string(), "2026-12-02");
        assert_eq!(got[0].1.sent, 4);
        assert_eq!(got[0].1.failed, 0);
    }
}
