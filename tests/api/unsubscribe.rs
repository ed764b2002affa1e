//! One-click unsubscribe (RFC 8058) and the suppression list: the headers a message carries,
//! the public link a mailbox provider POSTs to, and what a suppressed address means for new
//! and already queued mail, on every channel of the tenant and in no other tenant.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, expect_problem, random_secret};
use crate::messages::{PASSWORD, REP, World, acme_and_rep, mail, send, send_id, world_with};
use crate::smtp_server::{Fault, SmtpServerConfig, TestSmtpServer};
use crate::webhook_receiver::WebhookReceiver;

const PUBLIC: &str = "https://switchboard.acme.test";
const PATIENCE: Duration = Duration::from_secs(30);
const ANN: &str = "ann@example.com";

async fn unsubscribe_world(extra: &[(&str, &str)]) -> World {
    let mut env = vec![
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC),
        ("SWITCHBOARD_NOTIFY_POLL_INTERVAL", "50ms"),
    ];
    env.extend_from_slice(extra);
    world_with(&env).await
}

/// The rep's mail to Ann, asking for unsubscribe headers.
fn list_mail(subject: &str) -> Value {
    let mut body = mail(subject);
    body["unsubscribe"] = json!(true);
    body
}

/// A header's value as received, folded lines joined (`None` when absent).
fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((n, v)) = line.split_once(':')
                    && n.eq_ignore_ascii_case(name)
                {
                    value = Some(v.trim_start().to_owned());
                }
            }
        }
    }
    value
}

/// The raw header lines (as on the wire) of the unsubscribe pair and the Message-ID.
fn raw_header_lines(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let mut lines = Vec::new();
    let mut keep = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if keep {
                lines.push(line.to_owned());
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        keep = matches!(
            name.as_str(),
            "list-unsubscribe" | "list-unsubscribe-post" | "message-id"
        );
        if keep {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// The token of a received message's List-Unsubscribe link, after checking the pair.
fn link_token(data: &[u8]) -> String {
    let list = header(data, "List-Unsubscribe").expect("a List-Unsubscribe header");
    assert_eq!(
        header(data, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click"),
        "{}",
        String::from_utf8_lossy(data)
    );
    let url = list
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix('>'))
        .unwrap_or_else(|| panic!("one HTTPS URI in angle brackets: {list}"));
    let token = url
        .strip_prefix(&format!("{PUBLIC}/unsubscribe/"))
        .unwrap_or_else(|| panic!("a link under the public URL: {url}"));
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    token.to_owned()
}

/// What a mailbox provider does when the recipient clicks "Unsubscribe": a POST with no
/// cookie and no credential (a fresh client each time).
async fn one_click(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/unsubscribe/{token}", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

/// Sends a message as the holder of `token` and waits until it is sent; returns its view.
async fn sent_by(app: &TestApp, token: &str, body: Value) -> Value {
    let accepted = expect_json(
        app.post("/v1/messages", token, body).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.wait_for_message(token, accepted["id"].as_str().unwrap(), "sent", PATIENCE)
        .await
}

/// Sends a message that must be refused with `code` (422), returning the problem.
async fn refused(app: &TestApp, token: &str, body: &Value, code: &str) -> Value {
    expect_problem(
        app.post("/v1/messages", token, body.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
    )
    .await
}

async fn suppressions(app: &TestApp, token: &str, query: &str) -> Value {
    expect_json(
        app.get(&format!("/v1/suppressions{query}"), token).await,
        StatusCode::OK,
    )
    .await
}

fn addresses(list: &Value) -> Vec<String> {
    list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_recipient_unsubscribes_with_one_click_and_no_channel_of_the_tenant_mails_them_again() {
    let hooks = WebhookReceiver::start().await;
    let w = unsubscribe_world(&[]).await;
    expect_json(
        w.app
            .post(
                "/v1/webhooks",
                &w.acme.admin_token,
                json!({"url": hooks.url("/hooks"), "events": ["recipient.unsubscribed"]}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = send_id(&w, list_mail("Quick question")).await;
    let view = w
        .app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
    assert_eq!(view["unsubscribe"], true, "{view:#}");
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    let token = link_token(&received[0].data);
    assert!(
        !view.to_string().contains(&token),
        "the link is in the mail only: {view}"
    );
    let link = format!("{}/unsubscribe/{token}", w.app.address);

    // A link scanner's GET changes nothing; it shows a button that POSTs.
    let page = reqwest::Client::new().get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    for (name, expected) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(headers[name], expected, "{name}");
    }
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"") && html.contains("Acme"),
        "{html}"
    );
    assert!(!html.contains(&token) && !html.contains(ANN), "{html}");
    assert!(addresses(&suppressions(&w.app, &w.acme.admin_token, "").await).is_empty());

    // The provider's POST: no login, no cookie, no CSRF token.
    let done = one_click(&w.app, &token).await;
    assert_eq!(done.status(), StatusCode::OK);
    let html = done.text().await.unwrap();
    assert!(html.contains("You are unsubscribed"), "{html}");
    assert!(!html.contains(ANN) && !html.contains(&token), "{html}");
    let list = suppressions(&w.app, &w.acme.admin_token, "").await;
    assert_eq!(addresses(&list), [ANN], "{list:#}");
    let entry = &list["suppressions"][0];
    assert_eq!(entry["reason"], "unsubscribed");
    assert_eq!(entry["source"]["message_id"], id.as_str());
    assert!(entry.get("created_by").is_none(), "{entry}");
    // A second click (the provider retrying, the recipient again) is fine and changes nothing.
    assert_eq!(one_click(&w.app, &token).await.status(), StatusCode::OK);
    assert_eq!(
        addresses(&suppressions(&w.app, &w.acme.admin_token, "").await),
        [ANN]
    );

    // The tenant hears about it once, and the audit trail names the recipient as actor.
    let delivered = hooks.wait_for(1, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events: Vec<Value> = hooks
        .requests()
        .iter()
        .map(|h| serde_json::from_slice(&h.body).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(delivered.len(), 1);
    assert_eq!(events[0]["type"], "recipient.unsubscribed");
    assert_eq!(events[0]["data"]["address"], ANN);
    assert_eq!(events[0]["data"]["message_id"], id.as_str());
    assert!(events[0]["data"]["at"].is_string(), "{:#}", events[0]);
    assert!(!hooks.requests()[0].body_text().contains(&token));
    let audit = expect_json(
        w.app
            .get("/v1/audit?action=suppression.", &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["action"], "suppression.added");
    assert_eq!(audit[0]["actor"], "recipient");
    assert_eq!(audit[0]["target"], ANN);

    // The rep's own mailbox refuses Ann now, whatever the case of the address.
    let mut again = mail("Following up");
    again["to"] = json!(["Ann <ANN@Example.com>"]);
    let problem = refused(&w.app, &w.rep.token, &again, "recipient_suppressed").await;
    assert_eq!(problem["field"], "to[0]");
    assert!(
        problem["detail"].as_str().unwrap().contains(ANN),
        "{problem}"
    );

    // So does a tenant relay the admin sends through; transactional mail still goes.
    let relay = TestSmtpServer::start(SmtpServerConfig {
        users: vec![("apikey".to_owned(), "Relay-Key-5c1".to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Acme relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": relay.port(),
                                "security": "starttls", "auth": "plain", "username": "apikey",
                                "password": "Relay-Key-5c1", "ca_pem": relay.ca_pem()}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let from_sales = |to: &[&str], transactional: bool| {
        json!({"from": "sales@acme.test", "to": to, "subject": "Invoice", "text": "Attached",
               "transactional": transactional})
    };
    sent_by(
        &w.app,
        &w.acme.admin_token,
        from_sales(&["bob@example.com"], false),
    )
    .await;
    let both = from_sales(&["bob@example.com", ANN], false);
    refused(&w.app, &w.acme.admin_token, &both, "recipient_suppressed").await;
    let invoice = sent_by(&w.app, &w.acme.admin_token, from_sales(&[ANN], true)).await;
    assert_eq!(invoice["transactional"], true);
    let relayed = relay.wait_for_messages(2, PATIENCE).await;
    assert_eq!(relayed.len(), 2);
    assert_eq!(relayed[1].rcpt_to, [ANN]);
    assert!(
        header(&relayed[1].data, "List-Unsubscribe").is_none(),
        "transactional mail gets no unsubscribe headers unless it asks"
    );

    // In a batch only Ann's message is refused.
    let to = |a: &str| {
        let mut m = mail("Batch");
        m["to"] = json!([a]);
        m
    };
    let batch = json!({"messages": [to("carl@example.com"), to(ANN), to("dave@example.com")]});
    let answer = expect_json(
        w.app.post("/v1/messages/batch", &w.rep.token, batch).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "queued", "{answer:#}");
    assert_eq!(results[1]["error"]["code"], "recipient_suppressed");
    assert_eq!(results[1]["error"]["status"], 422);
    assert_eq!(results[2]["status"], "queued", "{answer:#}");
    for r in [&results[0], &results[2]] {
        w.app
            .wait_for_message(&w.rep.token, r["id"].as_str().unwrap(), "sent", PATIENCE)
            .await;
    }
    let rcpts: Vec<Vec<String>> = w
        .server
        .messages()
        .iter()
        .map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(rcpts.len(), 3, "{rcpts:?}");
    assert!(rcpts[1..].iter().all(|r| r != &[ANN]), "{rcpts:?}");

    // A link that was never issued, or is not even shaped like one, reveals nothing.
    for bogus in ["A".repeat(43), "not-a-token".to_owned()] {
        let res = one_click(&w.app, &bogus).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains("not valid") && !html.contains("Acme"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn queued_mail_to_an_address_suppressed_meanwhile_is_not_sent_to_it() {
    let w = unsubscribe_world(&[]).await;
    // The rep's password changes at the provider: mail waits for the channel.
    w.server.set_password(REP, "Changed-At-Provider-3");
    let solo = send_id(&w, mail("To Ann alone")).await;
    let mut both = mail("To Ann and Bob");
    both["cc"] = json!(["bob@example.com"]);
    let both = send_id(&w, both).await;
    let mut transactional = mail("Your invoice");
    transactional["transactional"] = json!(true);
    let transactional = send_id(&w, transactional).await;
    for id in [&solo, &both, &transactional] {
        w.app
            .wait_for_message(&w.rep.token, id, "held", PATIENCE)
            .await;
    }

    // Meanwhile Ann is suppressed (by hand here; a click works the same).
    let added = expect_json(
        w.app
            .post(
                "/v1/suppressions",
                &w.acme.admin_token,
                json!({"address": "Ann@Example.com"}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["address"], ANN);
    assert_eq!(added["reason"], "manual");
    assert_eq!(added["created_by"], w.acme.admin_id.as_str());

    // The credential is fixed and the held mail released.
    let rotated = w
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/channels/{}/credentials", w.channel),
            &w.rep.token,
            Some(json!({"password": "Changed-At-Provider-3"})),
        )
        .await;
    expect_json(rotated, StatusCode::OK).await;

    let failed = w
        .app
        .wait_for_message(&w.rep.token, &solo, "failed", PATIENCE)
        .await;
    let last = failed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "failed", "{failed:#}");
    assert_eq!(
        last["detail"]["reason"], "recipient_suppressed",
        "{failed:#}"
    );
    assert_eq!(failed["recipients"][0]["status"], "failed");
    assert_eq!(failed["recipients"][0]["reason"], "suppressed");
    let attempts = failed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt")
        .count();
    assert_eq!(
        attempts, 1,
        "only the refused login, nothing after: {failed:#}"
    );

    let partial = w
        .app
        .wait_for_message(&w.rep.token, &both, "partially_sent", PATIENCE)
        .await;
    let states: Vec<(String, String, Option<String>)> = partial["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert!(
        states.contains(&(ANN.to_owned(), "failed".into(), Some("suppressed".into()))),
        "{partial:#}"
    );
    assert!(
        states.contains(&("bob@example.com".into(), "sent".into(), None)),
        "{partial:#}"
    );
    w.app
        .wait_for_message(&w.rep.token, &transactional, "sent", PATIENCE)
        .await;

    let received = w.server.wait_for_messages(2, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = if received.len() == 2 {
        w.server.messages()
    } else {
        received
    };
    let mut rcpts: Vec<(String, Vec<String>)> = received
        .iter()
        .map(|m| {
            (
                header(&m.data, "Subject").unwrap_or_default(),
                m.rcpt_to.clone(),
            )
        })
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            (
                "To Ann and Bob".to_owned(),
                vec!["bob@example.com".to_owned()]
            ),
            ("Your invoice".to_owned(), vec![ANN.to_owned()]),
        ]
    );
}

#[tokio::test]
async fn the_unsubscribe_headers_are_the_same_bytes_on_every_attempt() {
    let w = unsubscribe_world(&[]).await;
    w.server.set_fault(Some(Fault::Reply {
        command: "DATA",
        code: 451,
        text: "4.3.0 Try again later".into(),
    }));
    let id = send_id(&w, list_mail("Retried")).await;
    w.app
        .wait_for_message_where(&w.rep.token, &id, PATIENCE, |v| {
            v["status"] == "deferred" && v["attempts"].as_u64() >= Some(1)
        })
        .await;
    w.server.set_fault(None);
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
    let bodies = w.server.bodies();
    assert!(bodies.len() >= 2, "{} attempts reached DATA", bodies.len());
    let first = raw_header_lines(&bodies[0]);
    assert_eq!(first.len(), 3, "{first:?}");
    for later in &bodies[1..] {
        assert_eq!(raw_header_lines(later), first);
    }
    link_token(bodies.last().unwrap());
}

#[tokio::test]
async fn the_tenant_default_adds_the_headers_where_the_message_does_not_say() {
    let w = unsubscribe_world(&[]).await;
    let code = "unsubscribe_needs_one_recipient";
    let to_two = |unsubscribe: Option<bool>| {
        let mut two = mail("Two");
        two["cc"] = json!(["bob@example.com"]);
        if let Some(u) = unsubscribe {
            two["unsubscribe"] = json!(u);
        }
        two
    };
    // Asked for by a message with several recipients: one link cannot stand for them all.
    let problem = refused(&w.app, &w.rep.token, &to_two(Some(true)), code).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("one person"), "{problem}");
    // Our headers, not the caller's, once they are asked for.
    let mut own = list_mail("Own");
    own["headers"] = json!({"List-Unsubscribe": "<mailto:stop@acme.test>"});
    let problem = refused(&w.app, &w.rep.token, &own, "header_not_allowed").await;
    assert_eq!(problem["field"], "headers.List-Unsubscribe");

    let tenant = expect_json(
        w.app
            .patch(
                "/v1/tenant",
                &w.acme.admin_token,
                json!({"unsubscribe_by_default": true}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["unsubscribe_by_default"], true);
    let plain = send_id(&w, mail("By default")).await;
    let mut opted_out = mail("Opted out");
    opted_out["unsubscribe"] = json!(false);
    let opted_out = send_id(&w, opted_out).await;
    let mut invoice = mail("Invoice");
    invoice["transactional"] = json!(true);
    let invoice = send_id(&w, invoice).await;
    own["unsubscribe"] = json!(false);
    let own = send_id(&w, own).await;
    // The default asks for the headers, so a message with two recipients must say no.
    let problem = refused(&w.app, &w.rep.token, &to_two(None), code).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("unsubscribe_by_default"), "{problem}");
    let two = send_id(&w, to_two(Some(false))).await;

    let mut lists = std::collections::HashMap::new();
    for id in [&plain, &opted_out, &invoice, &own, &two] {
        let view = w
            .app
            .wait_for_message(&w.rep.token, id, "sent", PATIENCE)
            .await;
        lists.insert(view["subject"].as_str().unwrap().to_owned(), view);
    }
    assert_eq!(lists["By default"]["unsubscribe"], true);
    assert_eq!(lists["Opted out"]["unsubscribe"], false);
    assert_eq!(lists["Invoice"]["unsubscribe"], false);
    let received = w.server.wait_for_messages(5, PATIENCE).await;
    let by_subject = |s: &str| {
        received
            .iter()
            .find(|m| header(&m.data, "Subject").as_deref() == Some(s))
            .unwrap_or_else(|| panic!("{s} received"))
            .data
            .clone()
    };
    link_token(&by_subject("By default"));
    for subject in ["Opted out", "Invoice", "Two"] {
        assert!(
            header(&by_subject(subject), "List-Unsubscribe").is_none(),
            "{subject}"
        );
    }
    assert_eq!(
        header(&by_subject("Own"), "List-Unsubscribe").as_deref(),
        Some("<mailto:stop@acme.test>")
    );
    assert!(header(&by_subject("Own"), "List-Unsubscribe-Post").is_none());
}

#[tokio::test]
async fn the_suppression_list_is_the_tenants_own_and_only_admins_change_it() {
    let w = unsubscribe_world(&[]).await;
    let app = &w.app;
    let it = app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let beta = app.create_tenant_with_domain("Beta", "beta.test").await;

    // Roles: admins change it, IT reads it, reps neither.
    let add = |address: &str| json!({"address": address});
    for token in [&w.rep.token, &it.token] {
        expect_problem(
            app.post("/v1/suppressions", token, add("x@example.com"))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    expect_problem(
        app.get("/v1/suppressions", &w.rep.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Bad input changes nothing.
    expect_problem(
        app.post(
            "/v1/suppressions",
            &w.acme.admin_token,
            add("not an address"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/suppressions",
            &w.acme.admin_token,
            json!({"address": "x@example.com", "reason": "spam"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert!(addresses(&suppressions(app, &it.token, "").await).is_empty());

    // Adding is idempotent; the first entry stays as it was.
    for (address, reason) in [
        ("first@example.com", "manual"),
        ("Second+tag@Example.com", "hard_bounce"),
        ("third@example.com", "unsubscribed"),
    ] {
        let created = expect_json(
            app.post(
                "/v1/suppressions",
                &w.acme.admin_token,
                json!({"address": address, "reason": reason}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["reason"], reason);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let again = expect_json(
        app.post(
            "/v1/suppressions",
            &w.acme.admin_token,
            add("FIRST@example.com"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["address"], "first@example.com");
    assert_eq!(again["reason"], "manual");

    // Pages, newest first; an address filter in any case.
    let page = suppressions(app, &it.token, "?limit=2").await;
    assert_eq!(
        addresses(&page),
        ["third@example.com", "second+tag@example.com"]
    );
    let next = page["next"].as_str().unwrap();
    let rest = suppressions(app, &it.token, &format!("?limit=2&before={next}")).await;
    assert_eq!(addresses(&rest), ["first@example.com"]);
    assert!(rest["next"].is_null(), "{rest}");
    let one = suppressions(app, &it.token, "?address=SECOND%2Btag%40example.com").await;
    assert_eq!(addresses(&one), ["second+tag@example.com"]);
    expect_problem(
        app.get("/v1/suppressions?before=garbage", &it.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;

    // Another tenant sees none of it and can remove none of it.
    assert!(addresses(&suppressions(app, &beta.admin_token, "").await).is_empty());
    assert!(
        addresses(&suppressions(app, &beta.admin_token, "?address=first%40example.com").await)
            .is_empty()
    );
    expect_problem(
        app.delete("/v1/suppressions/first%40example.com", &beta.admin_token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // ... and its own list is its own: the same address there is independent.
    expect_json(
        app.post(
            "/v1/suppressions",
            &beta.admin_token,
            add("third@example.com"),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(addresses(&suppressions(app, &it.token, "").await).len(), 3);

    // Removing it lets mail to the address through again.
    let mut to_first = mail("Hello again");
    to_first["to"] = json!(["first@example.com"]);
    refused(app, &w.rep.token, &to_first, "recipient_suppressed").await;
    expect_problem(
        app.delete("/v1/suppressions/first%40example.com", &it.token)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let removed = app
        .delete("/v1/suppressions/First%40Example.com", &w.acme.admin_token)
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.delete("/v1/suppressions/first%40example.com", &w.acme.admin_token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    send(&w, to_first).await;

    let audit = expect_json(
        app.get("/v1/audit?action=suppression.", &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let actions: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    let admin = format!("user:{}", w.acme.admin_id);
    assert_eq!(
        actions,
        [
            ("suppression.added", admin.as_str(), "first@example.com"),
            (
                "suppression.added",
                admin.as_str(),
                "second+tag@example.com"
            ),
            ("suppression.added", admin.as_str(), "third@example.com"),
            ("suppression.removed", admin.as_str(), "first@example.com"),
        ]
    );
}

#[tokio::test]
async fn a_link_unsubscribes_from_its_own_tenant_only() {
    let w = unsubscribe_world(&[]).await;
    let beta = w.app.create_tenant_with_domain("Beta", "beta.test").await;
    expect_json(
        w.app
            .post(
                "/v1/suppressions",
                &beta.admin_token,
                json!({"address": "someone@example.com"}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    send_id(&w, list_mail("Hello")).await;
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    let token = link_token(&received[0].data);
    assert_eq!(one_click(&w.app, &token).await.status(), StatusCode::OK);
    assert_eq!(
        addresses(&suppressions(&w.app, &w.acme.admin_token, "").await),
        [ANN]
    );
    assert_eq!(
        addresses(&suppressions(&w.app, &beta.admin_token, "").await),
        ["someone@example.com"]
    );
    // Beta cannot take Acme's entry off either.
    expect_problem(
        w.app
            .delete("/v1/suppressions/ann%40example.com", &beta.admin_token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        addresses(&suppressions(&w.app, &w.acme.admin_token, "").await),
        [ANN]
    );
}

#[tokio::test]
async fn the_link_token_is_never_logged_nor_shown_outside_the_message() {
    use crate::binary::{command, serve_with};
    let server = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(REP.to_owned(), PASSWORD.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    let dir = tempfile::TempDir::new().unwrap();
    let db = crate::helpers::TestDatabase::fresh();
    let operator = random_secret();
    // The rep's mailbox server does not check senders: acme.test is proven through DNS.
    let dns = crate::dns_server::TestDns::start().await;
    let mut cmd = command(&dir.path().join("data"), &db);
    cmd.env("SWITCHBOARD_OPERATOR_TOKEN", &operator)
        .env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8,::1")
        .env("SWITCHBOARD_DNS_SERVERS", dns.servers())
        .env("SWITCHBOARD_PUBLIC_URL", PUBLIC);
    let running = serve_with(cmd);
    let client = reqwest::Client::new();
    // POSTs to the binary and expects `status`, returning the JSON answer.
    let post = async |path: &str, token: &str, body: Value, status: StatusCode| {
        let res = client
            .post(format!("{}{path}", running.address))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_json(res, status).await
    };
    let tenant = json!({"name": "Acme", "admin_email": "admin@acme.test"});
    let created = post("/v1/tenants", &operator, tenant, StatusCode::CREATED).await;
    let admin = created["admin"]["token"].as_str().unwrap().to_owned();
    let claim = json!({"domain": "acme.test"});
    let claim = post("/v1/domains", &admin, claim, StatusCode::CREATED).await;
    let record = &claim["verification"];
    dns.txt(
        record["name"].as_str().unwrap(),
        record["value"].as_str().unwrap(),
    )
    .await;
    let verify = format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap());
    let verified = post(&verify, &admin, json!({}), StatusCode::OK).await;
    assert_eq!(verified["state"], "verified", "{verified:#}");
    let user = json!({"email": REP, "name": "Rep", "role": "rep"});
    let rep = post("/v1/users", &admin, user, StatusCode::CREATED).await;
    let tokens = format!("/v1/users/{}/tokens", rep["id"].as_str().unwrap());
    let issued = post(&tokens, &admin, json!({}), StatusCode::CREATED).await;
    let rep_token = issued["token"].as_str().unwrap().to_owned();
    let channel = json!({"name": "Mine", "kind": "smtp", "scope": "mailbox", "from_address": REP,
                         "smtp": {"host": "localhost", "port": server.port(),
                                  "security": "starttls", "auth": "login", "username": REP,
                                  "password": PASSWORD, "ca_pem": server.ca_pem()}});
    post("/v1/channels", &rep_token, channel, StatusCode::CREATED).await;
    let message = list_mail("Canary");
    let accepted = post("/v1/messages", &rep_token, message, StatusCode::ACCEPTED).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let received = server.wait_for_messages(1, PATIENCE).await;
    assert_eq!(received.len(), 1, "log:\n{}", running.log.lock().unwrap());
    let token = link_token(&received[0].data);
    let link = format!("{}/unsubscribe/{token}", running.address);
    let mut shown = String::new();
    for response in [
        client.get(&link).send().await.unwrap(),
        client.post(&link).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), StatusCode::OK);
        shown.push_str(&response.text().await.unwrap());
    }
    for path in [
        format!("/v1/messages/{id}"),
        "/v1/messages".to_owned(),
        "/v1/suppressions".to_owned(),
        "/v1/audit".to_owned(),
    ] {
        let res = client
            .get(format!("{}{path}", running.address))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        shown.push_str(&res.text().await.unwrap());
    }
    assert!(shown.contains(ANN), "the answers were read");
    assert!(!shown.contains(&token), "{shown}");
    // The request lines of the link were logged, without the token.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let log = running.log.lock().unwrap().clone();
        assert!(!log.contains(&token), "{log}");
        if log.matches("/unsubscribe/{token}").count() >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        drop(log);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_suppressions_and_the_link() {
    let (app, _, _) = acme_and_rep(&[]).await;
    let res = app.request(reqwest::Method::GET, "/openapi.json", None);
    let doc = expect_json(res.send().await.unwrap(), StatusCode::OK).await;
    for (path, methods) in [
        ("/v1/suppressions", &["get", "post"][..]),
        ("/v1/suppressions/{address}", &["delete"][..]),
        ("/unsubscribe/{token}", &["get", "post"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
    }
    let send = &doc["components"]["schemas"]["SendRequest"]["properties"];
    assert!(send["transactional"].is_object() && send["unsubscribe"].is_object());
}
