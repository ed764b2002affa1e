//! `GET /v1/audit`: what happened to a channel, in order, for admins and IT; never a secret.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_json, expect_problem};
use crate::messages::{PASSWORD, REP, mail, send_id, world};

#[tokio::test]
async fn the_audit_trail_tells_a_channels_story_without_its_secrets() {
    let w = world().await;
    w.server.set_password(REP, "Changed-At-The-Server-42");
    let id = send_id(&w, mail("will be held")).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "held", Duration::from_secs(30))
        .await;
    expect_json(
        w.app
            .call(
                reqwest::Method::PUT,
                &format!("/v1/channels/{}/credentials", w.channel),
                &w.rep.token,
                Some(json!({"password": "Changed-At-The-Server-42"})),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let path = format!("/v1/audit?channel_id={}", w.channel);
    let events = expect_json(w.app.get(&path, &it.token).await, StatusCode::OK).await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "channel.created",
            "channel.needs_reauth",
            "credential.rotated",
            "channel.recovered"
        ],
        "{events:#}"
    );
    assert_eq!(
        events[3]["actor"],
        format!("user:{}", w.rep.id),
        "a person recovered it"
    );
    assert_eq!(events[3]["detail"]["from"], "needs_reauth");
    let reauth = &events[1];
    assert_eq!(reauth["actor"], "system");
    assert_eq!(reauth["detail"]["cause"], "auth_rejected");
    assert_eq!(events[2]["actor"], format!("user:{}", w.rep.id));
    assert_eq!(events[2]["detail"]["released"], 1);
    let text = events.to_string();
    for secret in [PASSWORD, "Changed-At-The-Server-42"] {
        assert!(!text.contains(secret), "{secret} in the audit trail");
    }

    // Filters: a family of actions, and a time window.
    let rotated = expect_json(
        w.app
            .get(&format!("{path}&action=credential."), &it.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rotated.as_array().unwrap().len(), 1);
    let since = events[2]["at"].as_str().unwrap();
    let later: Value = expect_json(
        w.app
            .get(
                &format!("{path}&since={}", since.replace('+', "%2B")),
                &it.token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(later[0]["action"], "credential.rotated", "{later:#}");

    expect_problem(
        w.app.get("/v1/audit", &w.rep.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        w.app.get("/v1/audit?action=%25", &it.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}
