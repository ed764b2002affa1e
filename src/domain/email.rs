//! Mail domains and addresses, parsed once at the edge so the rest of the code can rely on
//! them: ASCII (IDN converted to punycode), lower-case domain, no CR/LF or spaces.

use std::fmt;

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
        let ascii = idna::domain_to_ascii(trimmed)
            .map_err(|_| DomainError::new(format!("`{trimmed}` is not a valid domain name")))?;
        if ascii.len() > 253 {
            return Err(DomainError::new("a domain must be at most 253 characters"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(DomainError::new(format!(
                "`{trimmed}` needs at least two labels, such as example.com"
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
                    "`{trimmed}` is not a valid domain name (label `{label}`)"
                )));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(DomainError::new(format!(
                "`{trimmed}` looks like an IP address; use a domain name"
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
/// the mailbox owner's to interpret); the domain is normalised.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: Domain,
}

/// RFC 5322 `atext`: the characters allowed in an unquoted local part besides dots.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        refuse_control_characters(raw)?;
        let trimmed = raw.trim();
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(DomainError::new(format!(
                "`{}` is not an email address (no @)",
                shown(trimmed)
            )));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(DomainError::new(
                "the part before @ must be 1 to 64 characters",
            ));
        }
        let dot_atom = local.split('.').all(|atom| !atom.is_empty())
            && local.bytes().all(|b| b == b'.' || is_atext(b));
        if !dot_atom {
            return Err(DomainError::new(format!(
                "`{}` is not a valid address: the part before @ may hold letters, digits, dots \
                 (not first, last or doubled) and !#$%&'*+-/=?^_`{{|}}~",
                shown(trimmed)
            )));
        }
        let domain = Domain::parse(domain)?;
        Ok(Self {
            local: local.to_owned(),
            domain,
        })
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

/// CR, LF or NUL in an address is a header injection attempt, never a typo to trim away.
fn refuse_control_characters(raw: &str) -> Result<(), DomainError> {
    if raw.chars().any(char::is_control) {
        return Err(DomainError::new(
            "must not contain control characters (line breaks, tabs, NUL)",
        ));
    }
    Ok(())
}

/// Quote user input in an error without echoing control characters back.
fn shown(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(100)
        .collect()
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
            "rep acme.test",
            "rep@",
            "@acme.test",
            ".rep@acme.test",
            "rep.@acme.test",
            "re..p@acme.test",
            "r ep@acme.test",
            "rep@acme",
            "\"quoted\"@acme.test",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(EmailAddress::parse(&format!("{}@acme.test", "a".repeat(65))).is_err());
    }
}
