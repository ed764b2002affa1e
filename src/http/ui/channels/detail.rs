//! `/ui/channels/{id}`: one channel — what it is, why it is not sending when it is not, the
//! connection test, rotation and Gmail panels, and for those who may manage it: edit,
//! disable or enable, delete. Visibility, permissions and changes are the API's own
//! (`visible_one`, `require_manage`, `update`, `delete`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::super::UiError;
use super::super::layout::{self, Section};
use super::super::session::{self, UiPost, UiSession};
use super::list;
use crate::domain::{
    ChannelKind, ChannelStatus, CredentialScope, ReturnPath, Security, SendChannel, SmtpAuth,
};
use crate::http::AppState;
use crate::http::channels::{
    self as api, UpdateChannelRequest, advice, require_manage, visible_one,
};
use crate::http::error::ApiError;
use crate::http::ui::dashboard::ChannelDashboard;
use crate::http::ui::labels::People;

fn security_words(security: Security) -> &'static str {
    match security {
        Security::StartTls => "STARTTLS",
        Security::Tls => "TLS from the start (implicit TLS)",
        Security::None => "None: unencrypted",
    }
}

fn auth_words(auth: SmtpAuth) -> &'static str {
    match auth {
        SmtpAuth::None => "None",
        SmtpAuth::Plain => "PLAIN",
        SmtpAuth::Login => "LOGIN",
        SmtpAuth::Xoauth2 => "XOAUTH2 (OAuth)",
    }
}

fn limits_words(channel: &SendChannel) -> String {
    let l = &channel.spec.limits;
    let parts: Vec<String> = [
        (l.per_minute, "messages per minute"),
        (l.per_day_recipients, "recipients per day"),
        (l.recipients_per_message, "recipients per message"),
    ]
    .into_iter()
    .filter_map(|(v, what)| v.map(|v| format!("{v} {what}")))
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" · ")
    }
}

fn optional(value: Option<String>) -> Markup {
    match value {
        Some(v) => html! { (v) },
        None => html! { span.muted { "none" } },
    }
}

/// Why a channel that is not active is not, and what to do.
fn health_notice(channel: &SendChannel) -> Markup {
    let class = match channel.status {
        // A pause has its own panel (`pause::panel`).
        ChannelStatus::Active | ChannelStatus::Paused => return html! {},
        ChannelStatus::NeedsReauth => "notice error",
        ChannelStatus::Failing | ChannelStatus::Disabled => "notice warning",
    };
    let advice = advice(channel.status, channel.status_cause.as_deref());
    html! {
        div class=(class) role="status" {
            @if let Some(advice) = advice {
                p { strong { "What to do: " } (list::capitalized(advice)) "." }
            }
            @if let Some(error) = &channel.health.last_error {
                p {
                    strong { "Last error" }
                    @if channel.health.last_error_at.is_some() { " (" (layout::when(channel.health.last_error_at)) ")" }
                    ": " span.reply { (error) }
                }
            }
        }
    }
}

fn credential_words(channel: &SendChannel) -> Markup {
    match (channel.spec.kind, channel.credential_updated_at) {
        (ChannelKind::SharedPool, _) => html! { "configured by the platform operator" },
        (ChannelKind::Gmail, Some(at)) => {
            html! { "Google account connected, last changed " (layout::when(Some(at))) }
        }
        (ChannelKind::Microsoft, Some(at)) => {
            html! { "Microsoft account connected, last changed " (layout::when(Some(at))) }
        }
        (_, Some(at)) => html! { "stored, last changed " (layout::when(Some(at))) },
        (_, None) => html! { span.muted { "none stored" } },
    }
}

/// Who signs this channel's mail with DKIM.
fn dkim_words(channel: &SendChannel) -> &'static str {
    match (channel.spec.kind, channel.spec.scope) {
        (ChannelKind::SharedPool, _) => "Switchboard signs, with your key for the From domain",
        (ChannelKind::Smtp, CredentialScope::Domain) if channel.spec.dkim_sign => {
            "On: Switchboard signs, with your key for the From domain"
        }
        (ChannelKind::Smtp, CredentialScope::Domain) => {
            "Off: the relay signs (set up DKIM for your domain at the provider)"
        }
        _ => "The mailbox provider signs",
    }
}

fn facts(channel: &SendChannel, names: &People) -> Markup {
    let spec = &channel.spec;
    let (scope, addresses) = list::scope_words(channel);
    let return_path = match &spec.return_path {
        ReturnPath::No => "Let the server decide".to_owned(),
        ReturnPath::Yes => "The message's From address".to_owned(),
        ReturnPath::Specified(a) => format!("Fixed: {a}"),
    };
    html! {
        dl.facts {
            dt { "Kind" } dd { (list::kind_name(channel.spec.kind)) }
            dt { "Provider" } dd { (optional(list::provider_name(channel).map(str::to_owned).or((spec.kind == ChannelKind::Smtp).then(|| "Custom server".to_owned())))) }
            dt { "Owner" } dd { (names.owner(spec.owner)) }
            dt { "Scope" } dd { (scope) }
            @if spec.from_address.is_some() || spec.domains.is_empty() {
                dt { "From address" } dd { (optional((!addresses.is_empty()).then_some(addresses.clone()))) }
            } @else {
                dt { "Domains" } dd { (addresses) }
            }
            @if let Some(smtp) = &spec.smtp {
                dt { "SMTP server" } dd { code { (smtp.host) ":" (smtp.port) } }
                dt { "Security" } dd { (security_words(smtp.security)) }
                dt { "Login method" } dd { (auth_words(smtp.auth)) }
                dt { "Username" } dd { (optional(smtp.username.clone())) }
                dt { "Certificates" } dd {
                    @if smtp.accept_invalid_certs {
                        span.badge.bad { "Not verified: invalid certificates accepted" }
                    } @else if smtp.ca_pem.is_some() {
                        "Verified against a custom CA certificate"
                    } @else {
                        "Verified against the usual public authorities"
                    }
                    @if let Some(pinned) = smtp.pinned_sha256.filter(|_| !smtp.accept_invalid_certs) {
                        br;
                        "Also trusted: the server certificate with SHA-256 fingerprint "
                        code.fingerprint { (pinned) }
                    }
                }
            }
            dt { "Password" } dd { (credential_words(channel)) }
            dt { "Limits" } dd { (limits_words(channel)) }
            dt { "BCC archive" } dd { (optional(spec.bcc_archive.as_ref().map(ToString::to_string))) }
            dt { "Reply-to" } dd { (optional(spec.reply_to.as_ref().map(ToString::to_string))) }
            dt { "Return path" } dd { (return_path) }
            dt { "DKIM signing" } dd { (dkim_words(channel)) }
            dt { "Created" } dd { (layout::when(Some(channel.created_at))) }
            dt { "Last used" } dd { (layout::when(channel.last_used_at)) }
            dt { "Last verified" } dd { (layout::when(channel.last_verified_at)) }
            dt { "Failures in a row" } dd { (channel.health.failures) }
        }
    }
}

fn warnings(session: &UiSession, state: &AppState, channel: &SendChannel) -> Markup {
    let warnings = channel
        .spec
        .smtp
        .as_ref()
        .map(|s| s.warnings())
        .unwrap_or_default();
    // A password login to Microsoft's SMTP servers: the way out, one click away, for the
    // mailbox's owner (their consent is theirs to give).
    let steer = state.microsoft.is_some()
        && super::checks::viewer_owns(session, channel)
        && warnings
            .iter()
            .any(|(code, _)| *code == "microsoft_password_login_retiring");
    html! {
        @if !warnings.is_empty() {
            div.notice.warning role="note" {
                p { strong { "Check these settings" } }
                ul { @for (_, message) in &warnings { li { (list::capitalized(message)) } } }
                @if steer {
                    (super::gmail::connect_button(session, ChannelKind::Microsoft))
                }
            }
        }
    }
}

/// Edit, disable or enable, delete: for those the API lets manage this channel.
fn manage_actions(session: &UiSession, channel: &SendChannel, offer_force: bool) -> Markup {
    if require_manage(&session.caller, channel.spec.owner).is_err() {
        return html! {};
    }
    let base = format!("/ui/channels/{}", channel.id);
    let disabled = channel.status == ChannelStatus::Disabled;
    html! {
        section.panel aria-labelledby="manage-heading" {
            h2 id="manage-heading" { "Manage" }
            div.actions {
                a.button.secondary href={(base) "/edit"} { "Edit channel" }
                form method="post" action={(base) "/status"} {
                    (layout::csrf(session))
                    @if disabled {
                        input type="hidden" name="status" value="active";
                        button.secondary type="submit" { "Enable channel" }
                    } @else {
                        input type="hidden" name="status" value="disabled";
                        button.secondary type="submit"
                            data-confirm="Disable this channel? Its mail is held until it is enabled again." { "Disable channel" }
                    }
                }
                form method="post" action={(base) "/delete"} {
                    (layout::csrf(session))
                    @if offer_force {
                        input type="hidden" name="force" value="on";
                        button.danger type="submit"
                            data-confirm={"Delete “" (channel.spec.name) "” although mail waits for it? That mail is routed afresh."} { "Delete anyway" }
                    } @else {
                        button.danger type="submit"
                            data-confirm={"Delete “" (channel.spec.name) "” and its stored password?"} { "Delete channel" }
                    }
                }
            }
        }
    }
}

/// The channel page; `problem` is an action's refusal shown on top (a delete while mail
/// waits, say), with the forced delete offered when that is what it takes.
fn channel_page(
    session: &UiSession,
    state: &AppState,
    channel: &SendChannel,
    names: &People,
    problem: Option<&ApiError>,
    dns: &super::dns::Found,
    dash: &ChannelDashboard,
) -> Markup {
    let offer_force = problem.is_some_and(|e| e.code() == "channel_has_mail");
    html! {
        p { a href="/ui/channels" { "← All channels" } }
        h1 { (channel.spec.name) " " (layout::status_badge(channel.status, channel.status_cause.as_deref())) }
        @if let Some(problem) = problem {
            p.notice.error role="alert" { (list::capitalized(&problem.problem().detail)) }
        }
        (health_notice(channel))
        (super::pause::panel(session, channel))
        (facts(channel, names))
        (warnings(session, state, channel))
        (super::activity::panel(channel, dash))
        (super::pacing::panel(session, channel))
        (super::checks::test_panel(session, channel))
        (super::rotate::rotate_panel(session, channel))
        (super::dns::panel(session, channel, dns))
        (super::gmail::channel_actions(session, state, channel))
        (manage_actions(session, channel, offer_force))
    }
}

async fn show(
    session: UiSession,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let channel = visible_one(&session.caller, &state, &id).await?;
    let names = People::load(&session.caller, &state).await?;
    let dns = super::dns::load(&session, &state, &channel).await?;
    let dash = super::activity::load(&session, &state, &channel).await?;
    let body = channel_page(&session, &state, &channel, &names, None, &dns, &dash);
    Ok(layout::page(
        &session,
        Section::Channels,
        channel.spec.name.as_str(),
        body,
    ))
}

/// An action the API refused for a reason the page can explain (409, 422): the channel page
/// again with the reason on top. Anything else (403, 404, …) is an error page.
pub(super) async fn refused(
    session: &UiSession,
    state: &AppState,
    id: &str,
    error: ApiError,
) -> Result<HttpResponse, UiError> {
    let status = error.problem().status;
    if status != 409 && status != 422 {
        return Err(error.into());
    }
    let channel = visible_one(&session.caller, state, id).await?;
    let names = People::load(&session.caller, state).await?;
    let dns = super::dns::load(session, state, &channel).await?;
    let dash = super::activity::load(session, state, &channel).await?;
    let body = channel_page(session, state, &channel, &names, Some(&error), &dns, &dash);
    Ok(layout::page_with_status(
        StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
        session,
        Section::Channels,
        channel.spec.name.as_str(),
        body,
    ))
}

#[derive(Deserialize)]
struct StatusForm {
    /// `disabled` or `active`.
    status: String,
}

async fn set_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<StatusForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let (disabled, done) = match form.status.as_str() {
        "disabled" => (
            true,
            "Channel disabled: its mail is held until it is enabled again.",
        ),
        "active" => (false, "Channel enabled."),
        other => {
            return Err(UiError::BadForm {
                detail: format!("unknown status `{other}`; use disabled or active"),
            });
        }
    };
    let request: UpdateChannelRequest = serde_json::from_value(json!({ "disabled": disabled }))
        .map_err(|e| UiError::Internal(e.to_string()))?;
    match api::update(&session.caller, &state, &id, request).await {
        Ok(channel) => Ok(session::redirect_with_flash(
            &req,
            &format!("/ui/channels/{}", channel.id),
            done,
        )),
        Err(e) => refused(&session, &state, &id, e).await,
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default, deserialize_with = "super::super::forms::checkbox_value")]
    force: bool,
}

async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<DeleteForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let channel = visible_one(&session.caller, &state, &id).await?;
    match api::delete(&session.caller, &state, &id, form.force).await {
        Ok(()) => Ok(session::redirect_with_flash(
            &req,
            "/ui/channels",
            &format!("Channel “{}” deleted.", channel.spec.name),
        )),
        Err(e) => refused(&session, &state, &id, e).await,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}", web::get().to(show))
        .route("/channels/{id}/status", web::post().to(set_status))
        .route("/channels/{id}/delete", web::post().to(delete));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_words() {
        assert_eq!(
            security_words(Security::Tls),
            "TLS from the start (implicit TLS)"
        );
        assert_eq!(auth_words(SmtpAuth::Login), "LOGIN");
    }
}
