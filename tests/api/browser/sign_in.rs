//! Flow 1: signing in with a token, a wrong token, signing out.

use crate::browser::harness::{Browser, skipped};
use crate::helpers::spawn_app;

#[tokio::test]
async fn an_admin_signs_in_with_a_token_and_signing_out_closes_the_pages() {
    if skipped("an_admin_signs_in_with_a_token_and_signing_out_closes_the_pages") {
        return;
    }
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let browser = Browser::open(&app.address).await;

    // A bookmark to the channels sends a stranger to sign in first, and back afterwards.
    browser.goto("/ui/channels").await;
    browser.wait_for_path("/ui/sign-in").await;
    browser.wait_for_text("Sign in to Switchboard").await;
    browser.screenshot("sign-in").await;

    browser.fill("API token", "sb_not-a-real-token").await;
    browser.press("Sign in").await;
    browser.wait_for_text("unknown or revoked").await;
    // The error sits in the token field's own box, tied to the input for screen readers.
    let error = browser
        .find("//div[contains(@class,'field')][.//input[@name='token']]/p[contains(@class,'field-error')]")
        .await;
    assert!(error.text().await.unwrap().contains("unknown or revoked"));
    let error_id = error.attr("id").await.unwrap().unwrap();
    let described = browser
        .field("API token")
        .await
        .attr("aria-describedby")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(described.contains(&error_id), "the input names its error");
    assert!(browser.path().await.starts_with("/ui/sign-in"));

    browser.fill("API token", &acme.admin_token).await;
    browser.press("Sign in").await;
    browser.wait_for_path("/ui/channels").await;
    let page = browser
        .wait_until("the channels page", |t| t.contains("Signed in as admin"))
        .await;
    assert!(
        !page.contains(&acme.admin_token),
        "the token is never shown"
    );

    browser.press("Sign out").await;
    browser.wait_for_path("/ui/sign-in").await;
    browser.wait_for_text("You are signed out.").await;

    browser.goto("/ui/channels").await;
    assert_eq!(
        browser.wait_for_path("/ui/sign-in").await,
        "/ui/sign-in?next=%2Fui%2Fchannels"
    );
    browser.wait_for_text("API token").await;
    browser.close().await;
}
