//! `DELETE /v1/channels/{id}/oauth`: disconnect a Gmail channel. The grant is revoked at
//! Google and the tokens removed here; the channel stays (`needs_reauth`, cause
//! `disconnected`) so that its mail waits for a reconnect.

use actix_web::{delete, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{require_manage, visible_one};
use crate::domain::{AuditActor, ChannelKind};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, Problem};
use crate::http::oauth::connector;

#[derive(Serialize, ToSchema)]
pub struct DisconnectView {
    /// Whether Google confirmed the revocation. When false (Google unreachable), the tokens
    /// are removed here anyway; the user can also remove the access at
    /// https://myaccount.google.com/permissions.
    revoked_at_google: bool,
    status: &'static str,
}

#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DisconnectView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    )
)]
#[delete("/channels/{id}/oauth")]
pub(in crate::http) async fn disconnect_oauth(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<DisconnectView>, ApiError> {
    let revoked = disconnect(&caller, &state, &id).await?;
    Ok(web::Json(DisconnectView {
        revoked_at_google: revoked,
        status: "needs_reauth",
    }))
}

/// Disconnects a Gmail channel: the work of `DELETE /v1/channels/{id}/oauth` and of the
/// Disconnect button on the channel's page. Returns whether Google confirmed the revocation.
pub(in crate::http) async fn disconnect(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<bool, ApiError> {
    let channel = visible_one(caller, state, id).await?;
    require_manage(caller, channel.spec.owner)?;
    if channel.spec.kind != ChannelKind::Gmail {
        return Err(ApiError::Unprocessable {
            code: "not_an_oauth_channel",
            detail: "only Gmail channels are connected with OAuth; SMTP channels change their password with PUT /v1/channels/{id}/credentials".into(),
        });
    }
    let revoked = connector(state)?
        .disconnect(
            caller.actor.tenant_id,
            channel.id,
            AuditActor::User(caller.actor.user_id),
        )
        .await?;
    tracing::info!(channel_id = %channel.id, revoked, "Gmail disconnected");
    Ok(revoked)
}
