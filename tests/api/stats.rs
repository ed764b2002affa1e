//! A channel's figures per day (#18): `GET /v1/channels/{id}/stats` counts what a real SMTP
//! server accepted and refused, has every day of the span (zeros filled), is shown to whoever
//! may see the channel and to no one else; the channel page and the overview draw the same
//! figures, and `/metrics` has today's by channel kind.

use std::time::Duration;

use chrono::{Days, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_json, expect_problem};
use crate::messages::{REP, World, send_id, world};
use crate::ui_client::UiClient;

const PATIENCE: Duration = Duration::from_secs(30);
const GHOST: &str = "ghost@example.com";
const NOBODY: &str = "nobody@example.com";

fn mail_to(to: &[&str], subject: &str) -> Value {
    json!({"from": REP, "to": to, "subject": subject, "text": "Hello"})
}

/// Today: two messages sent (one of them only partly: one recipient unknown), one failed because
/// its only recipient is unknown.
async fn a_day_of_mail(w: &World) {
    // Two unknown addresses: a hard bounce suppresses its address, so one address could not
    // be mailed twice.
    for unknown in [GHOST, NOBODY] {
        w.server.set_rcpt_reply(
            unknown,
            Some((550, "5.1.1 Recipient address rejected: User unknown")),
        );
    }
    let one = send_id(w, mail_to(&["ann@example.com"], "one")).await;
    let two = send_id(w, mail_to(&["bob@example.com", GHOST], "two")).await;
    let gone = send_id(w, mail_to(&[NOBODY], "gone")).await;
    for (id, status) in [(&one, "sent"), (&two, "partially_sent"), (&gone, "failed")] {
        w.app
            .wait_for_message(&w.rep.token, id, status, PATIENCE)
            .await;
    }
}

async fn stats(w: &World, token: &str, query: &str) -> Value {
    expect_json(
        w.app
            .get(&format!("/v1/channels/{}/stats{query}", w.channel), token)
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn a_channels_stats_count_todays_mail_and_fill_every_other_day_with_zeros() {
    let w = world().await;
    a_day_of_mail(&w).await;

    let today = Utc::now().date_naive();
    let answer = stats(&w, &w.rep.token, "").await;
    assert_eq!(answer["channel_id"], w.channel.as_str());
    assert_eq!(answer["to"], today.to_string());
    assert_eq!(
        answer["from"],
        (today - Days::new(29)).to_string(),
        "30 days by default, today included"
    );
    let days = answer["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "{answer:#}");
    let expected_today = json!({"day": today.to_string(), "sent": 2, "deferred": 0, "held": 0,
                                "failed": 1, "recipients": 2, "hard_bounces": 2});
    assert_eq!(days[29], expected_today, "{answer:#}");
    for (i, day) in days[..29].iter().enumerate() {
        let date = today - Days::new(29 - i as u64);
        assert_eq!(
            *day,
            json!({"day": date.to_string(), "sent": 0, "deferred": 0, "held": 0, "failed": 0,
                   "recipients": 0, "hard_bounces": 0}),
            "day {i}"
        );
    }
    assert_eq!(
        answer["totals"],
        json!({"sent": 2, "deferred": 0, "held": 0, "failed": 1, "recipients": 2, "hard_bounces": 2})
    );

    // The span's ends are included: one day is today, ninety reach back 89 days.
    let one = stats(&w, &w.rep.token, "?days=1").await;
    assert_eq!(one["days"].as_array().unwrap().len(), 1);
    assert_eq!(one["from"], today.to_string());
    assert_eq!(one["totals"]["sent"], 2);
    let ninety = stats(&w, &w.rep.token, "?days=90").await;
    assert_eq!(ninety["days"].as_array().unwrap().len(), 90);
    assert_eq!(ninety["from"], (today - Days::new(89)).to_string());
}

#[tokio::test]
async fn days_outside_one_to_ninety_are_refused_with_a_sentence() {
    let w = world().await;
    for bad in ["0", "91", "-5", "thirty", "2.5"] {
        let problem = expect_problem(
            w.app
                .get(
                    &format!("/v1/channels/{}/stats?days={bad}", w.channel),
                    &w.rep.token,
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("days") && detail.contains("from 1 to 90"),
            "{bad}: {problem:#}"
        );
    }
    expect_problem(
        w.app
            .get(
                &format!("/v1/channels/{}/stats?day=3", w.channel),
                &w.rep.token,
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn who_may_see_a_channel_may_see_its_stats_and_nobody_else() {
    let w = world().await;
    a_day_of_mail(&w).await;
    let path = format!("/v1/channels/{}/stats", w.channel);

    // The owner and the tenant's admin and IT see it.
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    for token in [&w.rep.token, &w.acme.admin_token, &it.token] {
        let answer = expect_json(w.app.get(&path, token).await, StatusCode::OK).await;
        assert_eq!(answer["totals"]["sent"], 2, "{answer:#}");
    }
    // Another rep does not see a colleague's mailbox; another tenant's admin does not know
    // it exists; a made-up or malformed id is not found either.
    let other_rep = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    let globex = w.app.create_tenant("Globex").await;
    for token in [&other_rep.token, &globex.admin_token] {
        expect_problem(
            w.app.get(&path, token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for id in [uuid::Uuid::new_v4().to_string(), "not-an-id".to_owned()] {
        expect_problem(
            w.app
                .get(&format!("/v1/channels/{id}/stats"), &w.rep.token)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    // Without a token: 401.
    let res = w
        .app
        .request(reqwest::Method::GET, &path, None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_channel_page_and_the_overview_draw_the_figures_with_a_table_beside() {
    let w = world().await;
    a_day_of_mail(&w).await;
    let today = Utc::now().date_naive();

    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    let page = rep.get(&format!("/ui/channels/{}", w.channel)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("<h2 id=\"activity-heading\">Activity</h2>")
        .expect("Today (UTC): <span class=\"figure\"><strong>2</strong> sent</span>")
        .expect("<figure class=\"chart\" id=\"activity-chart\">")
        .expect("role=\"img\" aria-labelledby=\"activity-chart-title activity-chart-desc\"")
        .expect("<title id=\"activity-chart-title\">Mail per day through My mailbox over the last 30 days</title>")
        .expect("In all: 2 sent, 0 deferred, 0 held, 1 failed.")
        .expect(&format!(
            "<g class=\"day\" data-day=\"{today}\"><title>{}: 2 sent, 0 deferred, 0 held, 1 failed</title>",
            today.format("%a %-d %b %Y")
        ))
        .expect("<summary>The figures as a table</summary>")
        .expect(&format!(
            "<th scope=\"row\"><time datetime=\"{today}\">{}</time></th><td class=\"num\">2</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">1</td>",
            today.format("%a %-d %b %Y")
        ));

    // The rep's overview lists their own mailbox, not the tenant's relay.
    expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Acme relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": w.server.port(),
                                "security": "starttls", "auth": "login", "username": "relay",
                                "password": "Canary-Relay-Pw-0a9", "ca_pem": w.server.ca_pem()}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let overview = rep.get("/ui/overview").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.html);
    overview
        .expect("<a href=\"/ui/overview\" aria-current=\"page\">Overview</a>")
        .expect("Your own mailboxes")
        .expect(&format!(
            "<a href=\"/ui/channels/{}\">My mailbox</a>",
            w.channel
        ))
        .expect("aria-label=\"My mailbox: 2 sent, 0 deferred, 0 held, 1 failed over 30 days\"")
        .expect("<figure class=\"chart\" id=\"overview-chart\">")
        .expect_not("Acme relay");

    // The admin's overview has every channel, the relay with a quiet month.
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    admin
        .get("/ui/overview")
        .await
        .expect("Every channel of your organisation")
        .expect("aria-label=\"Acme relay: 0 sent, 0 deferred, 0 held, 0 failed over 30 days\"")
        .expect("aria-label=\"My mailbox: 2 sent, 0 deferred, 0 held, 1 failed over 30 days\"");
}

#[tokio::test]
async fn metrics_have_todays_figures_by_channel_kind() {
    let w = world().await;
    a_day_of_mail(&w).await;
    let text = w
        .app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "switchboard_channel_day_messages{channel_kind=\"smtp\",outcome=\"sent\"} 2",
        "switchboard_channel_day_messages{channel_kind=\"smtp\",outcome=\"failed\"} 1",
        "switchboard_channel_day_recipients{channel_kind=\"smtp\",result=\"accepted\"} 2",
        "switchboard_channel_day_recipients{channel_kind=\"smtp\",result=\"hard_bounce\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains(&w.channel),
        "no channel id in the metrics' labels"
    );
}

#[tokio::test]
async fn a_day_later_todays_mail_is_yesterdays_and_today_starts_at_zero() {
    let w = world().await;
    let id = send_id(&w, mail_to(&["ann@example.com"], "monday")).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
    let sent_on = Utc::now().date_naive();

    w.app.clock.advance(Duration::from_secs(24 * 3600));
    let answer = stats(&w, &w.rep.token, "?days=7").await;
    let days = answer["days"].as_array().unwrap();
    assert_eq!(
        answer["to"],
        (sent_on + Days::new(1)).to_string(),
        "{answer:#}"
    );
    assert_eq!(days[5]["day"], sent_on.to_string());
    assert_eq!(days[5]["sent"], 1, "{answer:#}");
    assert_eq!(days[6]["sent"], 0, "{answer:#}");
    assert_eq!(answer["totals"]["sent"], 1);

    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    rep.get(&format!("/ui/channels/{}", w.channel))
        .await
        .expect("Today (UTC): <span class=\"figure\"><strong>0</strong> sent</span>")
        .expect("In all: 1 sent, 0 deferred, 0 held, 0 failed.");
}

#[tokio::test]
async fn the_stats_endpoint_is_described_in_the_openapi_document() {
    let app = crate::helpers::spawn_app().await;
    let doc = expect_json(
        app.client
            .get(format!("{}/openapi.json", app.address))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let get = &doc["paths"]["/v1/channels/{id}/stats"]["get"];
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no parameters: {get:#}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "days"], "{get:#}");
    for status in ["200", "404", "422"] {
        assert!(get["responses"][status].is_object(), "{status}: {get:#}");
    }
    let view = &doc["components"]["schemas"]["StatsView"]["properties"];
    for field in [
        "channel_id",
        "from",
        "to",
        "days",
        "totals",
        "pacing",
        "bounces",
    ] {
        assert!(view[field].is_object(), "{field}: {view:#}");
    }
}

#[tokio::test]
async fn it_sees_every_channel_on_the_overview_and_a_rep_without_a_mailbox_is_told_where_to_add_one()
 {
    let w = world().await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let mut ui = UiClient::signed_in(&w.app, &it.token).await;
    let page = ui.get("/ui/overview").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Every channel of your organisation")
        .expect(&format!(
            "<a href=\"/ui/channels/{}\">My mailbox</a>",
            w.channel
        ));

    let newcomer = w
        .app
        .create_user(&w.acme, "new@acme.test", "rep", None)
        .await;
    let mut ui = UiClient::signed_in(&w.app, &newcomer.token).await;
    ui.get("/ui/overview")
        .await
        .expect("You have no mailbox channel of your own yet.")
        .expect("<a href=\"/ui/channels\">Channels</a> is where to add or connect one.")
        .expect_not("My mailbox")
        .expect_not("<figure");
}

#[tokio::test]
async fn mail_held_the_moment_it_is_accepted_counts_as_held_on_its_channel() {
    let w = crate::messages::world().await;
    let channel = format!("/v1/channels/{}", w.channel);
    let answer = w
        .app
        .patch(
            &channel,
            &w.rep.token,
            serde_json::json!({"disabled": true}),
        )
        .await;
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    for id in w.app.burst(&w.rep.token, crate::messages::REP, 2).await {
        w.app
            .wait_for_message(
                &w.rep.token,
                &id,
                "held",
                std::time::Duration::from_secs(30),
            )
            .await;
    }
    let stats = crate::helpers::expect_json(
        w.app
            .get(&format!("{channel}/stats?days=1"), &w.rep.token)
            .await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(stats["totals"]["held"], 2, "{stats:#}");
    assert_eq!(stats["totals"]["sent"], 0, "{stats:#}");
}

#[tokio::test]
async fn a_paced_channel_shows_today_against_its_cap_in_the_stats_and_on_its_pages() {
    let w = crate::messages::world().await;
    let channel = format!("/v1/channels/{}", w.channel);
    let unpaced = crate::helpers::expect_json(
        w.app.get(&format!("{channel}/stats"), &w.rep.token).await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert!(unpaced.get("pacing").is_none(), "{unpaced:#}");
    let answer = w
        .app
        .patch(
            &channel,
            &w.rep.token,
            serde_json::json!({"limits": {"per_day_messages": 40,
                "warmup": {"start": 20, "step": 2, "target": 40}}}),
        )
        .await;
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    for id in w.app.burst(&w.rep.token, crate::messages::REP, 2).await {
        w.app
            .wait_for_message(
                &w.rep.token,
                &id,
                "sent",
                std::time::Duration::from_secs(30),
            )
            .await;
    }
    let stats = crate::helpers::expect_json(
        w.app.get(&format!("{channel}/stats"), &w.rep.token).await,
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(stats["pacing"]["today_count"], 2, "{stats:#}");
    assert_eq!(stats["pacing"]["day_cap"], 20, "{stats:#}");
    assert_eq!(stats["pacing"]["day_cap_set_by"], "warmup", "{stats:#}");
    assert_eq!(stats["pacing"]["ramp"]["day"], 1, "{stats:#}");

    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get(&format!("/ui/channels/{}", w.channel))
        .await
        .expect("Today against the cap")
        .expect("<strong>2</strong> of 20 today")
        .expect("warm-up ramp")
        .expect("Warming up: day 1 of the ramp, rising to 40 a day by");
    ui.get("/ui/overview")
        .await
        .expect("<strong>2</strong> of 20 today");
}

#[tokio::test]
async fn the_bounce_rate_shows_against_the_rule_that_pauses_the_channel() {
    let w = crate::messages::world().await;
    w.server.set_rcpt_reply(
        "ghost@example.com",
        Some((550, "5.1.1 <ghost@example.com>: User unknown")),
    );
    let id = w
        .app
        .accept(
            &w.rep.token,
            serde_json::json!({"from": crate::messages::REP,
                "to": ["ann@example.com", "ghost@example.com"], "subject": "hi", "text": "hi"}),
        )
        .await;
    w.app
        .wait_for_message(
            &w.rep.token,
            &id,
            "partially_sent",
            std::time::Duration::from_secs(30),
        )
        .await;
    let stats = crate::helpers::expect_json(
        w.app
            .get(&format!("/v1/channels/{}/stats", w.channel), &w.rep.token)
            .await,
        reqwest::StatusCode::OK,
    )
    .await;
    let bounces = &stats["bounces"];
    assert_eq!(bounces["sends"], 2, "{stats:#}");
    assert_eq!(bounces["hard_bounces"], 1, "{stats:#}");
    assert_eq!(bounces["rate_percent"], 50.0, "{stats:#}");
    assert_eq!(bounces["threshold_percent"], 3.0, "{stats:#}");
    assert_eq!(bounces["min_sends"], 50, "{stats:#}");
    assert_eq!(bounces["window_days"], 7, "{stats:#}");
    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    ui.get(&format!("/ui/channels/{}", w.channel))
        .await
        .expect("<strong>50 %</strong> hard bounces")
        .expect("So far 2: too few to judge.")
        .expect_not("at or above 3 %");
}
