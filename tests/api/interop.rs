//! The channel tester against SMTP servers we did not write: Python's aiosmtpd and Node's
//! smtp-server (nodemailer), each with STARTTLS and implicit TLS and a real password check.
//! Runs when SWITCHBOARD_INTEROP=1 (the interop leg of .ci/run installs the peers, see
//! tests/interop/); SWITCHBOARD_INTEROP_DIR says where they were installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{expect_json, spawn_app};

const USER: &str = "rep@acme.test";
const PASSWORD: &str = "Interop-Password-42";

struct Peer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    /// The messages the peer accepted, as it recorded them.
    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn interop_dir() -> Option<PathBuf> {
    if std::env::var("SWITCHBOARD_INTEROP").as_deref() != Ok("1") {
        return None;
    }
    let dir =
        std::env::var("SWITCHBOARD_INTEROP_DIR").expect("SWITCHBOARD_INTEROP_DIR (see .ci/run)");
    Some(PathBuf::from(dir))
}

fn start_peer(installed: &Path, peer: &str, mode: &str) -> Peer {
    let dir = tempfile::TempDir::new().unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let python = installed.join("venv/bin/python");
    let status = Command::new(&python)
        .arg(scripts.join("certs.py"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "certificates for the peer");
    let mut command = match peer {
        "aiosmtpd" => {
            let mut c = Command::new(&python);
            c.arg(scripts.join("aiosmtpd_peer.py"));
            c
        }
        _ => {
            let mut c = Command::new("node");
            c.arg(scripts.join("smtp_server_peer.js"))
                .env("NODE_PATH", installed.join("node/node_modules"));
            c
        }
    };
    let mut child = command
        .arg(dir.path())
        .arg(mode)
        .env("PEER_USER", USER)
        .env("PEER_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{peer} starts: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{peer} did not say READY: {line:?}"));
    Peer { child, port, dir }
}

#[tokio::test]
async fn the_tester_works_against_aiosmtpd_and_nodemailer_smtp_server() {
    let Some(installed) = interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return;
    };
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    expect_json(
        app.patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({"domains": ["acme.test"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let rep = app.create_user(&acme, USER, "rep", None).await;

    for peer_name in ["aiosmtpd", "smtp-server"] {
        for (mode, security) in [("starttls", "starttls"), ("tls", "tls")] {
            let peer = start_peer(&installed, peer_name, mode);
            let label = format!("{peer_name} {mode}");
            let body = json!({
                "name": label, "kind": "smtp", "scope": "mailbox", "from_address": USER,
                "smtp": {"host": "localhost", "port": peer.port, "security": security, "auth": "plain",
                         "username": USER, "password": PASSWORD, "ca_pem": peer.ca_pem(),
                         "command_timeout_secs": 10}
            });
            let res = app.post("/v1/channels?verify=true", &rep.token, body).await;
            let channel = expect_json(res, StatusCode::CREATED).await;
            let id = channel["id"].as_str().unwrap();
            let res = app
                .post(
                    &format!("/v1/channels/{id}/test"),
                    &rep.token,
                    json!({"send_to": "lead@example.com"}),
                )
                .await;
            let result = expect_json(res, StatusCode::OK).await;
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
