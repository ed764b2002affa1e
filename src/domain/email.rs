//! Mail domains, addresses and mailboxes, parsed once at the edge so the rest of the code can
//! rely on them: ASCII (IDN converted to punycode), lower-case domain, no control characters,
//! and a local part that any SMTP server without SMTPUTF8 accepts.

use std::fmt::{self, Write as _};

use super::DomainError;

/// A DNS mail domain such as `acme.test` or `xn--bcher-kva.example` (from `bücher.example`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        refuse_control_characters(raw)?;
        let trimmed = raw.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainError::new("a domain must not be empty"));
        }
        if trimmed.starts_with('[') {
            return Err(DomainError::new(
                "address literals such as [192.0.2.1] are not accepted; use a domain name",
            ));
        }
        let ascii = idna::domain_to_ascii(trimmed).map_err(|_| {
            DomainError::new(format!("`{}` is not a valid domain name", shown(trimmed)))
        })?;
        if ascii.len() > 253 {
            return Err(DomainError::new("a domain must be at most 253 characters"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(DomainError::new(format!(
                "`{}` needs at least two labels, such as example.com",
                shown(trimmed)
            )));
        }
        for label in &labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(DomainError::new(format!(
                    "`{}` is not a valid domain name (label `{}`)",
                    shown(trimmed),
                    shown(label)
                )));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(DomainError::new(format!(
                "`{}` looks like an IP address; use a domain name",
                shown(trimmed)
            )));
        }
        Ok(Self(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A plain address (`local@domain`, no display name). The local part keeps its case (it is
/// the mailbox owner's to interpret); the domain is normalised. A local part that needs
/// quoting (`"john doe"@acme.test`) is kept quoted, with only `"` and `\` escaped, so that
/// `to_string()` is a valid RFC 5321 path as it stands.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: Domain,
}

/// RFC 5322 `atext`: the characters allowed in an unquoted local part besides dots.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_atom(s: &str) -> bool {
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

impl EmailAddress {
    /// RFC 5321 §4.5.3.1.1, counted on the form we send (quotes and escapes included).
    pub const MAX_LOCAL_OCTETS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        refuse_control_characters(raw)?;
        let trimmed = raw.trim();
        let (local, domain) = if trimmed.starts_with('"') {
            let Some((content, rest)) = read_quoted(trimmed) else {
                return Err(DomainError::new(format!(
                    "`{}` is not a valid address: the opening \" of the part before @ is never \
                     closed",
                    shown(trimmed)
                )));
            };
            let Some(domain) = rest.strip_prefix('@') else {
                return Err(DomainError::new(format!(
                    "`{}` is not a valid address: a quoted part before @ must be followed \
                     directly by @ and the domain, as in \"john doe\"@example.com",
                    shown(trimmed)
                )));
            };
            (quoted_local_part(&content, trimmed)?, domain)
        } else {
            let Some((local, domain)) = trimmed.rsplit_once('@') else {
                return Err(DomainError::new(format!(
                    "`{}` is not an email address (no @)",
                    shown(trimmed)
                )));
            };
            if !local.is_ascii() {
                return Err(needs_smtputf8(trimmed));
            }
            if !local.is_empty() && !is_dot_atom(local) {
                return Err(DomainError::new(format!(
                    "`{}` is not a valid address: the part before @ may hold letters, digits, \
                     dots (not first, last or doubled) and !#$%&'*+-/=?^_`{{|}}~; anything \
                     else must be inside double quotes",
                    shown(trimmed)
                )));
            }
            (local.to_owned(), domain)
        };
        if local.is_empty() || local.len() > Self::MAX_LOCAL_OCTETS {
            return Err(DomainError::new(format!(
                "the part before @ must be 1 to {} characters",
                Self::MAX_LOCAL_OCTETS
            )));
        }
        let domain = Domain::parse(domain)?;
        Ok(Self { local, domain })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The form used to compare identities (user logins, mailbox ownership): all lower case.
    pub fn normalized(&self) -> String {
        format!("{}@{}", self.local.to_ascii_lowercase(), self.domain)
    }
}

/// The local part in the form we send, from the unescaped content of a quoted one. Quoting is
/// only kept where it is needed: RFC 5322 §3.4.1 makes `"john"` and `john` the same mailbox,
/// and RFC 5321 §4.1.2 asks senders not to quote what can go unquoted.
fn quoted_local_part(content: &str, whole: &str) -> Result<String, DomainError> {
    if !content.is_ascii() {
        return Err(needs_smtputf8(whole));
    }
    if content.is_empty() {
        return Err(DomainError::new(
            "the part before @ must not be empty (\"\" is not accepted)",
        ));
    }
    if is_dot_atom(content) {
        return Ok(content.to_owned());
    }
    Ok(quote(content))
}

fn needs_smtputf8(whole: &str) -> DomainError {
    DomainError::new(format!(
        "`{}` has non-ASCII characters before the @; such an address needs SMTPUTF8, which we \
         do not send; ask for an ASCII address",
        shown(whole)
    ))
}

/// Reads the quoted-string that `s` starts with: its content with escapes resolved, and the
/// text after the closing quote. `None` when the quote is never closed.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut content = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((content, &s[i + 1..])),
            '\\' => content.push(chars.next()?.1),
            c => content.push(c),
        }
    }
    None
}

/// A quoted-string with only `"` and `\` escaped: escaping anything else is legal but some
/// parsers (lettre's among them) refuse `\ `.
fn quote(content: &str) -> String {
    let mut quoted = String::with_capacity(content.len() + 2);
    quoted.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// CR, LF or NUL in an address is a header injection attempt, never a typo to trim away.
fn refuse_control_characters(raw: &str) -> Result<(), DomainError> {
    if raw.chars().any(char::is_control) {
        return Err(DomainError::new(
            "must not contain control characters (line breaks, tabs, NUL)",
        ));
    }
    Ok(())
}

/// Quote user input in an error without echoing control characters back, and without letting
/// a megabyte of input become a megabyte of error.
pub(super) fn shown(raw: &str) -> String {
    const MAX_CHARS: usize = 100;
    let mut out: String = raw
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_CHARS)
        .collect();
    if raw.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({self})")
    }
}

/// An address with an optional display name, as people write it in a To or From field:
/// `rep@acme.test`, `Rep One <rep@acme.test>` or `"One, Rep" <rep@acme.test>`. The name is
/// kept unquoted and may be any Unicode; encoding it for the wire is the transport's job.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

/// Where the structural characters of a mailbox sit, outside quoted strings.
#[derive(Default)]
struct Outline {
    opens: Vec<usize>,
    closes: Vec<usize>,
    ats: Vec<usize>,
    has_space: bool,
}

impl Mailbox {
    pub const MAX_NAME_CHARS: usize = 200;

    /// One mailbox. Lists, groups and comments are refused rather than half understood: a
    /// string that could mean two recipients must not silently become one.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        refuse_control_characters(raw)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::new("an address must not be empty"));
        }
        let outline = outline(trimmed)?;
        match (outline.opens.as_slice(), outline.closes.as_slice()) {
            ([], []) => {
                if outline.ats.len() > 1 {
                    return Err(more_than_one(trimmed));
                }
                if outline.has_space {
                    return Err(DomainError::new(format!(
                        "`{}` is not an email address; to add a name, write it as \
                         Name <address>",
                        shown(trimmed)
                    )));
                }
                Ok(Self {
                    name: None,
                    address: EmailAddress::parse(trimmed)?,
                })
            }
            (&[open], &[close]) if open < close => {
                if close + 1 != trimmed.len() {
                    return Err(DomainError::new(format!(
                        "`{}` has text after the closing >; nothing may follow the address",
                        shown(trimmed)
                    )));
                }
                if outline.ats.iter().any(|&at| at < open) {
                    return Err(DomainError::new(format!(
                        "`{}` has an @ in the name before <; if that is really a name, put it \
                         in double quotes; if it is a second address, give one address per \
                         entry",
                        shown(trimmed)
                    )));
                }
                let name = display_name(trimmed[..open].trim())?;
                let address = EmailAddress::parse(&trimmed[open + 1..close])?;
                Ok(Self { name, address })
            }
            (opens, closes) if opens.len() > 1 && opens.len() == closes.len() => {
                Err(more_than_one(trimmed))
            }
            _ => Err(DomainError::new(format!(
                "`{}` has unbalanced < and >; write Name <address> or just the address",
                shown(trimmed)
            ))),
        }
    }
}

fn more_than_one(raw: &str) -> DomainError {
    DomainError::new(format!(
        "`{}` holds more than one address; give one address per entry",
        shown(raw)
    ))
}

/// Finds `<`, `>`, `@` and spaces outside quoted strings, and refuses the syntax we do not
/// take: lists, groups and comments.
fn outline(raw: &str) -> Result<Outline, DomainError> {
    let mut outline = Outline::default();
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some(_) => {}
                    None => {
                        return Err(DomainError::new(format!(
                            "`{}` has an opening \" that is never closed",
                            shown(raw)
                        )));
                    }
                }
            },
            '<' => outline.opens.push(i),
            '>' => outline.closes.push(i),
            '@' => outline.ats.push(i),
            ',' => return Err(more_than_one(raw)),
            ':' | ';' => {
                return Err(DomainError::new(format!(
                    "`{}` uses group syntax (name: addresses;), which is not accepted; give one \
                     address per entry, and put a name that holds : or ; in double quotes",
                    shown(raw)
                )));
            }
            '(' | ')' => {
                return Err(DomainError::new(format!(
                    "`{}` has a comment in parentheses, which is not accepted; write \
                     Name <address>, with the name in double quotes if it holds ( or )",
                    shown(raw)
                )));
            }
            c if c.is_whitespace() => outline.has_space = true,
            _ => {}
        }
    }
    Ok(outline)
}

/// The name before `<`, with quoted parts unquoted (`"One, Rep"` → `One, Rep`, and
/// `Rep "The Closer" One` → `Rep The Closer One`). Empty means no name.
fn display_name(raw: &str) -> Result<Option<String>, DomainError> {
    let mut name = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find('"') {
        name.push_str(&rest[..start]);
        // `outline` has already seen every quote closed.
        let (content, after) = read_quoted(&rest[start..]).unwrap_or_default();
        name.push_str(&content);
        rest = after;
    }
    name.push_str(rest);
    let name = name.trim();
    if name.chars().count() > Mailbox::MAX_NAME_CHARS {
        return Err(DomainError::new(format!(
            "the name must be at most {} characters",
            Mailbox::MAX_NAME_CHARS
        )));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// Whether a display name can go on the wire as it is (RFC 5322 atoms separated by single
/// spaces); anything else goes in a quoted-string.
fn needs_quoting(name: &str) -> bool {
    !name.bytes().all(|b| b == b' ' || is_atext(b))
        || name.starts_with(' ')
        || name.ends_with(' ')
        || name.contains("  ")
}

/// RFC 5322 form. The fields are public, so a name that never went through `parse` may hold
/// control characters: they are dropped rather than written into a header.
impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) else {
            return write!(f, "{}", self.address);
        };
        if needs_quoting(name) {
            f.write_char('"')?;
            for c in name.chars().filter(|c| !c.is_control()) {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char('"')?;
        } else {
            f.write_str(name)?;
        }
        write!(f, " <{}>", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(Domain::parse("Acme.TEST.").unwrap().as_str(), "acme.test");
        assert_eq!(
            Domain::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn bad_domains_are_refused() {
        for bad in [
            "",
            "localhost",
            "-acme.test",
            "acme-.test",
            "a..b",
            "192.168.0.1",
            "[1.2.3.4]",
            "acme test.com",
            "acme.test\r\n",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Domain::parse(&format!("{}.test", "a".repeat(64))).is_err());
    }

    #[test]
    fn addresses_parse_with_plus_and_idn() {
        let a = EmailAddress::parse(" Rep.One+q4@Acme.Test ").unwrap();
        assert_eq!(a.to_string(), "Rep.One+q4@acme.test");
        assert_eq!(a.normalized(), "rep.one+q4@acme.test");
        assert_eq!(
            EmailAddress::parse("anna@bücher.example")
                .unwrap()
                .domain()
                .as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn header_injection_and_junk_are_refused() {
        for bad in [
            "rep@acme.test\r\nBcc: x@evil.test",
            "rep@acme.test\nBcc: x@evil.test",
            "rep@acme.test\0",
            "rep acme.test",
            "rep@",
            "@acme.test",
            ".rep@acme.test",
            "rep.@acme.test",
            "re..p@acme.test",
            "r ep@acme.test",
            "rep@acme",
            "rep@[192.0.2.1]",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(EmailAddress::parse(&format!("{}@acme.test", "a".repeat(65))).is_err());
        assert!(EmailAddress::parse(&format!("{}@acme.test", "a".repeat(64))).is_ok());
    }

    #[test]
    fn quoted_local_parts_keep_their_quotes_where_needed() {
        for (raw, sent) in [
            (r#""john doe"@Acme.Test"#, r#""john doe"@acme.test"#),
            (r#""a\"b"@acme.test"#, r#""a\"b"@acme.test"#),
            (r#""a\\b"@acme.test"#, r#""a\\b"@acme.test"#),
            (r#""a@b"@acme.test"#, r#""a@b"@acme.test"#),
            (r#""a..b"@acme.test"#, r#""a..b"@acme.test"#),
            (r#""<x>, y"@acme.test"#, r#""<x>, y"@acme.test"#),
            (r#"" "@acme.test"#, r#"" "@acme.test"#),
        ] {
            let address = EmailAddress::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(address.to_string(), sent);
            assert_eq!(EmailAddress::parse(sent).unwrap(), address, "{sent}");
        }
    }

    #[test]
    fn needless_quotes_and_escapes_are_dropped() {
        // Otherwise "john"@acme.test and john@acme.test would count as two recipients.
        let quoted = EmailAddress::parse(r#""John"@acme.test"#).unwrap();
        assert_eq!(quoted.to_string(), "John@acme.test");
        assert_eq!(
            quoted.normalized(),
            EmailAddress::parse("john@acme.test").unwrap().normalized()
        );
        assert_eq!(
            EmailAddress::parse(r#""a\ b"@acme.test"#)
                .unwrap()
                .local_part(),
            r#""a b""#
        );
        assert_eq!(
            EmailAddress::parse(r#""a\b"@acme.test"#)
                .unwrap()
                .local_part(),
            "ab"
        );
    }

    #[test]
    fn bad_quoted_local_parts_are_refused() {
        for bad in [
            r#"""@acme.test"#,
            r#""unclosed@acme.test"#,
            r#""a"b@acme.test"#,
            r#""a" @acme.test"#,
            r#""a".b@acme.test"#,
            r#"a"b"@acme.test"#,
            r#""a\"@acme.test"#,
            "\"a\tb\"@acme.test",
            "\"a\r\nBcc: x@evil.test\"@acme.test",
            "\"a\0\"@acme.test",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        // 62 characters plus the quotes is 64 octets on the wire; one more is too many.
        let fits = format!("\"{} {}\"@acme.test", "a".repeat(30), "b".repeat(31));
        assert!(EmailAddress::parse(&fits).is_ok());
        let too_long = format!("\"{} {}\"@acme.test", "a".repeat(31), "b".repeat(31));
        assert!(EmailAddress::parse(&too_long).is_err());
    }

    #[test]
    fn non_ascii_local_parts_ask_for_an_ascii_address() {
        for raw in [
            "jürgen@acme.test",
            r#""jürgen"@acme.test"#,
            "jürgen@bücher.example",
        ] {
            let reason = EmailAddress::parse(raw).unwrap_err().reason;
            assert!(
                reason.contains("SMTPUTF8") && reason.contains("ask for an ASCII address"),
                "{raw}: {reason}"
            );
        }
    }

    #[test]
    fn errors_quote_little_and_never_control_characters() {
        let long = format!("{}@", "x".repeat(5000));
        let reason = EmailAddress::parse(&long).unwrap_err().reason;
        assert!(reason.len() < 400, "{reason}");
        let reason = Mailbox::parse("Rep <rep@acme.test>\r\nBcc: x@evil.test")
            .unwrap_err()
            .reason;
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        let reason = Domain::parse(&format!("{}.test", "ä-".repeat(3000)))
            .unwrap_err()
            .reason;
        assert!(reason.len() < 800, "{reason}");
    }

    fn mailbox(raw: &str) -> Mailbox {
        Mailbox::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn mailboxes_in_the_forms_people_write() {
        let rep = EmailAddress::parse("rep@acme.test").unwrap();
        for (raw, name) in [
            ("rep@acme.test", None),
            ("  rep@acme.test  ", None),
            ("<rep@acme.test>", None),
            (" < rep@acme.test > ", None),
            ("\"\" <rep@acme.test>", None),
            ("Rep One <rep@acme.test>", Some("Rep One")),
            ("  Rep One   <rep@acme.test>  ", Some("Rep One")),
            ("Rep One<rep@acme.test>", Some("Rep One")),
            ("\"One, Rep\" <rep@acme.test>", Some("One, Rep")),
            (
                r#""Rep \"The Closer\" One" <rep@acme.test>"#,
                Some(r#"Rep "The Closer" One"#),
            ),
            (r#""back\\slash" <rep@acme.test>"#, Some(r"back\slash")),
            (
                "Rep \"The Closer\" One <rep@acme.test>",
                Some("Rep The Closer One"),
            ),
            ("\"Re: Q4 (EMEA)\" <rep@acme.test>", Some("Re: Q4 (EMEA)")),
            ("John Q. Public <rep@acme.test>", Some("John Q. Public")),
            ("Jürgen Müller <rep@acme.test>", Some("Jürgen Müller")),
            ("\"Müller, Jürgen\" <rep@acme.test>", Some("Müller, Jürgen")),
            ("営業チーム <rep@acme.test>", Some("営業チーム")),
        ] {
            let parsed = mailbox(raw);
            assert_eq!(parsed.address, rep, "{raw}");
            assert_eq!(parsed.name.as_deref(), name, "{raw}");
        }
    }

    #[test]
    fn mailbox_addresses_may_be_quoted_or_idn() {
        let m = mailbox(r#""Doe, John" <"john doe"@bücher.example>"#);
        assert_eq!(m.name.as_deref(), Some("Doe, John"));
        assert_eq!(m.address.to_string(), r#""john doe"@xn--bcher-kva.example"#);
        let m = mailbox(r#""a,b <c>"@acme.test"#);
        assert_eq!(m.name, None);
        assert_eq!(m.address.local_part(), r#""a,b <c>""#);
    }

    #[test]
    fn names_are_limited_to_200_characters() {
        let fits = format!("{} <rep@acme.test>", "é".repeat(200));
        assert!(Mailbox::parse(&fits).is_ok());
        let too_long = format!("{} <rep@acme.test>", "é".repeat(201));
        assert!(Mailbox::parse(&too_long).is_err());
    }

    #[test]
    fn lists_groups_comments_and_stray_brackets_are_refused() {
        for bad in [
            "",
            "   ",
            "a@x.test, b@y.test",
            "a@x.test; b@y.test",
            "a@x.test b@y.test",
            "A <a@x.test>, B <b@y.test>",
            "A <a@x.test> <b@y.test>",
            "a@x.test <b@y.test>",
            "Sales: a@x.test, b@y.test;",
            "Undisclosed recipients:;",
            "rep@acme.test (Rep One)",
            "Rep (One) <rep@acme.test>",
            "Rep <rep@acme.test",
            "Rep rep@acme.test>",
            "Rep >rep@acme.test<",
            "\"Rep <rep@acme.test>",
            "Rep\" <rep@acme.test>",
            "Rep <rep@acme.test> extra",
            "Rep <rep@acme.test>>",
            "Rep <>",
            "Rep One rep@acme.test",
            "Rep <jürgen@acme.test>",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} accepted");
        }
        let reason = Mailbox::parse("a@x.test, b@y.test").unwrap_err().reason;
        assert!(reason.contains("more than one address"), "{reason}");
        let reason = Mailbox::parse("Rep One rep@acme.test").unwrap_err().reason;
        assert!(reason.contains("Name <address>"), "{reason}");
    }

    #[test]
    fn header_injection_through_a_mailbox_is_refused() {
        for bad in [
            "\"Rep\r\nBcc: x@evil.test\" <rep@acme.test>",
            "Rep\r\nBcc: x@evil.test <rep@acme.test>",
            "rep@acme.test\nBcc: x@evil.test",
            "Rep <rep@acme.test>\r\nBcc: x@evil.test",
            "Rep <rep@acme.test\r\n>",
            "Rep\0 <rep@acme.test>",
            "rep@acme.test\0",
            "Rep\tOne <rep@acme.test>",
            "Rep\u{85}One <rep@acme.test>",
        ] {
            let reason = Mailbox::parse(bad).unwrap_err().reason;
            assert!(reason.contains("control characters"), "{bad:?}: {reason}");
        }
    }

    #[test]
    fn mailboxes_display_in_rfc_5322_form() {
        for (raw, shown) in [
            ("rep@acme.test", "rep@acme.test"),
            ("<rep@acme.test>", "rep@acme.test"),
            ("Rep One <rep@acme.test>", "Rep One <rep@acme.test>"),
            ("\"Rep One\" <rep@acme.test>", "Rep One <rep@acme.test>"),
            (
                "\"One, Rep\" <rep@acme.test>",
                "\"One, Rep\" <rep@acme.test>",
            ),
            (
                "John Q. Public <rep@acme.test>",
                "\"John Q. Public\" <rep@acme.test>",
            ),
            (
                r#""Rep \"The Closer\" \\ One" <rep@acme.test>"#,
                r#""Rep \"The Closer\" \\ One" <rep@acme.test>"#,
            ),
            ("Jürgen <rep@acme.test>", "\"Jürgen\" <rep@acme.test>"),
            (
                "\"Rep  One\" <rep@acme.test>",
                "\"Rep  One\" <rep@acme.test>",
            ),
            (
                r#""Doe, John" <"john doe"@acme.test>"#,
                r#""Doe, John" <"john doe"@acme.test>"#,
            ),
        ] {
            let m = mailbox(raw);
            assert_eq!(m.to_string(), shown, "{raw}");
            assert_eq!(mailbox(shown), m, "{shown} does not parse back");
        }
    }

    #[test]
    fn display_drops_control_characters_a_caller_put_in_the_name() {
        let m = Mailbox {
            name: Some("Rep\r\nBcc: x@evil.test".into()),
            address: EmailAddress::parse("rep@acme.test").unwrap(),
        };
        assert_eq!(m.to_string(), "\"RepBcc: x@evil.test\" <rep@acme.test>");
        let unnamed = Mailbox {
            name: Some(String::new()),
            ..m
        };
        assert_eq!(unnamed.to_string(), "rep@acme.test");
    }
}
