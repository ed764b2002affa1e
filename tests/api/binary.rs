//! The real binary, as a newcomer runs it: no configuration but a data directory and a port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestDatabase, expect_json};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn command(data_dir: &Path, db: &TestDatabase) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.env_clear()
        .env("SWITCHBOARD_DATA_DIR", data_dir)
        .env("SWITCHBOARD_BIND", "127.0.0.1:0")
        .env("SWITCHBOARD_HTTP_WORKERS", "1")
        .env("RUST_LOG", "debug");
    if let Some(url) = db.url() {
        cmd.env("SWITCHBOARD_DATABASE_URL", url);
        // PostgreSQL refuses to start without configured master keys; SQLite generates them.
        cmd.env(
            "SWITCHBOARD_MASTER_KEYS_FILE",
            data_dir.join("test-master-keys"),
        );
        if !data_dir.join("test-master-keys").exists() {
            std::fs::create_dir_all(data_dir).unwrap();
            switchboard::vault::keyring::write_key_file(
                &data_dir.join("test-master-keys"),
                &[switchboard::vault::MasterKey::generate("k1")],
            )
            .unwrap();
        }
    }
    cmd
}

fn serve(data_dir: &Path, db: &TestDatabase) -> Running {
    serve_with(command(data_dir, db))
}

/// Starts `serve` with this command's environment and waits for its `listening` line.
pub(crate) fn serve_with(mut cmd: Command) -> Running {
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1)
                && line.contains("listening")
            {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no `listening` line; log:\n{}", log.lock().unwrap()));
    Running {
        child,
        address: format!("http://{address}"),
        log,
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_writes_an_operator_token_file_that_creates_tenants_and_is_never_logged() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let db = TestDatabase::fresh();
    let client = reqwest::Client::new();

    let first = serve(&data_dir, &db);
    let token_file = data_dir.join("operator-token");
    let operator = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600);
    if !db.is_postgres() {
        assert!(data_dir.join("switchboard.db").exists());
        #[cfg(unix)]
        assert_eq!(mode(&data_dir.join("master-keys")), 0o600);
    }

    let res = client
        .post(format!("{}/v1/tenants", first.address))
        .bearer_auth(&operator)
        .json(&json!({"name": "Acme", "admin_email": "boss@acme.test"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(res, StatusCode::CREATED).await;
    let admin = created["admin"]["token"].as_str().unwrap().to_owned();
    let res = client
        .get(format!("{}/v1/me", first.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::OK).await;

    let bind = first.address.trim_start_matches("http://");
    let out = command(&data_dir, &db)
        .env("SWITCHBOARD_BIND", bind)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "healthcheck {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let log = first.log.lock().unwrap().clone();
    assert!(
        log.contains("operator-token"),
        "the log says where the token is:\n{log}"
    );
    assert!(
        log.contains("request finished"),
        "requests are logged:\n{log}"
    );
    assert!(!log.contains(&operator), "operator token logged:\n{log}");
    assert!(!log.contains(&admin), "admin token logged:\n{log}");
    if !db.is_postgres() {
        assert!(
            log.contains("MASTER KEYS ARE STORED NEXT TO THE DATABASE"),
            "{log}"
        );
    }
    drop(first);

    // A second start mints nothing new and the first token still works.
    std::fs::remove_file(&token_file).unwrap();
    let second = serve(&data_dir, &db);
    assert!(!token_file.exists(), "a token was minted again");
    let res = client
        .get(format!("{}/v1/tenants", second.address))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(res, StatusCode::OK)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn migrate_creates_the_schema_and_a_lost_operator_token_can_be_replaced() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let db = TestDatabase::fresh();
    let out = command(&data_dir, &db).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !first.starts_with("0 ") && first.contains("migration(s) applied"),
        "{first}"
    );
    let out = command(&data_dir, &db).arg("migrate").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 migration(s) applied"));

    let out = command(&data_dir, &db)
        .args(["operator-token", "--revoke-others"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("sb_") && token.len() > 40, "{token}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));

    let out = command(&data_dir, &db)
        .args([
            "tenant",
            "create",
            "--name",
            "Acme",
            "--admin-email",
            "boss@acme.test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        created["admin"]["token"]
            .as_str()
            .unwrap()
            .starts_with("sb_")
    );
}

#[test]
fn a_bad_database_url_fails_fast_with_a_clear_message_and_no_secret() {
    let dir = tempfile::TempDir::new().unwrap();
    let started = Instant::now();
    let out = Command::new(BINARY)
        .env_clear()
        .env("SWITCHBOARD_DATA_DIR", dir.path())
        .env(
            "SWITCHBOARD_DATABASE_URL",
            "postgres://sb:Canary-Db-Pw@127.0.0.1:1/switchboard",
        )
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it hung instead of failing"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("Canary-Db-Pw"), "{stderr}");

    let out = Command::new(BINARY)
        .env_clear()
        .env("SWITCHBOARD_DATABASE_URL", "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_DATABASE_URL"));
}

#[test]
fn instances_migrating_the_same_database_at_once_all_succeed() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let db = TestDatabase::fresh();
    std::fs::create_dir_all(&data_dir).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            command(&data_dir, &db)
                .arg("migrate")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        applied.push(
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    applied.sort();
    assert_eq!(
        &applied[..2],
        ["0", "0"],
        "one instance applied them all: {applied:?}"
    );
    assert_ne!(applied[2], "0", "{applied:?}");
}

fn run(data_dir: &Path, db: &TestDatabase, args: &[&str]) -> (bool, String, String) {
    let out = command(data_dir, db).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        // The status first: a process killed by a signal prints nothing of its own.
        format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test]
async fn keys_rotate_and_retire_on_the_command_line_reach_a_running_service() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let db = TestDatabase::fresh();
    let client = reqwest::Client::new();
    let service = serve(&data_dir, &db);
    let operator = std::fs::read_to_string(data_dir.join("operator-token"))
        .unwrap()
        .trim()
        .to_owned();
    let create = |name: &str| {
        client
            .post(format!("{}/v1/tenants", service.address))
            .bearer_auth(&operator)
            .json(&json!({"name": name, "admin_email": format!("admin@{}.test", name.to_lowercase())}))
            .send()
    };
    expect_json(create("Acme").await.unwrap(), StatusCode::CREATED).await;
    let key_file = if db.is_postgres() {
        data_dir.join("test-master-keys")
    } else {
        data_dir.join("master-keys")
    };
    let original_keys = std::fs::read_to_string(&key_file).unwrap();

    let (ok, stdout, stderr) = run(&data_dir, &db, &["keys", "rotate"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("active master key `k2`: 1 data key(s) re-wrapped"),
        "{stdout}"
    );
    let (ok, _, stderr) = run(&data_dir, &db, &["keys", "retire", "k2"]);
    assert!(!ok && stderr.contains("active master key"), "{stderr}");
    let (ok, stdout, stderr) = run(&data_dir, &db, &["keys", "retire", "k1"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("`k1` retired"), "{stdout}");
    let keys_now = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        keys_now.contains("k2:") && !keys_now.contains("k1:"),
        "the key file still holds k1"
    );

    // The running service picked up the new key file: a new tenant's key is wrapped by k2.
    expect_json(create("Globex").await.unwrap(), StatusCode::CREATED).await;
    let (ok, stdout, stderr) = run(&data_dir, &db, &["keys", "list"]);
    assert!(ok, "{stderr}");
    let k2_line = stdout
        .lines()
        .find(|l| l.starts_with("k2"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        k2_line.contains("active") && k2_line.trim_end().ends_with('2'),
        "{stdout}"
    );

    let log = service.log.lock().unwrap().clone();
    for entry in original_keys
        .lines()
        .chain(keys_now.lines())
        .filter(|l| l.contains(':') && !l.starts_with('#'))
    {
        let material = entry.split(':').nth(1).unwrap();
        assert!(
            !log.contains(material) && !stdout.contains(material),
            "key material leaked"
        );
    }
    drop(service);
    // A restart with only k2 finds every data key openable.
    let again = serve(&data_dir, &db);
    let res = client
        .get(format!("{}/readyz", again.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Issue #3's canary: a unique password goes through every channel endpoint and error path
/// of the real binary; it must appear in no response, no log line (debug level) and nowhere
/// in the database.
#[tokio::test]
async fn a_canary_password_never_leaves_the_vault() {
    use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let db = TestDatabase::fresh();
    let canary = format!("Canary-{}", uuid::Uuid::new_v4().simple());
    let user = "rep@acme.test";
    let smtp = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(user.to_owned(), canary.clone())],
        ..SmtpServerConfig::default()
    })
    .await;

    let service = {
        let mut cmd = command(&data_dir, &db);
        cmd.env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8,::1");
        serve_with(cmd)
    };
    let client = reqwest::Client::new();
    let base = service.address.clone();
    let operator = std::fs::read_to_string(data_dir.join("operator-token"))
        .unwrap()
        .trim()
        .to_owned();
    let mut bodies = Vec::new();
    let mut call = async |method: reqwest::Method,
                          path: &str,
                          token: &str,
                          body: Option<serde_json::Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        bodies.push(text.clone());
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let (_, tenant) = call(
        reqwest::Method::POST,
        "/v1/tenants",
        &operator,
        Some(json!({"name": "Acme", "admin_email": "admin@acme.test"})),
    )
    .await;
    let admin = tenant["admin"]["token"].as_str().unwrap().to_owned();
    call(
        reqwest::Method::PATCH,
        "/v1/tenant",
        &admin,
        Some(json!({"domains": ["acme.test"]})),
    )
    .await;
    let channel = |password: &str| {
        json!({"name": "Mailbox", "kind": "smtp", "scope": "mailbox", "from_address": user,
               "smtp": {"host": "localhost", "port": smtp.port(), "security": "starttls", "auth": "plain",
                        "username": user, "password": password, "ca_pem": smtp.ca_pem()}})
    };
    // Error paths first: a wrong type, a refused scope, a failed verification with the canary.
    let mut wrong_type = channel(&canary);
    wrong_type["smtp"]["port"] = json!(canary);
    call(
        reqwest::Method::POST,
        "/v1/channels",
        &admin,
        Some(wrong_type),
    )
    .await;
    let mut team_owned = channel(&canary);
    team_owned["owner"] = json!({"tenant": true});
    call(
        reqwest::Method::POST,
        "/v1/channels",
        &admin,
        Some(team_owned),
    )
    .await;
    smtp.set_password(user, "something-else");
    let (status, _) = call(
        reqwest::Method::POST,
        "/v1/channels?verify=true",
        &admin,
        Some(channel(&canary)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    smtp.set_password(user, &canary);
    let (status, created) = call(
        reqwest::Method::POST,
        "/v1/channels?verify=true",
        &admin,
        Some(channel(&canary)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (reqwest::Method::GET, "/v1/channels".to_owned(), None),
        (reqwest::Method::GET, format!("/v1/channels/{id}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/channels/{id}/test"),
            Some(json!({"send_to": "lead@example.com"})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/channels/{id}"),
            Some(json!({"smtp": {"password": canary}})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/channels/{id}"),
            Some(json!({"name": "Renamed"})),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/channels/{id}/credentials"),
            Some(json!({"password": format!("{canary}-typo")})),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/channels/{id}/credentials"),
            Some(json!({"password": canary})),
        ),
        (reqwest::Method::GET, "/openapi.json".to_owned(), None),
    ] {
        call(method, &path, &admin, body).await;
    }
    assert!(
        smtp.wait_for_messages(1, Duration::from_secs(5))
            .await
            .len()
            == 1,
        "the test send arrived"
    );

    for body in &bodies {
        assert!(
            !body.contains(&canary),
            "a response contains the canary: {body}"
        );
    }
    let log = service.log.lock().unwrap().clone();
    assert!(
        log.contains("channel tested"),
        "debug logs were captured:\n{log}"
    );
    assert!(
        !log.contains(&canary),
        "the log contains the canary:\n{log}"
    );
    drop(service);
    if !db.is_postgres() {
        for file in ["switchboard.db", "switchboard.db-wal"] {
            let bytes = std::fs::read(data_dir.join(file)).unwrap_or_default();
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{file} contains the canary"
            );
        }
    }
}
