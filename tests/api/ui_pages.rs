//! The route explain, messages, audit and settings pages over HTTP: each shows what the API
//! shows to the same person, and refuses what the API refuses.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, spawn_app};
use crate::messages::{World, mail, send_id, world};
use crate::ui_client::UiClient;

/// A tenant-wide domain channel for acme.test on the world's SMTP server (not verified).
async fn tenant_relay(w: &World) -> String {
    let body = json!({"name": "Acme relay", "kind": "smtp", "scope": "domain",
                      "owner": {"tenant": true}, "domains": ["acme.test"],
                      "smtp": {"host": "localhost", "port": w.server.port(), "security": "starttls",
                               "auth": "plain", "username": "relay", "password": "Canary-Relay-Pw-1",
                               "ca_pem": w.server.ca_pem()}});
    expect_json(
        w.app.post("/v1/channels", &w.acme.admin_token, body).await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tenant(app: &TestApp, token: &str) -> Value {
    expect_json(app.get("/v1/tenant", token).await, StatusCode::OK).await
}

#[tokio::test]
async fn route_explain_shows_the_chosen_channel_and_why_the_others_were_skipped() {
    let w = world().await;
    let relay = tenant_relay(&w).await;
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;

    let form = rep.get("/ui/route").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    form.expect("From address")
        .expect("name=\"from\"")
        .expect(">Explain</button>")
        // Only admins choose another sender.
        .expect_not("name=\"sender_user_id\"");

    let page = rep.get("/ui/route?from=rep@acme.test&recipients=1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Would be sent")
        .expect(&format!("href=\"/ui/channels/{}\">My mailbox</a>", w.channel))
        .expect("It is the first usable channel for this From address: the sender's own mailbox")
        .expect(&format!("href=\"/ui/channels/{relay}\">Acme relay</a>"))
        .expect("<strong>Skipped</strong>: a channel earlier in the routing order comes first (<code>lower_priority</code>)");

    let nowhere = rep.get("/ui/route?from=someone@elsewhere.test").await;
    assert_eq!(nowhere.status, StatusCode::OK, "{}", nowhere.html);
    nowhere
        .expect("Cannot be sent")
        .expect("<code>domain_not_verified</code>")
        .expect("The sender's own connected mailbox needs no proof")
        .expect("href=\"/ui/domains\"");

    let invalid = rep.get("/ui/route?from=not-an-address").await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    invalid.expect("id=\"f-from-error\"");

    // An admin explains for the rep: the rep's own mailbox carries it.
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    admin
        .get("/ui/route")
        .await
        .expect("name=\"sender_user_id\"")
        .expect(&format!("value=\"{}\"", w.rep.id));
    let as_rep = admin
        .get(&format!(
            "/ui/route?from=rep@acme.test&sender_user_id={}",
            w.rep.id
        ))
        .await;
    assert_eq!(as_rep.status, StatusCode::OK, "{}", as_rep.html);
    as_rep.expect("Would be sent").expect(">My mailbox</a>");
    // As themself, the admin may not use the rep's mailbox.
    admin
        .get("/ui/route?from=rep@acme.test&sender_user_id=me")
        .await
        .expect("Would be sent")
        .expect("<code>not_senders_channel</code>");

    // With the mailbox switched off, the hold policy keeps mail for it: the page says so
    // and what to do.
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", w.channel),
                &w.acme.admin_token,
                json!({"disabled": true}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    rep.get("/ui/route?from=rep@acme.test")
        .await
        .expect("Would be held")
        .expect("<code>channel_unavailable</code>")
        .expect("Mail waits for <a")
        .expect("<code>not_active</code>");
}

#[tokio::test]
async fn the_messages_list_shows_a_sent_message_and_its_log_shows_the_attempt() {
    let w = world().await;
    let id = send_id(&w, mail("Q4 prices")).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", Duration::from_secs(20))
        .await;
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;

    let list = rep.get("/ui/messages").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.html);
    list.expect(&format!("href=\"/ui/messages/{id}\">Q4 prices</a>"))
        .expect("<span class=\"badge ok\">Sent</span>")
        .expect(&format!(
            "href=\"/ui/channels/{}\">My mailbox</a>",
            w.channel
        ))
        .expect("selected: the sender's own mailbox")
        .expect("name=\"status\"");
    rep.get("/ui/messages?status=failed")
        .await
        .expect("No messages match these filters.")
        .expect_not("Q4 prices");
    rep.get("/ui/messages?status=sent")
        .await
        .expect("Q4 prices");

    let page = rep.get(&format!("/ui/messages/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Event log")
        .expect("data-kind=\"accepted\"")
        .expect("data-kind=\"routed\"")
        .expect("data-kind=\"attempt\"")
        .expect("Accepted by the server")
        .expect("server replied:<span class=\"reply\">2.0.0 Ok: queued as")
        .expect("data-kind=\"sent\"")
        .expect("ann@example.com")
        // The page shows what the API shows: never the body.
        .expect_not("Hello Ann");
}

#[tokio::test]
async fn a_rep_sees_only_their_own_messages_and_it_reads_none() {
    let w = world().await;
    let id = send_id(&w, mail("Private deal")).await;
    let other = w
        .app
        .create_user(&w.acme, "other@acme.test", "rep", None)
        .await;
    let mut theirs = UiClient::signed_in(&w.app, &other.token).await;
    theirs
        .get("/ui/messages")
        .await
        .expect("Your messages")
        .expect("No messages yet.")
        .expect_not("Private deal");
    let refused = theirs.get(&format!("/ui/messages/{id}")).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.html);
    refused.expect_not("Private deal");

    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    admin
        .get("/ui/messages")
        .await
        .expect("Every message of the tenant")
        .expect("Private deal");
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let mut it = UiClient::signed_in(&w.app, &it.token).await;
    assert_eq!(it.get("/ui/messages").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_lists_who_created_a_channel_and_filters_by_channel() {
    let w = world().await;
    let relay = tenant_relay(&w).await;
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;

    let page = admin.get("/ui/audit").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("data-action=\"channel.created\"")
        .expect("<td>rep@acme.test</td>")
        .expect("<td>admin@acme.test</td>")
        .expect(&format!("href=\"/ui/channels/{relay}\">Acme relay</a>"))
        .expect(&format!(
            "href=\"/ui/channels/{}\">My mailbox</a>",
            w.channel
        ))
        .expect("Older events");

    let only_relay = admin.get(&format!("/ui/audit?channel_id={relay}")).await;
    assert_eq!(only_relay.status, StatusCode::OK, "{}", only_relay.html);
    only_relay
        .expect(&format!("href=\"/ui/channels/{relay}\">Acme relay</a>"))
        .expect_not(&format!("href=\"/ui/channels/{}\"", w.channel))
        .expect_not("<td>rep@acme.test</td>");
    admin
        .get("/ui/audit?action=credential.")
        .await
        .expect("No events in this period match these filters.");
    let bad = admin.get("/ui/audit?since=soon").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad.expect("id=\"f-since-error\"");

    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    assert_eq!(rep.get("/ui/audit").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn it_reads_the_audit_and_the_settings_but_cannot_change_them() {
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let mut ui = UiClient::signed_in(&app, &it.token).await;
    assert_eq!(ui.get("/ui/audit").await.status, StatusCode::OK);

    let page = ui.get("/ui/settings").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("Only an admin can change these settings.")
        .expect("Only on messages that ask for it")
        .expect("acme.test")
        .expect_not("action=\"/ui/settings\"")
        .expect_not("Save settings");
    let before = tenant(&app, &acme.admin_token).await;
    let forged = ui
        .post(
            "/ui/settings",
            &[("name", "Acme"), ("fallback_policy", "fallback")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert_eq!(tenant(&app, &acme.admin_token).await, before);
}

#[tokio::test]
async fn an_admin_changes_the_fallback_policy_and_a_bad_value_changes_nothing() {
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;

    let form = ui.get("/ui/settings").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    form.expect("name=\"sending_enabled\"")
        .expect("name=\"fallback_policy\" value=\"hold\" checked")
        .expect("name=\"shared_pool_allowed\"")
        .expect("name=\"unsubscribe_by_default\"")
        .expect("href=\"/ui/domains\"")
        .expect_not("name=\"domains\"")
        .expect(">Save settings</button>");

    let saved = ui
        .post(
            "/ui/settings",
            &[
                ("name", "Acme"),
                ("sending_enabled", "on"),
                ("fallback_policy", "fallback"),
                ("unsubscribe_by_default", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    assert_eq!(saved.location.as_deref(), Some("/ui/settings"));
    ui.follow(&saved)
        .await
        .expect("Settings saved")
        .expect("name=\"fallback_policy\" value=\"fallback\" checked");
    let after = tenant(&app, &acme.admin_token).await;
    assert_eq!(after["fallback_policy"], "fallback");
    assert_eq!(
        after["domains"],
        json!(["acme.test"]),
        "the page leaves domains alone"
    );
    assert_eq!(after["sending_enabled"], true);
    assert_eq!(after["shared_pool_allowed"], false);
    assert_eq!(after["unsubscribe_by_default"], true);

    ui.get("/ui/settings").await;
    let refused = ui
        .post(
            "/ui/settings",
            &[
                ("name", "Acme"),
                ("sending_enabled", "on"),
                ("fallback_policy", "drop"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.expect("id=\"f-fallback-policy-error\"");
    assert_eq!(tenant(&app, &acme.admin_token).await, after);

    let no_csrf = ui
        .post_raw(
            "/ui/settings",
            &[("name", "Acme"), ("fallback_policy", "hold")],
            None,
            Some(&ui.base.clone()),
            false,
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(tenant(&app, &acme.admin_token).await, after);
}

#[tokio::test]
async fn an_admin_claims_a_domain_on_the_domains_page_and_checks_it_after_publishing() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    let page = ui.get("/ui/domains").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.expect("No domains claimed yet.")
        .expect(">Claim domain</button>");

    let refused = ui.post("/ui/domains", &[("domain", "not a domain!")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused
        .expect("id=\"f-domain-error\"")
        .expect("value=\"not a domain!\"");
    let provider = ui.post("/ui/domains", &[("domain", "gmail.com")]).await;
    assert_eq!(provider.status, StatusCode::UNPROCESSABLE_ENTITY);
    provider.expect("Connect Gmail");

    let claimed = ui.post("/ui/domains", &[("domain", "acme.test")]).await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.html);
    let listed = ui.follow(&claimed).await;
    listed
        .expect("acme.test claimed")
        .expect("_switchboard.acme.test")
        .expect("switchboard-domain-verification=")
        .expect("Pending");
    let again = ui.post("/ui/domains", &[("domain", "acme.test")]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    again.expect("already claimed");

    let claim = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await[0]
        .clone();
    app.dns
        .txt(
            claim["verification"]["name"].as_str().unwrap(),
            claim["verification"]["value"].as_str().unwrap(),
        )
        .await;
    // IT checks it (and may not claim or remove).
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let mut it_ui = UiClient::signed_in(&app, &it.token).await;
    let seen = it_ui.get("/ui/domains").await;
    seen.expect("Check now")
        .expect_not("Claim domain")
        .expect_not(">Remove</button>");
    let id = claim["id"].as_str().unwrap();
    let checked = it_ui.post(&format!("/ui/domains/{id}/verify"), &[]).await;
    assert_eq!(checked.status, StatusCode::SEE_OTHER, "{}", checked.html);
    it_ui
        .follow(&checked)
        .await
        .expect("acme.test: verified")
        .expect("Verified");
    let forbidden = it_ui.post(&format!("/ui/domains/{id}/delete"), &[]).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    // A rep has no Domains page.
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let mut rep_ui = UiClient::signed_in(&app, &rep.token).await;
    rep_ui
        .get("/ui/channels")
        .await
        .expect_not("href=\"/ui/domains\"");
    assert_eq!(
        rep_ui.get("/ui/domains").await.status,
        StatusCode::FORBIDDEN
    );

    ui.get("/ui/domains").await;
    let removed = ui.post(&format!("/ui/domains/{id}/delete"), &[]).await;
    ui.follow(&removed)
        .await
        .expect("Domain removed")
        .expect("No domains claimed yet.");
}
