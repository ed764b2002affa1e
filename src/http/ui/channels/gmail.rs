//! Connect Gmail, Connect Microsoft, Reconnect and Disconnect from the pages. Connect and
//! Reconnect start the same authorization as `POST /v1/oauth/{google,microsoft}/start` and
//! send the browser on to the provider; the callback brings it back to the channel's page
//! with the outcome as a notice (the state remembers that the pages started it). Disconnect
//! is `DELETE /v1/channels/{id}/oauth`.

use crate::http::ui::forms::NoFields;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::UiError;
use super::super::forms::non_empty;
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use super::checks::viewer_owns;
use crate::domain::{
    Action, ChannelId, ChannelKind, ChannelStatus, MicrosoftTransport, SendChannel,
};
use crate::http::AppState;
use crate::http::channels::{self as api, require_manage};
use crate::http::error::ApiError;
use crate::http::oauth::{self, PAGES_NEW_CONNECTION};

/// The page that starts a connection of this kind.
fn connect_path(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Microsoft => "/ui/channels/microsoft/connect",
        _ => "/ui/channels/gmail/connect",
    }
}

fn label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Microsoft => "Microsoft",
        _ => "Gmail",
    }
}

/// A "Connect Gmail" or "Connect Microsoft" button of the channel list, for those who may
/// connect a mailbox of their own. Whether the installation has the provider configured is
/// the server's to say: pressing the button on one that has not explains what the operator
/// must set.
pub fn connect_button(session: &UiSession, kind: ChannelKind) -> Markup {
    if !session.actor().may(Action::ManageOwnMailboxChannels) {
        return html! {};
    }
    html! {
        form class={"connect-" (kind)} method="post" action=(connect_path(kind)) {
            (layout::csrf(session))
            button type="submit" { "Connect " (label(kind)) }
        }
    }
}

/// The Connect buttons of the providers configured here; a line for each that is not.
pub fn connect_button_for(session: &UiSession, state: &AppState) -> Markup {
    let may = session.actor().may(Action::ManageOwnMailboxChannels);
    html! {
        @if state.google.is_some() {
            (connect_button(session, ChannelKind::Gmail))
        } @else if may {
            p.muted { "Gmail is not configured on this installation (see docs/gmail.md)." }
        }
        @if state.microsoft.is_some() {
            (connect_button(session, ChannelKind::Microsoft))
        } @else if may {
            p.muted { "Microsoft is not configured on this installation (see docs/microsoft.md)." }
        }
    }
}

/// "Reconnect" (the owner only: the provider's consent is theirs to give) and "Disconnect"
/// on a Gmail or Microsoft channel's page, with the admin-consent link when Microsoft wants
/// an admin's approval; empty for other channels and for viewers who may do neither.
pub fn channel_actions(session: &UiSession, state: &AppState, channel: &SendChannel) -> Markup {
    let kind = channel.spec.kind;
    if !kind.is_connected_mailbox() {
        return html! {};
    }
    let provider = match kind {
        ChannelKind::Microsoft => "Microsoft",
        _ => "Google",
    };
    let admin_consent = state
        .microsoft
        .as_ref()
        .filter(|_| kind == ChannelKind::Microsoft)
        .filter(|_| channel.status_cause.as_deref() == Some("admin_action_required"))
        .map(|m| m.admin_consent_url(None));
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
        section.panel aria-labelledby="oauth-heading" {
            h2 id="oauth-heading" { (label(kind)) " connection" }
            @if needs_reauth && reconnect {
                p.notice.warning {
                    (provider) " no longer lets Switchboard send from this mailbox. Reconnect it: "
                    "mail for it is held, not lost, and goes out once you have."
                }
            }
            @if let Some(url) = &admin_consent {
                p.notice.warning {
                    "Ask your Microsoft admin: your organisation's policy blocks Switchboard until an admin approves it. "
                    "Send them this admin-consent link, then reconnect: "
                    a href=(url) { "admin consent" }
                }
            }
            @if kind == ChannelKind::Microsoft && disconnect {
                (transport_form(session, channel))
            }
            @if kind == ChannelKind::Microsoft {
                p.muted {
                    "Disconnecting deletes Switchboard's tokens. Microsoft has no way for Switchboard to withdraw the access itself: remove it at "
                    (crate::http::channels::remove_access_at(kind)) "."
                }
            }
            div.actions {
                @if reconnect {
                    form method="post" action=(connect_path(kind)) {
                        (layout::csrf(session))
                        input type="hidden" name="channel_id" value=(channel.id);
                        button class=[(!needs_reauth).then_some("secondary")] type="submit" { "Reconnect " (label(kind)) }
                    }
                }
                @if disconnect {
                    form method="post" action={"/ui/channels/" (channel.id) "/disconnect"} {
                        (layout::csrf(session))
                        button.danger type="submit"
                            data-confirm={"Disconnect this " (label(kind)) " mailbox? Switchboard gives up its access; mail for it is held until it is connected again."} {
                            "Disconnect"
                        }
                    }
                }
            }
        }
    }
}

/// How a Microsoft channel sends: Graph (the default) or SMTP with an OAuth token, for
/// tenants that still allow SMTP AUTH. The same change as `PATCH /v1/channels/{id}`.
fn transport_form(session: &UiSession, channel: &SendChannel) -> Markup {
    let current = channel.spec.microsoft_transport;
    html! {
        div.actions { form method="post" action={"/ui/channels/" (channel.id) "/transport"} {
            (layout::csrf(session))
            label for="transport" { "Sends through" }
            select id="transport" name="transport" {
                option value="graph" selected[current == MicrosoftTransport::Graph] {
                    "Microsoft Graph (recommended)"
                }
                option value="smtp" selected[current == MicrosoftTransport::Smtp] {
                    "SMTP at Exchange Online, signed in with OAuth (needs SMTP AUTH allowed for the mailbox)"
                }
            }
            button.secondary type="submit" { "Save" }
        } }
    }
}

#[derive(Deserialize)]
struct TransportForm {
    transport: String,
}

async fn set_transport(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<TransportForm>,
) -> Result<HttpResponse, UiError> {
    let body = serde_json::json!({ "transport": post.form.transport });
    let body = serde_json::from_value(body).map_err(|e| ApiError::BadRequest {
        code: "invalid_form",
        detail: e.to_string(),
    })?;
    let updated = api::update(&post.session.caller, &state, &id, body).await?;
    let notice = match updated.spec.microsoft_transport {
        MicrosoftTransport::Graph => "This mailbox now sends through Microsoft Graph.",
        MicrosoftTransport::Smtp => {
            "This mailbox now sends over SMTP at Exchange Online, signed in with OAuth. If its organisation has SMTP AUTH switched off, the channel says so; switch back to Microsoft Graph then."
        }
    };
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/channels/{}", id.as_str()),
        notice,
    ))
}

#[derive(Deserialize)]
struct ConnectForm {
    /// Present for a reconnect.
    channel_id: Option<String>,
}

/// Starts the authorization and sends the browser to Google.
async fn connect_gmail(
    state: web::Data<AppState>,
    post: UiPost<ConnectForm>,
) -> Result<HttpResponse, UiError> {
    connect(state, post, ChannelKind::Gmail).await
}

/// Starts the authorization and sends the browser to Microsoft.
async fn connect_microsoft(
    state: web::Data<AppState>,
    post: UiPost<ConnectForm>,
) -> Result<HttpResponse, UiError> {
    connect(state, post, ChannelKind::Microsoft).await
}

async fn connect(
    state: web::Data<AppState>,
    post: UiPost<ConnectForm>,
    kind: ChannelKind,
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
    let started = oauth::start(&session.caller, &state, &body, Some(return_to), kind).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, started.authorize_url))
        .finish())
}

async fn disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<NoFields>,
) -> Result<HttpResponse, UiError> {
    let (kind, revoked) = api::disconnect(&post.session.caller, &state, &id).await?;
    let mut notice = format!(
        "{} disconnected: Switchboard no longer sends from this mailbox; mail for it is held until it is connected again.",
        label(kind)
    );
    if kind == ChannelKind::Microsoft {
        notice.push_str(&format!(
            " To remove Switchboard's access at Microsoft too, go to {}.",
            crate::http::channels::remove_access_at(kind)
        ));
    } else if !revoked {
        notice.push_str(" Google could not be reached to withdraw the access; remove it at https://myaccount.google.com/permissions.");
    }
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/channels/{}", id.as_str()),
        &notice,
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/gmail/connect", web::post().to(connect_gmail))
        .route(
            "/channels/microsoft/connect",
            web::post().to(connect_microsoft),
        )
        .route("/channels/{id}/disconnect", web::post().to(disconnect))
        .route("/channels/{id}/transport", web::post().to(set_transport));
}
