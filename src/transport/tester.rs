//! Testing a channel the way a person would: connect → TLS → EHLO → AUTH → (send), each
//! stage reported with the server's code and text and a hint someone can act on.

use std::time::Duration;

use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::certificate::PresentedCertificate;
use super::classify::{FailureClass, classify, describe, smtp_auth_disabled};
use super::outbound::OutboundPolicy;
use super::smtp::{OpenError, TlsFailure, connect, discard, open_session, within};
use super::trust::{CertificateProblem, Rejection};
use crate::domain::{EmailAddress, Security, SmtpAuth, SmtpSettings};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StageReport {
    /// `connect`, `tls`, `ehlo`, `auth` or `send`.
    pub stage: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The `tls` stage, when the server's certificate was refused: what it presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateReport>,
}

/// A refused server certificate in a test report: what it is, and why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateReport {
    #[serde(flatten)]
    pub presented: PresentedCertificate,
    /// `unknown_issuer`, `ca_used_as_end_entity`, `expired`, `not_yet_valid`, `wrong_name`,
    /// `changed` or `other`.
    pub problem: String,
    /// For `changed`: the fingerprint trusted for the channel before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub stages: Vec<StageReport>,
    /// How the failure is classified, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<FailureClass>,
}

/// What the test may send, when asked to.
pub struct TestSend {
    pub from: EmailAddress,
    pub to: EmailAddress,
    /// `false` stops after RCPT TO (and resets): the server judges an envelope, nothing is
    /// delivered. Scheduled checks of a failing channel use it, since a server that logs in
    /// fine may still refuse mail for now.
    pub deliver: bool,
}

fn passed(stage: &'static str, message: impl Into<String>) -> StageReport {
    StageReport {
        stage,
        ok: true,
        code: None,
        message: message.into(),
        hint: None,
        certificate: None,
    }
}

fn failed(stage: &'static str, code: Option<u16>, message: String, hint: String) -> StageReport {
    StageReport {
        stage,
        ok: false,
        code,
        message,
        hint: Some(hint),
        certificate: None,
    }
}

fn needs_app_password(provider: Option<&str>, host: &str) -> bool {
    matches!(provider, Some("gmail" | "yahoo"))
        || host.ends_with("gmail.com")
        || host.ends_with("yahoo.com")
}

/// The hint for a failed login.
fn auth_hint(
    code: Option<u16>,
    text: &str,
    settings: &SmtpSettings,
    provider: Option<&str>,
) -> String {
    if smtp_auth_disabled(text) {
        return "Microsoft 365 has SMTP AUTH turned off for this mailbox or tenant (5.7.139): connect the mailbox with Connect Microsoft instead (no password, through Microsoft Graph), or an admin enables \"Authenticated SMTP\" for the mailbox in the Microsoft 365 admin center".into();
    }
    if text.contains("5.7.9") || code == Some(534) {
        return "the provider requires an app password: create one in the account's security settings (it needs 2-step verification) and use it instead of the normal password".into();
    }
    if text.to_ascii_lowercase().contains("basic authentication") {
        return "the provider no longer accepts a password for SMTP (Basic authentication is retired for this mailbox or tenant): connect the account with OAuth instead".into();
    }
    if text.contains("challenge") {
        return "the OAuth access token was rejected: reconnect the account".into();
    }
    if needs_app_password(provider, settings.host.as_str()) {
        return "username or password rejected: Gmail and Yahoo refuse your normal password over SMTP; use an app password (account security settings, needs 2-step verification)".into();
    }
    format!(
        "username or password rejected: check the username ({}) and the password; after a password change, rotate the credential with PUT /v1/channels/{{id}}/credentials",
        settings.username.as_deref().unwrap_or("none set")
    )
}

fn connect_failure(error: &OpenError, settings: &SmtpSettings) -> StageReport {
    let message = error.to_string();
    let hint = match error {
        OpenError::Outbound(super::OutboundError::Unresolvable { .. }) => {
            format!("the host name `{}` does not resolve: check its spelling", settings.host)
        }
        OpenError::Outbound(_) => {
            "the host resolves to a private or local address, which channels may not reach; an operator can allow it with SWITCHBOARD_OUTBOUND_ALLOW".into()
        }
        OpenError::Connect { timed_out: true, .. } => format!(
            "no answer on port {}: a firewall may drop the connection, or the port is wrong (587 for STARTTLS and 465 for TLS are the usual submission ports)",
            settings.port
        ),
        _ => format!(
            "nothing accepts connections on port {} of {}: check host and port (587 STARTTLS, 465 TLS) and any firewall",
            settings.port, settings.host
        ),
    };
    failed("connect", None, message, hint)
}

/// The hint for a TLS failure that is not about the certificate (ports, modes).
fn tls_hint(settings: &SmtpSettings) -> String {
    if settings.security == Security::Tls {
        format!(
            "TLS failed on port {}: if this port expects STARTTLS (usually 587), choose security `starttls`",
            settings.port
        )
    } else {
        "the TLS handshake failed: check security (`starttls` on 587, `tls` on 465) and the server's certificate".into()
    }
}

/// What to do about a refused certificate, by why it was refused.
fn certificate_hint(rejection: &Rejection, settings: &SmtpSettings) -> String {
    let presented = rejection.presented.as_ref();
    let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "?".into(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    match &rejection.problem {
        CertificateProblem::UnknownIssuer => "no authority we trust signed the server's certificate (it is self-signed, or from a private CA): paste that CA certificate, or the server's own certificate, into ca_pem; or compare the sha256 fingerprint below with the server's and trust this certificate (POST /v1/channels/{id}/trusted-certificate); there is no need to turn verification off".into(),
        CertificateProblem::CaUsedAsEndEntity => "the server presents a CA certificate (CA:TRUE, as `openssl req -x509` makes by default) as its own: paste this very certificate into ca_pem, which trusts exactly it, or trust it by its fingerprint; a CA cannot vouch for itself as a server".into(),
        CertificateProblem::Expired => format!(
            "the server's certificate expired on {}: the server's administrator must renew it; trusting it does not help",
            day(presented.map(|p| p.not_after))
        ),
        CertificateProblem::NotYetValid => format!(
            "the server's certificate is valid only from {}: check the server's clock (or ours), or wait until then",
            day(presented.map(|p| p.not_before))
        ),
        CertificateProblem::WrongName => format!(
            "the server's certificate is for {}, not `{}`: connect with a host name the certificate names, or have it reissued for `{}`",
            presented.map_or_else(|| "other names".into(), |p| p.names.join(", ")),
            settings.host,
            settings.host
        ),
        CertificateProblem::Changed { trusted, presented, .. } => format!(
            "the server now presents a different certificate ({presented}) than the one trusted for this channel ({trusted}): if its administrator replaced it, compare the new fingerprint with theirs and trust the new certificate; if not, someone may be intercepting the connection"
        ),
        CertificateProblem::Other(_) => "the server's certificate was refused: its administrator should check it (signature, purpose, revocation)".into(),
    }
}

/// The failed `tls` stage for a failure to establish TLS.
fn tls_failure(failure: &TlsFailure, settings: &SmtpSettings) -> StageReport {
    let message = failure.to_string();
    match failure {
        TlsFailure::Certificate(rejection) => StageReport {
            certificate: rejection.presented.clone().map(|presented| CertificateReport {
                presented,
                problem: rejection.problem.code().to_owned(),
                trusted_sha256: match &rejection.problem {
                    CertificateProblem::Changed { trusted, .. } => Some(trusted.to_string()),
                    _ => None,
                },
            }),
            ..failed("tls", None, message, certificate_hint(rejection, settings))
        },
        TlsFailure::Config(_) => failed(
            "tls",
            None,
            message,
            "the channel's ca_pem cannot be used: paste the certificate again, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----".into(),
        ),
        TlsFailure::NotOffered => failed(
            "tls",
            None,
            message,
            format!(
                "the server does not offer STARTTLS on port {}; on port 465 choose security `tls`",
                settings.port
            ),
        ),
        TlsFailure::Handshake(_) => failed("tls", None, message, tls_hint(settings)),
    }
}

fn mechanism(auth: SmtpAuth) -> Option<Mechanism> {
    match auth {
        SmtpAuth::None => None,
        SmtpAuth::Plain => Some(Mechanism::Plain),
        SmtpAuth::Login => Some(Mechanism::Login),
        SmtpAuth::Xoauth2 => Some(Mechanism::Xoauth2),
    }
}

/// Runs the stages in order and stops at the first that fails.
pub async fn test_smtp(
    settings: &SmtpSettings,
    credential: Option<&SecretString>,
    provider: Option<&str>,
    policy: &OutboundPolicy,
    send: Option<TestSend>,
) -> TestReport {
    let mut stages = Vec::new();
    let finish = |stages: Vec<StageReport>, class: Option<FailureClass>| TestReport {
        ok: class.is_none(),
        stages,
        classification: class,
    };
    let tcp = match connect(settings, policy).await {
        Ok(tcp) => {
            let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            stages.push(passed("connect", format!("connected to {peer}")));
            tcp
        }
        Err(e) => {
            stages.push(connect_failure(&e, settings));
            return finish(stages, Some(FailureClass::Network));
        }
    };
    let mut conn = match open_session(settings, tcp).await {
        Ok(conn) => {
            if settings.security != Security::None {
                stages.push(passed(
                    "tls",
                    if settings.security == Security::Tls {
                        "TLS established"
                    } else {
                        "STARTTLS established"
                    },
                ));
            }
            stages.push(passed("ehlo", "the server greeted us and answered EHLO"));
            conn
        }
        Err(OpenError::Tls(failure)) => {
            stages.push(tls_failure(&failure, settings));
            return finish(stages, Some(FailureClass::Tls));
        }
        Err(OpenError::Timeout(step)) => {
            let stage = if step.contains("TLS") { "tls" } else { "ehlo" };
            stages.push(failed(
                stage,
                None,
                format!("no answer during {step} within {} s", settings.command_timeout_secs),
                "the server accepted the connection but stopped answering: check the port and security (a TLS port answers nothing to plain text, and the other way round)".into(),
            ));
            return finish(stages, Some(FailureClass::Network));
        }
        Err(OpenError::Smtp(e)) => {
            let (code, text) = describe(&e);
            let class = classify(&e, false);
            let stage = if class == FailureClass::Tls {
                "tls"
            } else {
                "ehlo"
            };
            let hint = if class == FailureClass::Tls {
                tls_hint(settings)
            } else {
                "the server refused the session; its reply says why".into()
            };
            stages.push(failed(stage, code, text, hint));
            return finish(stages, Some(class));
        }
        Err(other) => {
            stages.push(failed(
                "ehlo",
                None,
                other.to_string(),
                "the session could not be opened".into(),
            ));
            return finish(stages, Some(FailureClass::Protocol));
        }
    };
    let deadline = Duration::from_secs(u64::from(settings.command_timeout_secs));
    if let Some(mechanism) = mechanism(settings.auth) {
        let Some(secret) = credential else {
            stages.push(failed(
                "auth",
                None,
                "no credential stored".into(),
                "store the password or API key first".into(),
            ));
            return finish(stages, Some(FailureClass::Auth));
        };
        let credentials = Credentials::new(
            settings.username.clone().unwrap_or_default(),
            secret.expose_secret().to_owned(),
        );
        match within(
            deadline,
            "AUTH",
            conn.auth(&[mechanism], &credentials),
            OpenError::Smtp,
        )
        .await
        {
            Ok(response) => stages.push(StageReport {
                stage: "auth",
                ok: true,
                code: response.code().to_string().parse().ok(),
                message: response.message().collect::<Vec<_>>().join(" "),
                hint: None,
                certificate: None,
            }),
            Err(OpenError::Smtp(e)) => {
                let (code, text) = describe(&e);
                let class = classify(&e, true);
                let hint = match class {
                    FailureClass::Auth => auth_hint(code, &text, settings, provider),
                    FailureClass::Temporary => "the server could not check the login just now (4xx); try again in a few minutes".into(),
                    _ => "the login exchange failed; the server's reply says why".into(),
                };
                stages.push(failed("auth", code, text, hint));
                discard(conn).await;
                return finish(stages, Some(class));
            }
            Err(other) => {
                stages.push(failed(
                    "auth",
                    None,
                    other.to_string(),
                    "the server stopped answering during the login".into(),
                ));
                return finish(stages, Some(FailureClass::Network));
            }
        }
    }
    if let Some(send) = send {
        let attempt = if send.deliver {
            send_test_message(&mut conn, &send, deadline).await
        } else {
            try_envelope(&mut conn, &send, deadline).await
        };
        match attempt {
            Ok(message) => stages.push(passed("send", message)),
            Err((code, text, class)) => {
                stages.push(failed(
                    "send",
                    code,
                    text,
                    "the server refused the test message; its reply says why (a relay may only accept verified sender domains)".into(),
                ));
                discard(conn).await;
                return finish(stages, Some(class));
            }
        }
    }
    let _ = within(deadline, "QUIT", conn.quit(), OpenError::Smtp).await;
    finish(stages, None)
}

/// An address as lettre takes it, or why not (as a failed stage).
fn lettre_address(
    a: &EmailAddress,
) -> Result<lettre::Address, (Option<u16>, String, FailureClass)> {
    a.to_string()
        .parse::<lettre::Address>()
        .map_err(|e| (None, e.to_string(), FailureClass::Protocol))
}

/// MAIL FROM and RCPT TO, then RSET: what the server says about an envelope, without a
/// message.
async fn try_envelope(
    conn: &mut lettre::transport::smtp::client::AsyncSmtpConnection,
    send: &TestSend,
    deadline: Duration,
) -> Result<String, (Option<u16>, String, FailureClass)> {
    use lettre::transport::smtp::commands::{Mail, Rcpt, Rset};
    let refused = |e: OpenError| match e {
        OpenError::Smtp(e) => {
            let (code, text) = describe(&e);
            (code, text, classify(&e, false))
        }
        other => (None, other.to_string(), FailureClass::Network),
    };
    within(
        deadline,
        "MAIL FROM",
        conn.command(Mail::new(Some(lettre_address(&send.from)?), vec![])),
        OpenError::Smtp,
    )
    .await
    .map_err(refused)?;
    let response = within(
        deadline,
        "RCPT TO",
        conn.command(Rcpt::new(lettre_address(&send.to)?, vec![])),
        OpenError::Smtp,
    )
    .await
    .map_err(refused)?;
    let _ = within(deadline, "RSET", conn.command(Rset), OpenError::Smtp).await;
    Ok(format!(
        "the server accepted the envelope ({}); nothing was sent",
        response.code()
    ))
}

/// Sends a short test message; on failure, the reply code, text and classification.
async fn send_test_message(
    conn: &mut lettre::transport::smtp::client::AsyncSmtpConnection,
    send: &TestSend,
    deadline: Duration,
) -> Result<String, (Option<u16>, String, FailureClass)> {
    let message = Message::builder()
        .from(Mailbox::new(
            Some("Switchboard test".into()),
            lettre_address(&send.from)?,
        ))
        .to(Mailbox::new(None, lettre_address(&send.to)?))
        .subject("Switchboard channel test")
        .body(
            "This message was sent by Switchboard to test a send channel. No action is needed."
                .to_owned(),
        )
        .map_err(|e| (None, e.to_string(), FailureClass::Protocol))?;
    match within(
        deadline,
        "sending",
        conn.send(message.envelope(), &message.formatted()),
        OpenError::Smtp,
    )
    .await
    {
        Ok(response) => Ok(response.message().collect::<Vec<_>>().join(" ")),
        Err(OpenError::Smtp(e)) => {
            let (code, text) = describe(&e);
            Err((code, text, classify(&e, false)))
        }
        Err(other) => Err((None, other.to_string(), FailureClass::Network)),
    }
}
