//! The role matrix: each endpoint, called by each role, answers as the permission table says.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, spawn_app};

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Expected status for admin, it, rep.
    expected: [StatusCode; 3],
}

#[tokio::test]
async fn each_role_may_do_exactly_what_the_permission_table_says() {
    let app: TestApp = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let team = app.create_team(&acme, "West").await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&team))
        .await;
    let other = app.create_user(&acme, "other@acme.test", "rep", None).await;

    use StatusCode as S;
    let ok3 = [S::OK, S::OK, S::OK];
    let admin_only = [S::OK, S::FORBIDDEN, S::FORBIDDEN];
    let cases = vec![
        Case {
            method: Method::GET,
            path: "/v1/me".into(),
            body: None,
            expected: ok3,
        },
        Case {
            method: Method::GET,
            path: "/v1/tenant".into(),
            body: None,
            expected: ok3,
        },
        Case {
            method: Method::PATCH,
            path: "/v1/tenant".into(),
            body: Some(json!({"shared_pool_allowed": true})),
            expected: admin_only,
        },
        Case {
            method: Method::GET,
            path: "/v1/teams".into(),
            body: None,
            expected: ok3,
        },
        Case {
            method: Method::GET,
            path: format!("/v1/teams/{team}"),
            body: None,
            expected: ok3,
        },
        Case {
            method: Method::PATCH,
            path: format!("/v1/teams/{team}"),
            body: Some(json!({"name": "West"})),
            expected: admin_only,
        },
        Case {
            method: Method::POST,
            path: "/v1/teams".into(),
            body: Some(json!({"name": "{unique}"})),
            expected: [S::CREATED, S::FORBIDDEN, S::FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: "/v1/users".into(),
            body: None,
            expected: admin_only,
        },
        Case {
            method: Method::POST,
            path: "/v1/users".into(),
            body: Some(json!({"email": "{unique}@acme.test", "name": "N", "role": "rep"})),
            expected: [S::CREATED, S::FORBIDDEN, S::FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: format!("/v1/users/{}", other.id),
            body: None,
            expected: admin_only,
        },
        Case {
            method: Method::PATCH,
            path: format!("/v1/users/{}", other.id),
            body: Some(json!({"name": "Other"})),
            expected: admin_only,
        },
        Case {
            method: Method::GET,
            path: format!("/v1/users/{}/tokens", other.id),
            body: None,
            expected: admin_only,
        },
        Case {
            method: Method::POST,
            path: format!("/v1/users/{}/tokens", other.id),
            body: Some(json!({})),
            expected: [S::CREATED, S::FORBIDDEN, S::FORBIDDEN],
        },
        Case {
            method: Method::DELETE,
            path: format!("/v1/tokens/{}", other.token_id),
            body: None,
            expected: [S::NO_CONTENT, S::FORBIDDEN, S::FORBIDDEN],
        },
        Case {
            method: Method::GET,
            path: "/v1/tenants".into(),
            body: None,
            expected: [S::FORBIDDEN; 3],
        },
    ];

    // The DELETE case revokes `other`'s token for real, so the admin goes last.
    let callers = [(2, &rep.token), (1, &it.token), (0, &acme.admin_token)];
    for case in &cases {
        for (index, token) in callers {
            let body = case.body.clone().map(|b| {
                serde_json::from_str(
                    &b.to_string()
                        .replace("{unique}", &uuid::Uuid::new_v4().simple().to_string()),
                )
                .unwrap()
            });
            let res = app.call(case.method.clone(), &case.path, token, body).await;
            let status = res.status();
            let text = res.text().await.unwrap();
            let role = ["admin", "it", "rep"][index];
            assert_eq!(
                status, case.expected[index],
                "{role}: {} {} → {text}",
                case.method, case.path
            );
            if status == S::FORBIDDEN {
                assert!(text.contains("\"code\""), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn users_manage_their_own_tokens_and_read_themselves() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let own = format!("/v1/users/{}", rep.id);
    expect_json(app.get(&own, &rep.token).await, StatusCode::OK).await;
    let issued = expect_json(
        app.call(Method::POST, &format!("{own}/tokens"), &rep.token, None)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let second = issued["token"].as_str().unwrap();
    expect_json(app.get("/v1/me", second).await, StatusCode::OK).await;
    let list = expect_json(
        app.get(&format!("{own}/tokens"), &rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let res = app
        .delete(
            &format!("/v1/tokens/{}", issued["id"].as_str().unwrap()),
            &rep.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}
