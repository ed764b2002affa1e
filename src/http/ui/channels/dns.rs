//! The channel page's "Domain health" panel: each verified domain the channel carries, its
//! checks as this channel sends it (SPF for its relay, return path, DKIM, DMARC, alignment),
//! and "Check now" (`POST /ui/channels/{id}/health`, the API's `check_channel`).

use crate::http::ui::forms::NoFields;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::super::UiError;
use super::super::domains::health_list;
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use crate::domain::channel_dns::ChannelDomainHealth;
use crate::domain::dns_checks::CheckStatus;
use crate::domain::{Domain, SendChannel};
use crate::http::AppState;
use crate::http::channels::visible_one;
use crate::http::domain_health::{DomainHealthView, HealthCheckView};
use crate::http::error::ApiError;

pub(super) type Found = Vec<(Domain, Option<ChannelDomainHealth>)>;

/// The stored results for the page.
pub(super) async fn load(
    session: &UiSession,
    state: &AppState,
    channel: &SendChannel,
) -> Result<Found, ApiError> {
    Ok(state
        .domains
        .channel_health(session.caller.actor.tenant_id, channel)
        .await?)
}

pub(super) fn panel(session: &UiSession, channel: &SendChannel, found: &Found) -> Markup {
    html! {
        section.panel aria-labelledby="dns-heading" {
            h2 id="dns-heading" { "Domain health" }
            @if found.is_empty() {
                p.muted { "This channel carries no verified domain of yours: there is nothing to check. Domains are claimed and proven on the Domains page." }
            } @else {
                p.hint { "How receivers see mail from each domain as this channel sends it: SPF for its relay, the envelope sender (return path), who signs with DKIM, DMARC, and whether DMARC passes on SPF or DKIM alignment. Checked every hour with the domain, and now with the button." }
                @for (domain, result) in found {
                    h3 { (domain) }
                    @match result {
                        Some(r) => (health_list(&DomainHealthView {
                            checked_at: r.checked_at,
                            checks: r.checks.iter().map(HealthCheckView::from).collect(),
                        })),
                        None => p.muted { "Not checked yet." },
                    }
                }
                form method="post" action={"/ui/channels/" (channel.id) "/health"} {
                    (layout::csrf(session))
                    button.secondary type="submit" { "Check now" }
                }
            }
        }
    }
}

async fn check_now(
    req: HttpRequest,
    post: UiPost<NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let session = &post.session;
    let channel = visible_one(&session.caller, &state, &id).await?;
    let found = state
        .domains
        .check_channel(session.caller.actor.tenant_id, &channel)
        .await
        .map_err(ApiError::from)?;
    let failing = found
        .iter()
        .flat_map(|(_, r)| r.iter().flat_map(|r| r.checks.iter()))
        .filter(|c| c.status != CheckStatus::Ok)
        .count();
    let done = match (found.len(), failing) {
        (0, _) => "Nothing to check: the channel carries no verified domain.".to_owned(),
        (n, 0) => format!("Checked {n} domain(s): every check is OK."),
        (n, f) => format!("Checked {n} domain(s): {f} check(s) need attention."),
    };
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/channels/{}", channel.id),
        &done,
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/health", web::post().to(check_now));
}
