//! Every tenant-scoped endpoint, probed with another tenant's ids: the answer is exactly the
//! answer for an id that does not exist, and nothing of the other tenant changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{expect_json, expect_problem, spawn_app};

#[tokio::test]
async fn another_tenants_ids_answer_404_like_missing_ones_and_change_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let acme_team = app.create_team(&acme, "West").await;
    let acme_rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&acme_team))
        .await;
    let missing = uuid::Uuid::new_v4().to_string();

    let probes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/teams/{team}".into(), None),
        (
            Method::PATCH,
            "/v1/teams/{team}".into(),
            Some(json!({"name": "Hijacked"})),
        ),
        (Method::GET, "/v1/users/{user}".into(), None),
        (
            Method::PATCH,
            "/v1/users/{user}".into(),
            Some(json!({"disabled": true})),
        ),
        (Method::GET, "/v1/users/{user}/tokens".into(), None),
        (
            Method::POST,
            "/v1/users/{user}/tokens".into(),
            Some(json!({"label": "stolen"})),
        ),
        (Method::DELETE, "/v1/tokens/{token}".into(), None),
    ];
    for (method, template, body) in &probes {
        let foreign = template
            .replace("{team}", &acme_team)
            .replace("{user}", &acme_rep.id)
            .replace("{token}", &acme_rep.token_id);
        let absent = template
            .replace("{team}", &missing)
            .replace("{user}", &missing)
            .replace("{token}", &missing);
        let res = app
            .call(method.clone(), &foreign, &globex.admin_token, body.clone())
            .await;
        let foreign_problem = expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = app
            .call(method.clone(), &absent, &globex.admin_token, body.clone())
            .await;
        let absent_problem = expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(
            foreign_problem, absent_problem,
            "{method} {template} tells them apart"
        );
    }

    // Acme is untouched: its rep's token works, its team kept its name, nothing was issued.
    let me = expect_json(app.get("/v1/me", &acme_rep.token).await, StatusCode::OK).await;
    assert_eq!(me["tenant_id"], acme.id.as_str());
    let team = expect_json(
        app.get(&format!("/v1/teams/{acme_team}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(team["name"], "West");
    let tokens = expect_json(
        app.get(
            &format!("/v1/users/{}/tokens", acme_rep.id),
            &acme.admin_token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tokens.as_array().unwrap().len(), 1);

    // Lists show only the caller's tenant.
    let users = expect_json(
        app.get("/v1/users", &globex.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "admin@globex.test");
    let teams = expect_json(
        app.get("/v1/teams", &globex.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(teams, json!([]));
    let tenant = expect_json(
        app.get("/v1/tenant", &globex.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["id"], globex.id.as_str());
}

#[tokio::test]
async fn a_user_cannot_be_placed_in_another_tenants_team() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let acme_team = app.create_team(&acme, "West").await;

    let res = app
        .post(
            "/v1/users",
            &globex.admin_token,
            json!({"email": "spy@globex.test", "name": "Spy", "role": "rep", "team_id": acme_team}),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "unknown_team").await;
    let res = app
        .patch(
            &format!("/v1/users/{}", globex.admin_id),
            &globex.admin_token,
            json!({"team_id": acme_team}),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "unknown_team").await;
    let users = expect_json(
        app.get("/v1/users", &globex.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(users.as_array().unwrap().len(), 1, "nothing was created");
    assert_eq!(users[0]["team_id"], Value::Null, "nothing was changed");
}

#[tokio::test]
async fn the_same_address_may_exist_in_two_tenants() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    app.create_user(&acme, "consultant@example.com", "rep", None)
        .await;
    app.create_user(&globex, "consultant@example.com", "rep", None)
        .await;
}
