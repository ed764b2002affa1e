//! Bounce auto-pause end to end: a real SMTP peer refuses recipients with `550 5.1.1`, the
//! tenant's rule (set over the API) pauses the rep's mailbox at the tenth hard bounce, its
//! later mail is held, the owner and the admins hear of it (webhook, email, audit); an admin
//! resumes it, the held mail is sent, and the bounce window starts over. Manual pause and
//! the refusals around both actions. Both backends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::notify::signature;

use crate::helpers::{expect_json, expect_problem};
use crate::messages::{REP, World, pool_relay, send_id, world_with};
use crate::smtp_server::{Fault, TestSmtpServer};
use crate::ui_client::UiClient;
use crate::webhook_receiver::{ReceivedHook, WebhookReceiver};

const PATIENCE: Duration = Duration::from_secs(30);
const ADMIN: &str = "admin@acme.test";

/// The rep's mailbox on a real SMTP server, a shared pool relay that carries the owner
/// emails, and a webhook receiver subscribed to the pause events.
struct Desk {
    w: World,
    relay: TestSmtpServer,
    hooks: WebhookReceiver,
    secret: String,
    _ca: tempfile::NamedTempFile,
}

async fn desk() -> Desk {
    let (relay, ca, pool) = pool_relay("Pause-Relay-Pw-7").await;
    let w = world_with(&[
        ("SWITCHBOARD_SHARED_POOL_URL", pool.as_str()),
        ("SWITCHBOARD_NOTIFICATION_FROM", "switchboard@platform.test"),
        ("SWITCHBOARD_PUBLIC_URL", "https://switchboard.acme.test"),
        ("SWITCHBOARD_NOTIFY_POLL_INTERVAL", "50ms"),
        ("SWITCHBOARD_NOTIFY_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_NOTIFY_RETRY_MAX", "1s"),
    ])
    .await;
    let hooks = WebhookReceiver::start().await;
    let created = expect_json(
        w.app
            .post(
                "/v1/webhooks",
                &w.acme.admin_token,
                json!({"url": hooks.url("/hooks"), "events": ["channel.paused", "channel.resumed"]}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    Desk {
        w,
        relay,
        hooks,
        secret: created["secret"].as_str().unwrap().to_owned(),
        _ca: ca,
    }
}

impl Desk {
    async fn wait_for_event(&self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found: Vec<Value> = self
                .hooks
                .requests()
                .iter()
                .map(|hook| self.verified(hook))
                .filter(|event| event["type"] == kind)
                .collect();
            if let Some(event) = found.into_iter().next() {
                return event;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {kind} event");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn verified(&self, hook: &ReceivedHook) -> Value {
        let header = hook.header("switchboard-signature").expect("signed");
        signature::verify(
            &secrecy::SecretString::from(self.secret.clone()),
            header,
            &hook.body,
            chrono::Utc::now().timestamp(),
        )
        .unwrap_or_else(|e| panic!("signature of {}: {e:?}", hook.body_text()));
        serde_json::from_slice(&hook.body).unwrap()
    }

    /// Emails the relay carried with `words` in them, as (recipients, text), once `n` exist.
    async fn emails_saying(&self, words: &str, n: usize) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found: Vec<(String, String)> = self
                .relay
                .messages()
                .into_iter()
                .map(|m| {
                    (
                        m.rcpt_to.join(","),
                        String::from_utf8_lossy(&m.data).into_owned(),
                    )
                })
                .filter(|(_, text)| text.contains(words))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} emails saying {words:?}: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn channel(&self) -> Value {
        expect_json(
            self.w
                .app
                .get(
                    &format!("/v1/channels/{}", self.w.channel),
                    &self.w.acme.admin_token,
                )
                .await,
            StatusCode::OK,
        )
        .await
    }

    async fn audit(&self, action: &str) -> Vec<Value> {
        let all = expect_json(
            self.w
                .app
                .get(
                    &format!("/v1/audit?channel_id={}", self.w.channel),
                    &self.w.acme.admin_token,
                )
                .await,
            StatusCode::OK,
        )
        .await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }
}

fn mail(to: &[String], subject: &str) -> Value {
    json!({"from": REP, "to": to, "subject": subject, "text": "Hello"})
}

fn bouncing(n: usize) -> String {
    format!("gone{n}@example.com")
}

/// Sends one message to a good and a bouncing address and waits until it is recorded.
async fn one_good_one_bounced(w: &World, n: usize) {
    let id = send_id(
        w,
        mail(&[format!("ok{n}@example.com"), bouncing(n)], "step"),
    )
    .await;
    w.app
        .wait_for_message(&w.rep.token, &id, "partially_sent", PATIENCE)
        .await;
}

/// `POST /v1/channels/{id}/pause` or `…/resume` on the world's channel as `token`'s holder.
async fn act(w: &World, action: &str, token: &str) -> reqwest::Response {
    w.app
        .post(
            &format!("/v1/channels/{}/{action}", w.channel),
            token,
            json!({}),
        )
        .await
}

#[tokio::test]
async fn ten_hard_bounces_pause_the_mailbox_and_a_resume_releases_its_mail() {
    let d = desk().await;
    let w = &d.w;
    // The rule: 20 % over at least 20 recipients (the defaults, 3 % of 50, would pause at
    // the second bounce of this test's sample).
    let tenant = expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"bounce_pause": {"threshold_percent": 20, "min_sends": 20}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        tenant["bounce_pause"],
        json!({"threshold_percent": 20.0, "min_sends": 20, "window_days": 7})
    );
    for n in 0..10 {
        w.server.set_rcpt_reply(
            &bouncing(n),
            Some((550, "5.1.1 <gone@example.com>: User unknown")),
        );
    }
    // Nine messages: 9 bounces of 18 recipients, under the minimum sample.
    for n in 0..9 {
        one_good_one_bounced(w, n).await;
    }
    assert_eq!(d.channel().await["status"], "active");
    // The tenth: 10 of 20, at the minimum and over the threshold.
    one_good_one_bounced(w, 9).await;
    let paused = d.channel().await;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["status_cause"], "bounce_rate");
    assert_eq!(
        paused["pause"]["figures"],
        json!({"sends": 20, "hard_bounces": 10, "rate_percent": 50.0,
               "threshold_percent": 20.0, "min_sends": 20, "window_days": 7}),
        "{paused:#}"
    );
    assert_eq!(paused["pause"]["by"], "system");
    assert!(
        paused["pause"]["until"].is_null(),
        "only a person resumes it"
    );

    // Later mail waits.
    let held = send_id(w, mail(&["later@example.com".into()], "held")).await;
    w.app
        .wait_for_message(&w.rep.token, &held, "held", PATIENCE)
        .await;
    let delivered = w.server.messages().len();

    // Told: the webhook, the audit trail, an email to the rep and one to the admin.
    let event = d.wait_for_event("channel.paused").await;
    assert_eq!(event["data"]["cause"], "bounce_rate", "{event:#}");
    assert_eq!(event["data"]["figures"]["hard_bounces"], 10);
    assert_eq!(event["data"]["channel"]["status"], "paused");
    let audit = d.audit("channel.paused").await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["actor"], "system");
    assert_eq!(audit[0]["detail"]["figures"]["sends"], 20);
    let emails = d.emails_saying("was paused", 2).await;
    let to: Vec<&str> = emails.iter().map(|(to, _)| to.as_str()).collect();
    assert!(to.contains(&REP) && to.contains(&ADMIN), "{to:?}");
    assert!(
        emails[0].1.contains("10 of 20 recipients"),
        "{}",
        emails[0].1
    );

    // The rep may not resume it; the admin does, and the held mail goes.
    expect_problem(
        act(w, "resume", &w.rep.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let resumed = expect_json(act(w, "resume", &w.acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(resumed["status"], "active", "{resumed:#}");
    w.app
        .wait_for_message(&w.rep.token, &held, "sent", PATIENCE)
        .await;
    assert_eq!(w.server.messages().len(), delivered + 1);
    let audit = d.audit("channel.resumed").await;
    assert_eq!(audit[0]["actor"], format!("user:{}", w.acme.admin_id));
    assert_eq!(audit[0]["detail"]["released"], 1, "{audit:#?}");
    assert_eq!(audit[0]["detail"]["cause_was"], "bounce_rate");
    let event = d.wait_for_event("channel.resumed").await;
    assert_eq!(event["data"]["released"], 1, "{event:#}");
    expect_problem(
        act(w, "resume", &w.acme.admin_token).await,
        StatusCode::CONFLICT,
        "channel_not_paused",
    )
    .await;

    // The window started over: one more bounce of two recipients is under the minimum sample
    // (with the old counts it would have been 11 of 22).
    w.server
        .set_rcpt_reply(&bouncing(10), Some((550, "5.1.1 User unknown")));
    one_good_one_bounced(w, 10).await;
    assert_eq!(d.channel().await["status"], "active");

    // A bounced address is refused at acceptance from now on.
    expect_problem(
        w.app
            .post("/v1/messages", &w.rep.token, mail(&[bouncing(3)], "again"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "recipient_suppressed",
    )
    .await;
}

#[tokio::test]
async fn an_admin_pauses_and_resumes_by_hand_and_others_may_not() {
    let w = world_with(&[]).await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    for token in [&w.rep.token, &it.token] {
        expect_problem(
            act(&w, "pause", token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // Another tenant's admin does not see the channel at all.
    let other = w.app.create_tenant("Globex").await;
    expect_problem(
        act(&w, "pause", &other.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        act(&w, "resume", &w.acme.admin_token).await,
        StatusCode::CONFLICT,
        "channel_not_paused",
    )
    .await;
    let paused = expect_json(act(&w, "pause", &w.acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["status_cause"], "manual");
    assert_eq!(paused["pause"]["by"], format!("user:{}", w.acme.admin_id));
    expect_problem(
        act(&w, "pause", &w.acme.admin_token).await,
        StatusCode::CONFLICT,
        "channel_not_pausable",
    )
    .await;
    let held = send_id(&w, mail(&["ann@example.com".into()], "paused")).await;
    let view = w
        .app
        .wait_for_message(&w.rep.token, &held, "held", PATIENCE)
        .await;
    assert!(
        view["route"].to_string().contains("paused"),
        "the route names the pause: {view:#}"
    );
    assert!(w.server.messages().is_empty());
    expect_json(act(&w, "resume", &w.acme.admin_token).await, StatusCode::OK).await;
    w.app
        .wait_for_message(&w.rep.token, &held, "sent", PATIENCE)
        .await;
}

#[tokio::test]
async fn a_bad_bounce_rule_is_refused_and_changes_nothing() {
    let w = world_with(&[]).await;
    for (body, field) in [
        (
            json!({"threshold_percent": 0}),
            "bounce_pause.threshold_percent",
        ),
        (
            json!({"threshold_percent": 25}),
            "bounce_pause.threshold_percent",
        ),
        (
            json!({"threshold_percent": 2.125}),
            "bounce_pause.threshold_percent",
        ),
        (json!({"min_sends": 0}), "bounce_pause.min_sends"),
        (json!({"window_days": 0}), "bounce_pause.window_days"),
        (json!({"window_days": 91}), "bounce_pause.window_days"),
    ] {
        let problem = expect_problem(
            w.app
                .patch(
                    "/v1/tenant",
                    &w.acme.admin_token,
                    json!({"bounce_pause": body, "sending_enabled": false}),
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem:#}"
        );
    }
    let tenant = expect_json(
        w.app.get("/v1/tenant", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["sending_enabled"], true, "nothing changed");
    assert_eq!(
        tenant["bounce_pause"],
        json!({"threshold_percent": 3.0, "min_sends": 50, "window_days": 7})
    );
    // A rep may not change it.
    expect_problem(
        w.app
            .patch(
                "/v1/tenant",
                &w.rep.token,
                json!({"bounce_pause": {"min_sends": 1}}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn the_paused_status_migration_keeps_channels_domains_and_tokens_both_ways() {
    use switchboard::store::{Store, migrations};

    let w = world_with(&[]).await;
    let admin = &w.acme.admin_token;
    let relay = expect_json(
        w.app
            .post(
                "/v1/channels",
                admin,
                json!({"name": "Acme relay", "kind": "smtp", "owner": {"tenant": true},
                       "scope": "domain", "domains": ["acme.test"],
                       "smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "auth": "none"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let relay_id = relay["id"].as_str().unwrap().to_owned();
    expect_json(
        w.app
            .post(&format!("/v1/channels/{relay_id}/pause"), admin, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let config = w.app.config();
    let keys = w.app.master_keys.clone();
    let World {
        app, acme, channel, ..
    } = w;
    let setup = app.stop().await;
    let store = Store::open(&config.database, 1).unwrap();
    store
        .run_blocking(|conn| {
            let reverted = migrations::revert_newer_than(conn, "2026-12-02-000020")?;
            assert!(
                reverted.iter().any(|v| v.ends_with("000021")),
                "{reverted:?}"
            );
            migrations::run_pending(conn)?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let app = setup
        .start_with_keys(&keys)
        .await
        .unwrap_or_else(|(e, _)| panic!("the migrated app starts: {e}"));
    let relay = expect_json(
        app.get(&format!("/v1/channels/{relay_id}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(relay["domains"], json!(["acme.test"]), "{relay:#}");
    // Reverting cannot keep `paused`: the channel is disabled, never sending by itself.
    assert_eq!(relay["status"], "disabled", "{relay:#}");
    let mailbox = expect_json(
        app.get(&format!("/v1/channels/{channel}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mailbox["status"], "active");
    assert_eq!(mailbox["has_credential"], true, "{mailbox:#}");
}

#[tokio::test]
async fn the_channel_page_shows_the_pause_and_lets_admins_pause_and_resume() {
    let w = world_with(&[]).await;
    let page_path = format!("/ui/channels/{}", w.channel);
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    admin
        .get(&page_path)
        .await
        .expect("Pause channel")
        .expect_not("Resume channel");
    rep.get(&page_path).await.expect_not("Pause channel");

    // A forged form changes nothing.
    let forged = admin
        .post_raw(
            &format!("{page_path}/pause"),
            &[],
            Some("guess"),
            None,
            false,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let paused = admin.post(&format!("{page_path}/pause"), &[]).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.html);
    admin
        .follow(&paused)
        .await
        .expect("Channel paused")
        .expect("Paused by an admin")
        .expect("Resume channel")
        .expect("an admin resumes it");
    // The rep sees why, without the button, and may not resume by posting either.
    rep.get(&page_path)
        .await
        .expect("Paused by an admin")
        .expect_not("Resume channel");
    let refused = rep.post(&format!("{page_path}/resume"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);

    let resumed = admin.post(&format!("{page_path}/resume"), &[]).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER, "{}", resumed.html);
    admin
        .follow(&resumed)
        .await
        .expect("Channel resumed")
        .expect("Pause channel");
    // Resuming an active channel again: the page says why, with 409.
    let again = admin.post(&format!("{page_path}/resume"), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);
    again.expect("not paused");
}

#[tokio::test]
async fn a_bounce_pause_shows_its_figures_on_the_channel_page() {
    let w = world_with(&[]).await;
    expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"bounce_pause": {"threshold_percent": 10, "min_sends": 2}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    w.server
        .set_rcpt_reply(&bouncing(0), Some((550, "5.1.1 User unknown")));
    one_good_one_bounced(&w, 0).await;
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    admin
        .get(&format!("/ui/channels/{}", w.channel))
        .await
        .expect("Paused: too many hard bounces")
        .expect("1 of 2 recipients in the last 7 day(s) were hard bounces (50 %)")
        .expect("the threshold is 10 % over at least 2 sends")
        .expect("Resume channel");
    admin
        .get("/ui/channels")
        .await
        .expect("Paused: bounce rate");
    // The settings page states the rule in force, for admins and IT alike.
    admin.get("/ui/settings").await.expect(
        "A channel pauses when 10 % or more of its recipients hard-bounce over 7 day(s), once it has mailed at least 2.",
    );
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let mut it = UiClient::signed_in(&w.app, &it.token).await;
    it.get("/ui/settings")
        .await
        .expect("Bounce auto-pause")
        .expect("10 % or more");
}

#[tokio::test]
async fn an_smtp_outbound_spam_block_pauses_the_mailbox_instead_of_failing_the_mail() {
    let w = world_with(&[]).await;
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 550,
        text: "5.1.8 Access denied, bad outbound sender".into(),
    }));
    let id = send_id(&w, mail(&["ann@example.com".into()], "blocked")).await;
    let held = w
        .app
        .wait_for_message(&w.rep.token, &id, "held", PATIENCE)
        .await;
    let attempts = crate::helpers::attempts(&held);
    assert!(
        attempts[0]["detail"]["reply"]
            .as_str()
            .unwrap()
            .contains("5.1.8"),
        "{held:#}"
    );
    let channel = expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["status"], "paused", "{channel:#}");
    assert_eq!(channel["status_cause"], "sender_blocked");
    // Microsoft released the account; the admin resumes and the mail goes.
    w.server.set_fault(None);
    expect_json(act(&w, "resume", &w.acme.admin_token).await, StatusCode::OK).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
}
