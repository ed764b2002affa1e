//! `/ui/people` for admins: every user and team of the tenant, and the forms that add them
//! (`POST /v1/users`, `POST /v1/teams` underneath). Anyone else is sent to their own page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::super::UiError;
use super::super::forms::{self, FieldErrors, Input, field_id};
use super::super::layout::{self, Section};
use super::super::session::{self, UiPost, UiSession};
use super::{refusal, role_name, role_select, status_badge, team_names, team_select, team_words};
use crate::domain::{Action, Role, Team, User};
use crate::http::AppState;
use crate::http::error::{ApiError, body_error};
use crate::http::{teams, users};

/// The add-a-user form as posted. Not `deny_unknown_fields`: the CSRF token rides along.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AddUserForm {
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
    team_id: Option<String>,
}

impl AddUserForm {
    /// `POST /v1/users`'s request, built as JSON so it passes the API's own schema.
    fn request(&self) -> Result<users::CreateUserRequest, ApiError> {
        let body = json!({
            "email": self.email.as_deref().unwrap_or_default().trim(),
            "name": self.name.as_deref().unwrap_or_default().trim(),
            "role": self.role.as_deref().unwrap_or_default(),
            "team_id": forms::non_empty(&self.team_id),
        });
        serde_json::from_value(body).map_err(|e| body_error(&e))
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AddTeamForm {
    name: Option<String>,
}

/// What the page shows besides the lists: a form sent back with its errors.
#[derive(Default)]
struct Posted {
    user: AddUserForm,
    user_errors: FieldErrors,
    team: AddTeamForm,
    team_errors: FieldErrors,
}

pub(super) async fn people_page(
    session: UiSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    if !session.actor().may(Action::ReadUsers) {
        // Others have one person to see here: themselves.
        let own = format!("/ui/people/{}", session.actor().user_id);
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, own))
            .finish());
    }
    render(&session, &state, Posted::default(), StatusCode::OK).await
}

pub(super) async fn add_user(
    req: HttpRequest,
    post: UiPost<AddUserForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let created = match form.request() {
        Ok(request) => users::create(&session.caller, &state, request).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(user) => Ok(session::redirect_with_flash(
            &req,
            &super::user_path(&user),
            &format!(
                "{} added as {}. Issue them a sign-in token below and hand it to them.",
                user.email,
                role_name(user.role)
            ),
        )),
        Err(e) => {
            let (status, user_errors) = refusal(e)?;
            let posted = Posted {
                user: form,
                user_errors,
                ..Posted::default()
            };
            render(&session, &state, posted, status).await
        }
    }
}

pub(super) async fn add_team(
    req: HttpRequest,
    post: UiPost<AddTeamForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let request = json!({ "name": form.name.as_deref().unwrap_or_default().trim() });
    let created = match serde_json::from_value(request) {
        Ok(request) => teams::create(&session.caller, &state, request).await,
        Err(e) => Err(body_error(&e)),
    };
    match created {
        Ok(team) => Ok(session::redirect_with_flash(
            &req,
            "/ui/people",
            &format!("Team “{}” added.", team.name),
        )),
        Err(e) => {
            let (status, team_errors) = refusal(e)?;
            let posted = Posted {
                team: form,
                team_errors,
                ..Posted::default()
            };
            render(&session, &state, posted, status).await
        }
    }
}

async fn render(
    session: &UiSession,
    state: &AppState,
    posted: Posted,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let people = users::list(&session.caller, state).await?;
    let teams = teams::list(&session.caller, state).await?;
    let may_manage = session.actor().may(Action::ManageUsers);
    let body = html! {
        h1 { "People" }
        p.muted {
            "Everyone who may sign in to these pages and call the API for this tenant. "
            "Add a person, then issue them a sign-in token on their page."
        }
        section aria-labelledby="users-heading" {
            h2 id="users-heading" { "Users" }
            (users_table(session, &people, &teams))
        }
        section aria-labelledby="teams-heading" {
            h2 id="teams-heading" { "Teams" }
            (teams_table(&people, &teams))
        }
        @if may_manage {
            (add_user_form(session, &teams, &posted.user, &posted.user_errors))
        }
        @if session.actor().may(Action::ManageTeams) {
            (add_team_form(session, &posted.team, &posted.team_errors))
        }
    };
    Ok(layout::page_with_status(
        status,
        session,
        Section::People,
        "People",
        body,
    ))
}

fn users_table(session: &UiSession, people: &[User], teams: &[Team]) -> Markup {
    let names = team_names(teams);
    let rows = html! {
        @for user in people {
            tr {
                td {
                    a href=(super::user_path(user)) { (user.email) }
                    @if user.id == session.actor().user_id { " " span.muted { "(you)" } }
                }
                td { (user.name) }
                td { (role_name(user.role)) }
                td { (team_words(user.team_id, &names)) }
                td { (status_badge(user)) }
            }
        }
    };
    layout::table(
        "",
        "Users of this tenant",
        &["Email address", "Name", "Role", "Team", "Status"],
        rows,
    )
}

fn teams_table(people: &[User], teams: &[Team]) -> Markup {
    if teams.is_empty() {
        return html! {
            p.muted { "No teams yet. A team shares channels (a team relay, say) among its members." }
        };
    }
    let rows = html! {
        @for team in teams {
            tr {
                td { (team.name) }
                td { (people.iter().filter(|u| u.team_id == Some(team.id)).count()) }
                td {
                    @if team.sending_enabled { span.badge.ok { "Sending" } }
                    @else { span.badge.off { "Held: sending switched off" } }
                }
            }
        }
    };
    layout::table(
        "",
        "Teams of this tenant",
        &["Name", "Members", "Sending"],
        rows,
    )
}

fn add_user_form(
    session: &UiSession,
    teams: &[Team],
    values: &AddUserForm,
    errors: &FieldErrors,
) -> Markup {
    html! {
        section aria-labelledby="add-user-heading" {
            h2 id="add-user-heading" { "Add a user" }
            (errors.summary())
            form.stacked method="post" action="/ui/people" {
                (layout::csrf(session))
                (Input::text("email", "Email address").kind("email").value(values.email.as_deref())
                    .hint(html! { "They sign in with a token, not this address; it names them in lists and is the address they send as." })
                    .required().render(errors))
                (Input::text("name", "Name").value(values.name.as_deref()).required().render(errors))
                (role_select(values.role.as_deref().unwrap_or(Role::Rep.as_str()), errors))
                (team_select(teams, values.team_id.as_deref().unwrap_or_default(), errors))
                div.actions { button type="submit" { "Add user" } }
            }
        }
    }
}

/// The team form's one field is the API's `name`, like the user form's; it gets an id of
/// its own so the two labels on this page point at their own inputs.
fn add_team_form(session: &UiSession, values: &AddTeamForm, errors: &FieldErrors) -> Markup {
    let id = field_id("team-name");
    let error = errors.get("name");
    html! {
        section aria-labelledby="add-team-heading" {
            h2 id="add-team-heading" { "Add a team" }
            @if let Some(general) = &errors.general {
                div.error-summary role="alert" tabindex="-1" {
                    h2 { "There is a problem" }
                    p { (general) }
                }
            }
            form.stacked method="post" action="/ui/teams" {
                (layout::csrf(session))
                div class={"field" @if error.is_some() { " invalid" }} {
                    label for=(id) { "Team name" }
                    @if let Some(error) = error {
                        p.field-error id={(id) "-error"} role="alert" { span.visually-hidden { "Error: " } (error) }
                    }
                    input id=(id) name="name" type="text" required autocomplete="off"
                        value=[values.name.as_deref()]
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| format!("{id}-error"))];
                }
                div.actions { button type="submit" { "Add team" } }
            }
        }
    }
}
