//! Where a webhook may point. The same outbound policy as SMTP hosts applies: a tenant types
//! the URL, so it must not reach the platform's own network unless the operator allowed it.
//! This is the check at the door (creation and change); the client checks every address
//! again when it connects, so a name that later resolves elsewhere gets nowhere.

use std::net::IpAddr;

use url::Url;

use crate::transport::outbound::{OutboundError, OutboundPolicy};

/// The longest webhook URL we accept.
pub const MAX_URL_LEN: usize = 2048;

/// Parses a webhook URL and checks its form: `https://`, or `http://` to a host or address
/// the operator allowed (`SWITCHBOARD_OUTBOUND_ALLOW`, e.g. a receiver on the same network);
/// no user name or password in it, no fragment. The reason is written for the person who
/// typed it.
pub fn validate_url(raw: &str, policy: &OutboundPolicy) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw)
        .map_err(|e| format!("not a URL ({e}); e.g. https://hooks.example.com/switchboard"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL needs a host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry a user name or password; the signature authenticates us to you".into(),
        );
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if operator_allowed(&host, policy) => {}
        "http" => {
            return Err(
                "must use https:// (plain http is accepted only for hosts the operator allowed in SWITCHBOARD_OUTBOUND_ALLOW)"
                    .into(),
            );
        }
        other => return Err(format!("the scheme must be https, not {other}")),
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        policy.check(&host, ip).map_err(|e| e.to_string())?;
    }
    Ok(url)
}

/// Whether the operator named this host, or the network of this literal address, as allowed.
fn operator_allowed(host: &str, policy: &OutboundPolicy) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => policy.allows(host, ip),
        Err(_) => policy.allows_host(host),
    }
}

/// Resolves the URL's host and checks every address, as the client will when it connects.
pub async fn check_destination(url: &Url, policy: &OutboundPolicy) -> Result<(), OutboundError> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    policy.resolve(host, port).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_required_unless_the_operator_allowed_the_host() {
        let none = OutboundPolicy::default();
        assert!(validate_url("https://hooks.example.com/x?y=1", &none).is_ok());
        assert!(
            validate_url("http://hooks.example.com/x", &none)
                .unwrap_err()
                .contains("https")
        );
        let local = OutboundPolicy::parse("127.0.0.0/8,receiver.internal").unwrap();
        assert!(validate_url("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(validate_url("http://receiver.internal/hook", &local).is_ok());
        assert!(validate_url("http://other.internal/hook", &local).is_err());
    }

    #[test]
    fn private_literals_credentials_fragments_and_other_schemes_are_refused() {
        let none = OutboundPolicy::default();
        for bad in [
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://user:pass@hooks.example.com/",
            "https://hooks.example.com/#x",
            "ftp://hooks.example.com/",
            "not a url",
        ] {
            assert!(validate_url(bad, &none).is_err(), "{bad}");
        }
    }
}
