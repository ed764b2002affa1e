use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, expect_problem, spawn_app};

#[tokio::test]
async fn the_operator_creates_a_tenant_whose_admin_can_sign_in_at_once() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/tenants",
            &app.operator_token,
            json!({"name": "Acme Corp", "admin_email": "Boss@Acme.TEST", "admin_name": "The Boss"}),
        )
        .await;
    let created = expect_json(res, StatusCode::CREATED).await;
    assert_eq!(created["name"], "Acme Corp");
    let token = created["admin"]["token"].as_str().unwrap();
    assert!(token.starts_with("sb_"));

    let me = expect_json(app.get("/v1/me", token).await, StatusCode::OK).await;
    assert_eq!(me["tenant_id"], created["id"]);
    assert_eq!(me["user_id"], created["admin"]["user_id"]);
    assert_eq!(me["email"], "boss@acme.test");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["team_id"], serde_json::Value::Null);

    let tenant = expect_json(app.get("/v1/tenant", token).await, StatusCode::OK).await;
    assert_eq!(tenant["sending_enabled"], true);
    assert_eq!(tenant["fallback_policy"], "hold");
    assert_eq!(tenant["shared_pool_allowed"], true);
    assert_eq!(tenant["domains"], json!([]));

    let all = expect_json(
        app.get("/v1/tenants", &app.operator_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_tenant_input_is_refused_and_creates_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"name": "Acme", "admin_email": "not-an-address"}),
            "admin_email",
        ),
        (
            json!({"name": "  ", "admin_email": "boss@acme.test"}),
            "name",
        ),
        (
            json!({"name": "Acme\r\nX-Evil: 1", "admin_email": "boss@acme.test"}),
            "name",
        ),
        (
            json!({"name": "Acme", "admin_email": "boss@acme.test", "admin_name": ""}),
            "admin_name",
        ),
    ] {
        let res = app.post("/v1/tenants", &app.operator_token, body).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    let all = expect_json(
        app.get("/v1/tenants", &app.operator_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all, json!([]));
}

#[tokio::test]
async fn admins_set_the_sending_policy_and_bad_values_change_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({
                "sending_enabled": false,
                "fallback_policy": "fallback",
                "shared_pool_allowed": false,
                "domains": ["Acme.test", "mail.acme.test", "bücher.example", "acme.test"]
            }),
        )
        .await;
    let tenant = expect_json(res, StatusCode::OK).await;
    assert_eq!(tenant["sending_enabled"], false);
    assert_eq!(tenant["fallback_policy"], "fallback");
    assert_eq!(tenant["shared_pool_allowed"], false);
    assert_eq!(
        tenant["domains"],
        json!(["acme.test", "mail.acme.test", "xn--bcher-kva.example"])
    );

    for (body, field) in [
        (
            json!({"fallback_policy": "drop", "sending_enabled": true}),
            "fallback_policy",
        ),
        (
            json!({"domains": ["acme.test", "localhost"], "sending_enabled": true}),
            "domains",
        ),
        (json!({"domains": ["10.0.0.1"]}), "domains"),
    ] {
        let res = app.patch("/v1/tenant", &acme.admin_token, body).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert_eq!(problem["field"], field);
    }
    let res = app
        .patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({"sending_enabled": "yes"}),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;

    let after = expect_json(
        app.get("/v1/tenant", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        after["sending_enabled"], false,
        "a refused PATCH changed nothing"
    );
    assert_eq!(after["domains"].as_array().unwrap().len(), 3);

    // Only the fields named change; an empty list clears the domains.
    let res = app
        .patch("/v1/tenant", &acme.admin_token, json!({"domains": []}))
        .await;
    let tenant = expect_json(res, StatusCode::OK).await;
    assert_eq!(tenant["domains"], json!([]));
    assert_eq!(tenant["fallback_policy"], "fallback");
}

#[tokio::test]
async fn operator_and_tenant_tokens_each_stay_in_their_lane() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .post(
            "/v1/tenants",
            &acme.admin_token,
            json!({"name": "Evil", "admin_email": "e@evil.test"}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "operator_token_required").await;
    let res = app.get("/v1/tenants", &acme.admin_token).await;
    expect_problem(res, StatusCode::FORBIDDEN, "operator_token_required").await;
    let res = app.get("/v1/me", &app.operator_token).await;
    expect_problem(res, StatusCode::FORBIDDEN, "tenant_token_required").await;
}

#[tokio::test]
async fn users_and_teams_are_managed_by_admins() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let team = app.create_team(&acme, "West").await;
    let res = app
        .post("/v1/teams", &acme.admin_token, json!({"name": " West "}))
        .await;
    expect_problem(res, StatusCode::CONFLICT, "team_name_taken").await;

    let rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&team))
        .await;
    let me = expect_json(app.get("/v1/me", &rep.token).await, StatusCode::OK).await;
    assert_eq!(me["team_id"], team.as_str());
    assert_eq!(me["role"], "rep");

    let res = app
        .post(
            "/v1/users",
            &acme.admin_token,
            json!({"email": "REP@acme.test", "name": "x", "role": "rep"}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "email_taken").await;
    let res = app
        .post(
            "/v1/users",
            &acme.admin_token,
            json!({"email": "x@acme.test", "name": "x", "role": "owner"}),
        )
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert_eq!(problem["field"], "role");

    // Move the rep out of the team (explicit null), then promote them.
    let res = app
        .patch(
            &format!("/v1/users/{}", rep.id),
            &acme.admin_token,
            json!({"team_id": null, "role": "it"}),
        )
        .await;
    let user = expect_json(res, StatusCode::OK).await;
    assert_eq!(user["team_id"], serde_json::Value::Null);
    assert_eq!(user["role"], "it");
    // Absent fields stay as they are.
    let res = app
        .patch(
            &format!("/v1/users/{}", rep.id),
            &acme.admin_token,
            json!({"name": "Rita Rep"}),
        )
        .await;
    let user = expect_json(res, StatusCode::OK).await;
    assert_eq!(user["role"], "it");
    assert_eq!(user["name"], "Rita Rep");

    let res = app
        .patch(
            &format!("/v1/teams/{team}"),
            &acme.admin_token,
            json!({"name": "West Coast"}),
        )
        .await;
    assert_eq!(expect_json(res, StatusCode::OK).await["name"], "West Coast");
    let teams = expect_json(app.get("/v1/teams", &rep.token).await, StatusCode::OK).await;
    assert_eq!(teams[0]["name"], "West Coast");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_disabled() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let path = format!("/v1/users/{}", acme.admin_id);
    for body in [json!({"role": "rep"}), json!({"disabled": true})] {
        let res = app.patch(&path, &acme.admin_token, body).await;
        expect_problem(res, StatusCode::CONFLICT, "last_admin").await;
    }
    let second = app
        .create_user(&acme, "second@acme.test", "admin", None)
        .await;
    let res = app
        .patch(&path, &second.token, json!({"role": "rep"}))
        .await;
    assert_eq!(expect_json(res, StatusCode::OK).await["role"], "rep");
    // The demoted user lost admin rights on their very next request.
    let res = app.get("/v1/users", &acme.admin_token).await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
}
