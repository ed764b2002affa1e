//! Tests of the in-process SMTP test server (tests/support/smtp_server.rs), driven by lettre
//! over real sockets, plus a few raw-socket checks of protocol details lettre never exercises.

#[path = "support/smtp_server.rs"]
mod smtp_server;

use std::error::Error as StdError;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, Tls, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smtp_server::{AuthAttempt, CertMode, Fault, SmtpServerConfig, TestSmtpServer, TlsMode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type TestResult = Result<(), Box<dyn StdError>>;

const USER: &str = "user@example.test";
const PASSWORD: &str = "secret";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// TLS parameters that trust the server's test CA and nothing else.
fn tls_params(server: &TestSmtpServer) -> TlsParameters {
    TlsParameters::builder(server.host().to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(server.ca_pem().as_bytes()).expect("CA PEM"))
        .build_rustls()
        .expect("TLS parameters")
}

fn starttls(server: &TestSmtpServer) -> Tls {
    Tls::Required(tls_params(server))
}

fn transport(
    server: &TestSmtpServer,
    tls: Tls,
    mechanism: Mechanism,
    user: &str,
    secret: &str,
) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host())
        .port(server.port())
        .tls(tls)
        .credentials(Credentials::new(user.to_string(), secret.to_string()))
        .authentication(vec![mechanism])
        .timeout(Some(Duration::from_secs(5)))
        .build()
}

/// The usual client: STARTTLS, AUTH PLAIN, the default account.
fn default_transport(server: &TestSmtpServer) -> AsyncSmtpTransport<Tokio1Executor> {
    transport(server, starttls(server), Mechanism::Plain, USER, PASSWORD)
}

fn message(subject: &str) -> Message {
    Message::builder()
        .from(USER.parse().expect("from"))
        .to("rcpt@example.org".parse().expect("to"))
        .subject(subject)
        .body(format!("Body of {subject}\r\n"))
        .expect("message")
}

/// lettre always ends the body with CRLF "." CRLF, so the server sees one more line end than
/// the message had (a message already ending in CRLF gains an empty last line).
fn as_received(sent: &[u8]) -> Vec<u8> {
    [sent, b"\r\n"].concat()
}

fn code(err: &SmtpError) -> Option<u16> {
    err.status().map(u16::from)
}

fn attempt(mechanism: &str, username: &str, success: bool) -> AuthAttempt {
    AuthAttempt {
        mechanism: mechanism.to_string(),
        username: username.to_string(),
        success,
    }
}

/// The rustls error somewhere in an error's source chain (io::Error hides its payload from
/// `source()`, so it is unwrapped by hand).
fn find_rustls_error(err: &(dyn StdError + 'static)) -> Option<rustls::Error> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found.clone());
        }
        if let Some(found) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found.clone());
        }
        current = err.source();
    }
    None
}

/// Whether an EHLO reply lists `extension` ("250-X" or, on the last line, "250 X").
fn has_extension(ehlo: &str, extension: &str) -> bool {
    ehlo.lines()
        .any(|line| line.len() > 4 && line.starts_with("250") && &line[4..] == extension)
}

/// A minimal line-based client for protocol details lettre never exercises.
struct RawClient {
    stream: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects and returns the client with the greeting it got.
    async fn connect(server: &TestSmtpServer) -> (RawClient, String) {
        let tcp = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .expect("connect");
        let mut client = RawClient {
            stream: BufReader::new(tcp),
        };
        let greeting = client.read_reply().await;
        (client, greeting)
    }

    /// Sends one line and returns the whole (possibly multi-line) reply.
    async fn send(&mut self, line: &str) -> String {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await.expect("read");
            assert!(n > 0, "connection closed after {reply:?}");
            reply.push_str(&line);
            // The last line of a reply has a space (not a hyphen) after the code.
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery and authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn starttls_and_auth_plain_deliver_a_message() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let message = Message::builder()
        .from(USER.parse()?)
        .to("one@example.org".parse()?)
        .cc("two@example.org".parse()?)
        .subject("Hello")
        .body("Hi there.\r\n".to_string())?;
    let sent = message.formatted();

    default_transport(&server).send(message).await?;

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.mail_from, USER);
    assert_eq!(received.rcpt_to, ["one@example.org", "two@example.org"]);
    assert_eq!(received.data, as_received(&sent));
    assert!(received.tls);
    assert_eq!(received.authenticated_as.as_deref(), Some(USER));
    assert_eq!(server.auth_attempts(), [attempt("PLAIN", USER, true)]);
    Ok(())
}

#[tokio::test]
async fn auth_login_checks_the_password_and_follows_password_changes() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let login =
        |secret: &str| transport(&server, starttls(&server), Mechanism::Login, USER, secret);

    login(PASSWORD).send(message("right password")).await?;

    let err = login("wrong")
        .send(message("wrong password"))
        .await
        .expect_err("a wrong password must be refused");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(code(&err), Some(535));

    server.set_password(USER, "rotated");
    let err = login(PASSWORD)
        .send(message("old password"))
        .await
        .expect_err("the old password must stop working");
    assert_eq!(code(&err), Some(535));
    login("rotated").send(message("new password")).await?;

    assert_eq!(
        server.auth_attempts(),
        [
            attempt("LOGIN", USER, true),
            attempt("LOGIN", USER, false),
            attempt("LOGIN", USER, false),
            attempt("LOGIN", USER, true),
        ]
    );
    assert_eq!(server.messages().len(), 2);
    Ok(())
}

#[tokio::test]
async fn implicit_tls_delivers_a_message() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig {
        tls: TlsMode::Implicit,
        ..SmtpServerConfig::default()
    })
    .await;
    let wrapper = Tls::Wrapper(tls_params(&server));

    transport(&server, wrapper, Mechanism::Plain, USER, PASSWORD)
        .send(message("over implicit TLS"))
        .await?;

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].tls);
    Ok(())
}

#[tokio::test]
async fn plaintext_server_without_auth_accepts_mail() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig {
        tls: TlsMode::None,
        require_auth: false,
        ..SmtpServerConfig::default()
    })
    .await;
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host())
        .port(server.port())
        .timeout(Some(Duration::from_secs(5)))
        .build();

    client.send(message("plain")).await?;

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(!messages[0].tls);
    assert_eq!(messages[0].authenticated_as, None);
    Ok(())
}

#[tokio::test]
async fn self_signed_certificate_is_rejected_by_a_client_trusting_the_test_ca() {
    let server = TestSmtpServer::start(SmtpServerConfig {
        cert: CertMode::SelfSigned,
        ..SmtpServerConfig::default()
    })
    .await;

    let err = default_transport(&server)
        .send(message("never sent"))
        .await
        .expect_err("an untrusted certificate must fail the handshake");

    let tls_error = find_rustls_error(&err);
    assert!(
        matches!(tls_error, Some(rustls::Error::InvalidCertificate(_))),
        "expected a certificate error, got {err:?}"
    );
    assert!(server.messages().is_empty());
    assert!(server.auth_attempts().is_empty());
}

#[tokio::test]
async fn xoauth2_accepts_a_good_token_and_refuses_a_bad_one() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig {
        xoauth2: vec![(USER.to_string(), "ya29.good-token".to_string())],
        ..SmtpServerConfig::default()
    })
    .await;
    let xoauth2 =
        |token: &str| transport(&server, starttls(&server), Mechanism::Xoauth2, USER, token);

    xoauth2("ya29.good-token").send(message("oauth")).await?;

    // The 334 error challenge makes lettre give up on its side (it expects no challenge).
    let result = xoauth2("ya29.expired").send(message("bad token")).await;
    assert!(result.is_err(), "a bad token must fail");

    assert_eq!(
        server.auth_attempts(),
        [
            attempt("XOAUTH2", USER, true),
            attempt("XOAUTH2", USER, false)
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].authenticated_as.as_deref(), Some(USER));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fault_550_on_rcpt_is_a_permanent_error() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    server.set_fault(Some(Fault::Reply {
        command: "RCPT",
        code: 550,
        text: "5.1.1 User unknown".to_string(),
    }));

    let err = default_transport(&server)
        .send(message("unknown user"))
        .await
        .expect_err("550 must fail the send");

    assert!(err.is_permanent(), "{err}");
    assert_eq!(code(&err), Some(550));
    assert!(err.to_string().contains("5.1.1 User unknown"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn fault_421_on_mail_is_a_transient_error() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    server.set_fault(Some(Fault::Reply {
        command: "MAIL",
        code: 421,
        text: "4.7.0 Try again later".to_string(),
    }));

    let err = default_transport(&server)
        .send(message("throttled"))
        .await
        .expect_err("421 must fail the send");

    assert!(err.is_transient(), "{err}");
    assert_eq!(code(&err), Some(421));
}

#[tokio::test]
async fn fault_on_auth_replaces_the_final_reply_after_real_credentials() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let text =
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant";
    server.set_fault(Some(Fault::Reply {
        command: "AUTH",
        code: 535,
        text: text.to_string(),
    }));

    let err = default_transport(&server)
        .send(message("tenant disabled"))
        .await
        .expect_err("the AUTH fault must fail the send");

    assert_eq!(code(&err), Some(535));
    assert!(err.to_string().contains("5.7.139"), "{err}");
    assert_eq!(server.auth_attempts(), [attempt("PLAIN", USER, false)]);
}

#[tokio::test]
async fn greeting_fault_refuses_the_session() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    server.set_fault(Some(Fault::Greeting {
        code: 554,
        text: "5.7.1 No SMTP service here".to_string(),
    }));

    let err = default_transport(&server)
        .send(message("refused"))
        .await
        .expect_err("a 554 greeting must fail the send");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(code(&err), Some(554));

    // RFC 5321 §3.1: after such a greeting only QUIT is answered positively.
    let (mut raw, greeting) = RawClient::connect(&server).await;
    assert!(greeting.starts_with("554 5.7.1"), "{greeting}");
    assert!(raw.send("EHLO client.test").await.starts_with("503"));
    assert!(raw.send("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn drop_after_data_is_neither_permanent_nor_transient() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let client = default_transport(&server);
    server.set_fault(Some(Fault::DropAfterData));

    let err = client
        .send(message("lost"))
        .await
        .expect_err("a dropped connection must fail the send");
    assert!(!err.is_permanent() && !err.is_transient(), "{err:?}");
    assert!(server.messages().is_empty());

    // Faults are live: clearing it restores normal service.
    server.set_fault(None);
    client.send(message("after recovery")).await?;
    assert_eq!(server.messages().len(), 1);
    Ok(())
}

#[tokio::test]
async fn silent_after_data_hangs_that_client_but_not_new_connections() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    server.set_fault(Some(Fault::SilentAfter { command: "DATA" }));
    let stuck_client = default_transport(&server);

    let (stuck, fresh_greeting) = tokio::join!(
        tokio::time::timeout(
            Duration::from_secs(2),
            stuck_client.send(message("into the void"))
        ),
        async {
            // Connect while the first client is waiting for its reply.
            tokio::time::sleep(Duration::from_millis(500)).await;
            tokio::time::timeout(Duration::from_secs(1), RawClient::connect(&server))
                .await
                .map(|(_, greeting)| greeting)
        }
    );

    assert!(stuck.is_err(), "the send must time out, got {stuck:?}");
    let greeting = fresh_greeting.expect("a new connection must be greeted");
    assert_eq!(greeting, "220 localhost ESMTP switchboard-test\r\n");
    assert!(server.messages().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Message transfer
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dot_stuffing_round_trips() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let raw: &[u8] = b"From: user@example.test\r\n\
        To: rcpt@example.org\r\n\
        Subject: dots\r\n\
        \r\n\
        .hidden\r\n\
        ..two dots\r\n\
        .\r\n\
        last line";
    let envelope = Envelope::new(
        Some(USER.parse::<Address>()?),
        vec!["rcpt@example.org".parse::<Address>()?],
    )?;

    default_transport(&server).send_raw(&envelope, raw).await?;

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].data, as_received(raw));
    Ok(())
}

#[tokio::test]
async fn many_messages_share_one_connection() -> TestResult {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    // lettre's pool feature is not enabled in this crate, so AsyncSmtpTransport opens a
    // connection per message; the connection type the pool would reuse is driven directly.
    let hello = ClientId::Domain("client.test".to_string());
    let mut connection = AsyncSmtpConnection::connect_tokio1(
        (server.host(), server.port()),
        Some(Duration::from_secs(5)),
        &hello,
        None,
        None,
    )
    .await?;
    connection.starttls(tls_params(&server), &hello).await?;
    connection
        .auth(
            &[Mechanism::Plain],
            &Credentials::new(USER.to_string(), PASSWORD.to_string()),
        )
        .await?;

    for i in 0..20 {
        let message = message(&format!("message {i}"));
        connection
            .send(message.envelope(), &message.formatted())
            .await?;
    }
    connection.quit().await?;

    let messages = server.wait_for_messages(20, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 20);
    assert_eq!(server.connections(), 1);
    for (i, received) in messages.iter().enumerate() {
        let subject = format!("Subject: message {i}\r\n");
        let data = String::from_utf8_lossy(&received.data);
        assert!(data.contains(&subject), "message {i} out of order: {data}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Protocol details (raw socket)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plaintext_phase_enforces_tls_auth_and_command_order() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let (mut client, greeting) = RawClient::connect(&server).await;
    assert_eq!(greeting, "220 localhost ESMTP switchboard-test\r\n");

    assert!(
        client
            .send("MAIL FROM:<a@example.test>")
            .await
            .starts_with("503")
    );
    let ehlo = client.send("ehlo client.test").await;
    assert!(ehlo.starts_with("250-localhost"), "{ehlo}");
    assert!(has_extension(&ehlo, "STARTTLS"), "{ehlo}");
    assert!(has_extension(&ehlo, "PIPELINING"), "{ehlo}");
    assert!(has_extension(&ehlo, "8BITMIME"), "{ehlo}");
    assert!(has_extension(&ehlo, "SIZE 36700160"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");

    let auth = client
        .send("AUTH PLAIN AHVzZXJAZXhhbXBsZS50ZXN0AHNlY3JldA==")
        .await;
    assert!(auth.starts_with("538 5.7.11"), "{auth}");
    assert!(
        client
            .send("Mail From:<a@example.test>")
            .await
            .starts_with("530 5.7.0")
    );
    assert!(
        client
            .send("RCPT TO:<b@example.test>")
            .await
            .starts_with("503")
    );
    assert!(client.send("DATA").await.starts_with("503"));
    assert!(client.send("BOGUS").await.starts_with("500"));
    assert!(
        client
            .send(&"X".repeat(5000))
            .await
            .starts_with("500 5.5.2 Line too long")
    );
    assert!(client.send("noop").await.starts_with("250"));
    assert!(client.send("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn sasl_challenges_cancellation_and_mail_parameters() {
    let server = TestSmtpServer::start(SmtpServerConfig {
        tls: TlsMode::None,
        ..SmtpServerConfig::default()
    })
    .await;
    let (mut client, _) = RawClient::connect(&server).await;
    let ehlo = client.send("EHLO client.test").await;
    assert!(has_extension(&ehlo, "AUTH PLAIN LOGIN XOAUTH2"), "{ehlo}");
    assert!(!has_extension(&ehlo, "STARTTLS"), "{ehlo}");

    assert_eq!(client.send("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert!(client.send("*").await.starts_with("501"));
    assert!(client.send("AUTH CRAM-MD5").await.starts_with("504"));

    // PLAIN without an initial response: the server asks with an empty challenge.
    assert_eq!(client.send("AUTH PLAIN").await, "334 \r\n");
    let reply = client.send("AHVzZXJAZXhhbXBsZS50ZXN0AHNlY3JldA==").await;
    assert!(reply.starts_with("235 2.7.0"), "{reply}");

    let big = client
        .send("MAIL FROM:<user@example.test> SIZE=999999999")
        .await;
    assert!(big.starts_with("552"), "{big}");
    let mail = client
        .send("MAIL FROM:<user@example.test> SIZE=100 BODY=8BITMIME")
        .await;
    assert!(mail.starts_with("250"), "{mail}");
    assert!(
        client
            .send("RCPT TO:<a@example.org>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .send("rcpt to:<b@example.org>")
            .await
            .starts_with("250")
    );
    assert!(client.send("DATA").await.starts_with("354"));
    let queued = client.send("Subject: raw\r\n\r\n..leading dot\r\n.").await;
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["a@example.org", "b@example.org"]);
    assert_eq!(messages[0].data, b"Subject: raw\r\n\r\n.leading dot\r\n");
    assert!(!messages[0].tls);
    assert_eq!(server.auth_attempts(), [attempt("PLAIN", USER, true)]);
}

#[tokio::test]
async fn xoauth2_rejection_follows_gmail() {
    let server = TestSmtpServer::start(SmtpServerConfig {
        tls: TlsMode::None,
        xoauth2: vec![(USER.to_string(), "good".to_string())],
        ..SmtpServerConfig::default()
    })
    .await;
    let (mut client, _) = RawClient::connect(&server).await;
    client.send("EHLO client.test").await;
    let response = BASE64.encode(format!("user={USER}\x01auth=Bearer expired\x01\x01"));

    // Gmail first sends an error document as a challenge and wants an empty line back.
    let challenge = client.send(&format!("AUTH XOAUTH2 {response}")).await;
    let document = challenge
        .strip_prefix("334 ")
        .and_then(|encoded| BASE64.decode(encoded.trim_end()).ok())
        .expect("a 334 challenge with base64");
    let document: serde_json::Value = serde_json::from_slice(&document).expect("JSON");
    assert_eq!(
        document,
        serde_json::json!({"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"})
    );
    let reply = client.send("").await;
    assert_eq!(reply, "535 5.7.8 Username and Password not accepted\r\n");
    assert_eq!(server.auth_attempts(), [attempt("XOAUTH2", USER, false)]);

    let good = BASE64.encode(format!("user={USER}\x01auth=Bearer good\x01\x01"));
    let reply = client.send(&format!("AUTH XOAUTH2 {good}")).await;
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

#[tokio::test]
async fn dropping_the_server_closes_the_listener_and_open_connections() {
    let server = TestSmtpServer::start(SmtpServerConfig::default()).await;
    let port = server.port();
    let (mut client, _) = RawClient::connect(&server).await;

    drop(server);

    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(2), client.stream.read_line(&mut line))
        .await
        .expect("the open connection must be closed");
    assert!(matches!(read, Ok(0) | Err(_)), "got {line:?}");
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the listener must stop accepting");
}
