//! The Suppressions page over HTTP: admins add, find and remove addresses through the same
//! rules as `/v1/suppressions`; IT reads; reps and other tenants see nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, spawn_app};
use crate::ui_client::UiClient;

async fn listed(app: &TestApp, token: &str) -> Value {
    expect_json(app.get("/v1/suppressions", token).await, StatusCode::OK).await
}

#[tokio::test]
async fn an_admin_suppresses_finds_and_removes_an_address_on_the_page() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;

    let page = ui.get("/ui/suppressions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Nobody is suppressed.")
        .expect("href=\"/ui/suppressions\"")
        .expect(">Suppress</button>")
        .expect("<code>recipient_suppressed</code>");

    let added = ui
        .post(
            "/ui/suppressions",
            &[("address", "Ghost@Example.com"), ("reason", "manual")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    ui.follow(&added)
        .await
        .expect("ghost@example.com suppressed: no more mail goes to it")
        .expect("<th scope=\"row\">ghost@example.com</th>")
        .expect("Added by an admin")
        .expect("added by hand");
    let api = listed(&app, &acme.admin_token).await;
    assert_eq!(api["suppressions"][0]["address"], "ghost@example.com");
    assert_eq!(api["suppressions"][0]["reason"], "manual");

    ui.get("/ui/suppressions").await;
    let again = ui
        .post(
            "/ui/suppressions",
            &[("address", "ghost@example.com"), ("reason", "hard_bounce")],
        )
        .await;
    ui.follow(&again)
        .await
        .expect("ghost@example.com was already on the list");
    assert_eq!(
        listed(&app, &acme.admin_token).await["suppressions"][0]["reason"],
        "manual",
        "an entry is kept as it was"
    );

    // A bad address is refused next to the field, and nothing is added.
    ui.get("/ui/suppressions").await;
    let refused = ui
        .post(
            "/ui/suppressions",
            &[("address", "not an address"), ("reason", "manual")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused
        .expect("id=\"f-address-error\"")
        .expect("value=\"not an address\"");
    let bad_reason = ui
        .post(
            "/ui/suppressions",
            &[("address", "x@example.com"), ("reason", "bounced")],
        )
        .await;
    assert_eq!(bad_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad_reason.expect("id=\"f-reason-error\"");
    assert_eq!(
        listed(&app, &acme.admin_token).await["suppressions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let found = ui.get("/ui/suppressions?address=GHOST%40example.com").await;
    found
        .expect("<th scope=\"row\">ghost@example.com</th>")
        .expect("Show all");
    ui.get("/ui/suppressions?address=ann%40example.com")
        .await
        .expect("ann@example.com is not on the list.");
    let nonsense = ui.get("/ui/suppressions?address=nonsense").await;
    assert_eq!(nonsense.status, StatusCode::OK, "{}", nonsense.html);
    nonsense.expect("id=\"f-address-error\"");

    ui.get("/ui/suppressions").await;
    let removed = ui
        .post(
            "/ui/suppressions/remove",
            &[("address", "ghost@example.com")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.html);
    ui.follow(&removed)
        .await
        .expect("ghost@example.com removed from the list: mail to it is accepted again")
        .expect("Nobody is suppressed.");
    assert!(
        listed(&app, &acme.admin_token).await["suppressions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = expect_json(
        app.get("/v1/audit?action=suppression.", &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["suppression.added", "suppression.removed"]);
}

#[tokio::test]
async fn the_page_shows_a_hundred_entries_and_links_to_older_ones() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    for n in 0..101 {
        let added = app
            .post(
                "/v1/suppressions",
                &acme.admin_token,
                json!({"address": format!("person{n:03}@example.com"), "reason": "unsubscribed"}),
            )
            .await;
        assert_eq!(added.status(), StatusCode::CREATED);
    }
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    let first = ui.get("/ui/suppressions").await;
    let rows = first.html.matches("<th scope=\"row\">").count();
    assert_eq!(rows, 100, "one page");
    first
        .expect("person100@example.com")
        .expect_not("person000@example.com")
        .expect("Unsubscribed");
    let start = first
        .html
        .find("/ui/suppressions?before=")
        .expect("a link to older entries");
    let href: String = first.html[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let older = ui.get(&href).await;
    assert_eq!(older.status, StatusCode::OK, "{}", older.html);
    assert_eq!(older.html.matches("<th scope=\"row\">").count(), 1);
    older
        .expect("person000@example.com")
        .expect_not("Older entries");
}

#[tokio::test]
async fn it_reads_the_list_reps_and_other_tenants_see_nothing_of_it() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let added = app
        .post(
            "/v1/suppressions",
            &acme.admin_token,
            json!({"address": "secret-prospect@example.com"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);

    let mut it_ui = UiClient::signed_in(&app, &it.token).await;
    let page = it_ui.get("/ui/suppressions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("secret-prospect@example.com")
        .expect_not(">Suppress</button>")
        .expect_not(">Remove</button>");
    let forged = it_ui
        .post(
            "/ui/suppressions/remove",
            &[("address", "secret-prospect@example.com")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    let forged_add = it_ui
        .post("/ui/suppressions", &[("address", "ann@example.com")])
        .await;
    assert_eq!(
        forged_add.status,
        StatusCode::FORBIDDEN,
        "{}",
        forged_add.html
    );
    assert_eq!(
        listed(&app, &acme.admin_token).await["suppressions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut rep_ui = UiClient::signed_in(&app, &rep.token).await;
    rep_ui
        .get("/ui/channels")
        .await
        .expect_not("href=\"/ui/suppressions\"");
    assert_eq!(
        rep_ui.get("/ui/suppressions").await.status,
        StatusCode::FORBIDDEN
    );

    let mut other = UiClient::signed_in(&app, &globex.admin_token).await;
    other
        .get("/ui/suppressions")
        .await
        .expect("Nobody is suppressed.")
        .expect_not("secret-prospect");
    let probe = other
        .post(
            "/ui/suppressions/remove",
            &[("address", "secret-prospect@example.com")],
        )
        .await;
    other
        .follow(&probe)
        .await
        .expect("secret-prospect@example.com was not on the list");
    assert_eq!(
        listed(&app, &acme.admin_token).await["suppressions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "another tenant's remove touches nothing"
    );
}
