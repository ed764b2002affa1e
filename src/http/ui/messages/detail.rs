//! `/ui/messages/{id}`: one message as `GET /v1/messages/{id}` shows it: its facts, the
//! route it took and every event of its log, with the servers' replies to each attempt.

use crate::http::ui::forms::NoFields;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde_json::Value;

use super::status_badge;
use crate::http::AppState;
use crate::http::messages::{self, EventView, MessageView};
use crate::http::ui::UiError;
use crate::http::ui::labels::{ChannelLabels, summarize};
use crate::http::ui::layout::{self, Section};
use crate::http::ui::routes::decision::{self, Decision};
use crate::http::ui::session::{self, UiPost, UiSession};

async fn message_page(
    session: UiSession,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    // A rep asking for another sender's message gets the API's 404, as if it did not exist.
    let message = messages::read_message(&session.caller, &state, &id).await?;
    let labels = ChannelLabels::load(&session.caller, &state).await?;
    let title = if message.subject.is_empty() {
        "(no subject)".to_owned()
    } else {
        message.subject.clone()
    };
    let body = html! {
        p { a href="/ui/messages" { "← Messages" } }
        h1 { (title) " " (status_badge(&message.status)) }
        (facts(&message, &labels))
        @if matches!(message.status.as_str(), "queued" | "deferred" | "held") {
            form method="post" action={"/ui/messages/" (message.id) "/cancel"} {
                (layout::csrf(&session))
                button.danger type="submit"
                    data-confirm="Cancel this message? It will never be sent." { "Cancel message" }
            }
        }
        h2 id="recipients" { "Recipients" }
        (recipients(&message))
        h2 { "Route" }
        @match message.route.as_ref().and_then(Decision::from_json) {
            Some(d) => (decision::render(&d, &labels, decision::Tense::Was)),
            None => p.muted { "Not routed yet." },
        }
        h2 id="events" { "Event log" }
        (events(message.events.as_deref().unwrap_or_default(), &labels))
    };
    Ok(layout::page(&session, Section::Messages, &title, body))
}

fn addresses(list: &[String]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "none" } } @else { (list.join(", ")) }
    }
}

fn facts(m: &MessageView, labels: &ChannelLabels) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd { (status_badge(&m.status)) }
            @if let Some(reason) = &m.hold_reason {
                dt { "Held because" } dd { (reason.replace('_', " ")) " (" code { (reason) } ")" }
            }
            dt { "From" } dd { (m.from) }
            dt { "To" } dd { (addresses(&m.to)) }
            dt { "Cc" } dd { (addresses(&m.cc)) }
            dt { "Bcc" } dd { (addresses(&m.bcc)) }
            dt { "Channel" } dd {
                @match &m.channel_id {
                    Some(id) => (labels.link_with_status(id)),
                    None => span.muted { "none" },
                }
            }
            dt { "Attempts" } dd { (m.attempts) }
            @if let Some(error) = &m.last_error {
                dt { "Last error" } dd { span.reply { (error) } }
            }
            @if let Some(at) = m.next_attempt_at {
                dt { "Next attempt" } dd { (layout::when(Some(at))) }
            }
            dt { "Message-ID" } dd { code { (m.message_id) } }
            @if let Some(key) = &m.idempotency_key {
                dt { "Idempotency key" } dd { code { (key) } }
            }
            dt { "Size" } dd { (m.size_bytes) " bytes"
                @if !m.body_retained { span.muted { " (body removed by retention; the log stays)" } }
            }
            dt { "Created" } dd { (layout::when(Some(m.created_at))) }
            dt { "Updated" } dd { (layout::when(Some(m.updated_at))) }
            @if let Some(at) = m.sent_at {
                dt { "Sent" } dd { (layout::when(Some(at))) }
            }
        }
    }
}

/// Each recipient with its own status and the server's reply for it.
fn recipients(m: &MessageView) -> Markup {
    layout::table(
        "recipients",
        "Recipients and what the server answered for each",
        &["Recipient", "Status", "Reply"],
        html! {
            @for r in &m.recipients {
                tr {
                    td { (r.address) }
                    td { (status_badge(match r.status.as_str() {
                        "pending" => "queued",
                        other => other,
                    })) }
                    td {
                        @match (&r.code, &r.reply) {
                            (Some(code), Some(reply)) if !reply.contains(&code.to_string()) => span.reply { (code) " " (reply) },
                            (_, Some(reply)) => span.reply { (reply) },
                            _ => span.muted { "—" },
                        }
                    }
                }
            }
        },
    )
}

/// The kind of an event in words.
fn kind_words(kind: &str) -> &str {
    match kind {
        "accepted" => "Accepted",
        "routed" => "Routed",
        "attempt" => "Attempt",
        "deferred" => "Deferred",
        "held" => "Held",
        "released" => "Released",
        "sent" => "Sent",
        "partially_sent" => "Partially sent",
        "failed" => "Failed",
        "lease_expired" => "Worker stopped",
        "cancelled" => "Cancelled",
        other => other,
    }
}

fn events(list: &[EventView], labels: &ChannelLabels) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted { "No events." }
        } @else {
            (layout::table(
                "events",
                "Event log, oldest first",
                &["Time", "Event", "Detail"],
                html! {
                    @for e in list {
                        tr data-kind=(e.kind) {
                            td { (layout::when(Some(e.at))) }
                            td { (kind_words(&e.kind)) }
                            td { (event_detail(e, labels)) }
                        }
                    }
                },
            ))
        }
    }
}

/// An event's detail as a sentence; the server's reply verbatim, as the log keeps it.
fn event_detail(e: &EventView, labels: &ChannelLabels) -> Markup {
    let d = &e.detail;
    let text = |key: &str| d.get(key).and_then(Value::as_str);
    let number = |key: &str| d.get(key).and_then(Value::as_i64);
    let channel = |key: &str| {
        html! { @if let Some(id) = text(key) { " through " (labels.link(id)) } }
    };
    let reply = |key: &str| {
        html! {
            @if let Some(reply) = text(key).filter(|r| !r.is_empty()) {
                @if key == "error" { "; error:" } @else { "; server replied:" }
                span.reply { (reply) }
            }
        }
    };
    match e.kind.as_str() {
        "accepted" => html! {
            (number("recipients").unwrap_or(0)) " recipient(s), "
            (number("size_bytes").unwrap_or(0)) " bytes"
        },
        "routed" => match Decision::from_json(d) {
            Some(decision) => html! {
                (decision.summary())
                @if let Some(id) = &decision.channel_id { ": " (labels.link(id)) }
            },
            None => html! { (summarize(d)) },
        },
        "attempt" => html! {
            @match text("result") {
                Some("ok") => "Accepted by the server",
                Some(class) => { "Failed (" (class) ")" },
                None => "Tried",
            }
            (channel("channel_id"))
            @if let Some(code) = number("code") { ", reply " code { (code) } }
            @if let Some(ms) = number("duration_ms") { " after " (ms) " ms" }
            (reply("reply"))
            @if let Some(dkim) = d.get("dkim") {
                @match dkim.get("selector").and_then(Value::as_str) {
                    Some(selector) => { "; DKIM-signed with selector " code { (selector) } },
                    None => { "; " (dkim.get("detail").and_then(Value::as_str).unwrap_or("not DKIM-signed")) },
                }
            }
        },
        "sent" => html! { "Sent" (channel("channel_id")) (reply("reply")) },
        "deferred" => html! {
            (text("reason").unwrap_or("deferred").replace('_', " "))
            @if let Some(until) = text("until") { "; next try at " (until) }
            (reply("error"))
        },
        "held" => html! {
            (text("reason").unwrap_or("held").replace('_', " "))
            @if let Some(id) = text("channel_id") { "; waits for " (labels.link(id)) }
            (reply("error"))
        },
        "released" => html! { (text("why").unwrap_or("released")) },
        "cancelled" => html! { "Cancelled before it was sent; it never will be" },
        "failed" => html! {
            (text("reason").unwrap_or("failed").replace('_', " "))
            (reply("error"))
        },
        _ => html! { (summarize(d)) },
    }
}

/// The page's Cancel button: the API's cancel, then back to the message.
async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<NoFields>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, .. } = post;
    let message = messages::cancel(&session.caller, &state, &id).await?;
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/messages/{}", message.id),
        "Message cancelled: it will never be sent.",
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages/{id}", web::get().to(message_page))
        .route("/messages/{id}/cancel", web::post().to(cancel));
}
