//! `/v1/webhooks`: admins and IT register URLs for signed event notifications; the secret is
//! shown once; URLs that would reach the platform's own network are refused; the delivery
//! log pages newest first.

use diesel::RunQueryDsl;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard::domain::{TenantId, WebhookId};
use switchboard::startup::open_store_and_vault;
use switchboard::store::webhooks;

use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, spawn_app, spawn_app_with};
use crate::vault::assert_nowhere_in_database;

/// A receiver on loopback, which the test apps allow (`SWITCHBOARD_OUTBOUND_ALLOW`).
const URL: &str = "http://127.0.0.1:9/hooks/switchboard";

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    expect_json(
        app.post("/v1/webhooks", token, body).await,
        StatusCode::CREATED,
    )
    .await
}

async fn create_simple(app: &TestApp, token: &str) -> Value {
    create(
        app,
        token,
        json!({"url": URL, "events": ["message.failed"]}),
    )
    .await
}

async fn audit_actions(app: &TestApp, tenant: &TestTenant) -> (Vec<String>, String) {
    let events = expect_json(
        app.get("/v1/audit?action=webhook.", &tenant.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let actions = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    (actions, events.to_string())
}

#[tokio::test]
async fn admins_and_it_manage_webhooks_and_reps_may_not() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;

    let by_admin = create(
        &app,
        &acme.admin_token,
        json!({"url": URL, "events": ["message.failed", "channel.failing", "message.failed"],
               "description": " CRM alerts "}),
    )
    .await;
    assert_eq!(by_admin["url"], URL);
    assert_eq!(
        by_admin["events"],
        json!(["channel.failing", "message.failed"]),
        "sorted, once each"
    );
    assert_eq!(by_admin["description"], "CRM alerts");
    assert_eq!(by_admin["enabled"], true);
    let by_it = create_simple(&app, &it.token).await;
    let (admin_id, it_id) = (
        by_admin["id"].as_str().unwrap(),
        by_it["id"].as_str().unwrap(),
    );

    let list = expect_json(app.get("/v1/webhooks", &it.token).await, StatusCode::OK).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [admin_id, it_id]);

    // IT changes the admin's webhook: events replaced, description cleared, disabled.
    let changed = expect_json(
        app.patch(
            &format!("/v1/webhooks/{admin_id}"),
            &it.token,
            json!({"events": ["quota.near_limit"], "description": null, "enabled": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["events"], json!(["quota.near_limit"]));
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["url"], URL, "fields not given stay");
    let read = expect_json(
        app.get(&format!("/v1/webhooks/{admin_id}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, changed);

    // The admin deletes IT's webhook; it is gone.
    let res = app
        .delete(&format!("/v1/webhooks/{it_id}"), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get(&format!("/v1/webhooks/{it_id}"), &it.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.delete(&format!("/v1/webhooks/{it_id}"), &it.token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A rep may do none of it, not even look.
    let one = format!("/v1/webhooks/{admin_id}");
    for res in [
        app.post(
            "/v1/webhooks",
            &rep.token,
            json!({"url": URL, "events": ["message.failed"]}),
        )
        .await,
        app.get("/v1/webhooks", &rep.token).await,
        app.get(&one, &rep.token).await,
        app.patch(&one, &rep.token, json!({"enabled": true})).await,
        app.delete(&one, &rep.token).await,
        app.post(&format!("{one}/rotate-secret"), &rep.token, json!({}))
            .await,
        app.get(&format!("{one}/deliveries"), &rep.token).await,
    ] {
        let problem = expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("manage webhooks"),
            "{problem}"
        );
    }
    let list = expect_json(
        app.get("/v1/webhooks", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["enabled"], false, "the rep changed nothing");

    let (actions, _) = audit_actions(&app, &acme).await;
    assert_eq!(
        actions,
        [
            "webhook.created",
            "webhook.created",
            "webhook.updated",
            "webhook.deleted"
        ]
    );
}

#[tokio::test]
async fn the_secret_is_shown_once_and_stored_only_sealed() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    // A URL can carry a token of the receiver's: it is no more for the audit trail than the
    // signing secret is.
    let url_token = format!("Canary-{}", uuid::Uuid::new_v4().simple());
    let url = format!("http://127.0.0.1:9/hooks/{url_token}?key={url_token}");
    let created = create(
        &app,
        &acme.admin_token,
        json!({"url": url, "events": ["channel.needs_reauth"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(secret.len(), "whsec_".len() + 43, "{secret}");

    let rotated = expect_json(
        app.post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &acme.admin_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"), "{new_secret}");
    assert_ne!(new_secret, secret);

    // The delivery worker signs with the new secret only.
    let tenant: TenantId = acme.id.parse().unwrap();
    let webhook: WebhookId = id.parse().unwrap();
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();
    let signing = store
        .run_blocking(|conn| webhooks::signing_secret(conn, &vault, tenant, webhook))
        .unwrap()
        .expect("a signing secret");
    assert_eq!(signing.expose_secret(), new_secret);

    // Never again in a response, in the audit trail or in the database's bytes.
    let one = app
        .get(&format!("/v1/webhooks/{id}"), &acme.admin_token)
        .await
        .text()
        .await
        .unwrap();
    let list = app
        .get("/v1/webhooks", &acme.admin_token)
        .await
        .text()
        .await
        .unwrap();
    assert!(one.contains(&id) && list.contains(&id), "{one} {list}");
    let all_audit = expect_json(
        app.get("/v1/audit", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await
    .to_string();
    for text in [&one, &list, &all_audit] {
        assert!(!text.contains("whsec_"), "a secret is shown: {text}");
        assert!(!text.contains("\"secret\""), "{text}");
    }
    assert!(
        !all_audit.contains(&url_token),
        "the URL's token: {all_audit}"
    );
    let (actions, audit) = audit_actions(&app, &acme).await;
    assert_eq!(actions, ["webhook.created", "webhook.secret_rotated"]);
    assert!(audit.contains("127.0.0.1"), "the host is recorded: {audit}");
    for s in [&secret, &new_secret] {
        assert_nowhere_in_database(&app, s);
    }

    // Deleting the webhook deletes its sealed secret.
    let res = app
        .delete(&format!("/v1/webhooks/{id}"), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let gone = store
        .run_blocking(|conn| webhooks::signing_secret(conn, &vault, tenant, webhook))
        .unwrap();
    assert!(gone.is_none());
}

#[tokio::test]
async fn urls_that_would_reach_the_platforms_network_are_refused() {
    // No allow list: loopback and private addresses are out of bounds.
    let app = spawn_app_with(&[("SWITCHBOARD_OUTBOUND_ALLOW", "")]).await;
    let acme = app.create_tenant("Acme").await;
    let body = |url: &str| json!({"url": url, "events": ["message.failed"]});

    let problem = expect_problem(
        app.post(
            "/v1/webhooks",
            &acme.admin_token,
            body("http://hooks.example.com/x"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "url");
    assert!(
        problem["detail"].as_str().unwrap().contains("https://"),
        "{problem}"
    );

    for literal in [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/",
    ] {
        let problem = expect_problem(
            app.post("/v1/webhooks", &acme.admin_token, body(literal))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert_eq!(problem["field"], "url", "{literal}: {problem}");
    }

    // A name is judged by what it resolves to.
    let problem = expect_problem(
        app.post(
            "/v1/webhooks",
            &acme.admin_token,
            body("https://localhost/"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "outbound_address_refused",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("loopback") && detail.contains("SWITCHBOARD_OUTBOUND_ALLOW"),
        "{problem}"
    );
    expect_problem(
        app.post(
            "/v1/webhooks",
            &acme.admin_token,
            body("https://no-such-host.invalid/hook"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "url_unresolvable",
    )
    .await;

    let list = expect_json(
        app.get("/v1/webhooks", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]), "nothing was saved");
}

#[tokio::test]
async fn a_changed_url_is_checked_as_at_creation() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let id = create_simple(&app, &acme.admin_token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/webhooks/{id}");
    for bad in [
        "http://hooks.example.com/x",
        "https://10.0.0.1/hook",
        "not a url",
    ] {
        let problem = expect_problem(
            app.patch(&path, &acme.admin_token, json!({"url": bad}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert_eq!(problem["field"], "url", "{bad}: {problem}");
    }
    expect_problem(
        app.patch(&path, &acme.admin_token, json!({"events": []}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    let changed = expect_json(
        app.patch(
            &path,
            &acme.admin_token,
            json!({"url": "https://127.0.0.1:8443/in"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["url"], "https://127.0.0.1:8443/in");
    assert_eq!(changed["events"], json!(["message.failed"]));
}

#[tokio::test]
async fn unknown_events_fields_and_bad_descriptions_are_refused() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let post = |body: Value| app.post("/v1/webhooks", &acme.admin_token, body);

    let problem = expect_problem(
        post(json!({"url": URL, "events": ["message.failed", "channel.exploded"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "events");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("channel.exploded"), "{problem}");
    for valid in ["channel.needs_reauth", "message.failed", "quota.near_limit"] {
        assert!(detail.contains(valid), "{valid} not named: {problem}");
    }

    let problem = expect_problem(
        post(json!({"url": URL, "events": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "events");

    for description in ["x".repeat(201), "two\nlines".to_owned()] {
        let problem = expect_problem(
            post(json!({"url": URL, "events": ["message.failed"], "description": description}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert_eq!(problem["field"], "description");
    }
    create(
        &app,
        &acme.admin_token,
        json!({"url": URL, "events": ["message.failed"], "description": "é".repeat(200)}),
    )
    .await;

    expect_problem(
        post(json!({"url": URL, "events": ["message.failed"], "enabled": false})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    expect_problem(
        post(json!({"url": URL, "events": ["message.failed"], "secret": "whsec_mine"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let list = expect_json(
        app.get("/v1/webhooks", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn a_tenant_may_have_twenty_webhooks() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut first = String::new();
    for i in 0..20 {
        let created = create_simple(&app, &acme.admin_token).await;
        if i == 0 {
            first = created["id"].as_str().unwrap().to_owned();
        }
    }
    let problem = expect_problem(
        app.post(
            "/v1/webhooks",
            &acme.admin_token,
            json!({"url": URL, "events": ["message.failed"]}),
        )
        .await,
        StatusCode::CONFLICT,
        "too_many_webhooks",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("20"),
        "{problem}"
    );

    // Another tenant has its own twenty.
    let other = app.create_tenant("Other").await;
    create_simple(&app, &other.admin_token).await;

    let res = app
        .delete(&format!("/v1/webhooks/{first}"), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    create_simple(&app, &acme.admin_token).await;
}

#[tokio::test]
async fn another_tenants_webhook_is_not_found() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let id = create_simple(&app, &acme.admin_token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/v1/webhooks/{id}");
    let token = &globex.admin_token;
    for res in [
        app.get(&one, token).await,
        app.patch(&one, token, json!({"enabled": false})).await,
        app.delete(&one, token).await,
        app.post(&format!("{one}/rotate-secret"), token, json!({}))
            .await,
        app.get(&format!("{one}/deliveries"), token).await,
        app.get("/v1/webhooks/not-an-id", token).await,
    ] {
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    let theirs = expect_json(app.get("/v1/webhooks", token).await, StatusCode::OK).await;
    assert_eq!(theirs, json!([]));
    let ours = expect_json(app.get(&one, &acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(ours["enabled"], true, "untouched: {ours}");
    let (actions, _) = audit_actions(&app, &acme).await;
    assert_eq!(actions, ["webhook.created"]);
}

/// Writes a delivery row as the notification worker would.
fn insert_delivery(app: &TestApp, tenant: &str, webhook: &str, n: i64, status: &str) -> String {
    let (store, _) = open_store_and_vault(&app.config()).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let at = 1_790_000_000_000_000 + n * 1_000_000;
    let delivered = if status == "delivered" {
        (at + 500).to_string()
    } else {
        "NULL".to_owned()
    };
    let sql = format!(
        "INSERT INTO notifications (id, tenant_id, event_id, event_type, kind, webhook_id, payload, \
         status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at, delivered_at) \
         VALUES ('{id}', '{tenant}', 'evt-{n}', 'message.failed', 'webhook', '{webhook}', '{{}}', \
         '{status}', 1, {next}, 500, 'the receiver answered 500', {at}, {at}, {delivered})",
        next = at + 60_000_000,
    );
    store
        .run_blocking(|conn| Ok(diesel::sql_query(sql).execute(conn)?))
        .unwrap();
    id
}

#[tokio::test]
async fn the_delivery_log_pages_newest_first() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let id = create_simple(&app, &acme.admin_token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = create_simple(&app, &acme.admin_token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = format!("/v1/webhooks/{id}/deliveries");

    let empty = expect_json(app.get(&log, &acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(empty, json!({"deliveries": []}));

    let oldest = insert_delivery(&app, &acme.id, &id, 1, "delivered");
    let middle = insert_delivery(&app, &acme.id, &id, 2, "failed");
    let newest = insert_delivery(&app, &acme.id, &id, 3, "pending");
    insert_delivery(&app, &acme.id, &other, 4, "pending");

    let page = expect_json(
        app.get(&format!("{log}?limit=2"), &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [newest.as_str(), middle.as_str()], "{page:#}");
    let pending = &page["deliveries"][0];
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["event_type"], "message.failed");
    assert_eq!(pending["last_status_code"], 500);
    assert!(pending["next_attempt_at"].is_string(), "{pending}");
    assert!(
        page["deliveries"][1]["next_attempt_at"].is_null(),
        "failed: no next attempt"
    );

    let next = page["next_before"].as_str().unwrap();
    let rest = expect_json(
        app.get(&format!("{log}?limit=2&before={next}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["deliveries"].as_array().unwrap().len(), 1, "{rest:#}");
    assert_eq!(rest["deliveries"][0]["id"], oldest);
    assert_eq!(rest["deliveries"][0]["status"], "delivered");
    assert!(rest["deliveries"][0]["delivered_at"].is_string());
    assert!(rest.get("next_before").is_none(), "the last page: {rest}");

    for bad in ["?limit=0", "?limit=201", "?before=yesterday", "?page=2"] {
        expect_problem(
            app.get(&format!("{log}{bad}"), &acme.admin_token).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }

    // Deleting the webhook deletes its log.
    let res = app
        .delete(&format!("/v1/webhooks/{id}"), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (store, _) = open_store_and_vault(&app.config()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        webhook_id: String,
    }
    let left: Vec<Row> = store
        .run_blocking(|conn| {
            Ok(diesel::sql_query("SELECT webhook_id FROM notifications").load(conn)?)
        })
        .unwrap();
    let left: Vec<String> = left.into_iter().map(|r| r.webhook_id).collect();
    assert_eq!(left, [other], "only the other webhook's delivery is left");
}

#[tokio::test]
async fn the_openapi_document_describes_the_webhooks() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    let doc = expect_json(res, StatusCode::OK).await;
    for (path, methods) in [
        ("/v1/webhooks", &["get", "post"][..]),
        ("/v1/webhooks/{id}", &["get", "patch", "delete"]),
        ("/v1/webhooks/{id}/rotate-secret", &["post"]),
        ("/v1/webhooks/{id}/deliveries", &["get"]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
    }
    let created = &doc["components"]["schemas"]["CreatedWebhookView"];
    assert!(created.to_string().contains("secret"), "{created}");
}
