//! `POST /v1/channels/{id}/pause` and `/resume`: an admin stops a channel on purpose, or lets
//! a paused one (bounces, a provider's block, another admin) carry mail again. Resuming
//! releases the held mail and starts the bounce window afresh.

use actix_web::{post, web};

use super::view::ChannelView;
use super::visible_one;
use crate::domain::pause::PauseCause;
use crate::domain::{Action, AuditActor, ChannelKind, SendChannel};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, NotFoundAs, Problem};
use crate::store::channels;
use crate::store::pauses::{self, Paused, Resumed};

/// Pause a channel: its mail is held (or falls back, per the tenant's policy) until an admin
/// resumes it.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "the channel is not active or failing (channel_not_pausable)", body = Problem)
    )
)]
#[post("/channels/{id}/pause")]
pub(in crate::http) async fn pause_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<ChannelView>, ApiError> {
    Ok(web::Json(pause(&caller, &state, &id).await?.into()))
}

/// Resume a paused channel: it carries mail again, its held mail is released, and its bounce
/// window starts over.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "the channel is not paused (channel_not_paused)", body = Problem)
    )
)]
#[post("/channels/{id}/resume")]
pub(in crate::http) async fn resume_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<ChannelView>, ApiError> {
    Ok(web::Json(resume(&caller, &state, &id).await?.into()))
}

/// The channel an admin may pause or resume.
async fn pausable(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<SendChannel, ApiError> {
    let channel = visible_one(caller, state, id).await?;
    caller.require(Action::PauseChannels)?;
    if channel.spec.kind == ChannelKind::SharedPool {
        return Err(ApiError::Forbidden {
            code: "shared_pool_is_operator_configured",
            detail: "the shared pool is the platform operator's; a tenant admin can forbid it instead (PATCH /v1/tenant shared_pool_allowed)".into(),
        });
    }
    Ok(channel)
}

/// Pauses a channel by an admin's hand (the API and the channel page's Pause button).
pub(in crate::http) async fn pause(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<SendChannel, ApiError> {
    let channel = pausable(caller, state, id).await?;
    let (tenant, channel_id) = (caller.actor.tenant_id, channel.id);
    let actor = AuditActor::User(caller.actor.user_id);
    let now = state.config.clock.now_micros();
    let (outcome, updated) = state
        .store
        .run(move |c| {
            let outcome = pauses::pause(
                c,
                tenant,
                channel_id,
                PauseCause::Manual,
                None,
                serde_json::json!({}),
                actor,
                now,
            )?;
            Ok((outcome, channels::get(c, tenant, channel_id)?))
        })
        .await
        .or_not_found("channel")?;
    match outcome {
        Paused::Paused => {
            tracing::info!(channel_id = %channel_id, "channel paused by an admin");
            Ok(updated)
        }
        Paused::NotPausable(status) => Err(ApiError::Conflict {
            code: "channel_not_pausable",
            detail: format!(
                "the channel is {status}, not active: only an active or failing channel is paused (a paused one is resumed with POST /v1/channels/{{id}}/resume; a disabled one stays disabled)"
            ),
        }),
    }
}

/// Resumes a paused channel by an admin's hand (the API and the channel page's Resume
/// button).
pub(in crate::http) async fn resume(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
) -> Result<SendChannel, ApiError> {
    let channel = pausable(caller, state, id).await?;
    let (tenant, channel_id) = (caller.actor.tenant_id, channel.id);
    let actor = AuditActor::User(caller.actor.user_id);
    let now = state.config.clock.now_micros();
    let (outcome, updated) = state
        .store
        .run(move |c| {
            let outcome = pauses::resume(c, tenant, channel_id, actor, now)?;
            Ok((outcome, channels::get(c, tenant, channel_id)?))
        })
        .await
        .or_not_found("channel")?;
    match outcome {
        Resumed::Resumed { released } => {
            tracing::info!(channel_id = %channel_id, released, "channel resumed by an admin");
            Ok(updated)
        }
        Resumed::NotPaused(status) => Err(ApiError::Conflict {
            code: "channel_not_paused",
            detail: format!("the channel is {status}, not paused: there is nothing to resume"),
        }),
    }
}
