//! Scheduled sending (`send_at`) and cancelling (`POST /v1/messages/{id}/cancel`), with a real
//! SMTP server and the app's clock moved forward instead of waiting.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::expect_json;
use crate::messages::{World, mail, send, send_id, world};
use crate::smtp_server::Fault;

const PATIENCE: Duration = Duration::from_secs(30);

fn at(w: &World, ahead: chrono::Duration) -> String {
    (w.app.clock.now() + ahead).to_rfc3339()
}

fn scheduled(subject: &str, send_at: &str) -> Value {
    let mut m = mail(subject);
    m["send_at"] = json!(send_at);
    m
}

async fn view(w: &World, token: &str, id: &str) -> Value {
    expect_json(
        w.app.get(&format!("/v1/messages/{id}"), token).await,
        StatusCode::OK,
    )
    .await
}

async fn cancel(w: &World, token: &str, id: &str) -> reqwest::Response {
    w.app
        .post(&format!("/v1/messages/{id}/cancel"), token, json!({}))
        .await
}

/// Sends an unscheduled message and waits until it is sent: proof that the workers made
/// passes since the scheduled mail was accepted.
async fn a_pass_went_by(w: &World, subject: &str) {
    let id = send_id(w, mail(subject)).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
}

fn subjects(w: &World) -> Vec<String> {
    w.server
        .messages()
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(&m.data)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn a_scheduled_message_waits_for_its_time_then_goes() {
    let w = world().await;
    let send_at = at(&w, chrono::Duration::hours(2));
    let accepted = send(&w, scheduled("later", &send_at)).await;
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap();
    let shown = view(&w, &w.rep.token, id).await;
    assert_eq!(shown["status"], "queued", "{shown:#}");
    let parsed = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}"))).unwrap()
    };
    let asked = chrono::DateTime::parse_from_rfc3339(&send_at).unwrap();
    assert_eq!(parsed(&shown["send_at"]), asked, "{shown:#}");
    assert_eq!(parsed(&shown["next_attempt_at"]), asked, "{shown:#}");
    assert!(
        shown["events"][0]["detail"]["send_at"].is_string(),
        "{shown:#}"
    );

    a_pass_went_by(&w, "now").await;
    assert_eq!(view(&w, &w.rep.token, id).await["status"], "queued");
    assert_eq!(subjects(&w), vec!["now"]);

    w.app.clock.advance(Duration::from_secs(2 * 3600 + 1));
    let sent = w
        .app
        .wait_for_message(&w.rep.token, id, "sent", PATIENCE)
        .await;
    assert_eq!(sent["attempts"], 1, "{sent:#}");
    assert_eq!(subjects(&w), vec!["now", "later"]);
}

#[tokio::test]
async fn a_time_already_past_sends_at_once_and_a_batch_schedules_each_message() {
    let w = world().await;
    let past = at(&w, -chrono::Duration::minutes(5));
    let id = send_id(&w, scheduled("overdue", &past)).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;

    let later = at(&w, chrono::Duration::hours(1));
    let batch = expect_json(
        w.app
            .post(
                "/v1/messages/batch",
                &w.rep.token,
                json!({"messages": [scheduled("batch later", &later), mail("batch now")]}),
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let ids: Vec<&str> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    w.app
        .wait_for_message(&w.rep.token, ids[1], "sent", PATIENCE)
        .await;
    assert_eq!(view(&w, &w.rep.token, ids[0]).await["status"], "queued");
    w.app.clock.advance(Duration::from_secs(3601));
    w.app
        .wait_for_message(&w.rep.token, ids[0], "sent", PATIENCE)
        .await;
}

#[tokio::test]
async fn a_cancelled_message_is_never_sent() {
    let w = world().await;
    let id = send_id(
        &w,
        scheduled("withdrawn", &at(&w, chrono::Duration::hours(1))),
    )
    .await;
    let cancelled = expect_json(cancel(&w, &w.rep.token, &id).await, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["recipients"][0]["status"], "cancelled");
    let last = cancelled["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "cancelled", "{cancelled:#}");
    assert_eq!(last["detail"]["by"], w.rep.id.as_str());
    // Asking again changes nothing and says so the same way.
    let again = expect_json(cancel(&w, &w.rep.token, &id).await, StatusCode::OK).await;
    assert_eq!(again["events"], cancelled["events"]);

    w.app.clock.advance(Duration::from_secs(2 * 3600));
    a_pass_went_by(&w, "other").await;
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "cancelled");
    assert_eq!(subjects(&w), vec!["other"]);
    let listed = expect_json(
        w.app
            .get("/v1/messages?status=cancelled", &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        listed["messages"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
}

#[tokio::test]
async fn held_and_deferred_mail_can_be_cancelled_but_sent_mail_cannot() {
    let w = world().await;
    // The server refuses for now: the message is deferred.
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 451,
        text: "4.3.0 try later".into(),
    }));
    let deferred = send_id(&w, mail("deferred")).await;
    w.app
        .wait_for_message(&w.rep.token, &deferred, "deferred", PATIENCE)
        .await;
    let answer = expect_json(cancel(&w, &w.rep.token, &deferred).await, StatusCode::OK).await;
    assert_eq!(answer["status"], "cancelled");
    w.server.set_fault(None);

    let sent = send_id(&w, mail("sent")).await;
    w.app
        .wait_for_message(&w.rep.token, &sent, "sent", PATIENCE)
        .await;
    let refused = cancel(&w, &w.rep.token, &sent).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "message_finished", "{problem:#}");
    assert_eq!(view(&w, &w.rep.token, &sent).await["status"], "sent");
    // The cancelled one stayed cancelled though the server works again.
    a_pass_went_by(&w, "after").await;
    assert_eq!(
        view(&w, &w.rep.token, &deferred).await["status"],
        "cancelled"
    );
    assert_eq!(subjects(&w), vec!["sent", "after"]);
}

#[tokio::test]
async fn mail_being_sent_cannot_be_cancelled() {
    let w = world().await;
    w.server.set_fault(Some(Fault::SlowData {
        delay: Duration::from_secs(3),
    }));
    let id = send_id(&w, mail("slow")).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sending", PATIENCE)
        .await;
    let refused = cancel(&w, &w.rep.token, &id).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "message_in_flight", "{problem:#}");
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
}

#[tokio::test]
async fn who_may_cancel_and_what_bad_times_get() {
    let w = world().await;
    let id = send_id(
        &w,
        scheduled("guarded", &at(&w, chrono::Duration::hours(1))),
    )
    .await;
    let other = w
        .app
        .create_user(&w.acme, "bob@acme.test", "rep", None)
        .await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    assert_eq!(
        cancel(&w, &other.token, &id).await.status(),
        StatusCode::NOT_FOUND,
        "another rep's mail is not theirs to see"
    );
    assert_eq!(
        cancel(&w, &it.token, &id).await.status(),
        StatusCode::FORBIDDEN
    );
    let rival = w.app.create_tenant("Rival").await;
    assert_eq!(
        cancel(&w, &rival.admin_token, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cancel(&w, &w.rep.token, "not-an-id").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "queued");
    // The tenant's admin may.
    let by_admin = expect_json(cancel(&w, &w.acme.admin_token, &id).await, StatusCode::OK).await;
    assert_eq!(by_admin["status"], "cancelled");

    for (send_at, code) in [
        ("tomorrow at nine", "invalid_send_at"),
        ("2026-12-03T09:30:00", "invalid_send_at"),
        (
            &*(w.app.clock.now() + chrono::Duration::days(400)).to_rfc3339(),
            "send_at_too_far",
        ),
    ] {
        let answer = w
            .app
            .post("/v1/messages", &w.rep.token, scheduled("bad", send_at))
            .await;
        assert_eq!(
            answer.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{send_at}"
        );
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], code, "{problem:#}");
        assert!(
            problem["detail"].as_str().unwrap().contains("RFC 3339")
                || problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("within a year"),
            "{problem:#}"
        );
    }
    let all = expect_json(
        w.app.get("/v1/messages", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        all["messages"].as_array().unwrap().len(),
        1,
        "nothing bad was stored"
    );
}

#[tokio::test]
async fn the_upgrade_that_allows_cancelling_keeps_every_message_event_and_unsubscribe_link() {
    use switchboard::store::{Store, migrations};
    let w = world().await;
    let mut with_link = mail("with a link");
    with_link["unsubscribe"] = json!(true);
    let sent = send_id(&w, with_link).await;
    w.app
        .wait_for_message(&w.rep.token, &sent, "sent", PATIENCE)
        .await;
    let before = view(&w, &w.rep.token, &sent).await;
    let config = w.app.config();
    let keys = w.app.master_keys.clone();
    let World { app, rep, .. } = w;
    let setup = app.stop().await;
    let store = Store::open(&config.database, 1).unwrap();
    let links = |conn: &mut switchboard::store::DbConnection| -> i64 {
        use diesel::prelude::*;
        let count = diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM unsubscribe_tokens)",
        );
        match conn {
            switchboard::store::DbConnection::Sqlite(c) => {
                diesel::select(count).get_result(c).unwrap()
            }
            switchboard::store::DbConnection::Postgresql(c) => {
                diesel::select(count).get_result(c).unwrap()
            }
        }
    };
    store
        .run_blocking(move |conn| {
            assert_eq!(links(conn), 1);
            let reverted = migrations::revert_newer_than(conn, "2026-12-02-000021")?;
            assert!(
                reverted.iter().any(|v| v.ends_with("000022")),
                "{reverted:?}"
            );
            assert_eq!(links(conn), 1, "down keeps the links");
            migrations::run_pending(conn)?;
            assert_eq!(links(conn), 1, "the rebuild keeps the links");
            Ok(())
        })
        .unwrap();
    drop(store);
    let app = setup
        .start_with_keys(&keys)
        .await
        .unwrap_or_else(|(e, _)| panic!("the upgraded app starts: {e}"));
    let after = expect_json(
        app.get(&format!("/v1/messages/{sent}"), &rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["events"], before["events"]);
    assert_eq!(after["status"], "sent");
}

#[tokio::test]
async fn the_message_page_cancels_scheduled_mail() {
    use crate::ui_client::UiClient;
    let w = world().await;
    let id = send_id(
        &w,
        scheduled("from the page", &at(&w, chrono::Duration::hours(3))),
    )
    .await;
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    let path = format!("/ui/messages/{id}");
    ui.get(&path).await.expect("Cancel message");
    // Without the page's CSRF token nothing changes.
    let forged = ui
        .post_raw(
            &format!("{path}/cancel"),
            &[],
            None,
            Some(&ui.base.clone()),
            false,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "queued");

    let done = ui.post(&format!("{path}/cancel"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    ui.follow(&done)
        .await
        .expect("Message cancelled")
        .expect("Cancelled")
        .expect_not("Cancel message");
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "cancelled");
}

#[tokio::test]
async fn scheduled_mail_held_and_released_early_still_waits_for_its_time() {
    let w = world().await;
    let channel = format!("/v1/channels/{}", w.channel);
    let patch = |disabled: bool| {
        w.app
            .patch(&channel, &w.rep.token, json!({"disabled": disabled}))
    };
    assert_eq!(patch(true).await.status(), StatusCode::OK);
    let id = send_id(
        &w,
        scheduled("held first", &at(&w, chrono::Duration::hours(1))),
    )
    .await;
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "held");
    assert_eq!(patch(false).await.status(), StatusCode::OK);
    let released = view(&w, &w.rep.token, &id).await;
    assert_eq!(released["status"], "queued", "{released:#}");
    assert_eq!(
        released["next_attempt_at"], released["send_at"],
        "{released:#}"
    );
    a_pass_went_by(&w, "meanwhile").await;
    assert_eq!(view(&w, &w.rep.token, &id).await["status"], "queued");
    w.app.clock.advance(Duration::from_secs(3601));
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
}
