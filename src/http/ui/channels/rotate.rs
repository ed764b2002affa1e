//! Replacing a channel's password on its page: the new one is tested against the server
//! first and takes effect only if the login works (`PUT /v1/channels/{id}/credentials`'s
//! own code), so a typo never breaks a working channel.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use secrecy::SecretString;
use serde::Deserialize;

use super::super::UiError;
use super::super::forms::{FieldErrors, Input, non_empty};
use super::super::layout::{self, Section};
use super::super::session::{self, UiPost, UiSession};
use super::checks::{report_markup, viewer_owns};
use crate::domain::{Action, ChannelKind, ChannelStatus, SendChannel};
use crate::http::AppState;
use crate::http::channels::rotate_verified;
use crate::http::error::ApiError;
use crate::transport::tester::TestReport;

/// Whether the viewer may replace this channel's credential (the API's rule: owners their
/// own, IT and admins any; the shared pool belongs to the operator).
fn may_rotate(session: &UiSession, channel: &SendChannel) -> bool {
    channel.spec.kind == ChannelKind::Smtp
        && channel.spec.smtp.is_some()
        && (viewer_owns(session, channel) || session.actor().may(Action::RotateAnyCredential))
}

/// The "Verify and replace" form; empty for viewers who may not rotate.
pub fn rotate_panel(session: &UiSession, channel: &SendChannel) -> Markup {
    if !may_rotate(session, channel) {
        return html! {};
    }
    form(session, channel, &FieldErrors::none(), None)
}

fn form(
    session: &UiSession,
    channel: &SendChannel,
    errors: &FieldErrors,
    refused: Option<&TestReport>,
) -> Markup {
    let refused_login = channel.status == ChannelStatus::NeedsReauth;
    let username = channel
        .spec
        .smtp
        .as_ref()
        .and_then(|s| s.username.as_deref());
    html! {
        section.panel id="rotate" aria-labelledby="rotate-heading" {
            h2 id="rotate-heading" { "Replace the password" }
            @if refused_login {
                p.notice.warning {
                    "This channel's password was refused; enter the new one. "
                    "Mail for this channel is held, not lost, and goes out once the new password works."
                }
            }
            p.muted {
                "The new password is tested against the server first and replaces the old one "
                "only if the login works; until then nothing changes."
            }
            (errors.summary())
            @if let Some(report) = refused {
                div.result role="alert" {
                    p { strong { "Not replaced: the server refused the new password. The old one is still in use." } }
                    (report_markup(report, channel.spec.smtp.as_ref(), false))
                }
            }
            form.stacked method="post" action={"/ui/channels/" (channel.id) "/credentials"} {
                (layout::csrf(session))
                (Input::password("password", "New password or API key")
                    .required()
                    .render(errors))
                (Input::text("username", "New username (leave empty to keep)")
                    .hint(html! {
                        @match username {
                            Some(u) => { "Today it logs in as " code { (u) } ". Change it only when the provider issued a new pair (new SES SMTP credentials, say)." }
                            None => { "Change it only when the provider issued a new pair." }
                        }
                    })
                    .render(errors))
                div.actions {
                    button type="submit" data-busy="Verifying…" { "Verify and replace" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RotateForm {
    /// Read straight into a zeroizing secret; never echoed back.
    password: SecretString,
    username: Option<String>,
}

async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<RotateForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost {
        session,
        form: input,
    } = post;
    let username = non_empty(&input.username).map(str::to_owned);
    let outcome = rotate_verified(&session.caller, &state, &id, input.password, username).await;
    match outcome {
        Ok(Ok(replaced)) => {
            let mut notice = "The new password was verified and replaced the old one.".to_owned();
            if replaced.reactivated {
                notice.push_str(" The channel is active again; mail held for it is on its way.");
            }
            Ok(session::redirect_with_flash(
                &req,
                &format!("/ui/channels/{}", replaced.channel.id),
                &notice,
            ))
        }
        Ok(Err(refused)) => {
            let body = html! {
                p { a href={"/ui/channels/" (refused.channel.id)} { "← Back to " (refused.channel.spec.name) } }
                h1 { (refused.channel.spec.name) }
                (form(&session, &refused.channel, &FieldErrors::none(), Some(&refused.report)))
            };
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &session,
                Section::Channels,
                "Password not replaced",
                body,
            ))
        }
        // A field the API refused (an empty password, a username with control characters):
        // the form again with the error beside it.
        Err(e @ ApiError::InvalidField { .. }) => {
            let errors = FieldErrors::from_api(&e);
            let body = html! {
                p { a href={"/ui/channels/" (id.as_str())} { "← Back to the channel" } }
                h1 { "Replace the password" }
                (bare_form(&session, &id, &errors))
            };
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &session,
                Section::Channels,
                "Replace the password",
                body,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The form when the API refused a field before it looked the channel up for us: the same
/// fields, without the channel's particulars.
fn bare_form(session: &UiSession, id: &str, errors: &FieldErrors) -> Markup {
    html! {
        (errors.summary())
        form.stacked method="post" action={"/ui/channels/" (id) "/credentials"} {
            (layout::csrf(session))
            (Input::password("password", "New password or API key").required().render(errors))
            (Input::text("username", "New username (leave empty to keep)").render(errors))
            div.actions { button type="submit" { "Verify and replace" } }
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/credentials", web::post().to(rotate));
}
