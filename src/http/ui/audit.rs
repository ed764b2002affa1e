//! `/ui/audit`: the tenant's audit trail for admins and IT, through the same code as
//! `GET /v1/audit` and with its filters (time, channel, action). The API pages by time
//! (`since` inclusive, `until` exclusive, oldest first), so this page shows a period at a
//! time, newest first, and "Older events" moves to the period before.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, Timelike, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::UiError;
use super::forms::{self, FieldErrors, Input};
use super::labels::{ChannelLabels, People, short, summarize};
use super::layout::{self, Section};
use super::routes::form_error;
use super::session::UiSession;
use crate::domain::Action;
use crate::http::AppState;
use crate::http::audit::{self, AuditView};
use crate::http::error::ApiError;

/// Events per page; the API gives at most 1000.
const PAGE: i64 = 500;
/// The period shown when the page is opened without filters.
const DEFAULT_PERIOD_DAYS: i64 = 7;

/// Actions that are recorded, for the filter; a family ends in a dot, as the API takes it.
const ACTIONS: [(&str, &str); 20] = [
    ("", "All actions"),
    ("channel.", "Every channel event"),
    ("channel.created", "channel.created"),
    ("channel.updated", "channel.updated"),
    ("channel.deleted", "channel.deleted"),
    ("channel.assigned", "channel.assigned"),
    ("channel.tested", "channel.tested"),
    ("channel.verified", "channel.verified"),
    ("channel.verification_failed", "channel.verification_failed"),
    ("channel.needs_reauth", "channel.needs_reauth"),
    ("channel.failing", "channel.failing"),
    ("channel.recovered", "channel.recovered"),
    ("channel.reconnected", "channel.reconnected"),
    ("credential.", "Every credential event"),
    ("credential.rotated", "credential.rotated"),
    ("credential.revoked", "credential.revoked"),
    ("message.failed", "message.failed"),
    ("team.", "Every team event"),
    ("tenant.", "Every tenant event"),
    ("webhook.", "Every webhook event"),
];

/// The page's query string. A `since` that is absent means the default period; present
/// and empty means from the beginning.
#[derive(Debug, Default, Deserialize)]
struct Filters {
    since: Option<String>,
    until: Option<String>,
    channel_id: Option<String>,
    action: Option<String>,
}

/// The filters once read: times parsed, empties dropped.
struct Period {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

/// A time as a person types it (`2026-11-24T09:30`, as a datetime-local field sends it) or
/// as a link carries it (RFC 3339), in UTC.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .map(|t| t.and_utc())
}

/// The value of a datetime-local field (to the second; links keep the exact time).
fn field_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) if t.second() == 0 && t.nanosecond() == 0 => t.format("%Y-%m-%dT%H:%M").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => String::new(),
    }
}

fn exact(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Filters {
    fn period(&self, now: DateTime<Utc>) -> Result<Period, FieldErrors> {
        let read = |name: &str, raw: Option<&String>| match raw.map(|r| r.trim()) {
            None | Some("") => Ok(None),
            Some(raw) => parse_time(raw).map(Some).ok_or_else(|| {
                FieldErrors::on(name, "a date and time in UTC, such as 2026-11-24T09:30")
            }),
        };
        let until = read("until", self.until.as_ref())?;
        let since = match &self.since {
            None if until.is_none() => Some(now - Duration::days(DEFAULT_PERIOD_DAYS)),
            raw => read("since", raw.as_ref())?,
        };
        Ok(Period { since, until })
    }

    /// The API's query, built as JSON so it passes the API's own schema and checks.
    fn query(&self, period: &Period) -> Result<audit::AuditQuery, ApiError> {
        let mut q = Map::new();
        if let Some(t) = period.since {
            q.insert("since".into(), json!(exact(t)));
        }
        if let Some(t) = period.until {
            q.insert("until".into(), json!(exact(t)));
        }
        for (name, value) in [("channel_id", &self.channel_id), ("action", &self.action)] {
            if let Some(v) = forms::non_empty(value) {
                q.insert(name.into(), json!(v));
            }
        }
        q.insert("limit".into(), json!(PAGE));
        serde_json::from_value(Value::Object(q)).map_err(|e| ApiError::BadRequest {
            code: "invalid_query",
            detail: format!("the filters are not valid: {e}"),
        })
    }

    /// This page for another period, with the same channel and action.
    fn link(&self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> String {
        let since = since.map(exact).unwrap_or_default();
        let until = until.map(exact);
        let mut pairs: Vec<(&str, &str)> = vec![("since", &since)];
        if let Some(u) = &until {
            pairs.push(("until", u));
        }
        for (name, value) in [("channel_id", &self.channel_id), ("action", &self.action)] {
            if let Some(v) = forms::non_empty(value) {
                pairs.push((name, v));
            }
        }
        format!(
            "/ui/audit?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }
}

async fn audit_page(
    session: UiSession,
    state: web::Data<AppState>,
    query: web::Query<Filters>,
) -> Result<HttpResponse, UiError> {
    session.caller.require(Action::ReadAudit)?;
    let filters = query.into_inner();
    let now = Utc::now();
    let labels = ChannelLabels::load(&session.caller, &state).await?;
    let people = People::load(&session.caller, &state).await?;
    let found = match filters.period(now) {
        Err(errors) => Err(errors),
        Ok(period) => match filters.query(&period) {
            Ok(q) => match audit::search(&session.caller, &state, q).await {
                Ok(events) => Ok((period, events)),
                Err(e) => Err(form_error(e)?),
            },
            Err(e) => Err(form_error(e)?),
        },
    };
    let (status, errors, period, events) = match found {
        Ok((period, events)) => (StatusCode::OK, FieldErrors::none(), Some(period), events),
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors, None, Vec::new()),
    };
    let body = html! {
        h1 { "Audit" }
        p { "Who changed what, and what the service did on its own. Times are UTC." }
        (errors.summary())
        (filter_form(&filters, period.as_ref(), &labels, &errors))
        @if let Some(period) = &period {
            (results(&filters, period, now, &events, &labels, &people))
        }
    };
    Ok(layout::page_with_status(
        status,
        &session,
        Section::Audit,
        "Audit",
        body,
    ))
}

fn filter_form(
    filters: &Filters,
    period: Option<&Period>,
    labels: &ChannelLabels,
    errors: &FieldErrors,
) -> Markup {
    let (since, until) = match period {
        Some(p) => (field_time(p.since), field_time(p.until)),
        None => (
            filters.since.clone().unwrap_or_default(),
            filters.until.clone().unwrap_or_default(),
        ),
    };
    let mut action_options = ACTIONS.to_vec();
    let selected_action = forms::non_empty(&filters.action);
    if let Some(a) = selected_action.filter(|a| !ACTIONS.iter().any(|(v, _)| v == a)) {
        action_options.push((a, a));
    }
    html! {
        form.filters method="get" action="/ui/audit" {
            (Input::text("since", "Since (UTC)").kind("datetime-local").value(Some(&since)).render(errors))
            (Input::text("until", "Until (UTC)").kind("datetime-local").value(Some(&until)).render(errors))
            (labels.filter_select(forms::non_empty(&filters.channel_id), errors))
            (forms::select("action", "Action", &action_options, selected_action.or(Some("")), None, errors))
            div.field { button type="submit" { "Filter" } }
        }
    }
}

fn results(
    filters: &Filters,
    period: &Period,
    now: DateTime<Utc>,
    events: &[AuditView],
    labels: &ChannelLabels,
    people: &People,
) -> Markup {
    let full = events.len() as i64 >= PAGE;
    // Older and newer periods of the same length; an open-ended period has no "older".
    let length = period.since.map(|s| period.until.unwrap_or(now) - s);
    let older = period
        .since
        .zip(length)
        .map(|(s, len)| filters.link(Some(s - len), Some(s)));
    let newer = period.until.zip(length).map(|(u, len)| {
        let end = u + len;
        filters.link(Some(u), (end < now).then_some(end))
    });
    html! {
        p.muted {
            @match (period.since, period.until) {
                (Some(s), Some(u)) => { "From " (layout::when(Some(s))) " until " (layout::when(Some(u))) "." },
                (Some(s), None) => { "Since " (layout::when(Some(s))) "." },
                (None, Some(u)) => { "Everything before " (layout::when(Some(u))) "." },
                (None, None) => { "Everything." },
            }
        }
        @if full {
            p.notice.info {
                "This period has more than " (PAGE) " events; the earliest " (PAGE) " are shown. "
                @if let Some(last) = events.last() {
                    a href=(filters.link(Some(last.at), period.until)) { "Later events in this period" }
                }
            }
        }
        @if events.is_empty() {
            p.muted { "No events in this period match these filters." }
        } @else {
            (layout::table(
                "audit",
                "Audit events, newest first",
                &["Time", "Actor", "Action", "Subject", "Details"],
                html! {
                    @for e in events.iter().rev() {
                        tr data-action=(e.action) {
                            td { (layout::when(Some(e.at))) }
                            td { (actor(&e.actor, people)) }
                            td { code { (e.action) } }
                            td { (subject(e, labels, people)) }
                            td { (summarize(&e.detail)) }
                        }
                    }
                },
            ))
        }
        div.actions {
            @if let Some(href) = newer { a.button.secondary href=(href) { "Newer events" } }
            @if let Some(href) = older { a.button.secondary href=(href) rel="next" { "Older events" } }
        }
    }
}

/// The API's actor (`user:<id>`, `operator`, `cli`, `system`) for a person.
fn actor(raw: &str, people: &People) -> Markup {
    match raw.strip_prefix("user:") {
        Some(id) => people.name(id),
        None => html! {
            @match raw {
                "operator" => "platform operator",
                "cli" => "server command line",
                "recipient" => "a recipient (unsubscribe link)",
                other => (other),
            }
        },
    }
}

/// What an event is about: a channel (linked when the viewer sees it), a user, or the id.
fn subject(e: &AuditView, labels: &ChannelLabels, people: &People) -> Markup {
    let Some(target) = e.target.as_deref() else {
        return html! { span.muted { "—" } };
    };
    if labels.get(target).is_some()
        || e.action.starts_with("channel.")
        || e.action.starts_with("credential.")
    {
        return labels.link(target);
    }
    if e.action.starts_with("user.") {
        return people.name(target);
    }
    if e.action.starts_with("tenant.") {
        return html! { "this tenant" };
    }
    html! { code title=(target) { (short(target)) } }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(audit_page));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_typed_or_as_linked() {
        let typed = parse_time("2026-11-24T09:30").unwrap();
        assert_eq!(exact(typed), "2026-11-24T09:30:00.000000Z");
        let linked = parse_time("2026-11-24T09:30:00.123456Z").unwrap();
        assert_eq!(exact(linked), "2026-11-24T09:30:00.123456Z");
        assert!(parse_time("yesterday").is_none());
        assert_eq!(field_time(Some(typed)), "2026-11-24T09:30");
    }

    #[test]
    fn no_filters_means_the_last_week_and_an_empty_since_means_everything() {
        let now = parse_time("2026-11-24T09:30").unwrap();
        let default = Filters::default().period(now).ok().unwrap();
        assert_eq!(default.since, Some(now - Duration::days(7)));
        let everything = Filters {
            since: Some(String::new()),
            ..Filters::default()
        };
        assert_eq!(everything.period(now).ok().unwrap().since, None);
        let bad = Filters {
            since: Some("soon".into()),
            ..Filters::default()
        };
        assert!(bad.period(now).is_err());
    }
}
