//! Pacing a rep's mailbox (#18) over HTTP, with a real SMTP peer: a window holds mail until
//! its opening, a warm-up ramp caps the first day, a jittered gap spaces two sends, another
//! mailbox is never held up, and bad settings change nothing.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::events_of;
use crate::helpers::{expect_json, expect_problem};
use crate::messages::{PASSWORD, REP, World, acme_and_rep, mail, send_id, world};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

const PATIENCE: Duration = Duration::from_secs(30);
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

async fn set_limits(w: &World, limits: Value) -> Value {
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                &w.rep.token,
                json!({ "limits": limits }),
            )
            .await,
        StatusCode::OK,
    )
    .await
}

async fn channel(w: &World) -> Value {
    expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn settled(w: &World, id: &str) -> Value {
    w.app
        .wait_for_message_where(&w.rep.token, id, PATIENCE, |view| {
            view["status"] == "sent" || view["status"] == "deferred"
        })
        .await
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("{value}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// Office hours in Berlin on the day after tomorrow only: closed now, whatever the day.
fn closed_window() -> (Value, DateTime<Utc>) {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let day = Utc::now().with_timezone(&berlin).date_naive() + chrono::Duration::days(2);
    let opening = berlin
        .from_local_datetime(&day.and_hms_opt(9, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let code = DAYS[day.weekday().num_days_from_monday() as usize];
    (
        json!({"time_zone": "Europe/Berlin",
               "windows": [{"days": [code], "start": "09:00", "end": "17:30"}]}),
        opening,
    )
}

#[tokio::test]
async fn mail_outside_the_window_waits_for_the_next_opening_and_says_so() {
    let w = world().await;
    let (windows, opening) = closed_window();
    let updated = set_limits(&w, json!({ "windows": windows })).await;
    assert_eq!(updated["limits"]["windows"], windows, "{updated:#}");

    let id = send_id(&w, mail("after hours")).await;
    let view = w
        .app
        .wait_for_message(&w.rep.token, &id, "deferred", PATIENCE)
        .await;
    assert_eq!(instant(&view["next_attempt_at"]), opening, "{view:#}");
    assert_eq!(
        view["attempts"], 0,
        "waiting for a window is not an attempt"
    );
    let d = events_of(&view, "deferred")[0];
    assert_eq!(d["detail"]["reason"], "outside_window", "{view:#}");
    let said = view["last_error"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("outside the sending window ")
            && said.contains("Europe/Berlin; next opening ")
            && said.contains(" 09:00 CE"),
        "{said}"
    );

    let explained = expect_json(
        w.app
            .post("/v1/route/explain", &w.rep.token, json!({"from": REP}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(explained["outcome"], "defer", "{explained:#}");
    assert_eq!(explained["limit"], "outside_window", "{explained:#}");
    assert_eq!(instant(&explained["until"]), opening);
    assert!(
        explained["detail"]
            .as_str()
            .unwrap()
            .contains("next opening"),
        "{explained:#}"
    );
    assert_eq!(explained["candidates"][0]["limit"], "outside_window");

    let shown = channel(&w).await;
    assert_eq!(shown["pacing"]["window_open"], false, "{shown:#}");
    assert_eq!(instant(&shown["pacing"]["next_window_opening"]), opening);
    assert_eq!(shown["pacing"]["windows_set_by"], "channel");
    assert!(
        w.server.messages().is_empty(),
        "nothing left outside the window"
    );
    // A minute before the opening it still waits; once the clock passes it, it goes.
    let to_opening = (opening - w.app.clock.now()).to_std().unwrap();
    w.app.clock.advance(to_opening - Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        w.server.messages().is_empty(),
        "still closed before the opening"
    );
    w.app.clock.advance(Duration::from_secs(61));
    let sent = w
        .app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
    assert!(instant(&sent["sent_at"]) >= opening, "{sent:#}");
    assert_eq!(w.server.wait_for_messages(1, PATIENCE).await.len(), 1);
    assert_eq!(channel(&w).await["pacing"]["window_open"], true);
}

#[tokio::test]
async fn a_ramping_channel_defers_the_21st_message_of_its_first_day() {
    let w = world().await;
    let updated = set_limits(
        &w,
        json!({"warmup": {"start": 20, "step": 2, "target": 200}}),
    )
    .await;
    let today = w.app.clock.now().date_naive();
    assert_eq!(
        updated["limits"]["warmup"]["started_on"],
        today.format("%Y-%m-%d").to_string(),
        "a ramp with no start date starts the day it is set"
    );
    let mut ids = Vec::new();
    for n in 0..21 {
        ids.push(send_id(&w, mail(&format!("ramp {n}"))).await);
    }
    let mut deferred = Vec::new();
    for id in &ids {
        let view = settled(&w, id).await;
        if view["status"] == "deferred" {
            deferred.push(view);
        }
    }
    assert_eq!(deferred.len(), 1, "only the 21st waits: {deferred:#?}");
    let view = &deferred[0];
    assert_eq!(
        events_of(view, "deferred")[0]["detail"]["reason"],
        "warmup_cap"
    );
    let until = instant(&view["next_attempt_at"]);
    let wait = until - w.app.clock.now();
    assert!(
        wait > chrono::Duration::hours(23) && wait <= chrono::Duration::hours(24),
        "waits for the first of the day's 20 to leave the rolling day: {until}"
    );
    assert_eq!(w.server.wait_for_messages(20, PATIENCE).await.len(), 20);

    let pacing = &channel(&w).await["pacing"];
    assert_eq!(pacing["today_count"], 20, "{pacing:#}");
    assert_eq!(pacing["day_cap"], 20);
    assert_eq!(pacing["day_cap_set_by"], "warmup");
    assert_eq!(pacing["ramp"]["day"], 1);
    assert_eq!(pacing["ramp"]["today_cap"], 20);
    assert_eq!(pacing["ramp"]["target"], 200);
    // 90 steps of 2 from 20 to 200.
    let ends = today + chrono::Duration::days(90);
    assert_eq!(
        pacing["ramp"]["ends_on"],
        ends.format("%Y-%m-%d").to_string()
    );
    assert_eq!(pacing["blocked"]["limit"], "warmup_cap");
    assert_eq!(pacing["window_open"], true, "no windows: always open");
    // A day later the first 20 have left the rolling day: the 21st goes.
    w.app
        .clock
        .advance((until - w.app.clock.now()).to_std().unwrap() + Duration::from_secs(1));
    let id = deferred[0]["id"].as_str().unwrap();
    w.app
        .wait_for_message(&w.rep.token, id, "sent", PATIENCE)
        .await;
    assert_eq!(w.server.wait_for_messages(21, PATIENCE).await.len(), 21);
    let pacing = &channel(&w).await["pacing"];
    assert_eq!(pacing["ramp"]["day"], 2, "{pacing:#}");
    assert_eq!(pacing["day_cap"], 22);
    assert_eq!(pacing["today_count"], 1);
}

#[tokio::test]
async fn a_min_gap_spaces_two_sends_of_one_mailbox_within_its_jitter() {
    let w = world().await;
    set_limits(
        &w,
        json!({"min_gap": {"min_seconds": 60, "max_seconds": 180}}),
    )
    .await;
    let first = send_id(&w, mail("first")).await;
    let second = send_id(&w, mail("second")).await;
    let (a, b) = (settled(&w, &first).await, settled(&w, &second).await);
    let (sent, waiting) = if a["status"] == "sent" {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(sent["status"], "sent", "{sent:#}");
    assert_eq!(waiting["status"], "deferred", "{waiting:#}");
    assert_eq!(
        events_of(&waiting, "deferred")[0]["detail"]["reason"],
        "min_gap"
    );
    let gap = instant(&waiting["next_attempt_at"]) - instant(&sent["sent_at"]);
    // The slot is drawn when the quota is taken, just before the send.
    assert!(
        gap >= chrono::Duration::seconds(55) && gap <= chrono::Duration::seconds(180),
        "within [60 s, 180 s] of the first send: {gap}"
    );
    assert_eq!(w.server.messages().len(), 1);
    let pacing = &channel(&w).await["pacing"];
    assert_eq!(pacing["blocked"]["limit"], "min_gap", "{pacing:#}");
    assert!(pacing["next_send_after"].is_string());
    // By the clock: not 59 s after the first send, but once its slot has passed.
    let from_first = w.app.clock.now() - instant(&sent["sent_at"]);
    w.app.clock.advance(
        (chrono::Duration::seconds(59) - from_first)
            .to_std()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.server.messages().len(), 1, "not within the minimum gap");
    let slot = instant(&waiting["next_attempt_at"]);
    w.app
        .clock
        .advance((slot - w.app.clock.now()).to_std().unwrap() + Duration::from_secs(1));
    let second = w
        .app
        .wait_for_message(
            &w.rep.token,
            waiting["id"].as_str().unwrap(),
            "sent",
            PATIENCE,
        )
        .await;
    let apart = instant(&second["sent_at"]) - instant(&sent["sent_at"]);
    assert!(apart >= chrono::Duration::seconds(60), "{apart}");
    assert_eq!(w.server.wait_for_messages(2, PATIENCE).await.len(), 2);
}

#[tokio::test]
async fn a_closed_mailbox_never_delays_another_mailboxs_mail() {
    const OTHER: &str = "other@acme.test";
    let (app, acme, rep) = acme_and_rep(&[]).await;
    let other = app.create_user(&acme, OTHER, "rep", None).await;
    let server = TestSmtpServer::start(SmtpServerConfig {
        users: vec![
            (REP.to_owned(), PASSWORD.to_owned()),
            (OTHER.to_owned(), PASSWORD.to_owned()),
        ],
        ..SmtpServerConfig::default()
    })
    .await;
    let (windows, _) = closed_window();
    let mut channels = Vec::new();
    for (user, address, limits) in [
        (
            &rep,
            REP,
            json!({ "windows": windows, "per_day_messages": 1 }),
        ),
        (&other, OTHER, json!({})),
    ] {
        let created = expect_json(
            app.post(
                "/v1/channels",
                &user.token,
                json!({"name": "Mailbox", "kind": "smtp", "scope": "mailbox", "from_address": address,
                       "smtp": {"host": "localhost", "port": server.port(), "security": "starttls",
                                "auth": "login", "username": address, "password": PASSWORD,
                                "ca_pem": server.ca_pem(), "connect_timeout_secs": 5,
                                "command_timeout_secs": 5},
                       "limits": limits}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        channels.push(created["id"].as_str().unwrap().to_owned());
    }
    let message = |from: &str, subject: &str| json!({"from": from, "to": ["ann@example.com"], "subject": subject, "text": "Hi"});
    // Interleaved, so that they are claimed together.
    let mut ids = Vec::new();
    for n in 0..3 {
        for (user, from) in [(&rep, REP), (&other, OTHER)] {
            let accepted = expect_json(
                app.post(
                    "/v1/messages",
                    &user.token,
                    message(from, &format!("{from} {n}")),
                )
                .await,
                StatusCode::ACCEPTED,
            )
            .await;
            ids.push((
                user.token.clone(),
                from,
                accepted["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let received = server.wait_for_messages(3, PATIENCE).await;
    for (token, from, id) in &ids {
        let view = app
            .wait_for_message_where(token, id, PATIENCE, |v| {
                v["status"] == "sent" || v["status"] == "deferred"
            })
            .await;
        if *from == REP {
            assert_eq!(view["status"], "deferred", "{view:#}");
            assert_eq!(
                events_of(&view, "deferred")[0]["detail"]["reason"],
                "outside_window"
            );
        } else {
            assert_eq!(view["status"], "sent", "{view:#}");
            assert_eq!(view["attempts"], 1, "never deferred: {view:#}");
        }
    }
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|m| m.mail_from == OTHER));
}

#[tokio::test]
async fn bad_pacing_settings_are_refused_naming_the_field_and_change_nothing() {
    let w = world().await;
    set_limits(&w, json!({"per_day_messages": 30})).await;
    let before = channel(&w).await;
    let path = format!("/v1/channels/{}", w.channel);
    for (limits, code, field) in [
        (
            json!({"windows": {"time_zone": "Europe/Berlinn", "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]}}),
            "invalid_time_zone",
            "limits.windows.time_zone",
        ),
        (
            json!({"windows": {"time_zone": "Europe/Berlin", "windows": [{"days": [], "start": "09:00", "end": "17:00"}]}}),
            "invalid_window",
            "limits.windows.windows[0].days",
        ),
        (
            json!({"windows": {"time_zone": "UTC", "windows": [{"days": ["mon"], "start": "17:00", "end": "09:00"}]}}),
            "invalid_window",
            "limits.windows.windows[0].end",
        ),
        (
            json!({"warmup": {"start": 300, "step": 2, "target": 200}}),
            "invalid_limits",
            "limits.warmup.start",
        ),
        (
            json!({"min_gap": {"min_seconds": 200, "max_seconds": 100}, "per_day_messages": 5}),
            "invalid_limits",
            "limits.min_gap.min_seconds",
        ),
    ] {
        let problem = expect_problem(
            w.app
                .patch(&path, &w.rep.token, json!({ "limits": limits }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert_eq!(problem["field"], field, "{problem:#}");
        assert!(
            problem["detail"].as_str().unwrap().len() > 20,
            "{problem:#}"
        );
    }
    let after = channel(&w).await;
    assert_eq!(after["limits"], before["limits"], "nothing changed");
    assert_eq!(after["updated_at"], before["updated_at"]);

    // The tenant's defaults: refused likewise, applied to channels that set none.
    let tenant_before = expect_json(
        w.app.get("/v1/tenant", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let problem = expect_problem(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"sending_defaults": {"windows": {"time_zone": "Mars/Olympus", "windows": []}},
                       "name": "Renamed"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_time_zone",
    )
    .await;
    assert_eq!(problem["field"], "sending_defaults.windows.time_zone");
    let tenant_after = expect_json(
        w.app.get("/v1/tenant", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant_after, tenant_before, "nothing changed");

    let windows = json!({"time_zone": "America/New_York",
                         "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}]});
    let tenant = expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"sending_defaults": {"windows": windows, "per_day_messages": 400}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["sending_defaults"]["windows"], windows, "{tenant:#}");
    assert_eq!(tenant["sending_defaults"]["per_day_messages"], 400);
    let pacing = &channel(&w).await["pacing"];
    assert_eq!(pacing["windows_set_by"], "tenant_default", "{pacing:#}");
    assert_eq!(pacing["windows"], "Mon–Fri 08:00–18:00 America/New_York");
    assert_eq!(
        pacing["day_cap"], 30,
        "the channel's own cap wins over the default"
    );
    assert_eq!(pacing["day_cap_set_by"], "per_day_messages");
    set_limits(&w, json!({"per_day_messages": null})).await;
    let pacing = &channel(&w).await["pacing"];
    assert_eq!(pacing["day_cap"], 400);
    assert_eq!(pacing["day_cap_set_by"], "tenant_default");
}

#[tokio::test]
async fn mail_waiting_for_an_opening_spreads_over_the_window_instead_of_one_burst() {
    let w = world().await;
    let (windows, opening) = closed_window();
    // 8 h 30 min open for 2 a day: one every 4 h 15 min.
    set_limits(&w, json!({ "windows": windows, "per_day_messages": 2 })).await;
    let ids = [
        send_id(&w, mail("spread 0")).await,
        send_id(&w, mail("spread 1")).await,
    ];
    for id in &ids {
        let view = w
            .app
            .wait_for_message(&w.rep.token, id, "deferred", PATIENCE)
            .await;
        assert_eq!(instant(&view["next_attempt_at"]), opening, "{view:#}");
    }
    w.app
        .clock
        .advance((opening - w.app.clock.now()).to_std().unwrap() + Duration::from_secs(1));
    w.server.wait_for_messages(1, PATIENCE).await;
    let mut views = Vec::new();
    for id in &ids {
        views.push(
            w.app
                .wait_for_message_where(&w.rep.token, id, PATIENCE, |v| {
                    v["status"] == "sent"
                        || (v["status"] == "deferred"
                            && v["last_error"]
                                .as_str()
                                .is_some_and(|e| e.contains("paces its sends")))
                })
                .await,
        );
    }
    views.sort_by_key(|v| v["status"] != "sent");
    let (sent, waiting) = (&views[0], &views[1]);
    assert_eq!(sent["status"], "sent", "{views:#?}");
    assert_eq!(
        events_of(waiting, "deferred").last().unwrap()["detail"]["reason"],
        "min_gap"
    );
    let spacing = instant(&waiting["next_attempt_at"]) - instant(&sent["sent_at"]);
    assert!(
        (spacing - chrono::Duration::minutes(255))
            .num_seconds()
            .abs()
            <= 5,
        "the second leaves 4 h 15 min after the first, not with it: {spacing}"
    );
    assert_eq!(w.server.messages().len(), 1);
}

#[tokio::test]
async fn the_openapi_document_describes_pacing() {
    let w = world().await;
    let openapi = expect_json(
        w.app.get("/openapi.json", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let schemas = &openapi["components"]["schemas"];
    for field in [
        "today_count",
        "day_cap",
        "ramp",
        "window_open",
        "next_window_opening",
    ] {
        assert!(
            schemas["PacingStatus"]["properties"][field].is_object(),
            "{field}: {:#}",
            schemas["PacingStatus"]
        );
    }
    assert!(schemas["ChannelView"]["properties"]["pacing"].is_object());
    for field in ["per_day_messages", "windows", "warmup", "min_gap"] {
        assert!(
            schemas["LimitsInput"]["properties"][field].is_object(),
            "{field}"
        );
    }
    assert!(schemas["UpdateTenantRequest"]["properties"]["sending_defaults"].is_object());
}

#[tokio::test]
async fn the_gap_holds_across_two_processes_on_one_database() {
    let w = world().await;
    set_limits(
        &w,
        json!({"min_gap": {"min_seconds": 60, "max_seconds": 180}}),
    )
    .await;
    // A second `serve` on the same database claims mail too.
    let _sibling = w.app.sibling().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(send_id(&w, mail(&format!("two processes {n}"))).await);
    }
    let mut views = Vec::new();
    for id in &ids {
        views.push(settled(&w, id).await);
    }
    let sent: Vec<&Value> = views.iter().filter(|v| v["status"] == "sent").collect();
    assert_eq!(
        sent.len(),
        1,
        "one send per gap, whichever process claims: {views:#?}"
    );
    let first = instant(&sent[0]["sent_at"]);
    for v in views.iter().filter(|v| v["status"] == "deferred") {
        assert_eq!(events_of(v, "deferred")[0]["detail"]["reason"], "min_gap");
        assert!(instant(&v["next_attempt_at"]) - first >= chrono::Duration::seconds(55));
    }
    // Past the slot exactly one more goes, and the rest wait for the next gap.
    let slot =
        instant(&views.iter().find(|v| v["status"] == "deferred").unwrap()["next_attempt_at"]);
    w.app
        .clock
        .advance((slot - w.app.clock.now()).to_std().unwrap() + Duration::from_secs(1));
    w.server.wait_for_messages(2, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.server.messages().len(), 2, "still one per gap");
}
