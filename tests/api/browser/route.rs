//! Flow 6: route explain. A rep asks which channel would carry mail from their address now,
//! and sees the tenant relay chosen and why their own (disabled) mailbox was skipped.

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::harness::{Browser, skipped};
use crate::helpers::expect_json;
use crate::messages::{REP, world_with};

#[tokio::test]
async fn a_rep_sees_which_channel_carries_their_mail_and_why_the_others_were_skipped() {
    if skipped("a_rep_sees_which_channel_carries_their_mail_and_why_the_others_were_skipped") {
        return;
    }
    let w = world_with(&[]).await;
    let admin = &w.acme.admin_token;
    // The tenant's relay for acme.test, mail falls back to it, and the rep's own mailbox is
    // switched off.
    expect_json(
        w.app
            .post(
                "/v1/channels",
                admin,
                json!({"name": "Acme relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": w.server.port(),
                                "security": "starttls", "auth": "login", "username": "relay",
                                "password": "Canary-Relay-Pw-0a9", "ca_pem": w.server.ca_pem()}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        w.app
            .patch("/v1/tenant", admin, json!({"fallback_policy": "fallback"}))
            .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                admin,
                json!({"disabled": true}),
            )
            .await,
        StatusCode::OK,
    )
    .await;

    let browser = Browser::open(&w.app.address).await;
    browser.sign_in(&w.rep.token).await;
    browser.follow("Route explain").await;
    browser.wait_for_path("/ui/route").await;
    browser.fill("From address", REP).await;
    browser.press("Explain").await;
    let page = browser
        .wait_until("the decision", |t| t.contains("Channels considered"))
        .await;
    assert!(
        browser.path().await.starts_with("/ui/route?from="),
        "the answer has an address of its own"
    );
    let verdict = browser
        .find("//div[contains(@class,'decision')]/div[contains(@class,'notice')]")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        verdict.contains("Would be sent through Acme relay"),
        "{verdict}\n{page}"
    );
    let candidate = |name: &'static str| {
        let browser = &browser;
        async move {
            browser
                .find(&format!(
                    "//ol[contains(@class,'candidates')]/li[.//a[normalize-space()='{name}']]"
                ))
                .await
                .text()
                .await
                .unwrap()
        }
    };
    let mailbox = candidate("My mailbox").await;
    assert!(
        mailbox.contains("Skipped") && mailbox.contains("disabled"),
        "{mailbox}"
    );
    let relay = candidate("Acme relay").await;
    assert!(relay.contains("Selected"), "{relay}");
    browser.screenshot("route-explain").await;
    browser.close().await;
}
