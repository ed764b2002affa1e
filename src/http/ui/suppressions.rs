//! `/ui/suppressions`: the addresses the tenant no longer mails (unsubscribed, hard-bounced,
//! added by an admin), newest first, with a search by address and older pages. Admins add
//! and remove entries here; IT reads. The same functions as `/v1/suppressions` do the work.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::UiError;
use super::forms::{self, FieldErrors, Input};
use super::layout::{self, Section};
use super::routes::form_error;
use super::session::{self, UiPost, UiSession};
use crate::domain::Action;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::suppressions::{self, AddSuppressionRequest, ListQuery, SuppressionView};

/// Entries per page: enough to scan, few enough to render at once.
const PAGE: i64 = 100;

/// The reasons an admin may give, and how the page names every reason.
const REASONS: [(&str, &str); 3] = [
    ("manual", "Added by an admin"),
    ("unsubscribed", "Unsubscribed"),
    ("hard_bounce", "Hard bounce"),
];

#[derive(Debug, Deserialize)]
struct PageQuery {
    address: Option<String>,
    before: Option<String>,
}

/// Not `deny_unknown_fields`: the CSRF token rides along.
#[derive(Debug, Deserialize)]
struct AddForm {
    address: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RemoveForm {
    address: String,
}

fn reason_badge(reason: &str) -> Markup {
    let text = REASONS
        .iter()
        .find(|(value, _)| *value == reason)
        .map_or(reason, |(_, text)| text);
    let class = if reason == "hard_bounce" {
        "bad"
    } else {
        "warn"
    };
    html! { span class={"badge " (class)} { (text) } }
}

fn row(session: &UiSession, entry: &SuppressionView) -> Markup {
    html! {
        tr {
            th scope="row" { (entry.address) }
            td { (reason_badge(entry.reason)) }
            td { (layout::when(Some(entry.created_at))) }
            td {
                @if let Some(message) = &entry.source.message_id {
                    a href={"/ui/messages/" (message)} {
                        @if entry.reason == "hard_bounce" { "the message that bounced" }
                        @else { "the message whose link was used" }
                    }
                } @else if entry.created_by.is_some() {
                    "added by hand"
                } @else {
                    span.muted { "imported" }
                }
            }
            td.actions {
                @if session.actor().may(Action::ManageSuppressions) {
                    form method="post" action="/ui/suppressions/remove" {
                        (layout::csrf(session))
                        input type="hidden" name="address" value=(entry.address);
                        button.secondary type="submit"
                            aria-label={"Remove " (entry.address) " from the list"} { "Remove" }
                    }
                }
            }
        }
    }
}

struct Listing<'a> {
    entries: &'a [SuppressionView],
    next: Option<&'a str>,
    searched: Option<&'a str>,
}

fn page_body(
    session: &UiSession,
    listing: &Listing<'_>,
    typed: (&str, &str),
    errors: &FieldErrors,
) -> Markup {
    let admin = session.actor().may(Action::ManageSuppressions);
    html! {
        h1 { "Suppressions" }
        p {
            "Nobody on this list gets the tenant's mail, whatever channel it would go through: "
            "new messages to them are refused with " code { "recipient_suppressed" }
            ", and queued mail leaves them out. A message marked transactional (a receipt, a password reset) still goes. "
            "Recipients add themselves with a message's one-click unsubscribe link; an address a server refuses as nonexistent (a hard bounce) is added automatically."
        }
        @if admin {
            (errors.summary())
            form.inline method="post" action="/ui/suppressions" {
                (layout::csrf(session))
                (Input::text("address", "Address to suppress")
                    .kind("email")
                    .value(Some(typed.0))
                    .placeholder("name@example.com")
                    .required()
                    .render(errors))
                (forms::select("reason", "Reason", &REASONS, Some(typed.1),
                    Some(html! { "Use Unsubscribed or Hard bounce when copying a list kept elsewhere." }), errors))
                div.actions { button type="submit" { "Suppress" } }
            }
        }
        form.inline method="get" action="/ui/suppressions" role="search" {
            (Input::text("address", "Find an address")
                .kind("email")
                .value(listing.searched)
                .render(&FieldErrors::none()))
            div.actions {
                button.secondary type="submit" { "Find" }
                @if listing.searched.is_some() { " " a href="/ui/suppressions" { "Show all" } }
            }
        }
        @if listing.entries.is_empty() {
            p.muted {
                @if let Some(address) = listing.searched { (address) " is not on the list." }
                @else { "Nobody is suppressed." }
            }
        } @else {
            (layout::table("suppressions", "Suppressed addresses", &["Address", "Reason", "Since", "Source", ""],
                html! { @for entry in listing.entries { (row(session, entry)) } }))
            @if let Some(next) = listing.next {
                p { a href={"/ui/suppressions?before=" (next)} { "Older entries" } }
            }
        }
    }
}

async fn show(
    session: UiSession,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let query = query.into_inner();
    let searched = forms::non_empty(&query.address).map(str::trim);
    let listed = suppressions::list(
        &session.caller,
        &state,
        ListQuery {
            address: searched.map(str::to_owned),
            before: query.before.clone(),
            limit: Some(PAGE),
        },
    )
    .await;
    let (list, errors) = match listed {
        Ok(list) => (list, FieldErrors::none()),
        // A search for something that is not an address finds nobody; say why.
        Err(ApiError::BadRequest { detail, .. }) => (
            suppressions::SuppressionList {
                suppressions: Vec::new(),
                next: None,
            },
            FieldErrors::on("address", detail),
        ),
        Err(e) => return Err(e.into()),
    };
    let listing = Listing {
        entries: &list.suppressions,
        next: list.next.as_deref(),
        searched,
    };
    Ok(layout::page(
        &session,
        Section::Suppressions,
        "Suppressions",
        page_body(&session, &listing, ("", "manual"), &errors),
    ))
}

async fn add(
    req: HttpRequest,
    post: UiPost<AddForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let address = form.address.unwrap_or_default();
    let reason = form.reason.unwrap_or_else(|| "manual".to_owned());
    let request = AddSuppressionRequest {
        address: address.clone(),
        reason: Some(reason.clone()),
    };
    match suppressions::add(&session.caller, &state, request).await {
        Ok((entry, added)) => Ok(session::redirect_with_flash(
            &req,
            "/ui/suppressions",
            &if added {
                format!("{} suppressed: no more mail goes to it", entry.address)
            } else {
                format!("{} was already on the list", entry.address)
            },
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let list = suppressions::list(
                &session.caller,
                &state,
                ListQuery {
                    address: None,
                    before: None,
                    limit: Some(PAGE),
                },
            )
            .await?;
            let listing = Listing {
                entries: &list.suppressions,
                next: list.next.as_deref(),
                searched: None,
            };
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &session,
                Section::Suppressions,
                "Suppressions",
                page_body(&session, &listing, (&address, &reason), &errors),
            ))
        }
    }
}

async fn remove(
    req: HttpRequest,
    post: UiPost<RemoveForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let text = match suppressions::remove(&session.caller, &state, &form.address).await {
        Ok(()) => format!(
            "{} removed from the list: mail to it is accepted again",
            form.address
        ),
        Err(ApiError::NotFound { .. }) => format!("{} was not on the list", form.address),
        Err(e) => return Err(e.into()),
    };
    Ok(session::redirect_with_flash(
        &req,
        "/ui/suppressions",
        &text,
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/suppressions", web::get().to(show))
        .route("/suppressions", web::post().to(add))
        .route("/suppressions/remove", web::post().to(remove));
}
