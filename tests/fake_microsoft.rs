//! Tests of the fake Microsoft identity platform and Graph (tests/support/fake_microsoft.rs):
//! it must refuse what Microsoft refuses, so that a mistake of our client fails our tests.

#[path = "support/fake_microsoft.rs"]
mod fake_microsoft;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use fake_microsoft::{FakeMicrosoft, FakeMicrosoftConfig, SendFailure};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in at `common` and returns the code.
async fn code(ms: &FakeMicrosoft, config: &FakeMicrosoftConfig) -> String {
    code_for(ms, config, "openid offline_access Mail.Send").await
}

async fn code_for(ms: &FakeMicrosoft, config: &FakeMicrosoftConfig, scope: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let res = http()
        .get(format!(
            "{}/common/oauth2/v2.0/authorize",
            ms.authority_url()
        ))
        .query(&[
            ("client_id", config.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("scope", scope),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let query = location.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    pairs.into_iter().find(|(k, _)| k == "code").unwrap().1
}

async fn token(ms: &FakeMicrosoft, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = http()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", ms.authority_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn the_token_endpoint_checks_secret_code_reuse_verifier_and_rotation() {
    let config = FakeMicrosoftConfig::default();
    let ms = FakeMicrosoft::start(config.clone()).await;
    let c = code(&ms, &config).await;
    let base = |secret: &str, verifier: &str| {
        vec![
            ("client_id", config.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("grant_type", "authorization_code".to_owned()),
            ("code", c.clone()),
            ("redirect_uri", config.redirect_uri.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let form = base("wrong", VERIFIER);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&ms, "common", &form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_codes"][0], 7000215);

    let secret = config.client_secret.as_str();
    let form = base(secret, "not-the-verifier-at-all-but-long-enough-xxxxxxx");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&ms, "common", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 501481, "{body}");
    assert_eq!(ms.pkce_failures(), 1);
    // The code was spent by that attempt, as Microsoft spends it.
    let form = base(secret, VERIFIER);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, body) = token(&ms, "common", &form).await;
    assert_eq!(body["error_codes"][0], 54005, "{body}");

    let c = code(&ms, &config).await;
    let (status, body) = token(
        &ms,
        "common",
        &[
            ("client_id", config.client_id.as_str()),
            ("client_secret", secret),
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    let claims = body["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["nonce"], "n");
    assert_eq!(claims["aud"], config.client_id);
    let tid = config.account.tid.as_str();
    let refresh = |rt: String| {
        vec![
            ("client_id", config.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt),
        ]
    };
    let form = refresh(first.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&ms, tid, &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["refresh_token"].as_str().unwrap(), first, "rotated");
    let (status, body) = token(&ms, tid, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the old one is spent");
    assert_eq!(body["error_codes"][0], 50173);
    assert_eq!(ms.refresh_tenants(), [tid, tid]);
}

#[tokio::test]
async fn graph_wants_a_valid_token_and_base64_mime_and_finds_what_it_stored() {
    let ms = FakeMicrosoft::start(FakeMicrosoftConfig::default()).await;
    let send = |token: &str, body: String| {
        http()
            .post(format!("{}/me/sendMail", ms.graph_url()))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let mime = "Message-ID: <m1@contoso.test>\r\nSubject: hi\r\n\r\nbody\r\n";
    let res = send("made-up", STANDARD.encode(mime)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A real token, through the code flow.
    let config = FakeMicrosoftConfig::default();
    let c = code(&ms, &config).await;
    let (_, body) = token(
        &ms,
        "common",
        &[
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let res = send(&access, "not base64!".into()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    ms.fail_next_sends(&[SendFailure::GatewayTimeoutAfterStore]);
    let res = send(&access, STANDARD.encode(mime)).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let found: Value = http()
        .get(format!(
            "{}/me/mailFolders/sentitems/messages",
            ms.graph_url()
        ))
        .query(&[("$filter", "internetMessageId eq '<m1@contoso.test>'")])
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["value"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(ms.sent_messages().len(), 1);
}

#[tokio::test]
async fn tokens_are_for_one_resource_and_smtp_needs_its_own_consent() {
    let ms = FakeMicrosoft::start(FakeMicrosoftConfig::default()).await;
    let config = FakeMicrosoftConfig::default();
    let check = ms.smtp_token_check();
    let address = config.account.user_principal_name.clone();
    let grant = |scope: &'static str| {
        let (ms, config) = (&ms, &config);
        async move {
            let c = code_for(ms, config, scope).await;
            let (status, body) = token(
                ms,
                "common",
                &[
                    ("client_id", config.client_id.as_str()),
                    ("client_secret", config.client_secret.as_str()),
                    ("grant_type", "authorization_code"),
                    ("code", c.as_str()),
                    ("redirect_uri", config.redirect_uri.as_str()),
                    ("code_verifier", VERIFIER),
                    ("scope", "openid offline_access Mail.Send"),
                ],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["refresh_token"].as_str().unwrap().to_owned()
        }
    };
    let refresh = |rt: String, scope: &'static str| {
        let (ms, config) = (&ms, &config);
        async move {
            token(
                ms,
                &config.account.tid,
                &[
                    ("client_id", config.client_id.as_str()),
                    ("client_secret", config.client_secret.as_str()),
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    // Consented to Graph only: an SMTP token needs consent first.
    let rt = grant("openid offline_access Mail.Send").await;
    let (status, body) = refresh(rt, "https://outlook.office.com/SMTP.Send offline_access").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 65001, "{body}");
    // Consented to both: never both in one token request.
    let rt = grant("openid offline_access Mail.Send https://outlook.office.com/SMTP.Send").await;
    let (status, body) = refresh(
        rt.clone(),
        "Mail.Send https://outlook.office.com/SMTP.Send offline_access",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 700022, "{body}");
    let (status, body) = refresh(rt, "https://outlook.office.com/SMTP.Send offline_access").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let smtp_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(ms.smtp_tokens_issued(), 1);
    // The SMTP token logs in as its own mailbox only, and Graph refuses it.
    assert!(check(&address, &smtp_token));
    assert!(!check("someone.else@contoso.test", &smtp_token));
    assert!(!check(&address, "made-up"));
    let res = http()
        .post(format!("{}/me/sendMail", ms.graph_url()))
        .bearer_auth(&smtp_token)
        .header("content-type", "text/plain")
        .body(STANDARD.encode("Subject: x\r\n\r\nx\r\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // And a Graph token does not log in to SMTP.
    let rt = grant("openid offline_access Mail.Send https://outlook.office.com/SMTP.Send").await;
    let (_, body) = refresh(rt, "openid offline_access Mail.Send").await;
    assert!(!check(&address, body["access_token"].as_str().unwrap()));
}
