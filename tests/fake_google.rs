//! Tests of the fake Google OAuth / Gmail API server (tests/support/fake_google.rs), driven
//! over real HTTP with reqwest the way our client code will call Google.

#[path = "support/fake_google.rs"]
mod fake_google;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_google::{
    FailMode, FakeGoogle, FakeGoogleConfig, GMAIL_SEND_SCOPE, SendFailure, SendVia, pkce_s256,
};
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// What our client asks for: send permission plus the mailbox address.
const SCOPE: &str = "openid email https://www.googleapis.com/auth/gmail.send";
/// How Google reports that scope back: expanded and sorted.
const GRANTED: &str = "https://www.googleapis.com/auth/gmail.send \
                       https://www.googleapis.com/auth/userinfo.email openid";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier-of-some-length";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A client that shows redirects instead of following them, like a test browser.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// The authorization request our client makes: PKCE S256, offline access, forced consent.
fn auth_params(google: &FakeGoogle, verifier: &str) -> Vec<(String, String)> {
    let config = FakeGoogleConfig::default();
    [
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", config.redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", SCOPE),
        ("state", "st4te/with+odd&chars"),
        ("code_challenge", &pkce_s256(verifier)),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(std::iter::once((
        "nonce".to_string(),
        google.base_url().to_string(),
    )))
    .collect()
}

/// `params` with `name` set to `value` (or removed when `None`).
fn with(
    mut params: Vec<(String, String)>,
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != name);
    if let Some(value) = value {
        params.push((name.to_string(), value.to_string()));
    }
    params
}

async fn authorize(google: &FakeGoogle, params: &[(String, String)]) -> reqwest::Response {
    http()
        .get(google.auth_url())
        .query(params)
        .send()
        .await
        .expect("authorization request")
}

/// The query parameters of a redirect's Location, decoded.
fn redirect_params(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect");
    let location = response.headers()[LOCATION].to_str().expect("Location");
    let url = url::Url::parse(location).expect("Location is a URL");
    let expected = url::Url::parse(&FakeGoogleConfig::default().redirect_uri).unwrap();
    assert_eq!(
        url.path(),
        expected.path(),
        "redirected to the registered URI"
    );
    url.query_pairs().into_owned().collect()
}

/// Runs the authorization request and returns the code from the redirect.
async fn code_for(google: &FakeGoogle, params: &[(String, String)]) -> String {
    let response = authorize(google, params).await;
    redirect_params(&response)
        .remove("code")
        .expect("a code in the redirect")
}

/// POSTs a form to the token endpoint with client_secret_post.
async fn token_post(google: &FakeGoogle, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let config = FakeGoogleConfig::default();
    let mut form = form.to_vec();
    form.push(("client_id", &config.client_id));
    form.push(("client_secret", &config.client_secret));
    let response = http()
        .post(google.token_url())
        .form(&form)
        .send()
        .await
        .expect("token request");
    (response.status(), response.json().await.expect("JSON"))
}

async fn exchange(google: &FakeGoogle, code: &str, verifier: Option<&str>) -> (StatusCode, Value) {
    let redirect_uri = FakeGoogleConfig::default().redirect_uri;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    token_post(google, &form).await
}

async fn refresh(google: &FakeGoogle, refresh_token: &str) -> (StatusCode, Value) {
    token_post(
        google,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The whole browser + token flow; returns the token response.
async fn connect(google: &FakeGoogle) -> Value {
    let code = code_for(google, &auth_params(google, VERIFIER)).await;
    let (status, body) = exchange(google, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn str_field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {body}"))
}

fn jwt_claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).expect("JSON")
}

async fn userinfo(google: &FakeGoogle, access_token: &str) -> reqwest::Response {
    http()
        .get(google.userinfo_url())
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo request")
}

async fn revoke(google: &FakeGoogle, token: &str) -> StatusCode {
    http()
        .post(google.revoke_url())
        .form(&[("token", token)])
        .send()
        .await
        .expect("revoke request")
        .status()
}

fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: rep@example.test\r\nTo: \"Doe, Jane\" <{to}>,\r\n bob@example.org\r\n\
         Subject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n\r\nHello\r\n"
    )
    .into_bytes()
}

fn send_url(google: &FakeGoogle) -> String {
    format!("{}/gmail/v1/users/me/messages/send", google.gmail_api_url())
}

fn upload_url(google: &FakeGoogle) -> String {
    format!(
        "{}/upload/gmail/v1/users/me/messages/send?uploadType=media",
        google.gmail_api_url()
    )
}

async fn send_json(google: &FakeGoogle, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = http()
        .post(send_url(google))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("send request");
    (response.status(), response.json().await.expect("JSON"))
}

async fn send(google: &FakeGoogle, token: &str, raw: &[u8]) -> (StatusCode, Value) {
    send_json(
        google,
        token,
        &json!({ "raw": URL_SAFE_NO_PAD.encode(raw) }),
    )
    .await
}

/// `error.errors[0].reason` of a Google API error.
fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("not a Google API error: {body}"))
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_document_points_at_the_fake() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let doc: Value = http()
        .get(google.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], google.issuer());
    assert_eq!(doc["authorization_endpoint"], google.auth_url());
    assert_eq!(doc["token_endpoint"], google.token_url());
    assert_eq!(doc["revocation_endpoint"], google.revoke_url());
    assert_eq!(doc["userinfo_endpoint"], google.userinfo_url());
    assert_eq!(doc["jwks_uri"], google.jwks_url());
    assert_eq!(
        doc["code_challenge_methods_supported"],
        json!(["plain", "S256"])
    );
    let keys: Value = http()
        .get(google.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        keys,
        json!({ "keys": [] }),
        "ID tokens are deliberately unverifiable"
    );
}

// ---------------------------------------------------------------------------------------------
// Authorization code flow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn code_flow_with_pkce_issues_tokens_and_an_id_token() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let params = auth_params(&google, VERIFIER);
    let response = authorize(&google, &params).await;
    let redirect = redirect_params(&response);
    assert_eq!(
        redirect["state"], "st4te/with+odd&chars",
        "state echoed exactly"
    );
    assert!(redirect["code"].starts_with("4/0"), "Google-style code");
    assert_eq!(redirect["scope"], GRANTED);
    assert_eq!(redirect["authuser"], "0");

    let requests = google.authorization_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].error, None);
    assert_eq!(requests[0].param("code_challenge_method"), Some("S256"));
    assert_eq!(requests[0].param("scope"), Some(SCOPE));

    let response = http()
        .post(google.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", redirect["code"].as_str()),
            (
                "redirect_uri",
                FakeGoogleConfig::default().redirect_uri.as_str(),
            ),
            ("code_verifier", VERIFIER),
            ("client_id", FakeGoogleConfig::default().client_id.as_str()),
            (
                "client_secret",
                FakeGoogleConfig::default().client_secret.as_str(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let tokens: Value = response.json().await.unwrap();
    assert!(str_field(&tokens, "access_token").starts_with("ya29."));
    assert!(str_field(&tokens, "refresh_token").starts_with("1//"));
    assert_eq!(tokens["expires_in"], 3599);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], GRANTED);

    let claims = jwt_claims(str_field(&tokens, "id_token"));
    assert_eq!(claims["iss"], google.issuer());
    assert_eq!(claims["aud"], FakeGoogleConfig::default().client_id);
    assert_eq!(claims["sub"], google.account_sub());
    assert_eq!(claims["email"], "rep@example.test");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["nonce"], google.base_url());
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());

    let info = userinfo(&google, str_field(&tokens, "access_token")).await;
    assert_eq!(info.status(), StatusCode::OK);
    let info: Value = info.json().await.unwrap();
    assert_eq!(
        info,
        json!({ "sub": google.account_sub(), "email": "rep@example.test", "email_verified": true })
    );
    assert_eq!(google.code_exchanges(), 1);
    assert_eq!(google.token_requests(), 1);
    assert_eq!(google.refresh_tokens_issued(), 1);
    assert_eq!(google.userinfo_requests(), 1);
}

#[tokio::test]
async fn wrong_or_missing_pkce_verifier_is_invalid_grant() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let wrong = "x".repeat(43);
    let (status, body) = exchange(&google, &code, Some(&wrong)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid code verifier.");
    assert_eq!(google.pkce_failures(), 1);

    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let (status, body) = exchange(&google, &code, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(google.pkce_failures(), 2);
    assert_eq!(google.code_exchanges(), 2);
}

#[tokio::test]
async fn authorization_codes_are_single_use() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let (status, _) = exchange(&google, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = exchange(&google, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (status, body) = exchange(&google, "4/0not-a-code", Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn code_exchange_checks_redirect_uri_and_client() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let (status, body) = token_post(
        &google,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "redirect_uri_mismatch");

    // A code issued to one client is worthless to another.
    google.register_client("other-client", "other-secret", "http://127.0.0.1/cb");
    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let redirect_uri = FakeGoogleConfig::default().redirect_uri;
    let response = http()
        .post(google.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
            ("client_id", "other-client"),
            ("client_secret", "other-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_token_only_on_first_offline_grant_or_forced_consent() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let no_prompt = with(auth_params(&google, VERIFIER), "prompt", None);

    let code = code_for(&google, &no_prompt).await;
    let (_, first) = exchange(&google, &code, Some(VERIFIER)).await;
    assert!(first["refresh_token"].is_string(), "first grant: {first}");

    let code = code_for(&google, &no_prompt).await;
    let (_, again) = exchange(&google, &code, Some(VERIFIER)).await;
    assert!(
        again["refresh_token"].is_null(),
        "re-authorization without consent: {again}"
    );
    assert!(again["access_token"].is_string());

    let code = code_for(&google, &auth_params(&google, VERIFIER)).await;
    let (_, forced) = exchange(&google, &code, Some(VERIFIER)).await;
    assert!(
        forced["refresh_token"].is_string(),
        "prompt=consent: {forced}"
    );

    let online = with(
        auth_params(&google, VERIFIER),
        "access_type",
        Some("online"),
    );
    let code = code_for(&google, &online).await;
    let (_, online) = exchange(&google, &code, Some(VERIFIER)).await;
    assert!(online["refresh_token"].is_null(), "online access: {online}");
    assert_eq!(google.refresh_tokens_issued(), 2);
    assert_eq!(
        google.live_refresh_tokens(),
        2,
        "older refresh tokens stay valid"
    );
}

#[tokio::test]
async fn authorization_endpoint_shows_an_error_page_for_bad_requests() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let good = auth_params(&google, VERIFIER);
    let cases = [
        (
            with(good.clone(), "client_id", Some("unknown")),
            "invalid_client",
        ),
        (
            with(
                good.clone(),
                "redirect_uri",
                Some("https://evil.example/cb"),
            ),
            "redirect_uri_mismatch",
        ),
        (
            with(good.clone(), "code_challenge", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(good.clone(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with(good.clone(), "scope", Some("openid bogus")),
            "invalid_scope",
        ),
        (
            with(good.clone(), "access_type", Some("forever")),
            "invalid_request",
        ),
    ];
    for (params, error) in &cases {
        let response = authorize(&google, params).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{error}");
        assert!(
            response.headers().get(LOCATION).is_none(),
            "{error}: never redirects"
        );
        assert!(response.text().await.unwrap().contains(error));
    }
    let recorded: Vec<_> = google
        .authorization_requests()
        .into_iter()
        .map(|r| r.error.expect("an error"))
        .collect();
    let expected: Vec<_> = cases.iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn user_denial_redirects_with_access_denied() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    google.set_user_denies(true);
    let response = authorize(&google, &auth_params(&google, VERIFIER)).await;
    let redirect = redirect_params(&response);
    assert_eq!(redirect["error"], "access_denied");
    assert_eq!(redirect["state"], "st4te/with+odd&chars");
    assert!(!redirect.contains_key("code"));
    assert_eq!(
        google.authorization_requests()[0].error.as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn prompt_none_needs_earlier_consent() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let silent = with(auth_params(&google, VERIFIER), "prompt", Some("none"));
    let response = authorize(&google, &silent).await;
    assert_eq!(redirect_params(&response)["error"], "consent_required");
    connect(&google).await;
    let response = authorize(&google, &silent).await;
    assert!(redirect_params(&response).contains_key("code"));
}

#[tokio::test]
async fn plain_pkce_and_no_pkce_when_not_required() {
    let google = FakeGoogle::start(FakeGoogleConfig {
        require_pkce: false,
        ..FakeGoogleConfig::default()
    })
    .await;
    let plain = with(
        auth_params(&google, VERIFIER),
        "code_challenge",
        Some(VERIFIER),
    );
    let plain = with(plain, "code_challenge_method", None);
    let code = code_for(&google, &plain).await;
    let (status, body) = exchange(&google, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let none = with(auth_params(&google, VERIFIER), "code_challenge", None);
    let none = with(none, "code_challenge_method", None);
    let code = code_for(&google, &none).await;
    let (status, body) = exchange(&google, &code, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn unticked_gmail_scope_is_missing_from_the_grant() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    google.set_withheld_scopes(&[GMAIL_SEND_SCOPE, "email"]);
    let tokens = connect(&google).await;
    assert_eq!(
        tokens["scope"], "https://www.googleapis.com/auth/userinfo.email openid",
        "sign-in scopes cannot be unticked"
    );
    let (status, body) = send(
        &google,
        str_field(&tokens, "access_token"),
        &message("a@x.org", "s"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(reason(&body), "insufficientPermissions");
}

// ---------------------------------------------------------------------------------------------
// Refresh, client authentication, revocation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_grant_issues_a_new_access_token() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let (status, refreshed) = refresh(&google, refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    assert!(
        refreshed["refresh_token"].is_null(),
        "Google does not rotate by default"
    );
    assert_eq!(refreshed["scope"], GRANTED);
    assert!(refreshed["id_token"].is_string());
    assert_eq!(
        userinfo(&google, str_field(&refreshed, "access_token"))
            .await
            .status(),
        200
    );
    // The old access token keeps working until it expires.
    assert_eq!(
        userinfo(&google, str_field(&tokens, "access_token"))
            .await
            .status(),
        200
    );
    assert_eq!(google.refresh_requests(), 1);
    assert_eq!(google.token_requests(), 2);

    let (status, body) = refresh(&google, "1//0unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // A refresh token belongs to the client it was issued to.
    google.register_client("other-client", "other-secret", "http://127.0.0.1/cb");
    let response = http()
        .post(google.token_url())
        .basic_auth("other-client", Some("other-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn client_secret_basic_and_post_are_both_accepted() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let config = FakeGoogleConfig::default();
    let tokens = connect(&google).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];

    let basic = |secret: &str| {
        http()
            .post(google.token_url())
            .basic_auth(&config.client_id, Some(secret.to_string()))
            .form(&form)
    };
    assert_eq!(
        basic(&config.client_secret).send().await.unwrap().status(),
        StatusCode::OK
    );

    let response = basic("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let post = |secret: &str| {
        http().post(google.token_url()).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", config.client_id.as_str()),
            ("client_secret", secret),
        ])
    };
    assert_eq!(
        post(&config.client_secret).send().await.unwrap().status(),
        StatusCode::OK
    );
    let response = post("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // Both methods at once is a protocol error (RFC 6749 §2.3).
    let response = post(&config.client_secret)
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // No secret at all.
    let response = http()
        .post(google.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", config.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Form encoding is required.
    let response = http()
        .post(google.token_url())
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(google.refresh_requests(), 6);
}

#[tokio::test]
async fn rotation_invalidates_the_presented_refresh_token() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    google.set_rotate_refresh_tokens(true);
    let tokens = connect(&google).await;
    let old = str_field(&tokens, "refresh_token");
    let (status, rotated) = refresh(&google, old).await;
    assert_eq!(status, StatusCode::OK);
    let new = str_field(&rotated, "refresh_token");
    assert_ne!(new, old);
    let (status, body) = refresh(&google, old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
    assert_eq!(refresh(&google, new).await.0, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_refreshes_race_when_tokens_rotate() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    google.set_rotate_refresh_tokens(true);
    google.set_token_failure(Some(FailMode::Delay(Duration::from_millis(500))));
    let started = Instant::now();
    let (a, b) = tokio::join!(
        refresh(&google, refresh_token),
        refresh(&google, refresh_token)
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    // One after the other would take 1000 ms or more.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the two ran concurrently"
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    assert_eq!(google.refresh_requests(), 2);
}

#[tokio::test]
async fn token_endpoint_server_error() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    google.set_token_failure(Some(FailMode::ServerError));
    let (status, _) = refresh(&google, str_field(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    google.set_token_failure(None);
    let (status, _) = refresh(&google, str_field(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(google.refresh_requests(), 2);
}

#[tokio::test]
async fn revoking_the_refresh_token_kills_the_whole_grant() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    let (access, refresh_token) = (
        str_field(&tokens, "access_token"),
        str_field(&tokens, "refresh_token"),
    );
    assert_eq!(revoke(&google, refresh_token).await, StatusCode::OK);

    let (status, body) = refresh(&google, refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." })
    );
    let info = userinfo(&google, access).await;
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);
    assert!(info.headers().contains_key(WWW_AUTHENTICATE));

    let response = http()
        .post(google.revoke_url())
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    assert_eq!(google.revocations(), 2);
}

#[tokio::test]
async fn revoking_the_access_token_revokes_the_refresh_token() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    assert_eq!(
        revoke(&google, str_field(&tokens, "access_token")).await,
        StatusCode::OK
    );
    let (status, body) = refresh(&google, str_field(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // The grant is gone, so the next offline authorization is a first grant again.
    let code = code_for(
        &google,
        &with(auth_params(&google, VERIFIER), "prompt", None),
    )
    .await;
    let (_, again) = exchange(&google, &code, Some(VERIFIER)).await;
    assert!(again["refresh_token"].is_string());
}

#[tokio::test]
async fn password_change_and_expiry_knobs() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    let access = str_field(&tokens, "access_token");
    google.revoke_all_refresh_tokens();
    let (status, body) = refresh(&google, str_field(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(userinfo(&google, access).await.status(), StatusCode::OK);
    google.expire_access_tokens();
    assert_eq!(
        userinfo(&google, access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    google.set_access_token_lifetime(0);
    let issued = google.issue_tokens(SCOPE);
    assert_eq!(
        userinfo(&google, &issued.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (_, refreshed) = refresh(&google, &issued.refresh_token).await;
    assert_eq!(refreshed["expires_in"], 0);
}

#[tokio::test]
async fn refresh_token_limit_invalidates_the_oldest() {
    let google = FakeGoogle::start(FakeGoogleConfig {
        refresh_token_limit: 2,
        ..FakeGoogleConfig::default()
    })
    .await;
    let first = google.issue_tokens(SCOPE);
    let second = google.issue_tokens(SCOPE);
    let third = google.issue_tokens(SCOPE);
    assert_eq!(google.live_refresh_tokens(), 2);
    let (status, body) = refresh(&google, &first.refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        refresh(&google, &second.refresh_token).await.0,
        StatusCode::OK
    );
    assert_eq!(
        refresh(&google, &third.refresh_token).await.0,
        StatusCode::OK
    );
    assert_eq!(google.refresh_tokens_issued(), 3);
}

#[tokio::test]
async fn testing_mode_refresh_tokens_expire() {
    let google = FakeGoogle::start(FakeGoogleConfig {
        refresh_token_lifetime: Some(Duration::from_secs(1)),
        ..FakeGoogleConfig::default()
    })
    .await;
    let tokens = connect(&google).await;
    assert_eq!(
        tokens["refresh_token_expires_in"], 1,
        "Google says when a time-limited refresh token dies"
    );
    let refresh_token = str_field(&tokens, "refresh_token");
    assert_eq!(refresh(&google, refresh_token).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(&google, refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
}

#[tokio::test]
async fn another_account_signs_in() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let first_sub = google.account_sub();
    google.sign_in_as("other@example.test");
    assert_ne!(google.account_sub(), first_sub);
    assert_eq!(google.account_sub().len(), 21);
    let tokens = connect(&google).await;
    let claims = jwt_claims(str_field(&tokens, "id_token"));
    assert_eq!(claims["email"], "other@example.test");
    assert_eq!(claims["sub"], google.account_sub());
}

// ---------------------------------------------------------------------------------------------
// Gmail API send
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gmail_send_json_and_media_upload() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let tokens = connect(&google).await;
    let access = str_field(&tokens, "access_token");

    let raw = message("Jane@Example.org", "first");
    let (status, body) = send(&google, access, &raw).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = str_field(&body, "id");
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(body["threadId"], id);
    assert_eq!(body["labelIds"], json!(["SENT"]));

    // A reply naming the thread joins it.
    let reply = message("jane@example.org", "reply");
    let (status, replied) = send_json(
        &google,
        access,
        &json!({ "raw": URL_SAFE_NO_PAD.encode(&reply), "threadId": id }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replied["threadId"], id);

    let uploaded = message("jane@example.org", "upload");
    let response = http()
        .post(upload_url(&google))
        .bearer_auth(access)
        .header(CONTENT_TYPE, "message/rfc822")
        .body(uploaded.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let sent = google.sent_messages();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].raw, raw);
    assert_eq!(sent[0].recipients, ["jane@example.org", "bob@example.org"]);
    assert_eq!(sent[0].user_email, "rep@example.test");
    assert_eq!(sent[0].user_sub, google.account_sub());
    assert_eq!(sent[0].access_token, access);
    assert_eq!(sent[0].via, SendVia::Json);
    assert_eq!(sent[2].raw, uploaded);
    assert_eq!(sent[2].via, SendVia::MediaUpload);
    assert_eq!(google.send_requests(), 3);
}

#[tokio::test]
async fn gmail_send_requires_a_valid_access_token() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let raw = message("a@example.org", "s");

    let response = http()
        .post(send_url(&google))
        .json(&json!({ "raw": URL_SAFE_NO_PAD.encode(&raw) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&response.json().await.unwrap()), "required");

    let (status, body) = send(&google, "ya29.bogus", &raw).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(
        str_field(&body["error"], "message")
            .starts_with("Request had invalid authentication credentials")
    );

    let tokens = connect(&google).await;
    let access = str_field(&tokens, "access_token");
    google.expire_access_tokens();
    let (status, body) = send(&google, access, &raw).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");

    // Refreshing fixes it.
    let (_, refreshed) = refresh(&google, str_field(&tokens, "refresh_token")).await;
    let access = str_field(&refreshed, "access_token");
    assert_eq!(send(&google, access, &raw).await.0, StatusCode::OK);

    // Only "me" or the account's own address.
    let response = http()
        .post(format!(
            "{}/gmail/v1/users/someone@else.org/messages/send",
            google.gmail_api_url()
        ))
        .bearer_auth(access)
        .json(&json!({ "raw": URL_SAFE_NO_PAD.encode(&raw) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(google.sent_messages().len(), 1);
    assert_eq!(google.send_requests(), 5);
}

#[tokio::test]
async fn accept_any_access_token_lets_foreign_tokens_send_as_the_signed_in_account() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let raw = message("a@example.org", "foreign");
    let foreign = "eyJhbGciOiJSUzI1NiJ9.issued-by-another-server.sig";
    assert_eq!(
        send(&google, foreign, &raw).await.0,
        StatusCode::UNAUTHORIZED
    );

    google.accept_any_access_token(true);
    let (status, body) = send(&google, foreign, &raw).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = google.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].access_token, foreign);
    assert_eq!(
        sent[0].user_email,
        FakeGoogleConfig::default().account_email
    );
    assert_eq!(sent[0].user_sub, google.account_sub());

    // Tokens this server issued keep their checks: an expired one is still refused.
    let tokens = connect(&google).await;
    google.expire_access_tokens();
    let (status, body) = send(&google, str_field(&tokens, "access_token"), &raw).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&body), "authError");

    google.accept_any_access_token(false);
    assert_eq!(
        send(&google, foreign, &raw).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(google.sent_messages().len(), 1);
}

#[tokio::test]
async fn gmail_send_failure_modes() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let access = google.issue_tokens(SCOPE).access_token;
    let raw = message("a@example.org", "s");

    google.set_send_failure(Some(SendFailure::RateLimited {
        retry_after_secs: 120,
    }));
    let (status, body) = send(&google, &access, &raw).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reason(&body), "rateLimitExceeded");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let message_text = str_field(&body["error"], "message");
    let retry_at = message_text
        .strip_prefix("User-rate limit exceeded.  Retry after ")
        .expect("Gmail's wording");
    let retry_at = chrono::DateTime::parse_from_rfc3339(retry_at).expect("an RFC 3339 time");
    let wait = retry_at
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((100..=120).contains(&wait), "{wait}");
    // Until cleared.
    assert_eq!(
        send(&google, &access, &raw).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let cases = [
        (
            SendFailure::DailyLimit,
            StatusCode::FORBIDDEN,
            "dailyLimitExceeded",
        ),
        (
            SendFailure::UserRateLimit,
            StatusCode::FORBIDDEN,
            "userRateLimitExceeded",
        ),
        (
            SendFailure::BadRequest {
                reason: "failedPrecondition",
                message: "Precondition check failed.".to_string(),
            },
            StatusCode::BAD_REQUEST,
            "failedPrecondition",
        ),
        (
            SendFailure::BadRequest {
                reason: "invalidArgument",
                message: "Invalid To header".to_string(),
            },
            StatusCode::BAD_REQUEST,
            "invalidArgument",
        ),
        (
            SendFailure::ServerError,
            StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
        ),
    ];
    for (failure, status, expected) in cases {
        google.set_send_failure(Some(failure));
        let (got, body) = send(&google, &access, &raw).await;
        assert_eq!(got, status, "{expected}");
        assert_eq!(reason(&body), expected);
        assert_eq!(body["error"]["code"], status.as_u16());
    }
    let (_, body) = send(&google, &access, &raw).await;
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    google.set_send_failure(None);
    assert!(
        google.sent_messages().is_empty(),
        "failed sends store nothing"
    );

    google.fail_next_sends(2, SendFailure::ServerError);
    assert_eq!(
        send(&google, &access, &raw).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&google, &access, &raw).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send(&google, &access, &raw).await.0, StatusCode::OK);
    assert_eq!(google.sent_messages().len(), 1);
    assert_eq!(google.send_requests(), 11);
}

#[tokio::test]
async fn a_slow_send_is_stored_before_it_is_answered() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let access = google.issue_tokens(SCOPE).access_token;
    google.fail_next_sends(1, SendFailure::Delay(Duration::from_secs(2)));
    let request = http()
        .post(send_url(&google))
        .bearer_auth(&access)
        .timeout(Duration::from_millis(300))
        .json(&json!({ "raw": URL_SAFE_NO_PAD.encode(message("a@example.org", "slow")) }))
        .send()
        .await;
    assert!(request.unwrap_err().is_timeout());
    assert_eq!(
        google.sent_messages().len(),
        1,
        "the client timed out, the mail went out"
    );
    assert_eq!(
        send(&google, &access, &message("a@example.org", "s"))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn gmail_send_validates_the_message() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let access = google.issue_tokens(SCOPE).access_token;

    let (status, body) = send_json(&google, &access, &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "invalidArgument");

    let (status, body) = send_json(&google, &access, &json!({ "raw": "not base64!" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason(&body), "invalidArgument");

    let (status, body) = send(&google, &access, b"Subject: nobody\r\n\r\nHi\r\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Recipient address required");

    // Padded base64url is accepted too.
    let padded = base64::engine::general_purpose::URL_SAFE.encode(message("a@example.org", "pad"));
    assert_eq!(
        send_json(&google, &access, &json!({ "raw": padded }))
            .await
            .0,
        StatusCode::OK
    );

    let upload = |content_type: &'static str, url: String| {
        http()
            .post(url)
            .bearer_auth(&access)
            .header(CONTENT_TYPE, content_type)
            .body(message("a@example.org", "up"))
            .send()
    };
    let response = upload("text/plain", upload_url(&google)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let no_upload_type = format!(
        "{}/upload/gmail/v1/users/me/messages/send",
        google.gmail_api_url()
    );
    let response = upload("message/rfc822", no_upload_type).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(google.sent_messages().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dropping_the_fake_stops_it() {
    let google = FakeGoogle::start(FakeGoogleConfig::default()).await;
    let url = google.discovery_url();
    assert_eq!(
        http().get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    drop(google);
    let mut stopped = false;
    for _ in 0..50 {
        // A fresh client each time: no pooled connection to a dying worker.
        if http().get(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped, "the fake still answers after being dropped");
}
