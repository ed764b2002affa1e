//! A local stand-in for Google's OAuth 2.0 / OpenID Connect endpoints and the Gmail API send
//! methods, for integration tests: real HTTP on 127.0.0.1, Google's parameter names, status
//! codes, token formats and error bodies, and knobs to make it fail the way Google does.
//!
//! What it imitates (see /work/shared/PROVIDERS.md §1 for the sources):
//! - the authorization endpoint (`/o/oauth2/v2/auth`) with a simulated, already signed-in user
//!   who consents at once (or denies, or unticks scopes on the granular consent screen);
//! - the token endpoint (`/token`): `authorization_code` with PKCE and `refresh_token` grants,
//!   `client_secret_post` and `client_secret_basic`, Google's refresh-token issuing rules
//!   (`access_type=offline`, first grant or `prompt=consent`) and its 100-token limit;
//! - revocation (`/revoke`), OIDC userinfo (`/v1/userinfo`), a discovery document and an
//!   (empty) JWKS;
//! - `users.messages.send`, both the metadata URI (JSON `raw`) and the media upload URI.
//!
//! ID tokens are NOT really signed: the header says RS256 like Google's, but the signature is
//! random bytes and the JWKS is empty. Code under test must not validate ID-token signatures
//! against this server; it should either read identity from the userinfo endpoint or use the
//! ID token as received directly from the token endpoint over TLS, which OIDC Core §3.1.3.7
//! (step 6) allows without checking the signature.
//!
//! Time is real time: access tokens die `access_token_lifetime` after issue (or at once with
//! [`FakeGoogle::expire_access_tokens`]). Dropping the [`FakeGoogle`] stops the server.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]
// Handlers' helpers return `Result<_, HttpResponse>` so that `?` yields the error response;
// its size is irrelevant at test request rates.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use rand::{Rng as _, RngCore as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Google's issuer string, used in ID tokens unless the config says otherwise.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// The narrowest scope that allows `users.messages.send`.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";
/// What Google turns the `email` and `profile` shorthands into in token responses.
const USERINFO_EMAIL_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.email";
const USERINFO_PROFILE_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.profile";
/// Scopes any of which lets a token call `users.messages.send` (Gmail API reference).
const SEND_CAPABLE_SCOPES: [&str; 4] = [
    GMAIL_SEND_SCOPE,
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/gmail.compose",
];
/// Google's authorization codes are short-lived; RFC 6749 §4.1.2 recommends at most 10 minutes.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Google's `expires_in` for a fresh access token (one second short of an hour).
const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Largest media upload for `messages.send` (Gmail discovery document, `maxSize`).
const MAX_UPLOAD_BYTES: usize = 36_700_160;
/// Largest request body the server reads at all: a 35 MB message base64-encoded in JSON fits.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The message Google puts in every 401 from its APIs.
const INVALID_CREDENTIALS_MESSAGE: &str = "Request had invalid authentication credentials. \
     Expected OAuth 2 access token, login cookie or other valid authentication credential. \
     See https://developers.google.com/identity/sign-in/web/devconsole-project.";
const MISSING_CREDENTIALS_MESSAGE: &str = "Request is missing required authentication \
     credential. Expected OAuth 2 access token, login cookie or other valid authentication \
     credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Everything that shapes the fake at start. The registered OAuth client and the signed-in
/// Google account are the ones a test normally needs; more clients can be added later with
/// [`FakeGoogle::register_client`].
#[derive(Clone, Debug)]
pub struct FakeGoogleConfig {
    /// The registered OAuth client ID (Google's look like `…apps.googleusercontent.com`).
    pub client_id: String,
    /// Its secret (Google's start with `GOCSPX-`).
    pub client_secret: String,
    /// The one registered redirect URI; Google compares it exactly, character for character.
    pub redirect_uri: String,
    /// The Google account that is "signed in" in the simulated browser.
    pub account_email: String,
    /// Its stable `sub`; `None` derives a Google-looking 21-digit number from the email.
    pub account_sub: Option<String>,
    /// Refuse authorization requests without `code_challenge_method=S256`. Google itself only
    /// requires PKCE for some client types, but our client must always send it.
    pub require_pkce: bool,
    /// `expires_in` of access tokens (Google: 3599 s).
    pub access_token_lifetime: Duration,
    /// Refresh-token lifetime: `None` for production apps; `Some(7 days)` imitates a consent
    /// screen in "Testing" status with scopes beyond openid/email/profile.
    pub refresh_token_lifetime: Option<Duration>,
    /// Live refresh tokens per Google account per client; minting one more silently
    /// invalidates the oldest (Google: 100).
    pub refresh_token_limit: usize,
    /// `iss` of ID tokens and in the discovery document; `None` means this server's base URL,
    /// which keeps discovery self-consistent (OIDC Discovery §4.3). Use [`GOOGLE_ISSUER`] to
    /// look exactly like Google.
    pub issuer: Option<String>,
    /// The Google Workspace domain of the account, sent as userinfo's `hd`; `None` for a
    /// consumer account (gmail.com), for which Google sends no `hd`.
    pub hosted_domain: Option<String>,
}

impl Default for FakeGoogleConfig {
    fn default() -> Self {
        FakeGoogleConfig {
            client_id: "1234567890-switchboardtest.apps.googleusercontent.com".to_string(),
            client_secret: "GOCSPX-fake-google-client-secret".to_string(),
            redirect_uri: "http://127.0.0.1:8080/oauth/google/callback".to_string(),
            account_email: "rep@example.test".to_string(),
            account_sub: None,
            require_pkce: true,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            refresh_token_lifetime: None,
            refresh_token_limit: 100,
            issuer: None,
            hosted_domain: None,
        }
    }
}

/// A misbehaviour of the token endpoint, set with [`FakeGoogle::set_token_failure`]; it lasts
/// until cleared and applies to every grant type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Answer 503 without looking at the request.
    ServerError,
    /// Wait this long, then handle the request normally. The request is counted on arrival and
    /// processed after the wait, so two overlapping refreshes race for real.
    Delay(Duration),
}

/// A misbehaviour of `messages.send`, set with [`FakeGoogle::set_send_failure`] (until
/// cleared) or [`FakeGoogle::fail_next_sends`]. It applies only to requests whose access token
/// is valid: Google authenticates before anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// 429 `rateLimitExceeded`, "User-rate limit exceeded.  Retry after <RFC 3339>": the
    /// per-user mail-sending limit, which can last hours.
    RateLimited { retry_after_secs: u64 },
    /// 403 `userRateLimitExceeded`: the per-user quota-units limit (15,000 units per minute).
    UserRateLimit,
    /// 403 `dailyLimitExceeded`.
    DailyLimit,
    /// 400 with this reason (`"invalidArgument"` or `"failedPrecondition"`) and message.
    BadRequest {
        reason: &'static str,
        message: String,
    },
    /// 503 `backendError`.
    ServerError,
    /// Not a failure: the message is accepted and stored at once, but the 200 comes this much
    /// later, so a client that times out cannot know whether the mail went out.
    Delay(Duration),
}

/// One request to the authorization endpoint, as the simulated browser made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// `None` if a code was issued; otherwise the error shown on the page or sent back in the
    /// redirect (`invalid_client`, `redirect_uri_mismatch`, `access_denied`, ...).
    pub error: Option<String>,
}

impl AuthorizationRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Which send URI a message came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendVia {
    /// `POST /gmail/v1/users/{userId}/messages/send` with JSON `{"raw": …}`.
    Json,
    /// `POST /upload/gmail/v1/users/{userId}/messages/send?uploadType=media`.
    MediaUpload,
}

/// A message `messages.send` accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The Gmail message ID returned to the client.
    pub id: String,
    /// The thread ID returned to the client.
    pub thread_id: String,
    /// The RFC 5322 message, decoded from base64url (or as uploaded).
    pub raw: Vec<u8>,
    /// The To, Cc and Bcc addresses found in its header, which is where Gmail takes them from.
    pub recipients: Vec<String>,
    /// The account whose access token sent it.
    pub user_email: String,
    pub user_sub: String,
    /// The access token used.
    pub access_token: String,
    pub via: SendVia,
}

/// Tokens minted directly with [`FakeGoogle::issue_tokens`], skipping the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// The granted scopes, as Google spells them in token responses.
    pub scope: String,
}

/// A running fake on 127.0.0.1; stops when dropped.
pub struct FakeGoogle {
    base_url: String,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl FakeGoogle {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(config: FakeGoogleConfig) -> FakeGoogle {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the fake Google server");
        let port = listener
            .local_addr()
            .expect("local address of the fake Google server")
            .port();
        let base_url = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            state: Mutex::new(State::new(config)),
        });

        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/oauth2/v3/certs", web::get().to(certs))
                .route("/o/oauth2/v2/auth", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/revoke", web::post().to(revoke))
                .route("/v1/userinfo", web::get().to(userinfo))
                .route(
                    "/gmail/v1/users/{user_id}/messages/send",
                    web::post().to(send_json),
                )
                .route(
                    "/upload/gmail/v1/users/{user_id}/messages/send",
                    web::post().to(send_upload),
                )
                .default_service(web::to(not_found))
        })
        .workers(2)
        // The test process's Ctrl-C is not ours to catch.
        .disable_signals()
        .listen(listener)
        .expect("listen on the fake Google socket")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeGoogle {
            base_url,
            shared,
            server: handle,
        }
    }

    // --- URLs ------------------------------------------------------------------------------

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The authorization endpoint (Google: `https://accounts.google.com/o/oauth2/v2/auth`).
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url)
    }

    /// The token endpoint (Google: `https://oauth2.googleapis.com/token`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// The revocation endpoint (Google: `https://oauth2.googleapis.com/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url)
    }

    /// The userinfo endpoint (Google: `https://openidconnect.googleapis.com/v1/userinfo`).
    pub fn userinfo_url(&self) -> String {
        format!("{}/v1/userinfo", self.base_url)
    }

    /// The Gmail API base (Google: `https://gmail.googleapis.com`): send at
    /// `{base}/gmail/v1/users/me/messages/send` and `{base}/upload/gmail/v1/users/me/messages/send`.
    pub fn gmail_api_url(&self) -> String {
        self.base_url.clone()
    }

    /// The OpenID discovery document, listing the URLs above.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base_url)
    }

    /// The JWKS URI; it publishes no keys (ID tokens here are unsigned, see the module docs).
    pub fn jwks_url(&self) -> String {
        format!("{}/oauth2/v3/certs", self.base_url)
    }

    /// The `iss` this server puts in ID tokens and its discovery document.
    pub fn issuer(&self) -> String {
        self.shared.issuer(&self.shared.state())
    }

    // --- Knobs -----------------------------------------------------------------------------

    /// Makes the simulated user click "Cancel" on the consent screen: the authorization
    /// endpoint redirects back with `error=access_denied`.
    pub fn set_user_denies(&self, denies: bool) {
        self.shared.state().user_denies = denies;
    }

    /// Makes the simulated user untick these scopes on Google's granular consent screen. The
    /// sign-in scopes (`openid`, `email`, `profile`) cannot be unticked there and are ignored.
    pub fn set_withheld_scopes(&self, scopes: &[&str]) {
        self.shared.state().withheld_scopes = scopes.iter().map(|s| expand_scope(s)).collect();
    }

    /// Signs a different Google account into the simulated browser (`sub` derived from the
    /// email). Tokens already issued keep their account.
    pub fn sign_in_as(&self, email: &str) {
        let mut state = self.shared.state();
        state.account_email = email.to_string();
        state.account_sub = derive_sub(email);
    }

    /// The `sub` of the account signed in now.
    pub fn account_sub(&self) -> String {
        self.shared.state().account_sub.clone()
    }

    /// Registers another OAuth client (one redirect URI).
    pub fn register_client(&self, client_id: &str, client_secret: &str, redirect_uri: &str) {
        self.shared.state().clients.insert(
            client_id.to_string(),
            Client {
                secret: client_secret.to_string(),
                redirect_uris: vec![redirect_uri.to_string()],
            },
        );
    }

    /// Switches a token-endpoint misbehaviour on, or off with `None`.
    pub fn set_token_failure(&self, failure: Option<FailMode>) {
        self.shared.state().token_failure = failure;
    }

    /// Makes every refresh return a new refresh token and invalidate the one presented.
    /// Google does not normally rotate; this provokes the lost-update race in our client.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.shared.state().rotate_refresh_tokens = rotate;
    }

    /// `expires_in` of access tokens issued from now on; 0 makes them expire at once.
    pub fn set_access_token_lifetime(&self, secs: u64) {
        self.shared.state().access_token_lifetime = Duration::from_secs(secs);
    }

    /// Ends every access token issued so far, as an hour passing would.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for token in self.shared.state().access_tokens.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    /// Kills every refresh token, as a password change (for tokens with Gmail scopes) or the
    /// user removing the app does. Access tokens live on until they expire.
    pub fn revoke_all_refresh_tokens(&self) {
        for token in self.shared.state().refresh_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Makes `messages.send` accept access tokens this server never issued, as belonging to
    /// the signed-in account with the `gmail.send` scope (tokens it did issue keep their usual
    /// checks: an expired or revoked one is still refused). For tests whose tokens come from
    /// another authorization server, such as the interop test against oauth2-mock-server,
    /// which still want Gmail to accept the mail. Off by default.
    pub fn accept_any_access_token(&self, accept: bool) {
        self.shared.state().accept_any_access_token = accept;
    }

    /// Makes `messages.send` fail this way until cleared with `None`.
    pub fn set_send_failure(&self, failure: Option<SendFailure>) {
        self.shared.state().send_failure = failure.map(|failure| (failure, None));
    }

    /// Makes the next `count` authenticated `messages.send` requests fail this way, then
    /// succeed again.
    pub fn fail_next_sends(&self, count: usize, failure: SendFailure) {
        self.shared.state().send_failure = Some((failure, Some(count)));
    }

    /// Mints tokens for the signed-in account and the configured client as a completed
    /// offline-access consent would, skipping the browser and the token endpoint (for tests
    /// that need a connected channel, not the flow).
    pub fn issue_tokens(&self, scope: &str) -> IssuedTokens {
        let mut state = self.shared.state();
        let client_id = state.config.client_id.clone();
        let grant = Grant {
            client_id,
            sub: state.account_sub.clone(),
            email: state.account_email.clone(),
            scopes: expand_scopes(scope),
        };
        state.remember_consent(&grant);
        let (access_token, _) = state.mint_access_token(&grant);
        let refresh_token = state.mint_refresh_token(&grant);
        IssuedTokens {
            access_token,
            refresh_token,
            scope: join_scopes(&grant.scopes),
        }
    }

    // --- Observations ----------------------------------------------------------------------

    /// The requests to the authorization endpoint so far, in order.
    pub fn authorization_requests(&self) -> Vec<AuthorizationRequest> {
        self.shared.state().authorization_requests.clone()
    }

    /// The messages `messages.send` accepted so far, in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.state().sent.clone()
    }

    /// Requests to the token endpoint, whatever their outcome.
    pub fn token_requests(&self) -> usize {
        self.shared.state().counters.token_requests
    }

    /// Token requests with `grant_type=refresh_token`.
    pub fn refresh_requests(&self) -> usize {
        self.shared.state().counters.refresh_requests
    }

    /// Token requests with `grant_type=authorization_code`.
    pub fn code_exchanges(&self) -> usize {
        self.shared.state().counters.code_exchanges
    }

    /// Code exchanges refused because the PKCE verifier was missing or did not match.
    pub fn pkce_failures(&self) -> usize {
        self.shared.state().counters.pkce_failures
    }

    /// Requests to the revocation endpoint, whatever their outcome.
    pub fn revocations(&self) -> usize {
        self.shared.state().counters.revocations
    }

    /// Requests to the userinfo endpoint, whatever their outcome.
    pub fn userinfo_requests(&self) -> usize {
        self.shared.state().counters.userinfo_requests
    }

    /// Requests to either send URI, whatever their outcome.
    pub fn send_requests(&self) -> usize {
        self.shared.state().counters.send_requests
    }

    /// Refresh tokens minted so far (by code exchanges, rotation or `issue_tokens`).
    pub fn refresh_tokens_issued(&self) -> usize {
        self.shared.state().counters.refresh_tokens_issued
    }

    /// Refresh tokens that would still be accepted now.
    pub fn live_refresh_tokens(&self) -> usize {
        let now = Instant::now();
        let state = self.shared.state();
        state
            .refresh_tokens
            .values()
            .filter(|token| token.is_live(now))
            .count()
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        // `stop` sends the command when called; the returned future only waits for the
        // workers, which Drop cannot do. The server task finishes the shutdown on its own.
        drop(self.server.stop(false));
    }
}

/// The PKCE S256 challenge for `verifier`: BASE64URL-NO-PAD(SHA-256(verifier)) (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not take the server down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn issuer(&self, state: &State) -> String {
        state
            .config
            .issuer
            .clone()
            .unwrap_or_else(|| self.base_url.clone())
    }
}

struct Client {
    secret: String,
    redirect_uris: Vec<String>,
}

/// Who authorized which client for what: everything a token carries.
#[derive(Clone)]
struct Grant {
    client_id: String,
    sub: String,
    email: String,
    /// Expanded, sorted, deduplicated.
    scopes: BTreeSet<String>,
}

struct AuthCode {
    grant: Grant,
    redirect_uri: String,
    /// (challenge, method) when the authorization request carried PKCE.
    pkce: Option<(String, String)>,
    offline: bool,
    prompt_consent: bool,
    nonce: Option<String>,
    issued_at: Instant,
    used: bool,
}

struct AccessToken {
    grant: Grant,
    expires_at: Instant,
    revoked: bool,
}

impl AccessToken {
    fn is_live(&self, now: Instant) -> bool {
        !self.revoked && now < self.expires_at
    }
}

struct RefreshToken {
    grant: Grant,
    /// Issue order, to find the oldest when the per-client limit is exceeded.
    seq: u64,
    expires_at: Option<Instant>,
    revoked: bool,
}

impl RefreshToken {
    fn is_live(&self, now: Instant) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Default)]
struct Counters {
    token_requests: usize,
    refresh_requests: usize,
    code_exchanges: usize,
    pkce_failures: usize,
    revocations: usize,
    userinfo_requests: usize,
    send_requests: usize,
    refresh_tokens_issued: usize,
}

struct State {
    config: FakeGoogleConfig,
    clients: HashMap<String, Client>,
    account_email: String,
    account_sub: String,
    user_denies: bool,
    withheld_scopes: BTreeSet<String>,
    rotate_refresh_tokens: bool,
    /// See [`FakeGoogle::accept_any_access_token`].
    accept_any_access_token: bool,
    access_token_lifetime: Duration,
    token_failure: Option<FailMode>,
    /// The failure and how many more sends it applies to (`None`: until cleared).
    send_failure: Option<(SendFailure, Option<usize>)>,
    codes: HashMap<String, AuthCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Scopes each (client, sub) has consented to: Google's "third-party apps with account
    /// access" entry. Removed by revocation.
    consents: HashMap<(String, String), BTreeSet<String>>,
    /// Thread ID → owner `sub`, so a reply naming a `threadId` can join it.
    threads: HashMap<String, String>,
    next_seq: u64,
    authorization_requests: Vec<AuthorizationRequest>,
    sent: Vec<SentMessage>,
    counters: Counters,
}

impl State {
    fn new(config: FakeGoogleConfig) -> State {
        let mut clients = HashMap::new();
        clients.insert(
            config.client_id.clone(),
            Client {
                secret: config.client_secret.clone(),
                redirect_uris: vec![config.redirect_uri.clone()],
            },
        );
        let account_sub = config
            .account_sub
            .clone()
            .unwrap_or_else(|| derive_sub(&config.account_email));
        State {
            clients,
            account_email: config.account_email.clone(),
            account_sub,
            user_denies: false,
            withheld_scopes: BTreeSet::new(),
            rotate_refresh_tokens: false,
            accept_any_access_token: false,
            access_token_lifetime: config.access_token_lifetime,
            token_failure: None,
            send_failure: None,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            consents: HashMap::new(),
            threads: HashMap::new(),
            next_seq: 0,
            authorization_requests: Vec::new(),
            sent: Vec::new(),
            counters: Counters::default(),
            config,
        }
    }

    /// Returns the token and its `expires_in`.
    fn mint_access_token(&mut self, grant: &Grant) -> (String, u64) {
        // Google access tokens start with "ya29." and are opaque; they can be long.
        let token = format!("ya29.a0{}", random_urlsafe(96));
        let lifetime = self.access_token_lifetime;
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                grant: grant.clone(),
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        (token, lifetime.as_secs())
    }

    fn mint_refresh_token(&mut self, grant: &Grant) -> String {
        // Google refresh tokens look like "1//0…": the slashes catch clients that forget to
        // form-encode them.
        let token = format!("1//0{}", random_urlsafe(72));
        let now = Instant::now();
        self.next_seq += 1;
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                grant: grant.clone(),
                seq: self.next_seq,
                expires_at: self.config.refresh_token_lifetime.map(|life| now + life),
                revoked: false,
            },
        );
        self.counters.refresh_tokens_issued += 1;

        // Google: "If you exceed the limit, the oldest refresh token is silently invalidated."
        let mut live: Vec<(u64, String)> = self
            .refresh_tokens
            .iter()
            .filter(|(_, t)| {
                t.is_live(now) && t.grant.client_id == grant.client_id && t.grant.sub == grant.sub
            })
            .map(|(token, t)| (t.seq, token.clone()))
            .collect();
        live.sort();
        let excess = live.len().saturating_sub(self.config.refresh_token_limit);
        for (_, old) in live.into_iter().take(excess) {
            if let Some(old) = self.refresh_tokens.get_mut(&old) {
                old.revoked = true;
            }
        }
        token
    }

    fn has_live_refresh_token(&self, client_id: &str, sub: &str) -> bool {
        let now = Instant::now();
        self.refresh_tokens
            .values()
            .any(|t| t.is_live(now) && t.grant.client_id == client_id && t.grant.sub == sub)
    }

    fn remember_consent(&mut self, grant: &Grant) {
        self.consents
            .entry((grant.client_id.clone(), grant.sub.clone()))
            .or_default()
            .extend(grant.scopes.iter().cloned());
    }

    /// Revoking one token removes the app's access to the account: every access and refresh
    /// token of that (client, account) dies and the consent is forgotten, so the next
    /// authorization counts as a first grant again.
    fn revoke_grant(&mut self, client_id: &str, sub: &str) {
        let matches = |grant: &Grant| grant.client_id == client_id && grant.sub == sub;
        for token in self.access_tokens.values_mut() {
            if matches(&token.grant) {
                token.revoked = true;
            }
        }
        for token in self.refresh_tokens.values_mut() {
            if matches(&token.grant) {
                token.revoked = true;
            }
        }
        self.consents
            .remove(&(client_id.to_string(), sub.to_string()));
    }

    /// Takes the configured send failure, counting down a "next N" failure.
    fn take_send_failure(&mut self) -> Option<SendFailure> {
        let (failure, remaining) = self.send_failure.take()?;
        match remaining {
            None => {
                self.send_failure = Some((failure.clone(), None));
                Some(failure)
            }
            Some(0) => None,
            Some(n) => {
                if n > 1 {
                    self.send_failure = Some((failure.clone(), Some(n - 1)));
                }
                Some(failure)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery and keys
// ---------------------------------------------------------------------------------------------

/// The shape of https://accounts.google.com/.well-known/openid-configuration, pointing here.
async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
    let issuer = shared.issuer(&shared.state());
    let base = &shared.base_url;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/o/oauth2/v2/auth"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/v1/userinfo"),
            "revocation_endpoint": format!("{base}/revoke"),
            "jwks_uri": format!("{base}/oauth2/v3/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }),
    )
}

/// No keys: ID tokens from this server are not verifiable, on purpose (see the module docs).
async fn certs() -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "keys": [] }))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    google_api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "notFound",
        "global",
        &format!(
            "The fake Google server has no {} {}",
            req.method(),
            req.path()
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint
// ---------------------------------------------------------------------------------------------

/// `GET /o/oauth2/v2/auth`. Google shows its own error page, and never redirects, when the
/// client or redirect URI is wrong or the request is malformed ("Error 400: invalid_request",
/// "redirect_uri_mismatch", "invalid_scope"); only the user's decision goes back by redirect.
async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let mut state = shared.state();
    let (error, response) = match authorize_decision(&mut state, &query) {
        Ok(location) => (None, redirect(&location)),
        Err(AuthorizeError::Page(error, description)) => {
            (Some(error.to_string()), error_page(error, &description))
        }
        Err(AuthorizeError::Redirect(error, location)) => {
            (Some(error.to_string()), redirect(&location))
        }
    };
    state
        .authorization_requests
        .push(AuthorizationRequest { query, error });
    response
}

enum AuthorizeError {
    /// Shown to the user on Google's page: (error, description).
    Page(&'static str, String),
    /// Sent back to the client: (error, redirect location).
    Redirect(&'static str, String),
}

/// Decides the outcome of an authorization request; `Ok` is the redirect location with a code.
fn authorize_decision(
    state: &mut State,
    query: &[(String, String)],
) -> Result<String, AuthorizeError> {
    use AuthorizeError::{Page, Redirect};
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let missing = |name: &str| {
        Page(
            "invalid_request",
            format!("Missing required parameter: {name}"),
        )
    };

    let client_id = param("client_id").ok_or_else(|| missing("client_id"))?;
    let Some(client) = state.clients.get(client_id) else {
        return Err(Page(
            "invalid_client",
            "The OAuth client was not found.".into(),
        ));
    };
    let redirect_uri = param("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(Page(
            "redirect_uri_mismatch",
            format!("redirect_uri={redirect_uri} is not registered for this OAuth client."),
        ));
    }
    // From here on the redirect URI is trusted, but Google still answers malformed requests
    // with its error page.
    match param("response_type") {
        None => return Err(missing("response_type")),
        Some("code") => {}
        Some(other) => {
            return Err(Page(
                "unsupported_response_type",
                format!("Invalid response_type: {other}"),
            ));
        }
    }
    let scope = param("scope").ok_or_else(|| missing("scope"))?;
    let invalid: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !is_known_scope(s))
        .collect();
    if scope.trim().is_empty() || !invalid.is_empty() {
        return Err(Page(
            "invalid_scope",
            format!(
                "Some requested scopes were invalid. {{invalid=[{}]}}",
                invalid.join(", ")
            ),
        ));
    }
    let offline = match param("access_type").unwrap_or("online") {
        "online" => false,
        "offline" => true,
        other => {
            return Err(Page(
                "invalid_request",
                format!("Invalid access_type: {other}"),
            ));
        }
    };
    let prompts: Vec<&str> = param("prompt").unwrap_or("").split_whitespace().collect();
    if let Some(bad) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "consent" | "select_account"))
    {
        return Err(Page("invalid_request", format!("Invalid prompt: {bad}")));
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err(Page(
            "invalid_request",
            "prompt=none cannot be combined with other values".into(),
        ));
    }
    let pkce = match (param("code_challenge"), param("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return Err(missing("code_challenge")),
        // RFC 7636 §4.3: the method defaults to "plain" when omitted.
        (Some(challenge), method) => {
            let method = method.unwrap_or("plain");
            if !matches!(method, "plain" | "S256") {
                return Err(Page(
                    "invalid_request",
                    format!("Invalid code_challenge_method: {method}"),
                ));
            }
            if !is_pkce_string(challenge) {
                return Err(Page("invalid_request", "Invalid code_challenge.".into()));
            }
            Some((challenge.to_string(), method.to_string()))
        }
    };
    if state.config.require_pkce && pkce.as_ref().is_none_or(|(_, m)| m != "S256") {
        return Err(Page(
            "invalid_request",
            "This client must use PKCE with code_challenge_method=S256.".into(),
        ));
    }

    // The simulated user decides.
    let back = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(redirect_uri).expect("registered redirect URIs are URLs");
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in pairs {
                query.append_pair(key, value);
            }
            if let Some(state) = param("state") {
                query.append_pair("state", state);
            }
        }
        url.to_string()
    };
    if state.user_denies {
        return Err(Redirect(
            "access_denied",
            back(&[("error", "access_denied")]),
        ));
    }
    let sub = state.account_sub.clone();
    let mut scopes = expand_scopes(scope);
    for withheld in &state.withheld_scopes {
        if !is_sign_in_scope(withheld) {
            scopes.remove(withheld);
        }
    }
    let key = (client_id.to_string(), sub.clone());
    let previously = state.consents.get(&key).cloned().unwrap_or_default();
    if prompts.contains(&"none") && !scopes.is_subset(&previously) {
        // No consent screen allowed, but consent is needed.
        return Err(Redirect(
            "consent_required",
            back(&[("error", "consent_required")]),
        ));
    }
    if param("include_granted_scopes") == Some("true") {
        scopes.extend(previously);
    }

    // Google's codes start with "4/0" and contain a slash, which clients must URL-encode.
    let code = format!("4/0{}", random_urlsafe(54));
    let granted = join_scopes(&scopes);
    state.codes.insert(
        code.clone(),
        AuthCode {
            grant: Grant {
                client_id: client_id.to_string(),
                sub,
                email: state.account_email.clone(),
                scopes,
            },
            redirect_uri: redirect_uri.to_string(),
            pkce,
            offline,
            prompt_consent: prompts.contains(&"consent"),
            nonce: param("nonce").map(str::to_string),
            issued_at: Instant::now(),
            used: false,
        },
    );
    // Google also returns the granted scopes, the account index and the prompt shown.
    let prompt = if prompts.contains(&"none") {
        "none"
    } else {
        "consent"
    };
    Ok(back(&[
        ("code", &code),
        ("scope", &granted),
        ("authuser", "0"),
        ("prompt", prompt),
    ]))
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn error_page(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><title>Error 400 ({error})</title></head><body>\
             <h1>Access blocked: Authorization Error</h1><p>Error 400: {error}</p>\
             <p>{}</p></body></html>",
            html_escape(description)
        ))
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

/// `POST /token` (RFC 6749 §3.2, §4.1.3, §6), with Google's error strings.
async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let form = parse_form(&body);
    let failure = {
        let mut state = shared.state();
        state.counters.token_requests += 1;
        match form
            .as_ref()
            .ok()
            .and_then(|f| f.get("grant_type"))
            .map(String::as_str)
        {
            Some("refresh_token") => state.counters.refresh_requests += 1,
            Some("authorization_code") => state.counters.code_exchanges += 1,
            _ => {}
        }
        state.token_failure.clone()
    };
    match failure {
        Some(FailMode::ServerError) => {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal_failure",
                "Backend Error",
            );
        }
        Some(FailMode::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }

    if !has_content_type(&req, "application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be application/x-www-form-urlencoded.",
        );
    }
    let form = match form {
        Ok(form) => form,
        // RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
        Err(name) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Parameter included more than once: {name}"),
            );
        }
    };
    let mut state = shared.state();
    let client_id = match authenticate_client(&state, &req, &form) {
        Ok(client_id) => client_id,
        Err(response) => return response,
    };
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(&shared, &mut state, &client_id, &form),
        Some("refresh_token") => refresh(&shared, &mut state, &client_id, &form),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", other.unwrap_or("")),
        ),
    }
}

/// Client authentication by `client_secret_basic` (RFC 6749 §2.3.1: HTTP Basic over the
/// form-encoded id and secret) or `client_secret_post`; never both (RFC 6749 §2.3).
fn authenticate_client(
    state: &State,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<String, HttpResponse> {
    let basic = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => match parse_basic(value) {
            Some(credentials) => Some(credentials),
            None => {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Malformed Authorization header.",
                ));
            }
        },
    };
    let (client_id, secret, via_basic) = match basic {
        Some((id, secret)) => {
            if form.contains_key("client_secret") {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Use only one client authentication method.",
                ));
            }
            if form.get("client_id").is_some_and(|form_id| *form_id != id) {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "client_id does not match the Authorization header.",
                ));
            }
            (id, secret, true)
        }
        None => {
            let Some(id) = form.get("client_id") else {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Could not determine client ID from request.",
                ));
            };
            let Some(secret) = form.get("client_secret") else {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "client_secret is missing.",
                ));
            };
            (id.clone(), secret.clone(), false)
        }
    };
    let failure = match state.clients.get(&client_id) {
        None => "The OAuth client was not found.",
        Some(client) if client.secret != secret => "Unauthorized",
        Some(_) => return Ok(client_id),
    };
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", failure);
    if via_basic {
        // RFC 6749 §5.2: a failed Basic authentication gets a challenge.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fake-google\""),
        );
    }
    Err(response)
}

fn exchange_code(
    shared: &Shared,
    state: &mut State,
    client_id: &str,
    form: &HashMap<String, String>,
) -> HttpResponse {
    let bad =
        |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    let Some(code) = form.get("code") else {
        return bad("invalid_request", "Missing required parameter: code");
    };
    let Some(stored) = state.codes.get_mut(code) else {
        return bad("invalid_grant", "Malformed auth code.");
    };
    if stored.grant.client_id != client_id {
        return bad("invalid_grant", "Bad Request");
    }
    // Single use: any exchange attempt by the right client consumes the code, so a retry after
    // a lost response, or a second try with another verifier, gets invalid_grant.
    if std::mem::replace(&mut stored.used, true) {
        return bad("invalid_grant", "Bad Request");
    }
    if stored.issued_at.elapsed() > CODE_LIFETIME {
        return bad("invalid_grant", "Bad Request");
    }
    // RFC 6749 §4.1.3: required, and identical, when the authorization request had it.
    match form.get("redirect_uri") {
        None => return bad("invalid_request", "Missing parameter: redirect_uri"),
        Some(uri) if *uri != stored.redirect_uri => {
            return bad("redirect_uri_mismatch", "Bad Request");
        }
        Some(_) => {}
    }
    if let Some((challenge, method)) = &stored.pkce {
        let verdict = match form.get("code_verifier") {
            None => Err("Missing code verifier."),
            Some(verifier) if !is_pkce_string(verifier) => Err("Invalid code verifier."),
            Some(verifier) => {
                let computed = if method == "S256" {
                    pkce_s256(verifier)
                } else {
                    verifier.clone()
                };
                if computed == *challenge {
                    Ok(())
                } else {
                    Err("Invalid code verifier.")
                }
            }
        };
        if let Err(description) = verdict {
            state.counters.pkce_failures += 1;
            return bad("invalid_grant", description);
        }
    }

    let (grant, nonce) = (stored.grant.clone(), stored.nonce.clone());
    let (offline, prompt_consent) = (stored.offline, stored.prompt_consent);
    // Google returns a refresh token for offline access only on the first grant for this
    // (account, client), or when the consent screen was forced again with prompt=consent.
    let wants_refresh =
        offline && (prompt_consent || !state.has_live_refresh_token(&grant.client_id, &grant.sub));
    let refresh_token = wants_refresh.then(|| state.mint_refresh_token(&grant));
    state.remember_consent(&grant);
    token_response(shared, state, &grant, refresh_token, nonce.as_deref())
}

fn refresh(
    shared: &Shared,
    state: &mut State,
    client_id: &str,
    form: &HashMap<String, String>,
) -> HttpResponse {
    let Some(presented) = form.get("refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let now = Instant::now();
    let grant = match state.refresh_tokens.get(presented) {
        Some(token) if token.is_live(now) => token.grant.clone(),
        // Google's answer for unknown, revoked and expired tokens alike.
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token has been expired or revoked.",
            );
        }
    };
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Unauthorized",
        );
    }
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    let mut narrowed = grant.clone();
    if let Some(scope) = form.get("scope") {
        let requested = expand_scopes(scope);
        if !requested.is_subset(&grant.scopes) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "Some requested scopes were not granted.",
            );
        }
        narrowed.scopes = requested;
    }
    let rotated = state.rotate_refresh_tokens.then(|| {
        if let Some(old) = state.refresh_tokens.get_mut(presented) {
            old.revoked = true;
        }
        state.mint_refresh_token(&grant)
    });
    token_response(shared, state, &narrowed, rotated, None)
}

/// The JSON Google returns from a successful token request.
fn token_response(
    shared: &Shared,
    state: &mut State,
    grant: &Grant,
    refresh_token: Option<String>,
    nonce: Option<&str>,
) -> HttpResponse {
    let (access_token, expires_in) = state.mint_access_token(grant);
    let mut body = json!({
        "access_token": access_token,
        "expires_in": expires_in,
        "scope": join_scopes(&grant.scopes),
        "token_type": "Bearer",
    });
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = json!(refresh_token);
        // Google adds this for refresh tokens with a time limit (Testing-mode consent screens).
        if let Some(lifetime) = state.config.refresh_token_lifetime {
            body["refresh_token_expires_in"] = json!(lifetime.as_secs());
        }
    }
    if grant.scopes.contains("openid") {
        let issuer = shared.issuer(state);
        body["id_token"] = json!(id_token(&issuer, grant, nonce));
    }
    let mut response = json_response(StatusCode::OK, &body);
    no_store(&mut response);
    response
}

/// A JWT with Google's claims. The signature is random bytes: see the module docs.
fn id_token(issuer: &str, grant: &Grant, nonce: Option<&str>) -> String {
    let now = unix_now();
    let header = json!({ "alg": "RS256", "kid": "fake-google-unsigned", "typ": "JWT" });
    let mut claims = json!({
        "iss": issuer,
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": grant.sub,
        "iat": now,
        "exp": now + 3600,
    });
    if grant.scopes.contains(USERINFO_EMAIL_SCOPE) {
        claims["email"] = json!(grant.email);
        claims["email_verified"] = json!(true);
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let mut signature = [0u8; 256];
    rand::rng().fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

// ---------------------------------------------------------------------------------------------
// Revocation and userinfo
// ---------------------------------------------------------------------------------------------

/// `POST /revoke` with `token=` in the form body (Google also takes it in the query).
async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.state();
    state.counters.revocations += 1;
    let from_body = parse_form(&body)
        .ok()
        .and_then(|mut form| form.remove("token"));
    let token = from_body.or_else(|| {
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
    });
    let Some(token) = token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token",
        );
    };
    let now = Instant::now();
    let owner = match (
        state.refresh_tokens.get(&token),
        state.access_tokens.get(&token),
    ) {
        (Some(t), _) if t.is_live(now) => Some(t.grant.clone()),
        (_, Some(t)) if t.is_live(now) => Some(t.grant.clone()),
        _ => None,
    };
    match owner {
        Some(grant) => {
            state.revoke_grant(&grant.client_id, &grant.sub);
            json_response(StatusCode::OK, &json!({}))
        }
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}

/// `GET /v1/userinfo` (OpenID Connect userinfo) with a bearer access token.
async fn userinfo(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.state();
    state.counters.userinfo_requests += 1;
    let now = Instant::now();
    let grant = bearer_token(&req)
        .and_then(|token| state.access_tokens.get(&token))
        .filter(|token| token.is_live(now))
        .map(|token| token.grant.clone());
    let Some(grant) = grant else {
        let mut response = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
            ),
        );
        return response;
    };
    // Google includes the address only when the grant has the `email` scope.
    let mut body = json!({ "sub": grant.sub });
    if grant.scopes.contains(USERINFO_EMAIL_SCOPE) {
        body["email"] = json!(grant.email);
        body["email_verified"] = json!(true);
    }
    // Google names the Workspace domain of an organisation's account; never for gmail.com.
    if let Some(hd) = &state.config.hosted_domain {
        body["hd"] = json!(hd);
    }
    json_response(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------------------------
// Gmail API: users.messages.send
// ---------------------------------------------------------------------------------------------

/// `POST /gmail/v1/users/{userId}/messages/send` with a `Message` JSON holding `raw`.
async fn send_json(
    req: HttpRequest,
    user_id: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    send(&req, &user_id, &body, &shared, SendVia::Json).await
}

/// `POST /upload/gmail/v1/users/{userId}/messages/send?uploadType=media`, body the message.
async fn send_upload(
    req: HttpRequest,
    user_id: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    send(&req, &user_id, &body, &shared, SendVia::MediaUpload).await
}

async fn send(
    req: &HttpRequest,
    user_id: &str,
    body: &[u8],
    shared: &Shared,
    via: SendVia,
) -> HttpResponse {
    let (outcome, delay) = {
        let mut state = shared.state();
        state.counters.send_requests += 1;
        match accept_send(&mut state, req, user_id, body, via) {
            Ok(response) => match state.take_send_failure() {
                // Accepted and stored already; only the answer is late.
                Some(SendFailure::Delay(delay)) => (Ok(response), Some(delay)),
                _ => (Ok(response), None),
            },
            Err(response) => (Err(response), None),
        }
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match outcome {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(response) => response,
    }
}

/// Authenticates, applies any configured failure, validates and stores the message; `Ok` is
/// the success body. A `SendFailure::Delay` is left in place for the caller to take.
fn accept_send(
    state: &mut State,
    req: &HttpRequest,
    user_id: &str,
    body: &[u8],
    via: SendVia,
) -> Result<Value, HttpResponse> {
    // 1. Authentication, as for every Google API.
    let Some(token) = bearer_token(req) else {
        return Err(unauthenticated(
            "required",
            MISSING_CREDENTIALS_MESSAGE,
            "Login Required.",
        ));
    };
    let now = Instant::now();
    let grant = match state.access_tokens.get(&token) {
        Some(issued) => issued.is_live(now).then(|| issued.grant.clone()),
        None if state.accept_any_access_token => Some(Grant {
            client_id: state.config.client_id.clone(),
            sub: state.account_sub.clone(),
            email: state.account_email.clone(),
            scopes: BTreeSet::from([GMAIL_SEND_SCOPE.to_string()]),
        }),
        None => None,
    };
    let Some(grant) = grant else {
        return Err(unauthenticated(
            "authError",
            INVALID_CREDENTIALS_MESSAGE,
            "Invalid Credentials",
        ));
    };
    if !SEND_CAPABLE_SCOPES
        .iter()
        .any(|s| grant.scopes.contains(*s))
    {
        return Err(google_api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "insufficientPermissions",
            "global",
            "Request had insufficient authentication scopes.",
        ));
    }
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&grant.email) {
        return Err(google_api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "forbidden",
            "global",
            &format!("Delegation denied for {}", grant.email),
        ));
    }

    // 2. Configured failures (a Delay is a success and is handled by the caller).
    if !matches!(state.send_failure, Some((SendFailure::Delay(_), _)))
        && let Some(failure) = state.take_send_failure()
    {
        return Err(send_failure_response(&failure));
    }

    // 3. The message.
    let (raw, thread_hint) = match via {
        SendVia::Json => parse_send_json(body)?,
        SendVia::MediaUpload => (parse_media_upload(req, body)?, None),
    };
    let recipients = recipients(&raw);
    if recipients.is_empty() {
        return Err(invalid_argument("Recipient address required"));
    }

    // 4. Stored before answering, so a client that saw 200 always finds its message here.
    let id = gmail_id();
    let thread_id = thread_hint
        .filter(|thread| state.threads.get(thread) == Some(&grant.sub))
        .unwrap_or_else(|| id.clone());
    state.threads.insert(thread_id.clone(), grant.sub.clone());
    state.sent.push(SentMessage {
        id: id.clone(),
        thread_id: thread_id.clone(),
        raw,
        recipients,
        user_email: grant.email.clone(),
        user_sub: grant.sub.clone(),
        access_token: token,
        via,
    });
    Ok(json!({ "id": id, "threadId": thread_id, "labelIds": ["SENT"] }))
}

/// The `raw` (base64url, padding optional) and optional `threadId` of a `Message` JSON.
fn parse_send_json(body: &[u8]) -> Result<(Vec<u8>, Option<String>), HttpResponse> {
    let message: Value = serde_json::from_slice(body).map_err(|e| {
        google_api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "parseError",
            "global",
            &format!("Invalid JSON payload received. {e}"),
        )
    })?;
    let Some(raw) = message.get("raw").and_then(Value::as_str) else {
        return Err(invalid_argument(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        ));
    };
    // Gmail documents `raw` as base64url; the padding is optional.
    let lenient = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let raw = lenient.decode(raw).map_err(|e| {
        invalid_argument(&format!(
            "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed: {e}"
        ))
    })?;
    let thread = message
        .get("threadId")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((raw, thread))
}

/// The body of a simple media upload (Gmail accepts `message/*` up to 35 MB).
fn parse_media_upload(req: &HttpRequest, body: &[u8]) -> Result<Vec<u8>, HttpResponse> {
    let upload_type = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(key, _)| key == "uploadType")
        .map(|(_, value)| value.into_owned());
    match upload_type.as_deref() {
        Some("media") => {}
        None => {
            return Err(invalid_argument(
                "Upload requests must include an uploadType URL parameter and a URL path \
                 beginning with /upload/",
            ));
        }
        Some(other) => {
            return Err(invalid_argument(&format!(
                "The fake Google server supports only uploadType=media, not {other}"
            )));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.to_ascii_lowercase().starts_with("message/") {
        return Err(invalid_argument(&format!(
            "Media type '{media_type}' is not supported. Valid media types: [message/*]"
        )));
    }
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(google_api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_ARGUMENT",
            "uploadTooLarge",
            "global",
            "Request Too Large",
        ));
    }
    Ok(body.to_vec())
}

fn send_failure_response(failure: &SendFailure) -> HttpResponse {
    match failure {
        SendFailure::RateLimited { retry_after_secs } => {
            // Capped at ten years so the date arithmetic cannot overflow.
            let secs = i64::try_from(*retry_after_secs)
                .unwrap_or(i64::MAX)
                .min(315_360_000);
            let retry_at = chrono::Utc::now() + chrono::Duration::seconds(secs);
            let retry_at = retry_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            // Two spaces after the full stop, as in Gmail's own message.
            google_api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "rateLimitExceeded",
                "usageLimits",
                &format!("User-rate limit exceeded.  Retry after {retry_at}"),
            )
        }
        SendFailure::UserRateLimit => google_api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "userRateLimitExceeded",
            "usageLimits",
            "User Rate Limit Exceeded",
        ),
        SendFailure::DailyLimit => google_api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "dailyLimitExceeded",
            "usageLimits",
            "Daily Limit Exceeded",
        ),
        SendFailure::BadRequest { reason, message } => {
            let status = if *reason == "failedPrecondition" {
                "FAILED_PRECONDITION"
            } else {
                "INVALID_ARGUMENT"
            };
            google_api_error(StatusCode::BAD_REQUEST, status, reason, "global", message)
        }
        SendFailure::ServerError => google_api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "backendError",
            "global",
            "The service is currently unavailable.",
        ),
        SendFailure::Delay(_) => unreachable!("a Delay is a success, handled by the caller"),
    }
}

/// The To, Cc and Bcc addresses of a message's header section, lower-cased.
fn recipients(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break; // end of the header section
        }
        if line.starts_with([' ', '\t']) {
            // RFC 5322 §2.2.3: a folded continuation of the previous field.
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    fields
        .iter()
        .filter(|(name, _)| matches!(name.as_str(), "to" | "cc" | "bcc"))
        .flat_map(|(_, value)| address_list(value))
        .collect()
}

/// The addr-specs of an RFC 5322 address list (display names, quotes and groups tolerated).
fn address_list(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut angle) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .filter_map(|part| {
            let address = match (part.rfind('<'), part.rfind('>')) {
                (Some(start), Some(end)) if start < end => &part[start + 1..end],
                // A group ("friends: a@x, b@y;") starts with its name and a colon.
                _ => part.rsplit(':').next().unwrap_or(part),
            };
            let address = address.trim();
            address.contains('@').then(|| address.to_ascii_lowercase())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// Google's token endpoint forbids caching its answers (RFC 6749 §5.1).
fn no_store(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// An OAuth error body (RFC 6749 §5.2), as the token, revocation and userinfo endpoints send.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut response = json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    );
    no_store(&mut response);
    response
}

/// The error body of Google's JSON APIs: `{"error":{"code","message","errors":[…],"status"}}`.
fn google_api_error(
    status: StatusCode,
    status_name: &str,
    reason: &str,
    domain: &str,
    message: &str,
) -> HttpResponse {
    json_response(
        status,
        &json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "errors": [{ "message": message, "domain": domain, "reason": reason }],
                "status": status_name,
            }
        }),
    )
}

fn invalid_argument(message: &str) -> HttpResponse {
    google_api_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "invalidArgument",
        "global",
        message,
    )
}

/// Google's 401 for a missing (`required`) or bad (`authError`) access token.
fn unauthenticated(reason: &str, message: &str, item_message: &str) -> HttpResponse {
    let body = json!({
        "error": {
            "code": 401,
            "message": message,
            "errors": [{
                "message": item_message,
                "domain": "global",
                "reason": reason,
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }
    });
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Whether the request's media type (parameters ignored) is `expected`.
fn has_content_type(req: &HttpRequest, expected: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// A form body as a map; `Err` names a parameter that appears twice.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut form = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body).into_owned() {
        if form.contains_key(&key) {
            return Err(key);
        }
        form.insert(key, value);
    }
    Ok(form)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then(|| token.to_string())
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → (id, secret) (RFC 6749 §2.3.1).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes application/x-www-form-urlencoded encoding of one value.
fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// RFC 7636 §4.1: 43 to 128 characters from `[A-Z] [a-z] [0-9] - . _ ~`.
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Scopes Google would recognise: the OIDC shorthands and Google API scope URLs.
fn is_known_scope(scope: &str) -> bool {
    matches!(
        scope,
        "openid" | "email" | "profile" | "https://mail.google.com/"
    ) || scope.starts_with("https://www.googleapis.com/auth/")
}

fn is_sign_in_scope(scope: &str) -> bool {
    matches!(
        scope,
        "openid" | USERINFO_EMAIL_SCOPE | USERINFO_PROFILE_SCOPE
    )
}

/// Google reports `email` and `profile` as their full URLs in token responses.
fn expand_scope(scope: &str) -> String {
    match scope {
        "email" => USERINFO_EMAIL_SCOPE.to_string(),
        "profile" => USERINFO_PROFILE_SCOPE.to_string(),
        other => other.to_string(),
    }
}

fn expand_scopes(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(expand_scope).collect()
}

/// Space-separated and sorted, which is how Google's token responses list them.
fn join_scopes(scopes: &BTreeSet<String>) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stable, Google-looking `sub` (21 decimal digits) for an email address.
fn derive_sub(email: &str) -> String {
    let digest = Sha256::digest(email.to_ascii_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("1{:020}", u64::from_be_bytes(first))
}

/// A Gmail-style message ID: 16 lowercase hex digits.
fn gmail_id() -> String {
    let random: u64 = rand::rng().random();
    format!("{:016x}", (random >> 4) | (1 << 60))
}

/// `bytes` random bytes, base64url without padding.
fn random_urlsafe(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
