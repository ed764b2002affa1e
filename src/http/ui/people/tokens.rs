//! Sign-in tokens on a user's page: the list, "Issue a token" and "Revoke", through the
//! API's own functions (`POST /v1/users/{id}/tokens`, `DELETE /v1/tokens/{id}`): anyone
//! for themself, admins for everyone.
//!
//! A token just issued is answered with the page itself (200, not a redirect) and shown
//! there once. It never goes into a flash cookie, a URL, a log line or a later page: the
//! next page load has only its hash to go on.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::super::UiError;
use super::super::forms::{self, FieldErrors, Input};
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use super::person::{Person, Shown, render};
use super::refusal;
use crate::http::AppState;
use crate::http::error::body_error;
use crate::http::tokens::{self, Issued};
use crate::store::tokens::TokenRecord;

/// The token panel's state on this response: a token just issued, or the form sent back.
#[derive(Default)]
pub(super) struct TokenPanel<'a> {
    pub issued: Option<&'a Issued>,
    pub label: String,
    pub errors: FieldErrors,
}

fn label_words(token: &TokenRecord) -> String {
    match &token.label {
        Some(label) => format!("“{label}”"),
        None => "this unlabelled token".to_owned(),
    }
}

/// What revoking a token will stop, said before it happens; the viewer's own session token
/// signs them out.
fn revoke_confirm(session: &UiSession, token: &TokenRecord) -> String {
    let what = label_words(token);
    if token.id == session.token_id {
        format!("Revoke {what}? It is the token you signed in with, so this signs you out at once.")
    } else {
        format!(
            "Revoke {what}? Whatever uses it (a browser signed in with it, a program calling the API) stops working at once."
        )
    }
}

fn token_rows(session: &UiSession, person: &Person) -> Markup {
    html! {
        @for token in &person.tokens {
            tr {
                td {
                    @match &token.label {
                        Some(label) => (label),
                        None => span.muted { "no label" },
                    }
                }
                td { (layout::when(Some(token.created_at))) }
                td {
                    @match token.revoked_at {
                        Some(at) => span.badge.off { "Revoked " (layout::when(Some(at))) },
                        None if person.user.disabled => span.badge.warn { "Stopped: the user is disabled" },
                        None => span.badge.ok { "Active" },
                    }
                }
                td {
                    @if token.revoked_at.is_none() {
                        form method="post" action={"/ui/tokens/" (token.id) "/revoke"} {
                            (layout::csrf(session))
                            button.secondary type="submit"
                                aria-label={"Revoke " (label_words(token))}
                                data-confirm=(revoke_confirm(session, token)) { "Revoke" }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn token_panel(session: &UiSession, person: &Person, panel: &TokenPanel) -> Markup {
    let user = &person.user;
    let yours = user.id == session.actor().user_id;
    html! {
        section aria-labelledby="tokens-heading" {
            h2 id="tokens-heading" { "Sign-in tokens" }
            p.muted {
                "A token signs in to these pages and calls the API as " (user.email) ". "
                "Use one per device or program, so one can be revoked without the others."
            }
            @if person.tokens.is_empty() {
                p.muted { @if yours { "You have no tokens." } @else { "No tokens yet." } }
            } @else {
                (layout::table(
                    "",
                    "Sign-in tokens",
                    &["Label", "Created", "Status", "Action"],
                    token_rows(session, person),
                ))
            }
            h3 { "Issue a token" }
            (panel.errors.summary())
            @if user.disabled {
                p.notice.info { "Enable this user before issuing them a token." }
            } @else {
                form.stacked method="post" action={(super::user_path(user)) "/tokens"} {
                    (layout::csrf(session))
                    (Input::text("label", "Label").value(Some(&panel.label))
                        .hint(html! { "What the token is for, such as “laptop” or “CRM sync”; shown in the list above." })
                        .render(&panel.errors))
                    div.actions { button type="submit" { "Issue token" } }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct IssueForm {
    label: Option<String>,
}

pub(super) async fn issue(
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<IssueForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let body = match forms::non_empty(&form.label) {
        Some(label) => json!({ "label": label }),
        None => json!({}),
    };
    let issued = match serde_json::from_value(body) {
        Ok(request) => tokens::issue(&session.caller, &state, &id, request).await,
        Err(e) => Err(body_error(&e)),
    };
    match issued {
        // The page itself, with the token in it this once.
        Ok(issued) => {
            let person = Person::load(&session, &state, &id).await?;
            let shown = Shown {
                token: TokenPanel {
                    issued: Some(&issued),
                    ..TokenPanel::default()
                },
                ..Shown::default()
            };
            Ok(render(&session, &person, &shown, StatusCode::OK))
        }
        Err(e) => {
            let (status, errors) = refusal(e)?;
            let person = Person::load(&session, &state, &id).await?;
            let shown = Shown {
                token: TokenPanel {
                    issued: None,
                    label: form.label.unwrap_or_default(),
                    errors,
                },
                ..Shown::default()
            };
            Ok(render(&session, &person, &shown, status))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {}

pub(super) async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<RevokeForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, .. } = post;
    let token = tokens::revoke(&session.caller, &state, &id).await?;
    let what = match &token.label {
        Some(label) => format!("Token “{label}” revoked."),
        None => "Token revoked.".to_owned(),
    };
    // Revoking the token this session was opened with ends the session: the redirect then
    // lands on the sign-in page.
    Ok(session::redirect_with_flash(
        &req,
        &format!("/ui/people/{}", token.user_id),
        &what,
    ))
}
