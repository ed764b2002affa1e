//! `/ui/people`: users, teams and sign-in tokens. Admins add people and teams, change roles
//! and teams, disable and enable users; everyone manages their own tokens. Every action
//! calls the same function as its API endpoint (`http::users`, `teams`, `tokens`), so the
//! pages refuse what the API refuses, with its words.

mod list;
mod person;
mod tokens;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::web;
use maud::{Markup, html};

use super::UiError;
use super::forms::{self, FieldErrors};
use super::routes::form_error;
use crate::domain::{Role, Team, TeamId, User};
use crate::http::error::ApiError;

/// The roles, in words, with what each may do in one sentence (the permission table in
/// `domain::permissions`, said for people).
const ROLES: [(Role, &str, &str); 3] = [
    (
        Role::Admin,
        "Admin",
        "Everything: people, teams and tokens, every channel, the tenant's settings, and sending as anyone.",
    ),
    (
        Role::It,
        "IT",
        "Keeps channels working: sees, tests and fixes every channel, reads the audit trail and manages webhooks, but does not send or read mail.",
    ),
    (
        Role::Rep,
        "Rep",
        "Sends mail as themselves and manages their own mailbox channel and sign-in tokens.",
    ),
];

/// A role's name for people ("IT", not "it").
fn role_name(role: Role) -> &'static str {
    ROLES
        .iter()
        .find(|(r, _, _)| *r == role)
        .map(|(_, name, _)| *name)
        .unwrap_or("Unknown")
}

fn user_path(user: &User) -> String {
    format!("/ui/people/{}", user.id)
}

/// The role drop-down, with what each role may do as its hint.
fn role_select(selected: &str, errors: &FieldErrors) -> Markup {
    let options: Vec<(&str, &str)> = ROLES
        .iter()
        .map(|(role, name, _)| (role.as_str(), *name))
        .collect();
    let hint = html! {
        ul {
            @for (_, name, may) in ROLES {
                li { strong { (name) ": " } (may) }
            }
        }
    };
    forms::select("role", "Role", &options, Some(selected), Some(hint), errors)
}

/// The team drop-down; the empty value means no team.
fn team_select(teams: &[Team], selected: &str, errors: &FieldErrors) -> Markup {
    let ids: Vec<(String, &str)> = teams
        .iter()
        .map(|t| (t.id.to_string(), t.name.as_str()))
        .collect();
    let mut options: Vec<(&str, &str)> = vec![("", "No team")];
    options.extend(ids.iter().map(|(id, name)| (id.as_str(), *name)));
    let hint = html! { "Team channels carry the mail of their team's members." };
    forms::select(
        "team_id",
        "Team",
        &options,
        Some(selected),
        Some(hint),
        errors,
    )
}

/// Team names by id, to name a user's team.
fn team_names(teams: &[Team]) -> HashMap<TeamId, &str> {
    teams.iter().map(|t| (t.id, t.name.as_str())).collect()
}

fn team_words(team: Option<TeamId>, names: &HashMap<TeamId, &str>) -> Markup {
    match team {
        Some(id) => match names.get(&id) {
            Some(name) => html! { (name) },
            None => {
                html! { span.muted { "team " code { (super::labels::short(&id.to_string())) } } }
            }
        },
        None => html! { span.muted { "no team" } },
    }
}

fn status_badge(user: &User) -> Markup {
    if user.disabled {
        html! { span.badge.off { "Disabled" } }
    } else {
        html! { span.badge.ok { "Active" } }
    }
}

/// Where an API refusal belongs in a form, and the status the form comes back with. The API
/// answers a taken address or team name and an unknown team as conflicts or references
/// without a field; here they sit next to the field they are about (422, the form kept).
/// Other conflicts (the last admin, a disabled user) go above the form (409); anything else
/// (403, 404, …) is an error page.
fn refusal(error: ApiError) -> Result<(StatusCode, FieldErrors), UiError> {
    let field = match error.code() {
        "email_taken" => Some("email"),
        "team_name_taken" => Some("name"),
        "unknown_team" => Some("team_id"),
        _ => None,
    };
    if let Some(field) = field {
        let detail = error.problem().detail;
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::on(field, detail),
        ));
    }
    match error {
        ApiError::Conflict { .. } => Ok((StatusCode::CONFLICT, FieldErrors::from_api(&error))),
        other => Ok((StatusCode::UNPROCESSABLE_ENTITY, form_error(other)?)),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/people", web::get().to(list::people_page))
        .route("/people", web::post().to(list::add_user))
        .route("/teams", web::post().to(list::add_team))
        .route("/people/{id}", web::get().to(person::show))
        .route("/people/{id}", web::post().to(person::change))
        .route("/people/{id}/status", web::post().to(person::set_status))
        .route("/people/{id}/tokens", web::post().to(tokens::issue))
        .route("/tokens/{id}/revoke", web::post().to(tokens::revoke));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_is_named_and_explained() {
        for role in Role::ALL {
            assert_ne!(role_name(role), "Unknown");
        }
        assert_eq!(role_name(Role::It), "IT");
    }

    #[test]
    fn taken_addresses_and_team_names_sit_next_to_their_field() {
        let (status, errors) = refusal(ApiError::Conflict {
            code: "email_taken",
            detail: "a user with the address a@b.test already exists in this tenant".into(),
        })
        .unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors.get("email").unwrap().contains("already exists"));
        let (status, errors) = refusal(ApiError::Conflict {
            code: "last_admin",
            detail: "this is the tenant's last active admin".into(),
        })
        .unwrap();
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(errors.general.is_some());
        assert!(refusal(ApiError::NotFound { what: "user" }).is_err());
    }
}
