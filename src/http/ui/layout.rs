//! The frame around every page: head, navigation by role, the one-time notice, the main
//! region; and the small pieces pages share (status badges, times).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::{CSRF_FIELD, UiSession};
use crate::domain::{Action, ChannelStatus};

/// The sections of the navigation; a page names the one it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Channels,
    Route,
    Messages,
    Audit,
    Domains,
    Suppressions,
    Settings,
    People,
}

impl Section {
    fn all() -> [(Section, &'static str, &'static str, Option<Action>); 9] {
        [
            // Everyone: admins see every channel there, others their own mailboxes.
            (Section::Overview, "/ui/overview", "Overview", None),
            (Section::Channels, "/ui/channels", "Channels", None),
            (
                Section::Route,
                "/ui/route",
                "Route explain",
                Some(Action::ExplainRoutes),
            ),
            (
                Section::Messages,
                "/ui/messages",
                "Messages",
                Some(Action::SendMail),
            ),
            (
                Section::Audit,
                "/ui/audit",
                "Audit",
                Some(Action::ReadAudit),
            ),
            (
                Section::Domains,
                "/ui/domains",
                "Domains",
                Some(Action::ReadDomains),
            ),
            (
                Section::Suppressions,
                "/ui/suppressions",
                "Suppressions",
                Some(Action::ReadSuppressions),
            ),
            (
                Section::Settings,
                "/ui/settings",
                "Settings",
                Some(Action::ReadTenant),
            ),
            // Everyone: admins see every user there, others their own page and tokens.
            (Section::People, "/ui/people", "People", None),
        ]
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Switchboard" }
            link rel="stylesheet" href=(assets::CSS_PATH);
            script src=(assets::JS_PATH) defer {}
        }
    }
}

/// A full page for a signed-in user.
pub fn page(session: &UiSession, section: Section, title: &str, body: Markup) -> HttpResponse {
    page_with_status(StatusCode::OK, session, section, title, body)
}

/// A full page with a status other than 200 (a form sent back with errors is a 422).
pub fn page_with_status(
    status: StatusCode,
    session: &UiSession,
    section: Section,
    title: &str,
    body: Markup,
) -> HttpResponse {
    let actor = session.actor();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/channels" { "Switchboard" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label, needs) in Section::all() {
                                @if needs.is_none_or(|a| actor.may(a)) {
                                    li {
                                        a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/ui/sign-out" {
                        (csrf(session))
                        span.who { "Signed in as " (actor.role) }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(text) = &session.flash {
                        p.notice.success role="status" { (text) }
                    }
                    (body)
                }
            }
        }
    };
    html_response(status, markup)
}

/// A page without navigation: sign-in and errors.
pub fn bare(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                header.top { a.brand href="/ui/" { "Switchboard" } }
                main id="main" { (body) }
            }
        }
    };
    html_response(status, markup)
}

/// The part of a page that answers a form sent by the page script.
pub fn fragment(status: StatusCode, markup: Markup) -> HttpResponse {
    html_response(status, markup)
}

fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &UiSession) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// A coloured badge with the status (and its cause) in words; colour is never the only
/// signal.
pub fn status_badge(status: ChannelStatus, cause: Option<&str>) -> Markup {
    let (class, text) = match status {
        ChannelStatus::Active => ("ok", "Active"),
        ChannelStatus::NeedsReauth => ("bad", "Needs reauth"),
        ChannelStatus::Failing => ("warn", "Failing"),
        ChannelStatus::Disabled => ("off", "Disabled"),
        ChannelStatus::Paused => ("warn", "Paused"),
    };
    html! {
        span class={"badge " (class)} {
            (text)
            // A disabled channel's cause says who disabled it (an id); the audit names them.
            @if let Some(cause) = cause.filter(|_| matches!(status, ChannelStatus::NeedsReauth | ChannelStatus::Failing | ChannelStatus::Paused)) {
                ": " (cause.replace('_', " "))
            }
        }
    }
}

/// A table that scrolls sideways on a narrow screen rather than squeeze, with a caption
/// for screen readers and a header row; `rows` are its `tr`s.
pub fn table(class: &str, caption: &str, columns: &[&str], rows: Markup) -> Markup {
    html! {
        div.table-wrap {
            table class=[(!class.is_empty()).then_some(class)] {
                caption.visually-hidden { (caption) }
                thead { tr { @for column in columns { th scope="col" { (column) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// A time for people (UTC, to the minute) with the exact value for machines.
pub fn when(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) }
        },
        None => html! { span.muted { "never" } },
    }
}
