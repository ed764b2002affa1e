//! Trusting a mail server's certificate as a person would, with certificates made the way
//! admins make them: by the `openssl` command line, at run time, in a temp directory. A
//! pasted self-signed certificate (CA:TRUE, as `openssl req -x509` makes it) is trusted
//! exactly, a private CA vouches for the leaf it issued, an untrusted certificate is shown
//! and trusted by its fingerprint, a replaced one is named as changed, and expired,
//! not-yet-valid and wrong-name certificates each get their own hint; on the channel's page
//! the refused certificate is shown with a "Trust this certificate" button.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{TestApp, TestTenant, TestUser, expect_json, expect_problem};
use crate::openssl_certs::{Pem, PrivateCa, SAN, openssl_fingerprint, self_signed};
use crate::smtp_server::{Fault, SmtpServerConfig, TestSmtpServer, TlsMode};
use crate::ui_client::{UiClient, hidden_value};

const USER: &str = "rep@acme.test";
const PASSWORD: &str = "Canary-Tls-Pw-51c";
struct World {
    app: TestApp,
    acme: TestTenant,
    rep: TestUser,
    certs: TempDir,
}

/// The rep sends a message to ann@example.com; its id.
async fn send(w: &World, subject: &str) -> String {
    let accepted = expect_json(
        w.app
            .post(
                "/v1/messages",
                &w.rep.token,
                json!({"from": USER, "to": ["ann@example.com"], "subject": subject, "text": "Hello Ann"}),
            )
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    accepted["id"].as_str().unwrap().to_owned()
}

async fn world() -> World {
    // Fast retries, so the delivery after trusting does not wait on a backoff.
    let (app, acme, rep) = crate::messages::acme_and_rep(&[]).await;
    World {
        app,
        acme,
        rep,
        certs: TempDir::new().unwrap(),
    }
}

async fn server(tls: TlsMode, pem: &Pem) -> TestSmtpServer {
    TestSmtpServer::start_with_pem(
        SmtpServerConfig {
            tls,
            users: vec![(USER.to_owned(), PASSWORD.to_owned())],
            ..SmtpServerConfig::default()
        },
        &pem.cert,
        &pem.key,
    )
    .await
}

fn security(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::Implicit => "tls",
        _ => "starttls",
    }
}

/// A mailbox channel on `server`, trusting `ca_pem` when given.
fn mailbox(server: &TestSmtpServer, tls: TlsMode, ca_pem: Option<&str>) -> Value {
    json!({"name": "Mailbox", "kind": "smtp", "scope": "mailbox", "from_address": USER,
           "smtp": {"host": "localhost", "port": server.port(), "security": security(tls),
                    "auth": "login", "username": USER, "password": PASSWORD, "ca_pem": ca_pem,
                    "connect_timeout_secs": 5, "command_timeout_secs": 5}})
}

async fn create(w: &World, body: Value) -> String {
    expect_json(
        w.app.post("/v1/channels", &w.rep.token, body).await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn test_channel(w: &World, id: &str) -> Value {
    expect_json(
        w.app
            .post(&format!("/v1/channels/{id}/test"), &w.rep.token, json!({}))
            .await,
        StatusCode::OK,
    )
    .await
}

/// The `tls` stage of a report.
fn tls_stage(report: &Value) -> Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "tls")
        .unwrap_or_else(|| panic!("no tls stage: {report:#}"))
        .clone()
}

async fn get_channel(w: &World, id: &str) -> Value {
    expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await
}

async fn trust(w: &World, id: &str, token: &str, sha256: &str) -> reqwest::Response {
    w.app
        .post(
            &format!("/v1/channels/{id}/trusted-certificate"),
            token,
            json!({ "sha256": sha256 }),
        )
        .await
}

#[tokio::test]
async fn a_pasted_self_signed_certificate_is_trusted_exactly_in_both_tls_modes() {
    let w = world().await;
    let own = self_signed(w.certs.path(), "own");
    for tls in [TlsMode::StartTls, TlsMode::Implicit] {
        let smtp = server(tls, &own).await;
        let id = create(&w, mailbox(&smtp, tls, Some(&own.cert))).await;
        let report = test_channel(&w, &id).await;
        assert_eq!(report["ok"], true, "{tls:?}: {report:#}");
        assert_eq!(tls_stage(&report)["ok"], true);
        assert_eq!(smtp.auth_attempts().len(), 1, "logged in over TLS");
        expect_json(
            w.app
                .delete(&format!("/v1/channels/{id}"), &w.rep.token)
                .await,
            StatusCode::NO_CONTENT,
        )
        .await;
    }
    // Exactly that certificate: another self-signed one for the same names is not trusted
    // by the paste, and the report says the server's certificate changed.
    let other = self_signed(w.certs.path(), "other");
    let smtp = server(TlsMode::StartTls, &other).await;
    let id = create(&w, mailbox(&smtp, TlsMode::StartTls, Some(&own.cert))).await;
    let report = test_channel(&w, &id).await;
    assert_eq!(report["ok"], false, "{report:#}");
    let tls = tls_stage(&report);
    assert_eq!(tls["certificate"]["problem"], "changed", "{tls:#}");
    assert_eq!(
        tls["certificate"]["trusted_sha256"],
        openssl_fingerprint(w.certs.path(), &own.cert)
    );
    assert!(smtp.auth_attempts().is_empty(), "no password sent to it");
}

#[tokio::test]
async fn a_private_ca_vouches_for_the_leaf_it_issued() {
    let w = world().await;
    let ca = PrivateCa::new();
    let leaf = ca.current("leaf");
    for tls in [TlsMode::StartTls, TlsMode::Implicit] {
        let smtp = server(tls, &leaf).await;
        let id = create(&w, mailbox(&smtp, tls, Some(&ca.pem))).await;
        let report = test_channel(&w, &id).await;
        assert_eq!(report["ok"], true, "{tls:?}: {report:#}");
        expect_json(
            w.app
                .delete(&format!("/v1/channels/{id}"), &w.rep.token)
                .await,
            StatusCode::NO_CONTENT,
        )
        .await;
    }
    // Without the CA, the same leaf is refused as an unknown issuer.
    let smtp = server(TlsMode::StartTls, &leaf).await;
    let id = create(&w, mailbox(&smtp, TlsMode::StartTls, None)).await;
    let tls = tls_stage(&test_channel(&w, &id).await);
    assert_eq!(tls["certificate"]["problem"], "unknown_issuer", "{tls:#}");
    assert_eq!(tls["certificate"]["issuer"], "CN=Acme Private CA");
    assert_eq!(tls["certificate"]["self_signed"], false);
}

#[tokio::test]
async fn an_untrusted_certificate_is_shown_then_trusted_by_fingerprint_and_carries_mail() {
    let w = world().await;
    let dir = w.certs.path();
    let first = self_signed(dir, "first");
    let first_fp = openssl_fingerprint(dir, &first.cert);
    let smtp = server(TlsMode::StartTls, &first).await;

    // Verify-before-save refuses, and shows what the server presented.
    let refused = expect_problem(
        w.app
            .post(
                "/v1/channels?verify=true",
                &w.rep.token,
                mailbox(&smtp, TlsMode::StartTls, None),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
    )
    .await;
    assert_eq!(
        tls_stage(&refused["test"])["certificate"]["sha256"],
        first_fp
    );

    let id = create(&w, mailbox(&smtp, TlsMode::StartTls, None)).await;
    let report = test_channel(&w, &id).await;
    assert_eq!(report["classification"], "tls", "{report:#}");
    let tls = tls_stage(&report);
    let cert = &tls["certificate"];
    assert_eq!(cert["subject"], "CN=mail.example", "{tls:#}");
    assert_eq!(cert["issuer"], "CN=mail.example");
    assert_eq!(cert["names"], json!(["localhost", "127.0.0.1"]));
    assert_eq!(cert["self_signed"], true);
    assert_eq!(
        cert["problem"], "ca_used_as_end_entity",
        "openssl's CA:TRUE default"
    );
    assert_eq!(cert["sha256"], first_fp, "the fingerprint openssl shows");
    assert!(cert["not_before"].as_str().unwrap() < cert["not_after"].as_str().unwrap());
    assert!(
        tls["hint"].as_str().unwrap().contains("fingerprint"),
        "{tls:#}"
    );

    // Refused, and nothing changes: a malformed fingerprint, one the server does not
    // present, and anyone who may not edit the channel.
    expect_problem(
        trust(&w, &id, &w.rep.token, "not-a-fingerprint").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    let elsewhere = self_signed(dir, "elsewhere");
    let wrong = openssl_fingerprint(dir, &elsewhere.cert);
    let problem = expect_problem(
        trust(&w, &id, &w.rep.token, &wrong).await,
        StatusCode::CONFLICT,
        "certificate_not_presented",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains(&first_fp),
        "{problem:#}"
    );
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    expect_problem(
        trust(&w, &id, &it.token, &first_fp).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        get_channel(&w, &id).await["smtp"]["pinned_sha256"],
        Value::Null
    );

    // Trusted in one step, with the fingerprint as the report showed it (colons and all).
    let channel = expect_json(
        trust(&w, &id, &w.rep.token, &first_fp).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["smtp"]["pinned_sha256"], first_fp);
    let audit = expect_json(
        w.app
            .get(&format!("/v1/audit?channel_id={id}"), &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    let trusted = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "channel.certificate_trusted")
        .unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(trusted["detail"]["sha256"], first_fp);
    assert_eq!(test_channel(&w, &id).await["ok"], true);

    // Mail goes out through it.
    let message = send(&w, "over the pinned certificate").await;
    w.app
        .wait_for_message(&w.rep.token, &message, "sent", Duration::from_secs(30))
        .await;
    let received = smtp.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "the message came over TLS");

    // The server's certificate is replaced: the test says it changed, from what to what.
    let second = self_signed(dir, "second");
    let second_fp = openssl_fingerprint(dir, &second.cert);
    smtp.replace_certificate(&second.cert, &second.key);
    let report = test_channel(&w, &id).await;
    assert_eq!(report["ok"], false, "{report:#}");
    let tls = tls_stage(&report);
    let message = tls["message"].as_str().unwrap();
    assert!(message.contains("changed"), "{message}");
    assert!(
        message.contains(&first_fp) && message.contains(&second_fp),
        "{message}"
    );
    assert!(
        tls["hint"].as_str().unwrap().contains(&second_fp),
        "{tls:#}"
    );
    assert_eq!(tls["certificate"]["problem"], "changed");
    assert_eq!(tls["certificate"]["sha256"], second_fp);
    assert_eq!(tls["certificate"]["trusted_sha256"], first_fp);

    // Mail sent now is not delivered over the new certificate, and says why. The session
    // pooled before the change is ended by the server (as a restart to load the new
    // certificate would), so the retry has to shake hands again.
    smtp.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 421,
        text: "4.3.2 Restarting to load a new certificate".into(),
    }));
    let message = send(&w, "after the change").await;
    w.app
        .wait_for_message_where(&w.rep.token, &message, Duration::from_secs(30), |v| {
            v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("421") || e.contains("changed"))
        })
        .await;
    smtp.set_fault(None);
    let view = w
        .app
        .wait_for_message_where(&w.rep.token, &message, Duration::from_secs(30), |v| {
            v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("changed"))
        })
        .await;
    let error = view["last_error"].as_str().unwrap();
    assert!(
        error.contains("changed") && error.contains(&first_fp) && error.contains(&second_fp),
        "{view:#}"
    );
    assert_ne!(view["status"], "sent");
    assert_eq!(smtp.messages().len(), 1, "nothing more reached the server");
}

#[tokio::test]
async fn expired_future_and_wrong_name_certificates_each_get_their_own_hint() {
    let w = world().await;
    let ca = PrivateCa::new();
    let cases = [
        (
            ca.issue("expired", SAN, "20200101000000Z", "20210101000000Z"),
            "expired",
            "expired on 2021-01-01",
        ),
        (
            ca.issue("future", SAN, "20900101000000Z", "20910101000000Z"),
            "not_yet_valid",
            "valid only from 2090-01-01",
        ),
        (
            ca.current_for("wrong", "subjectAltName=DNS:mail.other.example"),
            "wrong_name",
            "is for mail.other.example, not `localhost`",
        ),
    ];
    let mut hints = Vec::new();
    for (pem, problem, needle) in &cases {
        let smtp = server(TlsMode::StartTls, pem).await;
        let id = create(&w, mailbox(&smtp, TlsMode::StartTls, Some(&ca.pem))).await;
        let report = test_channel(&w, &id).await;
        let tls = tls_stage(&report);
        assert_eq!(tls["ok"], false, "{report:#}");
        assert_eq!(tls["certificate"]["problem"], *problem, "{tls:#}");
        let hint = tls["hint"].as_str().unwrap().to_owned();
        assert!(hint.contains(needle), "{problem}: {hint}");
        hints.push(hint);
        if *problem == "expired" {
            // Trusting an expired certificate would not help: refused, and said why.
            let sha = tls["certificate"]["sha256"].as_str().unwrap().to_owned();
            expect_problem(
                trust(&w, &id, &w.rep.token, &sha).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "certificate_not_valid_now",
            )
            .await;
        }
        expect_json(
            w.app
                .delete(&format!("/v1/channels/{id}"), &w.rep.token)
                .await,
            StatusCode::NO_CONTENT,
        )
        .await;
    }
    hints.dedup();
    assert_eq!(hints.len(), 3, "three different hints: {hints:#?}");
}

#[tokio::test]
async fn a_paste_or_fingerprint_that_cannot_be_read_is_refused_and_changes_nothing() {
    let w = world().await;
    let own = self_signed(w.certs.path(), "own");
    let smtp = server(TlsMode::StartTls, &own).await;
    let garbage =
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let problem = expect_problem(
        w.app
            .post(
                "/v1/channels",
                &w.rep.token,
                mailbox(&smtp, TlsMode::StartTls, Some(garbage)),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "smtp.ca_pem", "{problem:#}");

    let id = create(&w, mailbox(&smtp, TlsMode::StartTls, Some(&own.cert))).await;
    let before = get_channel(&w, &id).await;
    for (smtp_patch, field) in [
        (json!({"ca_pem": garbage}), "smtp.ca_pem"),
        (json!({"pinned_sha256": "AB:CD"}), "smtp.pinned_sha256"),
    ] {
        let problem = expect_problem(
            w.app
                .patch(
                    &format!("/v1/channels/{id}"),
                    &w.rep.token,
                    json!({"smtp": smtp_patch}),
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert_eq!(problem["field"], field);
    }
    assert_eq!(get_channel(&w, &id).await["smtp"], before["smtp"]);

    // A well-formed fingerprint can also be set by hand (and removed with null).
    let fp = openssl_fingerprint(w.certs.path(), &own.cert);
    let bare = fp.replace(':', "").to_ascii_lowercase();
    let channel = expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{id}"),
                &w.rep.token,
                json!({"smtp": {"pinned_sha256": bare, "ca_pem": null}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["smtp"]["pinned_sha256"], fp, "shown as colon pairs");
    assert_eq!(test_channel(&w, &id).await["ok"], true);
    let channel = expect_json(
        w.app
            .patch(
                &format!("/v1/channels/{id}"),
                &w.rep.token,
                json!({"smtp": {"pinned_sha256": null}}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["smtp"]["pinned_sha256"], Value::Null);
    assert_eq!(test_channel(&w, &id).await["ok"], false);
}

#[tokio::test]
async fn the_channel_page_shows_a_refused_certificate_and_trusts_it_with_one_button() {
    let w = world().await;
    let own = self_signed(w.certs.path(), "own");
    let fp = openssl_fingerprint(w.certs.path(), &own.cert);
    let smtp = server(TlsMode::Implicit, &own).await;
    let id = create(&w, mailbox(&smtp, TlsMode::Implicit, None)).await;
    let test = format!("/ui/channels/{id}/test");

    // IT may test the rep's mailbox but not edit it: the certificate, and no button.
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    let mut it_ui = UiClient::signed_in(&w.app, &it.token).await;
    it_ui.get(&format!("/ui/channels/{id}")).await;
    let result = it_ui.post_fragment(&test, &[("action", "connect")]).await;
    assert_eq!(result.status, StatusCode::OK, "{}", result.html);
    result
        .expect("TLS failed")
        .expect(&fp)
        .expect_not("Trust this certificate");

    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get(&format!("/ui/channels/{id}")).await;
    let result = ui.post_fragment(&test, &[("action", "connect")]).await;
    assert_eq!(result.status, StatusCode::OK, "{}", result.html);
    result
        .expect("<li class=\"failed\"><strong>TLS: failed")
        .expect("CN=mail.example (self-signed)")
        .expect("localhost, 127.0.0.1")
        .expect(&fp)
        .expect("Trust this certificate");
    let sha256 = hidden_value(&result.html, "sha256").expect("the fingerprint in the form");
    assert_eq!(sha256, fp);

    let done = ui
        .post(
            &format!("/ui/channels/{id}/trust-certificate"),
            &[("sha256", &sha256)],
        )
        .await;
    assert!(done.location.is_some(), "{} {}", done.status, done.html);
    ui.follow(&done)
        .await
        .expect("is trusted for this channel")
        .expect("Also trusted: the server certificate with SHA-256 fingerprint");
    assert_eq!(get_channel(&w, &id).await["smtp"]["pinned_sha256"], fp);
    // The edit form shows it, to be kept or emptied.
    ui.get(&format!("/ui/channels/{id}/edit"))
        .await
        .expect("Trusted certificate (SHA-256 fingerprint)")
        .expect(&format!(
            "name=\"smtp.pinned_sha256\" type=\"text\" value=\"{fp}\""
        ));
    ui.post_fragment(&test, &[("action", "connect")])
        .await
        .expect("Connection and login work")
        .expect_not("Trust this certificate");
}

#[tokio::test]
async fn the_openapi_document_describes_trust_by_fingerprint_and_the_certificate_report() {
    let w = world().await;
    let res = w
        .app
        .client
        .get(format!("{}/openapi.json", w.app.address))
        .send()
        .await
        .unwrap();
    let doc = expect_json(res, StatusCode::OK).await;
    assert!(
        doc["paths"]["/v1/channels/{id}/trusted-certificate"]["post"].is_object(),
        "{:#}",
        doc["paths"]
    );
    let schemas = &doc["components"]["schemas"];
    let certificate = &schemas["CertificateView"]["properties"];
    for field in [
        "subject",
        "issuer",
        "names",
        "not_before",
        "not_after",
        "sha256",
        "self_signed",
        "problem",
        "trusted_sha256",
    ] {
        assert!(
            certificate[field].is_object(),
            "CertificateView.{field}: {certificate:#}"
        );
    }
    assert!(
        schemas["TestStageView"]["properties"]["certificate"].is_object(),
        "{:#}",
        schemas["TestStageView"]
    );
    assert!(schemas["SmtpInput"]["properties"]["pinned_sha256"].is_object());
    assert!(schemas["TrustCertificateRequest"]["properties"]["sha256"].is_object());
}

#[tokio::test]
async fn the_command_line_test_prints_the_refused_certificate() {
    let w = world().await;
    let own = self_signed(w.certs.path(), "own");
    let fp = openssl_fingerprint(w.certs.path(), &own.cert);
    let smtp = server(TlsMode::StartTls, &own).await;
    let id = create(&w, mailbox(&smtp, TlsMode::StartTls, None)).await;
    let out = crate::cli_channel::run(&w.app, &["channel", "test", &id], None).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("sha256: {fp}")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("certificate: CN=mail.example"),
        "{}",
        out.stdout
    );
}
