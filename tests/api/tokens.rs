use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{expect_json, expect_problem, spawn_app};

#[tokio::test]
async fn a_revoked_token_stops_working_on_the_next_request() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    expect_json(app.get("/v1/me", &rep.token).await, StatusCode::OK).await;

    let res = app
        .delete(&format!("/v1/tokens/{}", rep.token_id), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/v1/me", &rep.token).await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Revoking again is harmless; the list keeps the record with its revocation time.
    let res = app
        .delete(&format!("/v1/tokens/{}", rep.token_id), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list = expect_json(
        app.get(&format!("/v1/users/{}/tokens", rep.id), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(list[0]["revoked_at"].is_string(), "{list}");
}

#[tokio::test]
async fn disabling_a_user_disables_their_tokens_and_enabling_restores_them() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let path = format!("/v1/users/{}", rep.id);
    expect_json(
        app.patch(&path, &acme.admin_token, json!({"disabled": true}))
            .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        app.get("/v1/me", &rep.token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let res = app
        .post(&format!("{path}/tokens"), &acme.admin_token, json!({}))
        .await;
    expect_problem(res, StatusCode::CONFLICT, "user_disabled").await;
    expect_json(
        app.patch(&path, &acme.admin_token, json!({"disabled": false}))
            .await,
        StatusCode::OK,
    )
    .await;
    expect_json(app.get("/v1/me", &rep.token).await, StatusCode::OK).await;
}

#[tokio::test]
async fn token_lists_and_user_views_never_contain_a_secret() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    for path in [
        format!("/v1/users/{}/tokens", rep.id),
        format!("/v1/users/{}", rep.id),
        "/v1/users".to_owned(),
        "/v1/me".to_owned(),
    ] {
        let text = app
            .get(&path, &acme.admin_token)
            .await
            .text()
            .await
            .unwrap();
        assert!(!text.contains(&rep.token), "{path} shows a token: {text}");
        assert!(
            !text.contains(&acme.admin_token),
            "{path} shows a token: {text}"
        );
        assert!(!text.contains("sb_"), "{path}: {text}");
    }
}

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_401_with_a_challenge() {
    let app = spawn_app().await;
    let res = app
        .request(Method::GET, "/v1/me", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"switchboard\""
    );
    expect_problem(res, StatusCode::UNAUTHORIZED, "missing_token").await;
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer sb_unknown",
        "sb_no_scheme",
    ] {
        let res = app
            .request(Method::GET, "/v1/me", None)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let res = app
        .request(Method::GET, "/v1/me", None)
        .header("authorization", format!("Bearer {}", "x".repeat(4000)))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn an_admin_can_replace_their_first_token() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let res = app
        .post(
            &format!("/v1/users/{}/tokens", acme.admin_id),
            &acme.admin_token,
            json!({"label": "laptop"}),
        )
        .await;
    let fresh = expect_json(res, StatusCode::CREATED).await;
    let fresh = fresh["token"].as_str().unwrap();
    let res = app
        .delete(&format!("/v1/tokens/{}", acme.admin_token_id), fresh)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get("/v1/me", &acme.admin_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    expect_json(app.get("/v1/me", fresh).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_by_another_at_once() {
    let app = spawn_app().await;
    let other = app.sibling().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let me_elsewhere = || {
        app.client
            .get(format!("{}/v1/me", other.address))
            .bearer_auth(&rep.token)
            .send()
    };
    expect_json(me_elsewhere().await.unwrap(), StatusCode::OK).await;
    let res = app
        .delete(&format!("/v1/tokens/{}", rep.token_id), &acme.admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        me_elsewhere().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}
