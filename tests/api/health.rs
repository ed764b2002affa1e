use reqwest::StatusCode;

use crate::helpers::{expect_json, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer_without_a_token() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(expect_json(res, StatusCode::OK).await["status"], "ok");

    let res = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let body = expect_json(res, StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    let expected = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_a_hostile_one_replaced() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc.123");
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "evil value; with spaces")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_whole_tenancy_contract() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    let doc = expect_json(res, StatusCode::OK).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/v1/tenants", &["get", "post"]),
        ("/v1/tenant", &["get", "patch"]),
        ("/v1/me", &["get"]),
        ("/v1/teams", &["get", "post"]),
        ("/v1/teams/{id}", &["get", "patch"]),
        ("/v1/users", &["get", "post"]),
        ("/v1/users/{id}", &["get", "patch"]),
        ("/v1/users/{id}/tokens", &["get", "post"]),
        ("/v1/tokens/{id}", &["delete"]),
        ("/v1/tenants/{id}", &["delete"]),
        ("/v1/channels", &["get", "post"]),
        ("/v1/channels/{id}", &["get", "patch", "delete"]),
        ("/v1/providers", &["get"]),
        ("/v1/channels/{id}/test", &["post"]),
        ("/v1/channels/{id}/credentials", &["put"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from /openapi.json"));
        for method in methods {
            assert!(item.get(*method).is_some(), "{method} {path} missing");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
