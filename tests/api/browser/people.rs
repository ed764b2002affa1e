//! Flow 7: onboarding without curl. An admin adds a team and a rep in the people page, issues
//! the rep a sign-in token on the rep's page, reads it off the page, signs out, and signs in
//! with it as the rep.

use crate::browser::harness::{Browser, skipped};
use crate::helpers::spawn_app;

#[tokio::test]
async fn an_admin_onboards_a_rep_who_signs_in_with_the_token_from_the_page() {
    if skipped("an_admin_onboards_a_rep_who_signs_in_with_the_token_from_the_page") {
        return;
    }
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let browser = Browser::open(&app.address).await;
    browser.sign_in(&acme.admin_token).await;

    browser.follow("People").await;
    browser.wait_for_path("/ui/people").await;
    browser.wait_for_text("Add a user").await;
    browser.fill("Team name", "West").await;
    browser.press("Add team").await;
    browser.wait_for_text("Team “West” added.").await;

    browser.fill("Email address", "rita@acme.test").await;
    browser.fill("Name", "Rita Rep").await;
    browser.choose("Role", "Rep").await;
    browser.choose("Team", "West").await;
    browser.press("Add user").await;
    browser.wait_for_text("rita@acme.test added as Rep").await;
    let rep_page = browser.wait_for_path("/ui/people/").await;

    // The people page lists the rep; the admin opens the rep's page from it.
    browser.follow("People").await;
    browser.wait_for_text("rita@acme.test").await;
    browser.screenshot("people").await;
    browser.follow("rita@acme.test").await;
    browser.wait_for_path(&rep_page).await;
    browser.wait_for_text("Sign-in tokens").await;

    browser.fill("Label", "laptop").await;
    browser.press("Issue token").await;
    browser
        .wait_for_text("Copy it now: it is not shown again.")
        .await;
    let token = browser.value_of("New token").await;
    assert!(token.starts_with("sb_"), "{token}");
    let readonly = browser
        .field("New token")
        .await
        .prop("readOnly")
        .await
        .unwrap();
    assert_eq!(readonly.as_deref(), Some("true"));
    browser.screenshot("person-token").await;

    // Shown once: the same page loaded again has the token's label, not the token.
    browser.goto(&rep_page).await;
    let again = browser
        .wait_until("the rep's page", |t| t.contains("laptop"))
        .await;
    assert!(!again.contains(&token), "the token is shown only once");

    browser.sign_out().await;
    browser.sign_in(&token).await;
    browser.wait_for_text("Signed in as rep").await;
    browser.follow("People").await;
    browser.wait_for_path(&rep_page).await;
    let own = browser
        .wait_until("the rep's own page", |t| t.contains("Rita Rep"))
        .await;
    assert!(
        !own.contains("Add a user") && !own.contains(&token),
        "{own}"
    );
    browser.close().await;
}
