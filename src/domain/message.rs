//! A message as the API accepts it, parsed once at acceptance: the rest of the code (outbox,
//! renderer, router) can put every address, header and body on the wire without re-checking.

use std::collections::HashSet;
use std::fmt;

use super::email::{Mailbox, shown};
use super::{DomainError, EmailAddress, MessageId};

/// The name of a custom header such as `X-Campaign`: RFC 5322 `ftext`, case preserved.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HeaderName(String);

impl HeaderName {
    /// Long enough for any real header name, short enough that `Name: ` still leaves room on
    /// a 78-character line for the start of the value.
    pub const MAX_CHARS: usize = 76;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if has_control(raw) {
            return Err(DomainError::new(
                "a header name must not contain line breaks, NUL or other control characters",
            ));
        }
        if raw.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err(DomainError::new(format!(
                "a header name must be 1 to {} characters",
                Self::MAX_CHARS
            )));
        }
        if !raw.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return Err(DomainError::new(format!(
                "`{}` is not a valid header name: use ASCII letters, digits and -, such as \
                 X-Campaign (no spaces or :)",
                shown(raw)
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of a header (or the subject): one line, any Unicode; the transport encodes and
/// folds it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HeaderValue(String);

impl HeaderValue {
    /// RFC 5322 §2.1.1's line limit; folding at send time keeps the actual lines shorter.
    pub const MAX_BYTES: usize = 998;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if has_control_except_tab(raw) {
            return Err(DomainError::new(
                "must not contain line breaks, NUL or other control characters (a tab is fine)",
            ));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(DomainError::new(format!(
                "must be at most {} bytes; this one is {}",
                Self::MAX_BYTES,
                raw.len()
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn has_control(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

fn has_control_except_tab(raw: &str) -> bool {
    raw.chars().any(|c| c.is_control() && c != '\t')
}

/// A message that passed every rule of acceptance.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageDraft {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub subject: HeaderValue,
    /// `None` rather than empty.
    pub text: Option<String>,
    /// `None` rather than empty.
    pub html: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The fields of a send request, as they arrive.
#[derive(Clone, Copy, Debug)]
pub struct DraftInput<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub bcc: &'a [String],
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub headers: &'a [(String, String)],
}

/// Why a send request was refused: which request field (`to[2]`, `headers.X-Campaign`), a
/// stable machine-readable `code`, and a `reason` written for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DraftError {
    pub field: String,
    pub code: &'static str,
    pub reason: String,
}

impl DraftError {
    pub const INVALID_ADDRESS: &'static str = "invalid_address";
    pub const HEADER_INJECTION: &'static str = "header_injection";
    pub const NO_RECIPIENTS: &'static str = "no_recipients";
    pub const TOO_MANY_RECIPIENTS: &'static str = "too_many_recipients";
    pub const NO_BODY: &'static str = "no_body";
    pub const INVALID_BODY: &'static str = "invalid_body";
    pub const HEADER_NOT_ALLOWED: &'static str = "header_not_allowed";
    pub const INVALID_HEADER: &'static str = "invalid_header";
    pub const DUPLICATE_HEADER: &'static str = "duplicate_header";
    pub const TOO_MANY_HEADERS: &'static str = "too_many_headers";

    fn new(field: impl Into<String>, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            reason: reason.into(),
        }
    }
}

impl MessageDraft {
    pub const MAX_RECIPIENTS: usize = 1000;
    pub const MAX_HEADERS: usize = 50;

    /// Applies every acceptance rule; the first broken one is reported.
    pub fn parse(input: &DraftInput<'_>) -> Result<Self, DraftError> {
        let draft = Self {
            from: sender(input.from)?,
            to: mailboxes("to", input.to)?,
            cc: mailboxes("cc", input.cc)?,
            bcc: mailboxes("bcc", input.bcc)?,
            reply_to: input
                .reply_to
                .map(|raw| mailbox("reply_to".into(), raw))
                .transpose()?,
            subject: header_value("subject".into(), input.subject)?,
            text: body("text", input.text)?,
            html: body("html", input.html)?,
            headers: custom_headers(input.headers)?,
        };
        match draft.recipient_count() {
            0 => {
                return Err(DraftError::new(
                    "to",
                    DraftError::NO_RECIPIENTS,
                    "give at least one recipient in `to`, `cc` or `bcc`",
                ));
            }
            n if n > Self::MAX_RECIPIENTS => {
                return Err(DraftError::new(
                    "to",
                    DraftError::TOO_MANY_RECIPIENTS,
                    format!(
                        "{n} distinct recipients across `to`, `cc` and `bcc`; at most {} per \
                         message, so split it into several messages",
                        Self::MAX_RECIPIENTS
                    ),
                ));
            }
            _ => {}
        }
        if draft.text.is_none() && draft.html.is_none() {
            return Err(DraftError::new(
                "text",
                DraftError::NO_BODY,
                "give a body in `text`, `html` or both",
            ));
        }
        Ok(draft)
    }

    /// Envelope recipients: to, cc and bcc, de-duplicated by normalized address, first
    /// occurrence kept, in order.
    pub fn envelope_recipients(&self) -> Vec<&EmailAddress> {
        let mut seen = HashSet::new();
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .map(|m| &m.address)
            .filter(|a| seen.insert(a.normalized()))
            .collect()
    }

    pub fn recipient_count(&self) -> usize {
        self.envelope_recipients().len()
    }

    /// Bytes the message will roughly take on the wire (headers + bodies), for the size
    /// limit. Errs on the large side: non-ASCII is counted as base64.
    pub fn size_estimate(&self) -> usize {
        // Date, Message-ID, MIME-Version, the Content-* headers of up to three parts and
        // two multipart boundaries, with room to spare.
        const FIXED: usize = 800;
        let line = |name: &str, value_len: usize| name.len() + 2 + value_len + 2;
        let list = |mailboxes: &[Mailbox]| -> usize {
            mailboxes
                .iter()
                .map(|m| header_text_len(&m.to_string()) + 2)
                .sum()
        };
        let mut size = FIXED + line("From", header_text_len(&self.from.to_string()));
        if !self.to.is_empty() {
            size += line("To", list(&self.to));
        }
        if !self.cc.is_empty() {
            size += line("Cc", list(&self.cc));
        }
        if let Some(reply_to) = &self.reply_to {
            size += line("Reply-To", header_text_len(&reply_to.to_string()));
        }
        size += line("Subject", header_text_len(self.subject.as_str()));
        for (name, value) in &self.headers {
            size += line(name.as_str(), header_text_len(value.as_str()));
        }
        size + [&self.text, &self.html]
            .into_iter()
            .flatten()
            .map(|b| body_len(b))
            .sum::<usize>()
    }
}

/// Header text as sent: ASCII as is, anything else as RFC 2047 base64 encoded-words of at
/// most 75 characters, each with `=?utf-8?b?…?=` around it and a fold before it.
fn header_text_len(text: &str) -> usize {
    if text.is_ascii() {
        return text.len();
    }
    let encoded = base64_len(text.len());
    encoded + encoded.div_ceil(63) * (12 + 3)
}

/// A body as sent: 7-bit text with CRLF line ends, or base64 in 76-character lines.
fn body_len(body: &str) -> usize {
    if body.is_ascii() {
        return body.len() + body.matches('\n').count();
    }
    let encoded = base64_len(body.len());
    encoded + encoded.div_ceil(76) * 2
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The Message-ID assigned at acceptance: `<{message id}@{From's domain}>`.
pub fn message_id_header(id: MessageId, from: &EmailAddress) -> String {
    format!("<{id}@{}>", from.domain())
}

fn mailbox(field: String, raw: &str) -> Result<Mailbox, DraftError> {
    if has_control(raw) {
        return Err(DraftError::new(
            field,
            DraftError::HEADER_INJECTION,
            "an address must not contain line breaks, tabs, NUL or other control characters",
        ));
    }
    Mailbox::parse(raw).map_err(|e| DraftError::new(field, DraftError::INVALID_ADDRESS, e.reason))
}

/// The From mailbox. A quoted local part is refused here although it is valid: lettre
/// (0.11.23) re-reads the From header with a parser that does not know quoted local parts and
/// then fails the whole message as having no From. Accepting it would only defer the failure
/// to send time, where the user cannot fix it. Recipients are not affected.
fn sender(raw: &str) -> Result<Mailbox, DraftError> {
    let from = mailbox("from".into(), raw)?;
    if from.address.local_part().starts_with('"') {
        return Err(DraftError::new(
            "from",
            DraftError::INVALID_ADDRESS,
            format!(
                "Switchboard cannot send from {}, whose part before @ needs quotes; use a \
                 sending address without spaces or quotes",
                from.address
            ),
        ));
    }
    Ok(from)
}

fn mailboxes(field: &str, raw: &[String]) -> Result<Vec<Mailbox>, DraftError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| mailbox(format!("{field}[{i}]"), r))
        .collect()
}

fn header_value(field: String, raw: &str) -> Result<HeaderValue, DraftError> {
    let code = if has_control_except_tab(raw) {
        DraftError::HEADER_INJECTION
    } else {
        DraftError::INVALID_HEADER
    };
    HeaderValue::parse(raw).map_err(|e| DraftError::new(field, code, e.reason))
}

fn body(field: &str, raw: Option<&str>) -> Result<Option<String>, DraftError> {
    match raw {
        None | Some("") => Ok(None),
        Some(b) if b.contains('\0') => Err(DraftError::new(
            field,
            DraftError::INVALID_BODY,
            "contains a NUL byte, which mail cannot carry; remove it",
        )),
        Some(b) => Ok(Some(b.to_owned())),
    }
}

fn custom_headers(raw: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, DraftError> {
    if raw.len() > MessageDraft::MAX_HEADERS {
        return Err(DraftError::new(
            "headers",
            DraftError::TOO_MANY_HEADERS,
            format!(
                "{} custom headers; at most {}",
                raw.len(),
                MessageDraft::MAX_HEADERS
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut headers = Vec::with_capacity(raw.len());
    for (i, (name, value)) in raw.iter().enumerate() {
        // An invalid name cannot be echoed in `field`, so the position stands in for it.
        let code = if has_control(name) {
            DraftError::HEADER_INJECTION
        } else {
            DraftError::INVALID_HEADER
        };
        let name = HeaderName::parse(name)
            .map_err(|e| DraftError::new(format!("headers[{i}]"), code, e.reason))?;
        let field = format!("headers.{name}");
        if let Some(reason) = reserved(name.as_str()) {
            return Err(DraftError::new(
                field,
                DraftError::HEADER_NOT_ALLOWED,
                format!("{name} cannot be set as a custom header: {reason}"),
            ));
        }
        if !seen.insert(name.as_str().to_ascii_lowercase()) {
            return Err(DraftError::new(
                field,
                DraftError::DUPLICATE_HEADER,
                format!(
                    "{name} is given more than once (names are case-insensitive); give it once"
                ),
            ));
        }
        let value = header_value(field, value)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Headers that Switchboard, the MIME builder or a mail server sets: letting a request set
/// them would duplicate or contradict what goes on the wire (a Bcc header would even reveal
/// the blind copies).
fn reserved(name: &str) -> Option<&'static str> {
    const MIME: &str = "the MIME structure is built by Switchboard from `text` and `html`";
    const RESERVED: &[(&str, &str)] = &[
        ("From", "use the `from` field"),
        ("To", "use the `to` field"),
        ("Cc", "use the `cc` field"),
        ("Bcc", "use the `bcc` field"),
        ("Reply-To", "use the `reply_to` field"),
        ("Subject", "use the `subject` field"),
        ("Message-ID", "the Message-ID is assigned by Switchboard"),
        (
            "Date",
            "the Date is set by Switchboard when the message is accepted",
        ),
        (
            "Return-Path",
            "the return path (bounce address) is configured on the send channel",
        ),
        (
            "Sender",
            "the `from` field names the sender, and the send channel decides who transmits it",
        ),
        ("MIME-Version", MIME),
        ("Content-Type", MIME),
        ("Content-Transfer-Encoding", MIME),
        ("Content-Disposition", MIME),
        (
            "DKIM-Signature",
            "DKIM signatures are added by the sending mail server",
        ),
        (
            "Received",
            "Received headers are added by the mail servers a message passes through",
        ),
    ];
    RESERVED
        .iter()
        .find(|(reserved, _)| reserved.eq_ignore_ascii_case(name))
        .map(|&(_, reason)| reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A request that passes, for each test to break in one place.
    struct Request {
        from: String,
        to: Vec<String>,
        cc: Vec<String>,
        bcc: Vec<String>,
        reply_to: Option<String>,
        subject: String,
        text: Option<String>,
        html: Option<String>,
        headers: Vec<(String, String)>,
    }

    impl Request {
        fn new() -> Self {
            Self {
                from: "Rep One <rep@acme.test>".into(),
                to: strings(&["buyer@client.test"]),
                cc: vec![],
                bcc: vec![],
                reply_to: None,
                subject: "Quick question".into(),
                text: Some("Hello".into()),
                html: None,
                headers: vec![],
            }
        }

        fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        fn parse(&self) -> Result<MessageDraft, DraftError> {
            MessageDraft::parse(&DraftInput {
                from: &self.from,
                to: &self.to,
                cc: &self.cc,
                bcc: &self.bcc,
                reply_to: self.reply_to.as_deref(),
                subject: &self.subject,
                text: self.text.as_deref(),
                html: self.html.as_deref(),
                headers: &self.headers,
            })
        }

        #[track_caller]
        fn refused(&self, field: &str, code: &str) -> DraftError {
            let e = self.parse().expect_err("accepted");
            assert_eq!((e.field.as_str(), e.code), (field, code), "{e}");
            assert!(!e.reason.chars().any(char::is_control), "{:?}", e.reason);
            e
        }
    }

    #[test]
    fn a_plain_request_is_accepted() {
        let mut r = Request::new();
        r.cc = strings(&["\"Doe, Jane\" <jane@client.test>"]);
        r.bcc = strings(&["archive@acme.test"]);
        r.reply_to = Some("Sales <sales@acme.test>".into());
        r.html = Some("<p>Hello</p>".into());
        let d = r.header("X-Campaign", "Q4\tEMEA").parse().unwrap();
        assert_eq!(d.from.name.as_deref(), Some("Rep One"));
        assert_eq!(d.cc[0].name.as_deref(), Some("Doe, Jane"));
        assert_eq!(
            d.reply_to.as_ref().unwrap().address.to_string(),
            "sales@acme.test"
        );
        assert_eq!(d.subject.as_str(), "Quick question");
        assert_eq!(d.headers[0].0.as_str(), "X-Campaign");
        assert_eq!(d.headers[0].1.as_str(), "Q4\tEMEA");
        assert_eq!(d.recipient_count(), 3);
    }

    #[test]
    fn bad_addresses_name_their_field() {
        let mut r = Request::new();
        r.from = "rep".into();
        r.refused("from", DraftError::INVALID_ADDRESS);

        let mut r = Request::new();
        r.to = strings(&["a@client.test", "b@client.test", "a@x.test, b@y.test"]);
        let e = r.refused("to[2]", DraftError::INVALID_ADDRESS);
        assert!(e.reason.contains("one address per entry"), "{e}");

        let mut r = Request::new();
        r.cc = strings(&["<cc@client.test"]);
        r.refused("cc[0]", DraftError::INVALID_ADDRESS);

        let mut r = Request::new();
        r.bcc = strings(&["ok@client.test", "jürgen@client.test"]);
        let e = r.refused("bcc[1]", DraftError::INVALID_ADDRESS);
        assert!(e.reason.contains("SMTPUTF8"), "{e}");

        let mut r = Request::new();
        r.reply_to = Some("Sales (team) <sales@acme.test>".into());
        r.refused("reply_to", DraftError::INVALID_ADDRESS);
    }

    #[test]
    fn quoted_local_parts_may_receive_but_not_send() {
        let mut r = Request::new();
        r.reply_to = Some("\"john doe\"@acme.test".into());
        r.to = strings(&["\"jane doe\"@client.test"]);
        assert!(r.parse().is_ok());
        r.from = "Rep <\"rep one\"@acme.test>".into();
        let e = r.refused("from", DraftError::INVALID_ADDRESS);
        assert!(e.reason.contains("needs quotes"), "{e}");
        // Needless quotes are dropped, so this is plain rep@acme.test.
        r.from = "\"rep\"@acme.test".into();
        assert_eq!(r.parse().unwrap().from.address.to_string(), "rep@acme.test");
    }

    #[test]
    fn control_characters_in_addresses_are_header_injection() {
        for raw in [
            "\"Rep\r\nBcc: x@evil.test\" <rep@acme.test>",
            "Rep\nBcc: x@evil.test <rep@acme.test>",
            "rep@acme.test\nBcc: x@evil.test",
            "rep@acme.test\r\n",
            "rep\0@acme.test",
            "Rep\tOne <rep@acme.test>",
        ] {
            let mut r = Request::new();
            r.from = raw.into();
            r.refused("from", DraftError::HEADER_INJECTION);
            let mut r = Request::new();
            r.to.push(raw.into());
            r.refused("to[1]", DraftError::HEADER_INJECTION);
            let mut r = Request::new();
            r.reply_to = Some(raw.into());
            r.refused("reply_to", DraftError::HEADER_INJECTION);
        }
    }

    #[test]
    fn display_names_with_commas_quotes_and_utf8_are_kept() {
        let mut r = Request::new();
        r.from = "\"Müller, Jürgen\" <jm@acme.test>".into();
        r.to = strings(&[
            "営業 <sales@client.test>",
            r#""Jane \"JD\" Doe" <jane@client.test>"#,
        ]);
        let d = r.parse().unwrap();
        assert_eq!(d.from.name.as_deref(), Some("Müller, Jürgen"));
        assert_eq!(d.to[0].name.as_deref(), Some("営業"));
        assert_eq!(d.to[1].name.as_deref(), Some(r#"Jane "JD" Doe"#));
    }

    #[test]
    fn idn_domains_and_quoted_local_parts_are_accepted() {
        let mut r = Request::new();
        r.to = strings(&[
            "anna@bücher.example",
            "\"john doe\"@client.test",
            r#""a\"b"@client.test"#,
        ]);
        let d = r.parse().unwrap();
        let sent: Vec<String> = d
            .envelope_recipients()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            sent,
            [
                "anna@xn--bcher-kva.example",
                "\"john doe\"@client.test",
                r#""a\"b"@client.test"#,
            ]
        );
    }

    #[test]
    fn recipients_are_deduplicated_in_order() {
        let mut r = Request::new();
        r.to = strings(&["A@x.test", "b@x.test", "Again <a@X.test>"]);
        r.cc = strings(&["B@X.TEST", "c@x.test"]);
        r.bcc = strings(&["\"a\"@x.test", "d@x.test", "c@x.test"]);
        let d = r.parse().unwrap();
        let sent: Vec<String> = d
            .envelope_recipients()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(sent, ["A@x.test", "b@x.test", "c@x.test", "d@x.test"]);
        assert_eq!(d.recipient_count(), 4);
        // The headers still show what the request gave.
        assert_eq!(d.to.len(), 3);
    }

    #[test]
    fn at_least_one_recipient_anywhere() {
        let mut r = Request::new();
        r.to.clear();
        r.refused("to", DraftError::NO_RECIPIENTS);
        r.bcc = strings(&["hidden@client.test"]);
        assert_eq!(r.parse().unwrap().recipient_count(), 1);
        r.bcc.clear();
        r.cc = strings(&["seen@client.test"]);
        assert!(r.parse().is_ok());
    }

    #[test]
    fn recipients_are_limited_after_deduplication() {
        let at_limit: Vec<String> = (0..MessageDraft::MAX_RECIPIENTS)
            .map(|i| format!("r{i}@client.test"))
            .collect();
        let mut r = Request::new();
        r.to = at_limit[..600].to_vec();
        r.bcc = at_limit[400..].to_vec();
        r.cc = at_limit.iter().map(|a| a.to_uppercase()).collect();
        assert_eq!(r.parse().unwrap().recipient_count(), 1000);
        r.bcc.push("one-more@client.test".into());
        let e = r.refused("to", DraftError::TOO_MANY_RECIPIENTS);
        assert!(e.reason.contains("1001"), "{e}");
    }

    #[test]
    fn a_body_is_required_and_may_not_hold_nul() {
        let mut r = Request::new();
        r.text = None;
        r.refused("text", DraftError::NO_BODY);
        r.text = Some(String::new());
        r.html = Some(String::new());
        r.refused("text", DraftError::NO_BODY);
        r.html = Some("<p>Hi</p>".into());
        let d = r.parse().unwrap();
        assert_eq!((d.text, d.html.as_deref()), (None, Some("<p>Hi</p>")));

        let mut r = Request::new();
        r.text = Some("a\0b".into());
        r.refused("text", DraftError::INVALID_BODY);
        let mut r = Request::new();
        r.html = Some("<p>\0</p>".into());
        r.refused("html", DraftError::INVALID_BODY);
        // Line breaks and tabs are what bodies are made of.
        let mut r = Request::new();
        r.text = Some("Hi,\r\n\tthanks\n".into());
        assert!(r.parse().is_ok());
    }

    #[test]
    fn subject_may_be_empty_or_utf8_but_is_one_line() {
        let mut r = Request::new();
        r.subject = String::new();
        assert_eq!(r.parse().unwrap().subject.as_str(), "");
        r.subject = "Grüße aus Köln\tmit Tab".into();
        assert!(r.parse().is_ok());
        for bad in [
            "Hi\r\nBcc: x@evil.test",
            "Hi\nBcc: x@evil.test",
            "Hi\r",
            "Hi\0",
            "Hi\u{1b}[31m",
        ] {
            r.subject = bad.into();
            r.refused("subject", DraftError::HEADER_INJECTION);
        }
        r.subject = "é".repeat(499);
        assert!(r.parse().is_ok());
        r.subject = "é".repeat(500);
        r.refused("subject", DraftError::INVALID_HEADER);
    }

    #[test]
    fn custom_headers_are_kept_in_order_with_their_case() {
        let d = Request::new()
            .header("X-Campaign", "q4")
            .header("List-Unsubscribe", "<mailto:stop@acme.test>")
            .header("x-crm-id", "")
            .parse()
            .unwrap();
        let names: Vec<&str> = d.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Campaign", "List-Unsubscribe", "x-crm-id"]);
    }

    #[test]
    fn reserved_headers_point_to_the_right_field() {
        for (name, hint) in [
            ("Bcc", "use the `bcc` field"),
            ("bcc", "use the `bcc` field"),
            ("From", "`from`"),
            ("TO", "`to`"),
            ("Cc", "`cc`"),
            ("reply-to", "`reply_to`"),
            ("Subject", "`subject`"),
            ("Message-Id", "the Message-ID is assigned by Switchboard"),
            ("Return-Path", "send channel"),
            ("Sender", "`from`"),
            ("Date", "Switchboard"),
            ("MIME-Version", "`text` and `html`"),
            ("content-type", "`text` and `html`"),
            ("Content-Transfer-Encoding", "`text` and `html`"),
            ("Content-Disposition", "`text` and `html`"),
            ("DKIM-Signature", "DKIM"),
            ("Received", "mail servers"),
        ] {
            let r = Request::new().header(name, "x");
            let e = r.refused(&format!("headers.{name}"), DraftError::HEADER_NOT_ALLOWED);
            assert!(e.reason.contains(hint), "{name}: {e}");
        }
    }

    #[test]
    fn header_names_must_be_printable_ascii_without_colon() {
        for bad in [
            "",
            "X Campaign",
            "X-Campaign:",
            "X-Kampagne-ü",
            "Bcc: x@evil.test",
        ] {
            Request::new()
                .header(bad, "x")
                .refused("headers[0]", DraftError::INVALID_HEADER);
        }
        let long = "X".repeat(HeaderName::MAX_CHARS + 1);
        Request::new()
            .header("X-Ok", "1")
            .header(&long, "x")
            .refused("headers[1]", DraftError::INVALID_HEADER);
        assert!(
            Request::new()
                .header(&"X".repeat(HeaderName::MAX_CHARS), "x")
                .parse()
                .is_ok()
        );
    }

    #[test]
    fn control_characters_in_header_names_are_header_injection() {
        for bad in ["X-A\r\nBcc", "X-A\n", "X-A\0", "X\tA"] {
            Request::new()
                .header(bad, "x")
                .refused("headers[0]", DraftError::HEADER_INJECTION);
        }
    }

    #[test]
    fn header_values_are_one_line_of_at_most_998_bytes() {
        for bad in ["a\r\nBcc: x@evil.test", "a\nb", "a\rb", "a\0", "a\u{7f}"] {
            Request::new()
                .header("X-Campaign", bad)
                .refused("headers.X-Campaign", DraftError::HEADER_INJECTION);
        }
        assert!(
            Request::new()
                .header("X-Note", &"n".repeat(998))
                .parse()
                .is_ok()
        );
        Request::new()
            .header("X-Note", &"n".repeat(999))
            .refused("headers.X-Note", DraftError::INVALID_HEADER);
    }

    #[test]
    fn header_names_may_appear_once() {
        let e = Request::new()
            .header("X-Campaign", "a")
            .header("x-campaign", "b")
            .refused("headers.x-campaign", DraftError::DUPLICATE_HEADER);
        assert!(e.reason.contains("once"), "{e}");
    }

    #[test]
    fn at_most_fifty_headers() {
        let mut r = Request::new();
        r.headers = (0..MessageDraft::MAX_HEADERS)
            .map(|i| (format!("X-H{i}"), "v".into()))
            .collect();
        assert!(r.parse().is_ok());
        r = r.header("X-One-More", "v");
        r.refused("headers", DraftError::TOO_MANY_HEADERS);
    }

    #[test]
    fn errors_never_echo_much_input() {
        let mut r = Request::new();
        r.to = vec![format!("{} <nobody>", "x".repeat(10_000))];
        let e = r.refused("to[0]", DraftError::INVALID_ADDRESS);
        assert!(e.reason.len() < 400, "{}", e.reason.len());
        let e = Request::new()
            .header(&format!("{}:", "X".repeat(5000)), "v")
            .refused("headers[0]", DraftError::INVALID_HEADER);
        assert!(e.reason.len() < 400, "{}", e.reason.len());
    }

    #[test]
    fn size_estimate_covers_headers_and_bodies() {
        let small = Request::new().parse().unwrap().size_estimate();
        let mut r = Request::new();
        r.text = Some("a".repeat(100_000));
        let ascii = r.parse().unwrap().size_estimate();
        assert!(ascii >= 100_000 && ascii < small + 100_100, "{ascii}");
        // Non-ASCII goes out as base64: a third more, plus line ends.
        r.text = Some("é".repeat(50_000));
        r.html = Some("<p>hi</p>".into());
        let utf8 = r.parse().unwrap().size_estimate();
        assert!(utf8 > 100_000 * 4 / 3, "{utf8}");
        let with_header = Request::new()
            .header("X-Note", &"n".repeat(900))
            .parse()
            .unwrap()
            .size_estimate();
        assert!(with_header >= small + 900, "{with_header}");
        let mut r = Request::new();
        r.bcc = (0..500).map(|i| format!("r{i}@client.test")).collect();
        // Bcc recipients are in the envelope only, not in the message.
        assert_eq!(r.parse().unwrap().size_estimate(), small);
    }

    #[test]
    fn message_id_uses_the_from_domain() {
        let id: MessageId = "6f1c1a4e-0b55-4f5e-9d7a-2f2d3c4b5a69".parse().unwrap();
        let from = EmailAddress::parse("rep@Bücher.Example").unwrap();
        assert_eq!(
            message_id_header(id, &from),
            "<6f1c1a4e-0b55-4f5e-9d7a-2f2d3c4b5a69@xn--bcher-kva.example>"
        );
    }

    #[test]
    fn a_stored_draft_parses_back_to_itself() {
        // The outbox stores each mailbox as its Display form and parses it again at send time.
        let mut r = Request::new();
        r.from = r#""Müller, Jürgen \"JM\"" <jm@bücher.example>"#.into();
        r.to = strings(&[
            "John Q. Public <jqp@client.test>",
            "<plain@client.test>",
            r#""Doe, J" <"j doe"@bücher.example>"#,
        ]);
        r.reply_to = Some("Sales \\ Team <sales@acme.test>".into());
        let d = r.parse().unwrap();
        let show = |v: &[Mailbox]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let again = MessageDraft::parse(&DraftInput {
            from: &d.from.to_string(),
            to: &show(&d.to),
            cc: &[],
            bcc: &[],
            reply_to: d.reply_to.as_ref().map(ToString::to_string).as_deref(),
            subject: d.subject.as_str(),
            text: d.text.as_deref(),
            html: d.html.as_deref(),
            headers: &[],
        })
        .unwrap();
        assert_eq!(again, d);
    }
}
