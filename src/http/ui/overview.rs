//! `/ui/overview`: every channel at a glance — the tenant's mail per day over the last 30
//! days, and per channel a sparkline, today's figures and, when the channel has them, its
//! pacing and bounce rate. Admins and IT see every channel of the tenant; everyone else sees
//! the mailboxes they own (a rep's overview is their own sending: the team's and tenant's
//! relays carry colleagues' mail too, and their pages still show their charts).

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::UiError;
use super::chart;
use super::dashboard::{self, ChannelDashboard};
use super::layout::{self, Section};
use super::session::UiSession;
use crate::domain::daily_stats::{DEFAULT_DAYS, DayFigures, DaySpan, totals};
use crate::domain::{Action, ChannelOwner, SendChannel};
use crate::http::AppState;
use crate::http::channels::{figures_of, tenant_days, visible};

/// The channels a viewer's overview lists.
fn listed(session: &UiSession, channels: Vec<SendChannel>) -> Vec<SendChannel> {
    let actor = session.actor();
    if actor.may(Action::ReadAllChannels) {
        return channels;
    }
    channels
        .into_iter()
        .filter(|c| c.spec.owner == ChannelOwner::User(actor.user_id))
        .collect()
}

/// The sum of several channels' spans, day by day (all spans are the same days).
fn summed<'a>(
    span: DaySpan,
    dashes: impl IntoIterator<Item = &'a ChannelDashboard>,
) -> Vec<DayFigures> {
    let mut sum = span.fill([]);
    for dash in dashes {
        for (slot, day) in sum.iter_mut().zip(&dash.days) {
            slot.counts = slot.counts.plus(day.counts);
        }
    }
    sum
}

fn row(channel: &SendChannel, dash: &ChannelDashboard) -> Markup {
    let month = totals(&dash.days);
    html! {
        tr {
            th scope="row" {
                a href={"/ui/channels/" (channel.id)} { (channel.spec.name) }
                br;
                (layout::status_badge(channel.status, channel.status_cause.as_deref()))
            }
            td { (chart::sparkline(channel.spec.name.as_str(), &dash.days)) }
            td { (dashboard::counts_line(&dash.today())) }
            td {
                span.figure { strong { (chart::grouped(month.sent)) } " sent" }
                @if month.failed > 0 { " · " span.figure { strong { (chart::grouped(month.failed)) } " failed" } }
            }
            td {
                @match &dash.pacing {
                    Some(pacing) => (dashboard::pacing_summary(pacing)),
                    None => span.muted { "no daily cap" },
                }
            }
            td {
                @match &dash.bounces {
                    Some(bounces) => (dashboard::bounce_summary(bounces)),
                    None => span.muted { "not measured" },
                }
            }
        }
    }
}

/// The overview of `all` (channels with their dashboards) over `span`.
fn overview_page(
    session: &UiSession,
    span: DaySpan,
    all: &[(SendChannel, ChannelDashboard)],
) -> Markup {
    let sees_all = session.actor().may(Action::ReadAllChannels);
    let title = format!(
        "Mail per day through {} over the last {} days",
        if sees_all {
            "all channels"
        } else {
            "your mailboxes"
        },
        DEFAULT_DAYS
    );
    let sum = summed(span, all.iter().map(|(_, dash)| dash));
    html! {
        h1 { "Overview" }
        p.muted {
            @if sees_all { "Every channel of your organisation" } @else { "Your own mailboxes" }
            ": what they sent, deferred, held and failed each day (UTC), and where they stand today."
        }
        @if all.is_empty() {
            p.notice.info {
                @if sees_all { "No channels yet. " } @else { "You have no mailbox channel of your own yet. " }
                a href="/ui/channels" { "Channels" } " is where to add or connect one."
            }
        } @else {
            p.today { "Today (UTC): " (dashboard::counts_line(&sum.last().map(|d| d.counts).unwrap_or_default())) }
            (chart::daily_chart("overview-chart", &title, &sum))
            h2 { "Channels" }
            (layout::table(
                "overview",
                "Each channel's last 30 days and today",
                &["Channel", "Last 30 days", "Today (UTC)", "30 days", "Today against the cap", "Bounces"],
                html! { @for (channel, dash) in all { (row(channel, dash)) } },
            ))
        }
    }
}

async fn overview(session: UiSession, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let span = DaySpan::ending_at(state.config.clock.now(), i64::from(DEFAULT_DAYS))
        .map_err(|e| UiError::Internal(format!("the overview's span: {e:?}")))?;
    let mut channels = listed(&session, visible(&session.caller, &state).await?);
    channels.sort_by_key(|c| c.spec.name.as_str().to_lowercase());
    let tenant = session.caller.actor.tenant_id;
    let mut days = tenant_days(&state, tenant, span).await?;
    let figures = figures_of(&state, tenant, channels.clone()).await?;
    let all: Vec<(SendChannel, ChannelDashboard)> = channels
        .into_iter()
        .map(|c| {
            let days = days.remove(&c.id).unwrap_or_else(|| span.fill([]));
            let dash = ChannelDashboard::new(days).with(figures.get(&c.id));
            (c, dash)
        })
        .collect();
    Ok(layout::page(
        &session,
        Section::Overview,
        "Overview",
        overview_page(&session, span, &all),
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/overview", web::get().to(overview));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::daily_stats::DayCounts;

    #[test]
    fn the_sum_adds_channels_day_by_day() {
        let span = DaySpan::ending_at("2026-12-02T10:00:00Z".parse().unwrap(), 3).unwrap();
        let sent = |n| DayCounts {
            sent: n,
            ..DayCounts::default()
        };
        let a = ChannelDashboard::new(span.fill([(span.to, sent(2))]));
        let b = ChannelDashboard::new(span.fill([(span.to, sent(5)), (span.from, sent(1))]));
        let sum = summed(span, [&a, &b]);
        assert_eq!(
            sum.iter().map(|d| d.counts.sent).collect::<Vec<_>>(),
            [1, 0, 7]
        );
        assert_eq!(summed(span, []).len(), 3);
    }
}
