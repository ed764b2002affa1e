//! The people pages: an admin onboards a rep without curl (team, user, sign-in token), the
//! token is shown once and nowhere after, everyone manages their own tokens, and the pages
//! refuse what the API refuses.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, TestTenant, expect_json, spawn_app};
use crate::ui_client::{Page, UiClient};

/// The token in the "New token" box of a page that just issued one.
fn issued_token(page: &Page) -> String {
    let html = &page.html;
    let input = html
        .find("id=\"f-issued-token\"")
        .unwrap_or_else(|| panic!("no issued token on the page:\n{html}"));
    let start = input + html[input..].find("value=\"").unwrap() + "value=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

/// The tenant's users as the API lists them.
async fn api_users(app: &TestApp, acme: &TestTenant) -> Vec<Value> {
    let list = expect_json(
        app.get("/v1/users", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    list.as_array().unwrap().clone()
}

async fn api_user(app: &TestApp, acme: &TestTenant, email: &str) -> Option<Value> {
    api_users(app, acme)
        .await
        .into_iter()
        .find(|u| u["email"] == email)
}

/// The admin adds a rep through the people page; returns the rep's id.
async fn add_rep(admin: &mut UiClient, email: &str, team: &str) -> String {
    admin.get("/ui/people").await;
    let added = admin
        .post(
            "/ui/people",
            &[
                ("email", email),
                ("name", "Rita Rep"),
                ("role", "rep"),
                ("team_id", team),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let location = added.location.clone().unwrap();
    let page = admin.follow(&added).await;
    page.expect(&format!("{email} added as Rep"))
        .expect("Issue a token");
    location.trim_start_matches("/ui/people/").to_owned()
}

#[tokio::test]
async fn an_admin_adds_a_team_and_a_rep_in_the_pages_and_the_api_lists_them() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut admin = UiClient::signed_in(&app, &acme.admin_token).await;

    let page = admin.get("/ui/people").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("<h1>People</h1>")
        .expect("Add a user")
        .expect("Add a team")
        .expect("admin@acme.test")
        .expect("Sends mail as themselves")
        .expect("href=\"/ui/people\" aria-current=\"page\"");

    let team = admin.post("/ui/teams", &[("name", "West")]).await;
    assert_eq!(team.status, StatusCode::SEE_OTHER, "{}", team.html);
    assert_eq!(team.location.as_deref(), Some("/ui/people"));
    admin
        .follow(&team)
        .await
        .expect("Team “West” added.")
        .expect("<td>West</td>");
    let teams = expect_json(
        app.get("/v1/teams", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let west = teams[0]["id"].as_str().unwrap().to_owned();

    let rep = add_rep(&mut admin, "rep@acme.test", &west).await;
    let listed = api_user(&app, &acme, "rep@acme.test")
        .await
        .expect("the API lists the rep");
    assert_eq!(listed["id"], rep.as_str());
    assert_eq!(listed["role"], "rep");
    assert_eq!(listed["name"], "Rita Rep");
    assert_eq!(listed["team_id"], west.as_str());
    assert_eq!(listed["disabled"], false);

    let people = admin.get("/ui/people").await;
    people
        .expect(&format!("href=\"/ui/people/{rep}\""))
        .expect("rep@acme.test")
        .expect("<td>1</td>");
    let page = admin.get(&format!("/ui/people/{rep}")).await;
    page.expect("Rita Rep")
        .expect("<dd>West</dd>")
        .expect("Save role and team")
        .expect("Disable user");

    // The admin moves the rep out of the team and makes them IT, as PATCH /v1/users would.
    let changed = admin
        .post(
            &format!("/ui/people/{rep}"),
            &[("role", "it"), ("team_id", "")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
    admin.follow(&changed).await.expect("Role and team saved.");
    let listed = api_user(&app, &acme, "rep@acme.test").await.unwrap();
    assert_eq!(listed["role"], "it");
    assert_eq!(listed["team_id"], Value::Null);
}

#[tokio::test]
async fn a_token_issued_in_the_page_is_shown_once_and_signs_in_as_the_rep() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut admin = UiClient::signed_in(&app, &acme.admin_token).await;
    let rep = add_rep(&mut admin, "rep@acme.test", "").await;

    let issued = admin
        .post(&format!("/ui/people/{rep}/tokens"), &[("label", "laptop")])
        .await;
    assert_eq!(
        issued.status,
        StatusCode::OK,
        "answered with the page itself"
    );
    assert_eq!(issued.location, None);
    issued
        .expect("Copy it now: it is not shown again.")
        .expect("It signs in to these pages and calls the API as rep@acme.test")
        .expect("autocomplete=\"off\"")
        .expect("readonly");
    let token = issued_token(&issued);
    assert!(token.starts_with("sb_"), "{token}");
    assert!(
        issued.set_cookies.iter().all(|c| !c.contains(&token)),
        "{:?}",
        issued.set_cookies
    );
    assert_eq!(
        issued
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    let me = expect_json(app.get("/v1/me", &token).await, StatusCode::OK).await;
    assert_eq!(me["email"], "rep@acme.test");
    assert_eq!(me["user_id"], rep.as_str());

    // Shown once: no later page has it, nor any cookie.
    for path in [format!("/ui/people/{rep}"), "/ui/people".to_owned()] {
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        page.expect_not(&token).expect_not("Copy it now");
        assert!(page.set_cookies.iter().all(|c| !c.contains(&token)));
    }
    admin
        .get(&format!("/ui/people/{rep}"))
        .await
        .expect("laptop");
    assert!(admin.cookies.values().all(|v| !v.contains(&token)));

    let mut as_rep = UiClient::signed_in(&app, &token).await;
    let own = as_rep.get(&format!("/ui/people/{rep}")).await;
    assert_eq!(own.status, StatusCode::OK);
    own.expect("Rita Rep").expect("(you)").expect_not(&token);
}

#[tokio::test]
async fn a_rep_sees_only_their_own_page_and_manages_their_own_tokens() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut ui = UiClient::signed_in(&app, &rep.token).await;

    let people = ui.get("/ui/people").await;
    assert_eq!(people.status, StatusCode::SEE_OTHER);
    let own_path = format!("/ui/people/{}", rep.id);
    assert_eq!(people.location.as_deref(), Some(own_path.as_str()));
    let own = ui.get(&own_path).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.html);
    own.expect("Sign-in tokens")
        .expect("Issue token")
        .expect("It is the token you signed in with, so this signs you out at once.")
        .expect_not("Save role and team")
        .expect_not("Disable user")
        .expect_not("All people")
        .expect("href=\"/ui/people\"");

    // Someone else's page: refused as GET /v1/users/{id} refuses a rep (403, the API's words).
    let other = ui.get(&format!("/ui/people/{}", acme.admin_id)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    other
        .expect("may not read other users")
        .expect_not("admin@acme.test");
    let unknown = ui
        .get("/ui/people/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    // Nor another user's tokens.
    ui.get(&own_path).await;
    let forged = ui
        .post(
            &format!("/ui/people/{}/tokens", acme.admin_id),
            &[("label", "mine now")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let revoke_admin = ui
        .post(&format!("/ui/tokens/{}/revoke", acme.admin_token_id), &[])
        .await;
    assert_eq!(revoke_admin.status, StatusCode::FORBIDDEN);
    expect_json(app.get("/v1/me", &acme.admin_token).await, StatusCode::OK).await;

    // Their own: issue one for the phone, then revoke it.
    ui.get(&own_path).await;
    let issued = ui
        .post(&format!("{own_path}/tokens"), &[("label", "phone")])
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.html);
    let phone = issued_token(&issued);
    expect_json(app.get("/v1/me", &phone).await, StatusCode::OK).await;
    // Only the token this browser signed in with warns that revoking it signs you out.
    assert_eq!(
        issued
            .html
            .matches("It is the token you signed in with, so this signs you out at once.")
            .count(),
        1,
        "{}",
        issued.html
    );
    issued.expect("a program calling the API) stops working at once.");
    let tokens = expect_json(
        app.get(&format!("/v1/users/{}/tokens", rep.id), &rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    let phone_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "phone")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = ui.post(&format!("/ui/tokens/{phone_id}/revoke"), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.html);
    assert_eq!(revoked.location.as_deref(), Some(own_path.as_str()));
    let after = ui.follow(&revoked).await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "still signed in with the first token"
    );
    after.expect("Token “phone” revoked.").expect("Revoked ");
    assert_eq!(
        app.get("/v1/me", &phone).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Revoking the token this session was opened with signs the rep out.
    let revoked = ui
        .post(&format!("/ui/tokens/{}/revoke", rep.token_id), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let gone = ui.follow(&revoked).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(gone.location.unwrap().starts_with("/ui/sign-in"));
}

#[tokio::test]
async fn disabling_a_rep_in_the_page_ends_their_session_at_once() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut as_rep = UiClient::signed_in(&app, &rep.token).await;
    let own = format!("/ui/people/{}", rep.id);
    assert_eq!(as_rep.get(&own).await.status, StatusCode::OK);

    let mut admin = UiClient::signed_in(&app, &acme.admin_token).await;
    admin
        .get(&own)
        .await
        .expect("data-confirm=\"Disable rep@acme.test? Their page sessions and every one of their tokens stop working at once");
    let disabled = admin
        .post(&format!("{own}/status"), &[("disabled", "true")])
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.html);
    admin
        .follow(&disabled)
        .await
        .expect("rep@acme.test disabled")
        .expect("Enable user")
        .expect("Enable this user before issuing them a token.");

    let next = as_rep.get(&own).await;
    assert_eq!(next.status, StatusCode::SEE_OTHER);
    assert!(
        next.location.as_deref().unwrap().starts_with("/ui/sign-in"),
        "{:?}",
        next.location
    );
    assert_eq!(
        app.get("/v1/me", &rep.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let listed = api_user(&app, &acme, "rep@acme.test").await.unwrap();
    assert_eq!(listed["disabled"], true);

    // Issuing for a disabled user is refused with the API's words, above the form.
    admin.get(&own).await;
    let refused = admin
        .post(&format!("{own}/tokens"), &[("label", "x")])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    refused
        .expect("the user is disabled")
        .expect_not("Copy it now");

    // The last admin cannot disable themself: the API's refusal, on the page.
    let me = format!("/ui/people/{}", acme.admin_id);
    admin.get(&me).await;
    let last = admin
        .post(&format!("{me}/status"), &[("disabled", "true")])
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    last.expect("last active admin");
}

#[tokio::test]
async fn a_taken_address_is_refused_next_to_the_email_field_and_nothing_is_created() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let before = api_users(&app, &acme).await.len();
    let mut admin = UiClient::signed_in(&app, &acme.admin_token).await;
    admin.get("/ui/people").await;

    let page = admin
        .post(
            "/ui/people",
            &[
                ("email", "REP@acme.test"),
                ("name", "Second Rita"),
                ("role", "rep"),
                ("team_id", ""),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect("id=\"f-email-error\"")
        .expect("already exists")
        .expect("href=\"#f-email\"")
        .expect("value=\"Second Rita\"");
    assert_eq!(api_users(&app, &acme).await.len(), before);

    let bad = admin
        .post(
            "/ui/people",
            &[("email", "not an address"), ("name", "N"), ("role", "rep")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad.expect("id=\"f-email-error\"");
    let role = admin
        .post(
            "/ui/people",
            &[("email", "new@acme.test"), ("name", "N"), ("role", "owner")],
        )
        .await;
    assert_eq!(role.status, StatusCode::UNPROCESSABLE_ENTITY);
    role.expect("id=\"f-role-error\"");
    let team = admin.post("/ui/teams", &[("name", "")]).await;
    assert_eq!(team.status, StatusCode::UNPROCESSABLE_ENTITY);
    team.expect("id=\"f-team-name-error\"");
    assert_eq!(api_users(&app, &acme).await.len(), before);
}

#[tokio::test]
async fn a_reps_forged_form_and_a_form_without_csrf_create_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let before = api_users(&app, &acme).await.len();

    // A rep's page has no "Add a user"; posting it anyway is refused by the API's check.
    let mut as_rep = UiClient::signed_in(&app, &rep.token).await;
    as_rep.get(&format!("/ui/people/{}", rep.id)).await;
    let forged = as_rep
        .post(
            "/ui/people",
            &[
                ("email", "mallory@acme.test"),
                ("name", "Mallory"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    forged.expect("may not create or change users");
    let promote = as_rep
        .post(&format!("/ui/people/{}", rep.id), &[("role", "admin")])
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let team = as_rep.post("/ui/teams", &[("name", "Mine")]).await;
    assert_eq!(team.status, StatusCode::FORBIDDEN);

    // An admin's browser made to post without the session's CSRF token.
    let mut admin = UiClient::signed_in(&app, &acme.admin_token).await;
    admin.get("/ui/people").await;
    let fields = [
        ("email", "csrf@acme.test"),
        ("name", "C"),
        ("role", "admin"),
    ];
    let missing = admin
        .post_raw("/ui/people", &fields, None, None, false)
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let good = admin.csrf.clone().unwrap();
    let cross_site = admin
        .post_raw(
            "/ui/people",
            &fields,
            Some(&good),
            Some("https://evil.example"),
            false,
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let issue = admin
        .post_raw(
            &format!("/ui/people/{}/tokens", rep.id),
            &[],
            None,
            None,
            false,
        )
        .await;
    assert_eq!(issue.status, StatusCode::FORBIDDEN);

    assert_eq!(api_users(&app, &acme).await.len(), before);
    assert_eq!(
        expect_json(
            app.get(&format!("/v1/users/{}/tokens", rep.id), &acme.admin_token)
                .await,
            StatusCode::OK
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        1,
        "no token was issued"
    );
    assert!(api_user(&app, &acme, "rep@acme.test").await.unwrap()["role"] == "rep");
}
