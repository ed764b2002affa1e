//! `DELETE /v1/channels/{id}/oauth`: disconnect a Gmail or Microsoft channel. The grant is
//! revoked at Google (Microsoft has no revocation endpoint: the page says where the user
//! removes the app) and the tokens removed here; the channel stays (`needs_reauth`, cause
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
    /// https://myaccount.google.com/permissions. Always false for Microsoft.
    revoked_at_google: bool,
    status: &'static str,
    /// Where the user removes Switchboard's access at the provider themselves.
    remove_access_at: &'static str,
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
    let (kind, revoked) = disconnect(&caller, &state, &id).await?;
    Ok(web::Json(DisconnectView {
        revoked_at_google: revoked && kind == ChannelKind::Gmail,
        status: "needs_reauth",
        remove_access_at: remove_access_at(kind),
    }))
}

/// Where a user removes the app's access at the provider.
pub(in crate::http) fn remove_access_at(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Microsoft => {
            "https://myapps.microsoft.com (work or school) or https://account.live.com/consent/Manage (Outlook.com)"
        }
        _ => "https://myaccount.google.com/permissions",
    }
}

/// Disconnects a Gmail or Microsoft channel: the work of `DELETE /v1/channels/{id}/oauth` and
/// of the Disconnect button on the channel's page. Returns the channel's kind and whether the
/// provider confirmed the revocation.
pub(in crate::http) async fn disconnect(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<(ChannelKind, bool), ApiError> {
    let channel = visible_one(caller, state, id).await?;
    require_manage(caller, channel.spec.owner)?;
    if !channel.spec.kind.is_connected_mailbox() {
        return Err(ApiError::Unprocessable {
            code: "not_an_oauth_channel",
            detail: "only Gmail and Microsoft channels are connected with OAuth; SMTP channels change their password with PUT /v1/channels/{id}/credentials".into(),
        });
    }
    let revoked = connector(state, channel.spec.kind)?
        .disconnect(
            caller.actor.tenant_id,
            channel.id,
            AuditActor::User(caller.actor.user_id),
        )
        .await?;
    tracing::info!(channel_id = %channel.id, revoked, kind = %channel.spec.kind, "mailbox disconnected");
    Ok((channel.spec.kind, revoked))
}
