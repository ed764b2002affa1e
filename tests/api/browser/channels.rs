//! Flows 2 and 3: an admin adds an SMTP relay from a provider preset, tested before it is
//! saved; a rep tests their mailbox in place, and sees the login fail with its hint once the
//! password changed at the provider.

use reqwest::StatusCode;

use crate::browser::harness::{Browser, skipped};
use crate::helpers::{expect_json, spawn_app};
use crate::messages::{PASSWORD, REP, world_with};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

const RELAY_USER: &str = "SMTP_Injection";
const RELAY_KEY: &str = "Canary-SparkPost-Key-4d1";

#[tokio::test]
async fn an_admin_adds_a_relay_from_the_sparkpost_preset_tested_before_it_is_saved() {
    if skipped("an_admin_adds_a_relay_from_the_sparkpost_preset_tested_before_it_is_saved") {
        return;
    }
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    // SparkPost's SMTP endpoint, played by a local server with SparkPost's fixed username.
    let relay = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(RELAY_USER.to_owned(), RELAY_KEY.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    let browser = Browser::open(&app.address).await;
    browser.sign_in(&acme.admin_token).await;

    browser.follow("Add SMTP channel").await;
    browser.wait_for_path("/ui/channels/new").await;
    // Choosing a provider reloads the form filled in, with what to watch out for.
    browser.choose("Provider", "SparkPost").await;
    browser
        .wait_for_path("/ui/channels/new?preset=sparkpost")
        .await;
    let guidance = browser
        .find("//div[contains(@class,'guidance')]")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        guidance.contains("SMTP_Injection") && guidance.contains("Send via SMTP"),
        "{guidance}"
    );
    assert_eq!(
        browser.value_of("Server host name").await,
        "smtp.sparkpostmail.com"
    );
    assert_eq!(browser.value_of("Port").await, "587");
    assert_eq!(browser.value_of("Username").await, RELAY_USER);
    let domain_scope = browser
        .find("//input[@name='scope' and @value='domain']")
        .await;
    assert!(
        domain_scope.is_selected().await.unwrap(),
        "a relay is domain-scoped"
    );
    browser.screenshot("channel-new").await;

    // The test server stands in for smtp.sparkpostmail.com, with a private CA.
    browser.fill("Name", "Acme relay").await;
    browser.fill("Domains", "acme.test").await;
    browser.fill("Server host name", "localhost").await;
    browser.fill("Port", &relay.port().to_string()).await;
    browser.fill("Password or API key", RELAY_KEY).await;
    browser
        .fill("Custom CA certificate (PEM)", &relay.ca_pem())
        .await;
    assert!(
        browser
            .field("Test before saving")
            .await
            .is_selected()
            .await
            .unwrap(),
        "a new channel is tested before it is saved unless the admin says otherwise"
    );
    browser.press("Save channel").await;

    browser.wait_for_text("Channel created and tested").await;
    let path = browser.path().await;
    let id = path
        .strip_prefix("/ui/channels/")
        .unwrap_or_else(|| panic!("on the channel's page, not {path}"))
        .to_owned();
    assert_eq!(browser.heading_badge().await, "Active");
    let page = browser.text().await;
    assert!(
        page.contains("SparkPost") && page.contains("localhost:"),
        "{page}"
    );
    assert!(!page.contains(RELAY_KEY), "the key is never shown");

    // The world agrees: the relay saw one good login, the API shows a verified channel.
    let logins = relay.auth_attempts();
    assert!(
        logins.len() == 1 && logins[0].success && logins[0].username == RELAY_USER,
        "{logins:?}"
    );
    let channel = expect_json(
        app.get(&format!("/v1/channels/{id}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["name"], "Acme relay");
    assert_eq!(channel["status"], "active");
    assert_eq!(channel["scope"], "domain");
    assert!(channel["last_verified_at"].is_string(), "{channel}");

    browser.follow("← All channels").await;
    browser.wait_for_path("/ui/channels").await;
    browser.wait_for_text("Acme relay").await;
    browser.screenshot("channels").await;

    // What happened is on the record, and the Domains page shows the proven domain it relays.
    browser.follow("Audit").await;
    browser.wait_for_path("/ui/audit").await;
    browser.wait_for_text("channel.created").await;
    browser.screenshot("audit").await;
    browser.follow("Domains").await;
    browser.wait_for_path("/ui/domains").await;
    browser.wait_for_text("_switchboard.acme.test").await;
    browser.wait_for_text("Verified").await;
    browser.screenshot("domains").await;
    browser.follow("Settings").await;
    browser.wait_for_path("/ui/settings").await;
    assert_eq!(browser.value_of("Tenant name").await, "Acme");
    browser.screenshot("settings").await;
    browser.close().await;
}

#[tokio::test]
async fn a_rep_tests_the_mailbox_in_place_and_sees_a_changed_password_refused_with_a_hint() {
    if skipped("a_rep_tests_the_mailbox_in_place_and_sees_a_changed_password_refused_with_a_hint") {
        return;
    }
    let w = world_with(&[]).await;
    let browser = Browser::open(&w.app.address).await;
    browser.sign_in(&w.rep.token).await;
    browser.follow("My mailbox").await;
    let path = browser
        .wait_for_path(&format!("/ui/channels/{}", w.channel))
        .await;

    browser.mark_document().await;
    browser.press("Test connection").await;
    let result = browser
        .wait_until("the test's stages", |t| {
            t.contains("Connection and login work")
        })
        .await;
    let stages = browser.text_of("test-result").await;
    for stage in [
        "Connect: passed",
        "TLS: passed",
        "Greeting (EHLO): passed",
        "Login: passed",
    ] {
        assert!(stages.contains(stage), "{stage} missing in:\n{stages}");
    }
    assert!(
        stages.contains("235"),
        "the server's reply is shown: {stages}"
    );
    assert!(
        browser.same_document().await && browser.path().await == path,
        "the result came in place, without a page load:\n{result}"
    );
    browser.screenshot("channel-test").await;

    // IT changes the mailbox password at the provider.
    w.server.set_password(REP, "Canary-Changed-At-Provider-2b7");
    browser.press("Test connection").await;
    browser
        .wait_until("the failed login", |t| t.contains("Login refused"))
        .await;
    let failed = browser
        .find("//*[@id='test-result']//li[contains(@class,'failed')]")
        .await
        .text()
        .await
        .unwrap();
    assert!(failed.starts_with("Login: failed"), "{failed}");
    assert!(failed.contains("535"), "the server's reply: {failed}");
    assert!(
        failed.contains("username or password rejected"),
        "the hint: {failed}"
    );
    assert!(browser.same_document().await, "still no page load");
    assert!(!browser.text().await.contains(PASSWORD));
    browser.close().await;
}
