//! A local stand-in for the Microsoft identity platform (v2.0 endpoints) and the parts of
//! Microsoft Graph a mailbox channel uses, for integration tests: real HTTP on 127.0.0.1,
//! Microsoft's parameter names, status codes and error bodies (`error`, `error_description`
//! with its AADSTS number, `error_codes`, `suberror`), and knobs to fail the way Microsoft
//! does. Sources: /work/shared/MICROSOFT.md.
//!
//! What it imitates, and checks as Microsoft does:
//! - `GET /{tenant}/oauth2/v2.0/authorize`: the registered client and its exact redirect URI,
//!   `response_type=code`, PKCE (S256 required here: our client must always send it); a
//!   simulated signed-in account that consents at once, or an organisation that wants admin
//!   approval first (AADSTS90094);
//! - `POST /{tenant}/oauth2/v2.0/token`: the client secret (AADSTS7000215 wrong, 7000222
//!   expired), codes used once (AADSTS54005), the redirect URI, the PKCE verifier
//!   (AADSTS501481), a new refresh token on every refresh (strict by default: the old one is
//!   refused once used, so a client that forgets the rotated token fails), scripted AADSTS
//!   refusals, and an ID token with `iss = {base}/{tid}/v2.0`, `aud`, `nonce`, `tid`, `oid`
//!   (not signed: see fake_google.rs for why that is acceptable for a token received from
//!   the token endpoint);
//! - Graph `GET /v1.0/me`; `POST /v1.0/me/sendMail` with a base64 MIME body (`text/plain`),
//!   202 and nothing else on success; `GET /v1.0/me/mailFolders/sentitems/messages` with
//!   `$filter=internetMessageId eq '<…>'`; scripted failures (429 + Retry-After, 202 +
//!   Retry-After, a 504 after the message was stored, 401, 403 ErrorSendAsDenied, 413,
//!   MailboxNotEnabledForRESTAPI, a 5.1.8 block).
//!
//! Dropping the [`FakeMicrosoft`] stops the server.

#![allow(dead_code)]
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The `tid` of personal Microsoft accounts.
pub const PERSONAL_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Exchange Online's SMTP submission scope (a resource of its own).
pub const SMTP_SCOPE: &str = "https://outlook.office.com/SMTP.Send";

/// A Microsoft account the simulated browser is signed in as.
#[derive(Clone, Debug)]
pub struct Account {
    pub tid: String,
    pub oid: String,
    /// `/me`'s `mail` (null for some Outlook.com accounts and mailboxes without Exchange).
    pub mail: Option<String>,
    pub user_principal_name: String,
}

impl Account {
    /// A work account of the directory `tid`.
    pub fn work(tid: &str, address: &str) -> Self {
        Account {
            tid: tid.into(),
            oid: uuid::Uuid::new_v4().to_string(),
            mail: Some(address.into()),
            user_principal_name: address.into(),
        }
    }

    /// A personal (Outlook.com) account: no `mail`, the UPN is the address.
    pub fn personal(address: &str) -> Self {
        Account {
            tid: PERSONAL_TENANT.into(),
            oid: {
                let hex = uuid::Uuid::new_v4().simple().to_string();
                format!("00000000-0000-0000-{}-{}", &hex[..4], &hex[4..16])
            },
            mail: None,
            user_principal_name: address.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakeMicrosoftConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub account: Account,
    pub access_token_lifetime: Duration,
}

impl Default for FakeMicrosoftConfig {
    fn default() -> Self {
        FakeMicrosoftConfig {
            client_id: "5f1c2f8e-7d4b-4d7c-9a31-0d6e0e9b1a11".into(),
            client_secret: "Fake~Microsoft.Client_Secret-0123456789".into(),
            redirect_uri: "http://127.0.0.1:8080/oauth/microsoft/callback".into(),
            account: Account::work("72f988bf-86f1-41af-91ab-2d7cd011db47", "rep@contoso.test"),
            access_token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// A refusal of the token endpoint, as Microsoft words it.
#[derive(Clone, Debug)]
pub struct AadError {
    pub error: &'static str,
    pub code: u64,
    pub suberror: Option<&'static str>,
    pub description: &'static str,
}

impl AadError {
    /// AADSTS50173: an admin reset the password or revoked the sessions.
    pub fn password_changed() -> Self {
        AadError {
            error: "invalid_grant",
            code: 50173,
            suberror: Some("bad_token"),
            description: "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
        }
    }
    /// AADSTS53003: Conditional Access blocks the sign-in.
    pub fn conditional_access() -> Self {
        AadError {
            error: "invalid_grant",
            code: 53003,
            suberror: None,
            description: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        }
    }
    /// AADSTS7000222: the client secret expired.
    pub fn secret_expired() -> Self {
        AadError {
            error: "invalid_client",
            code: 7000222,
            suberror: None,
            description: "The provided client secret keys for app are expired. Visit the Azure portal to create new keys for your app.",
        }
    }
}

/// A scripted answer of `sendMail`, for the next sends (see [`FakeMicrosoft::fail_next_sends`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// 429 ApplicationThrottled with Retry-After; nothing stored.
    Throttled { retry_after_secs: u64 },
    /// Stored and 202, with Retry-After.
    AcceptedWithRetryAfter { retry_after_secs: u64 },
    /// Stored, then 504 (the gateway gave up; the mail went out anyway).
    GatewayTimeoutAfterStore,
    /// 401 InvalidAuthenticationToken although the token is valid (revoked early).
    Unauthorized,
    /// 403 ErrorSendAsDenied.
    SendAsDenied,
    /// 413 (request too large).
    TooLarge,
    /// 404 MailboxNotEnabledForRESTAPI.
    MailboxNotEnabled,
    /// 403 with 5.1.8 in the message (outbound spam block).
    SenderBlocked,
    /// 403 ErrorExceededMessageLimit (the mailbox's daily sending limit).
    ExceededMessageLimit,
}

/// A message `sendMail` stored.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub mime: Vec<u8>,
    pub internet_message_id: Option<String>,
    pub oid: String,
    pub access_token: String,
}

/// One request to the authorization endpoint.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub tenant: String,
    pub query: Vec<(String, String)>,
}

impl AuthorizationRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeMicrosoft {
    base_url: String,
    shared: Arc<Shared>,
    server: ServerHandle,
}

struct Shared {
    base_url: String,
    state: Mutex<State>,
}

struct Code {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    account: Account,
    offline: bool,
    /// The rep consented to `https://outlook.office.com/SMTP.Send` too.
    smtp_consented: bool,
    issued: Instant,
    used: bool,
}

struct AccessToken {
    account: Account,
    expires_at: Instant,
    /// For outlook.office.com (SMTP AUTH), not Graph: Graph refuses it, and vice versa.
    smtp: bool,
}

struct RefreshToken {
    account: Account,
    used: bool,
    revoked: bool,
    smtp_consented: bool,
}

#[derive(Default)]
struct Counters {
    code_exchanges: usize,
    pkce_failures: usize,
    refreshes: usize,
    smtp_tokens: usize,
    send_requests: usize,
    lookups: usize,
}

struct State {
    config: FakeMicrosoftConfig,
    send_delay: Duration,
    send_times: Vec<Instant>,
    sends_in_flight: usize,
    most_sends_in_flight: usize,
    account: Account,
    admin_approval_required: bool,
    secret_expired: bool,
    strict_rotation: bool,
    refresh_error: Option<AadError>,
    send_failures: Vec<SendFailure>,
    codes: HashMap<String, Code>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    authorization_requests: Vec<AuthorizationRequest>,
    refresh_tenants: Vec<String>,
    sent: Vec<SentMessage>,
    counters: Counters,
}

impl FakeMicrosoft {
    pub async fn start(config: FakeMicrosoftConfig) -> FakeMicrosoft {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the fake Microsoft");
        let port = listener.local_addr().unwrap().port();
        let base_url = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            state: Mutex::new(State {
                send_delay: Duration::ZERO,
                send_times: Vec::new(),
                sends_in_flight: 0,
                most_sends_in_flight: 0,
                account: config.account.clone(),
                config,
                admin_approval_required: false,
                secret_expired: false,
                strict_rotation: true,
                refresh_error: None,
                send_failures: Vec::new(),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                authorization_requests: Vec::new(),
                refresh_tenants: Vec::new(),
                sent: Vec::new(),
                counters: Counters::default(),
            }),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/{tenant}/oauth2/v2.0/authorize", web::get().to(authorize))
                .route("/{tenant}/oauth2/v2.0/token", web::post().to(token))
                .route("/v1.0/me", web::get().to(me))
                .route("/v1.0/me/sendMail", web::post().to(send_mail))
                .route(
                    "/v1.0/me/mailFolders/sentitems/messages",
                    web::get().to(sent_items),
                )
                .route("/_fake/smtp-token", web::post().to(smtp_token))
                .default_service(web::to(|| async {
                    graph_error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFound",
                        "Resource not found",
                    )
                }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeMicrosoft {
            base_url,
            shared,
            server: handle,
        }
    }

    /// `SWITCHBOARD_MICROSOFT_AUTHORITY_URL` (Microsoft: https://login.microsoftonline.com).
    pub fn authority_url(&self) -> String {
        self.base_url.clone()
    }

    /// `SWITCHBOARD_MICROSOFT_GRAPH_URL` (Microsoft: https://graph.microsoft.com/v1.0).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    // --- Knobs ---------------------------------------------------------------------------

    /// The account the simulated browser is signed in as.
    pub fn account(&self) -> Account {
        self.state().account.clone()
    }

    /// Signs another account into the simulated browser.
    pub fn sign_in_as(&self, account: Account) {
        self.state().account = account;
    }

    /// The organisation wants an admin to approve the app: the authorization endpoint sends
    /// the browser back with AADSTS90094 instead of a code.
    pub fn set_admin_approval_required(&self, required: bool) {
        self.state().admin_approval_required = required;
    }

    /// Every token request is refused with AADSTS7000222 (the client secret expired).
    pub fn set_client_secret_expired(&self, expired: bool) {
        self.state().secret_expired = expired;
    }

    /// The token endpoint refuses every refresh this way until cleared.
    pub fn set_refresh_error(&self, error: Option<AadError>) {
        self.state().refresh_error = error;
    }

    /// Microsoft keeps used refresh tokens valid; strict (the default here) refuses them,
    /// so a client that does not store the rotated one fails.
    pub fn set_strict_rotation(&self, strict: bool) {
        self.state().strict_rotation = strict;
    }

    /// The next sends fail (or answer) this way, one each, in order.
    pub fn fail_next_sends(&self, failures: &[SendFailure]) {
        self.state().send_failures.extend_from_slice(failures);
    }

    /// Every sendMail takes this long before it is handled (so that sends overlap).
    pub fn set_send_delay(&self, delay: Duration) {
        self.state().send_delay = delay;
    }

    /// When each sendMail request arrived, in order.
    pub fn send_times(&self) -> Vec<Instant> {
        self.state().send_times.clone()
    }

    /// The most sendMail requests that were in flight at once.
    pub fn most_sends_in_flight(&self) -> usize {
        self.state().most_sends_in_flight
    }

    /// Ends every access token issued so far.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for t in self.state().access_tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    /// Kills every refresh token (the admin revoked the sessions).
    pub fn revoke_refresh_tokens(&self) {
        for t in self.state().refresh_tokens.values_mut() {
            t.revoked = true;
        }
    }

    // --- Observations --------------------------------------------------------------------

    pub fn authorization_requests(&self) -> Vec<AuthorizationRequest> {
        self.state().authorization_requests.clone()
    }

    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    pub fn code_exchanges(&self) -> usize {
        self.state().counters.code_exchanges
    }

    pub fn pkce_failures(&self) -> usize {
        self.state().counters.pkce_failures
    }

    /// Successful and refused refreshes alike.
    pub fn refreshes(&self) -> usize {
        self.state().counters.refreshes
    }

    /// The `{tenant}` of each refresh request's path, in order.
    pub fn refresh_tenants(&self) -> Vec<String> {
        self.state().refresh_tenants.clone()
    }

    pub fn send_requests(&self) -> usize {
        self.state().counters.send_requests
    }

    pub fn sent_items_lookups(&self) -> usize {
        self.state().counters.lookups
    }

    /// How many access tokens for outlook.office.com (SMTP AUTH) were issued.
    pub fn smtp_tokens_issued(&self) -> usize {
        self.state().counters.smtp_tokens
    }

    /// Where an SMTP server in another process checks an XOAUTH2 login (`POST` form `user`,
    /// `token` → 204 or 401). Not a Microsoft endpoint: in Exchange Online the service that
    /// checks the token is Microsoft's own, and this stands in for it.
    pub fn smtp_token_url(&self) -> String {
        format!("{}/_fake/smtp-token", self.base_url)
    }

    /// Checks an XOAUTH2 login as Exchange Online does: a current token this server issued
    /// for outlook.office.com (a Graph token is refused), for the mailbox named in `user=`.
    pub fn smtp_token_check(&self) -> impl Fn(&str, &str) -> bool + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |user: &str, token: &str| smtp_token_valid(&shared.state(), user, token)
    }

    /// Every token string this server handed out (to look for in logs and responses).
    pub fn issued_secrets(&self) -> Vec<String> {
        let state = self.state();
        state
            .access_tokens
            .keys()
            .chain(state.refresh_tokens.keys())
            .cloned()
            .collect()
    }
}

impl Drop for FakeMicrosoft {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The identity platform's error body.
fn aad(
    status: StatusCode,
    error: &str,
    code: u64,
    suberror: Option<&str>,
    text: &str,
) -> HttpResponse {
    let mut body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: 2026-12-02 08:00:00Z", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
        "error_codes": [code],
        "timestamp": "2026-12-02 08:00:00Z",
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    if let Some(s) = suberror {
        body["suberror"] = json!(s);
    }
    HttpResponse::build(status).json(body)
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": code, "message": message,
                  "innerError": {"date": "2026-12-02T08:00:00", "request-id": uuid::Uuid::new_v4().to_string()}}
    }))
}

fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}

async fn authorize(
    req: HttpRequest,
    shared: web::Data<Shared>,
    tenant: web::Path<String>,
) -> HttpResponse {
    let query = query_pairs(&req);
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut state = shared.state();
    state.authorization_requests.push(AuthorizationRequest {
        tenant: tenant.clone(),
        query: query.clone(),
    });
    if get("client_id").as_deref() != Some(state.config.client_id.as_str()) {
        return aad(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            None,
            "Application was not found in the directory.",
        );
    }
    let Some(redirect_uri) = get("redirect_uri").filter(|r| *r == state.config.redirect_uri) else {
        return aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50011,
            None,
            "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        );
    };
    let back = |params: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        let state_param = get("state");
        if let Some(s) = state_param.as_deref() {
            all.push(("state", s));
        }
        let q = serde_urlencoded::to_string(&all).unwrap();
        HttpResponse::Found()
            .insert_header(("Location", format!("{redirect_uri}?{q}")))
            .finish()
    };
    if get("response_type").as_deref() != Some("code") {
        return back(&[
            ("error", "unsupported_response_type"),
            (
                "error_description",
                "AADSTS70005: response_type is not supported",
            ),
        ]);
    }
    let (Some(challenge), Some("S256")) = (
        get("code_challenge"),
        get("code_challenge_method").as_deref(),
    ) else {
        return back(&[
            ("error", "invalid_request"),
            (
                "error_description",
                "AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
            ),
        ]);
    };
    if state.admin_approval_required && state.account.tid != PERSONAL_TENANT {
        return back(&[
            ("error", "access_denied"),
            ("error_subcode", "cancel"),
            (
                "error_description",
                "AADSTS90094: The grant requires admin permission.",
            ),
        ]);
    }
    let scope = get("scope").unwrap_or_default();
    let code = random("0.AXYA");
    let account = state.account.clone();
    state.codes.insert(
        code.clone(),
        Code {
            redirect_uri: redirect_uri.clone(),
            challenge,
            nonce: get("nonce"),
            account,
            offline: scope.split(' ').any(|s| s == "offline_access"),
            smtp_consented: scope.split(' ').any(|s| s == SMTP_SCOPE),
            issued: Instant::now(),
            used: false,
        },
    );
    back(&[("code", code.as_str()), ("session_state", "fake-session")])
}

fn id_token(base: &str, client_id: &str, account: &Account, nonce: Option<&str>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"fake"}"#);
    let now = now_secs();
    let mut claims = json!({
        "aud": client_id,
        "iss": format!("{base}/{}/v2.0", account.tid),
        "iat": now, "nbf": now, "exp": now + 3600,
        "oid": account.oid, "tid": account.tid,
        "sub": format!("sub-{}", account.oid),
        "preferred_username": account.user_principal_name,
        "ver": "2.0",
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let mut sig = [0u8; 64];
    rand::rng().fill_bytes(&mut sig);
    format!(
        "{header}.{}.{}",
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

async fn token(
    shared: web::Data<Shared>,
    tenant: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let base = shared.base_url.clone();
    let mut state = shared.state();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("client_id") != state.config.client_id {
        return aad(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            None,
            "Application was not found in the directory.",
        );
    }
    if state.secret_expired {
        return aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            None,
            "The provided client secret keys for app are expired.",
        );
    }
    if get("client_secret") != state.config.client_secret {
        return aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            None,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    // One resource per token request: Graph's scopes or Exchange's, never both.
    let scope = get("scope");
    let wants_smtp = scope
        .split(' ')
        .any(|s| s.starts_with("https://outlook.office.com/"));
    let wants_graph = scope
        .split(' ')
        .any(|s| ["Mail.Send", "User.Read"].contains(&s) || s.starts_with("https://graph."));
    if wants_smtp && wants_graph {
        return aad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            700022,
            None,
            "The provided value for the input parameter scope is not valid because it contains more than one resource.",
        );
    }
    let (account, smtp_consented) = match get("grant_type").as_str() {
        "authorization_code" => {
            state.counters.code_exchanges += 1;
            let code_value = get("code");
            let Some(code) = state.codes.get_mut(&code_value) else {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    9002313,
                    None,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if code.used {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    54005,
                    None,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            }
            code.used = true;
            if code.issued.elapsed() > CODE_LIFETIME {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70008,
                    None,
                    "The provided authorization code or refresh token has expired due to inactivity.",
                );
            }
            if get("redirect_uri") != code.redirect_uri {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50148,
                    None,
                    "The redirect_uri specified in the token request does not match the redirect_uri of the authorization request.",
                );
            }
            let verifier = get("code_verifier");
            if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != code.challenge {
                state.counters.pkce_failures += 1;
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    501481,
                    None,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                );
            }
            if tenant.as_str() != "common" && tenant.as_str() != code.account.tid {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    700005,
                    None,
                    "Provided Authorization Code is intended to use against other tenant, thus rejected.",
                );
            }
            let (account, offline, nonce, consented) = (
                code.account.clone(),
                code.offline,
                code.nonce.clone(),
                code.smtp_consented,
            );
            let grant = Grant {
                account,
                offline,
                smtp_consented: consented,
                smtp: wants_smtp,
            };
            return issue(&mut state, &base, grant, nonce.as_deref());
        }
        "refresh_token" => {
            state.counters.refreshes += 1;
            state.refresh_tenants.push(tenant.clone());
            if let Some(e) = state.refresh_error.clone() {
                let status = if e.error == "invalid_client" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                };
                return aad(status, e.error, e.code, e.suberror, e.description);
            }
            let strict = state.strict_rotation;
            let Some(rt) = state.refresh_tokens.get_mut(&get("refresh_token")) else {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    9002313,
                    None,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if rt.revoked || (strict && rt.used) {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50173,
                    Some("bad_token"),
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                );
            }
            rt.used = true;
            if tenant.as_str() != "common" && tenant.as_str() != rt.account.tid {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    700005,
                    None,
                    "Provided grant is intended to use against other tenant, thus rejected.",
                );
            }
            if wants_smtp && !rt.smtp_consented {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    65001,
                    Some("consent_required"),
                    "The user or administrator has not consented to use the application. Send an interactive authorization request for this user and resource.",
                );
            }
            (rt.account.clone(), rt.smtp_consented)
        }
        other => {
            return aad(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                None,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
    };
    if wants_smtp {
        state.counters.smtp_tokens += 1;
    }
    let grant = Grant {
        account,
        offline: true,
        smtp_consented,
        smtp: wants_smtp,
    };
    issue(&mut state, &base, grant, None)
}

/// What a token response is issued for.
struct Grant {
    account: Account,
    offline: bool,
    smtp_consented: bool,
    /// The access token is for outlook.office.com (SMTP), not Graph.
    smtp: bool,
}

fn issue(state: &mut State, base: &str, grant: Grant, nonce: Option<&str>) -> HttpResponse {
    let Grant {
        account,
        offline,
        smtp_consented,
        smtp,
    } = grant;
    let access = random("eyJ0eXAiOiJKV1QiLCJub25jZSI6");
    let lifetime = state.config.access_token_lifetime;
    state.access_tokens.insert(
        access.clone(),
        AccessToken {
            account: account.clone(),
            expires_at: Instant::now() + lifetime,
            smtp,
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": if smtp { SMTP_SCOPE } else { "Mail.Send User.Read profile openid email" },
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
        "id_token": id_token(base, &state.config.client_id, &account, nonce),
    });
    if offline {
        let refresh = random("M.C5");
        state.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken {
                account,
                used: false,
                revoked: false,
                smtp_consented,
            },
        );
        body["refresh_token"] = json!(refresh);
    }
    HttpResponse::Ok().json(body)
}

async fn smtp_token(
    shared: web::Data<Shared>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if smtp_token_valid(&shared.state(), get("user"), get("token")) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::Unauthorized().finish()
    }
}

/// A current token issued for outlook.office.com, for the mailbox named `user`.
fn smtp_token_valid(state: &State, user: &str, token: &str) -> bool {
    state.access_tokens.get(token).is_some_and(|t| {
        t.smtp
            && t.expires_at > Instant::now()
            && (t.account.user_principal_name.eq_ignore_ascii_case(user)
                || t.account
                    .mail
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(user)))
    })
}

fn bearer(req: &HttpRequest, state: &State) -> Result<Account, HttpResponse> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match state.access_tokens.get(token) {
        Some(t) if t.smtp => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        )),
        Some(t) if t.expires_at > Instant::now() => Ok(t.account.clone()),
        Some(_) => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        )),
        None => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed.",
        )),
    }
}

async fn me(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let state = shared.state();
    let account = match bearer(&req, &state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    HttpResponse::Ok().json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": account.oid,
        "displayName": "Fake Rep",
        "mail": account.mail,
        "userPrincipalName": account.user_principal_name,
    }))
}

fn message_id(mime: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(mime);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .map(|l| l[11..].trim().to_owned())
}

async fn send_mail(req: HttpRequest, shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let delay = {
        let mut state = shared.state();
        state.send_times.push(Instant::now());
        state.sends_in_flight += 1;
        state.most_sends_in_flight = state.most_sends_in_flight.max(state.sends_in_flight);
        state.send_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = handle_send_mail(&req, &shared, &body);
    shared.state().sends_in_flight -= 1;
    response
}

fn handle_send_mail(req: &HttpRequest, shared: &Shared, body: &[u8]) -> HttpResponse {
    let mut state = shared.state();
    state.counters.send_requests += 1;
    let account = match bearer(req, &state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/plain") {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "This fake takes the MIME form only: Content-Type text/plain with the base64 message.",
        );
    }
    let Ok(mime) = STANDARD.decode(body.trim_ascii()) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        );
    };
    let failure = (!state.send_failures.is_empty()).then(|| state.send_failures.remove(0));
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned();
    let store = |state: &mut State| {
        state.sent.push(SentMessage {
            internet_message_id: message_id(&mime),
            mime: mime.clone(),
            oid: account.oid.clone(),
            access_token: token.clone(),
        })
    };
    match failure {
        None => {
            store(&mut state);
            HttpResponse::Accepted().finish()
        }
        Some(SendFailure::AcceptedWithRetryAfter { retry_after_secs }) => {
            store(&mut state);
            HttpResponse::Accepted()
                .insert_header(("Retry-After", retry_after_secs.to_string()))
                .finish()
        }
        Some(SendFailure::GatewayTimeoutAfterStore) => {
            store(&mut state);
            graph_error(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "")
        }
        Some(SendFailure::Throttled { retry_after_secs }) => {
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                retry_after_secs.to_string().parse().unwrap(),
            );
            r
        }
        Some(SendFailure::Unauthorized) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        ),
        Some(SendFailure::SendAsDenied) => graph_error(
            StatusCode::FORBIDDEN,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        ),
        Some(SendFailure::TooLarge) => graph_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request is larger than the maximum request size.",
        ),
        Some(SendFailure::MailboxNotEnabled) => graph_error(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
        Some(SendFailure::SenderBlocked) => graph_error(
            StatusCode::FORBIDDEN,
            "ErrorSubmissionQuotaExceeded",
            "550 5.1.8 Access denied, bad outbound sender.",
        ),
        Some(SendFailure::ExceededMessageLimit) => graph_error(
            StatusCode::FORBIDDEN,
            "ErrorExceededMessageLimit",
            "Cannot send mail. Daily Message/Recipient limit exceeded.",
        ),
    }
}

async fn sent_items(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.state();
    state.counters.lookups += 1;
    let account = match bearer(&req, &state) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let query = query_pairs(&req);
    let Some(filter) = query
        .iter()
        .find(|(k, _)| k == "$filter")
        .map(|(_, v)| v.clone())
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "This fake answers only $filter=internetMessageId eq '<…>'.",
        );
    };
    let Some(wanted) = filter
        .strip_prefix("internetMessageId eq '")
        .and_then(|rest| rest.strip_suffix('\''))
        .map(|v| v.replace("''", "'"))
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid filter clause",
        );
    };
    let value: Vec<Value> = state
        .sent
        .iter()
        .enumerate()
        .filter(|(_, m)| m.oid == account.oid && m.internet_message_id.as_deref() == Some(wanted.as_str()))
        .map(|(i, m)| json!({"id": format!("AAMkAD{i}"), "internetMessageId": m.internet_message_id}))
        .collect();
    HttpResponse::Ok().json(json!({ "value": value }))
}
