//! `spawn_app`: one helper every test uses, so tests read like user stories.

use std::collections::HashMap;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::startup::Application;
use tempfile::TempDir;

use crate::dns_server::TestDns;

/// Where a test's data lives: a SQLite file in its temp dir, or its own PostgreSQL schema.
pub struct TestDatabase {
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn fresh() -> Self {
        let Ok(base) = std::env::var("SWITCHBOARD_TEST_DATABASE_URL") else {
            return Self { postgres: None };
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&base)
            .unwrap_or_else(|e| panic!("SWITCHBOARD_TEST_DATABASE_URL: cannot connect: {e}"));
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        Self {
            postgres: Some((base, schema)),
        }
    }

    /// The `SWITCHBOARD_DATABASE_URL` for this database, if not the default SQLite file.
    pub fn url(&self) -> Option<String> {
        self.postgres.as_ref().map(|(base, schema)| {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-csearch_path%3D{schema}")
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(base)
        {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// A fresh master key entry (`id:base64`) for SWITCHBOARD_MASTER_KEYS.
pub fn master_key(id: &str) -> String {
    use secrecy::ExposeSecret;
    switchboard::vault::MasterKey::generate(id)
        .to_config_entry()
        .expose_secret()
        .to_owned()
}

pub fn random_secret() -> String {
    format!(
        "op_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Everything a test service is started from, except its master keys.
pub struct Setup {
    /// Owns the temporary directory: dropping the setup removes it.
    _dir: TempDir,
    /// The DNS server the app's domain checks ask (`SWITCHBOARD_DNS_SERVERS`).
    pub dns: std::sync::Arc<TestDns>,
    pub data_dir: PathBuf,
    pub db: TestDatabase,
    pub operator_token: String,
    /// More configuration, e.g. `SWITCHBOARD_SHARED_POOL_URL`.
    extra: Vec<(String, String)>,
    /// The app's scheduling clock: `app.clock.advance(..)` moves it (and a restarted app's).
    pub clock: switchboard::clock::Clock,
}

impl Setup {
    /// The environment the service runs with.
    fn env(&self, master_keys: &str) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("SWITCHBOARD_MASTER_KEYS".to_owned(), master_keys.to_owned()),
            ("SWITCHBOARD_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "SWITCHBOARD_DATA_DIR".to_owned(),
                self.data_dir.display().to_string(),
            ),
            (
                "SWITCHBOARD_OPERATOR_TOKEN".to_owned(),
                self.operator_token.clone(),
            ),
            ("SWITCHBOARD_HTTP_WORKERS".to_owned(), "1".to_owned()),
            ("SWITCHBOARD_DNS_SERVERS".to_owned(), self.dns.servers()),
            // A test's DNS server answers at once or, for a fault, never: waiting 5 s each
            // time would only slow the suite.
            ("SWITCHBOARD_DNS_TIMEOUT".to_owned(), "1s".to_owned()),
            ("SWITCHBOARD_DB_POOL_SIZE".to_owned(), "4".to_owned()),
            // The test SMTP servers listen on loopback, which channels may not reach by default.
            (
                "SWITCHBOARD_OUTBOUND_ALLOW".to_owned(),
                "127.0.0.0/8,::1".to_owned(),
            ),
        ]);
        if let Some(url) = self.db.url() {
            env.insert("SWITCHBOARD_DATABASE_URL".to_owned(), url);
        }
        env.extend(self.extra.iter().cloned());
        env
    }

    fn config(&self, master_keys: &str) -> Config {
        let env = self.env(master_keys);
        let mut config = Config::from_lookup(|name| env.get(name).cloned()).expect("test config");
        config.clock = self.clock.clone();
        config
    }

    /// Starts the app with these master keys; a refusal comes back with its message.
    pub async fn start_with_keys(self, master_keys: &str) -> Result<TestApp, (String, Setup)> {
        let app = match Application::build(self.config(master_keys)).await {
            Ok(app) => app,
            Err(e) => return Err((e.to_string(), self)),
        };
        let address = format!("http://{}", app.local_addr());
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(TestApp {
            task,
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A request that hangs fails its test instead of stalling the suite.
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
            master_keys: master_keys.to_owned(),
            handle,
            setup: self,
        })
    }
}

/// A running app.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub master_keys: String,
    handle: ServerHandle,
    /// The server and, after it, the delivery loop finishing its in-flight sends.
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    setup: Setup,
}

impl std::ops::Deref for TestApp {
    type Target = Setup;

    /// `app.db`, `app.data_dir`, `app.operator_token` read through to the setup.
    fn deref(&self) -> &Setup {
        &self.setup
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The app with more configuration, e.g. `SWITCHBOARD_SHARED_POOL_URL`.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let dir = TempDir::new().unwrap();
    let setup = Setup {
        data_dir: dir.path().join("data"),
        _dir: dir,
        dns: std::sync::Arc::new(TestDns::start().await),
        db: TestDatabase::fresh(),
        operator_token: random_secret(),
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        clock: switchboard::clock::Clock::system(),
    };
    setup
        .start_with_keys(&master_key("k1"))
        .await
        .unwrap_or_else(|(e, _)| panic!("the app starts: {e}"))
}

/// An app that retries fast, with the tenant Acme and its rep Ann (`ann@acme.test`), for
/// the stories of a rep's own mailbox (Connect Gmail, Connect Microsoft).
pub async fn app_with_rep(extra: &[(&str, &str)]) -> (TestApp, TestTenant, TestUser) {
    let mut env = vec![
        ("SWITCHBOARD_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_RETRY_MAX", "2s"),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, "ann@acme.test", "rep", None).await;
    (app, acme, rep)
}

pub struct Sibling {
    pub address: String,
}

/// A tenant created through the API, with its first admin's credentials.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub admin_id: String,
    pub admin_token: String,
    pub admin_token_id: String,
}

/// A user created through the API, with a token of their own.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub token: String,
    pub token_id: String,
}

impl TestApp {
    /// Stops the server gracefully and starts a new one on the same data and database.
    pub async fn restart(self) -> TestApp {
        let keys = self.master_keys.clone();
        self.restart_with_keys(&keys).await
    }

    /// Stops the app and starts it again on the same data with these master keys.
    pub async fn restart_with_keys(self, master_keys: &str) -> TestApp {
        self.stop()
            .await
            .start_with_keys(master_keys)
            .await
            .unwrap_or_else(|(e, _)| panic!("restart: {e}"))
    }

    /// Stops the server gracefully, keeping its data for a later start.
    pub async fn stop(self) -> Setup {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.setup
    }

    /// Follows a message until it reaches `status` (or the time is up), returning its view.
    pub async fn wait_for_message(
        &self,
        token: &str,
        id: &str,
        status: &str,
        timeout: std::time::Duration,
    ) -> Value {
        self.wait_for_message_where(token, id, timeout, |view| view["status"] == status)
            .await
    }

    /// Posts a message as `token`'s holder; returns its id once it is accepted (202).
    pub async fn accept(&self, token: &str, message: Value) -> String {
        let accepted = expect_json(
            self.post("/v1/messages", token, message).await,
            StatusCode::ACCEPTED,
        )
        .await;
        accepted["id"].as_str().unwrap().to_owned()
    }

    /// Posts `count` one-recipient messages from `from` in one batch; returns their ids.
    pub async fn burst(&self, token: &str, from: &str, count: usize) -> Vec<String> {
        let batch: Vec<Value> = (0..count)
            .map(|n| {
                json!({"from": from, "to": [format!("buyer{n}@example.com")],
                       "subject": format!("burst {n}"), "text": "hi"})
            })
            .collect();
        let answer = expect_json(
            self.post("/v1/messages/batch", token, json!({ "messages": batch }))
                .await,
            StatusCode::ACCEPTED,
        )
        .await;
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Follows a message until its view satisfies `done` (or the time is up).
    pub async fn wait_for_message_where(
        &self,
        token: &str,
        id: &str,
        timeout: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = expect_json(
                self.get(&format!("/v1/messages/{id}"), token).await,
                StatusCode::OK,
            )
            .await;
            if done(&view) {
                return view;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("message {id} did not get where the test waits for: {view:#}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The configuration this app runs with, for tests that reach below the API.
    pub fn config(&self) -> Config {
        self.setup.config(&self.master_keys)
    }

    /// A second instance on the same database (as several `serve` processes would run).
    pub async fn sibling(&self) -> Sibling {
        let app = Application::build(self.config())
            .await
            .expect("the sibling starts");
        let address = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped());
        Sibling { address }
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.request(method, path, Some(token));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.call(Method::DELETE, path, token, None).await
    }

    pub async fn create_tenant(&self, name: &str) -> TestTenant {
        let slug = name.to_lowercase().replace(' ', "-");
        let body = json!({"name": name, "admin_email": format!("admin@{slug}.test")});
        let res = self.post("/v1/tenants", &self.operator_token, body).await;
        let body = expect_json(res, StatusCode::CREATED).await;
        TestTenant {
            id: body["id"].as_str().unwrap().to_owned(),
            admin_id: body["admin"]["user_id"].as_str().unwrap().to_owned(),
            admin_token: body["admin"]["token"].as_str().unwrap().to_owned(),
            admin_token_id: body["admin"]["token_id"].as_str().unwrap().to_owned(),
        }
    }

    /// A tenant that has proven `domain` (domain channels and the shared pool send only for
    /// a tenant's verified domains).
    pub async fn create_tenant_with_domain(&self, name: &str, domain: &str) -> TestTenant {
        let tenant = self.create_tenant(name).await;
        self.prove_domain(&tenant.admin_token, domain).await;
        tenant
    }

    /// Claims `domain` as the holder of `admin_token`, publishes the claim's TXT record in
    /// the test's DNS and checks it now, as an admin following the Domains page would.
    /// Returns the verified claim.
    pub async fn prove_domain(&self, admin_token: &str, domain: &str) -> Value {
        let claim = expect_json(
            self.post("/v1/domains", admin_token, json!({ "domain": domain }))
                .await,
            StatusCode::CREATED,
        )
        .await;
        let record = &claim["verification"];
        self.dns
            .txt(
                record["name"].as_str().unwrap(),
                record["value"].as_str().unwrap(),
            )
            .await;
        let verified = expect_json(
            self.post(
                &format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap()),
                admin_token,
                json!({}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(verified["state"], "verified", "{verified:#}");
        verified
    }

    /// The Gmail channel the holder of `token` sees (after Connect Gmail).
    pub async fn gmail_channel(&self, token: &str) -> Value {
        let all = expect_json(self.get("/v1/channels", token).await, StatusCode::OK).await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "gmail")
            .cloned()
            .expect("a Gmail channel")
    }

    /// The operator deletes a tenant.
    pub async fn delete_tenant(&self, id: &str) -> Response {
        self.delete(&format!("/v1/tenants/{id}"), &self.operator_token)
            .await
    }

    pub async fn create_team(&self, tenant: &TestTenant, name: &str) -> String {
        let res = self
            .post("/v1/teams", &tenant.admin_token, json!({"name": name}))
            .await;
        expect_json(res, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create_user(
        &self,
        tenant: &TestTenant,
        email: &str,
        role: &str,
        team: Option<&str>,
    ) -> TestUser {
        let body = json!({"email": email, "name": email, "role": role, "team_id": team});
        let res = self.post("/v1/users", &tenant.admin_token, body).await;
        let id = expect_json(res, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = self
            .post(
                &format!("/v1/users/{id}/tokens"),
                &tenant.admin_token,
                json!({"label": "test"}),
            )
            .await;
        let token = expect_json(res, StatusCode::CREATED).await;
        TestUser {
            id,
            token: token["token"].as_str().unwrap().to_owned(),
            token_id: token["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// Asserts the status and returns the JSON body, showing the body when the status is wrong.
pub async fn expect_json(res: Response, status: StatusCode) -> Value {
    let actual = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// Asserts an RFC 9457 problem with the given status and code; returns it.
pub async fn expect_problem(res: Response, status: StatusCode, code: &str) -> Value {
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = expect_json(res, status).await;
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(
        body["type"],
        format!("urn:switchboard:problem:{code}"),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| d.len() > 10),
        "a problem says what to do: {body}"
    );
    body
}

/// The rep's browser in an OAuth round trip (Connect Gmail, Connect Microsoft): the app
/// believes it lives at `public_url` (its redirect URI); the browser maps that to the test
/// app, as DNS would.
pub struct OAuthBrowser {
    pub client: reqwest::Client,
    pub public_url: &'static str,
}

impl OAuthBrowser {
    pub fn new(public_url: &'static str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            public_url,
        }
    }

    /// Starts a connection with `POST {start_path}` as `token`'s holder and signs in at the
    /// provider (which consents at once); returns the callback URL the provider sent the
    /// browser back to, pointed at the test app.
    pub async fn authorize(
        &self,
        app: &TestApp,
        start_path: &str,
        token: &str,
        body: Value,
    ) -> String {
        let started = expect_json(app.post(start_path, token, body).await, StatusCode::OK).await;
        assert!(started["expires_at"].is_string(), "{started}");
        let url = started["authorize_url"].as_str().unwrap();
        let consent = self.client.get(url).send().await.unwrap();
        assert_eq!(
            consent.status(),
            StatusCode::FOUND,
            "{:?}",
            consent.text().await
        );
        let location = consent.headers()["location"].to_str().unwrap().to_owned();
        let rest = location.strip_prefix(self.public_url).unwrap_or_else(|| {
            panic!("the provider sends the browser to our redirect URI: {location}")
        });
        format!("{}{rest}", app.address)
    }

    /// The browser lands on the callback; returns the status and the page (never cached).
    pub async fn land(&self, callback: &str) -> (StatusCode, String) {
        let res = self.client.get(callback).send().await.unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
        (res.status(), res.text().await.unwrap())
    }
}

/// The `attempt` events of a message's view.
pub fn attempts(view: &Value) -> Vec<Value> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt")
        .cloned()
        .collect()
}

/// Asserts that none of `secrets` is readable in the SQLite database file (sealed on disk);
/// nothing to read on PostgreSQL.
pub fn assert_sealed_on_disk(app: &TestApp, secrets: &[String]) {
    if app.db.is_postgres() {
        return;
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&app.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("switchboard.db") {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    for secret in secrets {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret is readable in the database file"
        );
    }
}
