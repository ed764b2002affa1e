//! Channel requests as clients send them, and their parsing into validated domain values.
//! Provider presets fill in what the request leaves out.

use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::pacing::{MinGapSpec, PacingError, WarmupSpec, WindowsSpec};
use crate::domain::providers::{self, ProviderPreset};
use crate::domain::{
    CertificateFingerprint, ChannelLimits, ChannelOwner, CredentialScope, Domain, EmailAddress,
    Hostname, ReturnPath, Security, SmtpAuth, SmtpSettings, TeamId, UserId,
};
use crate::http::error::ApiError;
use crate::http::extract::present;
use chrono::NaiveDate;

/// `{"user": id}`, `{"team": id}` or `{"tenant": true}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerInput {
    pub user: Option<String>,
    pub team: Option<String>,
    pub tenant: Option<bool>,
}

impl OwnerInput {
    pub fn parse(&self) -> Result<ChannelOwner, ApiError> {
        let invalid = |reason: &str| ApiError::InvalidField {
            field: "owner",
            reason: reason.to_owned(),
        };
        match (&self.user, &self.team, self.tenant) {
            (Some(u), None, None | Some(false)) => Ok(ChannelOwner::User(
                u.parse::<UserId>()
                    .map_err(|e| ApiError::invalid("owner", e))?,
            )),
            (None, Some(t), None | Some(false)) => Ok(ChannelOwner::Team(
                t.parse::<TeamId>()
                    .map_err(|e| ApiError::invalid("owner", e))?,
            )),
            (None, None, Some(true)) => Ok(ChannelOwner::Tenant),
            _ => Err(invalid(
                "give exactly one of {\"user\": id}, {\"team\": id} or {\"tenant\": true}",
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpInput {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub security: Option<String>,
    /// `none`, `plain`, `login` or `xoauth2`.
    pub auth: Option<String>,
    pub username: Option<String>,
    /// Write-only: never returned.
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<SecretString>,
    pub accept_invalid_certs: Option<bool>,
    /// A custom CA certificate (PEM), the safe alternative to `accept_invalid_certs`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub ca_pem: Option<Option<String>>,
    /// The SHA-256 fingerprint of a server certificate to trust exactly (`AB:CD:…`, as the
    /// test report shows it), whoever issued it; `null` stops trusting it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub pinned_sha256: Option<Option<String>>,
    pub connect_timeout_secs: Option<u32>,
    pub command_timeout_secs: Option<u32>,
    pub pool_size: Option<u32>,
    /// For presets whose host depends on a region (Amazon SES).
    pub region: Option<String>,
}

/// Each limit: absent keeps the current (or the preset's) value, `null` removes it, a number
/// sets it.
#[derive(Debug, Default, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub per_minute: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub per_day_recipients: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub recipients_per_message: Option<Option<u32>>,
    /// Messages per rolling 24 h (docs/pacing.md).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub per_day_messages: Option<Option<u32>>,
    /// `{time_zone: "Europe/Berlin", windows: [{days: ["mon", …], start: "09:00", end: "17:30"}]}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub windows: Option<Option<WindowsSpec>>,
    /// `{start: 20, step: 2, target: 200, started_on?: "2026-12-02"}`: marks the channel warming up.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub warmup: Option<Option<WarmupSpec>>,
    /// `{min_seconds: 60, max_seconds: 180}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub min_gap: Option<Option<MinGapSpec>>,
}

impl From<PacingError> for ApiError {
    fn from(e: PacingError) -> Self {
        ApiError::InvalidMessage {
            code: e.code,
            field: e.field,
            detail: e.reason,
        }
    }
}

impl LimitsInput {
    /// The limits over `base` (the channel's current ones, or the preset's); `today` starts a
    /// ramp that names no start date.
    pub fn apply(self, base: ChannelLimits, today: NaiveDate) -> Result<ChannelLimits, ApiError> {
        let pick =
            |given: Option<Option<u32>>, current: Option<u32>| -> Result<Option<u32>, ApiError> {
                match given {
                    None => Ok(current),
                    Some(Some(0)) => Err(ApiError::InvalidField {
                        field: "limits",
                        reason: "a limit is a positive number, or null for none".into(),
                    }),
                    Some(value) => Ok(value),
                }
            };
        Ok(ChannelLimits {
            per_minute: pick(self.per_minute, base.per_minute)?,
            per_day_recipients: pick(self.per_day_recipients, base.per_day_recipients)?,
            recipients_per_message: pick(self.recipients_per_message, base.recipients_per_message)?,
            per_day_messages: pick(self.per_day_messages, base.per_day_messages)?,
            windows: match self.windows {
                None => base.windows,
                Some(given) => given.map(|w| w.parse("limits.windows")).transpose()?,
            },
            warmup: match self.warmup {
                None => base.warmup,
                Some(given) => given.map(|w| w.parse("limits.warmup", today)).transpose()?,
            },
            min_gap: match self.min_gap {
                None => base.min_gap,
                Some(given) => given.map(|g| g.parse("limits.min_gap")).transpose()?,
            },
        })
    }
}

/// `{"mode": "no" | "yes"}` or `{"mode": "specified", "address": "bounces@acme.test"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnPathInput {
    pub mode: String,
    pub address: Option<String>,
}

impl ReturnPathInput {
    pub fn parse(&self) -> Result<ReturnPath, ApiError> {
        let invalid = |reason: String| ApiError::InvalidField {
            field: "return_path",
            reason,
        };
        match (self.mode.as_str(), &self.address) {
            ("no", None) => Ok(ReturnPath::No),
            ("yes", None) => Ok(ReturnPath::Yes),
            ("specified", Some(a)) => Ok(ReturnPath::Specified(
                EmailAddress::parse(a).map_err(|e| ApiError::invalid("return_path", e))?,
            )),
            ("specified", None) => Err(invalid("mode `specified` needs an address".into())),
            ("no" | "yes", Some(_)) => {
                Err(invalid("an address goes only with mode `specified`".into()))
            }
            (other, _) => Err(invalid(format!(
                "unknown mode `{other}`; use no, yes or specified"
            ))),
        }
    }
}

/// An SPF include's domain as the admin typed it (with or without `include:`).
pub fn parse_spf_include(raw: &str) -> Result<String, ApiError> {
    crate::domains::settings::spf_include(raw).ok_or_else(|| ApiError::InvalidField {
        field: "spf_include",
        reason: format!("`{raw}` is not a domain name such as _spf.relay.example"),
    })
}

pub fn parse_address(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<EmailAddress>, ApiError> {
    raw.map(EmailAddress::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(field, e))
}

pub fn parse_domains(raw: &[String]) -> Result<Vec<Domain>, ApiError> {
    let mut domains = raw
        .iter()
        .map(|d| Domain::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("domains", e))?;
    domains.sort();
    domains.dedup();
    Ok(domains)
}

pub fn find_preset(id: &str) -> Result<&'static ProviderPreset, ApiError> {
    providers::preset(id).ok_or_else(|| ApiError::Unprocessable {
        code: "unknown_preset",
        detail: format!("no preset `{id}`; GET /v1/providers lists them"),
    })
}

fn parse_enum<T: std::str::FromStr<Err = crate::domain::DomainError>>(
    field: &'static str,
    raw: &str,
) -> Result<T, ApiError> {
    raw.parse().map_err(|e| ApiError::invalid(field, e))
}

/// SMTP settings from a request over a base: the current settings (PATCH), a preset, or
/// nothing (then host and port are required).
pub fn smtp_settings(
    input: &SmtpInput,
    current: Option<&SmtpSettings>,
    preset: Option<&ProviderPreset>,
) -> Result<SmtpSettings, ApiError> {
    let missing = |field: &str| ApiError::InvalidField {
        field: "smtp",
        reason: format!("`{field}` is required (or choose a preset)"),
    };
    let region_host = |p: &ProviderPreset, region: Option<&str>| -> Result<Hostname, ApiError> {
        let host = p
            .host_for(region)
            .map_err(|e| ApiError::invalid("smtp.region", e))?;
        Hostname::parse(&host).map_err(|e| ApiError::invalid("smtp.host", e))
    };
    let host = match (&input.host, &input.region, current, preset) {
        (Some(h), _, _, _) => Hostname::parse(h).map_err(|e| ApiError::invalid("smtp.host", e))?,
        (None, Some(region), _, Some(p)) => region_host(p, Some(region))?,
        (None, _, Some(c), _) => c.host.clone(),
        (None, _, None, Some(p)) => region_host(p, None)?,
        (None, _, None, None) => return Err(missing("host")),
    };
    let port = input
        .port
        .or(current.map(|c| c.port))
        .or(preset.map(|p| p.port))
        .ok_or_else(|| missing("port"))?;
    let security = match &input.security {
        Some(s) => parse_enum::<Security>("smtp.security", s)?,
        None => current
            .map(|c| c.security)
            .or(preset.map(|p| p.security))
            .unwrap_or(match port {
                465 => Security::Tls,
                25 => Security::StartTls,
                _ => Security::StartTls,
            }),
    };
    let auth = match &input.auth {
        Some(a) => parse_enum::<SmtpAuth>("smtp.auth", a)?,
        None => current
            .map(|c| c.auth)
            .or(preset.map(|p| p.auth))
            .unwrap_or(SmtpAuth::Plain),
    };
    let username = input
        .username
        .clone()
        .or_else(|| current.and_then(|c| c.username.clone()))
        .or_else(|| preset.and_then(|p| p.fixed_username.map(str::to_owned)));
    if username
        .as_deref()
        .is_some_and(|u| u.chars().any(char::is_control) || u.len() > 320)
    {
        return Err(ApiError::InvalidField {
            field: "smtp.username",
            reason: "must be at most 320 characters, without control characters".into(),
        });
    }
    let settings = SmtpSettings {
        host,
        port,
        security,
        auth,
        username,
        accept_invalid_certs: input
            .accept_invalid_certs
            .or(current.map(|c| c.accept_invalid_certs))
            .unwrap_or(false),
        ca_pem: match &input.ca_pem {
            Some(v) => v.clone(),
            None => current.and_then(|c| c.ca_pem.clone()),
        },
        pinned_sha256: match &input.pinned_sha256 {
            Some(Some(raw)) => Some(
                CertificateFingerprint::parse(raw)
                    .map_err(|e| ApiError::invalid("smtp.pinned_sha256", e))?,
            ),
            Some(None) => None,
            None => current.and_then(|c| c.pinned_sha256),
        },
        connect_timeout_secs: input
            .connect_timeout_secs
            .or(current.map(|c| c.connect_timeout_secs))
            .unwrap_or(SmtpSettings::DEFAULT_CONNECT_TIMEOUT),
        command_timeout_secs: input
            .command_timeout_secs
            .or(current.map(|c| c.command_timeout_secs))
            .unwrap_or(SmtpSettings::DEFAULT_COMMAND_TIMEOUT),
        pool_size: input
            .pool_size
            .or(current.map(|c| c.pool_size))
            .unwrap_or(SmtpSettings::DEFAULT_POOL_SIZE),
    };
    settings.check().map_err(|e| ApiError::invalid("smtp", e))?;
    // Read every pasted certificate now: a paste that cannot be used is refused here, not at
    // the first connection.
    if let Some(pem) = &settings.ca_pem {
        crate::transport::certificate::pasted_certificates(pem).map_err(|e| {
            ApiError::InvalidField {
                field: "smtp.ca_pem",
                reason: e.to_string(),
            }
        })?;
    }
    Ok(settings)
}

/// The scope a request asks for, or the preset's, or none given.
pub fn scope(
    raw: Option<&str>,
    preset: Option<&ProviderPreset>,
) -> Result<CredentialScope, ApiError> {
    match (raw, preset) {
        (Some(s), _) => parse_enum("scope", s),
        (None, Some(p)) => Ok(p.scope),
        (None, None) => Err(ApiError::InvalidField {
            field: "scope",
            reason: "`mailbox` or `domain` is required".into(),
        }),
    }
}

/// A username equal to the password would be stored and shown in clear on every read.
pub fn refuse_secret_username(
    username: Option<&str>,
    secret: &secrecy::SecretString,
) -> Result<(), ApiError> {
    use secrecy::ExposeSecret;
    if username.is_some_and(|u| !u.is_empty() && u == secret.expose_secret()) {
        return Err(ApiError::Unprocessable {
            code: "username_is_secret",
            detail: "the username equals the password: usernames are shown on every read, so use a credential whose username is not secret (Postmark: an SMTP token's Access Key and Secret Key)".into(),
        });
    }
    Ok(())
}

/// The new secret of a rotation: exactly one of `password` or `api_key`, not empty.
pub fn one_secret(
    password: Option<secrecy::SecretString>,
    api_key: Option<secrecy::SecretString>,
) -> Result<secrecy::SecretString, ApiError> {
    use secrecy::ExposeSecret;
    match (password, api_key) {
        (Some(secret), None) | (None, Some(secret)) if !secret.expose_secret().is_empty() => {
            Ok(secret)
        }
        _ => Err(ApiError::InvalidField {
            field: "password",
            reason: "give exactly one of password or api_key, not empty".into(),
        }),
    }
}

/// A new username given with a rotation, when one is: not blank, no control characters.
pub fn parse_new_username(
    field: &'static str,
    raw: Option<String>,
) -> Result<Option<String>, ApiError> {
    match raw {
        Some(u) if u.trim().is_empty() || u.chars().any(char::is_control) => {
            Err(ApiError::InvalidField {
                field,
                reason: "must not be empty or hold control characters".into(),
            })
        }
        other => Ok(other),
    }
}
