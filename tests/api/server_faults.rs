//! What real servers do that our own happy path never shows: closing idle sessions (with a
//! 421 or without a word), ending sessions when a password changes, refusing one recipient
//! of three (for good or for now), and announcing a message size limit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::delivery::events_of;
use crate::messages::{REP, World, send_id, world_on};
use crate::smtp_server::{Fault, IdleClose, SmtpServerConfig};
use crate::webhook_receiver::WebhookReceiver;

const PATIENCE: Duration = Duration::from_secs(30);

fn to(recipients: &[&str], subject: &str) -> Value {
    json!({"from": REP, "to": recipients, "subject": subject, "text": "Hello"})
}

async fn sent(w: &World, id: &str) -> Value {
    w.app
        .wait_for_message(&w.rep.token, id, "sent", PATIENCE)
        .await
}

async fn channel_health(w: &World) -> Value {
    let channel = w
        .app
        .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
        .await;
    crate::helpers::expect_json(channel, reqwest::StatusCode::OK).await
}

/// Sends one message to open a pooled session, then lets the server close it while idle.
async fn idle_session_closed_by_the_server(how: IdleClose) -> World {
    let w = world_on(
        SmtpServerConfig {
            idle_timeout: Some((Duration::from_millis(300), how)),
            ..SmtpServerConfig::default()
        },
        &[],
    )
    .await;
    let first = send_id(&w, to(&["ann@example.com"], "opens the session")).await;
    sent(&w, &first).await;
    let closes = w.server.idle_closes();
    let deadline = std::time::Instant::now() + PATIENCE;
    while w.server.idle_closes() == closes {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never closed the idle session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w
}

async fn a_session_the_server_closed_costs_nothing(how: IdleClose) {
    let w = idle_session_closed_by_the_server(how).await;
    let id = send_id(&w, to(&["ben@example.com"], "after the close")).await;
    let view = sent(&w, &id).await;
    assert_eq!(
        view["attempts"], 1,
        "{how:?}: sent on the first attempt: {view:#}"
    );
    assert!(
        events_of(&view, "deferred").is_empty(),
        "{how:?}: never deferred: {view:#}"
    );
    let attempt = events_of(&view, "attempt")[0];
    assert_eq!(attempt["detail"]["result"], "ok", "{attempt}");
    assert_eq!(w.server.messages().len(), 2);
    assert_eq!(
        w.server.connections(),
        2,
        "a fresh session replaced the closed one"
    );
    let channel = channel_health(&w).await;
    assert_eq!(channel["status"], "active", "{channel:#}");
    assert_eq!(
        channel["health"]["consecutive_failures"], 0,
        "not counted against the channel: {channel:#}"
    );
}

#[tokio::test]
async fn a_session_the_server_closed_with_421_is_replaced_at_once() {
    a_session_the_server_closed_costs_nothing(IdleClose::Reply421).await;
}

#[tokio::test]
async fn a_session_the_server_dropped_without_a_word_is_replaced_at_once() {
    a_session_the_server_closed_costs_nothing(IdleClose::Silent).await;
}

#[tokio::test]
async fn a_password_change_that_ended_the_session_holds_the_mail_on_the_first_attempt() {
    // The provider signs the account out everywhere (421 on the pooled session's next
    // command); the fresh session's login then tells the truth: 535, the mail is held.
    let w = world_on(SmtpServerConfig::default(), &[]).await;
    let first = send_id(&w, to(&["ann@example.com"], "before the change")).await;
    sent(&w, &first).await;
    w.server.set_password(REP, "changed-at-the-provider");
    let id = send_id(&w, to(&["ben@example.com"], "after the change")).await;
    let held = w
        .app
        .wait_for_message(&w.rep.token, &id, "held", PATIENCE)
        .await;
    let attempts = events_of(&held, "attempt");
    assert_eq!(attempts.len(), 1, "{held:#}");
    assert_eq!(attempts[0]["detail"]["result"], "auth", "{held:#}");
    assert_eq!(attempts[0]["detail"]["code"], 535, "{held:#}");
    let channel = channel_health(&w).await;
    assert_eq!(channel["status"], "needs_reauth", "{channel:#}");
}

#[tokio::test]
async fn one_refused_and_one_deferred_recipient_do_not_stop_the_others() {
    let w = world_on(
        SmtpServerConfig::default(),
        &[("SWITCHBOARD_NOTIFY_POLL_INTERVAL", "50ms")],
    )
    .await;
    let hooks = WebhookReceiver::start().await;
    let webhook = w
        .app
        .post(
            "/v1/webhooks",
            &w.acme.admin_token,
            json!({"url": hooks.url("/hooks"), "events": ["message.partially_sent"]}),
        )
        .await;
    crate::helpers::expect_json(webhook, reqwest::StatusCode::CREATED).await;
    w.server.set_rcpt_reply(
        "nobody@example.com",
        Some((550, "5.1.1 <nobody@example.com>: User unknown")),
    );
    w.server.set_rcpt_reply(
        "busy@example.com",
        Some((451, "4.2.1 Mailbox busy, try again later")),
    );
    let id = send_id(
        &w,
        json!({"from": REP, "to": ["ann@example.com", "nobody@example.com"],
               "cc": ["busy@example.com"], "subject": "three", "text": "Hello"}),
    )
    .await;
    let deferred = w
        .app
        .wait_for_message_where(&w.rep.token, &id, PATIENCE, |v| v["status"] == "deferred")
        .await;
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    assert_eq!(
        received[0].rcpt_to,
        ["ann@example.com"],
        "the accepted one has it"
    );
    let by_address = |view: &Value, address: &str| -> Value {
        view["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == address)
            .cloned()
            .unwrap_or_else(|| panic!("{address} in {view:#}"))
    };
    assert_eq!(by_address(&deferred, "ann@example.com")["status"], "sent");
    let nobody = by_address(&deferred, "nobody@example.com");
    assert_eq!(nobody["status"], "failed", "{nobody}");
    assert_eq!(nobody["code"], 550, "{nobody}");
    assert!(
        nobody["reply"].as_str().unwrap().contains("User unknown"),
        "{nobody}"
    );
    let busy = by_address(&deferred, "busy@example.com");
    assert_eq!(busy["status"], "deferred", "{busy}");
    assert_eq!(busy["code"], 451, "{busy}");
    let attempt = events_of(&deferred, "attempt")[0];
    assert_eq!(
        attempt["detail"]["recipients"].as_array().unwrap().len(),
        3,
        "every RCPT reply is in the log: {attempt}"
    );

    // The mailbox frees up: the retry goes to it alone, never again to ann.
    w.server.set_rcpt_reply("busy@example.com", None);
    let done = w
        .app
        .wait_for_message(&w.rep.token, &id, "partially_sent", PATIENCE)
        .await;
    let received = w.server.wait_for_messages(2, PATIENCE).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[1].rcpt_to, ["busy@example.com"]);
    let rcpts: Vec<String> = w.server.rcpt_log().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        rcpts.iter().filter(|a| *a == "ann@example.com").count(),
        1,
        "{rcpts:?}"
    );
    assert_eq!(by_address(&done, "busy@example.com")["status"], "sent");
    assert!(
        done["last_error"]
            .as_str()
            .unwrap()
            .contains("nobody@example.com"),
        "{done:#}"
    );
    // Both headers are unchanged: every recipient sees who else it was sent to.
    let data = String::from_utf8_lossy(&received[1].data);
    assert!(data.contains("nobody@example.com"), "{data}");

    // The tenant's webhook hears of it, with each recipient's outcome.
    let hook = hooks.wait_for(1, PATIENCE).await;
    assert_eq!(hook.len(), 1, "one event for the message");
    let event: Value = serde_json::from_slice(&hook[0].body).unwrap();
    assert_eq!(event["type"], "message.partially_sent", "{event:#}");
    assert_eq!(event["data"]["message"]["id"], id.as_str(), "{event:#}");
    let refused: Vec<&Value> = event["data"]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(refused.len(), 1, "{event:#}");
    assert_eq!(refused[0]["address"], "nobody@example.com", "{event:#}");

    let listed = w
        .app
        .get("/v1/messages?status=partially_sent", &w.rep.token)
        .await;
    let listed = crate::helpers::expect_json(listed, reqwest::StatusCode::OK).await;
    assert_eq!(
        listed["messages"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
    let sent_only = w.app.get("/v1/messages?status=sent", &w.rep.token).await;
    let sent_only = crate::helpers::expect_json(sent_only, reqwest::StatusCode::OK).await;
    assert!(
        sent_only["messages"].as_array().unwrap().is_empty(),
        "{sent_only:#}"
    );
}

#[tokio::test]
async fn every_recipient_refused_fails_the_message_with_each_reply() {
    let w = world_on(SmtpServerConfig::default(), &[]).await;
    w.server
        .set_rcpt_reply("gone@example.com", Some((550, "5.1.1 gone")));
    let id = send_id(&w, to(&["gone@example.com"], "to nobody")).await;
    let failed = w
        .app
        .wait_for_message(&w.rep.token, &id, "failed", PATIENCE)
        .await;
    assert_eq!(failed["recipients"][0]["status"], "failed", "{failed:#}");
    assert_eq!(failed["recipients"][0]["code"], 550, "{failed:#}");
    assert!(w.server.messages().is_empty());
    let channel = channel_health(&w).await;
    assert_eq!(channel["health"]["consecutive_failures"], 0, "{channel:#}");
}

#[tokio::test]
async fn a_message_over_the_servers_size_limit_fails_at_once_naming_both_sizes() {
    let w = world_on(
        SmtpServerConfig {
            size_limit: 4_000,
            ..SmtpServerConfig::default()
        },
        &[],
    )
    .await;
    let id = send_id(
        &w,
        json!({"from": REP, "to": ["ann@example.com"], "subject": "big",
               "text": "x".repeat(10_000)}),
    )
    .await;
    let failed = w
        .app
        .wait_for_message(&w.rep.token, &id, "failed", PATIENCE)
        .await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("4000 bytes"), "{error}");
    assert!(error.contains("SIZE"), "{error}");
    assert_eq!(failed["attempts"], 1, "{failed:#}");
    assert!(w.server.messages().is_empty());
    // A message that fits still goes out on the same channel.
    let small = send_id(&w, to(&["ann@example.com"], "small")).await;
    sent(&w, &small).await;
}

#[tokio::test]
async fn a_drop_after_the_data_is_logged_as_possibly_delivered_and_retried() {
    let w = world_on(SmtpServerConfig::default(), &[]).await;
    w.server.set_fault(Some(Fault::DropAfterData));
    let id = send_id(&w, to(&["ann@example.com"], "ambiguous")).await;
    let deferred = w
        .app
        .wait_for_message_where(&w.rep.token, &id, PATIENCE, |v| v["status"] == "deferred")
        .await;
    let attempt = events_of(&deferred, "attempt")[0];
    assert_eq!(attempt["detail"]["result"], "network", "{attempt}");
    assert_eq!(attempt["detail"]["possibly_delivered"], true, "{attempt}");
    w.server.set_fault(None);
    sent(&w, &id).await;
}

#[tokio::test]
async fn a_hard_bounce_puts_the_address_on_the_tenants_suppression_list() {
    let w = world_on(SmtpServerConfig::default(), &[]).await;
    w.server.set_rcpt_reply(
        "ghost@example.com",
        Some((
            550,
            "5.1.1 <ghost@example.com>: Recipient address rejected: User unknown",
        )),
    );
    // A policy refusal is the sender's trouble, not the address's: nobody is suppressed.
    w.server.set_rcpt_reply(
        "strict@example.com",
        Some((550, "5.7.1 Message rejected by policy")),
    );
    let id = send_id(
        &w,
        to(
            &["ann@example.com", "Ghost@Example.com", "strict@example.com"],
            "hello",
        ),
    )
    .await;
    let done = w
        .app
        .wait_for_message(&w.rep.token, &id, "partially_sent", PATIENCE)
        .await;
    let failed = done["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .count();
    assert_eq!(failed, 2, "{done:#}");

    let listed = crate::helpers::expect_json(
        w.app.get("/v1/suppressions", &w.acme.admin_token).await,
        reqwest::StatusCode::OK,
    )
    .await;
    let entries = listed["suppressions"].as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{listed:#}");
    assert_eq!(entries[0]["address"], "ghost@example.com", "{listed:#}");
    assert_eq!(entries[0]["reason"], "hard_bounce", "{listed:#}");
    assert_eq!(
        entries[0]["source"]["message_id"],
        id.as_str(),
        "{listed:#}"
    );
    let audit = crate::helpers::expect_json(
        w.app
            .get("/v1/audit?action=suppression.", &w.acme.admin_token)
            .await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(audit[0]["action"], "suppression.added", "{audit:#}");
    assert_eq!(audit[0]["actor"], "system", "{audit:#}");

    // Later mail to the address is refused at acceptance, unless it is transactional.
    let again = w
        .app
        .post(
            "/v1/messages",
            &w.rep.token,
            to(&["ghost@example.com"], "again"),
        )
        .await;
    crate::helpers::expect_problem(
        again,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "recipient_suppressed",
    )
    .await;
    let mut receipt = to(&["ghost@example.com"], "your receipt");
    receipt["transactional"] = json!(true);
    let accepted = w.app.post("/v1/messages", &w.rep.token, receipt).await;
    crate::helpers::expect_json(accepted, reqwest::StatusCode::ACCEPTED).await;
    let strict = w
        .app
        .post(
            "/v1/messages",
            &w.rep.token,
            to(&["strict@example.com"], "again"),
        )
        .await;
    crate::helpers::expect_json(strict, reqwest::StatusCode::ACCEPTED).await;
}

#[tokio::test]
async fn outcomes_are_counted_per_channel_and_day_by_the_clock() {
    use switchboard::store::channel_stats;
    let w = world_on(SmtpServerConfig::default(), &[]).await;
    w.server.set_rcpt_reply(
        "ghost@example.com",
        Some((550, "5.1.1 <ghost@example.com>: User unknown")),
    );
    w.server.set_rcpt_reply(
        "strict@example.com",
        Some((550, "5.7.1 Message rejected by policy")),
    );
    let mixed = send_id(
        &w,
        to(
            &["ann@example.com", "ghost@example.com", "strict@example.com"],
            "mixed",
        ),
    )
    .await;
    w.app
        .wait_for_message(&w.rep.token, &mixed, "partially_sent", PATIENCE)
        .await;
    let plain = send_id(&w, to(&["bob@example.com", "cy@example.com"], "plain")).await;
    w.app
        .wait_for_message(&w.rep.token, &plain, "sent", PATIENCE)
        .await;
    let today = channel_stats::day_of(w.app.clock.now_micros());
    // A day later by the service's clock, the next message counts for the next day.
    w.app.clock.advance(Duration::from_secs(86_400));
    let later = send_id(&w, to(&["dee@example.com"], "tomorrow")).await;
    w.app
        .wait_for_message(&w.rep.token, &later, "sent", PATIENCE)
        .await;

    let (store, _) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
    let tenant = w.acme.id.parse().unwrap();
    let channel = w.channel.parse().unwrap();
    let days = store
        .run_blocking(move |c| channel_stats::days(c, tenant, Some(channel), today, today + 1))
        .unwrap();
    let counts: Vec<(i64, channel_stats::Counts)> =
        days.iter().map(|d| (d.day - today, d.counts)).collect();
    assert_eq!(
        counts,
        vec![
            (
                0,
                channel_stats::Counts {
                    sent: 2,
                    recipients: 3,
                    hard_bounces: 1,
                    ..Default::default()
                }
            ),
            (
                1,
                channel_stats::Counts {
                    sent: 1,
                    recipients: 1,
                    ..Default::default()
                }
            ),
        ]
    );
    // Another tenant reads nothing of it.
    let other = switchboard::domain::TenantId::generate();
    let none = store
        .run_blocking(move |c| channel_stats::days(c, other, None, today, today + 1))
        .unwrap();
    assert!(none.is_empty());
}
