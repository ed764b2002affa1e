//! Send channels through the API: presets, enforced scopes, visibility by role, write-only
//! credentials, tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, spawn_app, spawn_app_with};
use crate::vault::assert_nowhere_in_database;

fn canary() -> String {
    format!("Canary-Password-{}", uuid::Uuid::new_v4().simple())
}

fn o365(from: &str, password: &str) -> Value {
    json!({
        "name": "My Office 365",
        "kind": "smtp",
        "preset": "office365",
        "from_address": from,
        "smtp": {"username": from, "password": password}
    })
}

async fn tenant_with_domain(app: &TestApp) -> TestTenant {
    app.create_tenant_with_domain("Acme", "acme.test").await
}

#[tokio::test]
async fn a_rep_connects_office_365_from_the_preset_and_never_sees_the_password_again() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let password = canary();
    let res = app
        .post("/v1/channels", &rep.token, o365("rep@acme.test", &password))
        .await;
    let created_text = res.text().await.unwrap();
    assert!(
        !created_text.contains(&password),
        "the password came back: {created_text}"
    );
    let channel: Value = serde_json::from_str(&created_text).unwrap();
    assert_eq!(channel["smtp"]["host"], "smtp.office365.com", "{channel}");
    assert_eq!(channel["smtp"]["port"], 587);
    assert_eq!(channel["smtp"]["security"], "starttls");
    assert_eq!(channel["scope"], "mailbox");
    assert_eq!(channel["owner"]["user"], rep.id.as_str());
    assert_eq!(channel["provider"], "office365");
    assert_eq!(
        channel["limits"],
        json!({"per_minute": 30, "per_day_recipients": 10000, "recipients_per_message": 500, "per_day_messages": null, "windows": null, "warmup": null, "min_gap": null})
    );
    assert_eq!(channel["status"], "active");
    assert_eq!(channel["has_credential"], true);
    assert!(channel["credential_updated_at"].is_string());
    // Microsoft is retiring password logins: the channel says so, and what to use instead.
    assert_eq!(
        channel["warnings"][0]["code"], "microsoft_password_login_retiring",
        "{channel}"
    );
    assert!(
        channel["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Connect Microsoft")
    );
    assert!(channel["smtp"].get("password").is_none());

    let id = channel["id"].as_str().unwrap();
    for path in ["/v1/channels".to_owned(), format!("/v1/channels/{id}")] {
        for token in [&rep.token, &acme.admin_token] {
            let text = app.get(&path, token).await.text().await.unwrap();
            assert!(text.contains(id), "{path}: {text}");
            assert!(!text.contains(&password), "{path} shows the password");
        }
    }
    assert_nowhere_in_database(&app, &password);
}

#[tokio::test]
async fn a_mailbox_credential_cannot_be_given_to_a_team_or_the_tenant() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let team = app.create_team(&acme, "West").await;
    for owner in [json!({"team": team}), json!({"tenant": true})] {
        let mut body = o365("shared@acme.test", &canary());
        body["owner"] = owner;
        let res = app.post("/v1/channels", &acme.admin_token, body).await;
        expect_problem(res, StatusCode::CONFLICT, "channel_scope_mismatch").await;
    }
    let mut body = o365("rep@acme.test", &canary());
    body.as_object_mut().unwrap().remove("from_address");
    let res = app.post("/v1/channels", &acme.admin_token, body).await;
    expect_problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "from_address_required",
    )
    .await;
    let list = expect_json(
        app.get("/v1/channels", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_team_relay_covers_only_the_tenants_verified_domains() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let team = app.create_team(&acme, "West").await;
    let body = json!({
        "name": "West SendGrid", "kind": "smtp", "preset": "sendgrid",
        "owner": {"team": team}, "domains": ["acme.test"],
        "smtp": {"password": canary()}
    });
    let res = app
        .post("/v1/channels", &acme.admin_token, body.clone())
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "domain_not_verified").await;
    // Claimed is not enough: the claim must be proven.
    expect_json(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "acme.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .post("/v1/channels", &acme.admin_token, body.clone())
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "domain_not_verified").await;
    let claims = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    app.dns
        .txt(
            "_switchboard.acme.test",
            claims[0]["verification"]["value"].as_str().unwrap(),
        )
        .await;
    let verified = expect_json(
        app.post(
            &format!("/v1/domains/{}/verify", claims[0]["id"].as_str().unwrap()),
            &acme.admin_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["state"], "verified");
    let channel = expect_json(
        app.post("/v1/channels", &acme.admin_token, body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(channel["scope"], "domain");
    assert_eq!(
        channel["smtp"]["username"], "apikey",
        "the preset's fixed username"
    );
    assert_eq!(channel["domains"], json!(["acme.test"]));

    let mut user_owned = json!({
        "name": "Mine", "kind": "smtp", "preset": "sendgrid", "domains": ["acme.test"],
        "smtp": {"password": "x"}
    });
    let res = app
        .post("/v1/channels", &acme.admin_token, user_owned.clone())
        .await;
    expect_problem(res, StatusCode::CONFLICT, "channel_scope_mismatch").await;
    user_owned["owner"] = json!({"tenant": true});
    user_owned["domains"] = json!(["gmail.com"]);
    let res = app
        .post("/v1/channels", &acme.admin_token, user_owned)
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "domain_not_verified").await;
}

#[tokio::test]
async fn reps_manage_only_their_own_mailboxes_and_see_what_they_may_send_through() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let west = app.create_team(&acme, "West").await;
    let east = app.create_team(&acme, "East").await;
    let rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&west))
        .await;
    let other = app
        .create_user(&acme, "other@acme.test", "rep", Some(&east))
        .await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;

    let relay = |team: &str| {
        json!({"name": format!("{team} relay"), "kind": "smtp", "preset": "sendgrid",
               "owner": {"team": team}, "domains": ["acme.test"], "smtp": {"password": "k"}})
    };
    let res = app.post("/v1/channels", &rep.token, relay(&west)).await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let mut for_other = o365("other@acme.test", "pw");
    for_other["owner"] = json!({"user": other.id});
    let res = app
        .post("/v1/channels", &rep.token, for_other.clone())
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    let mine = expect_json(
        app.post("/v1/channels", &rep.token, o365("rep@acme.test", "pw"))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let theirs = expect_json(
        app.post("/v1/channels", &acme.admin_token, for_other).await,
        StatusCode::CREATED,
    )
    .await;
    let west_relay = expect_json(
        app.post("/v1/channels", &acme.admin_token, relay(&west))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let east_relay = expect_json(
        app.post("/v1/channels", &acme.admin_token, relay(&east))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let mut tenant_wide = relay(&west);
    tenant_wide["owner"] = json!({"tenant": true});
    let tenant_relay = expect_json(
        app.post("/v1/channels", &acme.admin_token, tenant_wide)
            .await,
        StatusCode::CREATED,
    )
    .await;

    let ids = |list: Value| -> Vec<String> {
        let mut v: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let mut expected: Vec<String> = [&mine, &west_relay, &tenant_relay]
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(
        ids(expect_json(app.get("/v1/channels", &rep.token).await, StatusCode::OK).await),
        expected
    );
    assert_eq!(
        ids(expect_json(app.get("/v1/channels", &it.token).await, StatusCode::OK).await).len(),
        5
    );
    for hidden in [&theirs, &east_relay] {
        let res = app
            .get(
                &format!("/v1/channels/{}", hidden["id"].as_str().unwrap()),
                &rep.token,
            )
            .await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    // IT sees every channel but changes no shared one.
    let res = app
        .patch(
            &format!("/v1/channels/{}", west_relay["id"].as_str().unwrap()),
            &it.token,
            json!({"name": "x"}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    // A rep cannot change the team relay they may send through.
    let res = app
        .delete(
            &format!("/v1/channels/{}", west_relay["id"].as_str().unwrap()),
            &rep.token,
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn a_mailbox_belongs_to_one_person() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let other = app.create_user(&acme, "other@acme.test", "rep", None).await;
    expect_json(
        app.post("/v1/channels", &rep.token, o365("rep@acme.test", "pw"))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .post("/v1/channels", &other.token, o365("REP@acme.test", "pw"))
        .await;
    expect_problem(res, StatusCode::CONFLICT, "mailbox_taken").await;
    // The owner may hold a second channel for the same mailbox (e.g. while switching providers).
    expect_json(
        app.post("/v1/channels", &rep.token, o365("rep@acme.test", "pw2"))
            .await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn settings_are_validated_warned_about_and_changed_without_the_password() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let body = json!({
        "name": "Own server", "kind": "smtp", "scope": "mailbox", "from_address": "rep@acme.test",
        "smtp": {"host": "mail.acme.test", "port": 25, "security": "none", "auth": "login",
                 "username": "rep", "password": "pw", "accept_invalid_certs": true},
        "bcc_archive": "archive@acme.test", "reply_to": "replies@acme.test",
        "return_path": {"mode": "specified", "address": "bounces@acme.test"}
    });
    let channel = expect_json(
        app.post("/v1/channels", &rep.token, body).await,
        StatusCode::CREATED,
    )
    .await;
    let codes: Vec<&str> = channel["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["port_25", "invalid_certs_accepted", "plaintext_auth"]
    );
    assert_eq!(
        channel["return_path"],
        json!({"mode": "specified", "address": "bounces@acme.test"})
    );
    assert_eq!(channel["bcc_archive"], "archive@acme.test");
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());

    for (body, field_or_code) in [
        (
            json!({"smtp": {"host": "smtp://mail.acme.test"}}),
            "smtp.host",
        ),
        (json!({"smtp": {"security": "ssl"}}), "smtp.security"),
        (json!({"smtp": {"ca_pem": "not a certificate"}}), "smtp"),
        (json!({"limits": {"per_minute": 0}}), "limits"),
        (json!({"return_path": {"mode": "specified"}}), "return_path"),
        (json!({"reply_to": "not an address"}), "reply_to"),
    ] {
        let res = app.patch(&path, &rep.token, body).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert_eq!(problem["field"], field_or_code);
    }
    let res = app
        .patch(&path, &rep.token, json!({"smtp": {"password": "new"}}))
        .await;
    expect_problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "use_credentials_endpoint",
    )
    .await;

    let res = app
        .patch(&path, &rep.token, json!({"smtp": {"port": 587, "security": "starttls", "accept_invalid_certs": false}, "reply_to": null}))
        .await;
    let changed = expect_json(res, StatusCode::OK).await;
    assert_eq!(changed["warnings"], json!([]));
    assert_eq!(
        changed["smtp"]["host"], "mail.acme.test",
        "unchanged fields stay"
    );
    assert_eq!(changed["reply_to"], Value::Null);
    assert_eq!(changed["has_credential"], true);

    let disabled = expect_json(
        app.patch(&path, &rep.token, json!({"disabled": true}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(disabled["status"], "disabled");
    assert!(
        disabled["status_cause"]
            .as_str()
            .unwrap()
            .contains("disabled by")
    );
    let active = expect_json(
        app.patch(&path, &rep.token, json!({"disabled": false}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["status"], "active");

    let res = app.delete(&path, &rep.token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get(&path, &rep.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn gmail_and_the_shared_pool_are_not_created_with_a_password() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    for (kind, code) in [
        ("gmail", "use_oauth_connect"),
        ("shared_pool", "shared_pool_is_operator_configured"),
    ] {
        let mut body = o365("admin@acme.test", "pw");
        body["kind"] = json!(kind);
        let res = app.post("/v1/channels", &acme.admin_token, body).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let mut body = o365("admin@acme.test", "pw");
    body["preset"] = json!("hotmail");
    expect_problem(
        app.post("/v1/channels", &acme.admin_token, body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_preset",
    )
    .await;
    let mut ses = json!({"name": "SES", "kind": "smtp", "preset": "amazon_ses", "owner": {"tenant": true},
                         "domains": ["acme.test"], "smtp": {"username": "AKIA", "password": "pw"}});
    let problem = expect_problem(
        app.post("/v1/channels", &acme.admin_token, ses.clone())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "smtp.region");
    ses["smtp"]["region"] = json!("eu-west-1");
    let channel = expect_json(
        app.post("/v1/channels", &acme.admin_token, ses).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        channel["smtp"]["host"],
        "email-smtp.eu-west-1.amazonaws.com"
    );
}

#[tokio::test]
async fn another_tenants_channel_is_not_there() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let globex = app.create_tenant("Globex").await;
    let channel = expect_json(
        app.post(
            "/v1/channels",
            &acme.admin_token,
            o365("admin@acme.test", "pw"),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "x"}))),
        (Method::DELETE, None),
    ] {
        let res = app.call(method, &path, &globex.admin_token, body).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    expect_json(app.get(&path, &acme.admin_token).await, StatusCode::OK).await;
}

#[tokio::test]
async fn the_presets_are_listed_with_their_limits_and_guidance() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let list = expect_json(
        app.get("/v1/providers", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for id in [
        "gmail",
        "yahoo",
        "office365",
        "sparkpost",
        "sendgrid",
        "amazon_ses",
        "mailgun",
        "postmark",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
    let o365 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "office365")
        .unwrap();
    assert_eq!(o365["limits"]["per_minute"], 30);
    assert!(
        o365["guidance"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g.as_str().unwrap().contains("SMTP AUTH"))
    );
    let sparkpost = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "sparkpost")
        .unwrap();
    assert_eq!(sparkpost["username_hint"], "SMTP_Injection");
}

#[tokio::test]
async fn limits_change_one_at_a_time_and_a_region_moves_the_host() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut body = o365("rep@acme.test", "pw");
    body["limits"] = json!({"per_minute": 10});
    let channel = expect_json(
        app.post("/v1/channels", &rep.token, body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        channel["limits"],
        json!({"per_minute": 10, "per_day_recipients": 10000, "recipients_per_message": 500, "per_day_messages": null, "windows": null, "warmup": null, "min_gap": null}),
        "the preset's other limits stay"
    );
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    let res = app
        .patch(
            &path,
            &rep.token,
            json!({"limits": {"per_day_recipients": null}}),
        )
        .await;
    let changed = expect_json(res, StatusCode::OK).await;
    assert_eq!(
        changed["limits"],
        json!({"per_minute": 10, "per_day_recipients": null, "recipients_per_message": 500, "per_day_messages": null, "windows": null, "warmup": null, "min_gap": null})
    );

    let ses = json!({"name": "SES", "kind": "smtp", "preset": "amazon_ses", "owner": {"tenant": true},
                     "domains": ["acme.test"], "smtp": {"username": "AKIA", "password": "pw", "region": "us-east-1"}});
    let channel = expect_json(
        app.post("/v1/channels", &acme.admin_token, ses).await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    let res = app
        .patch(
            &path,
            &acme.admin_token,
            json!({"smtp": {"region": "eu-central-1"}}),
        )
        .await;
    assert_eq!(
        expect_json(res, StatusCode::OK).await["smtp"]["host"],
        "email-smtp.eu-central-1.amazonaws.com"
    );
}

#[tokio::test]
async fn the_operators_shared_pool_is_listed_for_tenants_that_allow_it_and_no_one_changes_it() {
    let relay = "smtp://relay-account:Canary-Relay-Pw@relay.platform.test:587?auth=login";
    let app = spawn_app_with(&[("SWITCHBOARD_SHARED_POOL_URL", relay)]).await;
    let acme = tenant_with_domain(&app).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let list = expect_json(app.get("/v1/channels", &rep.token).await, StatusCode::OK).await;
    let text = list.to_string();
    assert!(
        !text.contains("Canary-Relay-Pw") && !text.contains("relay-account"),
        "{text}"
    );
    let pool = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "shared_pool")
        .expect("listed")
        .clone();
    assert_eq!(pool["id"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(pool["owner"], json!({"platform": true}));
    assert_eq!(pool["domains"], json!(["acme.test"]));
    assert_eq!(pool["smtp"]["host"], "relay.platform.test");
    assert_eq!(pool["smtp"]["username"], Value::Null);
    assert_eq!(pool["has_credential"], true);

    let path = "/v1/channels/00000000-0000-0000-0000-000000000000";
    expect_json(app.get(path, &rep.token).await, StatusCode::OK).await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"name": "Mine now"}))),
        (Method::DELETE, None),
        (Method::PUT, Some(json!({"password": "x"}))),
    ] {
        let target = if method == Method::PUT {
            format!("{path}/credentials")
        } else {
            path.to_owned()
        };
        let res = app.call(method, &target, &acme.admin_token, body).await;
        expect_problem(
            res,
            StatusCode::FORBIDDEN,
            "shared_pool_is_operator_configured",
        )
        .await;
    }

    // A tenant that forbids the shared pool does not see it.
    expect_json(
        app.patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({"shared_pool_allowed": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let list = expect_json(
        app.get("/v1/channels", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] != "shared_pool"),
        "{list}"
    );
    expect_problem(
        app.get(path, &acme.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn without_a_configured_relay_there_is_no_shared_pool() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    let list = expect_json(
        app.get("/v1/channels", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_gmail_app_password_channel_starts_at_the_accounts_daily_limits() {
    let app = spawn_app().await;
    let acme = tenant_with_domain(&app).await;
    for (address, messages, recipients) in [
        ("ann.rep@gmail.com", 500, 500),
        ("ann@acme.test", 2_000, 10_000),
    ] {
        let rep = app.create_user(&acme, address, "rep", None).await;
        let channel = expect_json(
            app.post(
                "/v1/channels",
                &rep.token,
                json!({"name": "Gmail", "kind": "smtp", "preset": "gmail", "scope": "mailbox",
                       "from_address": address,
                       "smtp": {"username": address, "password": "App-Pw-123-456"}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(channel["limits"]["per_day_messages"], messages, "{channel}");
        assert_eq!(
            channel["limits"]["per_day_recipients"], recipients,
            "{channel}"
        );
        assert_eq!(
            channel["limits"]["recipients_per_message"], 100,
            "{channel}"
        );
    }
}
