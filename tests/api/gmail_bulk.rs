//! Gmail's bulk-sender threshold on the Domains page and `GET /v1/domains`: what the tenant
//! sent to personal Gmail addresses over the last day, per primary domain, reps' own
//! mailboxes included, and a warning to publish DMARC before the domain crosses it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::expect_json;
use crate::messages::{REP, World, world};
use crate::ui_client::UiClient;

async fn acme_claim(w: &World) -> Value {
    let all = expect_json(
        w.app.get("/v1/domains", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "acme.test")
        .cloned()
        .expect("acme.test claimed")
}

/// Sends `count` messages from the rep's own mailbox, each to one personal Gmail address.
async fn send_to_gmail(w: &World, from_n: usize, count: usize) {
    let messages: Vec<Value> = (from_n..from_n + count)
        .map(|n| {
            json!({"from": REP, "to": [format!("prospect{n}@gmail.com")],
                   "subject": "Quick question", "text": "Hello"})
        })
        .collect();
    for chunk in messages.chunks(1000) {
        let answer = expect_json(
            w.app
                .post(
                    "/v1/messages/batch",
                    &w.rep.token,
                    json!({"messages": chunk}),
                )
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert!(
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "queued"),
            "{answer:#}"
        );
    }
}

/// Waits until the claim counts `expected` personal-Gmail recipients (mail counts once sent).
async fn counted(w: &World, expected: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let claim = acme_claim(w).await;
        if claim["gmail_bulk"]["last_24h"] == expected {
            return claim;
        }
        assert!(
            Instant::now() < deadline,
            "never counted {expected}: {:#}",
            claim["gmail_bulk"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_domain_on_track_for_gmails_bulk_threshold_is_told_to_publish_dmarc() {
    let w = world().await;
    // One message with two personal Gmail recipients and one other: two count.
    let mixed = json!({"from": REP, "to": ["ann@gmail.com", "bob@example.com"],
                       "cc": ["Carl <carl@GoogleMail.com>"], "subject": "Hi", "text": "Hello"});
    expect_json(
        w.app.post("/v1/messages", &w.rep.token, mixed).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let claim = counted(&w, 2).await;
    let bulk = &claim["gmail_bulk"];
    assert_eq!(bulk["level"], "under", "{bulk:#}");
    assert_eq!(bulk["primary_domain"], "acme.test");
    assert_eq!(bulk["threshold"], 5000);
    assert!(
        bulk["message"]
            .as_str()
            .unwrap()
            .contains("reps' own mailboxes included"),
        "{bulk:#}"
    );

    // 1,250 in the last six hours is 5,000 a day at that pace.
    send_to_gmail(&w, 0, 1248).await;
    let claim = counted(&w, 1250).await;
    let bulk = &claim["gmail_bulk"];
    assert_eq!(bulk["level"], "approaching", "{bulk:#}");
    assert_eq!(bulk["projected_24h"], 5000, "{bulk:#}");
    let message = bulk["message"].as_str().unwrap();
    assert!(
        message.contains("Publish a DMARC record at _dmarc.acme.test"),
        "{message}"
    );
    let mut ui = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    ui.get("/ui/domains")
        .await
        .expect("Gmail bulk-sender threshold.")
        .expect("Publish a DMARC record at _dmarc.acme.test");

    // DMARC published and checked: the count stays, the alarm goes.
    w.app
        .dns
        .txt(
            "_dmarc.acme.test",
            "v=DMARC1; p=none; rua=mailto:dmarc@acme.test",
        )
        .await;
    let path = format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap());
    let checked = expect_json(
        w.app.post(&path, &w.acme.admin_token, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let bulk = &checked["gmail_bulk"];
    assert_eq!(bulk["level"], "approaching", "{bulk:#}");
    assert!(
        bulk["message"]
            .as_str()
            .unwrap()
            .contains("DMARC is published"),
        "{bulk:#}"
    );
    assert!(!bulk["message"].as_str().unwrap().contains("Publish"));

    // Another tenant's domain counts nothing of Acme's mail.
    let globex = w
        .app
        .create_tenant_with_domain("Globex", "globex.test")
        .await;
    let theirs = expect_json(
        w.app.get("/v1/domains", &globex.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs[0]["gmail_bulk"]["last_24h"], 0, "{theirs:#}");
}

#[tokio::test]
async fn an_unverified_domain_shows_no_count() {
    let w = world().await;
    let claimed = expect_json(
        w.app
            .post(
                "/v1/domains",
                &w.acme.admin_token,
                json!({"domain": "new.example"}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(claimed["gmail_bulk"], Value::Null, "{claimed:#}");
    let all = expect_json(
        w.app.get("/v1/domains", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let pending = all
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "new.example")
        .unwrap();
    assert_eq!(pending["gmail_bulk"], Value::Null);
}
