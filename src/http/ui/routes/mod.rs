//! `/ui/route`: route explain. A From address (and, for admins, a sender) in; the router's
//! decision out, from the same code as `POST /v1/route/explain`. It changes nothing, so the
//! form is a GET and an answer can be bookmarked or shared.
//! Also home of what the message and audit pages share: decisions and names for ids.

pub mod decision;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::UiError;
use super::forms::{self, FieldErrors, Input};
use super::layout::{self, Section};
use super::session::UiSession;
use crate::domain::Action;
use crate::http::AppState;
use crate::http::error::{ApiError, body_error};
use crate::http::messages::{self, ExplainRequest};
use crate::http::ui::labels::{ChannelLabels, People};
use decision::Decision;

/// The value of the sender drop-down that means the signed-in user.
const ME: &str = "me";

#[derive(Debug, Default, Deserialize)]
struct ExplainForm {
    from: Option<String>,
    sender_user_id: Option<String>,
    recipients: Option<String>,
}

/// An API error a person fixes in the form (a field, a value), as opposed to one that ends
/// the request (not allowed, not found, the database down).
pub(super) fn form_error(error: ApiError) -> Result<FieldErrors, UiError> {
    match error {
        ApiError::InvalidField { .. }
        | ApiError::InvalidMessage { .. }
        | ApiError::Unprocessable { .. }
        | ApiError::BadRequest { .. } => Ok(FieldErrors::from_api(&error)),
        other => Err(other.into()),
    }
}

/// The API's request for this form, built as JSON so it passes the API's own schema.
fn request(form: &ExplainForm, from: &str) -> Result<ExplainRequest, ApiError> {
    let mut body = Map::new();
    body.insert("from".into(), json!(from));
    if let Some(sender) = forms::non_empty(&form.sender_user_id).filter(|s| *s != ME) {
        body.insert("sender_user_id".into(), json!(sender));
    }
    if let Some(raw) = forms::non_empty(&form.recipients) {
        let count: u32 = raw.parse().map_err(|_| ApiError::InvalidField {
            field: "recipients",
            reason: "a whole number of recipients, 1 or more".into(),
        })?;
        body.insert("recipients".into(), json!(count));
    }
    serde_json::from_value(Value::Object(body)).map_err(|e| body_error(&e))
}

async fn explain_page(
    session: UiSession,
    state: web::Data<AppState>,
    query: web::Query<ExplainForm>,
) -> Result<HttpResponse, UiError> {
    session.caller.require(Action::ExplainRoutes)?;
    let form = query.into_inner();
    let labels = ChannelLabels::load(&session.caller, &state).await?;
    // Admins pick any user of the tenant; the API lets others explain only for themselves
    // (IT may too, by id, but has no list of users to pick from).
    let people = if session.actor().may(Action::ReadAllChannels) {
        Some(People::load(&session.caller, &state).await?)
    } else {
        None
    };
    let (status, errors, outcome) = match forms::non_empty(&form.from) {
        None => (StatusCode::OK, FieldErrors::none(), None),
        Some(from) => {
            let explained = match request(&form, from) {
                Ok(req) => messages::explain(&session.caller, &state, req).await,
                Err(e) => Err(e),
            };
            match explained {
                Ok(value) => (StatusCode::OK, FieldErrors::none(), Some(value)),
                Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, form_error(e)?, None),
            }
        }
    };
    let body = html! {
        h1 { "Route explain" }
        p { "Which channel would carry a message from this address now, and why the others would not. Nothing is sent." }
        (errors.summary())
        (explain_form(&form, people.as_ref(), &errors))
        @if let Some(value) = &outcome {
            section aria-labelledby="decision-heading" {
                h2 id="decision-heading" { "Decision" }
                @match Decision::from_json(value) {
                    Some(d) => (decision::render(&d, &labels, decision::Tense::WouldBe)),
                    None => p.notice.error { "The decision could not be read." },
                }
            }
        }
    };
    Ok(layout::page_with_status(
        status,
        &session,
        Section::Route,
        "Route explain",
        body,
    ))
}

fn explain_form(form: &ExplainForm, people: Option<&People>, errors: &FieldErrors) -> Markup {
    let senders: Option<Vec<(String, String)>> = people.and_then(People::all).map(|users| {
        let mut options = vec![(ME.to_owned(), "Me".to_owned())];
        options.extend(users.iter().map(|u| {
            let disabled = if u.disabled { ", disabled" } else { "" };
            (
                u.id.to_string(),
                format!("{} ({}{disabled})", u.email, u.role),
            )
        }));
        options
    });
    html! {
        form.stacked method="get" action="/ui/route" {
            (Input::text("from", "From address")
                .value(form.from.as_deref())
                .required()
                .hint(html! { "An address, or a name and address as in a message's From: " code { "\"Rep One\" <rep@example.com>" } })
                .render(errors))
            @if let Some(options) = &senders {
                @let refs: Vec<(&str, &str)> = options.iter().map(|(v, t)| (v.as_str(), t.as_str())).collect();
                (forms::select(
                    "sender_user_id",
                    "Sender",
                    &refs,
                    Some(forms::non_empty(&form.sender_user_id).unwrap_or(ME)),
                    Some(html! { "The user who sends it: their own mailbox and team decide the route." }),
                    errors,
                ))
            }
            (Input::text("recipients", "Recipients")
                .kind("number")
                .numeric()
                .value(Some(forms::non_empty(&form.recipients).unwrap_or("1")))
                .hint(html! { "How many recipients the message has; some channels take only so many per message." })
                .render(errors))
            div.actions { button type="submit" { "Explain" } }
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/route", web::get().to(explain_page));
}
