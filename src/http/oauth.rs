//! "Connect Gmail" and "Connect Microsoft": `POST /v1/oauth/{google,microsoft}/start` (the
//! rep, with their token) and `GET /oauth/{google,microsoft}/callback` (the rep's browser,
//! back from the provider, with no token: the server-side state says who started it). The
//! callback answers with a small page, or, for a connection started from the admin pages,
//! sends the browser back to them.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, REFERRER_POLICY};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, Problem};
use super::extract::optional_json;
use crate::domain::{Action, ChannelId, ChannelKind, ChannelOwner};
use crate::oauth::connect::{ConnectError, Connected, Connector, Finished};
use crate::oauth::provider::Provider;
use crate::store::channels;

/// The connector of the provider behind a channel kind (`gmail`, `microsoft`).
pub(super) fn connector(state: &AppState, kind: ChannelKind) -> Result<Connector, ApiError> {
    let provider = match kind {
        ChannelKind::Microsoft => state.microsoft.clone().map(Provider::Microsoft).ok_or_else(|| ApiError::Conflict {
            code: "microsoft_not_configured",
            detail: "Microsoft is not configured on this installation: the operator sets SWITCHBOARD_MICROSOFT_CLIENT_ID and SWITCHBOARD_MICROSOFT_CLIENT_SECRET (see docs/microsoft.md)".into(),
        })?,
        _ => state.google.clone().map(Provider::Google).ok_or_else(|| ApiError::Conflict {
            code: "gmail_not_configured",
            detail: "Gmail is not configured on this installation: the operator sets SWITCHBOARD_GOOGLE_CLIENT_ID and SWITCHBOARD_GOOGLE_CLIENT_SECRET (see docs/gmail.md)".into(),
        })?,
    };
    Ok(Connector {
        store: state.store.clone(),
        vault: state.vault.clone(),
        provider,
    })
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Reconnect this channel (of the caller, of the provider's kind) instead of connecting
    /// a new mailbox.
    channel_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StartView {
    /// Send the rep's browser here; the provider brings it back to
    /// `/oauth/{google,microsoft}/callback`.
    pub(super) authorize_url: String,
    /// The link works once, until then.
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /v1/oauth/{provider}/start` for one provider: the same handler, documented each
/// with its own path and its own "not configured" code.
macro_rules! start_endpoint {
    ($(#[$doc:meta])* $name:ident, $path:literal, $kind:expr, $not_configured:literal) => {
        $(#[$doc])*
        #[utoipa::path(
            tag = "channels",
            request_body(content = Option<StartRequest>),
            security(("bearer" = [])),
            responses(
                (status = 200, body = StartView), (status = 403, body = Problem),
                (status = 404, body = Problem),
                (status = 409, description = $not_configured, body = Problem)
            )
        )]
        #[post($path)]
        pub(super) async fn $name(
            caller: TenantCaller,
            state: web::Data<AppState>,
            body: web::Bytes,
        ) -> Result<web::Json<StartView>, ApiError> {
            Ok(web::Json(start(&caller, &state, &body, None, $kind).await?))
        }
    };
}

start_endpoint!(
    /// Starts "Connect Gmail".
    google_start,
    "/oauth/google/start",
    ChannelKind::Gmail,
    "Gmail is not configured (gmail_not_configured)"
);
start_endpoint!(
    /// Starts "Connect Microsoft": a Microsoft 365 (work or school) or Outlook.com account,
    /// at the `common` authority, with PKCE S256, `state` and `nonce`.
    microsoft_start,
    "/oauth/microsoft/start",
    ChannelKind::Microsoft,
    "Microsoft is not configured (microsoft_not_configured)"
);

/// Starts "Connect Gmail" or "Connect Microsoft" (`kind`), or a reconnect: the work of
/// `POST /v1/oauth/{google,microsoft}/start` and of the Connect and Reconnect buttons of the
/// pages. `body` is the API's JSON body ([`StartRequest`]), read once the caller may connect
/// a mailbox; `return_to` is the admin page the callback sends the browser back to (none:
/// the callback answers with its page).
pub(super) async fn start(
    caller: &TenantCaller,
    state: &AppState,
    body: &[u8],
    return_to: Option<String>,
    kind: ChannelKind,
) -> Result<StartView, ApiError> {
    caller.require(Action::ManageOwnMailboxChannels)?;
    let request: StartRequest = optional_json(body)?;
    let connector = connector(state, kind)?;
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
                .filter(|c| c.spec.kind == kind && c.spec.owner == ChannelOwner::User(user))
                .ok_or(ApiError::NotFound {
                    what: "mailbox channel of yours of this provider",
                })?;
            (Some(id), channel.spec.from_address.map(|a| a.to_string()))
        }
    };
    let (url, expires_at) = connector
        .start(tenant, user, channel, hint, return_to)
        .await?;
    Ok(StartView {
        authorize_url: url,
        expires_at: chrono::DateTime::from_timestamp_micros(expires_at).unwrap_or_default(),
    })
}

/// What the provider appends to the redirect URI (it may add more, such as `authuser`).
#[derive(Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    /// Microsoft: what went wrong, with its AADSTS code.
    error_description: Option<String>,
    /// Microsoft's admin consent: `True` once an admin approved Switchboard.
    admin_consent: Option<String>,
}

/// Where Google sends the rep's browser after consent. Answers with a page, never JSON; a
/// connection started from the admin pages is sent back to them instead.
#[utoipa::path(
    tag = "channels",
    params(CallbackQuery),
    responses(
        (status = 200, description = "connected (HTML page)", content_type = "text/html"),
        (status = 303, description = "a connection started from the admin pages: back to them, the outcome in a notice"),
        (status = 400, description = "the link is unknown, used or expired, or Google reported an error (HTML page)", content_type = "text/html")
    )
)]
#[get("/oauth/google/callback")]
pub(super) async fn google_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    callback(&req, &state, &query, ChannelKind::Gmail).await
}

/// Where Microsoft sends the rep's browser after sign-in, and an admin's after admin
/// consent. Answers with a page, never JSON; a connection started from the admin pages is
/// sent back to them instead.
#[utoipa::path(
    tag = "channels",
    params(CallbackQuery),
    responses(
        (status = 200, description = "connected, or admin consent granted (HTML page)", content_type = "text/html"),
        (status = 303, description = "a connection started from the admin pages: back to them, the outcome in a notice"),
        (status = 400, description = "the link is unknown, used or expired, or Microsoft reported an error (HTML page)", content_type = "text/html"),
        (status = 403, description = "the rep's organisation wants an admin to approve Switchboard: the page gives the admin-consent link", content_type = "text/html")
    )
)]
#[get("/oauth/microsoft/callback")]
pub(super) async fn microsoft_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    // An admin coming back from the admin-consent link (which carries no state of ours):
    // nothing to store, the approval is Microsoft's.
    if query.state.is_none() && (query.admin_consent.is_some() || query.error.is_some()) {
        return if query.admin_consent.as_deref() == Some("True") {
            page(
                StatusCode::OK,
                "Switchboard approved",
                "Your organisation approved Switchboard. Your reps can now connect their mailboxes with Connect Microsoft. You can close this window.",
            )
        } else {
            let why = query
                .error_description
                .as_deref()
                .and_then(|d| d.lines().next())
                .or(query.error.as_deref())
                .unwrap_or("no approval was recorded");
            page(
                StatusCode::BAD_REQUEST,
                "Not approved",
                &format!(
                    "Microsoft did not record an approval ({}); nothing was changed.",
                    why.chars().take(200).collect::<String>()
                ),
            )
        };
    }
    callback(&req, &state, &query, ChannelKind::Microsoft).await
}

async fn callback(
    req: &HttpRequest,
    state: &AppState,
    query: &CallbackQuery,
    kind: ChannelKind,
) -> HttpResponse {
    let connector = match connector(state, kind) {
        Ok(c) => c,
        Err(e) => {
            return page(
                StatusCode::CONFLICT,
                &format!("{} is not configured", label(kind)),
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
    let error = query
        .error
        .as_deref()
        .map(|e| (e, query.error_description.as_deref()));
    let Finished { return_to, outcome } = connector
        .finish(state_param, query.code.as_deref(), error)
        .await;
    log_outcome(&outcome, kind);
    if let Some(return_to) = return_to
        .as_deref()
        .and_then(|to| crate::http::ui::safe_next(Some(to)))
    {
        return back_to_pages(req, return_to, &outcome, kind);
    }
    match outcome {
        Ok(done) => {
            let mut text = format!(
                "Switchboard now sends as {} through {}.",
                done.email,
                label(kind)
            );
            if done.released > 0 {
                text.push_str(&format!(
                    " {} held message(s) are on their way.",
                    done.released
                ));
            }
            text.push_str(" You can close this window.");
            page(StatusCode::OK, &format!("{} connected", label(kind)), &text)
        }
        Err(ConnectError::Store(_)) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not connected",
            "something went wrong on our side; it has been logged. Start again in a moment",
        ),
        Err(ConnectError::AdminApproval {
            detail,
            consent_url,
        }) => admin_page(&detail, consent_url.as_deref()),
        Err(e) => {
            let status = match e {
                ConnectError::Provider(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            page(status, "Not connected", &e.to_string())
        }
    }
}

fn label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Microsoft => "Microsoft",
        _ => "Gmail",
    }
}

fn log_outcome(outcome: &Result<Connected, ConnectError>, kind: ChannelKind) {
    match outcome {
        Ok(done) => {
            tracing::info!(channel_id = %done.channel, created = done.created, released = done.released, provider = %kind, "mailbox connected");
        }
        Err(ConnectError::Store(e)) => {
            tracing::error!(error = %e, provider = %kind, "finishing a mailbox connection failed");
        }
        Err(e) => tracing::warn!(error = %e, provider = %kind, "a mailbox connection was refused"),
    }
}

/// Where a connection started from the pages returns to when it did not name its channel
/// (a new mailbox, whose channel exists only once Google has answered).
pub(super) const PAGES_NEW_CONNECTION: &str = "/ui/channels";

/// A connection started from the pages goes back to them, the outcome in a notice: on
/// success the channel's page, else the page it was started from.
fn back_to_pages(
    req: &HttpRequest,
    return_to: &str,
    outcome: &Result<Connected, ConnectError>,
    kind: ChannelKind,
) -> HttpResponse {
    let label = label(kind);
    let (location, notice) = match outcome {
        Ok(done) => {
            let mut text = format!("{label} connected: sends as {}", done.email);
            if done.released > 0 {
                text.push_str(&format!("; {} held message(s) released", done.released));
            }
            text.push('.');
            (format!("/ui/channels/{}", done.channel), text)
        }
        Err(ConnectError::Store(_)) => (
            return_to.to_owned(),
            format!(
                "{label} was not connected: something went wrong on our side; it has been logged. Start again in a moment."
            ),
        ),
        Err(ConnectError::AdminApproval {
            detail,
            consent_url: Some(url),
        }) => (
            return_to.to_owned(),
            format!(
                "{label} was not connected: {detail}. Admin-consent link for your Microsoft admin: {url}"
            ),
        ),
        Err(e) => (
            return_to.to_owned(),
            format!("{label} was not connected: {e}."),
        ),
    };
    let mut response = crate::http::ui::session::redirect_with_flash(req, &location, &notice);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
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

/// The page a rep sees when their organisation wants an admin to approve Switchboard: what
/// happened, in words, and the link to hand the admin.
fn admin_page(detail: &str, consent_url: Option<&str>) -> HttpResponse {
    let link = consent_url
        .map(|url| {
            format!(
                "<p>Send this link to your Microsoft admin; once they approve, connect again:</p><p><a href=\"{u}\">{u}</a></p>",
                u = escape(url)
            )
        })
        .unwrap_or_default();
    HttpResponse::build(StatusCode::FORBIDDEN)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Ask your Microsoft admin · Switchboard</title></head><body><main><h1>Ask your Microsoft admin</h1><p>{}</p>{link}</main></body></html>",
            escape(detail)
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_admin_page(to: &str) -> bool {
        crate::http::ui::safe_next(Some(to)).is_some()
    }

    #[test]
    fn the_callback_sends_browsers_back_only_to_our_pages() {
        assert!(is_admin_page("/ui/channels"));
        assert!(is_admin_page(
            "/ui/channels/0b4c3a52-1d0e-4f57-9a51-8f2d1c3b4a5e"
        ));
        assert!(!is_admin_page("/v1/channels"));
        assert!(!is_admin_page("//evil.example/ui/"));
        assert!(!is_admin_page("/ui//evil.example"));
        assert!(!is_admin_page("https://evil.example/ui/"));
        assert!(!is_admin_page("/ui\\evil"));
    }

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
