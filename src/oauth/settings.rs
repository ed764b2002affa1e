//! Gmail's OAuth client and Google's endpoints, from `SWITCHBOARD_GOOGLE_*`. The endpoints
//! default to Google's real ones and are configurable so tests and staging can point them at
//! a fake (plain `http://` only on loopback).

use std::fmt;

use secrecy::SecretString;
use url::Url;

pub const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const GOOGLE_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const GOOGLE_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";
pub const GMAIL_API_URL: &str = "https://gmail.googleapis.com";

/// The Google OAuth client of this installation.
#[derive(Clone)]
pub struct GoogleSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub userinfo_url: Url,
    /// The Gmail API base: `{base}/gmail/v1/users/me/messages/send`.
    pub gmail_api_url: Url,
}

impl fmt::Debug for GoogleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("auth_url", &self.auth_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

/// `SWITCHBOARD_…` name and why its value was refused.
pub type SettingError = (&'static str, String);

fn endpoint(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<Url, SettingError> {
    let raw = get(name).unwrap_or_else(|| default.to_owned());
    let url = Url::parse(raw.trim()).map_err(|e| (name, format!("not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err((
            name,
            "must be https:// (plain http:// only for a local fake on loopback)".into(),
        )),
    }
}

impl GoogleSettings {
    /// `None` when no client is configured (Gmail is then off, and says so).
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingError> {
        let (id, secret) = (
            get("SWITCHBOARD_GOOGLE_CLIENT_ID"),
            get("SWITCHBOARD_GOOGLE_CLIENT_SECRET"),
        );
        let (client_id, client_secret) = match (id, secret) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id.trim().to_owned(), SecretString::from(secret.trim())),
            (Some(_), None) => {
                return Err((
                    "SWITCHBOARD_GOOGLE_CLIENT_SECRET",
                    "is required with SWITCHBOARD_GOOGLE_CLIENT_ID".into(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "SWITCHBOARD_GOOGLE_CLIENT_ID",
                    "is required with SWITCHBOARD_GOOGLE_CLIENT_SECRET".into(),
                ));
            }
        };
        Ok(Some(Self {
            client_id,
            client_secret,
            auth_url: endpoint(get, "SWITCHBOARD_GOOGLE_AUTH_URL", GOOGLE_AUTH_URL)?,
            token_url: endpoint(get, "SWITCHBOARD_GOOGLE_TOKEN_URL", GOOGLE_TOKEN_URL)?,
            revoke_url: endpoint(get, "SWITCHBOARD_GOOGLE_REVOKE_URL", GOOGLE_REVOKE_URL)?,
            userinfo_url: endpoint(get, "SWITCHBOARD_GOOGLE_USERINFO_URL", GOOGLE_USERINFO_URL)?,
            gmail_api_url: endpoint(get, "SWITCHBOARD_GOOGLE_GMAIL_API_URL", GMAIL_API_URL)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<GoogleSettings>, SettingError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GoogleSettings::from_lookup(&|n: &str| map.get(n).cloned())
    }

    #[test]
    fn gmail_is_off_without_a_client_and_uses_googles_endpoints_by_default() {
        assert!(parse(&[]).unwrap().is_none());
        let s = parse(&[
            (
                "SWITCHBOARD_GOOGLE_CLIENT_ID",
                "id.apps.googleusercontent.com",
            ),
            ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", "Canary-Client-Secret"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.token_url.as_str(), GOOGLE_TOKEN_URL);
        assert_eq!(s.client_secret.expose_secret(), "Canary-Client-Secret");
        assert!(!format!("{s:?}").contains("Canary"), "{s:?}");
    }

    #[test]
    fn half_a_client_and_plain_http_to_the_internet_are_refused() {
        assert_eq!(
            parse(&[("SWITCHBOARD_GOOGLE_CLIENT_ID", "id")])
                .unwrap_err()
                .0,
            "SWITCHBOARD_GOOGLE_CLIENT_SECRET"
        );
        let base = [
            ("SWITCHBOARD_GOOGLE_CLIENT_ID", "id"),
            ("SWITCHBOARD_GOOGLE_CLIENT_SECRET", "s"),
        ];
        let mut vars = base.to_vec();
        vars.push((
            "SWITCHBOARD_GOOGLE_TOKEN_URL",
            "http://oauth.example.com/token",
        ));
        assert_eq!(parse(&vars).unwrap_err().0, "SWITCHBOARD_GOOGLE_TOKEN_URL");
        let mut vars = base.to_vec();
        vars.push((
            "SWITCHBOARD_GOOGLE_TOKEN_URL",
            "http://127.0.0.1:9000/token",
        ));
        assert!(parse(&vars).unwrap().is_some());
    }
}
