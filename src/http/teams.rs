//! Teams: created and renamed by admins, readable by every user of the tenant.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::path_id;
use crate::domain::{Action, AuditActor, DisplayName, Team, TeamId};
use crate::store::teams::{self, TeamChanges};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    name: String,
}

/// A change to a team; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamRequest {
    name: Option<String>,
    /// The team's kill switch: `false` holds everything its members send.
    sending_enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamView {
    #[schema(value_type = String, format = Uuid)]
    id: TeamId,
    name: String,
    sending_enabled: bool,
    created_at: DateTime<Utc>,
}

impl From<Team> for TeamView {
    fn from(t: Team) -> Self {
        Self {
            id: t.id,
            name: t.name.to_string(),
            sending_enabled: t.sending_enabled,
            created_at: t.created_at,
        }
    }
}

/// Create a team.
#[utoipa::path(
    tag = "tenancy",
    request_body = TeamRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = TeamView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/teams")]
pub(super) async fn create_team(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<TeamRequest>,
) -> Result<HttpResponse, ApiError> {
    let team = create(&caller, &state, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(TeamView::from(team)))
}

/// Creates a team in the caller's tenant (`POST /v1/teams`, the people page).
pub(in crate::http) async fn create(
    caller: &TenantCaller,
    state: &AppState,
    request: TeamRequest,
) -> Result<Team, ApiError> {
    caller.require(Action::ManageTeams)?;
    let name = DisplayName::parse(&request.name).map_err(|e| ApiError::invalid("name", e))?;
    let tenant = caller.actor.tenant_id;
    let team = state
        .store
        .run(move |c| teams::insert(c, tenant, &name))
        .await?;
    tracing::info!(team_id = %team.id, "team created");
    Ok(team)
}

/// The tenant's teams, by name.
#[utoipa::path(
    tag = "tenancy",
    security(("bearer" = [])),
    responses((status = 200, body = [TeamView]), (status = 401, body = Problem))
)]
#[get("/teams")]
pub(super) async fn list_teams(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<TeamView>>, ApiError> {
    let all = list(&caller, &state).await?;
    Ok(web::Json(all.into_iter().map(TeamView::from).collect()))
}

/// The caller's tenant's teams, by name.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
) -> Result<Vec<Team>, ApiError> {
    caller.require(Action::ReadTeams)?;
    let tenant = caller.actor.tenant_id;
    Ok(state.store.run(move |c| teams::list(c, tenant)).await?)
}

/// One team.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "team id")),
    security(("bearer" = [])),
    responses((status = 200, body = TeamView), (status = 404, body = Problem))
)]
#[get("/teams/{id}")]
pub(super) async fn get_team(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<TeamView>, ApiError> {
    caller.require(Action::ReadTeams)?;
    let id: TeamId = path_id(&id, "team")?;
    let tenant = caller.actor.tenant_id;
    let team = state
        .store
        .run(move |c| teams::get(c, tenant, id))
        .await
        .or_not_found("team")?;
    Ok(web::Json(team.into()))
}

/// Rename a team.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "team id")),
    request_body = UpdateTeamRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = TeamView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)
    )
)]
#[patch("/teams/{id}")]
pub(super) async fn update_team(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateTeamRequest>,
) -> Result<web::Json<TeamView>, ApiError> {
    caller.require(Action::ManageTeams)?;
    let id: TeamId = path_id(&id, "team")?;
    let changes = TeamChanges {
        name: body
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("name", e))?,
        sending_enabled: body.sending_enabled,
    };
    let tenant = caller.actor.tenant_id;
    let actor = AuditActor::User(caller.actor.user_id);
    let team = state
        .store
        .run(move |c| teams::update(c, tenant, id, &changes, actor))
        .await
        .or_not_found("team")?;
    Ok(web::Json(team.into()))
}
