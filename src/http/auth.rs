//! Who is calling: the bearer token is hashed and looked up on every request (no cache), so
//! revoking a token or disabling a user takes effect on the next request.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::ApiError;
use crate::domain::{Action, Actor};
use crate::store::{operator, tokens};
use crate::vault::TokenHash;
use crate::vault::token::MAX_PRESENTED_LEN;

enum Authenticated {
    Operator,
    Tenant(Actor),
}

/// A caller holding a tenant token.
#[derive(Debug, Clone)]
pub struct TenantCaller {
    pub actor: Actor,
}

impl TenantCaller {
    /// Refuses with 403 unless the permission table lets the caller's role do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.actor.may(action) {
            Ok(())
        } else {
            Err(forbidden(&self.actor, action))
        }
    }
}

pub fn forbidden(actor: &Actor, action: Action) -> ApiError {
    ApiError::Forbidden {
        code: "forbidden",
        detail: format!(
            "the role `{}` may not {}; ask a tenant admin",
            actor.role,
            action.describe()
        ),
    }
}

/// A caller holding the platform operator token.
#[derive(Debug, Clone, Copy)]
pub struct OperatorCaller;

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?
        .to_str()
        .map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::InvalidToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_PRESENTED_LEN
    {
        return Err(ApiError::InvalidToken);
    }
    Ok(token.to_owned())
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, ApiError> {
    let hash = TokenHash::of(&bearer(&req)?);
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    if state
        .configured_operator_token
        .is_some_and(|configured| configured.matches(&hash))
    {
        return Ok(Authenticated::Operator);
    }
    let found = state
        .store
        .run(move |conn| {
            if let Some(actor) = tokens::authenticate(conn, hash)? {
                return Ok(Some(Authenticated::Tenant(actor)));
            }
            Ok(operator::authenticate(conn, hash)?.then_some(Authenticated::Operator))
        })
        .await?;
    let found = found.ok_or(ApiError::InvalidToken)?;
    if let Authenticated::Tenant(actor) = &found {
        let span = tracing::Span::current();
        span.record("tenant_id", tracing::field::display(actor.tenant_id));
        span.record("user_id", tracing::field::display(actor.user_id));
    }
    Ok(found)
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for TenantCaller {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(req).await? {
                Authenticated::Tenant(actor) => Ok(TenantCaller { actor }),
                Authenticated::Operator => Err(ApiError::Forbidden {
                    code: "tenant_token_required",
                    detail: "this endpoint acts inside a tenant; use a tenant user's token, not the operator token".into(),
                }),
            }
        })
    }
}

impl FromRequest for OperatorCaller {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(req).await? {
                Authenticated::Operator => Ok(OperatorCaller),
                Authenticated::Tenant(_) => Err(ApiError::Forbidden {
                    code: "operator_token_required",
                    detail: "only the platform operator may do this".into(),
                }),
            }
        })
    }
}
