//! Users of a tenant and `GET /v1/me`.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::{path_id, present};
use crate::domain::{Action, DisplayName, EmailAddress, Role, TeamId, User, UserId};
use crate::store::users::{self, NewUser, UserChanges};

#[derive(Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    id: UserId,
    email: String,
    name: String,
    /// `admin`, `it` or `rep`.
    role: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    team_id: Option<TeamId>,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email.to_string(),
            name: u.name.to_string(),
            role: u.role.as_str().to_owned(),
            team_id: u.team_id,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    #[schema(value_type = String, format = Uuid)]
    tenant_id: crate::domain::TenantId,
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    email: String,
    name: String,
    role: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    team_id: Option<TeamId>,
}

/// Who the token belongs to.
#[utoipa::path(
    tag = "tenancy",
    security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem), (status = 403, body = Problem))
)]
#[get("/me")]
pub(super) async fn me(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Me>, ApiError> {
    let (tenant, id) = (caller.actor.tenant_id, caller.actor.user_id);
    let user = state
        .store
        .run(move |c| users::get(c, tenant, id))
        .await
        .or_not_found("user")?;
    Ok(web::Json(Me {
        tenant_id: user.tenant_id,
        user_id: user.id,
        email: user.email.to_string(),
        name: user.name.to_string(),
        role: user.role.as_str().to_owned(),
        team_id: user.team_id,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    name: String,
    /// `admin`, `it` or `rep`.
    role: String,
    team_id: Option<String>,
}

fn parse_team(raw: Option<&str>) -> Result<Option<TeamId>, ApiError> {
    raw.map(str::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("team_id", e))
}

/// Add a user to the tenant. Give them a token with `POST /v1/users/{id}/tokens`.
#[utoipa::path(
    tag = "tenancy",
    request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = UserView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/users")]
pub(super) async fn create_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::ManageUsers)?;
    let new = NewUser {
        email: EmailAddress::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?,
        name: DisplayName::parse(&body.name).map_err(|e| ApiError::invalid("name", e))?,
        role: body
            .role
            .parse::<Role>()
            .map_err(|e| ApiError::invalid("role", e))?,
        team_id: parse_team(body.team_id.as_deref())?,
    };
    let tenant = caller.actor.tenant_id;
    let user = state
        .store
        .run(move |c| users::insert(c, tenant, &new))
        .await?;
    tracing::info!(new_user_id = %user.id, role = %user.role, "user created");
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// The tenant's users, by address.
#[utoipa::path(
    tag = "tenancy",
    security(("bearer" = [])),
    responses((status = 200, body = [UserView]), (status = 403, body = Problem))
)]
#[get("/users")]
pub(super) async fn list_users(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<UserView>>, ApiError> {
    caller.require(Action::ReadUsers)?;
    let tenant = caller.actor.tenant_id;
    let all = state.store.run(move |c| users::list(c, tenant)).await?;
    Ok(web::Json(all.into_iter().map(UserView::from).collect()))
}

/// One user: admins may read anyone in the tenant, others only themselves.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "user id")),
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[get("/users/{id}")]
pub(super) async fn get_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<UserView>, ApiError> {
    let id: UserId = path_id(&id, "user")?;
    if id != caller.actor.user_id {
        caller.require(Action::ReadUsers)?;
    }
    let tenant = caller.actor.tenant_id;
    let user = state
        .store
        .run(move |c| users::get(c, tenant, id))
        .await
        .or_not_found("user")?;
    Ok(web::Json(user.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
    /// A team id, or `null` to take the user out of their team.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    team_id: Option<Option<String>>,
    /// A disabled user's tokens stop working at once.
    disabled: Option<bool>,
}

/// Change a user; absent fields stay as they are. The last active admin cannot be demoted
/// or disabled.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "user id")),
    request_body = UpdateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    )
)]
#[patch("/users/{id}")]
pub(super) async fn update_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateUserRequest>,
) -> Result<web::Json<UserView>, ApiError> {
    caller.require(Action::ManageUsers)?;
    let id: UserId = path_id(&id, "user")?;
    let body = body.into_inner();
    let changes = UserChanges {
        email: body
            .email
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("email", e))?,
        name: body
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("name", e))?,
        role: body
            .role
            .as_deref()
            .map(str::parse::<Role>)
            .transpose()
            .map_err(|e| ApiError::invalid("role", e))?,
        team_id: body.team_id.map(|t| parse_team(t.as_deref())).transpose()?,
        disabled: body.disabled,
    };
    let tenant = caller.actor.tenant_id;
    let user = state
        .store
        .run(move |c| users::update(c, tenant, id, changes))
        .await
        .or_not_found("user")?;
    tracing::info!(target_user_id = %user.id, role = %user.role, disabled = user.disabled, "user updated");
    Ok(web::Json(user.into()))
}
