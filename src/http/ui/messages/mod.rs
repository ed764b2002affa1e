//! `/ui/messages`: recent messages with their status, channel and route, and one message's
//! facts and event log. The same code as `GET /v1/messages` decides what a viewer sees:
//! admins every message of the tenant, reps their own. Bodies are never shown; the API does
//! not show them either.

mod detail;

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::UiError;
use super::forms::{self, FieldErrors};
use super::labels::{ChannelLabels, People};
use super::layout::{self, Section};
use super::routes::decision::Decision;
use super::session::UiSession;
use crate::domain::Action;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::messages::{self, ListQuery, MessageView};

/// The statuses a message goes through, for the filter and the badges.
const STATUSES: [(&str, &str); 8] = [
    ("queued", "Queued"),
    ("sending", "Sending"),
    ("sent", "Sent"),
    ("partially_sent", "Partially sent"),
    ("deferred", "Deferred, will retry"),
    ("held", "Held"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
];

/// A message's status in words, coloured by how it went (the words carry the meaning).
pub(super) fn status_badge(status: &str) -> Markup {
    let class = match status {
        "sent" => "ok",
        "failed" => "bad",
        "held" | "deferred" | "partially_sent" => "warn",
        _ => "off",
    };
    let text = STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(status, |(_, t)| t);
    html! { span class={"badge " (class)} { (text) } }
}

/// The filters of the list, as the page's query string carries them.
#[derive(Debug, Default, Deserialize)]
struct Filters {
    status: Option<String>,
    channel_id: Option<String>,
    sender_user_id: Option<String>,
    before: Option<String>,
}

impl Filters {
    fn given(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("status", forms::non_empty(&self.status)),
            ("channel_id", forms::non_empty(&self.channel_id)),
            ("sender_user_id", forms::non_empty(&self.sender_user_id)),
        ]
    }

    /// The API's query for these filters, built as JSON so it passes the API's own schema.
    fn query(&self) -> Result<ListQuery, ApiError> {
        let mut q = Map::new();
        let before = ("before", forms::non_empty(&self.before));
        for (name, value) in self.given().into_iter().chain([before]) {
            if let Some(v) = value {
                q.insert(name.into(), json!(v));
            }
        }
        serde_json::from_value(Value::Object(q)).map_err(|e| ApiError::BadRequest {
            code: "invalid_query",
            detail: format!("the filters are not valid: {e}"),
        })
    }

    /// This page with the same filters, from `before` on (the newest when `None`).
    fn link(&self, before: Option<&str>) -> String {
        let pairs: Vec<(&str, &str)> = self
            .given()
            .into_iter()
            .chain([("before", before)])
            .filter_map(|(n, v)| Some((n, v?)))
            .collect();
        match serde_urlencoded::to_string(pairs) {
            Ok(q) if !q.is_empty() => format!("/ui/messages?{q}"),
            _ => "/ui/messages".to_owned(),
        }
    }

    fn any(&self) -> bool {
        self.given().iter().any(|(_, v)| v.is_some())
    }
}

async fn list_page(
    session: UiSession,
    state: web::Data<AppState>,
    query: web::Query<Filters>,
) -> Result<HttpResponse, UiError> {
    let filters = query.into_inner();
    // The API's own rule decides who may list and whose messages (SendMail; reps: theirs).
    let list = messages::list(&session.caller, &state, filters.query()?).await?;
    let labels = ChannelLabels::load(&session.caller, &state).await?;
    let people = People::load(&session.caller, &state).await?;
    let body = html! {
        h1 { "Messages" }
        p {
            @if session.actor().may(Action::SendAsAnyUser) {
                "Every message of the tenant, newest first."
            } @else {
                "Your messages, newest first."
            }
        }
        (filter_form(&filters, &labels, &people))
        @if list.messages.is_empty() {
            p.muted {
                @if filters.any() { "No messages match these filters." } @else { "No messages yet." }
            }
        } @else {
            (table(&list.messages, &labels))
        }
        div.actions {
            @if filters.before.is_some() {
                a.button.secondary href=(filters.link(None)) { "Newest messages" }
            }
            @if let Some(next) = &list.next {
                a.button.secondary href=(filters.link(Some(next))) rel="next" { "Older messages" }
            }
        }
    };
    Ok(layout::page(&session, Section::Messages, "Messages", body))
}

fn filter_form(filters: &Filters, labels: &ChannelLabels, people: &People) -> Markup {
    let none = FieldErrors::none();
    let mut statuses = vec![("", "All statuses")];
    statuses.extend(STATUSES);
    // Admins may narrow to one sender; reps see only their own anyway.
    let senders: Option<Vec<(String, String)>> = people.all().map(|users| {
        users
            .iter()
            .map(|u| (u.id.to_string(), u.email.to_string()))
            .collect()
    });
    let sender_options: Option<Vec<(&str, &str)>> = senders.as_ref().map(|list| {
        let mut options = vec![("", "Everyone")];
        options.extend(list.iter().map(|(v, t)| (v.as_str(), t.as_str())));
        options
    });
    html! {
        form.filters method="get" action="/ui/messages" {
            (forms::select("status", "Status", &statuses, forms::non_empty(&filters.status).or(Some("")), None, &none))
            (labels.filter_select(forms::non_empty(&filters.channel_id), &none))
            @if let Some(options) = &sender_options {
                (forms::select("sender_user_id", "Sender", options, forms::non_empty(&filters.sender_user_id).or(Some("")), None, &none))
            }
            div.field { button type="submit" { "Filter" } }
        }
    }
}

fn table(list: &[MessageView], labels: &ChannelLabels) -> Markup {
    let columns = [
        "Status",
        "Subject",
        "From",
        "Recipients",
        "Channel",
        "Route",
        "Created",
        "Updated",
    ];
    let rows = html! {
        @for m in list {
            tr {
                td { (status_badge(&m.status)) }
                td {
                    a href={"/ui/messages/" (m.id)} {
                        @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) }
                    }
                }
                td { (m.from) }
                td { (m.to.len() + m.cc.len() + m.bcc.len()) }
                td {
                    @match &m.channel_id {
                        Some(id) => (labels.link(id)),
                        None => span.muted { "none" },
                    }
                }
                td { (route_summary(m.route.as_ref())) }
                td { (layout::when(Some(m.created_at))) }
                td { (layout::when(Some(m.updated_at))) }
            }
        }
    };
    layout::table("", "Messages, newest first", &columns, rows)
}

pub(super) fn route_summary(route: Option<&Value>) -> Markup {
    match route.and_then(Decision::from_json) {
        Some(d) => html! { (d.summary()) },
        None => html! { span.muted { "not routed yet" } },
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::get().to(list_page));
    detail::routes(cfg);
}
