//! An in-process webhook receiver for integration tests: real TCP, real HTTP/1.1.
//!
//! It reads what a real client sends (request line, headers, a `Content-Length` or chunked
//! body, several requests per connection), records every request, and answers with the
//! statuses a test asked for. Self-contained (tokio and std only), so any test target can
//! include it with `#[path = "../support/webhook_receiver.rs"] mod webhook_receiver;`.
//! Dropping the [`WebhookReceiver`] stops the listener and every connection.
//!
//! [`verify_with_recipe`] runs the receiver-side recipes in `docs/examples/` on a request.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Largest body accepted; webhooks are small.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// A connection with nothing to say for this long is closed, so no task waits for ever.
const IDLE: Duration = Duration::from_secs(30);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct ReceivedHook {
    pub method: String,
    /// The request target as sent: the path and, if any, `?query`.
    pub path: String,
    /// In the order received, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes (chunked bodies decoded).
    pub body: Vec<u8>,
    pub at: Instant,
}

impl ReceivedHook {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), for assertions and messages.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<ReceivedHook>,
    responses: VecDeque<u16>,
}

/// The receiver. Answers 200 unless told otherwise with [`set_responses`](Self::set_responses).
pub struct WebhookReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts listening on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let state = Arc::new(Mutex::new(State::default()));
        let arrived = Arc::new(Notify::new());
        let (shared, notify) = (state.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it (on drop) ends every connection too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve(stream, shared.clone(), notify.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            state,
            arrived,
            task,
        }
    }

    /// `http://127.0.0.1:<port><path>`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next requests get these statuses, in order; then 200 again.
    pub fn set_responses(&self, statuses: Vec<u16>) {
        self.state.lock().unwrap().responses = statuses.into();
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedHook> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests have arrived or `timeout` has passed, and returns
    /// the requests received by then (fewer than `n` if time ran out, so a test can also
    /// assert that nothing came).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedHook> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so an arrival in between still wakes it.
            let arrived = self.arrived.notified();
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.requests();
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, arrived: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let request = match tokio::time::timeout(IDLE, read_request(&mut reader)).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                let _ = write.write_all(&response(400, &e.to_string(), true)).await;
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = {
            let mut state = state.lock().unwrap();
            state.requests.push(request);
            state.responses.pop_front().unwrap_or(200)
        };
        arrived.notify_waiters();
        if write
            .write_all(&response(status, reason(status), close))
            .await
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
async fn read_request<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
) -> io::Result<Option<ReceivedHook>> {
    let Some(line) = read_line(reader).await? else {
        return Ok(None);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)
            .await?
            .ok_or_else(|| invalid("connection closed in the headers"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut hook = ReceivedHook {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Vec::new(),
        at: Instant::now(),
    };
    let chunked = hook
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        hook.body = read_chunked(reader).await?;
    } else if let Some(length) = hook.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad Content-Length"))?;
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        hook.body = body;
    }
    hook.at = Instant::now();
    Ok(Some(hook))
}

async fn read_chunked<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)
            .await?
            .ok_or_else(|| invalid("connection closed in a chunk"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, up to the empty line.
            while read_line(reader).await?.is_some_and(|l| !l.is_empty()) {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf).await?;
    }
}

/// One line without its CRLF; `None` at end of stream before any byte.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(invalid("line too long or cut short"));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| invalid("line is not UTF-8"))
}

fn response(status: u16, body: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Checks a request with a receiver-side recipe from `docs/examples/`, as a tenant would:
/// `lang` is `"python"` (`python3 verify_webhook.py`) or `"node"` (`node verify_webhook.mjs`),
/// the secret in `SWITCHBOARD_WEBHOOK_SECRET`, the header as the argument, the body on
/// stdin. `Ok` when the recipe exits 0 and says `valid`; otherwise what it said.
pub fn verify_with_recipe(
    lang: &str,
    secret: &str,
    header: &str,
    body: &[u8],
) -> Result<(), String> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let (program, script) = match lang {
        "python" => ("python3", "verify_webhook.py"),
        "node" => ("node", "verify_webhook.mjs"),
        other => return Err(format!("no recipe for {other:?}")),
    };
    let mut child = Command::new(program)
        .arg(examples.join(script))
        .arg(header)
        .env("SWITCHBOARD_WEBHOOK_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // The recipes read all of stdin before writing anything, so this cannot deadlock.
    let written = child.stdin.take().expect("piped stdin").write_all(body);
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    written.map_err(|e| format!("writing the body to {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.trim() == "valid" {
        Ok(())
    } else {
        Err(format!(
            "{program} {script} exited with {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
