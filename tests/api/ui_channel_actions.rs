//! The channel page's actions, through the pages as a browser uses them: the connection
//! test and the test email against a real SMTP server, replacing a refused password (mail
//! held, then released), and Connect / Reconnect / Disconnect Gmail against the fake Google.
//! No page ever shows a password.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_google::{FakeGoogle, FakeGoogleConfig};
use crate::helpers::{TestApp, TestTenant, TestUser, expect_json, spawn_app_with};
use crate::messages::{PASSWORD, REP, World, mail, send_id, world};
use crate::ui_client::{Page, UiClient};

const NEW_PASSWORD: &str = "Canary-Ui-Rotated-Pw-4e7";
const WRONG_PASSWORD: &str = "Canary-Ui-Wrong-Pw-0b3";

/// Every page a test saw, to check that no secret reached one.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn add(&mut self, page: &Page) {
        self.0.push(page.html.clone());
    }

    fn never_shows(&self, secrets: &[&str]) {
        for html in &self.0 {
            for secret in secrets {
                assert!(!html.contains(secret), "a page shows a secret:\n{html}");
            }
        }
    }
}

/// The rep, signed in, on their channel's page.
async fn on_channel_page(w: &World, seen: &mut Seen) -> UiClient {
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    let page = ui.get(&format!("/ui/channels/{}", w.channel)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Test connection")
        .expect("Send test email")
        .expect("Send the test email to")
        .expect("Verify and replace")
        .expect("New password or API key");
    seen.add(&page);
    ui
}

async fn channel(w: &World) -> Value {
    expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn wait_for_status(w: &World, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while channel(w).await["status"] != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn test_connection_answers_in_place_with_every_stage_passed() {
    let w = world().await;
    let mut seen = Seen::default();
    let mut ui = on_channel_page(&w, &mut seen).await;
    let test = format!("/ui/channels/{}/test", w.channel);
    let result = ui.post_fragment(&test, &[("action", "connect")]).await;
    assert_eq!(result.status, StatusCode::OK, "{}", result.html);
    result
        .expect("Connection and login work")
        .expect("<ol class=\"stages\">")
        .expect("<li class=\"passed\"><strong>Connect: passed")
        .expect("<li class=\"passed\"><strong>TLS: passed")
        .expect("<li class=\"passed\"><strong>Login: passed")
        .expect("<span class=\"reply\">235")
        .expect_not("class=\"failed\"")
        .expect_not("<html")
        .expect("Recorded as the channel's last verification");
    seen.add(&result);
    let view = expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(view["last_verified_at"].is_string(), "{view}");
    assert!(
        w.server.messages().is_empty(),
        "a connection test sends nothing"
    );

    // Without the script: a page of its own, with the result and the way back.
    let page = ui.post(&test, &[("action", "connect")]).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect("<h1>My mailbox</h1>")
        .expect("Connection and login work")
        .expect(&format!("href=\"/ui/channels/{}\"", w.channel));
    seen.add(&page);
    seen.never_shows(&[PASSWORD]);
}

#[tokio::test]
async fn a_refused_login_shows_the_failed_stage_with_its_hint() {
    let w = world().await;
    let mut seen = Seen::default();
    let mut ui = on_channel_page(&w, &mut seen).await;
    w.server.set_password(REP, NEW_PASSWORD);
    let result = ui
        .post_fragment(
            &format!("/ui/channels/{}/test", w.channel),
            &[("action", "connect")],
        )
        .await;
    assert_eq!(result.status, StatusCode::OK);
    result
        .expect("Login refused: username or password rejected")
        .expect("<li class=\"passed\"><strong>Connect: passed")
        .expect("<li class=\"failed\"><strong>Login: failed")
        .expect("(535): 5.7.8 Authentication credentials invalid</span>")
        .expect("rotate the credential");
    seen.add(&result);
    seen.never_shows(&[PASSWORD, NEW_PASSWORD]);
}

#[tokio::test]
async fn send_test_email_delivers_a_message_to_the_address_given() {
    let w = world().await;
    let mut seen = Seen::default();
    let mut ui = on_channel_page(&w, &mut seen).await;
    let test = format!("/ui/channels/{}/test", w.channel);
    // The owner's own address is the default recipient.
    let page = ui.get(&format!("/ui/channels/{}", w.channel)).await;
    page.expect(&format!("name=\"send_to\" type=\"email\" value=\"{REP}\""));
    let result = ui
        .post_fragment(
            &test,
            &[("action", "send"), ("send_to", "it-desk@example.com")],
        )
        .await;
    assert_eq!(result.status, StatusCode::OK, "{}", result.html);
    result
        .expect("the server accepted the test email")
        .expect("<li class=\"passed\"><strong>Send the test email: passed");
    let messages = w.server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["it-desk@example.com"]);
    assert_eq!(messages[0].mail_from, REP);

    // An address that is none is the API's refusal, in words.
    let refused = ui
        .post_fragment(&test, &[("action", "send"), ("send_to", "not an address")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.expect("Send the test email to:");
    assert_eq!(w.server.messages().len(), 1);
    seen.add(&result);
    seen.add(&refused);
    seen.never_shows(&[PASSWORD]);
}

#[tokio::test]
async fn a_refused_password_is_replaced_only_once_the_new_one_logs_in_and_held_mail_goes_out() {
    let w = world().await;
    let mut seen = Seen::default();
    // IT changes the mailbox password; mail sent meanwhile is held.
    w.server.set_password(REP, NEW_PASSWORD);
    let held = send_id(&w, mail("during the outage")).await;
    wait_for_status(&w, "needs_reauth").await;
    w.app
        .wait_for_message(&w.rep.token, &held, "held", Duration::from_secs(20))
        .await;
    let mut ui = on_channel_page(&w, &mut seen).await;
    let page = ui.get(&format!("/ui/channels/{}", w.channel)).await;
    page.expect("This channel's password was refused; enter the new one");
    let rotate = format!("/ui/channels/{}/credentials", w.channel);

    // A wrong one: refused with the stages and the hint, nothing changed.
    let before = channel(&w).await;
    let refused = ui
        .post(&rotate, &[("password", WRONG_PASSWORD), ("username", "")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused
        .expect("Not replaced")
        .expect("The old one is still in use")
        .expect("<li class=\"failed\"><strong>Login: failed")
        .expect("username or password rejected")
        .expect("Verify and replace");
    seen.add(&refused);
    let after = channel(&w).await;
    assert_eq!(after["status"], "needs_reauth");
    assert_eq!(
        after["credential_updated_at"],
        before["credential_updated_at"]
    );
    // The stored password is still the old one: it logs in once the server takes it again.
    w.server.set_password(REP, PASSWORD);
    ui.post_fragment(
        &format!("/ui/channels/{}/test", w.channel),
        &[("action", "connect")],
    )
    .await
    .expect("Connection and login work");
    w.server.set_password(REP, NEW_PASSWORD);

    // An empty one is the API's refusal, next to the field.
    let empty = ui.post(&rotate, &[("password", "")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    empty
        .expect("id=\"f-password-error\"")
        .expect("give exactly one of password or api_key");
    seen.add(&empty);

    // The right one: replaced, back to the channel with a notice, the held mail sent.
    let replaced = ui
        .post(&rotate, &[("password", NEW_PASSWORD), ("username", "")])
        .await;
    assert_eq!(replaced.status, StatusCode::SEE_OTHER, "{}", replaced.html);
    assert_eq!(
        replaced.location.as_deref(),
        Some(format!("/ui/channels/{}", w.channel).as_str())
    );
    let page = ui.follow(&replaced).await;
    page.expect("The new password was verified and replaced the old one.")
        .expect("mail held for it is on its way");
    seen.add(&page);
    assert_eq!(channel(&w).await["status"], "active");
    w.app
        .wait_for_message(&w.rep.token, &held, "sent", Duration::from_secs(30))
        .await;
    assert!(
        w.server
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("during the outage"))
    );
    seen.never_shows(&[PASSWORD, NEW_PASSWORD, WRONG_PASSWORD]);
}

#[tokio::test]
async fn only_the_owner_and_it_see_the_test_and_rotation_and_others_are_refused() {
    let w = world().await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let other = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    let mut it_ui = UiClient::signed_in(&w.app, &it.token).await;
    let page = it_ui.get(&format!("/ui/channels/{}", w.channel)).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect("Test connection").expect("Verify and replace");
    // IT tests someone else's mailbox: no default recipient is guessed.
    page.expect_not(&format!("value=\"{REP}\""));

    let mut other_ui = UiClient::signed_in(&w.app, &other.token).await;
    other_ui.get("/ui/channels").await;
    let refused = other_ui
        .post(
            &format!("/ui/channels/{}/credentials", w.channel),
            &[("password", WRONG_PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.html);
    let refused = other_ui
        .post(
            &format!("/ui/channels/{}/test", w.channel),
            &[("action", "connect")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
}

// --- Gmail ---------------------------------------------------------------------------------

/// Where the service says it lives (its redirect URI); the browser maps it to the test app.
const PUBLIC_URL: &str = "http://switchboard.test";
const MAILBOX: &str = "ann.rep@gmail.com";

struct Gmail {
    app: TestApp,
    google: FakeGoogle,
    _acme: TestTenant,
    rep: TestUser,
    /// Google's side of the browser (no cookies of ours).
    browser: reqwest::Client,
}

async fn gmail() -> Gmail {
    let google = FakeGoogle::start(FakeGoogleConfig {
        redirect_uri: format!("{PUBLIC_URL}/oauth/google/callback"),
        account_email: MAILBOX.into(),
        ..FakeGoogleConfig::default()
    })
    .await;
    let defaults = FakeGoogleConfig::default();
    let app = spawn_app_with(&[
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC_URL),
        ("SWITCHBOARD_GOOGLE_CLIENT_ID", &defaults.client_id),
        ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", &defaults.client_secret),
        ("SWITCHBOARD_GOOGLE_AUTH_URL", &google.auth_url()),
        ("SWITCHBOARD_GOOGLE_TOKEN_URL", &google.token_url()),
        ("SWITCHBOARD_GOOGLE_REVOKE_URL", &google.revoke_url()),
        ("SWITCHBOARD_GOOGLE_USERINFO_URL", &google.userinfo_url()),
        ("SWITCHBOARD_GOOGLE_GMAIL_API_URL", &google.gmail_api_url()),
        ("SWITCHBOARD_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_RETRY_MAX", "2s"),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
    ])
    .await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "ann@acme.test", "rep", None).await;
    Gmail {
        app,
        google,
        _acme: acme,
        rep,
        browser: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// Presses Connect (or Reconnect, with `channel_id`), consents at Google and lands on the
/// callback with the browser's cookies; returns the callback's answer.
async fn connect_from_pages(g: &Gmail, ui: &mut UiClient, fields: &[(&str, &str)]) -> Page {
    let started = ui.post("/ui/channels/gmail/connect", fields).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.html);
    let authorize = started.location.clone().unwrap();
    assert!(
        authorize.starts_with(&g.google.auth_url()),
        "to Google: {authorize}"
    );
    let consent = g.browser.get(&authorize).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::FOUND);
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    let path = back
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("back to our redirect URI: {back}"));
    ui.get(path).await
}

async fn gmail_channel(g: &Gmail) -> Value {
    g.app.gmail_channel(&g.rep.token).await
}

#[tokio::test]
async fn connect_reconnect_and_disconnect_gmail_from_the_pages() {
    let g = gmail().await;
    let mut ui = UiClient::signed_in(&g.app, &g.rep.token).await;
    let list = ui.get("/ui/channels").await;
    list.expect("Connect Gmail")
        .expect("action=\"/ui/channels/gmail/connect\"");

    // Connect: Google, the callback, then the new channel's page with the outcome.
    let landed = connect_from_pages(&g, &mut ui, &[]).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.html);
    assert_eq!(landed.headers["cache-control"], "no-store");
    let channel = gmail_channel(&g).await;
    let id = channel["id"].as_str().unwrap().to_owned();
    let page_path = format!("/ui/channels/{id}");
    assert_eq!(landed.location.as_deref(), Some(page_path.as_str()));
    assert_eq!(channel["status"], "active");
    let page = ui.follow(&landed).await;
    assert_eq!(page.status, StatusCode::OK);
    page.expect(&format!("Gmail connected: sends as {MAILBOX}."))
        .expect(&format!("Gmail {MAILBOX}"))
        .expect("Reconnect Gmail")
        .expect("Disconnect")
        .expect("data-confirm=\"Disconnect this Gmail mailbox?")
        // A Gmail channel has no password to test or replace here.
        .expect_not("Verify and replace");
    // The notice is shown once.
    ui.get(&page_path)
        .await
        .expect_not("Gmail connected: sends as");

    // Disconnect: revoked at Google, the channel waits (its mail held) for a reconnect.
    let revocations = g.google.revocations();
    let done = ui.post(&format!("/ui/channels/{id}/disconnect"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location.as_deref(), Some(page_path.as_str()));
    assert_eq!(g.google.revocations(), revocations + 1);
    let page = ui.follow(&done).await;
    page.expect("Gmail disconnected")
        .expect("Google no longer lets Switchboard send from this mailbox");
    let channel = gmail_channel(&g).await;
    assert_eq!(channel["status"], "needs_reauth");
    assert_eq!(channel["status_cause"], "disconnected");
    let held = expect_json(
        g.app
            .post(
                "/v1/messages",
                &g.rep.token,
                json!({"from": format!("Ann Rep <{MAILBOX}>"), "to": ["buyer@example.com"],
                       "subject": "while disconnected", "text": "Hello"}),
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    g.app
        .wait_for_message(&g.rep.token, &held, "held", Duration::from_secs(30))
        .await;

    // Reconnect: the same channel, Google asked for the same account, the held mail released.
    let landed = connect_from_pages(&g, &mut ui, &[("channel_id", &id)]).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.html);
    assert_eq!(landed.location.as_deref(), Some(page_path.as_str()));
    let requests = g.google.authorization_requests();
    assert_eq!(requests.last().unwrap().param("login_hint"), Some(MAILBOX));
    let page = ui.follow(&landed).await;
    page.expect(&format!(
        "Gmail connected: sends as {MAILBOX}; 1 held message(s) released."
    ));
    assert_eq!(gmail_channel(&g).await["status"], "active");
    g.app
        .wait_for_message(&g.rep.token, &held, "sent", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn a_connection_google_refuses_comes_back_to_the_pages_in_words() {
    let g = gmail().await;
    let mut ui = UiClient::signed_in(&g.app, &g.rep.token).await;
    ui.get("/ui/channels").await;
    g.google.set_user_denies(true);
    let landed = connect_from_pages(&g, &mut ui, &[]).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.html);
    assert_eq!(landed.location.as_deref(), Some("/ui/channels"));
    let page = ui.follow(&landed).await;
    page.expect("Gmail was not connected: Google did not connect the mailbox: you declined");

    // A connection started by an API client keeps its own page.
    g.google.set_user_denies(false);
    let started = expect_json(
        g.app
            .post("/v1/oauth/google/start", &g.rep.token, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let consent = g
        .browser
        .get(started["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    let landed = ui.get(back.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(landed.status, StatusCode::OK);
    landed.expect("<h1>Gmail connected</h1>");
}

#[tokio::test]
async fn without_gmail_configured_connect_says_what_the_operator_must_set() {
    let app = spawn_app_with(&[]).await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "ann@acme.test", "rep", None).await;
    let mut ui = UiClient::signed_in(&app, &rep.token).await;
    ui.get("/ui/channels").await;
    let refused = ui.post("/ui/channels/gmail/connect", &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    refused.expect("SWITCHBOARD_GOOGLE_CLIENT_ID");
}
