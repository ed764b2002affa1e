//! End-to-end throughput: HTTP batches in, SMTP out, through the real release binary.
//!
//! `bash bench/run.sh [N]` is the one command (it installs Postfix's `smtp-sink`, builds,
//! and runs this driver on SQLite and PostgreSQL); see bench/README.md. Run alone:
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench e2e -- --messages 20000 [--database-url postgres://…]
//! ```
//!
//! The driver starts `target/release/switchboard serve` on a fresh database (a temp dir for
//! SQLite, a fresh schema for PostgreSQL), creates a tenant with one tenant-wide domain
//! channel pointing at `smtp-sink`, pushes N messages of about 2 KB through
//! `POST /v1/messages/batch`, and times from the first request to the moment the sink has
//! counted N messages. The sink is either given (`--sink host:port --sink-counter FILE`, the
//! stdout of `smtp-sink -c`) or started here. It is a bench, not a test: it asserts nothing,
//! but prints every count a lost, failed or doubled message would show in.
//!
//! Every `SWITCHBOARD_*` variable in the driver's environment reaches the service (to try
//! `SWITCHBOARD_DELIVERY_CONCURRENCY=128`, say); `BENCH_WRAP="valgrind --tool=callgrind"`
//! runs the service under a profiler.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl, connection::SimpleConnection};

/// The tests' own DNS server (hickory-server in this process): the service proves bench.test
/// against it, as a tenant proves its domain in production.
#[allow(dead_code)]
#[path = "../tests/support/dns_server.rs"]
mod dns_server;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const USAGE: &str = "usage: e2e [--messages N] [--batch B] [--concurrency C] \
[--database-url postgres://…] [--label NAME] [--sink HOST:PORT --sink-counter FILE] \
[--binary PATH] [--pool-size P] [--pg-set name=value]… [--per-minute LIMIT] [--shared-pool [--dkim]] \
[--timeout SECS] [--keep]";

struct Args {
    messages: usize,
    batch: usize,
    concurrency: usize,
    database_url: Option<String>,
    label: Option<String>,
    sink: Option<(String, PathBuf)>,
    binary: PathBuf,
    pool_size: u32,
    /// More `-c name=value` settings for the PostgreSQL session, e.g. `synchronous_commit=off`.
    pg_settings: Vec<String>,
    /// A per-minute limit on the channel (provider presets all have one), so that every
    /// message takes quota: off by default.
    per_minute: Option<u32>,
    /// Send through the shared pool (SWITCHBOARD_SHARED_POOL_URL at the sink, 16 connections)
    /// instead of a tenant domain channel.
    shared_pool: bool,
    /// Give bench.test a DKIM key first (`switchboard dkim rotate`): the shared pool signs.
    dkim: bool,
    timeout: Duration,
    /// Keep the temp dir, the PostgreSQL schema and the service's log.
    keep: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        messages: 20_000,
        batch: 1000,
        concurrency: 4,
        database_url: None,
        label: None,
        sink: None,
        binary: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/switchboard"),
        pool_size: 20,
        pg_settings: Vec::new(),
        per_minute: None,
        shared_pool: false,
        dkim: false,
        timeout: Duration::from_secs(240),
        keep: false,
    };
    let mut sink_host = None;
    let mut sink_counter = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(&format!("{arg} needs a value\n{USAGE}")))
        };
        let number = |v: String| -> usize {
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| fail(&format!("`{v}` is not a positive number\n{USAGE}")))
        };
        match arg.as_str() {
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--messages" | "-n" => args.messages = number(value()),
            "--batch" => args.batch = number(value()).min(1000),
            "--concurrency" => args.concurrency = number(value()),
            "--database-url" => args.database_url = Some(value()).filter(|v| !v.is_empty()),
            "--label" => args.label = Some(value()),
            "--sink" => sink_host = Some(value()),
            "--sink-counter" => sink_counter = Some(PathBuf::from(value())),
            "--binary" => args.binary = PathBuf::from(value()),
            "--pool-size" => args.pool_size = number(value()) as u32,
            "--pg-set" => args.pg_settings.push(value()),
            "--per-minute" => args.per_minute = Some(number(value()) as u32),
            "--shared-pool" => args.shared_pool = true,
            "--dkim" => args.dkim = true,
            "--timeout" => args.timeout = Duration::from_secs(number(value()) as u64),
            "--keep" => args.keep = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    args.sink = match (sink_host, sink_counter) {
        (Some(host), Some(counter)) => Some((host, counter)),
        (None, None) => None,
        _ => fail("--sink and --sink-counter go together"),
    };
    if args.dkim && !args.shared_pool {
        fail("--dkim signs through the shared pool: give --shared-pool too");
    }
    args
}

fn fail(message: &str) -> ! {
    eprintln!("e2e: {message}");
    std::process::exit(2)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
}

fn wait_for_port(address: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(address).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends SIGTERM (a graceful stop: the service records in-flight outcomes), then SIGKILL
/// after `grace`. Under a wrapper (`BENCH_WRAP`: perf, strace) the service, the wrapper's
/// child, gets the signal, so that the wrapper sees it exit and writes its report.
fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let children = child_pids(child.id());
    let targets = if children.is_empty() {
        vec![child.id()]
    } else {
        children
    };
    for pid in targets {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in child_pids(child.id()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// The message counter of `smtp-sink -c`: its stdout is a stream of
/// `sess=N quit=N mesg=N\r` records, one per finished message or session.
struct SinkCounter {
    file: File,
    carry: Vec<u8>,
    count: u64,
}

impl SinkCounter {
    fn open(path: &Path) -> Self {
        let file = File::open(path)
            .unwrap_or_else(|e| fail(&format!("cannot read the sink's counter {path:?}: {e}")));
        Self {
            file,
            carry: Vec::new(),
            count: 0,
        }
    }

    /// Reads what the sink printed since the last call; returns the messages counted so far.
    fn poll(&mut self) -> u64 {
        let mut fresh = Vec::new();
        if self.file.read_to_end(&mut fresh).is_err() {
            return self.count;
        }
        self.carry.extend_from_slice(&fresh);
        // Only complete records: a number may be half written.
        let Some(end) = self.carry.iter().rposition(|b| *b == b'\r' || *b == b'\n') else {
            return self.count;
        };
        let complete = String::from_utf8_lossy(&self.carry[..end]);
        if let Some(n) = complete.rsplit(['\r', '\n']).find_map(|record| {
            let (_, n) = record.split_once("mesg=")?;
            n.split_whitespace().next()?.parse::<u64>().ok()
        }) {
            self.count = n;
        }
        self.carry.drain(..=end);
        self.count
    }
}

/// `smtp-sink` started by the driver when run.sh did not give one.
struct OwnSink {
    child: Child,
    _dir: tempfile::TempDir,
}

fn start_sink() -> (String, PathBuf, OwnSink) {
    let dir = tempfile::TempDir::new().unwrap();
    let counter = dir.path().join("sink-counter");
    let address = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("smtp-sink");
    cmd.arg("-c");
    if is_root() {
        // smtp-sink refuses to run as root without a user to switch to.
        cmd.args(["-u", "nobody"]);
    }
    let child = cmd
        .args([&address, "1024"])
        .stdout(File::create(&counter).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot start smtp-sink ({e}): install Debian's postfix, or use bench/run.sh"
            ))
        });
    let mut sink = OwnSink { child, _dir: dir };
    if !wait_for_port(&address, Duration::from_secs(5)) {
        stop(&mut sink.child, Duration::from_secs(1));
        fail("smtp-sink did not start listening");
    }
    (address, counter, sink)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A fresh schema on the server `base` names, dropped at the end unless kept.
struct PgSchema {
    base: String,
    schema: String,
    settings: Vec<String>,
    keep: bool,
}

impl PgSchema {
    fn create(base: &str, settings: &[String], keep: bool) -> Self {
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(base)
            .unwrap_or_else(|e| fail(&format!("cannot connect to PostgreSQL: {e}")));
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap_or_else(|e| fail(&format!("CREATE SCHEMA: {e}")));
        Self {
            base: base.to_owned(),
            schema,
            settings: settings.to_vec(),
            keep,
        }
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        let mut options = format!("-csearch_path%3D{}", self.schema);
        for setting in &self.settings {
            options.push_str(&format!("%20-c{}", setting.replace('=', "%3D")));
        }
        format!("{}{sep}options={options}", self.base)
    }

    /// Server settings that decide the cost of a commit.
    fn describe(&self) -> String {
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            setting: String,
        }
        let Ok(mut conn) = PgConnection::establish(&self.base) else {
            return String::new();
        };
        [
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
        ]
        .iter()
        .filter_map(|name| {
            let row: Setting = diesel::sql_query(format!(
                "SELECT setting FROM pg_settings WHERE name = '{name}'"
            ))
            .get_result(&mut conn)
            .ok()?;
            Some(format!("{name}={}", row.setting))
        })
        .collect::<Vec<_>>()
        .join(" ")
    }
}

impl PgSchema {
    /// Row operations on the bench's tables, from pg_stat_user_tables (read after the service
    /// stopped, so every backend has flushed its counters).
    fn table_stats(&self) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            relname: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            ins: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            upd: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            hot: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            del: i64,
        }
        let Ok(mut conn) = PgConnection::establish(&self.base) else {
            return Vec::new();
        };
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT relname::text AS relname, n_tup_ins AS ins, n_tup_upd AS upd, \
             n_tup_hot_upd AS hot, n_tup_del AS del FROM pg_stat_user_tables \
             WHERE schemaname = '{}' AND n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname",
            self.schema
        ))
        .load(&mut conn)
        .unwrap_or_default();
        #[derive(diesel::QueryableByName)]
        struct Scans {
            #[diesel(sql_type = diesel::sql_types::Text)]
            indexrelname: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            idx_scan: i64,
        }
        // Scans of the claim's partial indexes: one per claim statement.
        let scans: Vec<Scans> = diesel::sql_query(format!(
            "SELECT indexrelname::text AS indexrelname, idx_scan FROM pg_stat_user_indexes \
             WHERE schemaname = '{}' AND indexrelname IN ('messages_due', 'messages_leased') \
             ORDER BY indexrelname",
            self.schema
        ))
        .load(&mut conn)
        .unwrap_or_default();
        rows.into_iter()
            .map(|r| {
                format!(
                    "{} ins={} upd={} (hot {}) del={}",
                    r.relname, r.ins, r.upd, r.hot, r.del
                )
            })
            .chain(
                scans
                    .into_iter()
                    .map(|s| format!("index {} scans={}", s.indexrelname, s.idx_scan)),
            )
            .collect()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("e2e: kept schema {}", self.schema);
            return;
        }
        if let Ok(mut conn) = PgConnection::establish(&self.base) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

/// CPU seconds (user + system) of a process, from /proc; with `children`, also of its
/// child processes (with a wrapper, `BENCH_WRAP`, the service is the wrapper's child).
fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?)
        })
        .unwrap_or(0.0)
        / ticks;
    if !children {
        return own;
    }
    own + std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .map(|c| cpu_seconds(c, true))
        .sum::<f64>()
}

/// CPU seconds of every process with this command name (`postgres`, `smtp-sink`): the
/// other programs on the same two cores.
fn cpu_of_command(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .map(|pid| cpu_seconds(pid, false))
        .sum()
}

/// `(write_bytes, syscw)` from /proc/<pid>/io: bytes the process sent to storage (the
/// database file, its WAL, its journal) and its write system calls (sockets included).
fn io_counters(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get("write_bytes:"), get("syscw:"))
}

/// CPU seconds per thread name (numbers folded: `tokio-runtime-w`, `actix-rt|system:0|…`),
/// the poor man's `top -H` over the whole run.
fn cpu_by_thread(pid: u32) -> Vec<(String, f64)> {
    let mut by_name: std::collections::BTreeMap<String, f64> = Default::default();
    let mut pids = vec![pid];
    pids.extend(
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok()),
    );
    for p in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let name: String = head
                .split_once('(')
                .map_or("?", |(_, n)| n)
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect();
            let fields: Vec<&str> = tail.split_whitespace().collect();
            let cpu = fields
                .get(11)
                .and_then(|u| u.parse::<f64>().ok())
                .unwrap_or(0.0)
                + fields
                    .get(12)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0);
            *by_name.entry(name).or_default() += cpu / 100.0;
        }
    }
    let mut v: Vec<(String, f64)> = by_name.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// The running service.
struct Service {
    child: Child,
    base: String,
    log: PathBuf,
    /// The environment the service runs with, for the command line on the same data.
    env: Vec<(&'static str, String)>,
}

fn start_service(
    args: &Args,
    data_dir: &Path,
    database_url: Option<&str>,
    shared_pool: Option<&str>,
    dns_servers: &str,
) -> Service {
    if !args.binary.exists() {
        fail(&format!(
            "{} is missing: run `cargo build --release` first",
            args.binary.display()
        ));
    }
    let address = format!("127.0.0.1:{}", free_port());
    // Beside the data directory, which the service creates itself (mode 0700).
    let log = data_dir.with_file_name("service.log");
    let key = switchboard::vault::MasterKey::generate("bench1");
    let wrap: Vec<String> = std::env::var("BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut cmd = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(&args.binary);
            c
        }
        None => Command::new(&args.binary),
    };
    let mut env = vec![
        ("SWITCHBOARD_DATA_DIR", data_dir.display().to_string()),
        ("SWITCHBOARD_DNS_SERVERS", dns_servers.to_owned()),
        (
            "SWITCHBOARD_MASTER_KEYS",
            key.to_config_entry().expose_secret().to_owned(),
        ),
    ];
    if let Some(url) = database_url {
        env.push(("SWITCHBOARD_DATABASE_URL", url.to_owned()));
    }
    if let Some(url) = shared_pool {
        env.push(("SWITCHBOARD_SHARED_POOL_URL", url.to_owned()));
    }
    cmd.arg("serve")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_MASTER_KEYS_FILE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SWITCHBOARD_BIND", &address)
        .env("SWITCHBOARD_OPERATOR_TOKEN", operator_token())
        .env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", args.binary.display())));
    Service {
        child,
        base: format!("http://{address}"),
        log,
        env,
    }
}

fn operator_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        format!(
            "op_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn call(request: reqwest::RequestBuilder, expect: u16, what: &str) -> Value {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| fail(&format!("{what}: {e}")));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status != expect {
        fail(&format!("{what}: expected {expect}, got {status}: {text}"));
    }
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// About 2 KB of plain ASCII text in 72-character lines, like `smtp-source -l 2048`.
fn body_text() -> String {
    let line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen\n";
    let mut text = String::new();
    while text.len() + line.len() <= 2048 {
        text.push_str(line);
    }
    text
}

/// Status → count, from `/metrics` (the gauges read from the database).
async fn queue_depth(client: &reqwest::Client, base: &str) -> Option<Vec<(String, u64)>> {
    let response = client.get(format!("{base}/metrics")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("switchboard_queue_depth{status=\""))
            .filter_map(|l| {
                let (status, n) = l.split_once("\"} ")?;
                Some((status.to_owned(), n.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// Status → count without `/metrics`: the listing, capped at 500 per status.
async fn status_counts_by_listing(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for status in ["queued", "sending", "deferred", "held", "failed", "sent"] {
        let page = call(
            client
                .get(format!("{base}/v1/messages?status={status}&limit=500"))
                .bearer_auth(token),
            200,
            "GET /v1/messages",
        )
        .await;
        let n = page["messages"].as_array().map_or(0, Vec::len) as u64;
        if n > 0 {
            out.push((status.to_owned(), n));
        }
    }
    out
}

fn show(counts: &[(String, u64)]) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(run(&args));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(args: &Args) -> bool {
    let label = args.label.clone().unwrap_or_else(|| {
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
        .to_owned()
    });
    let n = args.messages;

    let mut own_sink = None;
    let (sink_address, counter_path) = match &args.sink {
        Some((address, counter)) => (address.clone(), counter.clone()),
        None => {
            let (address, counter, sink) = start_sink();
            own_sink = Some(sink);
            (address, counter)
        }
    };
    let (sink_host, sink_port) = sink_address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .unwrap_or_else(|| fail(&format!("--sink `{sink_address}` is not host:port")));
    let mut counter = SinkCounter::open(&counter_path);

    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let schema = args
        .database_url
        .as_deref()
        .map(|base| PgSchema::create(base, &args.pg_settings, args.keep));
    let database_url = schema.as_ref().map(PgSchema::url);
    let shared_pool = args
        .shared_pool
        .then(|| format!("smtp://{sink_address}?security=none"));
    let dns = dns_server::TestDns::start().await;
    let mut service = start_service(
        args,
        &data_dir,
        database_url.as_deref(),
        shared_pool.as_deref(),
        &dns.servers(),
    );
    let pid = service.child.id();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency + 2)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let base = service.base.clone();

    // Ready?
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = service.child.try_wait() {
            fail(&format!(
                "the service stopped at start ({status}):\n{}",
                log_tail(&service.log)
            ));
        }
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            stop(&mut service.child, Duration::from_secs(2));
            fail(&format!(
                "/readyz never answered 200:\n{}",
                log_tail(&service.log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tenant, its domain, and one tenant-wide channel to the sink.
    let tenant = call(
        client
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(operator_token())
            .json(&json!({"name": "Bench", "admin_email": "admin@bench.test"})),
        201,
        "POST /v1/tenants",
    )
    .await;
    let admin = tenant["admin"]["token"].as_str().unwrap().to_owned();
    call(
        client
            .patch(format!("{base}/v1/tenant"))
            .bearer_auth(&admin)
            .json(&json!({"domains": ["bench.test"]})),
        200,
        "PATCH /v1/tenant",
    )
    .await;
    // Prove bench.test: publish the claim's TXT record and have it checked.
    let claims = call(
        client.get(format!("{base}/v1/domains")).bearer_auth(&admin),
        200,
        "GET /v1/domains",
    )
    .await;
    let claim = &claims[0];
    dns.txt(
        claim["verification"]["name"].as_str().unwrap(),
        claim["verification"]["value"].as_str().unwrap(),
    )
    .await;
    let proven = call(
        client
            .post(format!(
                "{base}/v1/domains/{}/verify",
                claim["id"].as_str().unwrap()
            ))
            .bearer_auth(&admin),
        200,
        "POST /v1/domains/{id}/verify",
    )
    .await;
    if proven["state"] != "verified" {
        fail(&format!("bench.test was not proven: {proven}"));
    }
    if args.dkim {
        let tenant_id = tenant["id"].as_str().unwrap();
        let out = Command::new(&args.binary)
            .args([
                "dkim",
                "rotate",
                "--tenant",
                tenant_id,
                "--domain",
                "bench.test",
            ])
            .env_remove("SWITCHBOARD_DATABASE_URL")
            .env_remove("SWITCHBOARD_MASTER_KEYS_FILE")
            .envs(service.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        if !out.status.success() {
            fail(&format!(
                "dkim rotate: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if !args.shared_pool {
        call(
            client
                .post(format!("{base}/v1/channels"))
                .bearer_auth(&admin)
                .json(&{
                    let mut channel = json!({"name": "sink", "kind": "smtp", "scope": "domain",
                    "owner": {"tenant": true}, "domains": ["bench.test"],
                    "smtp": {"host": sink_host, "port": sink_port, "security": "none",
                             "auth": "none", "pool_size": args.pool_size}});
                    if let Some(limit) = args.per_minute {
                        channel["limits"] = json!({"per_minute": limit});
                    }
                    channel
                }),
            201,
            "POST /v1/channels",
        )
        .await;
    }

    // Every request body, serialised before the clock starts.
    let text = body_text();
    let batches: Vec<Vec<u8>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(args.batch)
        .map(|chunk| {
            let messages: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    json!({"from": "Bench <news@bench.test>",
                           "to": [format!("buyer{i}@example.com")],
                           "subject": format!("bench {i}"), "text": text})
                })
                .collect();
            serde_json::to_vec(&json!({ "messages": messages })).unwrap()
        })
        .collect();
    let request_bytes: usize = batches.iter().map(Vec::len).sum();
    let baseline = counter.poll();
    let cpu_before = cpu_seconds(pid, true);
    let driver_cpu_before = cpu_seconds(std::process::id(), false);
    let others = ["postgres", "smtp-sink"];
    let others_before: Vec<f64> = others.iter().map(|c| cpu_of_command(c)).collect();
    let io_before = io_counters(pid);
    println!(
        "{label}: {n} messages of {} B text in {} batches of ≤{} ({:.1} MB of JSON), {} concurrent requests, {}{}",
        text.len(),
        batches.len(),
        args.batch,
        request_bytes as f64 / 1e6,
        args.concurrency,
        match (args.shared_pool, args.dkim) {
            (true, true) => "the shared pool (16 connections), DKIM-signed".to_owned(),
            (true, false) => "the shared pool (16 connections), unsigned".to_owned(),
            _ => format!("channel pool_size {}", args.pool_size),
        },
        args.per_minute
            .map_or(String::new(), |l| format!(", limit {l} per minute"))
    );
    if let Some(schema) = &schema {
        println!(
            "{label}: PostgreSQL {}{}",
            schema.describe(),
            if schema.settings.is_empty() {
                String::new()
            } else {
                format!(
                    "; for the service's sessions: {}",
                    schema.settings.join(" ")
                )
            }
        );
    }

    // Go.
    let started = Instant::now();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, batches, next, base, admin) = (
            client.clone(),
            batches.clone(),
            next.clone(),
            base.clone(),
            admin.clone(),
        );
        senders.spawn(async move {
            let mut accepted = 0usize;
            let mut refused: Vec<String> = Vec::new();
            let mut slowest = Duration::ZERO;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else { break };
                let t = Instant::now();
                let response = client
                    .post(format!("{base}/v1/messages/batch"))
                    .bearer_auth(&admin)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let (status, text) = match response {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                slowest = slowest.max(t.elapsed());
                if status != 202 {
                    refused.push(format!("batch {i}: {status} {text}"));
                    continue;
                }
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                for r in answer["results"].as_array().into_iter().flatten() {
                    if r["id"].is_string() && r["status"] == "queued" {
                        accepted += 1;
                    } else {
                        refused.push(r.to_string());
                    }
                }
            }
            (accepted, refused, slowest)
        });
    }

    // Count what the sink receives while the batches go in.
    let mut accepted = 0usize;
    let mut refused = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut accept_time = None;
    let mut delivered_at = None;
    let mut last_progress = (baseline, Instant::now());
    let mut first_delivery = None;
    let mut delivered_while_accepting = 0;
    // With SWITCHBOARD_DELIVERY=off the service only accepts: measure that alone.
    let accept_only = std::env::var("SWITCHBOARD_DELIVERY").is_ok_and(|v| v.trim() == "off");
    // Messages the sink counted in each second, to tell the accepting phase from the drain.
    let mut per_second: Vec<u64> = Vec::new();
    let mut last_second_count = baseline;
    loop {
        if accept_time.is_none() {
            tokio::select! {
                joined = senders.join_next() => match joined {
                    Some(Ok((a, r, s))) => {
                        accepted += a;
                        refused.extend(r);
                        slowest = slowest.max(s);
                    }
                    Some(Err(e)) => fail(&format!("a request task failed: {e}")),
                    None => {
                        accept_time = Some(started.elapsed());
                        delivered_while_accepting = counter.poll() - baseline;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let count = counter.poll();
        if first_delivery.is_none() && count > baseline {
            first_delivery = Some(started.elapsed());
        }
        while started.elapsed() >= Duration::from_secs(per_second.len() as u64 + 1) {
            per_second.push(count - last_second_count);
            last_second_count = count;
        }
        if count != last_progress.0 {
            last_progress = (count, Instant::now());
        }
        if accept_only && accept_time.is_some() {
            break;
        }
        if accept_time.is_some() && count >= baseline + accepted as u64 {
            delivered_at = Some(started.elapsed());
            break;
        }
        if started.elapsed() > args.timeout || last_progress.1.elapsed() > Duration::from_secs(60) {
            break;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            eprintln!(
                "{label}: the service stopped ({status}):\n{}",
                log_tail(&service.log)
            );
            break;
        }
    }
    let cpu_service = cpu_seconds(pid, true) - cpu_before;
    let cpu_driver = cpu_seconds(std::process::id(), false) - driver_cpu_before;
    let threads = cpu_by_thread(pid);
    let others_cpu: Vec<(&str, f64)> = others
        .iter()
        .zip(&others_before)
        .map(|(c, before)| (*c, cpu_of_command(c) - before))
        .filter(|(_, s)| *s >= 0.01)
        .collect();
    let io_after = io_counters(pid);
    let disk_bytes = io_after.0.saturating_sub(io_before.0);
    let write_calls = io_after.1.saturating_sub(io_before.1);
    let accept_time = accept_time.unwrap_or_else(|| started.elapsed());
    let delivered = counter.poll() - baseline;

    // Let the last outcomes be recorded, then read the statuses.
    let settle = Instant::now() + Duration::from_secs(20);
    let (statuses, via_metrics) = loop {
        let Some(counts) = queue_depth(&client, &base).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            break (
                status_counts_by_listing(&client, &base, &admin).await,
                false,
            );
        };
        let busy = counts
            .iter()
            .any(|(s, n)| *n > 0 && matches!(s.as_str(), "queued" | "sending"));
        if !busy || accept_only || Instant::now() > settle {
            break (counts, true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sink_total = counter.poll() - baseline;

    stop(&mut service.child, Duration::from_secs(30));
    if let Some(mut sink) = own_sink {
        stop(&mut sink.child, Duration::from_secs(2));
    }
    let log = std::fs::read_to_string(&service.log).unwrap_or_default();
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();

    let secs = delivered_at
        .unwrap_or_else(|| started.elapsed())
        .as_secs_f64();
    let rate = delivered as f64 / secs;
    let accept_rate = accepted as f64 / accept_time.as_secs_f64();
    let complete = if accept_only {
        accepted == n
    } else {
        delivered_at.is_some() && accepted == n && sink_total == n as u64
    };
    println!(
        "{label}: accepted {accepted}/{n} in {:.2} s = {accept_rate:.0} msg/s (slowest batch {:.2} s)",
        accept_time.as_secs_f64(),
        slowest.as_secs_f64()
    );
    if accept_only {
        println!("{label}: SWITCHBOARD_DELIVERY=off: accepting only, nothing is sent");
    } else {
        let drain = secs - accept_time.as_secs_f64();
        println!(
            "{label}: sink counted {delivered} in {secs:.2} s from the first request = {rate:.0} msg/s end to end (first delivery after {:.2} s){}",
            first_delivery.map_or(f64::NAN, |d| d.as_secs_f64()),
            if delivered_at.is_some() {
                ""
            } else {
                "  INCOMPLETE: stopped waiting"
            }
        );
        println!(
            "{label}: {delivered_while_accepting} delivered while accepting, the other {} in the {drain:.2} s after = {:.0} msg/s draining the backlog",
            delivered.saturating_sub(delivered_while_accepting),
            delivered.saturating_sub(delivered_while_accepting) as f64 / drain.max(1e-3)
        );
    }
    println!(
        "{label}: statuses ({}): {}; sink total after settling {sink_total}{}",
        if via_metrics {
            "/metrics queue depth"
        } else {
            "listing, capped at 500"
        },
        show(&statuses),
        if sink_total > n as u64 {
            "  DUPLICATES"
        } else {
            ""
        }
    );
    if !per_second.is_empty() {
        println!(
            "{label}: sink counted per second: {}",
            per_second
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "{label}: CPU service {cpu_service:.2} s ({:.0} µs/msg), driver {cpu_driver:.2} s, over {secs:.2} s wall on {} CPUs",
        cpu_service * 1e6 / n as f64,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "{label}: other processes' CPU: {}; service wrote {:.1} MB to storage ({:.1} KB/msg), {write_calls} write calls ({:.1}/msg)",
        if others_cpu.is_empty() {
            "none".to_owned()
        } else {
            others_cpu
                .iter()
                .map(|(c, s)| format!("{c} {s:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        disk_bytes as f64 / 1e6,
        disk_bytes as f64 / 1e3 / n as f64,
        write_calls as f64 / n as f64
    );
    println!(
        "{label}: service CPU by thread: {}",
        threads
            .iter()
            .filter(|(_, s)| *s >= 0.01)
            .map(|(name, s)| format!("{name} {s:.2}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if warnings + errors > 0 {
        println!(
            "{label}: the service logged {warnings} warnings and {errors} errors; last lines:\n{}",
            log_tail(&service.log)
        );
    }
    if let Some(schema) = &schema {
        // The counters reach the statistics views up to a second after a backend's commit.
        std::thread::sleep(Duration::from_millis(1500));
        let stats = schema.table_stats();
        if !stats.is_empty() {
            println!("{label}: PostgreSQL row operations: {}", stats.join("; "));
        }
    }
    for r in refused.iter().take(3) {
        println!(
            "{label}: refused: {}",
            r.chars().take(300).collect::<String>()
        );
    }
    if args.keep {
        let kept = dir.keep();
        println!("{label}: kept {}", kept.display());
    }
    drop(schema);
    // One machine-readable line for bench/run.sh:
    // RESULT path N seconds msg/s accept-seconds accept-msg/s complete
    println!(
        "RESULT\t{label}\t{n}\t{secs:.3}\t{rate:.0}\t{:.3}\t{accept_rate:.0}\t{}",
        accept_time.as_secs_f64(),
        match (complete, accept_only) {
            (true, true) => "accept only",
            (true, false) => "ok",
            (false, _) => "INCOMPLETE",
        }
    );
    complete
}
