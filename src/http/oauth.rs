//! "Connect Gmail": `POST /v1/oauth/google/start` (the rep, with their token) and
//! `GET /oauth/google/callback` (the rep's browser, back from Google, with no token: the
//! server-side state says who started it). The callback answers with a small page.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, REFERRER_POLICY};
use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, Problem};
use super::extract::optional_json;
use crate::domain::{Action, ChannelId, ChannelKind, ChannelOwner};
use crate::oauth::connect::{ConnectError, Connector};
use crate::store::channels;

pub(super) fn connector(state: &AppState) -> Result<Connector, ApiError> {
    let google = state.google.clone().ok_or_else(|| ApiError::Conflict {
        code: "gmail_not_configured",
        detail: "Gmail is not configured on this installation: the operator sets SWITCHBOARD_GOOGLE_CLIENT_ID and SWITCHBOARD_GOOGLE_CLIENT_SECRET (see docs/gmail.md)".into(),
    })?;
    Ok(Connector {
        store: state.store.clone(),
        vault: state.vault.clone(),
        google,
    })
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Reconnect this Gmail channel (of the caller) instead of connecting a new mailbox.
    channel_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StartView {
    /// Send the rep's browser here; Google brings it back to `/oauth/google/callback`.
    authorize_url: String,
    /// The link works once, until then.
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(
    tag = "channels",
    request_body(content = Option<StartRequest>),
    security(("bearer" = [])),
    responses(
        (status = 200, body = StartView), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "Gmail is not configured (gmail_not_configured)", body = Problem)
    )
)]
#[post("/oauth/google/start")]
pub(super) async fn google_start(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<web::Json<StartView>, ApiError> {
    caller.require(Action::ManageOwnMailboxChannels)?;
    let request: StartRequest = optional_json(&body)?;
    let connector = connector(&state)?;
    let (tenant, user) = (caller.actor.tenant_id, caller.actor.user_id);
    let (channel, hint) = match request.channel_id.as_deref() {
        None => (None, None),
        Some(raw) => {
            let id: ChannelId = raw
                .parse()
                .map_err(|_| ApiError::NotFound { what: "channel" })?;
            let channel = state
                .store
                .run(move |c| channels::get(c, tenant, id))
                .await
                .ok()
                .filter(|c| {
                    c.spec.kind == ChannelKind::Gmail && c.spec.owner == ChannelOwner::User(user)
                })
                .ok_or(ApiError::NotFound {
                    what: "Gmail channel of yours",
                })?;
            (Some(id), channel.spec.from_address.map(|a| a.to_string()))
        }
    };
    let (url, expires_at) = connector.start(tenant, user, channel, hint).await?;
    Ok(web::Json(StartView {
        authorize_url: url,
        expires_at: chrono::DateTime::from_timestamp_micros(expires_at).unwrap_or_default(),
    }))
}

/// What Google appends to the redirect URI (it may add more, such as `authuser`).
#[derive(Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// Where Google sends the rep's browser after consent. Answers with a page, never JSON.
#[utoipa::path(
    tag = "channels",
    params(CallbackQuery),
    responses(
        (status = 200, description = "connected (HTML page)", content_type = "text/html"),
        (status = 400, description = "the link is unknown, used or expired, or Google reported an error (HTML page)", content_type = "text/html")
    )
)]
#[get("/oauth/google/callback")]
pub(super) async fn google_callback(
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let connector = match connector(&state) {
        Ok(c) => c,
        Err(e) => {
            return page(
                StatusCode::CONFLICT,
                "Gmail is not configured",
                &e.to_string(),
            );
        }
    };
    let Some(state_param) = query.state.as_deref() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "the link has no state; start again from Switchboard",
        );
    };
    match connector
        .finish(state_param, query.code.as_deref(), query.error.as_deref())
        .await
    {
        Ok(done) => {
            tracing::info!(channel_id = %done.channel, created = done.created, released = done.released, "Gmail connected");
            let mut text = format!("Switchboard now sends as {} through Gmail.", done.email);
            if done.released > 0 {
                text.push_str(&format!(
                    " {} held message(s) are on their way.",
                    done.released
                ));
            }
            text.push_str(" You can close this window.");
            page(StatusCode::OK, "Gmail connected", &text)
        }
        Err(ConnectError::Store(e)) => {
            tracing::error!(error = %e, "finishing a Gmail connection failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not connected",
                "something went wrong on our side; it has been logged. Start again in a moment",
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "a Gmail connection was refused");
            let status = match e {
                ConnectError::Google(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            page(status, "Not connected", &e.to_string())
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A minimal page. The URL it answers carries a code and a state: nothing here may be
/// cached or passed on in a Referer.
fn page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t} · Switchboard</title></head><body><main><h1>{t}</h1><p>{x}</p></main></body></html>",
            t = escape(title),
            x = escape(text)
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
