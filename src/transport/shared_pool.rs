//! The platform's own relay, the `shared_pool` channel every tenant may use for its own
//! domains when its policy allows. Configured by the operator as one URL:
//! `smtp://user:password@host:587?security=starttls&auth=login&ca=/etc/ssl/relay-ca.pem`.
//! The password never appears in `Debug`, logs or API responses.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::domain::{Domain, Hostname, Security, SmtpAuth, SmtpSettings};

/// The shared pool's relay: its settings and credential.
#[derive(Clone)]
pub struct SharedPool {
    pub settings: SmtpSettings,
    pub credential: Option<SecretString>,
    /// `SWITCHBOARD_PLATFORM_DOMAIN`: the operator's own domain, sent as without a tenant's
    /// proof (set from the configuration after parsing the URL).
    pub platform_domain: Option<Domain>,
}

impl fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedPool({}:{} {}, credential: {})",
            self.settings.host,
            self.settings.port,
            self.settings.security,
            if self.credential.is_some() {
                "[REDACTED]"
            } else {
                "none"
            }
        )
    }
}

fn decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl SharedPool {
    /// Parses `SWITCHBOARD_SHARED_POOL_URL`. Errors never quote the URL (it holds a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw.trim()).map_err(|e| {
            format!("not a URL ({e}); expected smtp://user:password@host:587?security=starttls")
        })?;
        if url.scheme() != "smtp" {
            return Err("the scheme must be smtp://".into());
        }
        let host =
            Hostname::parse(url.host_str().ok_or("a host is required")?).map_err(|e| e.reason)?;
        let mut security = None;
        let mut auth = None;
        let mut ca_pem = None;
        let mut accept_invalid_certs = false;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "security" => security = Some(value.parse::<Security>().map_err(|e| e.reason)?),
                "auth" => auth = Some(value.parse::<SmtpAuth>().map_err(|e| e.reason)?),
                "ca" => {
                    ca_pem = Some(
                        std::fs::read_to_string(value.as_ref())
                            .map_err(|e| format!("ca={value}: {e}"))?,
                    );
                }
                "accept_invalid_certs" => accept_invalid_certs = value == "true",
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`; use security, auth, ca, accept_invalid_certs"
                    ));
                }
            }
        }
        let port = url.port().unwrap_or(587);
        let security = security.unwrap_or(if port == 465 {
            Security::Tls
        } else {
            Security::StartTls
        });
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        let credential = url.password().map(|p| SecretString::from(decode(p)));
        let auth = auth.unwrap_or(if username.is_some() {
            SmtpAuth::Plain
        } else {
            SmtpAuth::None
        });
        let settings = SmtpSettings {
            host,
            port,
            security,
            auth,
            username,
            accept_invalid_certs,
            ca_pem,
            pinned_sha256: None,
            connect_timeout_secs: SmtpSettings::DEFAULT_CONNECT_TIMEOUT,
            command_timeout_secs: SmtpSettings::DEFAULT_COMMAND_TIMEOUT,
            pool_size: 16,
        };
        settings.check().map_err(|e| e.reason)?;
        if auth != SmtpAuth::None && credential.is_none() {
            return Err(format!(
                "auth `{auth}` needs a password in the URL (smtp://user:password@host)"
            ));
        }
        Ok(Self {
            settings,
            credential,
            platform_domain: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_relay_url_becomes_settings_and_a_sealed_away_password() {
        let pool = SharedPool::parse(
            "smtp://relay%40platform.test:Canary%2FPw@relay.platform.test:587?auth=login",
        )
        .unwrap();
        assert_eq!(pool.settings.host.as_str(), "relay.platform.test");
        assert_eq!(pool.settings.security, Security::StartTls);
        assert_eq!(pool.settings.auth, SmtpAuth::Login);
        assert_eq!(
            pool.settings.username.as_deref(),
            Some("relay@platform.test")
        );
        assert_eq!(
            pool.credential.as_ref().unwrap().expose_secret(),
            "Canary/Pw"
        );
        assert!(!format!("{pool:?}").contains("Canary"), "{pool:?}");
        let implicit = SharedPool::parse("smtp://u:p@relay.test:465").unwrap();
        assert_eq!(implicit.settings.security, Security::Tls);
        let open = SharedPool::parse("smtp://relay.test:25?security=none").unwrap();
        assert_eq!(open.settings.auth, SmtpAuth::None);
    }

    #[test]
    fn bad_urls_are_explained_without_the_password() {
        for (raw, needle) in [
            ("https://u:Canary@relay.test", "smtp://"),
            (
                "smtp://u:Canary@relay.test?security=ssl",
                "unknown security",
            ),
            ("smtp://u:Canary@relay.test?pool=3", "unknown parameter"),
            ("smtp://u@relay.test", "needs a password"),
            ("not a url Canary", "not a URL"),
        ] {
            let err = SharedPool::parse(raw).unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains("Canary"), "{err}");
        }
    }
}
