//! `switchboard channel test` and `switchboard channel rotate`: the real binary, run as IT
//! would on the server after a password change, against the database of a running service
//! and a real SMTP server that checks passwords.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::binary::command;
use crate::helpers::{TestApp, expect_json};
use crate::messages::{PASSWORD, REP, World, mail, send_id, world};

const PATIENCE: Duration = Duration::from_secs(30);

/// What a run of the binary left behind.
pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    /// The exit status first: a process killed by a signal prints nothing of its own.
    pub stderr: String,
}

/// The binary with the service's own configuration, as an operator runs it on the server.
fn cli(app: &TestApp) -> Command {
    let mut cmd = command(&app.data_dir, &app.db);
    // `command` gives PostgreSQL a key file of its own; this service runs with these keys.
    cmd.env_remove("SWITCHBOARD_MASTER_KEYS_FILE")
        .env("SWITCHBOARD_MASTER_KEYS", &app.master_keys)
        .env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8,::1");
    cmd
}

/// Runs `switchboard <args>` with `stdin` piped in (or none at all). On the blocking pool: the
/// test SMTP server answers on this test's runtime meanwhile.
pub async fn run(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Outcome {
    let mut cmd = cli(app);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("the binary starts");
        if let Some(input) = input {
            // A command that stops before reading its input closes the pipe; what it printed
            // then says why, so a broken pipe here is not the failure to report.
            let written = child.stdin.take().unwrap().write_all(input.as_bytes());
            if let Err(e) = written
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                panic!("writing the command's input: {e}");
            }
        }
        let out = child.wait_with_output().unwrap();
        Outcome {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        }
    })
    .await
    .unwrap()
}

async fn channel(w: &World) -> Value {
    let path = format!("/v1/channels/{}", w.channel);
    expect_json(w.app.get(&path, &w.rep.token).await, StatusCode::OK).await
}

fn time(view: &Value, field: &str) -> DateTime<Utc> {
    view[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {view:#}"))
        .parse()
        .unwrap()
}

async fn audit(w: &World) -> Value {
    let path = format!("/v1/audit?channel_id={}", w.channel);
    expect_json(w.app.get(&path, &w.acme.admin_token).await, StatusCode::OK).await
}

/// The stage's line of the printed report: name, status and server reply in columns.
fn stage_line<'a>(stdout: &'a str, stage: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no {stage} line:\n{stdout}"))
}

/// Sends a message and waits until it arrives at the server.
async fn send_and_deliver(w: &World, subject: &str) {
    let id = send_id(w, mail(subject)).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", PATIENCE)
        .await;
    assert!(
        w.server
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains(subject)),
        "{subject} arrived"
    );
}

/// The logins since the `since`-th: at least `count`, and every one accepted.
fn logged_in_since(w: &World, since: usize, count: usize) {
    let attempts = w.server.auth_attempts();
    let later = &attempts[since..];
    assert!(
        later.len() >= count && later.iter().all(|a| a.success && a.username == REP),
        "the service logged in, and never with a rejected password: {attempts:?}"
    );
}

#[tokio::test]
async fn channel_test_prints_every_stage_and_fails_with_a_hint_on_a_wrong_password() {
    let w = world().await;
    let out = run(
        &w.app,
        &[
            "channel",
            "test",
            &w.channel,
            "--send-to",
            "ann@example.com",
        ],
        None,
    )
    .await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    for stage in ["connect", "tls", "ehlo", "auth", "send"] {
        let line = stage_line(&out.stdout, stage);
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("ok"),
            "{stage}:\n{}",
            out.stdout
        );
    }
    assert!(
        stage_line(&out.stdout, "auth").contains(" ok     235 "),
        "the server's reply in its column:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("every stage passed"), "{}", out.stdout);
    let received = w.server.wait_for_messages(1, PATIENCE).await;
    assert_eq!(received.len(), 1, "the test message arrived");
    assert_eq!(received[0].rcpt_to, ["ann@example.com"]);
    assert!(channel(&w).await["last_verified_at"].is_string());

    // The password changed at the server: the stored one no longer logs in.
    w.server.set_password(REP, "Changed-By-IT-1");
    let out = run(&w.app, &["channel", "test", &w.channel], None).await;
    assert!(!out.ok, "a failed test exits non-zero:\n{}", out.stdout);
    let auth = stage_line(&out.stdout, "auth");
    assert!(auth.contains(" FAILED 535 "), "{}", out.stdout);
    let hint = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("auth "))
        .nth(1)
        .unwrap_or_default();
    assert!(
        hint.trim_start()
            .starts_with("hint: username or password rejected"),
        "the hint under its stage:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("failed at the auth stage (auth)"),
        "{}",
        out.stderr
    );
    for secret in [PASSWORD, "Changed-By-IT-1"] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }

    let events = audit(&w).await;
    let tests: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "channel.tested")
        .collect();
    assert_eq!(tests.len(), 2, "{events:#}");
    assert!(tests.iter().all(|e| e["actor"] == "cli"), "{events:#}");
    assert_eq!(tests[0]["detail"]["ok"], true);
    assert_eq!(tests[1]["detail"]["failed_stage"], "auth");

    // Ids that name no stored SMTP channel are explained, not tested.
    let out = run(
        &w.app,
        &["channel", "test", &uuid::Uuid::nil().to_string()],
        None,
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("shared pool is not stored"),
        "{}",
        out.stderr
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = run(&w.app, &["channel", "test", &unknown], None).await;
    assert!(
        !out.ok && out.stderr.contains(&format!("no channel {unknown}")),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn rotate_after_a_password_change_releases_held_mail_and_never_shows_the_secret() {
    let w = world().await;
    let before = channel(&w).await;
    let canary = format!("canary-cli-S3cret-{}", uuid::Uuid::new_v4().simple());
    w.server.set_password(REP, &canary);
    let held = send_id(&w, mail("held until rotated")).await;
    w.app
        .wait_for_message(&w.rep.token, &held, "held", PATIENCE)
        .await;
    assert_eq!(channel(&w).await["status"], "needs_reauth");

    let logins_before = w.server.auth_attempts().len();
    // One line on standard input; only its newline is stripped (the server wants it exact).
    let out = run(
        &w.app,
        &["channel", "rotate", &w.channel],
        Some(&format!("{canary}\n")),
    )
    .await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        stage_line(&out.stdout, "auth").contains(" ok "),
        "{}",
        out.stdout
    );
    for expected in [
        "credential replaced and verified",
        "status: active",
        "held messages released: 1",
    ] {
        assert!(out.stdout.contains(expected), "{expected}:\n{}", out.stdout);
    }
    let after = channel(&w).await;
    assert!(
        time(&after, "credential_updated_at") > time(&before, "credential_updated_at"),
        "{after:#}"
    );
    assert_eq!(after["status"], "active", "{after:#}");
    assert!(after["last_verified_at"].is_string());

    // The running service picked it up by itself: the held message and a new one go out,
    // logging in with the new password (the only one the server accepts now).
    w.app
        .wait_for_message(&w.rep.token, &held, "sent", PATIENCE)
        .await;
    send_and_deliver(&w, "after the rotation").await;
    // The command's own test, then the service's session.
    logged_in_since(&w, logins_before, 2);

    let events = audit(&w).await;
    let rotated = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "credential.rotated")
        .unwrap_or_else(|| panic!("{events:#}"));
    assert_eq!(rotated["actor"], "cli");
    assert_eq!(rotated["detail"]["verified"], true);
    assert_eq!(rotated["detail"]["released"], 1);

    assert!(!out.stdout.contains(&canary), "{}", out.stdout);
    assert!(!out.stderr.contains(&canary), "{}", out.stderr);
    assert!(
        out.stderr.contains("credential replaced"),
        "debug logs were captured: {}",
        out.stderr
    );
    assert!(!events.to_string().contains(&canary), "{events:#}");
    let stopped = w.app.stop().await;
    if !stopped.db.is_postgres() {
        for file in ["switchboard.db", "switchboard.db-wal"] {
            let bytes = std::fs::read(stopped.data_dir.join(file)).unwrap_or_default();
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{file} contains the canary"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_new_password_is_refused_and_the_old_credential_keeps_working() {
    let w = world().await;
    let before = channel(&w).await;
    let out = run(
        &w.app,
        &["channel", "rotate", &w.channel],
        Some("Typo-In-The-New-Password\n"),
    )
    .await;
    assert!(!out.ok, "refused:\n{}", out.stdout);
    assert!(
        stage_line(&out.stdout, "auth").contains(" FAILED 535 "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("hint: "), "{}", out.stdout);
    assert!(out.stderr.contains("nothing was stored"), "{}", out.stderr);
    assert!(!out.stdout.contains("Typo-In-The-New-Password"));
    assert!(!out.stderr.contains("Typo-In-The-New-Password"));

    // Nothing, an empty line, or a username equal to the secret are refused before any test.
    let connections = w.server.connections();
    for (args, stdin, why) in [
        (vec![], None, "no secret given"),
        (vec![], Some("\n"), "no secret given"),
        (
            vec!["--username", "Same-As-Secret-7", "--force"],
            Some("Same-As-Secret-7\n"),
            "the username equals the password",
        ),
        (vec!["--username", " "], Some("x\n"), "--username"),
    ] {
        let mut argv = vec!["channel", "rotate", w.channel.as_str()];
        argv.extend(args);
        let out = run(&w.app, &argv, stdin).await;
        assert!(!out.ok && out.stderr.contains(why), "{why}: {}", out.stderr);
        assert!(!out.stderr.contains("Same-As-Secret-7"), "{}", out.stderr);
    }
    assert_eq!(w.server.connections(), connections, "nothing was tested");

    let after = channel(&w).await;
    assert_eq!(
        after["credential_updated_at"], before["credential_updated_at"],
        "{after:#}"
    );
    assert_eq!(after["smtp"]["username"], REP);
    assert_eq!(after["status"], "active");
    let logins_before_delivery = w.server.auth_attempts().len();
    send_and_deliver(&w, "still on the old password").await;
    logged_in_since(&w, logins_before_delivery, 1);
}

#[tokio::test]
async fn force_stores_an_unverified_credential() {
    let w = world().await;
    let before = channel(&w).await;
    let out = run(
        &w.app,
        &["channel", "rotate", &w.channel, "--force"],
        Some("Not-What-The-Server-Wants\n"),
    )
    .await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        stage_line(&out.stdout, "auth").contains(" FAILED "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("UNVERIFIED"), "{}", out.stdout);
    let after = channel(&w).await;
    assert!(
        time(&after, "credential_updated_at") > time(&before, "credential_updated_at"),
        "{after:#}"
    );
    assert_eq!(after["last_verified_at"], Value::Null, "{after:#}");
    let events = audit(&w).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "credential.rotated"
                && e["actor"] == "cli"
                && e["detail"]["verified"] == false),
        "{events:#}"
    );

    // The stored credential is the forced one: the channel's own test now fails to log in.
    let out = run(&w.app, &["channel", "test", &w.channel], None).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        stage_line(&out.stdout, "auth").contains(" FAILED 535 "),
        "{}",
        out.stdout
    );
}
