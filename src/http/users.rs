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
    let user = create(&caller, &state, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// Adds a user to the caller's tenant (`POST /v1/users`, the people page).
pub(in crate::http) async fn create(
    caller: &TenantCaller,
    state: &AppState,
    request: CreateUserRequest,
) -> Result<User, ApiError> {
    caller.require(Action::ManageUsers)?;
    let new = NewUser {
        email: EmailAddress::parse(&request.email).map_err(|e| ApiError::invalid("email", e))?,
        name: DisplayName::parse(&request.name).map_err(|e| ApiError::invalid("name", e))?,
        role: request
            .role
            .parse::<Role>()
            .map_err(|e| ApiError::invalid("role", e))?,
        team_id: parse_team(request.team_id.as_deref())?,
    };
    let tenant = caller.actor.tenant_id;
    let user = state
        .store
        .run(move |c| users::insert(c, tenant, &new))
        .await?;
    tracing::info!(new_user_id = %user.id, role = %user.role, "user created");
    Ok(user)
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
    let all = list(&caller, &state).await?;
    Ok(web::Json(all.into_iter().map(UserView::from).collect()))
}

/// Every user of the caller's tenant, by address; for those who may read users.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
) -> Result<Vec<User>, ApiError> {
    caller.require(Action::ReadUsers)?;
    let tenant = caller.actor.tenant_id;
    Ok(state.store.run(move |c| users::list(c, tenant)).await?)
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
    Ok(web::Json(read(&caller, &state, &id).await?.into()))
}

/// One user by id (as the path gives it): anyone in the tenant for those who may read
/// users, otherwise only the caller themself.
pub(in crate::http) async fn read(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<User, ApiError> {
    let id: UserId = path_id(id, "user")?;
    if id != caller.actor.user_id {
        caller.require(Action::ReadUsers)?;
    }
    let tenant = caller.actor.tenant_id;
    state
        .store
        .run(move |c| users::get(c, tenant, id))
        .await
        .or_not_found("user")
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
    Ok(web::Json(
        update(&caller, &state, &id, body.into_inner())
            .await?
            .into(),
    ))
}

/// Changes a user (`PATCH /v1/users/{id}`, the user's page); absent fields stay as they are.
pub(in crate::http) async fn update(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    request: UpdateUserRequest,
) -> Result<User, ApiError> {
    caller.require(Action::ManageUsers)?;
    let id: UserId = path_id(id, "user")?;
    let changes = UserChanges {
        email: request
            .email
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("email", e))?,
        name: request
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("name", e))?,
        role: request
            .role
            .as_deref()
            .map(str::parse::<Role>)
            .transpose()
            .map_err(|e| ApiError::invalid("role", e))?,
        team_id: request
            .team_id
            .map(|t| parse_team(t.as_deref()))
            .transpose()?,
        disabled: request.disabled,
    };
    let tenant = caller.actor.tenant_id;
    let user = state
        .store
        .run(move |c| users::update(c, tenant, id, changes))
        .await
        .or_not_found("user")?;
    tracing::info!(target_user_id = %user.id, role = %user.role, disabled = user.disabled, "user updated");
    Ok(user)
}
