//! "Connect Microsoft" end to end against a local fake of the Microsoft identity platform and
//! Graph (tests/support/fake_microsoft.rs): work and personal accounts, our exact MIME
//! through sendMail, the rotated refresh token stored, each refusal class, no duplicate
//! after a lost answer, tenant isolation, and tokens kept out of answers and the database.
//! The test plays the rep's browser.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_microsoft::{
    AadError, Account, FakeMicrosoft, FakeMicrosoftConfig, PERSONAL_TENANT, SendFailure,
};
use crate::helpers::{
    OAuthBrowser, TestApp, TestTenant, TestUser, app_with_rep, assert_sealed_on_disk, attempts,
    expect_json, expect_problem,
};
use crate::smtp_server::{Fault, IdleClose, SmtpServerConfig, TestSmtpServer, TokenIssuer};

const PUBLIC_URL: &str = "http://switchboard.test";
const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const MAILBOX: &str = "ann.rep@contoso.test";
const PATIENCE: Duration = Duration::from_secs(30);

/// A GET's body as text, whatever its status: for looking for what must not be in it.
async fn page(w: &World, path: &str, token: &str) -> String {
    w.app.get(path, token).await.text().await.unwrap()
}

struct World {
    app: TestApp,
    ms: FakeMicrosoft,
    acme: TestTenant,
    rep: TestUser,
    browser: OAuthBrowser,
    address: String,
}

async fn world_as(account: Account) -> World {
    let config = FakeMicrosoftConfig {
        account,
        ..FakeMicrosoftConfig::default()
    };
    world_with(config, &[]).await
}

async fn world_with(config: FakeMicrosoftConfig, extra: &[(&str, &str)]) -> World {
    world_on(start_microsoft(config).await, extra).await
}

async fn start_microsoft(config: FakeMicrosoftConfig) -> FakeMicrosoft {
    FakeMicrosoft::start(FakeMicrosoftConfig {
        redirect_uri: format!("{PUBLIC_URL}/oauth/microsoft/callback"),
        ..config
    })
    .await
}

async fn world_on(ms: FakeMicrosoft, extra: &[(&str, &str)]) -> World {
    let account = ms.account();
    let address = account
        .mail
        .clone()
        .unwrap_or_else(|| account.user_principal_name.clone());
    let defaults = FakeMicrosoftConfig::default();
    let (authority, graph) = (ms.authority_url(), ms.graph_url());
    let mut env = vec![
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC_URL),
        ("SWITCHBOARD_MICROSOFT_CLIENT_ID", &defaults.client_id),
        (
            "SWITCHBOARD_MICROSOFT_CLIENT_SECRET",
            &defaults.client_secret,
        ),
        ("SWITCHBOARD_MICROSOFT_AUTHORITY_URL", &authority),
        ("SWITCHBOARD_MICROSOFT_GRAPH_URL", &graph),
    ];
    env.extend_from_slice(extra);
    let (app, acme, rep) = app_with_rep(&env).await;
    World {
        app,
        ms,
        acme,
        rep,
        browser: OAuthBrowser::new(PUBLIC_URL),
        address,
    }
}

async fn world() -> World {
    world_as(Account::work(CONTOSO, MAILBOX)).await
}

/// The rep clicks "Connect Microsoft" (or "Reconnect"), as `token`'s holder; returns where
/// Microsoft sent the browser back, pointed at the test app.
async fn authorize_as(w: &World, token: &str, body: Value) -> String {
    w.browser
        .authorize(&w.app, "/v1/oauth/microsoft/start", token, body)
        .await
}

async fn land(w: &World, callback: &str) -> (StatusCode, String) {
    w.browser.land(callback).await
}

async fn connect(w: &World) -> Value {
    let callback = authorize_as(w, &w.rep.token, json!({})).await;
    let (status, page) = land(w, &callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    channel(w).await
}

async fn reconnect(w: &World, channel: &Value) -> String {
    let callback = authorize_as(w, &w.rep.token, json!({"channel_id": channel["id"]})).await;
    let (status, page) = land(w, &callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

async fn channels_of(w: &World, token: &str) -> Vec<Value> {
    let all = expect_json(w.app.get("/v1/channels", token).await, StatusCode::OK).await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "microsoft")
        .cloned()
        .collect()
}

async fn channel(w: &World) -> Value {
    let mine = channels_of(w, &w.rep.token).await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    mine[0].clone()
}

async fn send(w: &World, subject: &str) -> String {
    w.app
        .accept(
            &w.rep.token,
            json!({"from": format!("Ann Rep <{}>", w.address), "to": ["buyer@example.com"],
                       "subject": subject, "text": "Hello", "unsubscribe": true}),
        )
        .await
}

async fn wait(w: &World, id: &str, status: &str) -> Value {
    w.app
        .wait_for_message(&w.rep.token, id, status, PATIENCE)
        .await
}

#[tokio::test]
async fn a_rep_connects_a_work_account_at_common_with_pkce_state_and_nonce() {
    let w = world().await;
    let channel = connect(&w).await;
    assert_eq!(channel["from_address"], MAILBOX);
    assert_eq!(channel["scope"], "mailbox");
    assert_eq!(channel["status"], "active");
    assert_eq!(channel["has_credential"], true);
    assert_eq!(channel["limits"]["per_minute"], 30);
    assert_eq!(channel["limits"]["per_day_recipients"], 10_000);

    let request = &w.ms.authorization_requests()[0];
    assert_eq!(request.tenant, "common");
    assert_eq!(request.param("code_challenge_method"), Some("S256"));
    assert!(
        request
            .param("code_challenge")
            .is_some_and(|c| c.len() == 43)
    );
    assert!(request.param("state").is_some_and(|s| s.len() >= 32));
    assert!(request.param("nonce").is_some_and(|n| n.len() >= 32));
    assert_eq!(
        request.param("prompt"),
        Some("select_account"),
        "never prompt=consent"
    );
    let scope: Vec<&str> = request.param("scope").unwrap().split(' ').collect();
    for wanted in [
        "openid",
        "email",
        "profile",
        "offline_access",
        "User.Read",
        "Mail.Send",
    ] {
        assert!(scope.contains(&wanted), "{scope:?}");
    }
    assert_eq!(w.ms.code_exchanges(), 1);
    assert_eq!(
        w.ms.pkce_failures(),
        0,
        "the verifier matched the challenge"
    );

    // The same account again (a second Connect, not a reconnect) is the same channel.
    connect(&w).await;
    assert_eq!(channels_of(&w, &w.rep.token).await.len(), 1);
    // The code cannot be used twice.
    let callback = authorize_as(&w, &w.rep.token, json!({})).await;
    let (status, _) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");
}

#[tokio::test]
async fn a_personal_outlook_account_connects_with_its_upn_as_the_address() {
    let w = world_as(Account::personal("ann.rep@outlook.com")).await;
    let channel = connect(&w).await;
    assert_eq!(channel["from_address"], "ann.rep@outlook.com");
    assert_eq!(channel["limits"]["per_day_recipients"], 300, "{channel}");
    assert_eq!(channel["account"], "outlook_com", "{channel}");
    // Outlook.com's daily limit may be lowered, not raised.
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    let raised = w
        .app
        .patch(
            &path,
            &w.rep.token,
            json!({"limits": {"per_day_recipients": 1000}}),
        )
        .await;
    let problem = expect_problem(
        raised,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_above_provider",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Outlook.com allows 300"),
        "{problem:#}"
    );
    let id = send(&w, "From Outlook.com").await;
    wait(&w, &id, "sent").await;
    assert_eq!(w.ms.sent_messages().len(), 1);
    w.ms.expire_access_tokens();
    let id = send(&w, "after expiry").await;
    wait(&w, &id, "sent").await;
    assert_eq!(
        w.ms.refresh_tenants(),
        [PERSONAL_TENANT],
        "refreshed at the account's tid"
    );
}

#[tokio::test]
async fn our_exact_mime_reaches_graph_with_message_id_and_list_unsubscribe() {
    let w = world().await;
    connect(&w).await;
    let id = send(&w, "Through Graph").await;
    let view = wait(&w, &id, "sent").await;
    let sent = w.ms.sent_messages();
    assert_eq!(sent.len(), 1);
    let mime = String::from_utf8_lossy(&sent[0].mime).to_string();
    let message_id = view["message_id"].as_str().unwrap();
    assert_eq!(sent[0].internet_message_id.as_deref(), Some(message_id));
    assert!(mime.contains("Subject: Through Graph"), "{mime}");
    assert!(mime.contains("List-Unsubscribe: <"), "{mime}");
    assert!(
        mime.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{mime}"
    );
    assert_eq!(
        attempts(&view)[0]["detail"]["reply"],
        "Microsoft Graph accepted it (202)"
    );
}

#[tokio::test]
async fn a_burst_at_expiry_refreshes_once_at_the_tenant_and_the_rotated_token_is_used_next() {
    let w = world().await;
    connect(&w).await;
    w.ms.expire_access_tokens();
    // 50 at once: the mailbox's 30 a minute go, the other 20 wait for the next minute (paced,
    // not failed), which the service's clock reaches without the test waiting for it. The
    // burst starts just after a minute begins, so that it all falls in one minute.
    let into_minute = w.app.clock.now().timestamp_micros().rem_euclid(60_000_000) as u64;
    w.app
        .clock
        .advance(Duration::from_micros(61_000_000 - into_minute));
    let ids = w.app.burst(&w.rep.token, MAILBOX, 50).await;
    let mut waiting = Vec::new();
    for id in &ids {
        let view = w
            .app
            .wait_for_message_where(&w.rep.token, id, PATIENCE, |v| {
                v["status"] == "sent" || v["status"] == "deferred"
            })
            .await;
        if view["status"] == "deferred" {
            let last = view["events"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["detail"]["reason"], "per_minute", "{view:#}");
            waiting.push(id.clone());
        }
    }
    assert_eq!(waiting.len(), 20, "30 a minute");
    w.app.clock.advance(Duration::from_secs(61));
    for id in &waiting {
        wait(&w, id, "sent").await;
    }
    assert_eq!(w.ms.sent_messages().len(), 50);
    assert_eq!(w.ms.refreshes(), 1, "one refresh served all of them");
    // The fake refuses a refresh token once used: the next refresh works only with the
    // rotated one we stored.
    w.ms.expire_access_tokens();
    let id = send(&w, "after the second expiry").await;
    let view = w
        .app
        .wait_for_message_where(&w.rep.token, &id, PATIENCE, |v| {
            v["status"] != "queued" && v["status"] != "sending"
        })
        .await;
    assert_ne!(view["status"], "held", "{view:#}");
    assert_eq!(w.ms.refreshes(), 2);
    assert_eq!(
        w.ms.refresh_tenants(),
        [CONTOSO, CONTOSO],
        "never at common"
    );
    assert_eq!(channel(&w).await["status"], "active");
}

#[tokio::test]
async fn a_password_reset_holds_mail_until_the_rep_reconnects_and_then_sends_it() {
    let w = world().await;
    let before = connect(&w).await;
    w.ms.set_refresh_error(Some(AadError::password_changed()));
    w.ms.expire_access_tokens();
    let id = send(&w, "after the reset").await;
    let held = wait(&w, &id, "held").await;
    assert_eq!(held["hold_reason"], "channel_unavailable", "{held:#}");
    let broken = channel(&w).await;
    assert_eq!(broken["status"], "needs_reauth");
    assert_eq!(broken["status_cause"], "password_changed");
    assert!(
        broken["health"]["advice"]
            .as_str()
            .unwrap()
            .contains("connect the mailbox again"),
        "{broken}"
    );
    assert!(w.ms.sent_messages().is_empty());

    w.ms.set_refresh_error(None);
    let page = reconnect(&w, &before).await;
    assert!(page.contains("held message"), "{page}");
    let sent = wait(&w, &id, "sent").await;
    assert_eq!(sent["channel_id"], before["id"]);
    assert_eq!(channel(&w).await["status"], "active");
    let login_hint = w.ms.authorization_requests()[1]
        .param("login_hint")
        .map(str::to_owned);
    assert_eq!(login_hint.as_deref(), Some(MAILBOX));
}

#[tokio::test]
async fn conditional_access_asks_for_the_admin_and_an_expired_secret_blames_no_rep() {
    let w = world().await;
    connect(&w).await;
    w.ms.set_refresh_error(Some(AadError::conditional_access()));
    w.ms.expire_access_tokens();
    let id = send(&w, "blocked by policy").await;
    wait(&w, &id, "held").await;
    let blocked = channel(&w).await;
    assert_eq!(
        blocked["status_cause"], "admin_action_required",
        "{blocked}"
    );
    assert!(
        blocked["health"]["advice"]
            .as_str()
            .unwrap()
            .starts_with("ask your Microsoft admin"),
        "{blocked}"
    );
    let error = blocked["health"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("/{CONTOSO}/adminconsent?client_id=")),
        "the admin-consent link names the account's directory: {blocked}"
    );

    // Our client secret expired: the message waits, the channel is not the rep's problem.
    let w = world().await;
    connect(&w).await;
    w.ms.set_refresh_error(Some(AadError::secret_expired()));
    w.ms.expire_access_tokens();
    let id = send(&w, "secret expired").await;
    let deferred = wait(&w, &id, "deferred").await;
    assert!(
        deferred["last_error"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_MICROSOFT_CLIENT"),
        "{deferred:#}"
    );
    assert_eq!(channel(&w).await["status"], "active");
    let metrics = w.app.get("/metrics", "").await.text().await.unwrap();
    assert!(
        metrics.contains("switchboard_oauth_client_refused_total{provider=\"microsoft\"}"),
        "the operator's signal: {metrics}"
    );
    w.ms.set_refresh_error(None);
    wait(&w, &id, "sent").await;
}

#[tokio::test]
async fn an_organisation_that_wants_admin_approval_gets_the_consent_link() {
    let w = world().await;
    w.ms.set_admin_approval_required(true);
    let callback = authorize_as(&w, &w.rep.token, json!({})).await;
    let (status, page) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("Ask your Microsoft admin"), "{page}");
    assert!(
        page.contains("/organizations/adminconsent?client_id="),
        "{page}"
    );
    assert!(channels_of(&w, &w.rep.token).await.is_empty());
    assert_eq!(w.ms.code_exchanges(), 0);
    // An admin declines at the consent link; another approves.
    let (status, page) = land(
        &w,
        &format!(
            "{}/oauth/microsoft/callback?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent.",
            w.app.address
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("AADSTS65004: User declined"), "{page}");
    let (status, page) = land(
        &w,
        &format!(
            "{}/oauth/microsoft/callback?admin_consent=True&tenant={CONTOSO}",
            w.app.address
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("approved Switchboard"), "{page}");
    w.ms.set_admin_approval_required(false);
    connect(&w).await;
}

#[tokio::test]
async fn a_gateway_timeout_after_graph_took_the_mail_does_not_send_it_twice() {
    let w = world().await;
    connect(&w).await;
    w.ms.fail_next_sends(&[SendFailure::GatewayTimeoutAfterStore]);
    let id = send(&w, "lost answer").await;
    let view = wait(&w, &id, "sent").await;
    assert_eq!(
        w.ms.sent_messages().len(),
        1,
        "exactly one copy in Sent Items"
    );
    assert_eq!(w.ms.send_requests(), 1, "no second sendMail");
    assert_eq!(w.ms.sent_items_lookups(), 1);
    let tries = attempts(&view);
    assert_eq!(tries.len(), 2, "{view:#}");
    assert_eq!(tries[0]["detail"]["code"], 504);
    assert_eq!(tries[0]["detail"]["possibly_delivered"], true);
    assert_eq!(tries[1]["detail"]["reconciled"], true, "{view:#}");

    // A 202 that carries Retry-After is accepted, not sent again.
    w.ms.fail_next_sends(&[SendFailure::AcceptedWithRetryAfter {
        retry_after_secs: 5,
    }]);
    let id = send(&w, "202 with Retry-After").await;
    wait(&w, &id, "sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.ms.send_requests(), 2);
    assert_eq!(w.ms.sent_messages().len(), 2);

    // A 429 waits as long as Retry-After says, and the retry looks first, finds nothing,
    // then sends.
    w.ms.fail_next_sends(&[SendFailure::Throttled {
        retry_after_secs: 1,
    }]);
    let id = send(&w, "throttled").await;
    let view = wait(&w, &id, "sent").await;
    let tries = attempts(&view);
    assert_eq!(tries[0]["detail"]["code"], 429, "{view:#}");
    assert!(tries[1]["detail"]["reconciled"].is_null());
    assert_eq!(w.ms.sent_messages().len(), 3);
}

#[tokio::test]
async fn graphs_refusals_become_causes_a_person_can_act_on() {
    for (failure, outcome, cause) in [
        (SendFailure::SendAsDenied, "held", Some("send_as_denied")),
        (
            SendFailure::MailboxNotEnabled,
            "held",
            Some("mailbox_not_enabled"),
        ),
        (SendFailure::TooLarge, "failed", None),
    ] {
        let w = world().await;
        let before = connect(&w).await;
        w.ms.fail_next_sends(std::slice::from_ref(&failure));
        let id = send(&w, "refused").await;
        let view = wait(&w, &id, outcome).await;
        let after = channel(&w).await;
        match cause {
            Some(cause) => {
                assert_eq!(after["status"], "needs_reauth", "{failure:?}: {after}");
                assert_eq!(after["status_cause"], cause, "{failure:?}");
                // Once the admin fixed it, a reconnect releases the held mail.
                reconnect(&w, &before).await;
                wait(&w, &id, "sent").await;
            }
            None => {
                assert_eq!(after["status"], "active", "{failure:?}");
                assert!(
                    view["last_error"].as_str().unwrap().contains("413"),
                    "{view:#}"
                );
            }
        }
    }
}

/// The audit actions recorded for a channel, oldest first, with each one's actor.
async fn audit_of(w: &World, channel: &str) -> Vec<Value> {
    let audit = expect_json(
        w.app
            .get(
                &format!("/v1/audit?channel_id={channel}"),
                &w.acme.admin_token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    audit.as_array().unwrap().clone()
}

#[tokio::test]
async fn exchanges_sending_limit_pauses_the_mailbox_for_a_day_not_for_a_reconnect() {
    let w = world().await;
    let before = connect(&w).await;
    let id = before["id"].as_str().unwrap().to_owned();
    w.ms.fail_next_sends(&[SendFailure::ExceededMessageLimit]);
    let first = send(&w, "over the limit").await;
    wait(&w, &first, "held").await;
    let paused = channel(&w).await;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["status_cause"], "send_limit_reached");
    assert_eq!(paused["pause"]["by"], "system");
    assert!(
        paused["pause"]["reply"]
            .as_str()
            .unwrap()
            .contains("ErrorExceededMessageLimit"),
        "{paused:#}"
    );
    // Exchange counts a rolling 24 hours: the block ends a day after the refusal.
    let since =
        chrono::DateTime::parse_from_rfc3339(paused["pause"]["since"].as_str().unwrap()).unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(paused["pause"]["until"].as_str().unwrap()).unwrap();
    assert_eq!(until - since, chrono::Duration::hours(24), "{paused:#}");
    // Later mail waits too, and a reconnect does not end the block.
    let second = send(&w, "while paused").await;
    wait(&w, &second, "held").await;
    reconnect(&w, &before).await;
    assert_eq!(channel(&w).await["status"], "paused");
    assert_eq!(w.ms.sent_messages().len(), 0);
    let audit = audit_of(&w, &id).await;
    let paused_entry = audit
        .iter()
        .find(|e| e["action"] == "channel.paused")
        .unwrap_or_else(|| panic!("channel.paused in {audit:#?}"));
    assert_eq!(paused_entry["actor"], "system");
    assert_eq!(paused_entry["detail"]["cause"], "send_limit_reached");

    // An admin who knows the limit cleared resumes it early: the held mail goes, in order.
    let resumed = expect_json(
        w.app
            .post(
                &format!("/v1/channels/{id}/resume"),
                &w.acme.admin_token,
                json!({}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(resumed["status"], "active", "{resumed:#}");
    assert!(resumed["pause"].is_null());
    wait(&w, &first, "sent").await;
    wait(&w, &second, "sent").await;
    assert_eq!(w.ms.sent_messages().len(), 2);
    let audit = audit_of(&w, &id).await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "channel.resumed")
        .unwrap_or_else(|| panic!("channel.resumed in {audit:#?}"));
    assert_eq!(entry["actor"], format!("user:{}", w.acme.admin_id));
    assert_eq!(entry["detail"]["released"], 2, "{entry:#}");
}

#[tokio::test]
async fn a_paused_mailbox_resumes_by_itself_when_exchanges_block_ends() {
    // Checks (and so the end of blocks) looked for every 100 ms.
    let config = FakeMicrosoftConfig {
        account: Account::work(CONTOSO, MAILBOX),
        ..FakeMicrosoftConfig::default()
    };
    let w = world_with(config, &[("SWITCHBOARD_HEALTH_PROBE_INTERVAL", "200ms")]).await;
    let id = connect(&w).await["id"].as_str().unwrap().to_owned();
    w.ms.fail_next_sends(&[SendFailure::ExceededMessageLimit]);
    let held = send(&w, "over the limit").await;
    wait(&w, &held, "held").await;
    assert_eq!(channel(&w).await["status"], "paused");
    // An hour later it is still paused.
    w.app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(channel(&w).await["status"], "paused");
    assert_eq!(w.ms.sent_messages().len(), 0);
    // A day after the refusal the block is over: resumed by the system, the mail goes.
    w.app.clock.advance(Duration::from_secs(23 * 3600 + 60));
    wait(&w, &held, "sent").await;
    assert_eq!(channel(&w).await["status"], "active");
    let audit = audit_of(&w, &id).await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "channel.resumed")
        .unwrap_or_else(|| panic!("channel.resumed in {audit:#?}"));
    assert_eq!(entry["actor"], "system");
    assert_eq!(entry["detail"]["cause_was"], "send_limit_reached");
}

#[tokio::test]
async fn an_outbound_spam_block_pauses_until_an_admin_resumes() {
    let w = world().await;
    let before = connect(&w).await;
    let id = before["id"].as_str().unwrap().to_owned();
    w.ms.fail_next_sends(&[SendFailure::SenderBlocked]);
    let held = send(&w, "blocked").await;
    wait(&w, &held, "held").await;
    let paused = channel(&w).await;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["status_cause"], "sender_blocked");
    assert!(paused["pause"]["until"].is_null(), "only an admin ends it");
    assert!(
        paused["health"]["advice"]
            .as_str()
            .unwrap()
            .contains("Microsoft 365 admin must release it"),
        "{paused:#}"
    );
    // The rep cannot resume it; the admin can, once Microsoft released the account.
    expect_problem(
        w.app
            .post(
                &format!("/v1/channels/{id}/resume"),
                &w.rep.token,
                json!({}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_json(
        w.app
            .post(
                &format!("/v1/channels/{id}/resume"),
                &w.acme.admin_token,
                json!({}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    wait(&w, &held, "sent").await;
}

#[tokio::test]
async fn a_401_is_refreshed_once_and_retried() {
    let w = world().await;
    connect(&w).await;
    w.ms.fail_next_sends(&[SendFailure::Unauthorized]);
    let id = send(&w, "after a 401").await;
    let view = wait(&w, &id, "sent").await;
    assert_eq!(
        attempts(&view).len(),
        1,
        "the retry is part of the same attempt"
    );
    assert_eq!(w.ms.refreshes(), 1);
    assert_eq!(w.ms.sent_messages().len(), 1);
}

#[tokio::test]
async fn other_tenants_and_other_reps_cannot_reach_a_microsoft_channel() {
    let w = world().await;
    let mine = connect(&w).await;
    let id = mine["id"].as_str().unwrap();
    let globex = w.app.create_tenant("Globex").await;
    let stranger = w
        .app
        .create_user(&globex, "eve@globex.test", "rep", None)
        .await;
    expect_problem(
        w.app
            .post(
                "/v1/oauth/microsoft/start",
                &stranger.token,
                json!({"channel_id": id}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for token in [&stranger.token, &globex.admin_token] {
        let res = w
            .app
            .delete(&format!("/v1/channels/{id}/oauth"), token)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = w.app.get(&format!("/v1/channels/{id}"), token).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let colleague = w
        .app
        .create_user(&w.acme, "bob@acme.test", "rep", None)
        .await;
    expect_problem(
        w.app
            .post(
                "/v1/oauth/microsoft/start",
                &colleague.token,
                json!({"channel_id": id}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The same Microsoft account signed in by a colleague is not handed their channel.
    let callback = authorize_as(&w, &colleague.token, json!({})).await;
    let (status, _) = land(&w, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(channels_of(&w, &colleague.token).await.is_empty());
    expect_problem(
        w.app
            .post(
                "/v1/channels",
                &w.rep.token,
                json!({"name": "x", "kind": "microsoft", "owner": {"user": w.rep.id}, "scope": "mailbox", "from_address": MAILBOX}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "use_oauth_connect",
    )
    .await;
}

#[tokio::test]
async fn disconnecting_keeps_the_channel_waiting_and_the_same_account_reconnects_it() {
    let w = world().await;
    let before = connect(&w).await;
    let id = before["id"].as_str().unwrap();
    let answer = expect_json(
        w.app
            .delete(&format!("/v1/channels/{id}/oauth"), &w.rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["status"], "needs_reauth");
    assert!(
        answer["remove_access_at"]
            .as_str()
            .unwrap()
            .contains("myapps.microsoft.com")
    );
    let after = channel(&w).await;
    assert_eq!(after["status_cause"], "disconnected");
    let held = send(&w, "after disconnect").await;
    wait(&w, &held, "held").await;
    // Connect (not Reconnect) with the same account finds the same channel by tid + oid.
    connect(&w).await;
    assert_eq!(channel(&w).await["id"], before["id"]);
    wait(&w, &held, "sent").await;
    // The audit trail tells the story, naming the provider and never a secret.
    let audit = expect_json(
        w.app
            .get(&format!("/v1/audit?channel_id={id}"), &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["detail"]["provider"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for wanted in [
        ("channel.created", ""),
        ("channel.reconnected", "microsoft"),
        ("credential.revoked", "microsoft"),
    ] {
        assert!(actions.contains(&wanted), "{wanted:?} in {actions:?}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_answers_or_in_the_database_file() {
    let w = world().await;
    let channel = connect(&w).await;
    let id = send(&w, "canary").await;
    let view = wait(&w, &id, "sent").await;
    let audit = page(&w, "/v1/audit", &w.acme.admin_token).await;
    let channels = page(&w, "/v1/channels", &w.rep.token).await;
    let openapi = page(&w, "/openapi.json", &w.rep.token).await;
    assert!(openapi.contains("/v1/oauth/microsoft/start"));
    assert!(openapi.contains("/oauth/microsoft/callback"));
    let mut secrets = w.ms.issued_secrets();
    assert!(secrets.len() >= 2);
    secrets.push(FakeMicrosoftConfig::default().client_secret);
    for shown in [channels, channel.to_string(), view.to_string(), audit] {
        for secret in &secrets {
            assert!(!shown.contains(secret.as_str()), "a secret leaked: {shown}");
        }
    }
    assert_sealed_on_disk(&w.app, &secrets);
}

#[tokio::test]
async fn without_a_client_the_api_says_the_provider_is_not_configured() {
    let app = crate::helpers::spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    for (provider, code) in [
        ("google", "gmail_not_configured"),
        ("microsoft", "microsoft_not_configured"),
    ] {
        let path = format!("/v1/oauth/{provider}/start");
        let res = app.post(&path, &acme.admin_token, json!({})).await;
        expect_problem(res, StatusCode::CONFLICT, code).await;
    }
}

#[tokio::test]
async fn widening_the_channel_kinds_keeps_every_channel_domain_token_and_message() {
    use diesel::connection::SimpleConnection;
    use switchboard::store::{DbConnection, Store, migrations, oauth};

    let w = world().await;
    let microsoft = connect(&w).await;
    let queued = send(&w, "sent before the upgrade").await;
    wait(&w, &queued, "sent").await;
    let admin = &w.acme.admin_token;
    w.app.prove_domain(admin, "acme.test").await;
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
    let config = w.app.config();
    let keys = w.app.master_keys.clone();
    let World {
        app, acme, rep, ms, ..
    } = w;
    let setup = app.stop().await;
    let store = Store::open(&config.database, 1).unwrap();
    let tenant = acme.id.clone();
    let (relay_channel, ms_channel) = (
        relay_id.parse().unwrap(),
        microsoft["id"].as_str().unwrap().parse().unwrap(),
    );
    store
        .run_blocking(|conn| {
            let reverted = migrations::revert_newer_than(conn, "2026-12-02-000013")?;
            assert!(reverted.iter().any(|v| v.ends_with("000016")), "{reverted:?}");
            // A token row on a channel of the old kinds (as a Gmail channel has): it must
            // survive the rebuild of `channels` both ways.
            let insert = format!(
                "INSERT INTO oauth_tokens (channel_id, tenant_id, provider, subject, scopes, version, updated_at) \
                 VALUES ('{relay_id}', '{tenant}', 'google', 'sub-1', 'x', 7, 1)"
            );
            match conn {
                DbConnection::Sqlite(c) => c.batch_execute(&insert)?,
                DbConnection::Postgresql(c) => c.batch_execute(&insert)?,
            }
            migrations::run_pending(conn)?;
            assert!(
                oauth::token_state(conn, ms_channel)?.is_none(),
                "reverting removed the Microsoft channels (and their tokens)"
            );
            // Down and up again: everything of the old kinds is still there.
            migrations::revert_newer_than(conn, "2026-12-02-000013")?;
            migrations::run_pending(conn)?;
            let state = oauth::token_state(conn, relay_channel)?.expect("the token row survived");
            assert_eq!(state.version, 7);
            Ok(())
        })
        .unwrap();
    drop(store);
    let app = setup
        .start_with_keys(&keys)
        .await
        .unwrap_or_else(|(e, _)| panic!("the upgraded app starts: {e}"));
    let relay = expect_json(
        app.get(&format!("/v1/channels/{relay_id}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        relay["domains"],
        json!(["acme.test"]),
        "channel_domains survived: {relay}"
    );
    let message = expect_json(
        app.get(&format!("/v1/messages/{queued}"), &rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(message["status"], "sent");
    // The Microsoft channel went with the revert; a new connection works on the new schema.
    drop(ms);
}

/// Presses Connect Microsoft (or Reconnect, with `channel_id`) on the pages, signs in at
/// Microsoft and lands on the callback with the pages' cookies.
async fn connect_from_pages(
    w: &World,
    ui: &mut crate::ui_client::UiClient,
    fields: &[(&str, &str)],
) -> crate::ui_client::Page {
    let started = ui.post("/ui/channels/microsoft/connect", fields).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.html);
    let authorize = started.location.clone().unwrap();
    assert!(
        authorize.starts_with(&format!(
            "{}/common/oauth2/v2.0/authorize?",
            w.ms.authority_url()
        )),
        "to Microsoft: {authorize}"
    );
    let signed_in = w.browser.client.get(&authorize).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let back = signed_in.headers()["location"].to_str().unwrap().to_owned();
    ui.get(back.strip_prefix(PUBLIC_URL).unwrap()).await
}

#[tokio::test]
async fn the_pages_connect_show_the_admin_link_and_disconnect_a_microsoft_mailbox() {
    let w = world().await;
    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.rep.token).await;
    let list = ui.get("/ui/channels").await;
    list.expect("Connect Microsoft")
        .expect("action=\"/ui/channels/microsoft/connect\"");
    list.expect("Gmail is not configured on this installation");

    let landed = connect_from_pages(&w, &mut ui, &[]).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.html);
    let id = channel(&w).await["id"].as_str().unwrap().to_owned();
    let page_path = format!("/ui/channels/{id}");
    assert_eq!(landed.location.as_deref(), Some(page_path.as_str()));
    let page = ui.follow(&landed).await;
    page.expect(&format!("Microsoft connected: sends as {MAILBOX}."))
        .expect("Microsoft connection")
        .expect("Reconnect Microsoft")
        .expect("Microsoft account connected")
        .expect("myapps.microsoft.com")
        .expect_not("Verify and replace");

    // The organisation's policy blocks the refresh: the page says who must act, and how.
    w.ms.set_refresh_error(Some(AadError::conditional_access()));
    w.ms.expire_access_tokens();
    let held = send(&w, "blocked").await;
    wait(&w, &held, "held").await;
    ui.get(&page_path)
        .await
        .expect("Ask your Microsoft admin")
        .expect("/organizations/adminconsent?client_id=");

    // Reconnect once the admin approved: the held mail goes.
    w.ms.set_refresh_error(None);
    let landed = connect_from_pages(&w, &mut ui, &[("channel_id", &id)]).await;
    assert_eq!(landed.location.as_deref(), Some(page_path.as_str()));
    ui.follow(&landed)
        .await
        .expect("1 held message(s) released");
    wait(&w, &held, "sent").await;

    let done = ui.post(&format!("/ui/channels/{id}/disconnect"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    ui.follow(&done)
        .await
        .expect("Microsoft disconnected")
        .expect("account.live.com/consent/Manage");
    assert_eq!(channel(&w).await["status_cause"], "disconnected");
}

#[tokio::test]
async fn an_idle_mailbox_is_refreshed_by_the_scheduled_check_and_keeps_its_grant() {
    // Access tokens of 61 s: refreshing a minute early makes each due after a second, as a
    // day without mail makes them due in production.
    let config = FakeMicrosoftConfig {
        account: Account::work(CONTOSO, MAILBOX),
        access_token_lifetime: Duration::from_secs(61),
        ..FakeMicrosoftConfig::default()
    };
    let w = world_with(config, &[("SWITCHBOARD_HEALTH_CHECK_IDLE", "1s")]).await;
    connect(&w).await;
    // Twice: the second refresh works only with the refresh token the first one rotated in.
    for refreshes in 1..=2 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while w.ms.refreshes() < refreshes {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no refresh {refreshes}: {:?}",
                w.ms.refresh_tenants()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = channel(&w).await;
    assert_eq!(idle["status"], "active", "{idle}");
    assert!(w.ms.sent_messages().is_empty(), "a check sends nothing");
    assert!(w.ms.refresh_tenants().iter().all(|t| t == CONTOSO));
}

#[tokio::test]
async fn a_password_office_365_channel_is_steered_to_connect_microsoft() {
    let w = world().await;
    let created = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.rep.token,
                json!({"name": "My Office 365", "kind": "smtp", "preset": "office365",
                       "from_address": MAILBOX,
                       "smtp": {"username": MAILBOX, "password": "Canary-Office-Pw-1"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        created["warnings"][0]["code"], "microsoft_password_login_retiring",
        "{created}"
    );
    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.rep.token).await;
    let page = ui
        .get(&format!("/ui/channels/{}", created["id"].as_str().unwrap()))
        .await;
    page.expect("Microsoft is retiring password logins")
        .expect("action=\"/ui/channels/microsoft/connect\"");
}

#[tokio::test]
async fn at_most_four_sends_reach_a_mailbox_at_once() {
    let w = world().await;
    connect(&w).await;
    w.ms.set_send_delay(Duration::from_millis(300));
    for id in w.app.burst(&w.rep.token, MAILBOX, 12).await {
        wait(&w, &id, "sent").await;
    }
    assert_eq!(w.ms.sent_messages().len(), 12);
    assert_eq!(
        w.ms.most_sends_in_flight(),
        4,
        "Graph's MailboxConcurrency limit is four requests per mailbox"
    );
}

#[tokio::test]
async fn an_admin_finds_the_microsoft_admin_consent_link_in_settings() {
    let w = world().await;
    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    let page = ui.get("/ui/settings").await;
    page.expect("Microsoft 365 approval").expect(&format!(
        "{}/organizations/adminconsent?client_id={}",
        w.ms.authority_url(),
        FakeMicrosoftConfig::default().client_id
    ));
}

#[tokio::test]
async fn a_message_too_large_for_one_graph_request_fails_with_a_reason() {
    let w = world().await;
    connect(&w).await;
    let big = "All the details. ".repeat(200_000); // about 3.4 MB, 4.5 MB in base64
    let id = w
        .app
        .accept(
            &w.rep.token,
            json!({"from": MAILBOX, "to": ["buyer@example.com"], "subject": "Big", "text": big}),
        )
        .await;
    let failed = wait(&w, &id, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("above the 4 MB Microsoft Graph takes"),
        "{error}"
    );
    assert!(error.contains("transport to smtp"), "{error}");
    assert_eq!(w.ms.send_requests(), 0);
    assert_eq!(channel(&w).await["status"], "active");
}

#[tokio::test]
async fn a_429_pauses_the_whole_mailbox_for_as_long_as_retry_after_says() {
    let w = world().await;
    connect(&w).await;
    w.ms.fail_next_sends(&[SendFailure::Throttled {
        retry_after_secs: 2,
    }]);
    let first = send(&w, "throttled").await;
    w.app
        .wait_for_message_where(&w.rep.token, &first, PATIENCE, |v| {
            v["status"] == "deferred"
        })
        .await;
    // Another message for the mailbox, sent at once: it waits for the pause too.
    let second = send(&w, "after the 429").await;
    wait(&w, &first, "sent").await;
    wait(&w, &second, "sent").await;
    let times = w.ms.send_times();
    assert_eq!(times.len(), 3, "the 429, then each message once");
    for later in &times[1..] {
        assert!(
            later.duration_since(times[0]) >= Duration::from_millis(1900),
            "a send reached Graph {:?} after the 429",
            later.duration_since(times[0])
        );
    }
}

// --- Transport `smtp`: Exchange Online's SMTP submission with AUTH XOAUTH2 -------------------

/// A world whose Microsoft SMTP host is our test SMTP server (STARTTLS with a test CA), which
/// takes the fake identity platform's outlook.office.com tokens and refuses a bad one as
/// Exchange does (`535 5.7.3`, no challenge).
struct SmtpWorld {
    w: World,
    smtp: TestSmtpServer,
    _ca: tempfile::TempDir,
}

async fn world_over_smtp() -> SmtpWorld {
    world_over_smtp_with(&[]).await
}

async fn world_over_smtp_with(extra: &[(&str, &str)]) -> SmtpWorld {
    let ms = start_microsoft(FakeMicrosoftConfig {
        account: Account::work(CONTOSO, MAILBOX),
        ..FakeMicrosoftConfig::default()
    })
    .await;
    let smtp = TestSmtpServer::start(SmtpServerConfig {
        users: Vec::new(),
        xoauth2_issuer: Some(TokenIssuer(Arc::new(ms.smtp_token_check()))),
        // Sessions end soon, so a later message logs in afresh.
        idle_timeout: Some((Duration::from_millis(300), IdleClose::Reply421)),
        ..SmtpServerConfig::default()
    })
    .await;
    let ca = tempfile::TempDir::new().unwrap();
    let ca_file = ca.path().join("ca.pem");
    std::fs::write(&ca_file, smtp.ca_pem()).unwrap();
    let url = format!(
        "smtp://{}:{}?ca={}",
        smtp.host(),
        smtp.port(),
        ca_file.display()
    );
    let mut env = vec![("SWITCHBOARD_MICROSOFT_SMTP_URL", url.as_str())];
    env.extend_from_slice(extra);
    let w = world_on(ms, &env).await;
    SmtpWorld { w, smtp, _ca: ca }
}

async fn set_transport(w: &World, channel: &Value, transport: &str) -> Value {
    expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{}", channel["id"].as_str().unwrap()),
                &w.rep.token,
                json!({ "transport": transport }),
            )
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn over_smtp_a_6_mb_message_goes_out_logged_in_with_a_token_of_its_own() {
    let SmtpWorld { w, smtp, _ca } = world_over_smtp().await;
    let connected = connect(&w).await;
    assert_eq!(connected["transport"], "graph", "Graph is the default");
    // The rep consented to SMTP.Send when connecting, so switching needs no second sign-in.
    let scope = w.ms.authorization_requests()[0]
        .param("scope")
        .unwrap()
        .to_owned();
    assert!(
        scope
            .split(' ')
            .any(|s| s == crate::fake_microsoft::SMTP_SCOPE),
        "{scope}"
    );
    let switched = set_transport(&w, &connected, "smtp").await;
    assert_eq!(switched["transport"], "smtp");
    assert_eq!(channel(&w).await["transport"], "smtp");

    // About 6 MB of body: above what one Graph request carries, within Exchange's 35 MB.
    let big = "All the details, line after line. ".repeat(180_000);
    let id = w
        .app
        .accept(
            &w.rep.token,
            json!({"from": MAILBOX, "to": ["buyer@example.com"], "subject": "Six megabytes", "text": big}),
        )
        .await;
    let view = wait(&w, &id, "sent").await;
    let received = smtp.messages();
    assert_eq!(received.len(), 1);
    assert!(
        received[0].data.len() > 6_000_000,
        "{}",
        received[0].data.len()
    );
    let text = String::from_utf8_lossy(&received[0].data[..4096]).to_string();
    assert!(text.contains("Subject: Six megabytes"), "{text}");
    assert!(
        text.contains(view["message_id"].as_str().unwrap()),
        "our Message-ID: {text}"
    );
    assert_eq!(received[0].authenticated_as.as_deref(), Some(MAILBOX));
    assert_eq!(received[0].rcpt_to, ["buyer@example.com"]);
    let logins = smtp.auth_attempts();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].mechanism, "XOAUTH2");
    assert_eq!(w.ms.send_requests(), 0, "nothing went through Graph");
    assert_eq!(w.ms.smtp_tokens_issued(), 1);

    // The next message reuses the token (and the session).
    let id = send(&w, "second").await;
    wait(&w, &id, "sent").await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(w.ms.smtp_tokens_issued(), 1);
    // Back to Graph: a Graph token again (the SMTP one is refused there).
    set_transport(&w, &connected, "graph").await;
    let id = send(&w, "through Graph again").await;
    wait(&w, &id, "sent").await;
    assert_eq!(w.ms.sent_messages().len(), 1);
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test]
async fn a_tenant_without_smtp_auth_is_told_to_use_graph_and_switching_back_sends_the_mail() {
    let SmtpWorld { w, smtp, _ca } = world_over_smtp().await;
    let connected = connect(&w).await;
    set_transport(&w, &connected, "smtp").await;
    smtp.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 535,
        text: "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.".into(),
    }));
    let id = send(&w, "tenant says no").await;
    let held = wait(&w, &id, "held").await;
    assert_eq!(held["hold_reason"], "channel_unavailable", "{held:#}");
    let broken = channel(&w).await;
    assert_eq!(broken["status"], "needs_reauth");
    assert_eq!(broken["status_cause"], "smtp_auth_disabled");
    let advice = broken["health"]["advice"].as_str().unwrap();
    assert!(
        advice.contains("transport back to Microsoft Graph"),
        "{advice}"
    );
    assert_eq!(
        w.ms.smtp_tokens_issued(),
        1,
        "no refresh: the token was not the problem"
    );

    let back = set_transport(&w, &connected, "graph").await;
    assert_eq!(back["status"], "active");
    wait(&w, &id, "sent").await;
    assert_eq!(w.ms.sent_messages().len(), 1);
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_refused_smtp_token_is_replaced_once_and_refused_twice_needs_a_reconnect() {
    let SmtpWorld { w, smtp, _ca } = world_over_smtp().await;
    let connected = connect(&w).await;
    set_transport(&w, &connected, "smtp").await;
    let id = send(&w, "first").await;
    wait(&w, &id, "sent").await;
    // Microsoft ends the token early: Exchange answers 535 5.7.3 at the next login, and one
    // refresh cures it.
    w.ms.expire_access_tokens();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = send(&w, "after the token ended").await;
    wait(&w, &id, "sent").await;
    assert_eq!(w.ms.smtp_tokens_issued(), 2);
    let logins: Vec<bool> = smtp.auth_attempts().iter().map(|a| a.success).collect();
    assert_eq!(logins, [true, false, true]);
    assert_eq!(channel(&w).await["status"], "active");

    // Refused with a new token too: the rep must connect again.
    smtp.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 535,
        text: "5.7.3 Authentication unsuccessful".into(),
    }));
    w.ms.expire_access_tokens();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = send(&w, "refused twice").await;
    wait(&w, &id, "held").await;
    let broken = channel(&w).await;
    assert_eq!(broken["status"], "needs_reauth");
    assert_eq!(broken["status_cause"], "token_revoked");
    assert_eq!(
        w.ms.smtp_tokens_issued(),
        3,
        "one refresh per refusal, not more"
    );
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test]
async fn only_a_microsoft_channel_chooses_graph_or_smtp() {
    let w = world().await;
    let connected = connect(&w).await;
    let path = format!("/v1/channels/{}", connected["id"].as_str().unwrap());
    let res = w
        .app
        .patch(&path, &w.rep.token, json!({"transport": "carrier_pigeon"}))
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("graph, smtp"),
        "{problem}"
    );
    assert_eq!(channel(&w).await["transport"], "graph", "nothing changed");
    // An SMTP channel sends one way only.
    let smtp_channel = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.rep.token,
                json!({"name": "Ann over SMTP", "kind": "smtp", "scope": "mailbox",
                       "from_address": "ann@acme.test",
                       "smtp": {"host": "smtp.acme.test", "port": 587, "security": "starttls",
                                "auth": "plain", "username": "ann@acme.test", "password": "pw"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(smtp_channel.get("transport").is_none(), "{smtp_channel}");
    let res = w
        .app
        .patch(
            &format!("/v1/channels/{}", smtp_channel["id"].as_str().unwrap()),
            &w.rep.token,
            json!({"transport": "smtp"}),
        )
        .await;
    expect_problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "transport_only_for_microsoft",
    )
    .await;
    // Another tenant's admin does not find it.
    let other = w.app.create_tenant("Globex").await;
    let res = w
        .app
        .patch(&path, &other.admin_token, json!({"transport": "smtp"}))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(channel(&w).await["transport"], "graph");
    // The change is in the audit trail.
    set_transport(&w, &connected, "smtp").await;
    let trail = expect_json(
        w.app
            .get(
                &format!("/v1/audit?channel_id={}", connected["id"].as_str().unwrap()),
                &w.acme.admin_token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        trail.to_string().contains(r#""transport":"smtp""#),
        "{trail:#}"
    );
}

#[tokio::test]
async fn a_message_above_the_tenants_maximum_fails_with_a_reason_before_any_login() {
    let SmtpWorld { w, smtp, _ca } =
        world_over_smtp_with(&[("SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES", "1048576")]).await;
    let connected = connect(&w).await;
    set_transport(&w, &connected, "smtp").await;
    let big = "All the details, line after line. ".repeat(60_000); // about 2 MB
    let id = w
        .app
        .accept(
            &w.rep.token,
            json!({"from": MAILBOX, "to": ["buyer@example.com"], "subject": "Too big", "text": big}),
        )
        .await;
    let failed = wait(&w, &id, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("above the 1.0 MB Exchange Online takes for this tenant"),
        "{error}"
    );
    assert!(smtp.auth_attempts().is_empty());
    assert_eq!(w.ms.smtp_tokens_issued(), 0);
    assert_eq!(channel(&w).await["status"], "active");
}

#[tokio::test]
async fn the_channel_page_switches_a_microsoft_mailbox_between_graph_and_smtp() {
    let w = world().await;
    let mut ui = crate::ui_client::UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get("/ui/channels").await;
    let landed = connect_from_pages(&w, &mut ui, &[]).await;
    let id = channel(&w).await["id"].as_str().unwrap().to_owned();
    ui.follow(&landed)
        .await
        .expect("Sends through")
        .expect(r#"<option value="graph" selected>"#);
    let done = ui
        .post(
            &format!("/ui/channels/{id}/transport"),
            &[("transport", "smtp")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    ui.follow(&done)
        .await
        .expect("now sends over SMTP at Exchange Online")
        .expect(r#"<option value="smtp" selected>"#);
    assert_eq!(channel(&w).await["transport"], "smtp");
    // A value the API refuses changes nothing, and says why.
    let refused = ui
        .post(
            &format!("/ui/channels/{id}/transport"),
            &[("transport", "pigeon")],
        )
        .await;
    assert_ne!(refused.status, StatusCode::SEE_OTHER);
    refused.expect("graph, smtp");
    assert_eq!(channel(&w).await["transport"], "smtp");
}

/// Transport `smtp` against nodemailer's smtp-server (the interop leg): STARTTLS on a test-CA
/// certificate, AUTH XOAUTH2 checked against the tokens the fake identity platform issued, and
/// `535 5.7.139` from a tenant that switched SMTP AUTH off.
#[tokio::test]
async fn interop_smtp_transport_logs_in_with_xoauth2_at_nodemailers_smtp_server() {
    let Some(installed) = crate::interop::interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return;
    };
    let ms = start_microsoft(FakeMicrosoftConfig {
        account: Account::work(CONTOSO, MAILBOX),
        ..FakeMicrosoftConfig::default()
    })
    .await;
    let check = ms.smtp_token_url();
    let peer = crate::interop::launch(
        &installed,
        "smtp-server",
        "starttls",
        crate::interop::test_ca_certificates(&installed),
        &[("PEER_XOAUTH2_CHECK", &check)],
    );
    let url = format!(
        "smtp://localhost:{}?ca={}",
        peer.port,
        peer.dir.path().join("ca.pem").display()
    );
    let w = world_on(ms, &[("SWITCHBOARD_MICROSOFT_SMTP_URL", &url)]).await;
    let connected = connect(&w).await;
    set_transport(&w, &connected, "smtp").await;
    let id = send(&w, "Through smtp-server").await;
    let view = wait(&w, &id, "sent").await;
    let messages = peer.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["rcpt_tos"], json!(["buyer@example.com"]));
    let data = messages[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: Through smtp-server"), "{data}");
    assert!(
        data.contains(view["message_id"].as_str().unwrap()),
        "{data}"
    );
    let logins = peer.records("sessions.jsonl");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["method"], "XOAUTH2");
    assert_eq!(logins[0]["user"], MAILBOX);
    assert_eq!(logins[0]["ok"], true);
    assert_eq!(w.ms.send_requests(), 0);
    drop(peer);

    // A tenant with SMTP AUTH off: the channel says to use Graph, and Graph sends the mail.
    let refusing = crate::interop::launch(
        &installed,
        "smtp-server",
        "starttls",
        crate::interop::test_ca_certificates(&installed),
        &[
            // Offers XOAUTH2; every login is refused before any token check.
            ("PEER_XOAUTH2_CHECK", &check),
            (
                "PEER_AUTH_REPLY",
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            ),
        ],
    );
    let url = format!(
        "smtp://localhost:{}?ca={}",
        refusing.port,
        refusing.dir.path().join("ca.pem").display()
    );
    let w2 = world_on(
        start_microsoft(FakeMicrosoftConfig {
            account: Account::work(CONTOSO, MAILBOX),
            ..FakeMicrosoftConfig::default()
        })
        .await,
        &[("SWITCHBOARD_MICROSOFT_SMTP_URL", &url)],
    )
    .await;
    let connected = connect(&w2).await;
    set_transport(&w2, &connected, "smtp").await;
    let id = send(&w2, "tenant says no").await;
    wait(&w2, &id, "held").await;
    let broken = channel(&w2).await;
    assert_eq!(broken["status_cause"], "smtp_auth_disabled", "{broken:#}");
    set_transport(&w2, &connected, "graph").await;
    wait(&w2, &id, "sent").await;
    assert!(refusing.messages().is_empty());
}

#[tokio::test]
async fn smtp_tokens_appear_in_no_answer_and_only_sealed_in_the_database_file() {
    let SmtpWorld { w, smtp, _ca } = world_over_smtp().await;
    let connected = connect(&w).await;
    let switched = set_transport(&w, &connected, "smtp").await;
    let id = send(&w, "canary over smtp").await;
    let view = wait(&w, &id, "sent").await;
    assert_eq!(smtp.messages().len(), 1);
    let channels = page(&w, "/v1/channels", &w.rep.token).await;
    let audit = page(&w, "/v1/audit", &w.acme.admin_token).await;
    let secrets = w.ms.issued_secrets();
    assert!(
        secrets.len() >= 3,
        "a Graph token, an SMTP token and the refresh tokens"
    );
    for shown in [channels, switched.to_string(), view.to_string(), audit] {
        for secret in &secrets {
            assert!(!shown.contains(secret.as_str()), "a secret leaked: {shown}");
        }
    }
    assert_sealed_on_disk(&w.app, &secrets);
}
