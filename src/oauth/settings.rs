//! The OAuth clients and provider endpoints: Gmail's from `SWITCHBOARD_GOOGLE_*`, Microsoft's
//! from `SWITCHBOARD_MICROSOFT_*`. The endpoints default to the providers' real ones and are
//! configurable so tests and staging can point them at a fake (plain `http://` only on
//! loopback).

use std::fmt;

use secrecy::SecretString;
use url::Url;

pub const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const GOOGLE_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const GOOGLE_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";
pub const GMAIL_API_URL: &str = "https://gmail.googleapis.com";
pub const MICROSOFT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
pub const MICROSOFT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

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

/// An OAuth client id and secret: both or neither (the provider is then off).
fn client(
    get: &impl Fn(&str) -> Option<String>,
    id_name: &'static str,
    secret_name: &'static str,
) -> Result<Option<(String, SecretString)>, SettingError> {
    match (get(id_name), get(secret_name)) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some((
            id.trim().to_owned(),
            SecretString::from(secret.trim()),
        ))),
        (Some(_), None) => Err((secret_name, format!("is required with {id_name}"))),
        (None, Some(_)) => Err((id_name, format!("is required with {secret_name}"))),
    }
}

/// The Microsoft OAuth client of this installation (one multitenant app registration that
/// also accepts personal Microsoft accounts).
#[derive(Clone)]
pub struct MicrosoftSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The identity platform: `{authority}/{tenant}/oauth2/v2.0/authorize`, `…/token`,
    /// `{authority}/{tenant}/adminconsent`.
    pub authority_url: Url,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com/v1.0`: `{graph}/me/sendMail`.
    pub graph_url: Url,
    /// When the client secret expires (`SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES`), so
    /// the operator is warned ahead of it.
    pub secret_expires: Option<chrono::DateTime<chrono::Utc>>,
    /// Where channels with transport `smtp` submit (`SWITCHBOARD_MICROSOFT_SMTP_URL`,
    /// default `smtp://smtp.office365.com:587`, STARTTLS): host, port, security and an
    /// optional CA; the login (`AUTH XOAUTH2` as the mailbox) is each channel's own.
    pub smtp: crate::domain::SmtpSettings,
    /// The largest message a Microsoft channel sends (`SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES`,
    /// default 35 MB, Exchange Online's default maximum message size; admins may raise
    /// theirs to 150 MB).
    pub max_message_bytes: usize,
}

/// Exchange Online's client submission endpoint.
pub const MICROSOFT_SMTP_URL: &str = "smtp://smtp.office365.com:587";
/// Exchange Online's default maximum message size (MICROSOFT.md §2, Size).
pub const MICROSOFT_MAX_MESSAGE_BYTES: usize = 35 * 1024 * 1024;

fn microsoft_smtp(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::domain::SmtpSettings, SettingError> {
    const NAME: &str = "SWITCHBOARD_MICROSOFT_SMTP_URL";
    let raw = get(NAME).unwrap_or_else(|| MICROSOFT_SMTP_URL.to_owned());
    if raw.contains('@') {
        return Err((
            NAME,
            "give no user or password: each channel logs in as its own mailbox with an OAuth token (AUTH XOAUTH2)".into(),
        ));
    }
    let pool = crate::transport::SharedPool::parse(&raw).map_err(|e| (NAME, e))?;
    Ok(crate::domain::SmtpSettings {
        auth: crate::domain::SmtpAuth::Xoauth2,
        // Exchange allows 3 concurrent connections per mailbox (432 4.3.2 beyond that).
        pool_size: 3,
        ..pool.settings
    })
}

fn max_message_bytes(get: &impl Fn(&str) -> Option<String>) -> Result<usize, SettingError> {
    const NAME: &str = "SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES";
    match get(NAME) {
        None => Ok(MICROSOFT_MAX_MESSAGE_BYTES),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1_048_576..=157_286_400).contains(&n) => Ok(n),
            _ => Err((
                NAME,
                "a number of bytes from 1048576 (1 MB) to 157286400 (150 MB, Exchange Online's highest)".into(),
            )),
        },
    }
}

impl fmt::Debug for MicrosoftSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicrosoftSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("authority_url", &self.authority_url.as_str())
            .field("graph_url", &self.graph_url.as_str())
            .field("secret_expires", &self.secret_expires)
            .field(
                "smtp",
                &format_args!("{}:{}", self.smtp.host, self.smtp.port),
            )
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

impl MicrosoftSettings {
    /// `None` when no client is configured (Connect Microsoft is then off, and says so).
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingError> {
        let Some((client_id, client_secret)) = client(
            get,
            "SWITCHBOARD_MICROSOFT_CLIENT_ID",
            "SWITCHBOARD_MICROSOFT_CLIENT_SECRET",
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            client_id,
            client_secret,
            authority_url: endpoint(
                get,
                "SWITCHBOARD_MICROSOFT_AUTHORITY_URL",
                MICROSOFT_AUTHORITY_URL,
            )?,
            graph_url: endpoint(get, "SWITCHBOARD_MICROSOFT_GRAPH_URL", MICROSOFT_GRAPH_URL)?,
            secret_expires: get("SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES")
                .map(|raw| expiry(raw.trim()))
                .transpose()?,
            smtp: microsoft_smtp(get)?,
            max_message_bytes: max_message_bytes(get)?,
        }))
    }

    /// What the operator should hear about the client secret's expiry at `now`: `Some((true,
    /// text))` once it has expired, `Some((false, text))` within 30 days of it.
    pub fn secret_expiry_notice(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(bool, String)> {
        let expires = self.secret_expires?;
        let left = expires - now;
        if left <= chrono::Duration::zero() {
            Some((
                true,
                format!(
                    "the Microsoft client secret expired on {}: every refresh fails (AADSTS7000222) and Microsoft mail is deferred; create a new secret in the app registration and set SWITCHBOARD_MICROSOFT_CLIENT_SECRET (and _EXPIRES)",
                    expires.date_naive()
                ),
            ))
        } else if left <= chrono::Duration::days(30) {
            Some((
                false,
                format!(
                    "the Microsoft client secret expires on {} ({} days): create a new one in the app registration and set SWITCHBOARD_MICROSOFT_CLIENT_SECRET (and _EXPIRES) before then",
                    expires.date_naive(),
                    left.num_days()
                ),
            ))
        } else {
            None
        }
    }

    /// `{authority}/{path}` with no doubled slash, whatever the configured base ends with.
    pub fn authority(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.authority_url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// `{graph}/{path}`, likewise.
    pub fn graph(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.graph_url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// `2027-06-30` (the end of that day, UTC) or an RFC 3339 time.
fn expiry(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, SettingError> {
    const NAME: &str = "SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES";
    if let Ok(day) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(23, 59, 59).unwrap_or_default().and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            (
                NAME,
                "must be a date (2027-06-30) or an RFC 3339 time".into(),
            )
        })
}

impl GoogleSettings {
    /// `None` when no client is configured (Gmail is then off, and says so).
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingError> {
        let Some((client_id, client_secret)) = client(
            get,
            "SWITCHBOARD_GOOGLE_CLIENT_ID",
            "SWITCHBOARD_GOOGLE_CLIENT_SECRET",
        )?
        else {
            return Ok(None);
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
    fn microsoft_is_off_without_a_client_and_uses_microsofts_endpoints_by_default() {
        let get = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(MicrosoftSettings::from_lookup(&get(&[])).unwrap().is_none());
        let s = MicrosoftSettings::from_lookup(&get(&[
            (
                "SWITCHBOARD_MICROSOFT_CLIENT_ID",
                "11111111-2222-3333-4444-555555555555",
            ),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET", "Canary~Secret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.authority("common/oauth2/v2.0/token"),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(
            s.graph("me/sendMail"),
            "https://graph.microsoft.com/v1.0/me/sendMail"
        );
        assert!(!format!("{s:?}").contains("Canary"), "{s:?}");
        let half =
            MicrosoftSettings::from_lookup(&get(&[("SWITCHBOARD_MICROSOFT_CLIENT_ID", "x")]));
        assert_eq!(half.unwrap_err().0, "SWITCHBOARD_MICROSOFT_CLIENT_SECRET");
        let plain = MicrosoftSettings::from_lookup(&get(&[
            ("SWITCHBOARD_MICROSOFT_CLIENT_ID", "x"),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET", "y"),
            (
                "SWITCHBOARD_MICROSOFT_GRAPH_URL",
                "http://graph.example.com/v1.0",
            ),
        ]));
        assert_eq!(plain.unwrap_err().0, "SWITCHBOARD_MICROSOFT_GRAPH_URL");
        let dated = MicrosoftSettings::from_lookup(&get(&[
            ("SWITCHBOARD_MICROSOFT_CLIENT_ID", "x"),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET", "y"),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES", "2027-06-30"),
        ]))
        .unwrap()
        .unwrap();
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        assert!(
            dated
                .secret_expiry_notice(at("2027-05-01T00:00:00Z"))
                .is_none()
        );
        let (expired, text) = dated
            .secret_expiry_notice(at("2027-06-20T00:00:00Z"))
            .unwrap();
        assert!(!expired && text.contains("2027-06-30 (10 days)"), "{text}");
        assert!(
            dated
                .secret_expiry_notice(at("2027-07-01T00:00:00Z"))
                .unwrap()
                .0
        );
        let bad = MicrosoftSettings::from_lookup(&get(&[
            ("SWITCHBOARD_MICROSOFT_CLIENT_ID", "x"),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET", "y"),
            ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES", "next June"),
        ]));
        assert_eq!(
            bad.unwrap_err().0,
            "SWITCHBOARD_MICROSOFT_CLIENT_SECRET_EXPIRES"
        );
    }

    #[test]
    fn microsoft_smtp_defaults_to_office365_starttls_and_the_size_to_35_mb() {
        let get = |vars: Vec<(&'static str, &'static str)>| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = vec![
                ("SWITCHBOARD_MICROSOFT_CLIENT_ID", "x"),
                ("SWITCHBOARD_MICROSOFT_CLIENT_SECRET", "y"),
            ];
            vars.extend_from_slice(extra);
            MicrosoftSettings::from_lookup(&get(vars)).map(Option::unwrap)
        };
        let s = with(&[]).unwrap();
        assert_eq!(s.smtp.host.as_str(), "smtp.office365.com");
        assert_eq!(s.smtp.port, 587);
        assert_eq!(s.smtp.security, crate::domain::Security::StartTls);
        assert_eq!(s.smtp.auth, crate::domain::SmtpAuth::Xoauth2);
        assert_eq!(s.max_message_bytes, 35 * 1024 * 1024);
        let local = with(&[
            ("SWITCHBOARD_MICROSOFT_SMTP_URL", "smtp://relay.test:2525"),
            ("SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES", "157286400"),
        ])
        .unwrap();
        assert_eq!(
            (local.smtp.host.as_str(), local.smtp.port),
            ("relay.test", 2525)
        );
        assert_eq!(local.max_message_bytes, 150 * 1024 * 1024);
        for (name, value) in [
            ("SWITCHBOARD_MICROSOFT_SMTP_URL", "smtp://me:pw@relay.test"),
            ("SWITCHBOARD_MICROSOFT_SMTP_URL", "https://relay.test"),
            ("SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES", "200000000"),
            ("SWITCHBOARD_MICROSOFT_MAX_MESSAGE_BYTES", "35MB"),
        ] {
            let err = with(&[(name, value)]).unwrap_err();
            assert_eq!(err.0, name, "{value}");
            assert!(!err.1.contains("pw"), "{}", err.1);
        }
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
