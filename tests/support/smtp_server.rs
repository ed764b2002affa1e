//! An in-process SMTP server for integration tests: real TCP, real TLS (rustls), real SASL.
//!
//! It implements just enough of RFC 5321 (SMTP), RFC 3207 (STARTTLS) and RFC 4954 (AUTH),
//! plus Gmail's XOAUTH2, for a real client such as lettre to deliver mail to it, and it can be
//! told to misbehave the way real providers do (see [`Fault`]).
//!
//! Every connection runs on its own tokio task; a misbehaving client only ends its own
//! connection. Dropping the [`TestSmtpServer`] stops the listener and every connection.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The name the server calls itself and that its certificate covers.
const HOSTNAME: &str = "localhost";
/// Longest command line accepted (without CRLF); RFC 5321 only asks for 512.
const MAX_LINE: usize = 4096;
/// The message size limit advertised in EHLO (`SIZE`), in bytes.
const MAX_MESSAGE_SIZE: usize = 36_700_160;
/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
const MAX_RECIPIENTS: usize = 100;
/// Base64 of "Username:" and "Password:", the prompts every AUTH LOGIN server sends.
const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";
/// What Gmail sends (base64-encoded, in a 334) when it rejects an XOAUTH2 token.
const XOAUTH2_ERROR: &str =
    r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// How the server protects connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text only; STARTTLS is not offered.
    None,
    /// Plain text first, STARTTLS offered (and required before AUTH when configured).
    StartTls,
    /// TLS from the first byte (port-465 style, lettre's `Tls::Wrapper`).
    Implicit,
}

/// Which certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertMode {
    /// A certificate signed by a test CA generated for this server; clients trust `ca_pem()`.
    TestCa,
    /// A self-signed certificate that no CA vouches for, to provoke certificate errors.
    SelfSigned,
}

/// Everything that shapes a server's behaviour at start.
#[derive(Clone, Debug)]
pub struct SmtpServerConfig {
    /// Plain, STARTTLS or implicit TLS.
    pub tls: TlsMode,
    /// Certificate signed by the test CA, or self-signed.
    pub cert: CertMode,
    /// Accounts for AUTH PLAIN and LOGIN, as (username, password).
    pub users: Vec<(String, String)>,
    /// Accounts for AUTH XOAUTH2, as (user, access token).
    pub xoauth2: Vec<(String, String)>,
    /// Tokens issued elsewhere (a fake identity provider), checked as they arrive; with it
    /// the server refuses a token as Exchange Online does, `535 5.7.3` with no challenge,
    /// instead of Gmail's 334 error document.
    pub xoauth2_issuer: Option<TokenIssuer>,
    /// MAIL FROM before a successful AUTH is refused with 530 5.7.0.
    pub require_auth: bool,
    /// AUTH before STARTTLS is refused with 538 5.7.11 (only meaningful for `TlsMode::StartTls`).
    pub require_tls_for_auth: bool,
    /// SASL mechanisms advertised and accepted, e.g. `["PLAIN", "LOGIN", "XOAUTH2"]`.
    pub mechanisms: Vec<&'static str>,
    /// The message size limit advertised in EHLO (`SIZE`) and enforced, in bytes.
    pub size_limit: usize,
    /// Whether EHLO offers SMTPUTF8 (RFC 6531); without it a non-ASCII address is refused.
    pub smtputf8: bool,
    /// Close a session that sent no command for this long, as every real server does
    /// (Postfix: 300 s, answering `421 4.4.2 … timeout exceeded`).
    pub idle_timeout: Option<(Duration, IdleClose)>,
}

/// Whether (user, access token) may log in.
pub type TokenCheck = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Decides whether (user, access token) may log in with XOAUTH2.
#[derive(Clone)]
pub struct TokenIssuer(pub Arc<TokenCheck>);

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer")
    }
}

/// How a server ends a session it found idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleClose {
    /// `421 4.4.2` and then close, as Postfix does.
    Reply421,
    /// Close the socket without a word (a NAT or load balancer dropping the flow does the
    /// same from the client's side).
    Silent,
}

impl Default for SmtpServerConfig {
    /// STARTTLS with a test-CA certificate, one account `user@example.test` / `secret`,
    /// AUTH required, and only allowed once TLS is up.
    fn default() -> Self {
        SmtpServerConfig {
            tls: TlsMode::StartTls,
            cert: CertMode::TestCa,
            users: vec![("user@example.test".to_string(), "secret".to_string())],
            xoauth2: Vec::new(),
            xoauth2_issuer: None,
            require_auth: true,
            require_tls_for_auth: true,
            mechanisms: vec!["PLAIN", "LOGIN", "XOAUTH2"],
            size_limit: MAX_MESSAGE_SIZE,
            smtputf8: false,
            idle_timeout: None,
        }
    }
}

/// A misbehaviour switched on with [`TestSmtpServer::set_fault`]; it applies to commands
/// received after it is set, on every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `command` with this reply instead of the normal one.
    ///
    /// `command` is a verb ("EHLO", "MAIL", "RCPT", ...) whose processing is skipped, except:
    /// "AUTH" runs the real exchange and replaces only its final reply (as providers do for
    /// 535 5.7.139 or 534 5.7.9); "DATA" replaces the reply after the message body (the
    /// message is kept only if `code` is 2xx); "DATA_START" replaces the 354 step.
    Reply {
        command: &'static str,
        code: u16,
        text: String,
    },
    /// Read the whole message body, then close the socket without replying.
    DropAfterData,
    /// After receiving `command` never reply again, keeping the socket open. "DATA" goes
    /// silent after reading the body, "DATA_START" right after the DATA command.
    SilentAfter { command: &'static str },
    /// Greet new connections with this reply (e.g. 554) instead of 220.
    Greeting { code: u16, text: String },
    /// Wait this long after reading a message body before accepting it (a slow server): the
    /// message is stored and answered 250 only when the time is up.
    SlowData { delay: Duration },
}

/// A message the server accepted (answered 250 after DATA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The MAIL FROM address, without angle brackets ("" for the null sender).
    pub mail_from: String,
    /// The RCPT TO addresses, in order.
    pub rcpt_to: Vec<String>,
    /// The message as transmitted, dot-stuffing undone, each line ending in CRLF.
    pub data: Vec<u8>,
    /// The user that authenticated on the connection, if any.
    pub authenticated_as: Option<String>,
    /// Whether the message came over TLS.
    pub tls: bool,
}

/// One AUTH exchange that got as far as presenting credentials (the secret is never kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// "PLAIN", "LOGIN" or "XOAUTH2".
    pub mechanism: String,
    /// The identity the client presented.
    pub username: String,
    /// Whether the server answered 2xx.
    pub success: bool,
}

/// A running SMTP server on 127.0.0.1; stops when dropped.
pub struct TestSmtpServer {
    port: u16,
    ca_pem: String,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl TestSmtpServer {
    /// Binds 127.0.0.1 on a free port and serves each connection on its own tokio task.
    pub async fn start(config: SmtpServerConfig) -> TestSmtpServer {
        let certs = generate_certificates(config.cert);
        Self::start_with(config, certs).await
    }

    /// Like [`start`](Self::start), presenting a certificate given in PEM (the chain, leaf
    /// first) with its private key, e.g. one made by the `openssl` command line; `config.cert`
    /// is ignored and `ca_pem()` returns the chain's last certificate.
    pub async fn start_with_pem(
        config: SmtpServerConfig,
        chain_pem: &str,
        key_pem: &str,
    ) -> TestSmtpServer {
        Self::start_with(config, pem_certificates(chain_pem, key_pem)).await
    }

    /// From now on, new TLS handshakes present this certificate (PEM chain and key): a server
    /// whose administrator replaced its certificate.
    pub fn replace_certificate(&self, chain_pem: &str, key_pem: &str) {
        let acceptor = tls_acceptor(pem_certificates(chain_pem, key_pem));
        *self
            .shared
            .acceptor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = acceptor;
    }

    async fn start_with(config: SmtpServerConfig, certs: Certificates) -> TestSmtpServer {
        let ca_pem = certs.ca_pem.clone();
        let acceptor = Mutex::new(tls_acceptor(certs));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the test SMTP server");
        let port = listener
            .local_addr()
            .expect("local address of the test SMTP server")
            .port();
        let state = State {
            users: config.users.iter().cloned().collect(),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            config,
            acceptor,
            state: Mutex::new(state),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        TestSmtpServer {
            port,
            ca_pem,
            shared,
            accept_task,
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host name to connect to and verify: "localhost" (the certificate also covers 127.0.0.1).
    pub fn host(&self) -> &str {
        HOSTNAME
    }

    /// PEM of the test CA, for clients to trust (it does not vouch for a `SelfSigned` cert).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Switches a misbehaviour on (or off with `None`) for the next commands on any connection.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.state().fault = fault;
    }

    /// Answers RCPT TO for `address` (compared without case) with this reply from now on,
    /// as a server refuses one mailbox of several (`550 5.1.1 no such user`, `451 4.2.0 try
    /// later`); `None` takes it back.
    pub fn set_rcpt_reply(&self, address: &str, reply: Option<(u16, &str)>) {
        let mut state = self.shared.state();
        let key = address.to_ascii_lowercase();
        match reply {
            Some((code, text)) => {
                state.rcpt_replies.insert(key, (code, text.to_string()));
            }
            None => {
                state.rcpt_replies.remove(&key);
            }
        }
    }

    /// The RCPT TO commands received so far, in order, with the code each was answered with.
    pub fn rcpt_log(&self) -> Vec<(String, u16)> {
        self.shared.state().rcpt_log.clone()
    }

    /// Sessions this server closed because they were idle.
    pub fn idle_closes(&self) -> usize {
        self.shared.state().idle_closes
    }

    /// Sets (or adds) an account's password, as a password change at the provider would:
    /// sessions signed in with the old one are ended at their next command (421), as
    /// providers sign a changed account out everywhere.
    pub fn set_password(&self, user: &str, password: &str) {
        let mut state = self.shared.state();
        state.users.insert(user.to_string(), password.to_string());
        *state.password_changes.entry(user.to_string()).or_default() += 1;
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.state().messages.clone()
    }

    /// Every message body read so far, in order, including those then refused (a scripted
    /// 4xx after DATA) or left unanswered: what each attempt put on the wire.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.shared.state().bodies.clone()
    }

    /// The AUTH attempts so far, in order.
    pub fn auth_attempts(&self) -> Vec<AuthAttempt> {
        self.shared.state().auth_attempts.clone()
    }

    /// The number of TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// Polls until at least `n` messages arrived or `timeout` passed; returns what it has.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestSmtpServer {
    fn drop(&mut self) {
        // The connection tasks live in a JoinSet owned by the accept task, so aborting it
        // closes the listener and every open connection.
        self.accept_task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    config: SmtpServerConfig,
    acceptor: Mutex<TlsAcceptor>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, String>,
    /// How often each account's password changed; a session remembers the count it signed
    /// in at.
    password_changes: HashMap<String, u64>,
    fault: Option<Fault>,
    messages: Vec<ReceivedMessage>,
    /// Every message body read after DATA, whatever the reply to it.
    bodies: Vec<Vec<u8>>,
    auth_attempts: Vec<AuthAttempt>,
    connections: usize,
    /// Scripted RCPT replies by lower-cased address.
    rcpt_replies: HashMap<String, (u16, String)>,
    rcpt_log: Vec<(String, u16)>,
    idle_closes: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not take every other test down.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The acceptor for the next handshake (the certificate may be replaced meanwhile).
    fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn fault(&self) -> Option<Fault> {
        self.state().fault.clone()
    }

    /// The reply a `Fault::Reply` prescribes for `command`, if one is set.
    fn fault_reply(&self, command: &str) -> Option<(u16, String)> {
        match self.fault() {
            Some(Fault::Reply {
                command: c,
                code,
                text,
            }) if c.eq_ignore_ascii_case(command) => Some((code, text)),
            _ => None,
        }
    }

    fn silent_after(&self, command: &str) -> bool {
        matches!(self.fault(), Some(Fault::SilentAfter { command: c }) if c.eq_ignore_ascii_case(command))
    }

    /// Whether AUTH may be used on a connection in this TLS state.
    fn auth_allowed(&self, tls_active: bool) -> bool {
        let tls_required = self.config.require_tls_for_auth && self.config.tls == TlsMode::StartTls;
        tls_active || !tls_required
    }

    fn password_changes(&self, user: &str) -> u64 {
        self.state()
            .password_changes
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    fn password_matches(&self, user: &str, password: &str) -> bool {
        self.state().users.get(user).is_some_and(|p| p == password)
    }

    fn token_matches(&self, user: &str, token: &str) -> bool {
        self.config
            .xoauth2
            .iter()
            .any(|(u, t)| u == user && t == token)
            || self
                .config
                .xoauth2_issuer
                .as_ref()
                .is_some_and(|issuer| (issuer.0)(user, token))
    }

    fn record_auth(&self, mechanism: &str, username: &str, success: bool) {
        self.state().auth_attempts.push(AuthAttempt {
            mechanism: mechanism.to_string(),
            username: username.to_string(),
            success,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates and TLS
// ---------------------------------------------------------------------------------------------

struct Certificates {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn generate_certificates(mode: CertMode) -> Certificates {
    let ca_key = KeyPair::generate().expect("generate the test CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("test CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Switchboard Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign the test CA");

    let key = KeyPair::generate().expect("generate the server key");
    let mut params = CertificateParams::new(vec![HOSTNAME.to_string(), "127.0.0.1".to_string()])
        .expect("server certificate params");
    params.distinguished_name.push(DnType::CommonName, HOSTNAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = match mode {
        CertMode::TestCa => params.signed_by(&key, &ca),
        CertMode::SelfSigned => params.self_signed(&key),
    }
    .expect("sign the server certificate");

    Certificates {
        ca_pem: ca.pem(),
        chain: vec![certificate.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A certificate chain and key given in PEM.
fn pem_certificates(chain_pem: &str, key_pem: &str) -> Certificates {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("a PEM certificate chain");
    assert!(!chain.is_empty(), "no certificate in the PEM chain");
    let last = chain_pem
        .rfind("-----BEGIN CERTIFICATE-----")
        .expect("a PEM certificate");
    Certificates {
        ca_pem: chain_pem[last..].to_string(),
        chain,
        key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a PEM private key"),
    }
}

fn tls_acceptor(certs: Certificates) -> TlsAcceptor {
    // An explicit provider: the process-wide default may be unset, or set by someone else.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs.chain, certs.key)
        .expect("rustls server certificate");
    TlsAcceptor::from(Arc::new(config))
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping this JoinSet (when this task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((tcp, _peer)) => {
                shared.state().connections += 1;
                connections.spawn(serve_connection(Arc::clone(&shared), tcp));
            }
            // E.g. out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream) {
    // An I/O or TLS error only ends this connection; there is nobody to report it to.
    let _ = serve(&shared, tcp).await;
}

/// A byte stream, plain or TLS, so that STARTTLS can swap one for the other.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One line read from the client, without its CRLF.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// A connection with its own read buffer, since SMTP clients may pipeline several lines.
struct Conn {
    stream: Box<dyn Stream>,
    buffer: Vec<u8>,
    tls: bool,
}

impl Conn {
    fn plain(tcp: TcpStream) -> Conn {
        Conn {
            stream: Box::new(tcp),
            buffer: Vec::new(),
            tls: false,
        }
    }

    async fn into_tls(self, acceptor: &TlsAcceptor) -> io::Result<Conn> {
        // RFC 3207 §6: whatever the client sent after STARTTLS arrived in plain text and must
        // not be taken as if it came over TLS (the CVE-2011-0411 injection), so the buffer goes.
        let stream = acceptor.accept(self.stream).await?;
        Ok(Conn {
            stream: Box::new(stream),
            buffer: Vec::new(),
            tls: true,
        })
    }

    /// Reads one CRLF-terminated line; `None` at end of stream. A line longer than `max` is
    /// consumed whole and reported as `TooLong`, so the session can go on after it.
    async fn read_line(&mut self, max: usize) -> io::Result<Option<Line>> {
        let mut scanned = 0;
        let mut too_long = false;
        loop {
            if let Some(at) = find_crlf(&self.buffer, scanned) {
                let line: Vec<u8> = self.buffer.drain(..at + 2).take(at).collect();
                return Ok(Some(if too_long || line.len() > max {
                    Line::TooLong
                } else {
                    Line::Text(line)
                }));
            }
            if self.buffer.len() > max + 1 {
                // Keep the last byte: it may be the CR of a CRLF split across two reads.
                too_long = true;
                self.buffer.drain(..self.buffer.len() - 1);
            }
            scanned = self.buffer.len().saturating_sub(1);
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    async fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.send(format!("{code} {text}\r\n").as_bytes()).await
    }

    /// A multi-line reply: every line but the last has a hyphen after the code.
    async fn reply_lines(&mut self, code: u16, lines: &[String]) -> io::Result<()> {
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let separator = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{code}{separator}{line}\r\n"));
        }
        self.send(out.as_bytes()).await
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        // TLS streams hold records back until flushed.
        self.stream.flush().await
    }

    /// Reads and discards until the client leaves: a hung server whose kernel still ACKs.
    async fn stay_silent(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 4096];
        while self.stream.read(&mut sink).await? > 0 {}
        Ok(())
    }
}

fn find_crlf(buffer: &[u8], from: usize) -> Option<usize> {
    buffer
        .get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| i + from)
}

/// Per-connection SMTP state; STARTTLS starts a fresh one (RFC 3207 §4.2).
#[derive(Default)]
struct Session {
    greeted: bool,
    authenticated_as: Option<String>,
    /// The account's password changes when it signed in.
    signed_in_at_change: u64,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// MAIL FROM carried the SMTPUTF8 parameter (RFC 6531 §3.4).
    smtputf8: bool,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

/// What the connection loop does after a command.
enum Next {
    Continue,
    StartTls,
    Close,
    Silent,
}

async fn serve(shared: &Shared, tcp: TcpStream) -> io::Result<()> {
    let mut conn = Conn::plain(tcp);
    if shared.config.tls == TlsMode::Implicit {
        conn = conn.into_tls(&shared.acceptor()).await?;
    }
    if !greet(shared, &mut conn).await? {
        return refuse_until_quit(&mut conn).await;
    }
    let mut session = Session::default();
    loop {
        let next = match shared.config.idle_timeout {
            None => conn.read_line(MAX_LINE).await?,
            Some((idle, how)) => match tokio::time::timeout(idle, conn.read_line(MAX_LINE)).await {
                Ok(line) => line?,
                Err(_) => {
                    shared.state().idle_closes += 1;
                    if how == IdleClose::Reply421 {
                        conn.reply(421, "4.4.2 localhost Error: timeout exceeded")
                            .await?;
                    }
                    return Ok(());
                }
            },
        };
        let line = match next {
            None => return Ok(()),
            Some(Line::TooLong) => {
                conn.reply(500, "5.5.2 Line too long").await?;
                continue;
            }
            Some(Line::Text(line)) => line,
        };
        match handle_command(shared, &mut conn, &mut session, &line).await? {
            Next::Continue => {}
            Next::StartTls => {
                conn = conn.into_tls(&shared.acceptor()).await?;
                session = Session::default();
            }
            Next::Close => return Ok(()),
            Next::Silent => return conn.stay_silent().await,
        }
    }
}

/// Sends the greeting; `false` when a `Fault::Greeting` refused the session.
async fn greet(shared: &Shared, conn: &mut Conn) -> io::Result<bool> {
    match shared.fault() {
        Some(Fault::Greeting { code, text }) => {
            conn.reply(code, &text).await?;
            Ok(code == 220)
        }
        _ => {
            conn.reply(220, &format!("{HOSTNAME} ESMTP switchboard-test"))
                .await?;
            Ok(true)
        }
    }
}

/// RFC 5321 §3.1: after refusing in the greeting the server waits for QUIT, answering 503.
async fn refuse_until_quit(conn: &mut Conn) -> io::Result<()> {
    while let Some(line) = conn.read_line(MAX_LINE).await? {
        if let Line::Text(line) = line
            && split_command(&String::from_utf8_lossy(&line)).0 == "QUIT"
        {
            return conn.reply(221, "2.0.0 Bye").await;
        }
        conn.reply(503, "5.5.1 No session, send QUIT").await?;
    }
    Ok(())
}

/// Splits a command line into its upper-cased verb and the rest.
fn split_command(line: &str) -> (String, &str) {
    let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
    (verb.to_ascii_uppercase(), argument.trim())
}

async fn handle_command(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    line: &[u8],
) -> io::Result<Next> {
    let line = String::from_utf8_lossy(line);
    let (verb, argument) = split_command(&line);

    if let Some(user) = &session.authenticated_as
        && shared.password_changes(user) != session.signed_in_at_change
    {
        conn.reply(421, "4.7.0 The account's password changed; sign in again")
            .await?;
        return Ok(Next::Close);
    }

    // AUTH and DATA apply their faults at their own later steps.
    if verb != "AUTH" && verb != "DATA" {
        if shared.silent_after(&verb) {
            return Ok(Next::Silent);
        }
        if let Some((code, text)) = shared.fault_reply(&verb) {
            conn.reply(code, &text).await?;
            return Ok(Next::Continue);
        }
    }

    match verb.as_str() {
        "EHLO" => ehlo(shared, conn, session, argument).await,
        "HELO" => helo(conn, session, argument).await,
        "STARTTLS" => starttls(shared, conn, argument).await,
        "AUTH" => auth(shared, conn, session, argument).await,
        "MAIL" => mail(shared, conn, session, argument).await,
        "RCPT" => rcpt(shared, conn, session, argument).await,
        "DATA" => data(shared, conn, session).await,
        "RSET" => {
            session.reset_transaction();
            respond(conn, 250, "2.0.0 Ok").await
        }
        "NOOP" => respond(conn, 250, "2.0.0 Ok").await,
        "QUIT" => {
            conn.reply(221, "2.0.0 Bye").await?;
            Ok(Next::Close)
        }
        _ => respond(conn, 500, "5.5.2 Command not recognized").await,
    }
}

/// Sends a reply and carries on with the session.
async fn respond(conn: &mut Conn, code: u16, text: &str) -> io::Result<Next> {
    conn.reply(code, text).await?;
    Ok(Next::Continue)
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

async fn ehlo(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    argument: &str,
) -> io::Result<Next> {
    if argument.is_empty() {
        return respond(conn, 501, "5.5.4 Syntax: EHLO hostname").await;
    }
    // RFC 5321 §4.1.4: a second EHLO aborts the transaction, but RFC 4954 keeps AUTH state.
    session.reset_transaction();
    session.greeted = true;
    let mut lines = vec![
        format!("{HOSTNAME} greets {argument}"),
        "PIPELINING".to_string(),
        "8BITMIME".to_string(),
        // We answer with RFC 3463 enhanced codes, which RFC 2034 says we must then advertise.
        "ENHANCEDSTATUSCODES".to_string(),
        format!("SIZE {}", shared.config.size_limit),
    ];
    if shared.config.smtputf8 {
        lines.push("SMTPUTF8".to_string());
    }
    if shared.config.tls == TlsMode::StartTls && !conn.tls {
        lines.push("STARTTLS".to_string());
    }
    if shared.auth_allowed(conn.tls) && !shared.config.mechanisms.is_empty() {
        lines.push(format!("AUTH {}", shared.config.mechanisms.join(" ")));
    }
    conn.reply_lines(250, &lines).await?;
    Ok(Next::Continue)
}

async fn helo(conn: &mut Conn, session: &mut Session, argument: &str) -> io::Result<Next> {
    if argument.is_empty() {
        return respond(conn, 501, "5.5.4 Syntax: HELO hostname").await;
    }
    session.reset_transaction();
    session.greeted = true;
    respond(conn, 250, HOSTNAME).await
}

async fn starttls(shared: &Shared, conn: &mut Conn, argument: &str) -> io::Result<Next> {
    if shared.config.tls != TlsMode::StartTls {
        return respond(conn, 502, "5.5.1 STARTTLS not available").await;
    }
    if conn.tls {
        return respond(conn, 503, "5.5.1 TLS already active").await;
    }
    if !argument.is_empty() {
        return respond(conn, 501, "5.5.4 Syntax: STARTTLS").await;
    }
    conn.reply(220, "2.0.0 Ready to start TLS").await?;
    Ok(Next::StartTls)
}

async fn mail(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    argument: &str,
) -> io::Result<Next> {
    if !session.greeted {
        return respond(conn, 503, "5.5.1 Send EHLO or HELO first").await;
    }
    if shared.config.require_auth && session.authenticated_as.is_none() {
        return respond(conn, 530, "5.7.0 Authentication required").await;
    }
    if session.mail_from.is_some() {
        return respond(conn, 503, "5.5.1 Nested MAIL command").await;
    }
    let Some((address, parameters)) = parse_path(argument, "FROM:") else {
        return respond(conn, 501, "5.5.4 Syntax: MAIL FROM:<address>").await;
    };
    // Parameters such as BODY= are accepted and ignored, but a declared size is honoured.
    if declared_size(parameters).is_some_and(|size| size > shared.config.size_limit as u64) {
        return respond(conn, 552, "5.3.4 Message size exceeds fixed maximum").await;
    }
    session.smtputf8 = parameters
        .split_whitespace()
        .any(|p| p.eq_ignore_ascii_case("SMTPUTF8"));
    session.mail_from = Some(address);
    respond(conn, 250, "2.1.0 Ok").await
}

async fn rcpt(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    argument: &str,
) -> io::Result<Next> {
    if session.mail_from.is_none() {
        return respond(conn, 503, "5.5.1 Need MAIL before RCPT").await;
    }
    let address = match parse_path(argument, "TO:") {
        Some((address, _parameters)) if !address.is_empty() => address,
        _ => return respond(conn, 501, "5.5.4 Syntax: RCPT TO:<address>").await,
    };
    let (code, text) = if session.rcpt_to.len() >= MAX_RECIPIENTS {
        (452, "4.5.3 Too many recipients".to_string())
    } else if !(address.is_ascii() || shared.config.smtputf8 && session.smtputf8) {
        (553, "5.6.7 Non-ASCII address without SMTPUTF8".to_string())
    } else {
        let scripted = shared
            .state()
            .rcpt_replies
            .get(&address.to_ascii_lowercase())
            .cloned();
        scripted.unwrap_or((250, "2.1.5 Ok".to_string()))
    };
    shared.state().rcpt_log.push((address.clone(), code));
    if (200..300).contains(&code) {
        session.rcpt_to.push(address);
    }
    respond(conn, code, &text).await
}

/// Parses `FROM:<address> PARAMS` / `TO:<address> PARAMS` into the address and the parameters.
fn parse_path<'a>(argument: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    // Some clients put a space after the colon; RFC 5321 does not, but tolerating it is usual.
    let path = argument[keyword.len()..].trim_start().strip_prefix('<')?;
    let end = path.find('>')?;
    Some((path[..end].to_string(), path[end + 1..].trim()))
}

fn declared_size(parameters: &str) -> Option<u64> {
    parameters.split_whitespace().find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())
            .flatten()
    })
}

async fn data(shared: &Shared, conn: &mut Conn, session: &mut Session) -> io::Result<Next> {
    if shared.silent_after("DATA_START") {
        return Ok(Next::Silent);
    }
    let (code, text) = shared
        .fault_reply("DATA_START")
        .unwrap_or((354, "Start mail input; end with <CRLF>.<CRLF>".to_string()));
    if code != 354 {
        return respond(conn, code, &text).await;
    }
    if session.rcpt_to.is_empty() {
        return respond(conn, 503, "5.5.1 Need RCPT before DATA").await;
    }
    conn.reply(code, &text).await?;

    let Some(body) = read_body(conn, shared.config.size_limit).await? else {
        return Ok(Next::Close);
    };
    if let Some(data) = &body {
        shared.state().bodies.push(data.clone());
    }
    let mail_from = session.mail_from.take().unwrap_or_default();
    let rcpt_to = std::mem::take(&mut session.rcpt_to);

    // Faults are looked at again: a test may change them while the body is in flight.
    match shared.fault() {
        Some(Fault::DropAfterData) => return Ok(Next::Close),
        Some(Fault::SilentAfter { command }) if command.eq_ignore_ascii_case("DATA") => {
            return Ok(Next::Silent);
        }
        _ => {}
    }
    let Some(data) = body else {
        return respond(conn, 552, "5.3.4 Message size exceeds fixed maximum").await;
    };
    if let Some(Fault::SlowData { delay }) = shared.fault() {
        tokio::time::sleep(delay).await;
    }
    let (code, text) = shared.fault_reply("DATA").unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().simple();
        (250, format!("2.0.0 Ok: queued as {id}"))
    });
    if (200..300).contains(&code) {
        // Stored before replying, so a client that saw 250 always finds its message here.
        shared.state().messages.push(ReceivedMessage {
            mail_from,
            rcpt_to,
            data,
            authenticated_as: session.authenticated_as.clone(),
            tls: conn.tls,
        });
    }
    respond(conn, code, &text).await
}

/// Reads the message up to the line holding only ".". Outer `None`: the client left;
/// inner `None`: the message was larger than the advertised SIZE.
async fn read_body(conn: &mut Conn, limit: usize) -> io::Result<Option<Option<Vec<u8>>>> {
    let mut data = Vec::new();
    let mut too_large = false;
    loop {
        let line = match conn.read_line(limit).await? {
            None => return Ok(None),
            Some(Line::TooLong) => {
                too_large = true;
                continue;
            }
            Some(Line::Text(line)) => line,
        };
        if line == b"." {
            return Ok(Some((!too_large).then_some(data)));
        }
        // RFC 5321 §4.5.2: the client doubled every leading dot; take one off.
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() + 2 > limit {
            too_large = true;
        } else {
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AUTH (RFC 4954)
// ---------------------------------------------------------------------------------------------

/// How a SASL exchange ended, before the server's final reply.
enum Sasl {
    Checked { username: String, ok: bool },
    Cancelled,
    Malformed,
    Disconnected,
}

async fn auth(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    argument: &str,
) -> io::Result<Next> {
    if shared.silent_after("AUTH") {
        return Ok(Next::Silent);
    }
    if !session.greeted {
        return respond(conn, 503, "5.5.1 Send EHLO first").await;
    }
    if session.authenticated_as.is_some() {
        return respond(conn, 503, "5.5.1 Already authenticated").await;
    }
    if session.mail_from.is_some() {
        return respond(
            conn,
            503,
            "5.5.1 AUTH not permitted during a mail transaction",
        )
        .await;
    }
    if !shared.auth_allowed(conn.tls) {
        return respond(
            conn,
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
        )
        .await;
    }
    let mut words = argument.split_whitespace();
    let Some(mechanism) = words.next().map(str::to_ascii_uppercase) else {
        return respond(conn, 501, "5.5.4 Syntax: AUTH mechanism [initial-response]").await;
    };
    let initial = words.next();
    let advertised = shared.config.mechanisms.iter().any(|m| *m == mechanism);
    if !advertised {
        return respond(conn, 504, "5.5.4 Unrecognized authentication type").await;
    }
    let outcome = match mechanism.as_str() {
        "PLAIN" => sasl_plain(shared, conn, initial).await?,
        "LOGIN" => sasl_login(shared, conn, initial).await?,
        "XOAUTH2" => sasl_xoauth2(shared, conn, initial).await?,
        _ => return respond(conn, 504, "5.5.4 Unrecognized authentication type").await,
    };
    let (username, credentials_ok) = match outcome {
        Sasl::Checked {
            username,
            ok: valid,
        } => (username, valid),
        Sasl::Cancelled => return respond(conn, 501, "5.7.0 Authentication cancelled").await,
        Sasl::Malformed => return respond(conn, 501, "5.5.2 Cannot decode response").await,
        Sasl::Disconnected => return Ok(Next::Close),
    };
    finish_auth(shared, conn, session, &mechanism, username, credentials_ok).await
}

/// Records the attempt (before replying, so the client never outruns the record) and replies.
async fn finish_auth(
    shared: &Shared,
    conn: &mut Conn,
    session: &mut Session,
    mechanism: &str,
    username: String,
    credentials_ok: bool,
) -> io::Result<Next> {
    let (code, text) = match shared.fault_reply("AUTH") {
        Some(fault) => fault,
        None if credentials_ok => (235, "2.7.0 Authentication successful".to_string()),
        // Exchange Online: a plain 535, no challenge (MICROSOFT.md §1).
        None if mechanism == "XOAUTH2" && shared.config.xoauth2_issuer.is_some() => {
            (535, "5.7.3 Authentication unsuccessful".to_string())
        }
        None if mechanism == "XOAUTH2" => {
            shared.record_auth(mechanism, &username, false);
            return reject_xoauth2(conn).await;
        }
        None => (535, "5.7.8 Authentication credentials invalid".to_string()),
    };
    let success = (200..300).contains(&code);
    shared.record_auth(mechanism, &username, success);
    if success {
        session.signed_in_at_change = shared.password_changes(&username);
        session.authenticated_as = Some(username);
    }
    respond(conn, code, &text).await
}

/// Gmail's way of refusing a token: an error document in a 334 challenge, which the client
/// must acknowledge with an empty line before it gets the 535.
async fn reject_xoauth2(conn: &mut Conn) -> io::Result<Next> {
    conn.reply(334, &BASE64.encode(XOAUTH2_ERROR)).await?;
    if conn.read_line(MAX_LINE).await?.is_none() {
        return Ok(Next::Close);
    }
    respond(conn, 535, "5.7.8 Username and Password not accepted").await
}

/// One client step of a SASL exchange: the initial response if the client sent one with AUTH,
/// otherwise the answer to a `334 <challenge>`. `Err` carries how the exchange ended early.
async fn sasl_step(
    conn: &mut Conn,
    initial: Option<&str>,
    challenge: &str,
) -> io::Result<Result<Vec<u8>, Sasl>> {
    let line = match initial {
        // RFC 4954 §4: "=" is an initial response of zero length.
        Some("=") => return Ok(Ok(Vec::new())),
        Some(initial) => initial.to_string(),
        None => {
            conn.reply(334, challenge).await?;
            match conn.read_line(MAX_LINE).await? {
                None => return Ok(Err(Sasl::Disconnected)),
                Some(Line::TooLong) => return Ok(Err(Sasl::Malformed)),
                Some(Line::Text(line)) => String::from_utf8_lossy(&line).into_owned(),
            }
        }
    };
    if line == "*" {
        return Ok(Err(Sasl::Cancelled));
    }
    Ok(BASE64.decode(line.trim()).map_err(|_| Sasl::Malformed))
}

/// RFC 4616: `authzid NUL authcid NUL password`.
async fn sasl_plain(shared: &Shared, conn: &mut Conn, initial: Option<&str>) -> io::Result<Sasl> {
    let response = match sasl_step(conn, initial, "").await? {
        Ok(response) => response,
        Err(end) => return Ok(end),
    };
    let Some(text) = String::from_utf8(response).ok() else {
        return Ok(Sasl::Malformed);
    };
    let fields: Vec<&str> = text.split('\0').collect();
    let [authzid, authcid, password] = fields[..] else {
        return Ok(Sasl::Malformed);
    };
    // Acting for another identity (proxy authorization) is not something we grant.
    let ok =
        (authzid.is_empty() || authzid == authcid) && shared.password_matches(authcid, password);
    Ok(Sasl::Checked {
        username: authcid.to_string(),
        ok,
    })
}

/// The LOGIN mechanism: the username and the password, each in answer to its own prompt
/// (some clients send the username along with AUTH LOGIN, which is accepted too).
async fn sasl_login(shared: &Shared, conn: &mut Conn, initial: Option<&str>) -> io::Result<Sasl> {
    let username = match sasl_step(conn, initial, LOGIN_USERNAME_PROMPT).await? {
        Ok(username) => username,
        Err(end) => return Ok(end),
    };
    let password = match sasl_step(conn, None, LOGIN_PASSWORD_PROMPT).await? {
        Ok(password) => password,
        Err(end) => return Ok(end),
    };
    let (Ok(username), Ok(password)) = (String::from_utf8(username), String::from_utf8(password))
    else {
        return Ok(Sasl::Malformed);
    };
    let ok = shared.password_matches(&username, &password);
    Ok(Sasl::Checked { username, ok })
}

/// Gmail's XOAUTH2: `user=<user> ^A auth=Bearer <token> ^A ^A`.
async fn sasl_xoauth2(shared: &Shared, conn: &mut Conn, initial: Option<&str>) -> io::Result<Sasl> {
    let response = match sasl_step(conn, initial, "").await? {
        Ok(response) => response,
        Err(end) => return Ok(end),
    };
    let Some((user, token)) = parse_xoauth2(&response) else {
        return Ok(Sasl::Malformed);
    };
    let ok = shared.token_matches(&user, &token);
    Ok(Sasl::Checked { username: user, ok })
}

fn parse_xoauth2(response: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(response).ok()?;
    let mut user = None;
    let mut token = None;
    for field in text.split('\x01') {
        if let Some(value) = field.strip_prefix("user=") {
            user = Some(value);
        } else if let Some(value) = field.strip_prefix("auth=") {
            let (scheme, credential) = value.split_once(' ')?;
            token = scheme.eq_ignore_ascii_case("Bearer").then_some(credential);
        }
    }
    Some((user?.to_string(), token?.to_string()))
}
