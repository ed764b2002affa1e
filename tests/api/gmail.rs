//! "Connect Gmail" end to end against a local fake of Google's documented endpoints
//! (tests/support/fake_google.rs): the authorization round trip with PKCE, state misuse,
//! sending through the Gmail API, refresh exactly once, revoked grants, rate limits,
//! reconnect and disconnect. The test plays the rep's browser.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_google::{FakeGoogle, FakeGoogleConfig, SendFailure};
use crate::helpers::{
    OAuthBrowser, TestApp, TestTenant, TestUser, app_with_rep, assert_sealed_on_disk, attempts,
    expect_json, expect_problem,
};

/// Where the service says it lives (its redirect URI); the browser maps it to the test app.
const PUBLIC_URL: &str = "http://switchboard.test";
const MAILBOX: &str = "ann.rep@gmail.com";
const PATIENCE: Duration = Duration::from_secs(30);

struct World {
    app: TestApp,
    google: FakeGoogle,
    acme: TestTenant,
    rep: TestUser,
    browser: OAuthBrowser,
}

async fn world_with(config: FakeGoogleConfig) -> World {
    let google = FakeGoogle::start(FakeGoogleConfig {
        redirect_uri: format!("{PUBLIC_URL}/oauth/google/callback"),
        account_email: MAILBOX.into(),
        ..config
    })
    .await;
    let defaults = FakeGoogleConfig::default();
    let (auth, token, revoke, userinfo, api) = (
        google.auth_url(),
        google.token_url(),
        google.revoke_url(),
        google.userinfo_url(),
        google.gmail_api_url(),
    );
    let (app, acme, rep) = app_with_rep(&[
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC_URL),
        ("SWITCHBOARD_GOOGLE_CLIENT_ID", &defaults.client_id),
        ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", &defaults.client_secret),
        ("SWITCHBOARD_GOOGLE_AUTH_URL", &auth),
        ("SWITCHBOARD_GOOGLE_TOKEN_URL", &token),
        ("SWITCHBOARD_GOOGLE_REVOKE_URL", &revoke),
        ("SWITCHBOARD_GOOGLE_USERINFO_URL", &userinfo),
        ("SWITCHBOARD_GOOGLE_GMAIL_API_URL", &api),
    ])
    .await;
    World {
        app,
        google,
        acme,
        rep,
        browser: OAuthBrowser::new(PUBLIC_URL),
    }
}

async fn world() -> World {
    world_with(FakeGoogleConfig::default()).await
}

/// The rep clicks "Connect Gmail" (or "Reconnect"); returns the callback URL Google sent the
/// browser back to, already pointed at the test app.
async fn authorize(w: &World, body: Value) -> String {
    w.browser
        .authorize(&w.app, "/v1/oauth/google/start", &w.rep.token, body)
        .await
}

/// The browser lands on the callback; returns the status and the page.
async fn land(w: &World, callback: &str) -> (StatusCode, String) {
    w.browser.land(callback).await
}

async fn connect(w: &World) -> Value {
    let callback = authorize(w, json!({})).await;
    let (status, page) = land(w, &callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    gmail_channel(w).await
}

async fn gmail_channel(w: &World) -> Value {
    w.app.gmail_channel(&w.rep.token).await
}

async fn send(w: &World, subject: &str) -> String {
    w.app
        .accept(
            &w.rep.token,
            json!({"from": format!("Ann Rep <{MAILBOX}>"), "to": ["buyer@example.com"],
                       "bcc": ["manager@acme.test"], "subject": subject, "text": "Hello"}),
        )
        .await
}

async fn wait(w: &World, id: &str, status: &str) -> Value {
    w.app
        .wait_for_message(&w.rep.token, id, status, PATIENCE)
        .await
}

#[tokio::test]
async fn a_rep_connects_gmail_in_one_round_trip_with_pkce() {
    let w = world().await;
    let channel = connect(&w).await;
    assert_eq!(channel["from_address"], MAILBOX);
    assert_eq!(channel["scope"], "mailbox");
    assert_eq!(channel["status"], "active");
    assert_eq!(
        channel["limits"]["per_day_recipients"], 500,
        "a consumer account: {channel}"
    );
    assert_eq!(channel["limits"]["recipients_per_message"], 100);

    let request = &w.google.authorization_requests()[0];
    assert_eq!(request.param("code_challenge_method"), Some("S256"));
    assert!(
        request
            .param("code_challenge")
            .is_some_and(|c| c.len() == 43)
    );
    assert_eq!(request.param("access_type"), Some("offline"));
    assert_eq!(request.param("prompt"), Some("consent"));
    let scope = request.param("scope").unwrap();
    for wanted in [
        "https://www.googleapis.com/auth/gmail.send",
        "openid",
        "email",
    ] {
        assert!(scope.split(' ').any(|s| s == wanted), "{scope}");
    }
    assert_eq!(w.google.code_exchanges(), 1);
    assert_eq!(
        w.google.pkce_failures(),
        0,
        "the verifier matched the challenge"
    );
}

#[tokio::test]
async fn a_state_that_is_unknown_used_or_expired_stores_nothing() {
    let w = world().await;
    let callback = authorize(&w, json!({})).await;
    let (status, _) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");
    let forged = format!(
        "{}/oauth/google/callback?code=4%2F0abc&state=made-up",
        w.app.address
    );
    let (status, page) = land(&w, &forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not one Switchboard started"), "{page}");
    assert_eq!(w.google.code_exchanges(), 1, "neither reached Google");

    // A state older than ten minutes (written straight into the store).
    let (store, vault) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
    let tenant = w.acme.id.parse().unwrap();
    let user = w.rep.id.parse().unwrap();
    let hash = sha2_of("stale-state");
    store
        .run_blocking(|c| {
            switchboard::store::oauth::insert_state(
                c,
                &vault,
                &switchboard::store::oauth::NewState {
                    state_hash: &hash,
                    tenant,
                    user,
                    provider: "google",
                    channel: None,
                    verifier: &secrecy::SecretString::from("v".repeat(43)),
                    expires_at: chrono::Utc::now().timestamp_micros() - 1,
                },
            )
        })
        .unwrap();
    let (status, page) = land(
        &w,
        &format!(
            "{}/oauth/google/callback?code=x&state=stale-state",
            w.app.address
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");

    // The rep declines at Google.
    w.google.set_user_denies(true);
    let callback = authorize(&w, json!({})).await;
    let (status, page) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("declined"), "{page}");
    let all = expect_json(
        w.app.get("/v1/channels", &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "gmail")
            .count(),
        1,
        "only the first, successful connection made a channel"
    );
}

fn sha2_of(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

#[tokio::test]
async fn mail_goes_out_through_the_gmail_api_with_its_message_id_and_bcc_only_as_bcc() {
    let w = world().await;
    connect(&w).await;
    let id = send(&w, "Through Gmail").await;
    let sent = wait(&w, &id, "sent").await;
    let messages = w.google.sent_messages();
    assert_eq!(messages.len(), 1);
    let raw = String::from_utf8_lossy(&messages[0].raw).to_string();
    assert!(
        raw.contains(&format!(
            "Message-ID: {}",
            sent["message_id"].as_str().unwrap()
        )),
        "{raw}"
    );
    assert!(raw.contains("To: buyer@example.com"), "{raw}");
    assert!(raw.contains("Subject: Through Gmail"), "{raw}");
    // The Gmail API takes recipients from the headers and removes Bcc before delivery; the
    // blind copy must appear in no other header.
    for line in raw.lines().take_while(|l| !l.is_empty()) {
        if !line.starts_with("Bcc:") {
            assert!(!line.contains("manager@acme.test"), "{line}");
        }
    }
    let mut recipients = messages[0].recipients.clone();
    recipients.sort();
    assert_eq!(recipients, ["buyer@example.com", "manager@acme.test"]);
}

#[tokio::test]
async fn fifty_sends_at_expiry_cause_exactly_one_refresh() {
    // Google's tokens live 61 s; refreshing a minute early makes it due after one second.
    let w = world_with(FakeGoogleConfig {
        access_token_lifetime: Duration::from_secs(61),
        ..FakeGoogleConfig::default()
    })
    .await;
    connect(&w).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in w.app.burst(&w.rep.token, MAILBOX, 50).await {
        wait(&w, &id, "sent").await;
    }
    assert_eq!(
        w.google.refresh_requests(),
        1,
        "one refresh served all fifty"
    );

    // A token Google refuses before its time (401) is replaced once, not once per send.
    w.google.expire_access_tokens();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..10 {
            ids.push(send(&w, &format!("after 401 {n}")).await);
        }
        ids
    };
    for id in &ids {
        wait(&w, id, "sent").await;
    }
    assert_eq!(w.google.refresh_requests(), 2);
}

#[tokio::test]
async fn a_revoked_grant_holds_mail_until_the_rep_reconnects() {
    let w = world().await;
    let channel = connect(&w).await;
    w.google.revoke_all_refresh_tokens();
    w.google.expire_access_tokens();
    let id = send(&w, "while revoked").await;
    let held = wait(&w, &id, "held").await;
    assert_eq!(held["hold_reason"], "channel_unavailable", "{held:#}");
    let broken = gmail_channel(&w).await;
    assert_eq!(broken["status"], "needs_reauth");
    assert_eq!(broken["status_cause"], "token_revoked");
    assert!(w.google.sent_messages().is_empty());

    // Reconnect: the same channel, a new grant, the held message released.
    let callback = authorize(&w, json!({"channel_id": channel["id"]})).await;
    let (status, page) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("held message"), "{page}");
    let sent = wait(&w, &id, "sent").await;
    assert_eq!(sent["channel_id"], channel["id"]);
    assert_eq!(gmail_channel(&w).await["status"], "active");
}

#[tokio::test]
async fn a_rate_limited_send_is_deferred_and_then_sent() {
    let w = world().await;
    connect(&w).await;
    w.google.fail_next_sends(
        1,
        SendFailure::RateLimited {
            retry_after_secs: 1,
        },
    );
    let id = send(&w, "slow down").await;
    let sent = wait(&w, &id, "sent").await;
    let events = sent["events"].as_array().unwrap();
    let first = &attempts(&sent)[0];
    assert_eq!(first["detail"]["code"], 429, "{sent:#}");
    assert_eq!(first["detail"]["result"], "temporary");
    assert!(events.iter().any(|e| e["kind"] == "deferred"), "{sent:#}");
    assert_eq!(sent["attempts"], 2);
}

#[tokio::test]
async fn disconnecting_revokes_at_google_and_keeps_the_channel_waiting() {
    let w = world().await;
    let channel = connect(&w).await;
    let id = channel["id"].as_str().unwrap();
    let res = w
        .app
        .delete(&format!("/v1/channels/{id}/oauth"), &w.rep.token)
        .await;
    let answer = expect_json(res, StatusCode::OK).await;
    assert_eq!(answer["revoked_at_google"], true);
    assert_eq!(w.google.revocations(), 1);
    let after = gmail_channel(&w).await;
    assert_eq!(after["status"], "needs_reauth");
    assert_eq!(after["status_cause"], "disconnected");
    let held = send(&w, "after disconnect").await;
    wait(&w, &held, "held").await;
}

#[tokio::test]
async fn a_large_message_goes_through_the_upload_endpoint() {
    let w = world().await;
    connect(&w).await;
    let big = "All the details. ".repeat(300_000); // about 5 MB
    let accepted = expect_json(
        w.app
            .post(
                "/v1/messages",
                &w.rep.token,
                json!({"from": MAILBOX, "to": ["buyer@example.com"], "subject": "Big", "text": big}),
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    wait(&w, accepted["id"].as_str().unwrap(), "sent").await;
    let sent = w.google.sent_messages();
    assert!(matches!(
        sent[0].via,
        crate::fake_google::SendVia::MediaUpload
    ));
    assert!(sent[0].raw.len() > 4 * 1024 * 1024);
}

#[tokio::test]
async fn google_being_down_at_refresh_defers_mail_and_keeps_the_channel_active() {
    let w = world().await;
    connect(&w).await;
    w.google.expire_access_tokens();
    w.google
        .set_token_failure(Some(crate::fake_google::FailMode::ServerError));
    let id = send(&w, "while Google is down").await;
    wait(&w, &id, "deferred").await;
    assert_eq!(
        gmail_channel(&w).await["status"],
        "active",
        "a 503 is not the rep's problem"
    );
    w.google.set_token_failure(None);
    wait(&w, &id, "sent").await;
}

#[tokio::test]
async fn tokens_never_appear_in_answers_or_in_the_database_file() {
    let w = world().await;
    let channel = connect(&w).await;
    let id = send(&w, "canary").await;
    let view = wait(&w, &id, "sent").await;
    let token = w.google.sent_messages()[0].access_token.clone();
    assert!(token.starts_with("ya29."), "{token}");
    let channels = w
        .app
        .get("/v1/channels", &w.rep.token)
        .await
        .text()
        .await
        .unwrap();
    for shown in [channels, channel.to_string(), view.to_string()] {
        assert!(!shown.contains(&token), "the access token leaked: {shown}");
    }
    assert_sealed_on_disk(&w.app, &[token]);
}

#[tokio::test]
async fn a_gmail_channel_keeps_its_account_and_gives_its_grant_back_when_deleted() {
    let w = world().await;
    let channel = connect(&w).await;
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    for change in [
        json!({"from_address": "someone@gmail.com"}),
        json!({"smtp": {"host": "smtp.gmail.com"}}),
    ] {
        expect_problem(
            w.app.patch(&path, &w.rep.token, change).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_editable_for_gmail",
        )
        .await;
    }
    let renamed = expect_json(
        w.app
            .patch(&path, &w.rep.token, json!({"name": "My Gmail"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "My Gmail");
    let res = w.app.delete(&path, &w.rep.token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(w.google.revocations(), 1, "the grant went back to Google");
    assert_eq!(w.google.live_refresh_tokens(), 0);
}

#[tokio::test]
async fn google_not_the_address_says_whether_a_mailbox_is_workspace_or_consumer() {
    // A Workspace account: Google names its domain (`hd`).
    let workspace = world_with(FakeGoogleConfig {
        hosted_domain: Some("acme.test".into()),
        ..FakeGoogleConfig::default()
    })
    .await;
    workspace.google.sign_in_as("ann@acme.test");
    let channel = connect(&workspace).await;
    assert_eq!(channel["from_address"], "ann@acme.test");
    assert_eq!(
        channel["limits"]["per_day_recipients"], 10_000,
        "Workspace: {channel}"
    );
    // A consumer Google account on an address of a company's domain: no `hd`, so the
    // consumer limits, although the address does not end in gmail.com.
    let consumer = world().await;
    consumer.google.sign_in_as("ann@acme.test");
    let channel = connect(&consumer).await;
    assert_eq!(
        channel["limits"]["per_day_recipients"], 500,
        "consumer: {channel}"
    );
}
