//! The channel page's pacing form: a rep paces their own mailbox from the page; what the API
//! refuses comes back as the page with the reason, and nothing changes.

use reqwest::StatusCode;

use crate::helpers::expect_json;
use crate::messages::world;
use crate::ui_client::UiClient;

#[tokio::test]
async fn a_rep_paces_their_mailbox_from_its_page() {
    let w = world().await;
    let page = format!("/ui/channels/{}", w.channel);
    let api = format!("/v1/channels/{}", w.channel);
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get(&page).await.expect("Save pacing");

    let saved = ui
        .post(
            &format!("{page}/pacing"),
            &[
                ("per_day_messages", "30"),
                ("warmup.start", "20"),
                ("warmup.step", "2"),
                ("warmup.target", "40"),
                ("min_gap.min_seconds", "60"),
                ("min_gap.max_seconds", "180"),
                ("window.time_zone", "Europe/Berlin"),
                ("mon", "on"),
                ("tue", "on"),
                ("wed", "on"),
                ("thu", "on"),
                ("fri", "on"),
                ("window.start", "09:00"),
                ("window.end", "17:30"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    ui.follow(&saved)
        .await
        .expect("Pacing saved.")
        .expect("value=\"Europe/Berlin\"")
        .expect("Warming up: day 1 of the ramp");
    let channel = expect_json(w.app.get(&api, &w.rep.token).await, StatusCode::OK).await;
    let limits = &channel["limits"];
    assert_eq!(limits["per_day_messages"], 30, "{channel:#}");
    assert_eq!(limits["warmup"]["target"], 40, "{channel:#}");
    assert_eq!(limits["min_gap"]["max_seconds"], 180, "{channel:#}");
    assert_eq!(
        limits["windows"]["windows"][0]["days"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri"]),
        "{channel:#}"
    );
    assert_eq!(
        channel["pacing"]["day_cap"], 20,
        "the ramp's first day: {channel:#}"
    );

    // What the API refuses: the page again with its reason, and nothing changed.
    for (fields, reason) in [
        (
            vec![
                ("window.time_zone", "Mars/Olympus_Mons"),
                ("mon", "on"),
                ("window.start", "09:00"),
                ("window.end", "17:00"),
            ],
            "Mars/Olympus_Mons",
        ),
        (
            vec![("warmup.start", "20")],
            "a warm-up ramp needs its start",
        ),
        (vec![("per_day_messages", "lots")], "must be a whole number"),
    ] {
        let refused = ui.post(&format!("{page}/pacing"), &fields).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.html
        );
        refused.expect(reason);
    }
    let after = expect_json(w.app.get(&api, &w.rep.token).await, StatusCode::OK).await;
    assert_eq!(after["limits"], channel["limits"]);

    // Emptied boxes lift what they set.
    let cleared = ui
        .post(&format!("{page}/pacing"), &[("window.time_zone", "")])
        .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.html);
    let after = expect_json(w.app.get(&api, &w.rep.token).await, StatusCode::OK).await;
    for key in ["per_day_messages", "warmup", "min_gap", "windows"] {
        assert!(after["limits"][key].is_null(), "{key}: {after:#}");
    }
}

#[tokio::test]
async fn only_those_who_manage_the_channel_see_or_post_the_form() {
    let w = world().await;
    let page = format!("/ui/channels/{}", w.channel);
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let mut ui = UiClient::signed_in(&w.app, &it.token).await;
    ui.get(&page).await.expect_not("Save pacing");
    let refused = ui
        .post(&format!("{page}/pacing"), &[("per_day_messages", "5")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    let channel = expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(channel["limits"]["per_day_messages"].is_null());
    // Without the page's CSRF token, even the owner changes nothing.
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    rep.get(&page).await;
    let forged = rep
        .post_raw(
            &format!("{page}/pacing"),
            &[("per_day_messages", "5")],
            None,
            Some(&rep.base.clone()),
            false,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_admin_sets_the_tenants_sending_defaults_and_bounce_rule_on_the_settings_page() {
    let w = world().await;
    let mut ui = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    ui.get("/ui/settings")
        .await
        .expect("Save sending defaults")
        .expect("Save bounce rule")
        .expect("A channel pauses when 3 % or more");

    let saved = ui
        .post(
            "/ui/settings/defaults",
            &[
                ("per_day_messages", "150"),
                ("window.time_zone", "America/New_York"),
                ("mon", "on"),
                ("wed", "on"),
                ("window.start", "08:00"),
                ("window.end", "18:00"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let tenant = expect_json(
        w.app.get("/v1/tenant", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let defaults = &tenant["sending_defaults"];
    assert_eq!(defaults["per_day_messages"], 150, "{tenant:#}");
    assert_eq!(defaults["windows"]["time_zone"], "America/New_York");
    assert_eq!(
        defaults["windows"]["windows"][0]["days"],
        serde_json::json!(["mon", "wed"])
    );
    // The rep's mailbox, which sets no cap of its own, now has the tenant's.
    let channel = expect_json(
        w.app
            .get(&format!("/v1/channels/{}", w.channel), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["pacing"]["day_cap"], 150, "{channel:#}");
    assert_eq!(channel["pacing"]["day_cap_set_by"], "tenant_default");

    let rule = ui
        .post(
            "/ui/settings/bounces",
            &[
                ("threshold_percent", "2.5"),
                ("window_days", "14"),
                ("min_sends", "40"),
            ],
        )
        .await;
    assert_eq!(rule.status, StatusCode::SEE_OTHER, "{}", rule.html);
    ui.follow(&rule)
        .await
        .expect("A channel pauses when 2.5 % or more of its recipients hard-bounce over 14 day(s), once it has mailed at least 40.");

    // Refusals: the page with the API's words, and nothing changed.
    for (path, fields, words) in [
        (
            "/ui/settings/defaults",
            vec![
                ("window.time_zone", "Atlantis/Capital"),
                ("mon", "on"),
                ("window.start", "09:00"),
                ("window.end", "17:00"),
            ],
            "Atlantis/Capital",
        ),
        (
            "/ui/settings/bounces",
            vec![("threshold_percent", "55")],
            "threshold_percent",
        ),
        (
            "/ui/settings/bounces",
            vec![("min_sends", "many")],
            "is not a number",
        ),
    ] {
        let refused = ui.post(path, &fields).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.html
        );
        refused.expect("There is a problem").expect(words);
    }
    let after = expect_json(
        w.app.get("/v1/tenant", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["sending_defaults"], tenant["sending_defaults"]);
    assert_eq!(after["bounce_pause"]["threshold_percent"], 2.5);

    // A rep sees the rule, not the forms, and may not post them.
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    rep.get("/ui/settings")
        .await
        .expect_not("Save sending defaults");
    let refused = rep
        .post("/ui/settings/defaults", &[("per_day_messages", "5000")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
}
