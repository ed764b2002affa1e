//! SPF records (RFC 7208), as far as a health check needs them: the terms of a `v=spf1`
//! record, and a walk through its includes that counts the DNS lookups a receiver would make
//! (the limit is 10, §4.6.4) and finds loops. Pure: the records are looked up elsewhere and
//! handed in.

use std::collections::{BTreeSet, HashMap};

/// RFC 7208 §4.6.4: more lookups than this is a permanent error at the receiver.
pub const LOOKUP_LIMIT: u32 = 10;

/// A mechanism or modifier of an SPF record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfTerm {
    All,
    Include(String),
    A(Option<String>),
    Mx(Option<String>),
    Ptr(Option<String>),
    Exists(String),
    Ip4(String),
    Ip6(String),
    Redirect(String),
    /// `exp=` and modifiers this code does not know (RFC 7208 §6: ignored).
    OtherModifier(String),
}

impl SpfTerm {
    /// Whether a receiver makes a DNS lookup for this term (§4.6.4 counts these).
    pub fn looks_up(&self) -> bool {
        matches!(
            self,
            SpfTerm::Include(_)
                | SpfTerm::A(_)
                | SpfTerm::Mx(_)
                | SpfTerm::Ptr(_)
                | SpfTerm::Exists(_)
                | SpfTerm::Redirect(_)
        )
    }
}

/// A parsed `v=spf1` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRecord {
    pub terms: Vec<SpfTerm>,
}

/// Whether a TXT string is an SPF record at all (`v=spf1` followed by a space or nothing).
pub fn is_spf(txt: &str) -> bool {
    let t = txt.trim_start();
    t.len() >= 6
        && t[..6].eq_ignore_ascii_case("v=spf1")
        && t[6..].chars().next().is_none_or(|c| c == ' ')
}

impl SpfRecord {
    /// Parses a record; the error says which term is wrong.
    pub fn parse(txt: &str) -> Result<Self, String> {
        if !is_spf(txt) {
            return Err("the record does not start with v=spf1".into());
        }
        let mut terms = Vec::new();
        for raw in txt.trim_start()[6..].split_ascii_whitespace() {
            terms.push(term(raw)?);
        }
        if terms
            .iter()
            .filter(|t| matches!(t, SpfTerm::Redirect(_)))
            .count()
            > 1
        {
            return Err("the record has more than one redirect= modifier".into());
        }
        Ok(Self { terms })
    }

    /// The names this record sends a receiver on to: includes, and the redirect when no
    /// `all` makes it unreachable (§6.1).
    pub fn followed(&self) -> Vec<&str> {
        let has_all = self.terms.contains(&SpfTerm::All);
        self.terms
            .iter()
            .filter_map(|t| match t {
                SpfTerm::Include(d) => Some(d.as_str()),
                SpfTerm::Redirect(d) if !has_all => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Lookups this record itself costs (not those of its includes).
    pub fn own_lookups(&self) -> u32 {
        let has_all = self.terms.contains(&SpfTerm::All);
        self.terms
            .iter()
            .filter(|t| t.looks_up() && !(has_all && matches!(t, SpfTerm::Redirect(_))))
            .count() as u32
    }
}

fn term(raw: &str) -> Result<SpfTerm, String> {
    let bad = |why: &str| format!("the term `{raw}` {why}");
    let body = raw.strip_prefix(['+', '-', '~', '?']).unwrap_or(raw);
    // A modifier is `name=value` with a name of letters, digits, '-', '_' and '.'.
    if let Some((name, value)) = body.split_once('=')
        && !name.is_empty()
        && !name.contains([':', '/'])
    {
        if body.len() != raw.len() {
            return Err(bad("is a modifier and takes no qualifier"));
        }
        return Ok(if name.eq_ignore_ascii_case("redirect") {
            if value.is_empty() {
                return Err(bad("names no domain"));
            }
            SpfTerm::Redirect(value.to_ascii_lowercase())
        } else {
            SpfTerm::OtherModifier(name.to_ascii_lowercase())
        });
    }
    let (name, arg) = match body.find([':', '/']) {
        Some(i) => (&body[..i], Some(&body[i..])),
        None => (body, None),
    };
    // `a:host/24`: the domain is what follows ':' up to any '/'.
    let domain = || {
        arg.and_then(|a| a.strip_prefix(':'))
            .map(|d| d.split('/').next().unwrap_or_default().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
    };
    let required = || domain().ok_or_else(|| bad("needs a domain after ':'"));
    let value = || {
        arg.and_then(|a| a.strip_prefix(':'))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad("needs an address after ':'"))
    };
    match name.to_ascii_lowercase().as_str() {
        "all" if arg.is_none() => Ok(SpfTerm::All),
        "include" => Ok(SpfTerm::Include(required()?)),
        "a" => Ok(SpfTerm::A(domain())),
        "mx" => Ok(SpfTerm::Mx(domain())),
        "ptr" => Ok(SpfTerm::Ptr(domain())),
        "exists" => Ok(SpfTerm::Exists(required()?)),
        "ip4" => Ok(SpfTerm::Ip4(value()?)),
        "ip6" => Ok(SpfTerm::Ip6(value()?)),
        _ => Err(bad("is not an SPF mechanism")),
    }
}

/// What looking for the SPF record at a name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfLookup {
    /// Exactly one `v=spf1` record.
    Record(String),
    /// No `v=spf1` record (or no such name).
    None,
    /// More than one `v=spf1` record: a permanent error at receivers (§4.5).
    Several(usize),
    /// The DNS did not answer.
    Temporary(String),
}

/// The outcome of walking a record and everything it includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfWalk {
    /// Within the limit. `reached` holds every name included or redirected to.
    Fine {
        lookups: u32,
        reached: BTreeSet<String>,
    },
    /// More than 10 lookups; `chain` is every record visited, in order.
    TooMany { lookups: u32, chain: Vec<String> },
    /// A record includes itself through `chain` (first and last are the same name).
    Loop { chain: Vec<String> },
    /// `at` (reached through `chain`) is broken: no record, several, or a bad term.
    Broken {
        at: String,
        chain: Vec<String>,
        why: String,
    },
    /// `at` could not be looked up: nothing definite is known.
    Unknown { at: String, why: String },
}

/// Counts the lookups of the record at `root` and its includes, from records looked up
/// beforehand (`found`); a name missing from `found` counts its lookup but is not followed
/// (the caller stopped fetching: the walk is then over the limit anyway).
pub fn walk(root: &str, found: &HashMap<String, SpfLookup>) -> SpfWalk {
    let mut state = Walker {
        found,
        lookups: 0,
        visited: Vec::new(),
        reached: BTreeSet::new(),
    };
    let mut path = Vec::new();
    match state.visit(root, &mut path) {
        Err(end) => end,
        Ok(()) if state.lookups > LOOKUP_LIMIT => SpfWalk::TooMany {
            lookups: state.lookups,
            chain: state.visited,
        },
        Ok(()) => SpfWalk::Fine {
            lookups: state.lookups,
            reached: state.reached,
        },
    }
}

struct Walker<'a> {
    found: &'a HashMap<String, SpfLookup>,
    lookups: u32,
    visited: Vec<String>,
    reached: BTreeSet<String>,
}

impl Walker<'_> {
    fn visit(&mut self, name: &str, path: &mut Vec<String>) -> Result<(), SpfWalk> {
        if path.iter().any(|p| p == name) {
            let mut chain = path.clone();
            chain.push(name.to_owned());
            return Err(SpfWalk::Loop { chain });
        }
        path.push(name.to_owned());
        self.visited.push(name.to_owned());
        let broken = |why: String, path: &Vec<String>| SpfWalk::Broken {
            at: name.to_owned(),
            chain: path.clone(),
            why,
        };
        let record = match self.found.get(name) {
            // Not fetched: the caller gave up following (far past the limit).
            None => {
                path.pop();
                return Ok(());
            }
            Some(SpfLookup::Record(txt)) => SpfRecord::parse(txt).map_err(|e| broken(e, path))?,
            Some(SpfLookup::None) => {
                return Err(broken("has no v=spf1 record".into(), path));
            }
            Some(SpfLookup::Several(n)) => {
                return Err(broken(format!("has {n} v=spf1 records"), path));
            }
            Some(SpfLookup::Temporary(why)) => {
                return Err(SpfWalk::Unknown {
                    at: name.to_owned(),
                    why: why.clone(),
                });
            }
        };
        self.lookups += record.own_lookups();
        for next in record.followed() {
            self.reached.insert(next.to_owned());
            // A macro (`%{i}._spf.example`) depends on the sender: counted, not followed.
            if !next.contains('%') {
                self.visit(next, path)?;
            }
        }
        path.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(records: &[(&str, &str)]) -> HashMap<String, SpfLookup> {
        records
            .iter()
            .map(|(n, r)| (n.to_string(), SpfLookup::Record(r.to_string())))
            .collect()
    }

    #[test]
    fn terms_parse_with_qualifiers_domains_and_cidr() {
        let r = SpfRecord::parse(
            "v=spf1 +a mx:mail.acme.test/24 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.Platform.example exists:%{i}.x.test ~all exp=why.acme.test",
        )
        .unwrap();
        assert_eq!(
            r.terms,
            [
                SpfTerm::A(None),
                SpfTerm::Mx(Some("mail.acme.test".into())),
                SpfTerm::Ip4("192.0.2.0/24".into()),
                SpfTerm::Ip6("2001:db8::/32".into()),
                SpfTerm::Include("_spf.platform.example".into()),
                SpfTerm::Exists("%{i}.x.test".into()),
                SpfTerm::All,
                SpfTerm::OtherModifier("exp".into()),
            ]
        );
        assert_eq!(r.own_lookups(), 4);
        assert_eq!(r.followed(), ["_spf.platform.example"]);
    }

    #[test]
    fn bad_records_say_which_term() {
        assert!(SpfRecord::parse("v=spf10 a").is_err());
        assert!(!is_spf("v=spf1a"));
        assert!(is_spf("V=SPF1"));
        let e = SpfRecord::parse("v=spf1 include ~all").unwrap_err();
        assert!(e.contains("`include`"), "{e}");
        let e = SpfRecord::parse("v=spf1 foo:bar -all").unwrap_err();
        assert!(e.contains("`foo:bar`"), "{e}");
        assert!(SpfRecord::parse("v=spf1 redirect=a.test redirect=b.test").is_err());
        assert!(SpfRecord::parse("v=spf1 -redirect=a.test").is_err());
    }

    #[test]
    fn redirect_counts_only_without_all() {
        let r = SpfRecord::parse("v=spf1 redirect=_spf.acme.test").unwrap();
        assert_eq!((r.own_lookups(), r.followed()), (1, vec!["_spf.acme.test"]));
        let r = SpfRecord::parse("v=spf1 -all redirect=_spf.acme.test").unwrap();
        assert_eq!(r.own_lookups(), 0);
        assert!(r.followed().is_empty());
    }

    #[test]
    fn lookups_are_counted_through_includes() {
        let f = found(&[
            ("acme.test", "v=spf1 mx include:a.test include:b.test -all"),
            ("a.test", "v=spf1 a ip4:192.0.2.1 -all"),
            ("b.test", "v=spf1 include:c.test -all"),
            ("c.test", "v=spf1 ip4:192.0.2.2 -all"),
        ]);
        match walk("acme.test", &f) {
            SpfWalk::Fine { lookups, reached } => {
                assert_eq!(lookups, 5);
                assert!(reached.contains("c.test"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn eleven_lookups_are_too_many_and_name_the_chain() {
        let mut records = vec![(
            "acme.test".to_string(),
            "v=spf1 include:i1.test -all".to_string(),
        )];
        for i in 1..=10 {
            let next = if i < 10 {
                format!("v=spf1 include:i{}.test -all", i + 1)
            } else {
                "v=spf1 a -all".into()
            };
            records.push((format!("i{i}.test"), next));
        }
        let f = records
            .into_iter()
            .map(|(n, r)| (n, SpfLookup::Record(r)))
            .collect();
        match walk("acme.test", &f) {
            SpfWalk::TooMany { lookups, chain } => {
                assert_eq!(lookups, 11);
                assert_eq!(chain.len(), 11);
                assert_eq!(chain.last().unwrap(), "i10.test");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loops_and_broken_includes_are_found() {
        let f = found(&[
            ("acme.test", "v=spf1 include:a.test -all"),
            ("a.test", "v=spf1 include:b.test -all"),
            ("b.test", "v=spf1 include:a.test -all"),
        ]);
        assert_eq!(
            walk("acme.test", &f),
            SpfWalk::Loop {
                chain: vec![
                    "acme.test".into(),
                    "a.test".into(),
                    "b.test".into(),
                    "a.test".into()
                ]
            }
        );
        let mut f = found(&[("acme.test", "v=spf1 include:gone.test -all")]);
        f.insert("gone.test".into(), SpfLookup::None);
        assert!(matches!(walk("acme.test", &f), SpfWalk::Broken { at, .. } if at == "gone.test"));
        f.insert("gone.test".into(), SpfLookup::Temporary("SERVFAIL".into()));
        assert!(matches!(walk("acme.test", &f), SpfWalk::Unknown { .. }));
    }
}
