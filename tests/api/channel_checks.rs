//! Testing channels against a real SMTP server: every stage, every hint, verify-before-save
//! and verify-before-rotate. The server is `tests/support/smtp_server.rs` on loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestTenant, TestUser, expect_json, expect_problem, spawn_app};
use crate::smtp_server::{CertMode, Fault, SmtpServerConfig, TestSmtpServer, TlsMode};

const USER: &str = "rep@acme.test";

struct World {
    app: TestApp,
    acme: TestTenant,
    rep: TestUser,
}

async fn world() -> World {
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let rep = app.create_user(&acme, USER, "rep", None).await;
    World { app, acme, rep }
}

async fn server(tls: TlsMode, cert: CertMode, password: &str) -> TestSmtpServer {
    TestSmtpServer::start(SmtpServerConfig {
        tls,
        cert,
        users: vec![(USER.to_owned(), password.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await
}

fn mailbox(server: &TestSmtpServer, security: &str, password: &str, extra: Value) -> Value {
    let mut smtp = json!({
        "host": "localhost", "port": server.port(), "security": security, "auth": "login",
        "username": USER, "password": password, "ca_pem": server.ca_pem(),
        "connect_timeout_secs": 5, "command_timeout_secs": 3
    });
    for (k, v) in extra.as_object().unwrap() {
        smtp[k] = v.clone();
    }
    json!({"name": "Mailbox", "kind": "smtp", "scope": "mailbox", "from_address": USER, "smtp": smtp})
}

async fn create(w: &World, body: Value) -> String {
    let channel = expect_json(
        w.app.post("/v1/channels", &w.rep.token, body).await,
        StatusCode::CREATED,
    )
    .await;
    channel["id"].as_str().unwrap().to_owned()
}

async fn run_test(w: &World, id: &str, body: Value) -> Value {
    expect_json(
        w.app
            .post(&format!("/v1/channels/{id}/test"), &w.rep.token, body)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn put_credential(w: &World, id: &str, body: Value, force: bool) -> reqwest::Response {
    let query = if force { "?force=true" } else { "" };
    let path = format!("/v1/channels/{id}/credentials{query}");
    w.app
        .call(reqwest::Method::PUT, &path, &w.rep.token, Some(body))
        .await
}

fn stage<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage: {result}"))
}

fn last_failed(result: &Value) -> &Value {
    let failed: Vec<&Value> = result["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == false)
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly one failed stage, the last: {result}"
    );
    failed[0]
}

#[tokio::test]
async fn a_working_starttls_mailbox_passes_every_stage_and_is_marked_verified() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "s3cret").await;
    let id = create(&w, mailbox(&smtp, "starttls", "s3cret", json!({}))).await;
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["ok"], true, "{result}");
    let names: Vec<&str> = result["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "tls", "ehlo", "auth"]);
    assert_eq!(stage(&result, "auth")["code"], 235);
    let attempts = smtp.auth_attempts();
    assert_eq!(attempts.len(), 1);
    assert!(
        attempts[0].success && attempts[0].mechanism == "LOGIN" && attempts[0].username == USER
    );
    let channel = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert!(channel["last_verified_at"].is_string(), "{channel}");
}

#[tokio::test]
async fn implicit_tls_works_and_a_test_message_arrives_from_the_mailbox() {
    let w = world().await;
    let smtp = server(TlsMode::Implicit, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "tls", "pw", json!({}))).await;
    let result = run_test(&w, &id, json!({"send_to": "prospect@example.com"})).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(stage(&result, "send")["ok"].as_bool().unwrap());
    let messages = smtp.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, USER);
    assert_eq!(messages[0].rcpt_to, ["prospect@example.com"]);
    assert!(messages[0].tls);
    assert_eq!(messages[0].authenticated_as.as_deref(), Some(USER));
    let data = String::from_utf8_lossy(&messages[0].data);
    assert!(data.contains("Subject: Switchboard channel test"), "{data}");
}

#[tokio::test]
async fn a_wrong_password_fails_at_auth_with_the_servers_reply_and_a_hint() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "right").await;
    let wrong = "Canary-Wrong-Password-7c1";
    let id = create(&w, mailbox(&smtp, "starttls", wrong, json!({}))).await;
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["classification"], "auth");
    let auth = last_failed(&result);
    assert_eq!(auth["stage"], "auth");
    assert_eq!(auth["code"], 535);
    assert!(
        auth["message"].as_str().unwrap().contains("5.7.8"),
        "{auth}"
    );
    assert!(
        auth["hint"]
            .as_str()
            .unwrap()
            .contains("username or password rejected"),
        "{auth}"
    );
    assert!(!result.to_string().contains(wrong));
    let channel = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["last_verified_at"], Value::Null);
}

#[tokio::test]
async fn provider_replies_get_provider_hints() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "starttls", "pw", json!({}))).await;
    for (code, text, needle) in [
        (
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
            "SMTP AUTH turned off",
        ),
        (
            534,
            "5.7.9 Application-specific password required",
            "app password",
        ),
    ] {
        smtp.set_fault(Some(Fault::Reply {
            command: "AUTH",
            code,
            text: text.into(),
        }));
        let result = run_test(&w, &id, json!({})).await;
        let auth = last_failed(&result);
        assert_eq!(auth["code"], code);
        assert_eq!(result["classification"], "auth");
        assert!(auth["hint"].as_str().unwrap().contains(needle), "{auth}");
    }
}

#[tokio::test]
async fn certificate_problems_point_to_the_custom_ca_not_to_turning_checks_off() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::SelfSigned, "pw").await;
    let id = create(
        &w,
        mailbox(&smtp, "starttls", "pw", json!({"ca_pem": null})),
    )
    .await;
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["classification"], "tls", "{result}");
    let tls = last_failed(&result);
    assert_eq!(tls["stage"], "tls");
    assert!(tls["hint"].as_str().unwrap().contains("ca_pem"), "{tls}");
    // The escape hatch works, and is warned about on every read.
    let res = w
        .app
        .patch(
            &format!("/v1/channels/{id}"),
            &w.rep.token,
            json!({"smtp": {"accept_invalid_certs": true}}),
        )
        .await;
    let channel = expect_json(res, StatusCode::OK).await;
    assert_eq!(channel["warnings"][0]["code"], "invalid_certs_accepted");
    assert_eq!(run_test(&w, &id, json!({})).await["ok"], true);
}

#[tokio::test]
async fn the_wrong_security_mode_for_a_port_is_explained() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "tls", "pw", json!({}))).await;
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["ok"], false);
    let failed = last_failed(&result);
    assert_eq!(failed["stage"], "tls", "{result}");
    assert!(
        failed["hint"].as_str().unwrap().contains("starttls"),
        "{failed}"
    );
}

#[tokio::test]
async fn unreachable_forbidden_and_silent_servers_fail_where_they_fail() {
    let w = world().await;
    // Nothing listens on this port: a listener bound and dropped at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut body = mailbox(
        &server(TlsMode::StartTls, CertMode::TestCa, "pw").await,
        "starttls",
        "pw",
        json!({}),
    );
    body["smtp"]["host"] = json!("127.0.0.1");
    body["smtp"]["port"] = json!(port);
    let id = create(&w, body.clone()).await;
    let result = run_test(&w, &id, json!({})).await;
    let connect = last_failed(&result);
    assert_eq!(connect["stage"], "connect");
    assert_eq!(result["classification"], "network");
    assert!(
        connect["hint"].as_str().unwrap().contains("port"),
        "{connect}"
    );

    // Cloud metadata: refused before any packet is sent.
    body["smtp"]["host"] = json!("169.254.169.254");
    body["smtp"]["port"] = json!(587);
    let id = create(&w, body).await;
    let result = run_test(&w, &id, json!({})).await;
    let connect = last_failed(&result);
    assert!(
        connect["message"].as_str().unwrap().contains("link-local"),
        "{connect}"
    );
    assert!(
        connect["hint"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_OUTBOUND_ALLOW"),
        "{connect}"
    );

    // A server that stops answering after the greeting hits our deadline, not lettre's none.
    let silent = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    silent.set_fault(Some(Fault::SilentAfter { command: "EHLO" }));
    let id = create(
        &w,
        mailbox(
            &silent,
            "starttls",
            "pw",
            json!({"command_timeout_secs": 1}),
        ),
    )
    .await;
    let started = std::time::Instant::now();
    let result = run_test(&w, &id, json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(20), "the test hung");
    let failed = last_failed(&result);
    assert_eq!(failed["stage"], "ehlo", "{result}");
    assert!(
        failed["hint"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{failed}"
    );
}

#[tokio::test]
async fn verify_on_create_refuses_a_failing_login_and_stores_nothing() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "right").await;
    let wrong = "Canary-Create-Password-19f";
    let res = w
        .app
        .post(
            "/v1/channels?verify=true",
            &w.rep.token,
            mailbox(&smtp, "starttls", wrong, json!({})),
        )
        .await;
    let problem =
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "verification_failed").await;
    assert_eq!(problem["test"]["classification"], "auth", "{problem}");
    assert!(!problem.to_string().contains(wrong));
    let list = expect_json(
        w.app.get("/v1/channels", &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]), "nothing was stored");

    let res = w
        .app
        .post(
            "/v1/channels?verify=true",
            &w.rep.token,
            mailbox(&smtp, "starttls", "right", json!({})),
        )
        .await;
    let channel = expect_json(res, StatusCode::CREATED).await;
    assert!(channel["last_verified_at"].is_string(), "{channel}");
}

#[tokio::test]
async fn a_new_password_replaces_the_old_only_once_it_works() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "old-password").await;
    let id = create(&w, mailbox(&smtp, "starttls", "old-password", json!({}))).await;
    let before = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    let put = |body: Value, force: bool| put_credential(&w, &id, body, force);

    // IT changed the password at the provider; a typo is refused and the old one keeps working.
    smtp.set_password(USER, "new-password");
    let res = put(json!({"password": "new-pasword"}), false).await;
    let problem =
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "verification_failed").await;
    assert_eq!(problem["test"]["stages"][3]["stage"], "auth", "{problem}");
    let unchanged = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        unchanged["credential_updated_at"],
        before["credential_updated_at"]
    );

    let res = put(json!({"password": "new-password"}), false).await;
    let rotated = expect_json(res, StatusCode::OK).await;
    assert_ne!(
        rotated["credential_updated_at"],
        before["credential_updated_at"]
    );
    assert!(rotated["last_verified_at"].is_string());
    assert_eq!(
        run_test(&w, &id, json!({})).await["ok"],
        true,
        "the stored credential is the new one"
    );

    // Forced: stored although it fails, and shown as unverified.
    let res = put(json!({"api_key": "not-it"}), true).await;
    let forced = expect_json(res, StatusCode::OK).await;
    assert_eq!(forced["last_verified_at"], Value::Null);
    assert_eq!(run_test(&w, &id, json!({})).await["classification"], "auth");

    let res = put(json!({"password": "a", "api_key": "b"}), false).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
}

#[tokio::test]
async fn only_owners_admins_and_it_may_test_or_rotate() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "starttls", "pw", json!({}))).await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let res = w
        .app
        .post(&format!("/v1/channels/{id}/test"), &it.token, json!({}))
        .await;
    assert_eq!(expect_json(res, StatusCode::OK).await["ok"], true);
    let res = w
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/channels/{id}/credentials"),
            &it.token,
            Some(json!({"password": "pw"})),
        )
        .await;
    expect_json(res, StatusCode::OK).await;
    let audit_actions = {
        let (store, _) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
        let tenant = w.acme.id.parse().unwrap();
        store
            .run_blocking(|c| switchboard::store::audit::list(c, Some(tenant)))
            .unwrap()
    };
    let actions: Vec<&str> = audit_actions.iter().map(|e| e.action.as_str()).collect();
    for expected in ["channel.created", "channel.tested", "credential.rotated"] {
        assert!(actions.contains(&expected), "{actions:?}");
    }
    assert!(
        audit_actions.iter().all(|e| !e.detail.contains("pw\"")),
        "no secret in the audit trail"
    );
}

#[tokio::test]
async fn a_server_without_starttls_a_rejected_oauth_token_and_a_refused_send_are_explained() {
    let w = world().await;
    // STARTTLS asked of a server that does not offer it.
    let plain = server(TlsMode::None, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&plain, "starttls", "pw", json!({}))).await;
    let result = run_test(&w, &id, json!({})).await;
    let tls = last_failed(&result);
    assert_eq!(tls["stage"], "tls", "{result}");
    assert!(
        tls["hint"]
            .as_str()
            .unwrap()
            .contains("does not offer STARTTLS"),
        "{tls}"
    );

    // An XOAUTH2 token the server rejects, Gmail-style (334 challenge, then 535).
    let oauth = TestSmtpServer::start(SmtpServerConfig {
        xoauth2: vec![(USER.to_owned(), "good-token".to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    let id = create(
        &w,
        mailbox(
            &oauth,
            "starttls",
            "stale-token",
            json!({"auth": "xoauth2"}),
        ),
    )
    .await;
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["classification"], "auth", "{result}");
    assert!(
        last_failed(&result)["hint"]
            .as_str()
            .unwrap()
            .contains("reconnect"),
        "{result}"
    );

    // The login works but the relay refuses the recipient of the test message.
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    smtp.set_fault(Some(Fault::Reply {
        command: "RCPT",
        code: 550,
        text: "5.1.1 User unknown".into(),
    }));
    let id = create(&w, mailbox(&smtp, "starttls", "pw", json!({}))).await;
    let result = run_test(&w, &id, json!({"send_to": "nobody@example.com"})).await;
    let send = last_failed(&result);
    assert_eq!(send["stage"], "send");
    assert_eq!(send["code"], 550);
    assert_eq!(result["classification"], "permanent");
    assert!(
        stage(&result, "auth")["ok"].as_bool().unwrap(),
        "the login itself worked"
    );
}

#[tokio::test]
async fn a_credential_pair_rotates_together_and_a_secret_username_is_refused() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "starttls", "pw", json!({}))).await;
    // New SES-style credentials come with a new user name: tested and stored as a pair.
    smtp.set_password("AKIA-NEW-USER", "new-secret");
    let res = put_credential(
        &w,
        &id,
        json!({"password": "new-secret", "username": "AKIA-NEW-USER"}),
        false,
    )
    .await;
    let channel = expect_json(res, StatusCode::OK).await;
    assert_eq!(channel["smtp"]["username"], "AKIA-NEW-USER");
    assert!(channel["last_verified_at"].is_string());
    assert_eq!(run_test(&w, &id, json!({})).await["ok"], true);

    // A username equal to the secret would be shown in clear on every read.
    let res = put_credential(
        &w,
        &id,
        json!({"password": "same", "username": "same"}),
        true,
    )
    .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "username_is_secret").await;
    let mut body = mailbox(
        &smtp,
        "starttls",
        "token-123",
        json!({"username": "token-123"}),
    );
    body["from_address"] = json!("rep@acme.test");
    let res = w.app.post("/v1/channels", &w.rep.token, body).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "username_is_secret").await;
}

#[tokio::test]
async fn a_retired_basic_auth_reply_is_an_auth_failure_with_its_own_hint() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(&w, mailbox(&smtp, "starttls", "pw", json!({}))).await;
    smtp.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 550,
        text: "5.7.30 Basic authentication is not supported for Client Submission".into(),
    }));
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["classification"], "auth", "{result}");
    assert!(
        last_failed(&result)["hint"]
            .as_str()
            .unwrap()
            .contains("OAuth"),
        "{result}"
    );
    smtp.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 454,
        text: "4.7.0 Temporary authentication failure".into(),
    }));
    let result = run_test(&w, &id, json!({})).await;
    assert_eq!(result["classification"], "temporary", "{result}");
}

#[tokio::test]
async fn a_server_that_goes_silent_after_the_message_does_not_hang_the_test() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "pw").await;
    let id = create(
        &w,
        mailbox(&smtp, "starttls", "pw", json!({"command_timeout_secs": 1})),
    )
    .await;
    smtp.set_fault(Some(Fault::SilentAfter { command: "DATA" }));
    let started = std::time::Instant::now();
    let result = run_test(&w, &id, json!({"send_to": "lead@example.com"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the test hung: {:?}",
        started.elapsed()
    );
    let send = last_failed(&result);
    assert_eq!(send["stage"], "send", "{result}");
    assert_eq!(result["classification"], "network");
}

#[tokio::test]
async fn a_rejected_gmail_password_points_to_app_passwords() {
    let w = world().await;
    let smtp = server(TlsMode::StartTls, CertMode::TestCa, "app-password").await;
    let mut body = mailbox(&smtp, "starttls", "my-normal-password", json!({}));
    body["preset"] = json!("gmail");
    let id = create(&w, body).await;
    let result = run_test(&w, &id, json!({})).await;
    let auth = last_failed(&result);
    assert_eq!(auth["code"], 535);
    assert!(
        auth["hint"].as_str().unwrap().contains("app password"),
        "{auth}"
    );
}
