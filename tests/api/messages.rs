//! Accepting mail: validation before anything is stored, idempotency, kill switches, routes
//! that are refused or explained, and what a message shows about itself.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestTenant, TestUser, expect_json, expect_problem, spawn_app_with};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

pub const REP: &str = "rep@acme.test";
pub const PASSWORD: &str = "Canary-Mailbox-Pw-9f2";

/// An app that retries fast, a tenant owning acme.test, a rep with a mailbox channel on a
/// real SMTP server.
pub struct World {
    pub app: TestApp,
    pub acme: TestTenant,
    pub rep: TestUser,
    pub server: TestSmtpServer,
    pub channel: String,
}

/// An app that polls and retries fast (plus `extra`), the tenant Acme owning acme.test, and
/// its rep `REP`: what a test that sends needs before any channel.
pub async fn acme_and_rep(extra: &[(&str, &str)]) -> (TestApp, TestTenant, TestUser) {
    let mut env = vec![
        ("SWITCHBOARD_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_RETRY_MAX", "1s"),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let rep = app.create_user(&acme, REP, "rep", None).await;
    (app, acme, rep)
}

pub async fn world_with(extra: &[(&str, &str)]) -> World {
    world_on(SmtpServerConfig::default(), extra).await
}

/// A world whose rep's mailbox server is shaped by `config` (its account is set here).
pub async fn world_on(config: SmtpServerConfig, extra: &[(&str, &str)]) -> World {
    let (app, acme, rep) = acme_and_rep(extra).await;
    let server = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(REP.to_owned(), PASSWORD.to_owned())],
        ..config
    })
    .await;
    let channel = expect_json(
        app.post(
            "/v1/channels",
            &rep.token,
            json!({"name": "My mailbox", "kind": "smtp", "scope": "mailbox", "from_address": REP,
                   "smtp": {"host": "localhost", "port": server.port(), "security": "starttls",
                            "auth": "login", "username": REP, "password": PASSWORD,
                            "ca_pem": server.ca_pem(), "connect_timeout_secs": 5,
                            "command_timeout_secs": 5}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    World {
        app,
        acme,
        rep,
        server,
        channel,
    }
}

/// The platform's relay for the shared pool: a real SMTP server with the account `relay` and
/// `password`, its CA in a file (kept by the caller), and the `SWITCHBOARD_SHARED_POOL_URL`
/// that points at it.
pub async fn pool_relay(password: &str) -> (TestSmtpServer, tempfile::NamedTempFile, String) {
    let relay = TestSmtpServer::start(SmtpServerConfig {
        users: vec![("relay".to_owned(), password.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), relay.ca_pem()).unwrap();
    let url = format!(
        "smtp://relay:{password}@localhost:{}?security=starttls&ca={}",
        relay.port(),
        ca.path().display()
    );
    (relay, ca, url)
}

pub async fn world() -> World {
    world_with(&[]).await
}

pub fn mail(subject: &str) -> Value {
    json!({"from": format!("\"Rep One\" <{REP}>"), "to": ["Ann Buyer <ann@example.com>"],
           "subject": subject, "text": "Hello Ann"})
}

pub async fn send(w: &World, body: Value) -> Value {
    expect_json(
        w.app.post("/v1/messages", &w.rep.token, body).await,
        StatusCode::ACCEPTED,
    )
    .await
}

/// Sends and returns the new message's id.
pub async fn send_id(w: &World, body: Value) -> String {
    send(w, body).await["id"].as_str().unwrap().to_owned()
}

async fn count_messages(w: &World) -> usize {
    expect_json(
        w.app.get("/v1/messages", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await["messages"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_accepted_message_is_sent_through_the_senders_mailbox_and_logged() {
    let w = world().await;
    let accepted = send(
        &w,
        json!({"from": format!("\"Rep, One\" <{REP}>"), "to": ["Ann Buyer <ann@example.com>"],
               "cc": ["chris@example.com"], "bcc": ["secret-boss@example.com"],
               "subject": "Q4 prices — ünïcode", "text": "plain", "html": "<p>html</p>",
               "headers": {"X-Campaign": "q4"}}),
    )
    .await;
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap();
    let view = w
        .app
        .wait_for_message(&w.rep.token, id, "sent", Duration::from_secs(20))
        .await;
    assert_eq!(view["channel_id"], w.channel);
    assert_eq!(view["route"]["channel_id"], w.channel);
    assert_eq!(view["route"]["outcome"], "send");
    assert!(
        view["route"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("selected"),
        "{view}"
    );
    let kinds: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "routed", "attempt", "sent"], "{view:#}");
    assert_eq!(view["attempts"], 1);

    let received = w.server.wait_for_messages(1, Duration::from_secs(5)).await;
    let m = &received[0];
    assert_eq!(m.authenticated_as.as_deref(), Some(REP));
    assert_eq!(m.mail_from, REP);
    let mut rcpt = m.rcpt_to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "ann@example.com",
            "chris@example.com",
            "secret-boss@example.com"
        ]
    );
    let data = String::from_utf8_lossy(&m.data);
    let message_id = view["message_id"].as_str().unwrap();
    assert!(message_id.ends_with("@acme.test>"), "{message_id}");
    assert!(
        data.contains(&format!("Message-ID: {message_id}")),
        "{data}"
    );
    assert!(data.contains("X-Campaign: q4"), "{data}");
    // lettre encodes a display name with a comma as an RFC 2047 word ("Rep, One").
    assert!(
        data.contains("From: =?utf-8?b?UmVwLCBPbmU=?= <rep@acme.test>"),
        "{data}"
    );
    assert!(
        !data.to_ascii_lowercase().contains("secret-boss"),
        "a Bcc recipient must never appear in the headers: {data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
}

#[tokio::test]
async fn invalid_mail_is_refused_before_anything_is_stored() {
    let w = world_with(&[("SWITCHBOARD_MAX_MESSAGE_BYTES", "4000")]).await;
    let cases = [
        (
            json!({"subject": "Hi\r\nBcc: victim@example.com"}),
            "header_injection",
            "subject",
        ),
        (
            json!({"from": "rep@acme.test\nBcc: x@evil.test"}),
            "header_injection",
            "from",
        ),
        (
            json!({"to": ["ann@example.com\r\n"]}),
            "header_injection",
            "to[0]",
        ),
        (
            json!({"headers": {"X-Note": "a\r\nBcc: x@evil.test"}}),
            "header_injection",
            "headers.X-Note",
        ),
        (
            json!({"headers": {"From": "ceo@acme.test"}}),
            "header_not_allowed",
            "headers.From",
        ),
        (
            json!({"headers": {"message-id": "<x@y>"}}),
            "header_not_allowed",
            "headers.message-id",
        ),
        (
            json!({"to": ["not an address"]}),
            "invalid_address",
            "to[0]",
        ),
        (json!({"to": []}), "no_recipients", "to"),
        (json!({"text": null}), "no_body", "text"),
    ];
    for (change, code, field) in cases {
        let mut body = mail("x");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let problem = expect_problem(
            w.app.post("/v1/messages", &w.rep.token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert_eq!(problem["field"], field, "{problem}");
        assert!(
            !problem.to_string().contains('\r'),
            "control characters are never echoed: {problem}"
        );
    }
    let mut big = mail("big");
    big["text"] = json!("x".repeat(5000));
    expect_problem(
        w.app.post("/v1/messages", &w.rep.token, big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "message_too_large",
    )
    .await;
    let mut extra = mail("x");
    extra["priority"] = json!("high");
    expect_problem(
        w.app.post("/v1/messages", &w.rep.token, extra).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert_eq!(count_messages(&w).await, 0);
    assert!(w.server.messages().is_empty());
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_message_even_when_concurrent() {
    let w = world().await;
    let mut body = mail("once");
    body["idempotency_key"] = json!("seq-42-step-1");
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let request = w
                .app
                .request(reqwest::Method::POST, "/v1/messages", Some(&w.rep.token))
                .json(&body);
            tokio::spawn(request.send())
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for call in calls {
        let res = call.await.unwrap().unwrap();
        let status = res.status();
        let view: Value = res.json().await.unwrap();
        match status {
            StatusCode::ACCEPTED => created += 1,
            StatusCode::OK => assert_eq!(view["duplicate"], true, "{view}"),
            other => panic!("{other}: {view}"),
        }
        ids.push(view["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "exactly one request stores the message");
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every repeat names the first message: {ids:?}"
    );
    w.app
        .wait_for_message(&w.rep.token, &ids[0], "sent", Duration::from_secs(20))
        .await;
    // A later repeat, after it was sent, is still the same message and sends nothing.
    let again = expect_json(
        w.app.post("/v1/messages", &w.rep.token, body.clone()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["id"], ids[0].as_str());
    assert_eq!(again["status"], "sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.server.messages().len(), 1);
    assert_eq!(count_messages(&w).await, 1);
    // Another sender with the same key gets neither a second send nor the first message.
    let colleague = w
        .app
        .create_user(&w.acme, "colleague@acme.test", "rep", None)
        .await;
    let mut theirs = body.clone();
    theirs["from"] = json!("colleague@acme.test");
    expect_problem(
        w.app.post("/v1/messages", &colleague.token, theirs).await,
        StatusCode::CONFLICT,
        "idempotency_key_in_use",
    )
    .await;
}

#[tokio::test]
async fn kill_switches_refuse_mail_and_store_nothing() {
    let w = world().await;
    expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"sending_enabled": false}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        w.app.post("/v1/messages", &w.rep.token, mail("off")).await,
        StatusCode::CONFLICT,
        "sending_disabled",
    )
    .await;
    expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"sending_enabled": true}),
            )
            .await,
        StatusCode::OK,
    )
    .await;

    let team = w.app.create_team(&w.acme, "EMEA").await;
    let seller = w
        .app
        .create_user(&w.acme, "seller@acme.test", "rep", Some(&team))
        .await;
    let patched = expect_json(
        w.app
            .patch(
                &format!("/v1/teams/{team}"),
                &w.acme.admin_token,
                json!({"sending_enabled": false}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["sending_enabled"], false);
    let mut body = mail("team off");
    body["from"] = json!("seller@acme.test");
    expect_problem(
        w.app.post("/v1/messages", &seller.token, body).await,
        StatusCode::CONFLICT,
        "team_sending_disabled",
    )
    .await;
    assert_eq!(count_messages(&w).await, 0);
}

#[tokio::test]
async fn a_from_no_channel_may_carry_is_refused_with_the_routers_reasons() {
    let w = world().await;
    // The rep's mailbox credential is never used for another From, even in the same domain:
    // a proven domain without a domain channel has no route; an unproven one is refused for
    // that first.
    for (from, code, outcome) in [
        ("boss@acme.test", "no_route", "reject"),
        ("rep@elsewhere.test", "domain_not_verified", "hold"),
    ] {
        let mut body = mail("not mine");
        body["from"] = json!(from);
        let problem = expect_problem(
            w.app.post("/v1/messages", &w.rep.token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert_eq!(problem["route"]["outcome"], outcome, "{problem}");
        let candidates = problem["route"]["candidates"].as_array().unwrap();
        assert!(
            candidates.iter().all(|c| c["accepted"] == false),
            "{problem}"
        );
        assert!(
            candidates
                .iter()
                .any(|c| c["channel_id"] == w.channel.as_str() && c["reason"] == "scope_mismatch"),
            "{problem}"
        );
    }
    assert_eq!(count_messages(&w).await, 0);
}

#[tokio::test]
async fn explain_shows_the_route_and_who_may_ask() {
    let w = world().await;
    let explained = expect_json(
        w.app
            .post("/v1/route/explain", &w.rep.token, json!({"from": REP}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(explained["outcome"], "send", "{explained:#}");
    assert_eq!(explained["channel_id"], w.channel);
    assert_eq!(explained["candidates"][0]["accepted"], true);
    assert_eq!(explained["candidates"][0]["reason"], "selected");
    assert_eq!(explained["candidates"][0]["tier"], "mailbox");

    let other = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    let body = json!({"from": REP, "sender_user_id": w.rep.id});
    expect_problem(
        w.app
            .post("/v1/route/explain", &other.token, body.clone())
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let as_admin = expect_json(
        w.app
            .post("/v1/route/explain", &w.acme.admin_token, body)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(as_admin["channel_id"], w.channel);
    // Another user sending as the rep's address: the rep's mailbox is listed, never used.
    let theirs = expect_json(
        w.app
            .post("/v1/route/explain", &other.token, json!({"from": REP}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs["outcome"], "reject", "{theirs:#}");
    assert_eq!(theirs["candidates"][0]["reason"], "not_senders_channel");
}

#[tokio::test]
async fn reps_see_their_own_messages_admins_see_all_and_it_reads_no_mail() {
    let w = world().await;
    let id = send_id(&w, mail("mine")).await;
    let other = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let path = format!("/v1/messages/{id}");
    expect_problem(
        w.app.get(&path, &other.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        w.app.get(&path, &it.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_json(w.app.get(&path, &w.acme.admin_token).await, StatusCode::OK).await;
    let theirs = expect_json(
        w.app.get("/v1/messages", &other.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs["messages"].as_array().unwrap().len(), 0);
    let beta = w.app.create_tenant("Beta").await;
    expect_problem(
        w.app.get(&path, &beta.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_batch_answers_each_message_in_order_and_stores_the_valid_ones() {
    let w = world().await;
    let mut bad = mail("bad");
    bad["subject"] = json!("x\r\nBcc: a@b.test");
    let mut unknown_field = mail("odd");
    unknown_field["colour"] = json!("red");
    let batch = json!({"messages": [mail("one"), bad, mail("two"), unknown_field]});
    let answer = expect_json(
        w.app.post("/v1/messages/batch", &w.rep.token, batch).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "queued");
    assert_eq!(results[1]["error"]["code"], "header_injection");
    assert_eq!(results[1]["error"]["field"], "subject");
    assert_eq!(results[2]["status"], "queued");
    assert_eq!(results[3]["error"]["code"], "invalid_body");
    for r in [&results[0], &results[2]] {
        w.app
            .wait_for_message(
                &w.rep.token,
                r["id"].as_str().unwrap(),
                "sent",
                Duration::from_secs(20),
            )
            .await;
    }
    assert_eq!(w.server.messages().len(), 2);
    let too_many = json!({"messages": vec![mail("x"); 1001]});
    expect_problem(
        w.app
            .post("/v1/messages/batch", &w.rep.token, too_many)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_batch_size",
    )
    .await;

    // Page through the listing, newest first.
    let first = expect_json(
        w.app.get("/v1/messages?limit=1", &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["messages"][0]["subject"], "two");
    let next = first["next"].as_str().unwrap();
    let second = expect_json(
        w.app
            .get(&format!("/v1/messages?limit=1&before={next}"), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["messages"][0]["subject"], "one");
    assert!(second["next"].is_null(), "{second}");
}
