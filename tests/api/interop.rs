//! Against servers we did not write: the channel tester against Python's aiosmtpd and Node's
//! smtp-server (nodemailer), each with STARTTLS and implicit TLS and a real password check;
//! "Connect Gmail" (authorization with PKCE, code exchange, userinfo, refresh, revocation)
//! against Node's oauth2-mock-server as the authorization server.
//! Runs when SWITCHBOARD_INTEROP=1 (the interop leg of .ci/run installs the peers, see
//! tests/interop/); SWITCHBOARD_INTEROP_DIR says where they were installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_google::{FakeGoogle, FakeGoogleConfig};
use crate::helpers::{TestApp, TestUser, expect_json, spawn_app, spawn_app_with};

pub(crate) const USER: &str = "rep@acme.test";
pub(crate) const PASSWORD: &str = "Interop-Password-42";

/// A peer SMTP server process; killed when dropped.
pub(crate) struct Peer {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    /// The records of one of the peer's `.jsonl` files, complete lines only (the peer may be
    /// appending one).
    pub(crate) fn records(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
            .collect()
    }

    /// The messages the peer accepted, as it recorded them: `{mail_from, rcpt_tos, data}`.
    pub(crate) fn messages(&self) -> Vec<Value> {
        self.records("messages.jsonl")
    }
}

pub(crate) fn interop_dir() -> Option<PathBuf> {
    if std::env::var("SWITCHBOARD_INTEROP").as_deref() != Ok("1") {
        return None;
    }
    let dir =
        std::env::var("SWITCHBOARD_INTEROP_DIR").expect("SWITCHBOARD_INTEROP_DIR (see .ci/run)");
    Some(PathBuf::from(dir))
}

fn start_peer(installed: &Path, peer: &str, mode: &str) -> Peer {
    start_peer_in(installed, peer, mode, test_ca_certificates(installed))
}

/// A directory with a certificate from a test CA (`cert.pem`, `key.pem`, `ca.pem`), made by
/// tests/interop/certs.py.
pub(crate) fn test_ca_certificates(installed: &Path) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let status = Command::new(installed.join("venv/bin/python"))
        .arg(scripts.join("certs.py"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "certificates for the peer");
    dir
}

/// Starts a peer on the certificate already in `dir` (`cert.pem`, `key.pem`).
fn start_peer_in(installed: &Path, peer: &str, mode: &str, dir: tempfile::TempDir) -> Peer {
    launch(installed, peer, mode, dir, &[])
}

/// Starts `peer` ("aiosmtpd", or nodemailer's "smtp-server") in `mode` on the certificate in
/// `dir`, with the interop account and the faults in `env` (see the peers' scripts); waits
/// for it to say `READY <port>`.
pub(crate) fn launch(
    installed: &Path,
    peer: &str,
    mode: &str,
    dir: tempfile::TempDir,
    env: &[(&str, &str)],
) -> Peer {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let mut command = match peer {
        "aiosmtpd" => {
            let mut c = Command::new(installed.join("venv/bin/python"));
            c.arg(folder.join("aiosmtpd_peer.py"));
            c
        }
        _ => {
            let mut c = Command::new("node");
            c.arg(folder.join("smtp_server_peer.js"))
                .env("NODE_PATH", installed.join("node/node_modules"));
            c
        }
    };
    command
        .arg(dir.path())
        .arg(mode)
        .env("PEER_USER", USER)
        .env("PEER_PASSWORD", PASSWORD)
        .envs(env.iter().copied());
    let (child, ready) = spawn_until_ready(command, peer);
    let port = ready
        .parse()
        .unwrap_or_else(|_| panic!("{peer} said READY without a port: {ready:?}"));
    Peer { child, port, dir }
}

/// Starts a peer and waits for its first line, `READY <where>`; returns `<where>`.
fn spawn_until_ready(mut command: Command, peer: &str) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{peer} starts: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(ready) = line.strip_prefix("READY ") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{peer} did not say READY: {line:?}");
    };
    (child, ready.trim().to_owned())
}

/// Where the peers are installed, an app, and the rep whose channels point at them; `None`
/// (said on stderr) when the interop peers were not requested.
async fn rep_for_peers() -> Option<(PathBuf, TestApp, TestUser)> {
    let Some(installed) = interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return None;
    };
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let rep = app.create_user(&acme, USER, "rep", None).await;
    Some((installed, app, rep))
}

/// The rep's mailbox channel on `peer` in `mode`, trusting `ca_pem` (saved only if its login
/// works when `verify`), and the report of its test with a test message: (id, report).
async fn channel_on(
    app: &TestApp,
    rep: &TestUser,
    peer: &Peer,
    label: &str,
    mode: &str,
    ca_pem: &str,
    verify: bool,
) -> (String, Value) {
    let body = json!({
        "name": label, "kind": "smtp", "scope": "mailbox", "from_address": USER,
        "smtp": {"host": "localhost", "port": peer.port, "security": mode, "auth": "plain",
                 "username": USER, "password": PASSWORD, "ca_pem": ca_pem,
                 "command_timeout_secs": 10}
    });
    let path = if verify {
        "/v1/channels?verify=true"
    } else {
        "/v1/channels"
    };
    let res = app.post(path, &rep.token, body).await;
    let id = expect_json(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            &format!("/v1/channels/{id}/test"),
            &rep.token,
            json!({"send_to": "lead@example.com"}),
        )
        .await;
    (id, expect_json(res, StatusCode::OK).await)
}

#[tokio::test]
async fn the_tester_works_against_aiosmtpd_and_nodemailer_smtp_server() {
    let Some((installed, app, rep)) = rep_for_peers().await else {
        return;
    };

    for peer_name in ["aiosmtpd", "smtp-server"] {
        for (mode, security) in [("starttls", "starttls"), ("tls", "tls")] {
            let peer = start_peer(&installed, peer_name, mode);
            let label = format!("{peer_name} {mode}");
            let (id, result) =
                channel_on(&app, &rep, &peer, &label, security, &peer.ca_pem(), true).await;
            assert_eq!(result["ok"], true, "{label}: {result}");
            let messages = {
                let mut waited = 0;
                loop {
                    let m = peer.messages();
                    if !m.is_empty() || waited > 50 {
                        break m;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    waited += 1;
                }
            };
            assert_eq!(messages.len(), 1, "{label}");
            assert_eq!(messages[0]["mail_from"], USER, "{label}");
            assert_eq!(
                messages[0]["rcpt_tos"],
                json!(["lead@example.com"]),
                "{label}"
            );
            assert!(
                messages[0]["data"]
                    .as_str()
                    .unwrap()
                    .contains("Switchboard channel test"),
                "{label}"
            );

            // A wrong password is an auth failure with the peer's own 535.
            let res = app
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/channels/{id}/credentials"),
                    &rep.token,
                    Some(json!({"password": "wrong"})),
                )
                .await;
            let problem = expect_json(res, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(
                problem["test"]["classification"], "auth",
                "{label}: {problem}"
            );
            let auth = problem["test"]["stages"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            assert_eq!(auth["stage"], "auth", "{label}");
            assert_eq!(auth["code"], 535, "{label}: {auth}");
        }
    }
}

#[tokio::test]
async fn a_self_signed_certificate_made_by_openssl_is_trusted_when_pasted() {
    let Some((installed, app, rep)) = rep_for_peers().await else {
        return;
    };
    for peer_name in ["aiosmtpd", "smtp-server"] {
        for mode in ["starttls", "tls"] {
            // What an admin does for their own server: `openssl req -x509` (CA:TRUE), the
            // files the peers read, then the certificate pasted into the channel.
            let dir = tempfile::TempDir::new().unwrap();
            let own = crate::openssl_certs::self_signed(dir.path(), "cert");
            std::fs::write(dir.path().join("key.pem"), &own.key).unwrap();
            let peer = start_peer_in(&installed, peer_name, mode, dir);
            let label = format!("{peer_name} {mode}");
            let (_, result) = channel_on(&app, &rep, &peer, &label, mode, &own.cert, true).await;
            assert_eq!(result["ok"], true, "{label}: {result}");
        }
    }
}

/// The certificates admins make with the `openssl` command line, each served by both peers
/// in both TLS modes: a leaf from a private CA (the CA pasted) is trusted; an expired one and
/// one for another name are refused at the TLS stage, each with its own hint, the presented
/// certificate described, and nothing sent.
#[tokio::test]
async fn certificates_from_a_private_ca_made_by_openssl_are_judged_like_a_person_would() {
    let Some((installed, app, rep)) = rep_for_peers().await else {
        return;
    };
    let ca = crate::openssl_certs::PrivateCa::new();
    let san = crate::openssl_certs::SAN;
    let cases = [
        ("issued", ca.current("issued"), None),
        (
            "expired",
            ca.issue("expired", san, "20200101000000Z", "20210101000000Z"),
            Some(("expired", "expired on 2021-01-01")),
        ),
        (
            "wrong name",
            ca.current_for("wrong", "subjectAltName=DNS:mail.other.example"),
            Some(("wrong_name", "mail.other.example")),
        ),
    ];
    for peer_name in ["aiosmtpd", "smtp-server"] {
        for mode in ["starttls", "tls"] {
            for (kind, pem, refusal) in &cases {
                let dir = tempfile::TempDir::new().unwrap();
                std::fs::write(dir.path().join("cert.pem"), &pem.cert).unwrap();
                std::fs::write(dir.path().join("key.pem"), &pem.key).unwrap();
                let peer = start_peer_in(&installed, peer_name, mode, dir);
                let label = format!("{peer_name} {mode} {kind}");
                let (_, report) = channel_on(&app, &rep, &peer, &label, mode, &ca.pem, false).await;
                match refusal {
                    None => assert_eq!(report["ok"], true, "{label}: {report:#}"),
                    Some((problem, needle)) => {
                        assert_eq!(report["ok"], false, "{label}: {report:#}");
                        let tls = report["stages"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|s| s["stage"] == "tls")
                            .unwrap_or_else(|| panic!("{label}: no tls stage: {report:#}"));
                        assert_eq!(tls["ok"], false, "{label}: {tls:#}");
                        assert_eq!(tls["certificate"]["problem"], *problem, "{label}: {tls:#}");
                        let hint = tls["hint"].as_str().unwrap();
                        assert!(hint.contains(needle), "{label}: {hint}");
                        assert_eq!(
                            tls["certificate"]["sha256"],
                            crate::openssl_certs::openssl_fingerprint(
                                tempfile::TempDir::new().unwrap().path(),
                                &pem.cert
                            ),
                            "{label}: the fingerprint openssl prints"
                        );
                        assert!(peer.messages().is_empty(), "{label}: nothing was sent");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// "Connect Gmail" against oauth2-mock-server
// ---------------------------------------------------------------------------------------------

/// Where the service says it lives (its redirect URI); the test browser maps it to the app.
const PUBLIC_URL: &str = "http://switchboard.test";
const MAILBOX: &str = "ann.rep@gmail.com";
const CLIENT_ID: &str = "1234567890-interop.apps.googleusercontent.com";
/// With characters client_secret_basic must form-encode before base64 (RFC 6749 §2.3.1).
const CLIENT_SECRET: &str = "GOCSPX-interop+secret/&=";
/// `expires_in` of the peer's access tokens: with Switchboard's minute of margin a token is
/// due for refresh one second after it was issued.
const ACCESS_TOKEN_LIFETIME_SECS: u64 = 61;
const PATIENCE: Duration = Duration::from_secs(30);

/// oauth2-mock-server, with what tests/interop/oauth_peer.js adds to it.
struct OAuthPeer {
    child: Child,
    base_url: String,
    dir: tempfile::TempDir,
}

impl Drop for OAuthPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OAuthPeer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The requests to `endpoint` the peer answered, as it logged them, in order (complete
    /// lines only: the peer may be appending one).
    fn requests(&self, endpoint: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["endpoint"] == endpoint)
            .collect()
    }

    fn token_requests(&self, grant_type: &str) -> Vec<Value> {
        self.requests("token")
            .into_iter()
            .filter(|r| r["grant_type"] == grant_type)
            .collect()
    }

    /// Revokes every grant issued so far, as a user removing the app at Google does: the
    /// peer's next answer to a refresh is `invalid_grant`.
    fn revoke_all_grants(&self) {
        std::fs::write(self.dir.path().join("revoke"), b"").unwrap();
    }
}

fn start_oauth_peer(installed: &Path) -> OAuthPeer {
    let dir = tempfile::TempDir::new().unwrap();
    let mut command = Command::new("node");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/oauth_peer.js"))
        .arg(dir.path())
        .env("NODE_PATH", installed.join("node/node_modules"))
        .env("PEER_CLIENT_ID", CLIENT_ID)
        .env("PEER_CLIENT_SECRET", CLIENT_SECRET)
        .env("PEER_EMAIL", MAILBOX)
        .env("PEER_EXPIRES_IN", ACCESS_TOKEN_LIFETIME_SECS.to_string());
    let (child, base_url) = spawn_until_ready(command, "oauth2-mock-server");
    OAuthPeer {
        child,
        base_url,
        dir,
    }
}

/// The rep's browser, which shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The rep clicks "Connect Gmail" (or "Reconnect") and the authorization server sends the
/// browser back at once; returns the callback URL, pointed at the test app.
async fn authorize(app: &TestApp, rep: &TestUser, body: Value) -> String {
    let started = expect_json(
        app.post("/v1/oauth/google/start", &rep.token, body).await,
        StatusCode::OK,
    )
    .await;
    let url = started["authorize_url"].as_str().unwrap();
    let consent = browser().get(url).send().await.unwrap();
    assert_eq!(
        consent.status(),
        StatusCode::FOUND,
        "{:?}",
        consent.text().await
    );
    let location = consent.headers()["location"].to_str().unwrap().to_owned();
    let rest = location
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("the server sends the browser to our redirect URI: {location}"));
    format!("{}{rest}", app.address)
}

/// The browser lands on the callback; returns the status and the page.
async fn land(callback: &str) -> (StatusCode, String) {
    let res = browser().get(callback).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn gmail_channel(app: &TestApp, rep: &TestUser) -> Value {
    app.gmail_channel(&rep.token).await
}

async fn send(app: &TestApp, rep: &TestUser, subject: &str) -> String {
    let accepted = expect_json(
        app.post(
            "/v1/messages",
            &rep.token,
            json!({"from": MAILBOX, "to": ["buyer@example.com"], "subject": subject, "text": "Hello"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    accepted["id"].as_str().unwrap().to_owned()
}

/// Lets the access token come within Switchboard's refresh margin.
async fn until_the_token_is_due() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn the_gmail_connection_works_against_oauth2_mock_server() {
    let Some(installed) = interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return;
    };
    let peer = start_oauth_peer(&installed);
    // The Gmail API is not oauth2-mock-server's: our fake serves it and takes the peer's tokens.
    let gmail = FakeGoogle::start(FakeGoogleConfig {
        account_email: MAILBOX.into(),
        ..FakeGoogleConfig::default()
    })
    .await;
    gmail.accept_any_access_token(true);
    let (auth, token, revoke, userinfo, api) = (
        peer.url("/authorize"),
        peer.url("/token"),
        peer.url("/revoke"),
        peer.url("/userinfo"),
        gmail.gmail_api_url(),
    );
    let app = spawn_app_with(&[
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC_URL),
        ("SWITCHBOARD_GOOGLE_CLIENT_ID", CLIENT_ID),
        ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", CLIENT_SECRET),
        ("SWITCHBOARD_GOOGLE_AUTH_URL", &auth),
        ("SWITCHBOARD_GOOGLE_TOKEN_URL", &token),
        ("SWITCHBOARD_GOOGLE_REVOKE_URL", &revoke),
        ("SWITCHBOARD_GOOGLE_USERINFO_URL", &userinfo),
        ("SWITCHBOARD_GOOGLE_GMAIL_API_URL", &api),
        ("SWITCHBOARD_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_RETRY_MAX", "2s"),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
    ])
    .await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "ann@acme.test", "rep", None).await;

    // Connect: authorization with PKCE S256, the code exchanged with the verifier and client
    // credentials, the mailbox from userinfo.
    let callback = authorize(&app, &rep, json!({})).await;
    let (status, page) = land(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let channel = gmail_channel(&app, &rep).await;
    assert_eq!(channel["status"], "active", "{channel}");
    assert_eq!(channel["from_address"], MAILBOX);
    let authorization = &peer.requests("authorize")[0];
    assert_eq!(authorization["client_id"], CLIENT_ID, "{authorization}");
    assert_eq!(authorization["code_challenge_method"], "S256");
    assert_eq!(authorization["has_code_challenge"], true);
    assert_eq!(authorization["access_type"], "offline");
    assert!(
        authorization["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/gmail.send"),
        "{authorization}"
    );
    let exchanges = peer.token_requests("authorization_code");
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0]["status"], 200, "{}", exchanges[0]);
    assert_eq!(exchanges[0]["client_auth"], "basic");
    assert_eq!(exchanges[0]["has_code_verifier"], true);
    assert_eq!(
        exchanges[0]["redirect_uri"],
        format!("{PUBLIC_URL}/oauth/google/callback")
    );
    assert_eq!(peer.requests("userinfo")[0]["status"], 200);

    // Refresh at expiry, twice: the peer rotates refresh tokens and refuses a used one, so the
    // second refresh works only if the first one's new refresh token was kept.
    for n in 1..=2 {
        until_the_token_is_due().await;
        let id = send(&app, &rep, &format!("after refresh {n}")).await;
        app.wait_for_message(&rep.token, &id, "sent", PATIENCE)
            .await;
        let refreshes = peer.token_requests("refresh_token");
        assert_eq!(refreshes.len(), n, "{refreshes:?}");
        let refresh = &refreshes[n - 1];
        assert_eq!(refresh["status"], 200, "{refresh}");
        assert_eq!(refresh["client_auth"], "basic");
        assert_eq!(refresh["refresh_token_issued"], true);
        let sent = gmail.sent_messages();
        assert_eq!(sent.len(), n);
        assert_eq!(
            sent[n - 1].access_token,
            refresh["access_token"].as_str().unwrap(),
            "sent with the access token of this refresh"
        );
    }

    // The user revokes the grant at the server: the next refresh gets invalid_grant, the
    // channel needs the rep, and mail waits for them.
    peer.revoke_all_grants();
    until_the_token_is_due().await;
    let held = send(&app, &rep, "while revoked").await;
    let view = app
        .wait_for_message(&rep.token, &held, "held", PATIENCE)
        .await;
    assert_eq!(view["hold_reason"], "channel_unavailable", "{view:#}");
    let broken = gmail_channel(&app, &rep).await;
    assert_eq!(broken["status"], "needs_reauth", "{broken}");
    assert_eq!(broken["status_cause"], "token_revoked", "{broken}");
    let refreshes = peer.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 3, "{refreshes:?}");
    assert_eq!(refreshes[2]["status"], 400);
    assert_eq!(refreshes[2]["error"], "invalid_grant");
    assert_eq!(gmail.sent_messages().len(), 2);

    // Reconnecting the same channel (the mailbox as login hint) releases the held message.
    let callback = authorize(&app, &rep, json!({"channel_id": channel["id"]})).await;
    assert_eq!(peer.requests("authorize")[1]["login_hint"], MAILBOX);
    let (status, page) = land(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("held message"), "{page}");
    let sent = app
        .wait_for_message(&rep.token, &held, "sent", PATIENCE)
        .await;
    assert_eq!(sent["channel_id"], channel["id"]);
    assert_eq!(gmail_channel(&app, &rep).await["status"], "active");

    // Disconnecting revokes the grant at the server (RFC 7009: the refresh token, as a form).
    let id = channel["id"].as_str().unwrap();
    let answer = expect_json(
        app.delete(&format!("/v1/channels/{id}/oauth"), &rep.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["revoked_at_google"], true);
    // The peer reads the revocation's body after answering it.
    let mut revocations = peer.requests("revoke");
    for _ in 0..50 {
        if !revocations.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        revocations = peer.requests("revoke");
    }
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0]["known_token"], true, "{}", revocations[0]);
    assert_eq!(revocations[0]["kind"], "refresh");
    assert_eq!(
        revocations[0]["content_type"],
        "application/x-www-form-urlencoded"
    );
    let after = gmail_channel(&app, &rep).await;
    assert_eq!(after["status"], "needs_reauth");
    assert_eq!(after["status_cause"], "disconnected");
}
