//! The channel page's pause panel: a paused channel's cause, the figures or the provider's
//! reply that paused it, when a provider's block ends, and for admins the Resume button (or
//! Pause, on an active or failing channel). The changes are the API's own (`pause`,
//! `resume`).

use crate::http::ui::forms::NoFields;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::super::UiError;
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use crate::domain::pause::PauseCause;
use crate::domain::{Action, ChannelKind, ChannelStatus, SendChannel};
use crate::http::AppState;
use crate::http::channels as api;

/// What a cause means, for the panel's heading.
fn cause_words(cause: Option<PauseCause>) -> &'static str {
    match cause {
        Some(PauseCause::BounceRate) => "Paused: too many hard bounces",
        Some(PauseCause::SendLimitReached) => "Paused: the provider's sending limit was reached",
        Some(PauseCause::SenderBlocked) => "Paused: the provider blocked this sender",
        Some(PauseCause::Manual) => "Paused by an admin",
        None => "Paused",
    }
}

/// The bounce figures of a bounce pause, in a sentence.
fn figures_words(figures: &serde_json::Value) -> Option<String> {
    let (bounced, sends) = (
        figures["hard_bounces"].as_u64()?,
        figures["sends"].as_u64()?,
    );
    Some(format!(
        "{bounced} of {sends} recipients in the last {} day(s) were hard bounces ({} %); the threshold is {} % over at least {} sends.",
        figures["window_days"].as_u64().unwrap_or(0),
        figures["rate_percent"].as_f64().unwrap_or(0.0),
        figures["threshold_percent"].as_f64().unwrap_or(0.0),
        figures["min_sends"].as_u64().unwrap_or(0),
    ))
}

/// The panel: the pause's facts for everyone who sees the channel; the buttons for admins.
pub(super) fn panel(session: &UiSession, channel: &SendChannel) -> Markup {
    let admin = session.caller.actor.may(Action::PauseChannels)
        && channel.spec.kind != ChannelKind::SharedPool;
    let base = format!("/ui/channels/{}", channel.id);
    match channel.status {
        ChannelStatus::Paused => {
            let cause = channel
                .status_cause
                .as_deref()
                .and_then(PauseCause::from_code);
            let detail = channel.health.pause_detail.clone().unwrap_or_default();
            html! {
                section.panel #pause aria-labelledby="pause-heading" {
                    h2 id="pause-heading" { (cause_words(cause)) }
                    p { "Since " (layout::when(channel.health.status_changed_at)) ". Its mail is held (or goes through another channel, if the organisation allows fallback) until it resumes." }
                    @if let Some(words) = figures_words(&detail["figures"]) {
                        p.figures { (words) }
                    }
                    @if let Some(reply) = detail["reply"].as_str() {
                        p { strong { "The provider said: " } span.reply { (reply) } }
                    }
                    @if let Some(until) = channel.health.paused_until {
                        p { "The provider's block ends " (layout::when(Some(until))) "; the channel resumes by itself then." }
                    }
                    @if let Some(cause) = cause {
                        p { strong { "What to do: " } (cause.advice()) "." }
                    }
                    @if admin {
                        form method="post" action={(base) "/resume"} {
                            (layout::csrf(session))
                            button type="submit"
                                data-confirm="Resume this channel? Its held mail is sent, and its bounce count starts over." { "Resume channel" }
                        }
                    }
                }
            }
        }
        ChannelStatus::Active | ChannelStatus::Failing if admin => html! {
            section.panel #pause aria-labelledby="pause-heading" {
                h2 id="pause-heading" { "Pause" }
                p { "A paused channel sends nothing; its mail is held until an admin resumes it. Channels also pause by themselves when hard bounces cross the organisation's threshold." }
                form method="post" action={(base) "/pause"} {
                    (layout::csrf(session))
                    button.secondary type="submit"
                        data-confirm="Pause this channel? Its mail is held until an admin resumes it." { "Pause channel" }
                }
            }
        },
        _ => html! {},
    }
}

/// The Pause or Resume button (`action` from the path): the API's own change, then back to
/// the channel with what happened, or the page with the API's refusal.
async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    post: UiPost<NoFields>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, .. } = post;
    let (id, action) = path.into_inner();
    let (result, done) = match action.as_str() {
        "pause" => (
            api::pause(&session.caller, &state, &id).await,
            "Channel paused: its mail is held until it is resumed.",
        ),
        _ => (
            api::resume(&session.caller, &state, &id).await,
            "Channel resumed: its held mail is on its way.",
        ),
    };
    match result {
        Ok(channel) => Ok(session::redirect_with_flash(
            &req,
            &format!("/ui/channels/{}", channel.id),
            done,
        )),
        Err(e) => super::detail::refused(&session, &state, &id, e).await,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/{action:pause|resume}", web::post().to(act));
}
