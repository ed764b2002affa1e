//! Connect Gmail, Reconnect and Disconnect from the pages. Connect and Reconnect start the
//! same authorization as `POST /v1/oauth/google/start` and send the browser on to Google;
//! the callback brings it back to the channel's page with the outcome as a notice (the
//! state remembers that the pages started it). Disconnect is `DELETE /v1/channels/{id}/oauth`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::UiError;
use super::super::forms::non_empty;
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use super::checks::viewer_owns;
use crate::domain::{Action, ChannelId, ChannelKind, ChannelStatus, SendChannel};
use crate::http::AppState;
use crate::http::channels::{self as api, require_manage};
use crate::http::oauth::{self, PAGES_NEW_CONNECTION};

const CONNECT_PATH: &str = "/ui/channels/gmail/connect";

/// The "Connect Gmail" button of the channel list, for those who may connect a mailbox of
/// their own. Whether the installation has Gmail configured is the server's to say: pressing
/// the button on one that has not explains what the operator must set.
pub fn connect_button(session: &UiSession) -> Markup {
    if !session.actor().may(Action::ManageOwnMailboxChannels) {
        return html! {};
    }
    html! {
        form.connect-gmail method="post" action=(CONNECT_PATH) {
            (layout::csrf(session))
            button type="submit" { "Connect Gmail" }
        }
    }
}

/// Like [`connect_button`], but says so instead when Gmail is not configured here.
pub fn connect_button_for(session: &UiSession, state: &AppState) -> Markup {
    if state.google.is_none() {
        return html! {
            @if session.actor().may(Action::ManageOwnMailboxChannels) {
                p.muted { "Gmail is not configured on this installation (see docs/gmail.md)." }
            }
        };
    }
    connect_button(session)
}

/// "Reconnect Gmail" (the owner only: Google's consent is theirs to give) and "Disconnect"
/// on a Gmail channel's page; empty for other channels and for viewers who may do neither.
pub fn channel_actions(session: &UiSession, channel: &SendChannel) -> Markup {
    if channel.spec.kind != ChannelKind::Gmail {
        return html! {};
    }
    let reconnect =
        viewer_owns(session, channel) && session.actor().may(Action::ManageOwnMailboxChannels);
    // Disconnecting changes the channel: whoever the API lets manage it (its owner; admins
    // for anyone's mailbox).
    let disconnect = require_manage(&session.caller, channel.spec.owner).is_ok();
    if !reconnect && !disconnect {
        return html! {};
    }
    let needs_reauth = channel.status == ChannelStatus::NeedsReauth;
    html! {
        section.panel aria-labelledby="gmail-heading" {
            h2 id="gmail-heading" { "Gmail connection" }
            @if needs_reauth && reconnect {
                p.notice.warning {
                    "Google no longer lets Switchboard send from this mailbox. Reconnect it: "
                    "mail for it is held, not lost, and goes out once you have."
                }
            }
            div.actions {
                @if reconnect {
                    form method="post" action=(CONNECT_PATH) {
                        (layout::csrf(session))
                        input type="hidden" name="channel_id" value=(channel.id);
                        button class=[(!needs_reauth).then_some("secondary")] type="submit" { "Reconnect Gmail" }
                    }
                }
                @if disconnect {
                    form method="post" action={"/ui/channels/" (channel.id) "/disconnect"} {
                        (layout::csrf(session))
                        button.danger type="submit"
                            data-confirm="Disconnect this Gmail mailbox? Switchboard gives up its access at Google; mail for it is held until it is connected again." {
                            "Disconnect"
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct ConnectForm {
    /// Present for a reconnect.
    channel_id: Option<String>,
}

/// Starts the authorization and sends the browser to Google.
async fn connect(
    state: web::Data<AppState>,
    post: UiPost<ConnectForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let channel = non_empty(&form.channel_id);
    // The page to come back to: the channel being reconnected, or for a new mailbox the
    // list (the callback then goes on to the new channel's page).
    let return_to = match channel.map(str::parse::<ChannelId>) {
        Some(Ok(id)) => format!("/ui/channels/{id}"),
        _ => PAGES_NEW_CONNECTION.to_owned(),
    };
    let body = match channel {
        Some(id) => serde_json::json!({ "channel_id": id }),
        None => serde_json::json!({}),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let started = oauth::start(&session.caller, &state, &body, Some(return_to)).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, started.authorize_url))
        .finish())
}

#[derive(Deserialize)]
struct NoFields {}

async fn disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<NoFields>,
) -> Result<HttpResponse, UiError> {
    let revoked = api::disconnect(&post.session.caller, &state, &id).await?;
    let mut notice = "Gmail disconnected: Switchboard no longer sends from this mailbox; mail for it is held until it is connected again.".to_owned();
    if !revoked {
        notice.push_str(" Google could not be reached to withdraw the access; remove it at https://myaccount.google.com/permissions.");
    }
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/channels/{}", id.as_str()),
        &notice,
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/gmail/connect", web::post().to(connect))
        .route("/channels/{id}/disconnect", web::post().to(disconnect));
}
