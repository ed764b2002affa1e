//! IT's day, end to end against real servers: a mailbox password changes at the provider,
//! the channel goes `needs_reauth`, its mail is held, the owner is emailed once (through the
//! shared pool, a second real SMTP server) and the tenant's webhook is told (a real HTTP
//! receiver, signature checked); rotation releases the mail. Servers that keep failing make a
//! channel `failing` and the scheduled check brings it back. Quotas warn at 90 %.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::notify::signature;

use crate::helpers::{expect_json, expect_problem};
use crate::messages::{PASSWORD, REP, World, mail, pool_relay, send_id, world_with};
use crate::smtp_server::{Fault, SmtpServerConfig, TestSmtpServer};
use crate::webhook_receiver::{ReceivedHook, WebhookReceiver, verify_with_recipe};

const NEW_PASSWORD: &str = "Canary-Rotated-Pw-7c1";
const RELAY_PASSWORD: &str = "Canary-Relay-Pw-31d";
const EVENTS: [&str; 6] = [
    "channel.needs_reauth",
    "channel.failing",
    "channel.recovered",
    "credential.rotated",
    "message.failed",
    "quota.near_limit",
];

/// A world with a shared pool (the relay that carries owner emails), fast notification
/// retries, and a webhook receiver subscribed to every event.
struct Desk {
    w: World,
    relay: TestSmtpServer,
    hooks: WebhookReceiver,
    secret: String,
    webhook: String,
    _ca: tempfile::NamedTempFile,
}

async fn desk(extra: &[(&str, &str)]) -> Desk {
    let (relay, ca, pool) = pool_relay(RELAY_PASSWORD).await;
    let mut env = vec![
        ("SWITCHBOARD_SHARED_POOL_URL", pool.as_str()),
        ("SWITCHBOARD_NOTIFICATION_FROM", "switchboard@platform.test"),
        ("SWITCHBOARD_PUBLIC_URL", "https://switchboard.acme.test"),
        ("SWITCHBOARD_NOTIFY_POLL_INTERVAL", "50ms"),
        ("SWITCHBOARD_NOTIFY_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_NOTIFY_RETRY_MAX", "1s"),
    ];
    env.extend_from_slice(extra);
    let w = world_with(&env).await;
    let hooks = WebhookReceiver::start().await;
    let created = expect_json(
        w.app
            .post(
                "/v1/webhooks",
                &w.acme.admin_token,
                json!({"url": hooks.url("/switchboard"), "events": EVENTS}),
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
        webhook: created["id"].as_str().unwrap().to_owned(),
        _ca: ca,
    }
}

impl Desk {
    /// The events received so far of one type, each checked against its signature.
    fn events(&self, kind: &str) -> Vec<Value> {
        self.hooks
            .requests()
            .iter()
            .map(|hook| self.verified(hook))
            .filter(|event| event["type"] == kind)
            .collect()
    }

    fn verified(&self, hook: &ReceivedHook) -> Value {
        let header = hook.header("switchboard-signature").expect("signed");
        signature::verify(
            &SecretString::from(self.secret.clone()),
            header,
            &hook.body,
            chrono::Utc::now().timestamp(),
        )
        .unwrap_or_else(|e| panic!("signature of {}: {e:?}", hook.body_text()));
        let event: Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(hook.header("switchboard-event"), event["type"].as_str());
        assert_eq!(hook.header("switchboard-event-id"), event["id"].as_str());
        event
    }

    async fn wait_for_event(&self, kind: &str) -> Value {
        self.wait_for_events(kind, 1).await.pop().unwrap()
    }

    async fn wait_for_events(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events(kind);
            if events.len() >= n {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} {kind} events; got {:?}",
                self.hooks
                    .requests()
                    .iter()
                    .map(ReceivedHook::body_text)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Owner emails the relay carried, as (recipient, text).
    fn emails(&self) -> Vec<(String, String)> {
        self.relay
            .messages()
            .into_iter()
            .map(|m| {
                (
                    m.rcpt_to.join(","),
                    String::from_utf8_lossy(&m.data).into_owned(),
                )
            })
            .collect()
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

    async fn wait_for_status(&self, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let channel = self.channel().await;
            if channel["status"] == status {
                return channel;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "channel never became {status}: {channel:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn rotate(&self, password: &str) -> reqwest::Response {
        self.w
            .app
            .call(
                reqwest::Method::PUT,
                &format!("/v1/channels/{}/credentials", self.w.channel),
                &self.w.acme.admin_token,
                Some(json!({"password": password})),
            )
            .await
    }

    async fn audit_actions(&self) -> Vec<String> {
        let audit = expect_json(
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
        let mut actions: Vec<(String, String)> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["at"].as_str().unwrap().to_owned(),
                    e["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        actions.sort();
        actions.into_iter().map(|(_, a)| a).collect()
    }
}

async fn wait_sent(w: &World, ids: &[String]) {
    for id in ids {
        w.app
            .wait_for_message(&w.rep.token, id, "sent", Duration::from_secs(30))
            .await;
    }
}

async fn status_of(w: &World, id: &str) -> String {
    expect_json(
        w.app.get(&format!("/v1/messages/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_password_change_holds_mail_tells_the_owner_once_and_a_rotation_releases_it() {
    let d = desk(&[]).await;
    let first = send_id(&d.w, mail("before the change")).await;
    wait_sent(&d.w, std::slice::from_ref(&first)).await;

    // IT changes the mailbox password at the provider; mail keeps coming.
    d.w.server.set_password(REP, NEW_PASSWORD);
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(send_id(&d.w, mail(&format!("during the outage {i}"))).await);
    }
    let channel = d.wait_for_status("needs_reauth").await;
    assert_eq!(channel["status_cause"], "auth_rejected");
    assert!(
        channel["health"]["advice"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{channel:#}"
    );
    for id in &held {
        d.w.app
            .wait_for_message(&d.w.rep.token, id, "held", Duration::from_secs(20))
            .await;
    }

    // Told once: one webhook event and one email to the rep, however many messages wait.
    let event = d.wait_for_event("channel.needs_reauth").await;
    assert_eq!(event["data"]["channel"]["id"], d.w.channel.as_str());
    assert_eq!(event["data"]["cause"], "auth_rejected");
    assert_eq!(event["tenant_id"], d.w.acme.id.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while d.emails().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no owner email");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.events("channel.needs_reauth").len(), 1);
    let emails = d.emails();
    assert_eq!(emails.len(), 1, "{emails:?}");
    let (to, text) = &emails[0];
    assert_eq!(to, REP);
    assert!(text.contains("My mailbox"), "{text}");
    assert!(text.contains("held, not lost"), "{text}");
    assert!(text.contains("https://switchboard.acme.test"), "{text}");

    // A wrong new password is refused and changes nothing.
    let before = d.channel().await;
    let refused = expect_problem(
        d.rotate("Not-The-Password").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
    )
    .await;
    assert!(refused.to_string().contains("auth"), "{refused}");
    let after = d.channel().await;
    assert_eq!(after["status"], "needs_reauth");
    assert_eq!(
        after["credential_updated_at"],
        before["credential_updated_at"]
    );

    // The right one: verified, active, the held mail goes out in order.
    let rotated = expect_json(d.rotate(NEW_PASSWORD).await, StatusCode::OK).await;
    assert_eq!(rotated["status"], "active");
    wait_sent(&d.w, &held).await;
    let mut subjects: Vec<String> =
        d.w.server
            .messages()
            .iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .filter_map(|data| {
                data.lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            })
            .collect();
    let mut expected: Vec<String> = std::iter::once("before the change".to_owned())
        .chain((0..8).map(|i| format!("during the outage {i}")))
        .collect();
    // Released in the order they came, sent over several sessions at once: each exactly once.
    subjects.sort();
    expected.sort();
    assert_eq!(subjects, expected, "each exactly once");

    let rotated_event = d.wait_for_event("credential.rotated").await;
    assert_eq!(rotated_event["data"]["verified"], true);
    let recovered = d.wait_for_event("channel.recovered").await;
    assert_eq!(recovered["data"]["from"], "needs_reauth");
    assert_eq!(recovered["data"]["released"], 8);

    let actions = d.audit_actions().await;
    let wanted = [
        "channel.created",
        "channel.needs_reauth",
        "credential.rotated",
    ];
    let found: Vec<&String> = actions
        .iter()
        .filter(|a| wanted.contains(&a.as_str()))
        .collect();
    assert_eq!(found, wanted, "in this order: {actions:?}");

    // No secret anywhere people or receivers read.
    let audit =
        d.w.app
            .get("/v1/audit", &d.w.acme.admin_token)
            .await
            .text()
            .await
            .unwrap();
    let hooks: Vec<String> = d
        .hooks
        .requests()
        .iter()
        .map(ReceivedHook::body_text)
        .collect();
    let mails: Vec<String> = d.emails().into_iter().map(|(_, t)| t).collect();
    for canary in [PASSWORD, NEW_PASSWORD, RELAY_PASSWORD, d.secret.as_str()] {
        assert!(!audit.contains(canary), "audit holds a secret");
        assert!(
            !hooks.iter().any(|h| h.contains(canary)),
            "a webhook holds a secret"
        );
        assert!(
            !mails.iter().any(|m| m.contains(canary)),
            "an email holds a secret"
        );
    }
}

#[tokio::test]
async fn a_rotation_under_steady_load_loses_and_fails_nothing() {
    let d = desk(&[]).await;
    let w = &d.w;
    let total = 120;
    let mut ids = Vec::with_capacity(total);
    for i in 0..total {
        if i == 40 {
            // The provider takes the new password from here on; the old one is refused.
            w.server.set_password(REP, NEW_PASSWORD);
        }
        if i == 80 {
            expect_json(d.rotate(NEW_PASSWORD).await, StatusCode::OK).await;
        }
        ids.push(send_id(w, mail(&format!("steady {i}"))).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_sent(w, &ids).await;
    for id in &ids {
        assert_eq!(status_of(w, id).await, "sent");
    }
    let mut ids_seen: Vec<String> = w
        .server
        .messages()
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(&m.data)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect();
    assert_eq!(ids_seen.len(), total, "each message delivered exactly once");
    ids_seen.sort();
    ids_seen.dedup();
    assert_eq!(ids_seen.len(), total);
    let channel = d.channel().await;
    assert_eq!(channel["status"], "active");
    // The outage really happened in the middle of the load: the channel was marked, then
    // the rotation brought it back.
    let actions = d.audit_actions().await;
    let marked = actions.iter().position(|a| a == "channel.needs_reauth");
    let rotated = actions.iter().position(|a| a == "credential.rotated");
    assert!(marked.is_some() && marked < rotated, "{actions:?}");
}

#[tokio::test]
async fn a_server_that_keeps_failing_makes_the_channel_failing_and_a_check_brings_it_back() {
    let d = desk(&[
        ("SWITCHBOARD_HEALTH_FAILURES", "3"),
        ("SWITCHBOARD_HEALTH_PROBE_INTERVAL", "300ms"),
    ])
    .await;
    let w = &d.w;
    w.server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 451,
        text: "4.3.0 Mail server temporarily rejected message".into(),
    }));
    let ids = vec![send_id(w, mail("one")).await, send_id(w, mail("two")).await];
    let channel = d.wait_for_status("failing").await;
    assert_eq!(channel["status_cause"], "temporary_failures");
    assert!(
        channel["health"]["last_error"]
            .as_str()
            .unwrap()
            .contains("451"),
        "{channel:#}"
    );
    assert!(channel["health"]["consecutive_failures"].as_u64().unwrap() >= 3);
    let failing = d.wait_for_event("channel.failing").await;
    assert_eq!(failing["data"]["cause"], "temporary_failures");
    for id in &ids {
        w.app
            .wait_for_message(&w.rep.token, id, "held", Duration::from_secs(20))
            .await;
    }

    // The server comes back; nobody touches Switchboard.
    w.server.set_fault(None);
    d.wait_for_status("active").await;
    wait_sent(w, &ids).await;
    let recovered = d.wait_for_event("channel.recovered").await;
    assert_eq!(recovered["data"]["from"], "failing");
    let actions = d.audit_actions().await;
    let failing_at = actions.iter().position(|a| a == "channel.failing");
    let recovered_at = actions.iter().position(|a| a == "channel.recovered");
    assert!(
        failing_at.is_some() && failing_at < recovered_at,
        "{actions:?}"
    );
    let emails: Vec<String> = d.emails().into_iter().map(|(_, t)| t).collect();
    assert!(
        emails.iter().any(|t| t.contains("is failing")),
        "{emails:?}"
    );
}

#[tokio::test]
async fn fallback_delivers_the_mail_and_the_broken_primary_is_still_reported() {
    let d = desk(&[]).await;
    let w = &d.w;
    expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"fallback_policy": "fallback", "shared_pool_allowed": true}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    w.server.set_password(REP, NEW_PASSWORD);
    let id = send_id(w, mail("must arrive anyway")).await;
    let view = w
        .app
        .wait_for_message(&w.rep.token, &id, "sent", Duration::from_secs(30))
        .await;
    assert_eq!(
        view["channel_id"], "00000000-0000-0000-0000-000000000000",
        "the shared pool carried it: {view:#}"
    );
    let event = d.wait_for_event("channel.needs_reauth").await;
    assert_eq!(event["data"]["channel"]["id"], w.channel.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let owner_emails: Vec<(String, String)> = d
            .emails()
            .into_iter()
            .filter(|(_, t)| t.contains("cannot send"))
            .collect();
        if !owner_emails.is_empty() {
            assert_eq!(owner_emails[0].0, REP);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner was never told"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_webhook_receiver_that_fails_is_retried_and_the_log_shows_each_attempt() {
    let d = desk(&[]).await;
    d.hooks.set_responses(vec![500, 503]);
    d.w.server.set_fault(Some(Fault::Reply {
        command: "RCPT",
        code: 550,
        text: "5.1.1 No such user".into(),
    }));
    let id = send_id(&d.w, mail("to nobody")).await;
    d.w.app
        .wait_for_message(&d.w.rep.token, &id, "failed", Duration::from_secs(20))
        .await;
    let tries = d.hooks.wait_for(3, Duration::from_secs(20)).await;
    let event = d.wait_for_event("message.failed").await;
    assert_eq!(event["data"]["message"]["id"], id.as_str());
    assert!(event["data"]["error"].as_str().unwrap().contains("550"));
    assert_eq!(tries.len(), 3, "two refusals, then delivered");
    let attempts: Vec<&str> = tries
        .iter()
        .map(|t| t.header("switchboard-attempt").unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        tries[1].at.duration_since(tries[0].at) >= Duration::from_millis(150),
        "retried after a wait, not at once"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let log = expect_json(
            d.w.app
                .get(
                    &format!("/v1/webhooks/{}/deliveries", d.webhook),
                    &d.w.acme.admin_token,
                )
                .await,
            StatusCode::OK,
        )
        .await;
        let delivery = log["deliveries"][0].clone();
        if delivery["status"] == "delivered" {
            break delivery;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivery["event_type"], "message.failed");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 200);

    if std::env::var("SWITCHBOARD_INTEROP").as_deref() == Ok("1") {
        let hook = tries.last().unwrap();
        let header = hook.header("switchboard-signature").unwrap();
        for lang in ["python", "node"] {
            verify_with_recipe(lang, &d.secret, header, &hook.body)
                .unwrap_or_else(|e| panic!("the {lang} recipe refused a real delivery: {e}"));
        }
    }
}

#[tokio::test]
async fn an_idle_channel_is_checked_and_a_dead_password_found_before_mail_needs_it() {
    let d = desk(&[("SWITCHBOARD_HEALTH_CHECK_IDLE", "1s")]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !d
        .audit_actions()
        .await
        .contains(&"channel.verified".to_owned())
    {
        assert!(tokio::time::Instant::now() < deadline, "never checked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.channel().await["last_verified_at"].is_string());
    assert!(
        d.w.server.messages().is_empty(),
        "a check logs in and sends nothing"
    );

    // The password changes at the provider; no mail is sent, yet the owner learns of it.
    d.w.server.set_password(REP, NEW_PASSWORD);
    let channel = d.wait_for_status("needs_reauth").await;
    assert_eq!(channel["status_cause"], "auth_rejected");
    d.wait_for_event("channel.needs_reauth").await;
    assert!(
        d.audit_actions()
            .await
            .contains(&"channel.verification_failed".to_owned())
    );
}

#[tokio::test]
async fn provider_refusals_name_their_cause() {
    let d = desk(&[]).await;
    d.w.server.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 535,
        text: "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.".into(),
    }));
    send_id(&d.w, mail("o365")).await;
    let channel = d.wait_for_status("needs_reauth").await;
    assert_eq!(channel["status_cause"], "basic_auth_disabled");
    assert!(
        channel["health"]["advice"]
            .as_str()
            .unwrap()
            .contains("SMTP AUTH"),
        "{channel:#}"
    );
    let event = d.wait_for_event("channel.needs_reauth").await;
    assert_eq!(event["data"]["cause"], "basic_auth_disabled");
}

#[tokio::test]
async fn a_channel_near_its_limit_warns_once() {
    let d = desk(&[]).await;
    let w = &d.w;
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                &w.rep.token,
                json!({"limits": {"per_minute": 10}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    // 19 messages: however a minute boundary splits them, one minute reaches 90 % of 10.
    let hour = |t: chrono::DateTime<chrono::Utc>| t.timestamp() / 3600;
    let started = chrono::Utc::now();
    for i in 0..19 {
        send_id(w, mail(&format!("quota {i}"))).await;
    }
    let event = d.wait_for_event("quota.near_limit").await;
    assert_eq!(event["data"]["limit"], "per_minute");
    assert_eq!(event["data"]["max"], 10);
    // Raised by the reservation that crossed 90 %: messages claimed together take their
    // quota together, so that reservation may have gone from 8 to 10 at once.
    let used = event["data"]["used"].as_u64().unwrap();
    assert!(
        (9..=10).contains(&used),
        "raised on crossing 90 %: {event:#}"
    );
    assert_eq!(event["data"]["channel"]["id"], w.channel.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    if hour(started) == hour(chrono::Utc::now()) {
        // Once per channel, limit and hour, however many minutes come near it.
        assert_eq!(d.events("quota.near_limit").len(), 1);
    }
}

#[tokio::test]
async fn a_teams_relay_credential_is_rotated_in_every_channel_at_once_or_in_none() {
    let d = desk(&[]).await;
    let w = &d.w;
    let relay = TestSmtpServer::start(SmtpServerConfig {
        users: vec![("apikey".to_owned(), "Canary-Old-Key-1".to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    let west = w.app.create_team(&w.acme, "West").await;
    let east = w.app.create_team(&w.acme, "East").await;
    let create = |name: &str, owner: Value, username: &str| {
        json!({"name": name, "kind": "smtp", "scope": "domain", "owner": owner,
               "domains": ["acme.test"],
               "smtp": {"host": "localhost", "port": relay.port(), "security": "starttls",
                        "auth": "plain", "username": username, "password": "Canary-Old-Key-1",
                        "ca_pem": relay.ca_pem()}})
    };
    let mut ids = Vec::new();
    for (name, owner, user) in [
        ("West relay", json!({"team": west}), "apikey"),
        ("East relay", json!({"team": east}), "apikey"),
        ("Other account", json!({"tenant": true}), "someone-else"),
    ] {
        let created = expect_json(
            w.app
                .post(
                    "/v1/channels",
                    &w.acme.admin_token,
                    create(name, owner, user),
                )
                .await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let stamp = |id: &str| {
        let app = &w.app;
        let token = w.acme.admin_token.clone();
        let path = format!("/v1/channels/{id}");
        async move {
            expect_json(app.get(&path, &token).await, StatusCode::OK).await["credential_updated_at"]
                .clone()
        }
    };
    let before: Vec<Value> = futures_stamps(&ids, stamp).await;
    let rotate = |query: &str, body: Value| {
        let path = format!("/v1/credentials/rotate{query}");
        let (app, token) = (&w.app, w.acme.admin_token.clone());
        async move {
            app.call(reqwest::Method::POST, &path, &token, Some(body))
                .await
        }
    };

    // IT changes the key at the provider, looks first, then rotates.
    relay.set_password("apikey", "Canary-New-Key-2");
    let dry = expect_json(
        rotate(
            "?dry_run=true",
            json!({"host": "LOCALHOST", "username": "apikey"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let matched: Vec<&str> = dry["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(matched, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(dry["rotated"], false);

    let refused = expect_problem(
        rotate(
            "",
            json!({"host": "localhost", "username": "apikey", "api_key": "Canary-Typo-3"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
    )
    .await;
    assert!(refused.to_string().contains("auth"), "{refused}");
    assert_eq!(futures_stamps(&ids, stamp).await, before, "nothing changed");

    let west_only = expect_json(
        rotate(
            "",
            json!({"host": "localhost", "username": "apikey", "team_id": west,
                          "api_key": "Canary-New-Key-2"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(west_only["matched"].as_array().unwrap().len(), 1);
    let done = expect_json(
        rotate(
            "",
            json!({"host": "localhost", "username": "apikey", "api_key": "Canary-New-Key-2"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["verified"], true);
    assert_eq!(done["rotated"], true);
    assert_eq!(
        done["tests"].as_array().unwrap().len(),
        1,
        "one login test per server: {done:#}"
    );
    let after = futures_stamps(&ids, stamp).await;
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(
        after[2], before[2],
        "another account's channel is untouched"
    );
    for id in &ids[..2] {
        let tested = expect_json(
            w.app
                .post(
                    &format!("/v1/channels/{id}/test"),
                    &w.acme.admin_token,
                    json!({}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(tested["ok"], true, "{tested:#}");
    }
    // One event per channel rotated: West alone, then West and East.
    d.wait_for_events("credential.rotated", 3).await;
    let audit = w
        .app
        .get("/v1/audit", &w.acme.admin_token)
        .await
        .text()
        .await
        .unwrap();
    for canary in ["Canary-Old-Key-1", "Canary-New-Key-2", "Canary-Typo-3"] {
        assert!(!audit.contains(canary));
        assert!(!done.to_string().contains(canary));
    }

    // Reps may not.
    let rep = expect_problem(
        w.app
            .call(
                reqwest::Method::POST,
                "/v1/credentials/rotate?dry_run=true",
                &w.rep.token,
                Some(json!({"host": "localhost", "username": "apikey"})),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert!(
        rep["detail"].as_str().unwrap().contains("credential"),
        "{rep}"
    );
}

async fn futures_stamps<'a, F, Fut>(ids: &'a [String], stamp: F) -> Vec<Value>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut out = Vec::new();
    for id in ids {
        out.push(stamp(id).await);
    }
    out
}

#[tokio::test]
async fn a_team_channel_handed_to_another_team_is_audited_and_a_mailbox_keeps_its_owner() {
    let d = desk(&[]).await;
    let w = &d.w;
    let west = w.app.create_team(&w.acme, "West").await;
    let east = w.app.create_team(&w.acme, "East").await;
    let created = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "West relay", "kind": "smtp", "preset": "sendgrid",
                       "owner": {"team": west}, "domains": ["acme.test"],
                       "smtp": {"password": "Canary-Team-Key"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let moved = expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{id}"),
                &w.acme.admin_token,
                json!({"owner": {"team": east}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["owner"], json!({"team": east}));
    let audit = expect_json(
        w.app
            .get(
                &format!("/v1/audit?channel_id={id}&action=channel.assigned"),
                &w.acme.admin_token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let entry = &audit.as_array().unwrap()[0];
    assert_eq!(entry["detail"]["from"], json!({"team": west}));
    assert_eq!(entry["detail"]["to"], json!({"team": east}));

    let missing = w
        .app
        .patch(
            &format!("/v1/channels/{id}"),
            &w.acme.admin_token,
            json!({"owner": {"team": "00000000-0000-4000-8000-000000000001"}}),
        )
        .await;
    assert!(missing.status().is_client_error(), "{}", missing.status());
    let someone = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    expect_problem(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                &w.acme.admin_token,
                json!({"owner": {"user": someone.id}}),
            )
            .await,
        StatusCode::CONFLICT,
        "mailbox_owner_fixed",
    )
    .await;
}
