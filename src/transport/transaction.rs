//! One SMTP mail transaction on an open session, done by hand rather than by lettre's `send`
//! so that each recipient keeps its own answer: MAIL FROM with what the server announced in
//! EHLO (SIZE, SMTPUTF8, 8BITMIME), one RCPT per recipient, DATA for those accepted.

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::classify::{FailureClass, classify, describe};
use super::smtp::{OpenError, hello_name, within};
use crate::domain::recipients::{RcptOutcome, Verdict};

/// What a server said about itself in its EHLO reply that changes how we send. lettre keeps
/// only some of it (not SIZE), so we read the reply ourselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFeatures {
    /// The largest message it takes (RFC 1870); `None` when it names no limit.
    pub size_limit: Option<u64>,
    /// RFC 6531: addresses with non-ASCII characters may be sent as they are.
    pub smtputf8: bool,
    /// RFC 6152: 8-bit message bodies.
    pub eight_bit_mime: bool,
}

impl ServerFeatures {
    pub fn from_ehlo(response: &Response) -> Self {
        let mut features = Self::default();
        // The first line is the server's name; the rest are keywords with parameters.
        for line in response.message().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                // `SIZE` alone or `SIZE 0` announces the extension without a fixed limit.
                "SIZE" => {
                    features.size_limit = words
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|n| *n > 0)
                }
                "SMTPUTF8" => features.smtputf8 = true,
                "8BITMIME" => features.eight_bit_mime = true,
                _ => {}
            }
        }
        features
    }
}

/// Says EHLO again to read the server's features (one round trip per session, not per
/// message). Done before AUTH: RFC 5321 lets a client repeat EHLO, and a fresh EHLO keeps
/// any TLS state.
pub async fn read_features(
    session: &mut AsyncSmtpConnection,
    deadline: Duration,
) -> Result<ServerFeatures, OpenError> {
    let response = within(
        deadline,
        "EHLO",
        session.command(Ehlo::new(hello_name())),
        OpenError::Smtp,
    )
    .await?;
    Ok(ServerFeatures::from_ehlo(&response))
}

/// The step of a transaction a failure happened at: it decides whether the message may have
/// been delivered, and whether the session was simply stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before anything was sent (a limit we know the server will refuse).
    Before,
    /// MAIL FROM: the first command of the transaction.
    Mail,
    Rcpt,
    /// The DATA command, before the message.
    Data,
    /// After the message's final dot: the server may have taken it.
    EndOfData,
}

/// A transaction that failed as a whole.
#[derive(Debug)]
pub struct TransactionError {
    pub step: Step,
    pub class: FailureClass,
    pub code: Option<u16>,
    pub message: String,
    /// The server went away or said it is closing (421), rather than judging our command.
    pub closed: bool,
}

impl TransactionError {
    fn at(step: Step, error: OpenError) -> Self {
        match error {
            OpenError::Smtp(e) => {
                let (code, message) = describe(&e);
                let class = classify(&e, false);
                Self {
                    step,
                    closed: class == FailureClass::Network || code == Some(421),
                    class,
                    code,
                    message,
                }
            }
            other => Self {
                step,
                class: FailureClass::Network,
                code: None,
                message: other.to_string(),
                closed: true,
            },
        }
    }

    fn refused(step: Step, class: FailureClass, message: String) -> Self {
        Self {
            step,
            class,
            code: None,
            message,
            closed: false,
        }
    }

    /// The server closed the session before it saw our first command: nothing was sent, and
    /// a fresh session may send at once.
    pub fn stale_session(&self) -> bool {
        self.step == Step::Mail && self.closed
    }

    /// The connection broke after the message's end and before the server's answer: it may
    /// have taken the message, so a retry may deliver it twice.
    pub fn possibly_delivered(&self) -> bool {
        self.step == Step::EndOfData && self.closed && self.code.is_none()
    }
}

/// What a transaction did: each recipient's answer, and the server's reply to the message
/// when at least one recipient was accepted and the message taken.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub recipients: Vec<RcptOutcome>,
    pub delivered: Option<String>,
}

fn joined(response: &Response) -> String {
    response.message().collect::<Vec<_>>().join(" ")
}

/// Runs one transaction. Recipients refused here do not fail the message; when none is
/// accepted the transaction is reset and nothing is sent.
pub async fn transact(
    session: &mut AsyncSmtpConnection,
    features: &ServerFeatures,
    envelope: &Envelope,
    message: &[u8],
    deadline: Duration,
) -> Result<Transaction, TransactionError> {
    if let Some(limit) = features.size_limit
        && message.len() as u64 > limit
    {
        return Err(TransactionError::refused(
            Step::Before,
            FailureClass::Permanent,
            format!(
                "the message is {} bytes and the server takes at most {limit} bytes (its EHLO SIZE); it was not sent",
                message.len()
            ),
        ));
    }
    let mut parameters = Vec::new();
    if features.size_limit.is_some() {
        parameters.push(MailParameter::Size(message.len()));
    }
    if !message.is_ascii() {
        if !features.eight_bit_mime {
            return Err(TransactionError::refused(
                Step::Before,
                FailureClass::Permanent,
                "the message has 8-bit content and the server does not offer 8BITMIME".into(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let sender_ascii = envelope
        .from()
        .is_none_or(|a| AsRef::<str>::as_ref(a).is_ascii());
    if !sender_ascii && !features.smtputf8 {
        return Err(TransactionError::refused(
            Step::Before,
            FailureClass::Permanent,
            format!(
                "the envelope sender `{}` has non-ASCII characters and the server does not offer SMTPUTF8; it was not sent rather than altered",
                envelope.from().map(|a| a.to_string()).unwrap_or_default()
            ),
        ));
    }
    let non_ascii = !sender_ascii
        || envelope
            .to()
            .iter()
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if features.smtputf8 && non_ascii {
        parameters.push(MailParameter::SmtpUtfEight);
    }

    within(
        deadline,
        "MAIL FROM",
        session.command(Mail::new(envelope.from().cloned(), parameters)),
        OpenError::Smtp,
    )
    .await
    .map_err(|e| TransactionError::at(Step::Mail, e))?;

    let mut recipients = Vec::with_capacity(envelope.to().len());
    for address in envelope.to() {
        recipients.push(rcpt(session, features, address, deadline).await?);
    }
    if !recipients.iter().any(|r| r.verdict == Verdict::Accepted) {
        // Nobody to send to: end the transaction so the session stays usable.
        within(deadline, "RSET", session.command(Rset), OpenError::Smtp)
            .await
            .map_err(|e| TransactionError::at(Step::Rcpt, e))?;
        return Ok(Transaction {
            recipients,
            delivered: None,
        });
    }
    within(deadline, "DATA", session.command(Data), OpenError::Smtp)
        .await
        .map_err(|e| TransactionError::at(Step::Data, e))?;
    let reply = within(
        deadline,
        "the message data",
        session.message(message),
        OpenError::Smtp,
    )
    .await
    .map_err(|e| TransactionError::at(Step::EndOfData, e))?;
    Ok(Transaction {
        recipients,
        delivered: Some(joined(&reply)),
    })
}

/// One RCPT: a reply code is this recipient's answer; a broken connection fails the whole
/// transaction.
async fn rcpt(
    session: &mut AsyncSmtpConnection,
    features: &ServerFeatures,
    address: &Address,
    deadline: Duration,
) -> Result<RcptOutcome, TransactionError> {
    let shown = address.to_string();
    if !features.smtputf8 && !AsRef::<str>::as_ref(address).is_ascii() {
        return Ok(RcptOutcome {
            address: shown,
            verdict: Verdict::Refused,
            code: None,
            reply: "the address has non-ASCII characters and the server does not offer SMTPUTF8; it was not sent rather than altered".into(),
        });
    }
    match within(
        deadline,
        "RCPT TO",
        session.command(Rcpt::new(address.clone(), vec![])),
        OpenError::Smtp,
    )
    .await
    {
        Ok(response) => Ok(RcptOutcome {
            address: shown,
            verdict: Verdict::Accepted,
            code: Some(u16::from(response.code())),
            reply: joined(&response),
        }),
        Err(OpenError::Smtp(e)) if e.status().is_some() => {
            let (code, reply) = describe(&e);
            // 421 is the server closing the session, not an answer about this recipient.
            if code == Some(421) {
                return Err(TransactionError::at(Step::Rcpt, OpenError::Smtp(e)));
            }
            let verdict = if e.is_transient() {
                Verdict::Deferred
            } else {
                Verdict::Refused
            };
            Ok(RcptOutcome {
                address: shown,
                verdict,
                code,
                reply,
            })
        }
        Err(other) => Err(TransactionError::at(Step::Rcpt, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Response {
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            text.push_str(&format!("250{sep}{line}\r\n"));
        }
        text.parse().unwrap()
    }

    #[test]
    fn features_come_from_the_ehlo_keywords() {
        let f = ServerFeatures::from_ehlo(&ehlo(&[
            "mx.example greets us",
            "PIPELINING",
            "SIZE 10240000",
            "8BITMIME",
            "SMTPUTF8",
        ]));
        assert_eq!(
            f,
            ServerFeatures {
                size_limit: Some(10_240_000),
                smtputf8: true,
                eight_bit_mime: true
            }
        );
        // No limit announced, or SIZE without a number (or 0): no limit to enforce.
        for lines in [&["mx"][..], &["mx", "SIZE"], &["mx", "size 0"]] {
            assert_eq!(ServerFeatures::from_ehlo(&ehlo(lines)).size_limit, None);
        }
        // The server's name is not a keyword, even when it looks like one.
        assert!(!ServerFeatures::from_ehlo(&ehlo(&["SMTPUTF8", "SIZE 5"])).smtputf8);
    }

    #[test]
    fn only_a_drop_before_the_first_command_is_a_stale_session() {
        let dropped = |step| TransactionError {
            step,
            class: FailureClass::Network,
            code: None,
            message: "peer closed connection".into(),
            closed: true,
        };
        assert!(dropped(Step::Mail).stale_session());
        assert!(!dropped(Step::Rcpt).stale_session());
        assert!(!dropped(Step::EndOfData).stale_session());
        assert!(dropped(Step::EndOfData).possibly_delivered());
        assert!(!dropped(Step::Data).possibly_delivered());
        let refused = TransactionError {
            closed: false,
            class: FailureClass::Permanent,
            code: Some(550),
            ..dropped(Step::Mail)
        };
        assert!(!refused.stale_session());
    }
}
