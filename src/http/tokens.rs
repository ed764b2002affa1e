//! API tokens: issued to a user by an admin or by the user themself, shown once, revocable.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::{optional_json, path_id};
use crate::domain::{Action, DisplayName, TokenId, UserId};
use crate::store::{StoreError, tokens, users};
use crate::vault::IssuedToken;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenRequest {
    /// What the token is for ("CRM sync", "laptop"), shown in token lists.
    label: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedTokenView {
    #[schema(value_type = String, format = Uuid)]
    id: TokenId,
    /// The bearer token. Shown this once; only its hash is stored.
    token: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    #[schema(value_type = String, format = Uuid)]
    id: TokenId,
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    label: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<tokens::TokenRecord> for TokenView {
    fn from(t: tokens::TokenRecord) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            label: t.label,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

fn may_manage(caller: &TenantCaller, user: UserId) -> Result<(), ApiError> {
    if caller.actor.may_manage_tokens_of(user) {
        Ok(())
    } else {
        caller.require(Action::ManageAnyTokens)
    }
}

/// Issue a new token for a user. The body is optional.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "user id")),
    request_body(content = Option<IssueTokenRequest>),
    security(("bearer" = [])),
    responses(
        (status = 201, body = IssuedTokenView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)
    )
)]
#[post("/users/{id}/tokens")]
pub(super) async fn issue_token(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Checked before the body is parsed, as this endpoint always has: a caller who may not
    // issue this token hears that, not what is wrong with their JSON.
    owner(&caller, &id)?;
    let request: IssueTokenRequest = optional_json(&body)?;
    let issued = issue(&caller, &state, &id, request).await?;
    Ok(HttpResponse::Created().json(IssuedTokenView {
        id: issued.record.id,
        token: issued.token.expose().to_owned(),
        label: issued.record.label,
        created_at: issued.record.created_at,
    }))
}

/// The user (by path id) whose tokens the caller asks to manage, if they may.
fn owner(caller: &TenantCaller, id: &str) -> Result<UserId, ApiError> {
    let user: UserId = path_id(id, "user")?;
    may_manage(caller, user)?;
    Ok(user)
}

/// A token just issued: its record and its secret, which exists only here (only its hash
/// is stored) and goes to whoever asked, once.
pub(in crate::http) struct Issued {
    pub record: tokens::TokenRecord,
    pub token: IssuedToken,
}

/// Issues a new token for the user `id` (`POST /v1/users/{id}/tokens`, the user's page).
pub(in crate::http) async fn issue(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    request: IssueTokenRequest,
) -> Result<Issued, ApiError> {
    let user = owner(caller, id)?;
    let label = request
        .label
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("label", e))?;
    let (tenant, issuer) = (caller.actor.tenant_id, caller.actor.user_id);
    let token = IssuedToken::generate();
    let hash = token.hash;
    let record = state
        .store
        .run(move |conn| {
            let owner = users::get(conn, tenant, user)?;
            if owner.disabled {
                return Err(StoreError::Conflict {
                    code: "user_disabled",
                    detail: "the user is disabled; enable them before issuing a token".into(),
                });
            }
            tokens::insert(
                conn,
                tenant,
                user,
                hash,
                label.as_ref().map(DisplayName::as_str),
                Some(issuer),
            )
        })
        .await
        .or_not_found("user")?;
    tracing::info!(token_id = %record.id, owner_id = %user, "token issued");
    Ok(Issued { record, token })
}

/// A user's tokens (never their secrets), revoked ones included.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "user id")),
    security(("bearer" = [])),
    responses((status = 200, body = [TokenView]), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[get("/users/{id}/tokens")]
pub(super) async fn list_tokens(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Vec<TokenView>>, ApiError> {
    let all = list(&caller, &state, &id).await?;
    Ok(web::Json(all.into_iter().map(TokenView::from).collect()))
}

/// The tokens of the user `id`, revoked ones included, never their secrets.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<Vec<tokens::TokenRecord>, ApiError> {
    let user = owner(caller, id)?;
    let tenant = caller.actor.tenant_id;
    state
        .store
        .run(move |conn| {
            users::get(conn, tenant, user)?;
            tokens::list_for_user(conn, tenant, user)
        })
        .await
        .or_not_found("user")
}

/// Revoke a token; it stops working on the next request. Revoking twice is not an error.
#[utoipa::path(
    tag = "tenancy",
    params(("id" = String, Path, description = "token id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[delete("/tokens/{id}")]
pub(super) async fn revoke_token(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke(&caller, &state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes the token `id` (`DELETE /v1/tokens/{id}`, the user's page); returns it as it was
/// before. Revoking twice is not an error.
pub(in crate::http) async fn revoke(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<tokens::TokenRecord, ApiError> {
    let id: TokenId = path_id(id, "token")?;
    let tenant = caller.actor.tenant_id;
    let record = state
        .store
        .run(move |conn| tokens::get(conn, tenant, id))
        .await
        .or_not_found("token")?;
    may_manage(caller, record.user_id)?;
    state
        .store
        .run(move |conn| tokens::revoke(conn, tenant, id))
        .await?;
    tracing::info!(token_id = %id, "token revoked");
    Ok(record)
}
