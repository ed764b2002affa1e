use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{expect_json, spawn_app};

#[tokio::test]
async fn a_restart_keeps_tenants_users_policies_and_tokens() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let team = app.create_team(&acme, "West").await;
    let rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&team))
        .await;
    let res = app
        .patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({"domains": ["acme.test"], "fallback_policy": "fallback"}),
        )
        .await;
    expect_json(res, StatusCode::OK).await;
    let before = app.address.clone();

    let app = app.restart().await;
    assert_ne!(app.address, before, "a new server on a new port");
    let me = expect_json(app.get("/v1/me", &rep.token).await, StatusCode::OK).await;
    assert_eq!(me["team_id"], team.as_str());
    let tenant = expect_json(
        app.get("/v1/tenant", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["domains"], json!(["acme.test"]));
    assert_eq!(tenant["fallback_policy"], "fallback");
    let res = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
