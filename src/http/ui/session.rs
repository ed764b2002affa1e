//! Who is using the admin pages: the session cookie, CSRF tokens and the extractors every
//! page handler takes. A session is opened by signing in with an API token (`sign_in`);
//! the cookie holds a random secret whose hash names the session row.
//!
//! CSRF: every form carries a token derived from the session secret (HMAC), so it needs no
//! storage and works across processes, and an attacker who cannot read the HttpOnly cookie
//! cannot compute it. Every POST also has its `Origin` (when the browser sends one) checked
//! against the host it was sent to, and the cookie is `SameSite=Lax`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponseBuilder, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::UiError;
use crate::domain::Actor;
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::store::sessions::{self, SessionLimits};
use crate::vault::TokenHash;

/// Largest form body the pages accept.
const FORM_LIMIT: usize = 64 * 1024;
/// The field every form carries its CSRF token in.
pub const CSRF_FIELD: &str = "_csrf";
const FLASH_COOKIE: &str = "sb_flash";
const SIGN_IN_COOKIE: &str = "sb_sign_in";

/// How cookies are written on this installation: `Secure` and the `__Host-` prefix
/// wherever the browser reaches us over HTTPS or on a loopback address (browsers treat
/// both as secure contexts); plain otherwise, which `startup` warns about.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    pub fn for_public_url(public_url: &str) -> Self {
        let secure = match url::Url::parse(public_url) {
            Ok(url) if url.scheme() == "https" => true,
            Ok(url) => match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            },
            Err(_) => false,
        };
        Self { secure }
    }

    pub fn session_name(self) -> &'static str {
        if self.secure {
            "__Host-switchboard_session"
        } else {
            "switchboard_session"
        }
    }

    fn cookie(self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            cookie.push_str("; Secure");
        }
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        cookie
    }
}

fn policy(req: &HttpRequest) -> CookiePolicy {
    req.app_data::<web::Data<AppState>>()
        .map(|s| CookiePolicy::for_public_url(&s.config.public_url))
        .unwrap_or(CookiePolicy { secure: true })
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, UiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| UiError::Internal("application state missing".into()))
}

/// The value of one cookie of the request. actix-web's cookie feature is not compiled in;
/// the header is simple enough to read here.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn csrf_for(session_secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(session_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"switchboard ui csrf v1");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Refuses a POST whose `Origin` names another site. Browsers send `Origin` on every
/// cross-origin POST; its absence (old browsers, some same-origin requests) leaves the
/// decision to the CSRF token.
fn check_origin(req: &HttpRequest) -> Result<(), UiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    // `host[:port]` as a Host header carries it (the port only when not the scheme's own).
    let authority = |raw: &str| {
        url::Url::parse(raw).ok().map(|u| match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_owned(),
        })
    };
    let origin_host = origin.to_str().ok().and_then(authority);
    let public_host = state(req)
        .ok()
        .and_then(|s| authority(&s.config.public_url));
    match origin_host {
        Some(o) if o.eq_ignore_ascii_case(host) || Some(&o) == public_host.as_ref() => Ok(()),
        _ => Err(UiError::Csrf),
    }
}

/// A signed-in user of the pages. Handlers for pages take this; a request without a live
/// session is sent to the sign-in page (and comes back afterwards).
#[derive(Clone)]
pub struct UiSession {
    pub caller: TenantCaller,
    /// The API token this session was opened with: revoking it signs this browser out.
    pub token_id: crate::domain::TokenId,
    /// The token forms must carry (`CSRF_FIELD`).
    pub csrf: String,
    /// A one-time notice left by the previous request (set with `flash`).
    pub flash: Option<String>,
}

impl UiSession {
    pub fn actor(&self) -> &Actor {
        &self.caller.actor
    }
}

// By hand, so the CSRF token (derived from the session secret) stays out of Debug output.
impl std::fmt::Debug for UiSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiSession")
            .field("caller", &self.caller)
            .field("token_id", &self.token_id)
            .field("csrf", &"[redacted]")
            .finish_non_exhaustive()
    }
}

async fn load_session(req: HttpRequest) -> Result<UiSession, UiError> {
    let state = state(&req)?;
    let next = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .filter(|_| req.method() == actix_web::http::Method::GET);
    let Some(secret) = cookie(&req, policy(&req).session_name()) else {
        return Err(UiError::SignInRequired { next });
    };
    let hash = TokenHash::of(&secret);
    let found = state
        .store
        .run(move |conn| sessions::authenticate(conn, hash, SessionLimits::DEFAULT))
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let Some(session) = found else {
        return Err(UiError::SignInRequired { next });
    };
    let span = tracing::Span::current();
    span.record(
        "tenant_id",
        tracing::field::display(session.actor.tenant_id),
    );
    span.record("user_id", tracing::field::display(session.actor.user_id));
    Ok(UiSession {
        caller: TenantCaller {
            actor: session.actor,
        },
        token_id: session.token_id,
        csrf: csrf_for(&secret),
        flash: take_flash(&req),
    })
}

/// The one-time notice left for this request, if any; the response will clear it.
pub fn take_flash(req: &HttpRequest) -> Option<String> {
    let flash = cookie(req, FLASH_COOKIE)
        .and_then(|raw| urlencoding_decode(&raw))
        .filter(|text| !text.is_empty());
    req.extensions_mut().insert(FlashShown(flash.is_some()));
    flash
}

/// Marks that this request displayed a flash notice, so the response clears it.
#[derive(Clone, Copy)]
pub(super) struct FlashShown(pub bool);

impl FromRequest for UiSession {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(load_session(req.clone()))
    }
}

/// A form posted by a signed-in user, its CSRF token and origin checked before the handler
/// sees it. Every state-changing page handler takes this, so none can forget the check.
pub struct UiPost<T> {
    pub session: UiSession,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for UiPost<T> {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            check_origin(&req)?;
            let session = load_session(req.clone()).await?;
            let body = body.await.map_err(|_| UiError::BadForm {
                detail: format!("the form is larger than {FORM_LIMIT} bytes"),
            })?;
            if body.len() > FORM_LIMIT {
                return Err(UiError::BadForm {
                    detail: format!("the form is larger than {FORM_LIMIT} bytes"),
                });
            }
            let presented = form_field(&body, CSRF_FIELD).unwrap_or_default();
            if !same(&presented, &session.csrf) {
                return Err(UiError::Csrf);
            }
            let form = serde_urlencoded::from_bytes(&body).map_err(|e| UiError::BadForm {
                detail: e.to_string(),
            })?;
            Ok(UiPost { session, form })
        })
    }
}

/// One field of an urlencoded body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn urlencoding_decode(raw: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("m={raw}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

/// Leaves a one-time notice for the next page this browser shows (after a redirect).
pub fn flash(req: &HttpRequest, response: &mut HttpResponseBuilder, text: &str) {
    let encoded = serde_urlencoded::to_string([("m", text)]).unwrap_or_default();
    let value = encoded.trim_start_matches("m=");
    set_cookie(response, &policy(req).cookie(FLASH_COOKIE, value, Some(60)));
}

/// Sends the browser on to `to` (post/redirect/get) with a one-time notice for that page.
pub fn redirect_with_flash(req: &HttpRequest, to: &str, text: &str) -> actix_web::HttpResponse {
    let mut response = actix_web::HttpResponse::SeeOther();
    flash(req, &mut response, text);
    response
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Clears the flash notice once a page has shown it.
pub(super) fn clear_flash(req: &HttpRequest) -> Option<String> {
    let shown = req.extensions().get::<FlashShown>().is_some_and(|f| f.0);
    shown.then(|| policy(req).cookie(FLASH_COOKIE, "", Some(0)))
}

fn set_cookie(response: &mut HttpResponseBuilder, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.append_header((header::SET_COOKIE, value));
    }
}

/// The sign-in form's own CSRF defence (there is no session yet): a random value in a
/// cookie that the form must repeat (double submit), so another site cannot sign a browser
/// in to an account of its choosing.
pub struct SignInGuard {
    pub value: String,
    fresh: bool,
}

impl SignInGuard {
    pub fn for_request(req: &HttpRequest) -> Self {
        match cookie(req, SIGN_IN_COOKIE).filter(|v| v.len() == 43) {
            Some(value) => Self {
                value,
                fresh: false,
            },
            None => Self {
                value: random_secret(),
                fresh: true,
            },
        }
    }

    pub fn set_on(&self, req: &HttpRequest, response: &mut actix_web::HttpResponse) {
        if self.fresh
            && let Ok(value) =
                HeaderValue::from_str(&policy(req).cookie(SIGN_IN_COOKIE, &self.value, Some(3600)))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    /// Checks a posted sign-in form's origin and repeated value.
    pub fn verify(req: &HttpRequest, body: &[u8]) -> Result<(), UiError> {
        check_origin(req)?;
        let expected = cookie(req, SIGN_IN_COOKIE).unwrap_or_default();
        let presented = form_field(body, CSRF_FIELD).unwrap_or_default();
        if expected.is_empty() || !same(&expected, &presented) {
            return Err(UiError::Csrf);
        }
        Ok(())
    }
}

/// Opens a session for the holder of `token` and sets its cookie; `None` when the token is
/// not a live tenant token.
pub async fn open(
    req: &HttpRequest,
    token: &str,
    response: &mut HttpResponseBuilder,
) -> Result<Option<Actor>, UiError> {
    let state = state(req)?;
    let secret = random_secret();
    let (token_hash, session_hash) = (TokenHash::of(token), TokenHash::of(&secret));
    let opened = state
        .store
        .run(move |conn| sessions::open(conn, token_hash, session_hash, SessionLimits::DEFAULT))
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let Some(session) = opened else {
        return Ok(None);
    };
    let policy = policy(req);
    set_cookie(
        response,
        &policy.cookie(policy.session_name(), &secret, None),
    );
    set_cookie(response, &policy.cookie(SIGN_IN_COOKIE, "", Some(0)));
    Ok(Some(session.actor))
}

/// Ends the request's session, if any, and clears its cookie.
pub async fn close(req: &HttpRequest, response: &mut HttpResponseBuilder) -> Result<(), UiError> {
    let policy = policy(req);
    if let Some(secret) = cookie(req, policy.session_name()) {
        let state = state(req)?;
        let hash = TokenHash::of(&secret);
        state
            .store
            .run(move |conn| sessions::close(conn, hash))
            .await
            .map_err(|e| UiError::Internal(e.to_string()))?;
    }
    set_cookie(response, &policy.cookie(policy.session_name(), "", Some(0)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_on_https_and_loopback_only() {
        assert!(CookiePolicy::for_public_url("https://switchboard.example.com").secure);
        assert!(CookiePolicy::for_public_url("http://127.0.0.1:8080").secure);
        assert!(CookiePolicy::for_public_url("http://localhost:8080").secure);
        assert!(CookiePolicy::for_public_url("http://[::1]:8080").secure);
        assert!(!CookiePolicy::for_public_url("http://10.0.0.5:8080").secure);
        let secure = CookiePolicy { secure: true };
        let cookie = secure.cookie(secure.session_name(), "v", None);
        assert_eq!(
            cookie,
            "__Host-switchboard_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let (a, b) = (csrf_for("session-a"), csrf_for("session-b"));
        assert_ne!(a, b);
        assert_eq!(a, csrf_for("session-a"));
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..10]));
    }

    #[test]
    fn a_session_never_shows_its_csrf_token_in_debug_output() {
        let session = UiSession {
            caller: TenantCaller {
                actor: Actor {
                    tenant_id: crate::domain::TenantId::generate(),
                    user_id: crate::domain::UserId::generate(),
                    role: crate::domain::Role::Rep,
                },
            },
            token_id: crate::domain::TokenId::generate(),
            csrf: "Canary-Csrf-Token".into(),
            flash: None,
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("Canary-Csrf-Token"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn form_fields_are_read_decoded() {
        let body = b"name=Team+relay&_csrf=abc%2Fdef&x=1";
        assert_eq!(form_field(body, "_csrf").as_deref(), Some("abc/def"));
        assert_eq!(form_field(body, "name").as_deref(), Some("Team relay"));
        assert_eq!(form_field(body, "missing"), None);
        assert_eq!(
            urlencoding_decode("Saved%3B+all+good").as_deref(),
            Some("Saved; all good")
        );
    }
}
