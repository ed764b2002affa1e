//! The dashboard: the dashboard (#18). A rep's mailbox has sent, failed and held mail over eight
//! days (the service clock moved a day at a time); the overview draws them as a chart in the
//! page's colours, with the same figures as a table behind "The figures as a table", and
//! the channel page shows the mailbox's own chart.

use std::time::Duration;

use serde_json::json;

use crate::browser::harness::{Browser, skipped};
use crate::messages::{REP, World, send_id, world};

const PATIENCE: Duration = Duration::from_secs(30);

/// Eight days of mail: (sent, failed) per day, the last day also three messages held
/// (the mailbox's password changed at the server).
const PLAN: [(usize, usize); 8] = [
    (12, 0),
    (18, 1),
    (9, 0),
    (22, 2),
    (15, 0),
    (27, 1),
    (20, 0),
    (14, 1),
];

async fn eight_days_of_mail(w: &World) {
    // 5 hard bounces in 142 sends (3.5 %) would pause the mailbox under the default rule
    // (3 % of at least 50): this month is about the chart, so the rule allows 10 %.
    let rule = w
        .app
        .patch(
            "/v1/tenant",
            &w.acme.admin_token,
            json!({"bounce_pause": {"threshold_percent": 10}}),
        )
        .await;
    assert_eq!(rule.status(), reqwest::StatusCode::OK);
    for (day, (sent, failed)) in PLAN.iter().enumerate() {
        let mut ids = w.app.burst(&w.rep.token, REP, *sent).await;
        for f in 0..*failed {
            let unknown = format!("lost{day}.{f}@example.com");
            w.server
                .set_rcpt_reply(&unknown, Some((550, "5.1.1 User unknown")));
            ids.push(
                send_id(
                    w,
                    json!({"from": REP, "to": [unknown], "subject": "gone", "text": "hi"}),
                )
                .await,
            );
        }
        for id in &ids {
            w.app
                .wait_for_message_where(&w.rep.token, id, PATIENCE, |v| {
                    v["status"] == "sent" || v["status"] == "failed"
                })
                .await;
        }
        if day + 1 < PLAN.len() {
            w.app.clock.advance(Duration::from_secs(24 * 3600));
        }
    }
    // Today IT changed the mailbox's password at the server: the next three messages wait
    // for the rep to enter the new one.
    w.server.set_password(REP, "Changed-By-IT-77");
    for id in w.app.burst(&w.rep.token, REP, 3).await {
        w.app
            .wait_for_message(&w.rep.token, &id, "held", PATIENCE)
            .await;
    }
}

/// What the browser drew of the chart in `figure`: its size, the bars it shows, the colour
/// the stylesheet gave the sent bars, and how it names itself to assistive technology.
const CHART_SCRIPT: &str = r#"
const svg = document.querySelector(arguments[0] + ' svg');
const box = svg.getBoundingClientRect();
// Bars only: the legend's swatches carry the series' classes too.
const shown = (sel) => [...svg.querySelectorAll('g.bars ' + sel)].filter(r => r.getBoundingClientRect().height > 0).length;
const label = svg.getAttribute('aria-labelledby').split(' ').map(id => document.getElementById(id).textContent).join(' ');
return {
  width: box.width, height: box.height, role: svg.getAttribute('role'),
  sent: shown('rect.sent'), failed: shown('rect.failed'), held: shown('rect.held'),
  sentFill: getComputedStyle(svg.querySelector('g.bars rect.sent')).fill,
  label: label,
};
"#;

#[tokio::test]
async fn the_overview_draws_a_mailboxs_month_and_tells_it_as_a_table_too() {
    if skipped("the_overview_draws_a_mailboxs_month_and_tells_it_as_a_table_too") {
        return;
    }
    let w = world().await;
    eight_days_of_mail(&w).await;

    let browser = Browser::open(&w.app.address).await;
    browser.sign_in(&w.rep.token).await;
    browser.follow("Overview").await;
    browser.wait_for_path("/ui/overview").await;
    browser.wait_for_text("Your own mailboxes").await;

    let drawn = browser
        .client
        .execute(CHART_SCRIPT, vec![json!("#overview-chart")])
        .await
        .unwrap();
    assert_eq!(drawn["role"], "img", "{drawn}");
    assert!(drawn["width"].as_f64().unwrap() > 600.0, "{drawn}");
    assert!(drawn["height"].as_f64().unwrap() > 150.0, "{drawn}");
    assert_eq!(drawn["sent"], 8, "a sent bar a day: {drawn}");
    assert_eq!(drawn["failed"], 4, "{drawn}");
    assert_eq!(drawn["held"], 1, "{drawn}");
    // The page's --ok green, from app.css: the stylesheet reached the chart.
    assert_eq!(drawn["sentFill"], "rgb(20, 108, 46)", "{drawn}");
    let label = drawn["label"].as_str().unwrap();
    assert!(
        label.contains("Mail per day through your mailboxes over the last 30 days")
            && label.contains("In all: 137 sent, ")
            && label.contains(" deferred, 3 held, 5 failed."),
        "{label}"
    );

    // The text equivalent: folded away, and there when opened.
    let table_shown = "return document.getElementById('overview-chart-table').checkVisibility()";
    assert_eq!(browser.js(table_shown).await, false);
    browser
        .find("//figure[@id='overview-chart']//summary[normalize-space()='The figures as a table']")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(browser.js(table_shown).await, true);
    let table = browser.text_of("overview-chart-table").await;
    assert!(table.contains("Day Sent Deferred Held Failed"), "{table}");
    // (The held messages' failed logins may count as deferrals first.)
    let total = table.lines().find(|l| l.starts_with("Total")).unwrap();
    assert!(
        total.starts_with("Total 137 ") && total.ends_with(" 3 5"),
        "{table}"
    );
    assert!(table.contains(" 27 0 0 1"), "the busiest day: {table}");
    browser.screenshot("overview").await;

    // The mailbox's own page has the same month.
    browser.follow("My mailbox").await;
    browser.wait_for_text("Activity").await;
    let drawn = browser
        .client
        .execute(CHART_SCRIPT, vec![json!("#activity-chart")])
        .await
        .unwrap();
    assert_eq!(drawn["sent"], 8, "{drawn}");
    assert!(
        drawn["label"]
            .as_str()
            .unwrap()
            .contains("In all: 137 sent, "),
        "{drawn}"
    );
    browser
        .find("//section[@aria-labelledby='activity-heading']")
        .await;
    browser.screenshot("channel-activity").await;

    // On a phone the chart shrinks with the page and its words stay readable.
    browser.resize(390, 844).await;
    browser.goto("/ui/overview").await;
    browser.wait_for_text("Your own mailboxes").await;
    let phone = browser
        .js(r#"
const text = document.querySelector('#overview-chart svg text.day');
return {
  fits: document.documentElement.scrollWidth <= window.innerWidth,
  labelPx: text.getBoundingClientRect().height,
  fontSize: getComputedStyle(text).fontSize,
  width: window.innerWidth,
};"#)
        .await;
    assert_eq!(phone["fits"], true, "{phone}");
    // 22 units of a drawing shown at half its width: about 11 px, a 13 px line.
    assert!(phone["labelPx"].as_f64().unwrap() >= 12.0, "{phone}");
    browser.screenshot("overview-phone").await;
    browser.close().await;
}
