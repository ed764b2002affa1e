//! `/ui/people/{id}`: one user's page. Admins see anyone and change their role and team or
//! disable them (`PATCH /v1/users/{id}`); others see only themselves, as `GET /v1/users/{id}`
//! allows. The sign-in tokens panel is `tokens`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::super::UiError;
use super::super::forms::{self, FieldErrors};
use super::super::layout::{self, Section};
use super::super::session::{self, UiPost, UiSession};
use super::tokens::{TokenPanel, token_panel};
use super::{refusal, role_name, role_select, status_badge, team_names, team_select, team_words};
use crate::domain::{Action, Team, User};
use crate::http::AppState;
use crate::http::error::{ApiError, body_error};
use crate::http::tokens::Issued;
use crate::http::{teams, tokens, users};
use crate::store::tokens::TokenRecord;

/// Everything the page shows, read through the API's functions (which refuse a rep who asks
/// for someone else).
pub(super) struct Person {
    pub user: User,
    teams: Vec<Team>,
    pub tokens: Vec<TokenRecord>,
}

impl Person {
    pub(super) async fn load(
        session: &UiSession,
        state: &AppState,
        id: &str,
    ) -> Result<Self, UiError> {
        let user = users::read(&session.caller, state, id).await?;
        let teams = teams::list(&session.caller, state).await?;
        let tokens = tokens::list(&session.caller, state, id).await?;
        Ok(Self {
            user,
            teams,
            tokens,
        })
    }
}

/// The role and team form as posted. Not `deny_unknown_fields`: the CSRF token rides along.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ChangeForm {
    role: Option<String>,
    team_id: Option<String>,
}

/// What the page shows besides the facts: a form sent back with what was wrong, or a token
/// just issued.
#[derive(Default)]
pub(super) struct Shown<'a> {
    pub change: Option<(ChangeForm, FieldErrors)>,
    pub token: TokenPanel<'a>,
}

pub(super) fn render(
    session: &UiSession,
    person: &Person,
    shown: &Shown,
    status: StatusCode,
) -> HttpResponse {
    let user = &person.user;
    let body = html! {
        @if session.actor().may(Action::ReadUsers) {
            p { a href="/ui/people" { "← All people" } }
        }
        h1 { (user.name) " " (status_badge(user)) }
        @if let Some(issued) = shown.token.issued {
            (issued_box(session, user, issued))
        }
        (facts(session, person))
        @if session.actor().may(Action::ManageUsers) {
            (manage(session, person, shown.change.as_ref()))
        }
        (token_panel(session, person, &shown.token))
    };
    layout::page_with_status(status, session, Section::People, user.name.as_str(), body)
}

fn facts(session: &UiSession, person: &Person) -> Markup {
    let user = &person.user;
    let names = team_names(&person.teams);
    html! {
        dl.facts {
            dt { "Email address" } dd {
                (user.email)
                @if user.id == session.actor().user_id { " " span.muted { "(you)" } }
            }
            dt { "Name" } dd { (user.name) }
            dt { "Role" } dd { (role_name(user.role)) }
            dt { "Team" } dd { (team_words(user.team_id, &names)) }
            dt { "Status" } dd {
                @if user.disabled { "Disabled: cannot sign in, their tokens do not work and their mail is held" }
                @else { "Active" }
            }
            dt { "Added" } dd { (layout::when(Some(user.created_at))) }
        }
    }
}

/// The token just issued, shown this once: only its hash is stored, and it is in no cookie,
/// URL, log line or later page.
fn issued_box(session: &UiSession, user: &User, issued: &Issued) -> Markup {
    let id = forms::field_id("issued-token");
    let yours = user.id == session.actor().user_id;
    html! {
        section.notice.warning aria-labelledby="issued-heading" {
            h2 id="issued-heading" { "New sign-in token" }
            div.field {
                label for=(id) { "New token" }
                div.hint id={(id) "-hint"} {
                    strong { "Copy it now: it is not shown again." }
                    " It signs in to these pages and calls the API as " (user.email) "."
                    @if !yours { " Hand it to them privately, not in a shared chat or an ordinary email." }
                }
                input id=(id) type="text" readonly value=(issued.token.expose())
                    autocomplete="off" spellcheck="false" autocapitalize="off"
                    aria-describedby={(id) "-hint"};
            }
        }
    }
}

/// Role, team, disable and enable: for admins (the API refuses anyone else).
fn manage(
    session: &UiSession,
    person: &Person,
    posted: Option<&(ChangeForm, FieldErrors)>,
) -> Markup {
    let user = &person.user;
    let none = FieldErrors::none();
    let (form, errors) = match posted {
        Some((form, errors)) => (Some(form), errors),
        None => (None, &none),
    };
    // A form sent back shows what was posted; a refused status change posts neither field.
    let role = form
        .and_then(|f| f.role.clone())
        .unwrap_or_else(|| user.role.as_str().to_owned());
    let team = form
        .and_then(|f| f.team_id.clone())
        .unwrap_or_else(|| user.team_id.map(|t| t.to_string()).unwrap_or_default());
    let path = super::user_path(user);
    let me = user.id == session.actor().user_id;
    let disable_confirm = if me {
        "Disable your own account? You are signed out at once: your page sessions and every one of your tokens stop working.".to_owned()
    } else {
        format!(
            "Disable {}? Their page sessions and every one of their tokens stop working at once, and mail they send is held until they are enabled again.",
            user.email
        )
    };
    html! {
        section aria-labelledby="manage-heading" {
            h2 id="manage-heading" { "Role and team" }
            (errors.summary())
            form.stacked method="post" action=(path) {
                (layout::csrf(session))
                (role_select(&role, errors))
                (team_select(&person.teams, &team, errors))
                div.actions { button type="submit" { "Save role and team" } }
            }
            form method="post" action={(path) "/status"} {
                (layout::csrf(session))
                @if user.disabled {
                    input type="hidden" name="disabled" value="false";
                    p.muted { "Enabling lets them sign in again: their page sessions and the tokens that were not revoked work again." }
                    div.actions { button.secondary type="submit" { "Enable user" } }
                } @else {
                    input type="hidden" name="disabled" value="true";
                    p.muted { "Disabling stops their page sessions and every one of their tokens at once; their channels and history stay. Revoke a token to end it for good." }
                    div.actions {
                        button.danger type="submit" data-confirm=(disable_confirm) { "Disable user" }
                    }
                }
            }
        }
    }
}

pub(super) async fn show(
    session: UiSession,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let person = Person::load(&session, &state, &id).await?;
    Ok(render(&session, &person, &Shown::default(), StatusCode::OK))
}

/// The page again with the refusal where it belongs (next to a field, or above the form).
async fn refused(
    session: &UiSession,
    state: &AppState,
    id: &str,
    form: ChangeForm,
    error: ApiError,
) -> Result<HttpResponse, UiError> {
    let (status, errors) = refusal(error)?;
    let person = Person::load(session, state, id).await?;
    let shown = Shown {
        change: Some((form, errors)),
        ..Shown::default()
    };
    Ok(render(session, &person, &shown, status))
}

pub(super) async fn change(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<ChangeForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let body = json!({
        "role": form.role.as_deref().unwrap_or_default(),
        "team_id": forms::non_empty(&form.team_id),
    });
    let changed = match serde_json::from_value(body) {
        Ok(request) => users::update(&session.caller, &state, &id, request).await,
        Err(e) => Err(body_error(&e)),
    };
    match changed {
        Ok(user) => Ok(session::redirect_with_flash(
            &req,
            &super::user_path(&user),
            "Role and team saved.",
        )),
        Err(e) => refused(&session, &state, &id, form, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusForm {
    /// `true` to disable, `false` to enable.
    disabled: String,
}

pub(super) async fn set_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<StatusForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let disabled = match form.disabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(UiError::BadForm {
                detail: format!("unknown status `{other}`; use true or false"),
            });
        }
    };
    let request = serde_json::from_value(json!({ "disabled": disabled }))
        .map_err(|e| UiError::Internal(e.to_string()))?;
    match users::update(&session.caller, &state, &id, request).await {
        Ok(user) => {
            let done = if user.disabled {
                format!(
                    "{} disabled: their sessions and tokens stopped working.",
                    user.email
                )
            } else {
                format!(
                    "{} enabled: their tokens that were not revoked work again.",
                    user.email
                )
            };
            Ok(session::redirect_with_flash(
                &req,
                &super::user_path(&user),
                &done,
            ))
        }
        Err(e) => refused(&session, &state, &id, ChangeForm::default(), e).await,
    }
}
