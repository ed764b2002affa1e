//! Signing in to the admin pages and what protects a session: the cookie's attributes, CSRF
//! tokens and origins on every form, sessions that end with their token, headers that keep
//! pages out of caches and frames.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, spawn_app};
use crate::ui_client::{UiClient, hidden_value};

#[tokio::test]
async fn signing_in_with_a_token_opens_a_session_in_a_locked_down_cookie() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::new(&app);

    let first = ui.get("/ui/channels").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(
        first.location.as_deref(),
        Some("/ui/sign-in?next=%2Fui%2Fchannels")
    );

    let form = ui.get("/ui/sign-in?next=%2Fui%2Fchannels").await;
    form.expect("API token")
        .expect("name=\"next\" value=\"/ui/channels\"");
    let signed_in = ui
        .post(
            "/ui/sign-in",
            &[("token", &acme.admin_token), ("next", "/ui/channels")],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.html
    );
    assert_eq!(signed_in.location.as_deref(), Some("/ui/channels"));
    let cookie = signed_in
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-switchboard_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains(&acme.admin_token),
        "the token itself never goes into the cookie"
    );

    let page = ui.get("/ui/channels").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Sign out").expect_not(&acme.admin_token);
}

#[tokio::test]
async fn a_wrong_token_is_refused_next_to_the_field_and_opens_nothing() {
    let app = spawn_app().await;
    app.create_tenant("Acme").await;
    let mut ui = UiClient::new(&app);
    let page = ui.sign_in("sb_not-a-real-token").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    page.expect("id=\"f-token-error\"")
        .expect("unknown or revoked")
        .expect_not("sb_not-a-real-token");
    assert!(
        !ui.cookies.keys().any(|k| k.contains("switchboard_session")),
        "{:?}",
        ui.cookies
    );
    let empty = ui.post("/ui/sign-in", &[("token", "  ")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    empty.expect("Enter your API token");
}

#[tokio::test]
async fn the_sign_in_form_refuses_posts_that_did_not_come_from_it() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::new(&app);
    // No sign-in cookie to repeat (another site posting a token of its choosing).
    let forged = ui
        .post_raw(
            "/ui/sign-in",
            &[("token", &acme.admin_token)],
            Some("guess"),
            None,
            false,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!ui.cookies.keys().any(|k| k.contains("switchboard_session")));

    // The form's own value, but posted from another origin.
    let form = ui.get("/ui/sign-in").await;
    let value = hidden_value(&form.html, "_csrf").unwrap();
    let cross_site = ui
        .post_raw(
            "/ui/sign-in",
            &[("token", &acme.admin_token)],
            Some(&value),
            Some("https://evil.example"),
            false,
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert!(!ui.cookies.keys().any(|k| k.contains("switchboard_session")));
}

#[tokio::test]
async fn sign_in_only_returns_to_pages_of_this_site() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::new(&app);
    ui.get("/ui/sign-in?next=https%3A%2F%2Fevil.example%2F")
        .await;
    let page = ui
        .post(
            "/ui/sign-in",
            &[("token", &acme.admin_token), ("next", "//evil.example/ui")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/ui/channels"));
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_or_from_another_site_change_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    ui.get("/ui/channels").await;
    let good = ui.csrf.clone().expect("the page carries a CSRF token");

    let missing = ui.post_raw("/ui/sign-out", &[], None, None, false).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    missing.expect("reload the page");
    let wrong = ui
        .post_raw(
            "/ui/sign-out",
            &[],
            Some("x".repeat(43).as_str()),
            None,
            false,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross_site = ui
        .post_raw(
            "/ui/sign-out",
            &[],
            Some(&good),
            Some("https://evil.example"),
            false,
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    // Still signed in: none of those posts did anything.
    assert_eq!(ui.get("/ui/channels").await.status, StatusCode::OK);

    // Another user's session has another token: a token is good for its own session only.
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut other = UiClient::signed_in(&app, &rep.token).await;
    other.get("/ui/channels").await;
    assert_ne!(other.csrf.as_deref(), Some(good.as_str()));
    let replayed = other
        .post_raw("/ui/sign-out", &[], Some(&good), None, false)
        .await;
    assert_eq!(replayed.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    ui.get("/ui/channels").await;
    let stolen = ui.cookies.clone();

    let out = ui.post("/ui/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/ui/sign-in"));
    ui.follow(&out).await.expect("You are signed out.");

    // A copy of the old cookie is worth nothing now.
    let mut replay = UiClient::new(&app);
    replay.cookies = stolen;
    assert_eq!(
        replay.get("/ui/channels").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn revoking_the_token_or_disabling_the_user_ends_their_sessions_at_once() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut ui = UiClient::signed_in(&app, &rep.token).await;
    assert_eq!(ui.get("/ui/channels").await.status, StatusCode::OK);

    let res = app
        .delete(&format!("/v1/tokens/{}", rep.token_id), &acme.admin_token)
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(ui.get("/ui/channels").await.status, StatusCode::SEE_OTHER);

    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let mut ui = UiClient::signed_in(&app, &it.token).await;
    assert_eq!(ui.get("/ui/channels").await.status, StatusCode::OK);
    let res = app
        .patch(
            &format!("/v1/users/{}", it.id),
            &acme.admin_token,
            json!({"disabled": true}),
        )
        .await;
    expect_json(res, StatusCode::OK).await;
    assert_eq!(ui.get("/ui/channels").await.status, StatusCode::SEE_OTHER);
    // A disabled user's token cannot open a new session either.
    let mut again = UiClient::new(&app);
    assert_eq!(
        again.sign_in(&it.token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn pages_are_not_cached_framed_or_open_to_foreign_scripts() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    let page = ui.get("/ui/channels").await;
    let header = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        // Without Gmail configured, forms may post nowhere but here.
        "form-action 'self';",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    page.expect("lang=\"en\"")
        .expect("name=\"viewport\"")
        .expect("Skip to content");

    let css = ui.get("/ui/assets/app.css").await;
    assert_eq!(css.status, StatusCode::OK);
    let tag = css
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let again = ui
        .get_with_header("/ui/assets/app.css", "if-none-match", &tag)
        .await;
    assert_eq!(again, StatusCode::NOT_MODIFIED);
    assert_eq!(ui.get("/ui/assets/app.js").await.status, StatusCode::OK);

    let root = ui.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.location.as_deref(), Some("/ui/"));
    let missing = ui.get("/ui/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    missing.expect("Not found");
}

#[tokio::test]
async fn a_page_script_request_whose_session_ended_is_told_to_sign_in() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    ui.get("/ui/channels").await;
    let res = app
        .delete(
            &format!("/v1/tokens/{}", acme.admin_token_id),
            &acme.admin_token,
        )
        .await;
    assert!(res.status().is_success());
    let page = ui.post_fragment("/ui/sign-out", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/ui/sign-in")),
        "{:?}",
        page.location
    );
}
