//! Bad input gets a clear problem document and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{expect_json, expect_problem, spawn_app};

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .request(Method::POST, "/v1/teams", Some(&acme.admin_token))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::BAD_REQUEST, "malformed_json").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .request(Method::POST, "/v1/teams", Some(&acme.admin_token))
        .header("content-type", "text/plain")
        .body("name=West")
        .send()
        .await
        .unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn unknown_and_missing_fields_are_named() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .post(
            "/v1/teams",
            &acme.admin_token,
            json!({"name": "West", "colour": "red"}),
        )
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{problem}"
    );
    let res = app
        .post(
            "/v1/users",
            &acme.admin_token,
            json!({"email": "a@acme.test", "role": "rep"}),
        )
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `name`"),
        "{problem}"
    );
    let teams = expect_json(
        app.get("/v1/teams", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(teams, json!([]), "nothing was created");
}

#[tokio::test]
async fn an_oversize_body_is_413_and_stores_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let huge = "x".repeat(200 * 1024);
    let res = app
        .post("/v1/teams", &acme.admin_token, json!({"name": huge}))
        .await;
    expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let teams = expect_json(
        app.get("/v1/teams", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(teams, json!([]));
}

#[tokio::test]
async fn malformed_ids_and_unknown_paths_are_404_problems() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app.get("/v1/users/not-a-uuid", &acme.admin_token).await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app.get("/v1/no-such-thing", &acme.admin_token).await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_wrongly_typed_secret_is_not_echoed_in_the_error() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/tenants",
            &app.operator_token,
            json!({"name": "Canary-Value-9f3e", "admin_email": 42}),
        )
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let res = app
        .post(
            "/v1/tenants",
            &app.operator_token,
            json!({"name": true, "admin_email": "Canary-Value-9f3e"}),
        )
        .await;
    let second = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    for p in [problem, second] {
        assert!(!p.to_string().contains("Canary-Value-9f3e"), "{p}");
    }
}
