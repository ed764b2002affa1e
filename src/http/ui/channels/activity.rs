//! The channel page's dashboard panel: mail per day over the last 30 days as a chart (with
//! its table), today's figures, and the pacing and bounce sections when the channel has
//! them. The figures are the stats API's own (`channel_days`).

use maud::{Markup, html};

use super::super::chart;
use super::super::dashboard::{self, ChannelDashboard};
use crate::domain::SendChannel;
use crate::domain::daily_stats::{DEFAULT_DAYS, DaySpan};
use crate::http::AppState;
use crate::http::channels::{channel_days, figures_of};
use crate::http::error::ApiError;
use crate::http::ui::session::UiSession;

/// The dashboard of a channel the caller may see.
pub async fn load(
    session: &UiSession,
    state: &AppState,
    channel: &SendChannel,
) -> Result<ChannelDashboard, ApiError> {
    let span = DaySpan::ending_at(state.config.clock.now(), i64::from(DEFAULT_DAYS))
        .map_err(|e| ApiError::Internal(format!("the dashboard's span: {e:?}")))?;
    let tenant = session.caller.actor.tenant_id;
    let days = channel_days(state, tenant, channel.id, span).await?;
    let figures = figures_of(state, tenant, vec![channel.clone()]).await?;
    Ok(ChannelDashboard::new(days).with(figures.get(&channel.id)))
}

/// The panel on the channel page.
pub fn panel(channel: &SendChannel, dash: &ChannelDashboard) -> Markup {
    let title = format!(
        "Mail per day through {} over the last {} days",
        channel.spec.name,
        dash.days.len()
    );
    html! {
        section.panel.activity aria-labelledby="activity-heading" {
            h2 id="activity-heading" { "Activity" }
            p.today { "Today (UTC): " (dashboard::counts_line(&dash.today())) }
            @if let Some(pacing) = &dash.pacing { (dashboard::pacing_section(pacing)) }
            @if let Some(bounces) = &dash.bounces { (dashboard::bounce_section(bounces)) }
            (chart::daily_chart("activity-chart", &title, &dash.days))
        }
    }
}
