//! `/ui/channels`: every channel the caller may see (the API's own visibility rule, shared
//! pool included), with status, owner and scope in words; and those words, which the
//! channel page reuses.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::super::UiError;
use super::super::layout::{self, Section};
use super::super::session::UiSession;
use crate::domain::providers;
use crate::domain::{Action, ChannelKind, ChannelStatus, CredentialScope, SendChannel};
use crate::http::AppState;
use crate::http::channels::{advice, visible};
use crate::http::ui::labels::People;

/// The kind of a channel in words.
pub(super) fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Smtp => "SMTP",
        ChannelKind::Gmail => "Gmail",
        ChannelKind::Microsoft => "Microsoft",
        ChannelKind::SharedPool => "Shared pool",
    }
}

/// The kind of a channel in words, with its provider preset when it has one.
pub(super) fn kind_words(channel: &SendChannel) -> String {
    let kind = kind_name(channel.spec.kind);
    match provider_name(channel) {
        Some(name) => format!("{kind} · {name}"),
        None => kind.to_owned(),
    }
}

/// The name of the preset a channel was made from.
pub(super) fn provider_name(channel: &SendChannel) -> Option<&'static str> {
    channel
        .spec
        .provider
        .as_deref()
        .and_then(providers::preset)
        .map(|p| p.name)
}

/// "Mailbox" or "Domain", and the addresses the channel may send as.
pub(super) fn scope_words(channel: &SendChannel) -> (&'static str, String) {
    match channel.spec.scope {
        CredentialScope::Mailbox => (
            "Mailbox",
            channel
                .spec
                .from_address
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        CredentialScope::Domain => (
            "Domain",
            channel
                .spec
                .domains
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The status badge with its cause, and for a channel that cannot send as it should, the
/// sentence that says what to do.
pub(super) fn status_with_advice(channel: &SendChannel) -> Markup {
    let advice = matches!(
        channel.status,
        ChannelStatus::NeedsReauth | ChannelStatus::Failing | ChannelStatus::Paused
    )
    .then(|| advice(channel.status, channel.status_cause.as_deref()))
    .flatten();
    html! {
        (layout::status_badge(channel.status, channel.status_cause.as_deref()))
        @if let Some(advice) = advice {
            p.advice.muted { (capitalized(advice)) "." }
        }
    }
}

/// The API's advice sentences start in lower case (they follow a field name); a page shows
/// them as sentences.
pub(super) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether the caller may create some channel (their own mailbox at least).
pub(super) fn may_create(session: &UiSession) -> bool {
    let actor = session.actor();
    actor.may(Action::ManageOwnMailboxChannels) || actor.may(Action::ManageSharedChannels)
}

fn row(channel: &SendChannel, names: &People) -> Markup {
    let (scope, addresses) = scope_words(channel);
    html! {
        tr {
            td { a href={"/ui/channels/" (channel.id)} { (channel.spec.name) } }
            td { (kind_words(channel)) }
            td { (status_with_advice(channel)) }
            td { (names.owner(channel.spec.owner)) }
            td { (scope) @if !addresses.is_empty() { br; span.muted { (addresses) } } }
            td { (layout::when(channel.last_used_at)) }
            td { (layout::when(channel.last_verified_at)) }
        }
    }
}

async fn list(session: UiSession, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let mut channels = visible(&session.caller, &state).await?;
    channels.sort_by(|a, b| {
        a.spec
            .name
            .as_str()
            .to_lowercase()
            .cmp(&b.spec.name.as_str().to_lowercase())
    });
    let names = People::load(&session.caller, &state).await?;
    let body = html! {
        h1 { "Channels" }
        p.muted {
            "A channel is how mail leaves: a mailbox (yours, over SMTP, Gmail or Microsoft) or a relay for "
            "your domains. Mail is routed to the channel that may send as its From address."
        }
        div.actions {
            @if may_create(&session) {
                a.button href="/ui/channels/new" { "Add SMTP channel" }
            }
            (super::gmail::connect_button_for(&session, &state))
        }
        @if channels.is_empty() {
            p.notice.info {
                "No channels yet. Start by adding an SMTP channel: your own mailbox (Office 365, "
                "Gmail with an app password) or a relay for your domains (SendGrid, SparkPost, "
                "Amazon SES); or connect Gmail or Microsoft with one click. Mail waits until a channel can "
                "carry it."
            }
        } @else {
            (layout::table(
                "",
                "Channels you may see",
                &["Name", "Kind", "Status", "Owner", "Scope", "Last used", "Last verified"],
                html! { @for channel in &channels { (row(channel, &names)) } },
            ))
        }
    };
    Ok(layout::page(&session, Section::Channels, "Channels", body))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::get().to(list));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_reads_as_a_sentence() {
        assert_eq!(
            capitalized("the server keeps failing"),
            "The server keeps failing"
        );
        assert_eq!(capitalized(""), "");
    }
}
