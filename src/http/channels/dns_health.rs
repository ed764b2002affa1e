//! The DNS health of the verified domains a channel carries, as that channel sends them:
//! shown on `GET /v1/channels/{id}` (`health.domains`), run now with
//! `POST /v1/channels/{id}/health`. Whoever may read the channel may look and re-check; the
//! checks change nothing but what is shown.

use actix_web::{post, web};

use super::view::{ChannelDomainHealthView, ChannelView};
use super::visible_one;
use crate::domain::{SendChannel, TenantId};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, Problem};

/// Check the channel's domains now: SPF for its relay, return path, DKIM, DMARC and
/// alignment, for each verified domain it carries.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the channel with `health.domains` just checked", body = ChannelView),
        (status = 404, body = Problem)
    )
)]
#[post("/channels/{id}/health")]
pub(in crate::http) async fn check_channel_health(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<ChannelView>, ApiError> {
    let channel = visible_one(&caller, &state, &id).await?;
    let found = state
        .domains
        .check_channel(caller.actor.tenant_id, &channel)
        .await?;
    tracing::info!(channel_id = %channel.id, domains = found.len(), "channel DNS health checked");
    Ok(web::Json(
        ChannelView::from(channel).with_domains(ChannelDomainHealthView::list(found)),
    ))
}

/// Checks a channel's domains in the background, right after it was created or changed, so
/// its page shows where it stands within seconds instead of after the next hourly pass. A
/// failure only logs: the hourly pass and "Check now" try again.
pub(in crate::http) fn check_soon(state: &AppState, tenant: TenantId, channel: SendChannel) {
    let domains = state.domains.clone();
    tokio::spawn(async move {
        if let Err(e) = domains.check_channel(tenant, &channel).await {
            tracing::warn!(channel_id = %channel.id, error = %e, "checking a new channel's DNS failed");
        }
    });
}
