//! Flow 5: a rep connects Gmail with one button: the browser goes to (the fake) Google, which
//! consents at once, and comes back to the new channel's page.

use reqwest::StatusCode;

use crate::browser::harness::{Browser, free_port, skipped};
use crate::fake_google::{FakeGoogle, FakeGoogleConfig};
use crate::helpers::{expect_json, spawn_app_with};

const MAILBOX: &str = "ann.rep@gmail.com";

#[tokio::test]
async fn a_rep_connects_gmail_through_google_and_lands_on_the_new_channel() {
    if skipped("a_rep_connects_gmail_through_google_and_lands_on_the_new_channel") {
        return;
    }
    // Google sends the browser back to the redirect URI registered for the app, so the app's
    // address is chosen before it starts.
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let google = FakeGoogle::start(FakeGoogleConfig {
        redirect_uri: format!("{public}/oauth/google/callback"),
        account_email: MAILBOX.into(),
        ..FakeGoogleConfig::default()
    })
    .await;
    let defaults = FakeGoogleConfig::default();
    let bind = format!("127.0.0.1:{port}");
    let (auth, token, revoke, userinfo, api) = (
        google.auth_url(),
        google.token_url(),
        google.revoke_url(),
        google.userinfo_url(),
        google.gmail_api_url(),
    );
    let app = spawn_app_with(&[
        ("SWITCHBOARD_BIND", &bind),
        ("SWITCHBOARD_PUBLIC_URL", &public),
        ("SWITCHBOARD_GOOGLE_CLIENT_ID", &defaults.client_id),
        ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", &defaults.client_secret),
        ("SWITCHBOARD_GOOGLE_AUTH_URL", &auth),
        ("SWITCHBOARD_GOOGLE_TOKEN_URL", &token),
        ("SWITCHBOARD_GOOGLE_REVOKE_URL", &revoke),
        ("SWITCHBOARD_GOOGLE_USERINFO_URL", &userinfo),
        ("SWITCHBOARD_GOOGLE_GMAIL_API_URL", &api),
    ])
    .await;
    assert_eq!(app.address, public);
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "ann@acme.test", "rep", None).await;

    let browser = Browser::open(&app.address).await;
    browser.sign_in(&rep.token).await;
    browser.press("Connect Gmail").await;
    browser
        .wait_for_text("Gmail connected: sends as ann.rep@gmail.com.")
        .await;

    // The browser itself went to Google's consent page and came back with the code.
    let asked = google.authorization_requests();
    assert_eq!(asked.len(), 1, "one trip to Google");
    assert_eq!(asked[0].error, None, "{:?}", asked[0].query);
    let path = browser.path().await;
    let id = path
        .strip_prefix("/ui/channels/")
        .unwrap_or_else(|| panic!("back on the channel's page, not {path}"))
        .to_owned();
    assert_eq!(browser.heading_badge().await, "Active");
    let page = browser.text().await;
    assert!(
        page.contains("Gmail connection") && page.contains(MAILBOX),
        "{page}"
    );
    browser.button("Reconnect Gmail").await;
    browser.button("Disconnect").await;

    let channel = expect_json(
        app.get(&format!("/v1/channels/{id}"), &rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["kind"], "gmail");
    assert_eq!(channel["from_address"], MAILBOX);
    assert_eq!(channel["status"], "active");
    browser.close().await;
}
