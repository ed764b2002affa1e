//! Configuration from `SWITCHBOARD_*` environment variables (names are part of the contract,
//! see docs/configuration.md). Every setting has a default that makes the embedded start work.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::domains::DomainSettings;
use crate::notify::settings::NotifySettings;
use crate::oauth::settings::{GoogleSettings, MicrosoftSettings};
use crate::outbox::settings::DeliverySettings;
use crate::transport::{OutboundPolicy, SharedPool};
use crate::vault::KeySource;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where the data lives. The URL of a PostgreSQL server may hold a password, so it is kept
/// secret and shown redacted.
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "SWITCHBOARD_DATABASE_URL",
            reason: reason.to_owned(),
        };
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres {
                url: SecretString::from(raw.to_owned()),
            });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .ok_or_else(|| invalid("must start with sqlite:// (a file path) or postgres://"))?;
        if path.is_empty() || path.contains(":memory:") {
            return Err(invalid(
                "SQLite needs a file path, e.g. sqlite://./data/switchboard.db (in-memory databases are not shared between connections)",
            ));
        }
        Ok(DatabaseUrl::Sqlite {
            path: PathBuf::from(path),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres { .. })
    }

    /// The connection string handed to the driver. Never log it.
    pub fn connection_string(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { path } => path.to_string_lossy().into_owned(),
            DatabaseUrl::Postgres { url } => url.expose_secret().to_owned(),
        }
    }
}

/// Shows the URL with any password replaced, for logs and errors.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => match url::Url::parse(url.expose_secret()) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("REDACTED"));
                    }
                    parsed.set_query(None);
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `SWITCHBOARD_BIND`: listen address; port 0 picks a free port.
    pub bind: String,
    /// `SWITCHBOARD_DATA_DIR`: the SQLite file and generated files (operator token, key file).
    pub data_dir: PathBuf,
    /// `SWITCHBOARD_DATABASE_URL`.
    pub database: DatabaseUrl,
    /// `SWITCHBOARD_OPERATOR_TOKEN`: an operator token to accept besides generated ones.
    pub operator_token: Option<SecretString>,
    /// `SWITCHBOARD_PUBLIC_URL`: external base URL for links and OAuth redirects.
    pub public_url: String,
    /// `SWITCHBOARD_HTTP_WORKERS`: HTTP worker threads.
    pub http_workers: usize,
    /// `SWITCHBOARD_DB_POOL_SIZE`: database connections per process.
    pub db_pool_size: u32,
    /// `SWITCHBOARD_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `SWITCHBOARD_MASTER_KEYS` or `SWITCHBOARD_MASTER_KEYS_FILE`; for embedded SQLite
    /// without either, a generated key file in the data directory.
    pub master_keys: KeySource,
    /// `SWITCHBOARD_OUTBOUND_ALLOW`: private hosts or networks channels may reach anyway.
    pub outbound: OutboundPolicy,
    /// `SWITCHBOARD_SHARED_POOL_URL`: the platform's relay; none means no shared pool.
    pub shared_pool: Option<SharedPool>,
    /// The outbox: workers, retries, leases, message size.
    pub delivery: DeliverySettings,
    /// `SWITCHBOARD_METRICS_TOKEN`: when set, `/metrics` wants it as a bearer token.
    pub metrics_token: Option<SecretString>,
    /// `SWITCHBOARD_GOOGLE_*`: the Gmail OAuth client; none means Gmail is off.
    pub google: Option<GoogleSettings>,
    /// `SWITCHBOARD_MICROSOFT_*`: the Microsoft OAuth client; none means Connect Microsoft is
    /// off.
    pub microsoft: Option<MicrosoftSettings>,
    /// Webhooks and owner emails: retries, timeouts, the From of emails.
    pub notify: NotifySettings,
    /// Domain proof and checks: DNS servers, where proofs live, the platform's domain.
    pub domains: DomainSettings,
    /// The time mail is scheduled by: the system clock, except in tests that move it.
    pub clock: crate::clock::Clock,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any name → value source (the environment, or a map in
    /// tests), so that tests never have to mutate the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let bind = get("SWITCHBOARD_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let data_dir =
            PathBuf::from(get("SWITCHBOARD_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database = match get("SWITCHBOARD_DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse(raw.trim())?,
            None => DatabaseUrl::Sqlite {
                path: default_sqlite_path(&data_dir),
            },
        };
        let operator_token = get("SWITCHBOARD_OPERATOR_TOKEN").map(SecretString::from);
        if let Some(token) = &operator_token
            && token.expose_secret().len() < 32
        {
            return Err(ConfigError::Invalid {
                name: "SWITCHBOARD_OPERATOR_TOKEN",
                reason: "must be at least 32 characters (e.g. `openssl rand -base64 32`)".into(),
            });
        }
        let public_url = get("SWITCHBOARD_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        let http_workers = parse_number(&get, "SWITCHBOARD_HTTP_WORKERS", default_workers())?;
        let db_pool_size = parse_number(&get, "SWITCHBOARD_DB_POOL_SIZE", 10)?;
        let log_format = match get("SWITCHBOARD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SWITCHBOARD_LOG_FORMAT",
                    reason: format!("`{other}` is not text or json"),
                });
            }
        };
        let master_keys = match (
            get("SWITCHBOARD_MASTER_KEYS"),
            get("SWITCHBOARD_MASTER_KEYS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "SWITCHBOARD_MASTER_KEYS",
                    reason: "set either SWITCHBOARD_MASTER_KEYS or SWITCHBOARD_MASTER_KEYS_FILE, not both".into(),
                });
            }
            (Some(keys), None) => KeySource::Inline(SecretString::from(keys)),
            (None, Some(path)) => KeySource::File {
                path: PathBuf::from(path),
                generated: false,
            },
            (None, None) if database.is_postgres() => KeySource::Missing,
            (None, None) => KeySource::File {
                path: data_dir.join("master-keys"),
                generated: true,
            },
        };
        let outbound = OutboundPolicy::parse(
            &get("SWITCHBOARD_OUTBOUND_ALLOW").unwrap_or_default(),
        )
        .map_err(|reason| ConfigError::Invalid {
            name: "SWITCHBOARD_OUTBOUND_ALLOW",
            reason,
        })?;
        let shared_pool = get("SWITCHBOARD_SHARED_POOL_URL")
            .map(|raw| SharedPool::parse(&raw))
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                name: "SWITCHBOARD_SHARED_POOL_URL",
                reason,
            })?;
        let delivery = DeliverySettings::from_lookup(&get)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        let google = GoogleSettings::from_lookup(&get)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        let microsoft = MicrosoftSettings::from_lookup(&get)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        let notify = NotifySettings::from_lookup(&get)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        let domains = DomainSettings::from_lookup(&get)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        let shared_pool = shared_pool.map(|pool| SharedPool {
            platform_domain: domains.platform_domain.clone(),
            ..pool
        });
        Ok(Self {
            bind,
            data_dir,
            database,
            operator_token,
            public_url,
            http_workers,
            db_pool_size,
            log_format,
            master_keys,
            outbound,
            shared_pool,
            delivery,
            metrics_token: get("SWITCHBOARD_METRICS_TOKEN").map(SecretString::from),
            google,
            microsoft,
            notify,
            domains,
            clock: crate::clock::Clock::system(),
        })
    }
}

pub fn default_sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("switchboard.db")
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_number<T: std::str::FromStr + PartialOrd + From<u8>>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| *n >= T::from(1))
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("`{raw}` is not a positive whole number"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_configuration_means_embedded_sqlite_on_loopback() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        match c.database {
            DatabaseUrl::Sqlite { path } => assert_eq!(path, Path::new("./data/switchboard.db")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_urls_never_show_their_password() {
        let c = config(&[(
            "SWITCHBOARD_DATABASE_URL",
            "postgres://sb:Canary-Pw-123@db:5432/switchboard?sslmode=require",
        )])
        .unwrap();
        assert!(c.database.is_postgres());
        let shown = format!("{} {:?} {:?}", c.database, c.database, c);
        assert!(!shown.contains("Canary-Pw-123"), "{shown}");
        assert!(shown.contains("db:5432/switchboard"), "{shown}");
    }

    #[test]
    fn master_keys_default_to_a_generated_file_for_sqlite_only() {
        let c = config(&[]).unwrap();
        assert!(matches!(
            c.master_keys,
            KeySource::File {
                generated: true,
                ..
            }
        ));
        let c = config(&[("SWITCHBOARD_DATABASE_URL", "postgres://db/x")]).unwrap();
        assert!(matches!(c.master_keys, KeySource::Missing));
        let c = config(&[("SWITCHBOARD_MASTER_KEYS", "k1:Q2FuYXJ5LUtleS1NYXRlcmlhbA==")]).unwrap();
        assert!(!format!("{c:?}").contains("Q2FuYXJ5"), "{c:?}");
        let err = config(&[
            ("SWITCHBOARD_MASTER_KEYS", "a:b"),
            ("SWITCHBOARD_MASTER_KEYS_FILE", "/k"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("SWITCHBOARD_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert!(
            err.to_string().starts_with("SWITCHBOARD_DATABASE_URL"),
            "{err}"
        );
        let err = config(&[("SWITCHBOARD_HTTP_WORKERS", "0")]).unwrap_err();
        assert!(
            err.to_string().starts_with("SWITCHBOARD_HTTP_WORKERS"),
            "{err}"
        );
        let err = config(&[("SWITCHBOARD_OPERATOR_TOKEN", "short")]).unwrap_err();
        assert!(err.to_string().contains("32 characters"), "{err}");
    }
}
