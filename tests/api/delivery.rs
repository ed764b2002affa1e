//! Delivery against a real SMTP server that misbehaves the way providers do: temporary
//! refusals, permanent ones, a connection dropped mid-DATA, a password changed at the server.
//! Nothing accepted is lost; every step is in the message's log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::expect_json;
use crate::messages::{REP, World, mail, send, send_id, world};
use crate::smtp_server::Fault;

const PATIENCE: Duration = Duration::from_secs(30);

fn kinds(view: &Value) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The events of one kind in a message's log, oldest first.
pub fn events_of<'a>(view: &'a Value, kind: &str) -> Vec<&'a Value> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

async fn wait(w: &World, id: &str, status: &str) -> Value {
    w.app
        .wait_for_message(&w.rep.token, id, status, PATIENCE)
        .await
}

async fn wait_until_deferred_after_attempts(w: &World, id: &str, attempts: u64) -> Value {
    w.app
        .wait_for_message_where(&w.rep.token, id, PATIENCE, |view| {
            view["status"] == "deferred" && view["attempts"].as_u64().unwrap() >= attempts
        })
        .await
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_with_backoff_until_it_is_sent() {
    let w = world().await;
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 451,
        text: "4.7.1 Greylisted, try again later".into(),
    }));
    let id = send_id(&w, mail("greylisted")).await;
    let deferred = wait_until_deferred_after_attempts(&w, &id, 2).await;
    assert!(
        deferred["last_error"].as_str().unwrap().contains("451"),
        "{deferred:#}"
    );
    assert!(deferred["next_attempt_at"].is_string(), "{deferred:#}");
    let attempt = events_of(&deferred, "attempt")[0];
    assert_eq!(attempt["detail"]["result"], "temporary", "{attempt}");
    assert_eq!(attempt["detail"]["code"], 451, "{attempt}");
    let d = events_of(&deferred, "deferred")[0];
    assert_eq!(d["detail"]["reason"], "temporary_failure", "{d}");
    assert!(w.server.messages().is_empty());

    w.server.set_fault(None);
    let sent = wait(&w, &id, "sent").await;
    assert!(sent["attempts"].as_u64().unwrap() >= 3, "{sent:#}");
    assert_eq!(sent["last_error"], Value::Null);
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    assert_eq!(received.len(), 1);
    let data = String::from_utf8_lossy(&received[0].data);
    assert!(
        data.contains(&format!(
            "Message-ID: {}",
            sent["message_id"].as_str().unwrap()
        )),
        "the Message-ID assigned at acceptance survives the retries: {data}"
    );
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_message_with_the_servers_reply() {
    let w = world().await;
    w.server.set_fault(Some(Fault::Reply {
        command: "RCPT",
        code: 550,
        text: "5.1.1 <ann@example.com>: Recipient address rejected: User unknown".into(),
    }));
    let id = send_id(&w, mail("to nobody")).await;
    let failed = wait(&w, &id, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("550") && error.contains("User unknown"),
        "{failed:#}"
    );
    assert_eq!(failed["attempts"], 1, "a permanent refusal is not retried");
    let f = events_of(&failed, "failed")[0];
    assert_eq!(f["detail"]["reason"], "rejected");
    assert_eq!(
        kinds(&failed),
        ["accepted", "routed", "attempt", "failed"],
        "{failed:#}"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_data_is_retried_and_the_message_arrives() {
    let w = world().await;
    w.server.set_fault(Some(Fault::DropAfterData));
    let id = send_id(&w, mail("dropped")).await;
    let deferred = wait_until_deferred_after_attempts(&w, &id, 1).await;
    assert_eq!(
        events_of(&deferred, "attempt")[0]["detail"]["result"],
        "network",
        "{deferred:#}"
    );
    w.server.set_fault(None);
    wait(&w, &id, "sent").await;
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    assert!(
        received
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("dropped")),
        "delivered at least once"
    );
}

#[tokio::test]
async fn a_password_changed_at_the_server_holds_mail_until_the_credential_is_rotated() {
    let w = world().await;
    w.server.set_password(REP, "Changed-By-IT-77");
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = send_id(&w, mail(&format!("held {n}"))).await;
        ids.push(id);
    }
    for id in &ids {
        let held = wait(&w, id, "held").await;
        assert_eq!(held["hold_reason"], "channel_unavailable", "{held:#}");
        assert_eq!(held["channel_id"], w.channel);
    }
    let channel = expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["status"], "needs_reauth", "{channel:#}");
    assert_eq!(channel["status_cause"], "auth_rejected", "{channel:#}");

    // Mail accepted while the channel waits is held at once, and says why.
    let later = send(&w, mail("held 3")).await;
    assert_eq!(later["status"], "held", "{later}");
    ids.push(later["id"].as_str().unwrap().to_owned());
    let explained = expect_json(
        w.app
            .post("/v1/route/explain", &w.rep.token, json!({"from": REP}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(explained["outcome"], "hold", "{explained:#}");
    assert_eq!(explained["candidates"][0]["reason"], "not_active");
    assert!(w.server.messages().is_empty());

    // IT rotates the credential: verified against the server, then the held mail flows.
    let rotated = w
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/channels/{}/credentials", w.channel),
            &w.rep.token,
            Some(json!({"password": "Changed-By-IT-77"})),
        )
        .await;
    let rotated = expect_json(rotated, StatusCode::OK).await;
    assert_eq!(rotated["status"], "active", "{rotated:#}");
    for id in &ids {
        let sent = wait(&w, id, "sent").await;
        assert!(kinds(&sent).contains(&"released".to_owned()), "{sent:#}");
    }
    let received = w.server.wait_for_messages(4, PATIENCE).await;
    let mut subjects: Vec<String> = received
        .iter()
        .map(|m| {
            let data = String::from_utf8_lossy(&m.data);
            data.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                .unwrap()
        })
        .collect();
    // Released in the order accepted; sessions in parallel may still interleave delivery.
    subjects.sort();
    assert_eq!(subjects, ["held 0", "held 1", "held 2", "held 3"]);
    assert!(
        received
            .iter()
            .all(|m| m.authenticated_as.as_deref() == Some(REP)),
        "sent on the new credential"
    );
}

#[tokio::test]
async fn over_its_quota_a_channel_defers_mail_to_the_next_window_never_fails_it() {
    let w = world().await;
    // Keep the four sends inside one clock minute.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                &w.rep.token,
                json!({"limits": {"per_minute": 2}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let id = send_id(&w, mail(&format!("quota {n}"))).await;
        ids.push(id);
    }
    w.server.wait_for_messages(2, PATIENCE).await;
    let mut deferred = 0;
    for id in &ids {
        let view = w
            .app
            .wait_for_message_where(&w.rep.token, id, PATIENCE, |view| {
                view["status"] == "sent" || view["status"] == "deferred"
            })
            .await;
        if view["status"] == "deferred" {
            deferred += 1;
            let d = events_of(&view, "deferred")[0];
            assert_eq!(d["detail"]["reason"], "per_minute", "{view:#}");
            assert_eq!(
                view["attempts"], 0,
                "waiting for quota is not an attempt: {view:#}"
            );
            assert_eq!(view["route"]["outcome"], "defer", "{view:#}");
            let until =
                chrono::DateTime::parse_from_rfc3339(view["next_attempt_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc);
            let now = chrono::Utc::now();
            assert!(
                until > now
                    && until.timestamp() % 60 == 0
                    && until - now <= chrono::Duration::seconds(61),
                "deferred to the start of the next minute: {until}"
            );
        }
    }
    assert_eq!(deferred, 2, "two over the quota of 2 a minute");
    assert_eq!(w.server.messages().len(), 2);
    let explained = expect_json(
        w.app
            .post("/v1/route/explain", &w.rep.token, json!({"from": REP}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(explained["outcome"], "defer", "{explained:#}");
    assert_eq!(explained["candidates"][0]["reason"], "quota_exhausted");
}

#[tokio::test]
async fn a_channel_with_waiting_mail_is_deleted_only_when_forced_and_its_mail_is_routed_afresh() {
    let w = world().await;
    w.server.set_password(REP, "Rotated-Elsewhere-1");
    let id = send_id(&w, mail("waiting")).await;
    wait(&w, &id, "held").await;
    let path = format!("/v1/channels/{}", w.channel);
    crate::helpers::expect_problem(
        w.app.delete(&path, &w.rep.token).await,
        StatusCode::CONFLICT,
        "channel_has_mail",
    )
    .await;
    let res = w
        .app
        .delete(&format!("{path}?force=true"), &w.rep.token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // No other channel may send as the rep: the released message fails, saying why.
    let failed = wait(&w, &id, "failed").await;
    let f = events_of(&failed, "failed")[0];
    assert_eq!(f["detail"]["reason"], "no_route", "{failed:#}");
    assert!(
        kinds(&failed).contains(&"released".to_owned()),
        "{failed:#}"
    );
}

#[tokio::test]
async fn metrics_count_outcomes_and_the_shared_queue_without_tenant_labels() {
    let w = crate::messages::world_with(&[(
        "SWITCHBOARD_METRICS_TOKEN",
        "Canary-Metrics-Token-0123456789",
    )])
    .await;
    let id = send_id(&w, mail("counted")).await;
    wait(&w, &id, "sent").await;
    let anonymous = w
        .app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let text = w
        .app
        .request(
            reqwest::Method::GET,
            "/metrics",
            Some("Canary-Metrics-Token-0123456789"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "switchboard_messages_accepted_total{status=\"queued\"} 1",
        "switchboard_messages_total{channel_kind=\"smtp\",outcome=\"sent\",class=\"ok\"} 1",
        "switchboard_send_attempt_seconds_count{channel_kind=\"smtp\",result=\"ok\"} 1",
        "switchboard_queue_depth{status=\"sent\"} 1",
        "switchboard_channels{status=\"active\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    for private in [w.acme.id.as_str(), w.channel.as_str(), REP, "acme"] {
        assert!(!text.contains(private), "{private} in metrics");
    }
}

#[tokio::test]
async fn retention_removes_bodies_but_keeps_the_log() {
    let w = world().await;
    let id = send_id(&w, mail("short-lived")).await;
    wait(&w, &id, "sent").await;
    let (store, _) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
    let later = chrono::Utc::now().timestamp_micros() + 1;
    let pruned = store
        .run_blocking(|c| switchboard::store::messages::prune_bodies(c, later, 100))
        .unwrap();
    assert_eq!(pruned, 1);
    let view = wait(&w, &id, "sent").await;
    assert_eq!(view["body_retained"], false);
    assert_eq!(view["subject"], "short-lived");
    assert_eq!(
        kinds(&view),
        ["accepted", "routed", "attempt", "sent"],
        "the log stays"
    );
}

#[tokio::test]
async fn mail_already_queued_when_sending_is_switched_off_is_held_and_released_after() {
    let w = world().await;
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 451,
        text: "4.3.2 try again later".into(),
    }));
    let id = send_id(&w, mail("paused")).await;
    wait_until_deferred_after_attempts(&w, &id, 1).await;
    let switch = |on: bool| {
        w.app.patch(
            "/v1/tenant",
            &w.acme.admin_token,
            json!({"sending_enabled": on}),
        )
    };
    expect_json(switch(false).await, StatusCode::OK).await;
    w.server.set_fault(None);
    let held = wait(&w, &id, "held").await;
    assert_eq!(held["hold_reason"], "sending_disabled", "{held:#}");
    assert!(
        w.server.messages().is_empty(),
        "nothing leaves while switched off"
    );
    expect_json(switch(true).await, StatusCode::OK).await;
    let sent = wait(&w, &id, "sent").await;
    let released = events_of(&sent, "released")[0];
    assert!(
        released["detail"]["why"]
            .as_str()
            .unwrap()
            .contains("switched back on"),
        "{sent:#}"
    );
}

#[tokio::test]
async fn admins_change_settings_while_mail_flows_without_errors() {
    let w = world().await;
    let batch: Vec<Value> = (0..300).map(|n| mail(&format!("flow {n}"))).collect();
    let accepted = expect_json(
        w.app
            .post(
                "/v1/messages/batch",
                &w.rep.token,
                json!({ "messages": batch }),
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(accepted["results"].as_array().unwrap().len(), 300);
    // Each change reads the channel, then writes it, while the workers write constantly.
    for n in 0..40 {
        expect_json(
            w.app
                .patch(
                    &format!("/v1/channels/{}", w.channel),
                    &w.rep.token,
                    json!({"name": format!("Mailbox {n}")}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
    }
    w.server.wait_for_messages(300, PATIENCE).await;
}

#[tokio::test]
async fn an_offboarded_reps_queued_mail_waits_until_they_are_enabled_again() {
    let w = world().await;
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 451,
        text: "4.3.2 try again later".into(),
    }));
    let id = send_id(&w, mail("before offboarding")).await;
    wait_until_deferred_after_attempts(&w, &id, 1).await;
    let user = format!("/v1/users/{}", w.rep.id);
    expect_json(
        w.app
            .patch(&user, &w.acme.admin_token, json!({"disabled": true}))
            .await,
        StatusCode::OK,
    )
    .await;
    w.server.set_fault(None);
    let held = w
        .app
        .wait_for_message(&w.acme.admin_token, &id, "held", PATIENCE)
        .await;
    assert_eq!(held["hold_reason"], "sender_disabled", "{held:#}");
    assert!(w.server.messages().is_empty());
    expect_json(
        w.app
            .patch(&user, &w.acme.admin_token, json!({"disabled": false}))
            .await,
        StatusCode::OK,
    )
    .await;
    wait(&w, &id, "sent").await;
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_record_an_outcome() {
    use switchboard::store::delivery::{self, Attempt, Completion, Finished};
    let w = crate::messages::world_with(&[("SWITCHBOARD_DELIVERY", "off")]).await;
    let id = send_id(&w, mail("contested")).await;
    let (store, _) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
    // Worker A claims with a lease that is already over; worker B takes the message over.
    let a = store
        .run_blocking(|c| {
            delivery::claim(
                c,
                "worker-a",
                10,
                -1,
                Some(0),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    assert_eq!(a.len(), 1);
    let b = store
        .run_blocking(|c| {
            delivery::claim(
                c,
                "worker-b",
                10,
                60_000_000,
                Some(0),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    assert_eq!(b.len(), 1, "an expired lease is taken over");
    let channel = w.channel.parse().unwrap();
    let tenant = w.acme.id.parse().unwrap();
    let sent = |reply: &str| Finished {
        id: id.parse().unwrap(),
        tenant,
        recipient_count: 1,
        route: Some(json!({"channel_id": channel})),
        rerouted: false,
        attempt: Some(Attempt {
            channel,
            class: "ok",
            code: None,
            reply: reply.into(),
            duration_ms: 1,
            recipients: Vec::new(),
            possibly_delivered: false,
            dkim: None,
            reconciled: false,
        }),
        completion: Completion::Sent {
            channel,
            reply: reply.into(),
        },
        recipients: None,
    };
    let late = store
        .run_blocking(|c| {
            delivery::complete(
                c,
                "worker-a",
                &[sent("from a")],
                &[],
                &Default::default(),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    assert_eq!(late.lost_leases, 1, "A's outcome is not recorded");
    let view = expect_json(
        w.app.get(&format!("/v1/messages/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["status"], "sending", "still B's: {view:#}");
    let owner = store
        .run_blocking(|c| {
            delivery::complete(
                c,
                "worker-b",
                &[sent("from b")],
                &[],
                &Default::default(),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    assert_eq!(owner.lost_leases, 0);
    let view = wait(&w, &id, "sent").await;
    let replies: Vec<&Value> = events_of(&view, "sent")
        .iter()
        .map(|e| &e["detail"]["reply"])
        .collect();
    assert_eq!(replies, [&json!("from b")]);
}
