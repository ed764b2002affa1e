//! Channel requests as clients send them, and their parsing into validated domain values.
//! Provider presets fill in what the request leaves out.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::providers::{self, ProviderPreset};
use crate::domain::{
    ChannelLimits, ChannelOwner, CredentialScope, Domain, EmailAddress, Hostname, ReturnPath,
    Security, SmtpAuth, SmtpSettings, TeamId, UserId,
};

/// Distinguishes an absent field (leave as is) from an explicit `null` (clear it).
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

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
    pub connect_timeout_secs: Option<u32>,
    pub command_timeout_secs: Option<u32>,
    pub pool_size: Option<u32>,
    /// For presets whose host depends on a region (Amazon SES).
    pub region: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    pub per_minute: Option<u32>,
    pub per_day_recipients: Option<u32>,
    pub recipients_per_message: Option<u32>,
}

impl From<ChannelLimits> for LimitsInput {
    fn from(l: ChannelLimits) -> Self {
        Self {
            per_minute: l.per_minute,
            per_day_recipients: l.per_day_recipients,
            recipients_per_message: l.recipients_per_message,
        }
    }
}

impl LimitsInput {
    pub fn parse(self) -> Result<ChannelLimits, ApiError> {
        for value in [
            self.per_minute,
            self.per_day_recipients,
            self.recipients_per_message,
        ]
        .into_iter()
        .flatten()
        {
            if value == 0 {
                return Err(ApiError::InvalidField {
                    field: "limits",
                    reason: "a limit is a positive number, or null for none".into(),
                });
            }
        }
        Ok(ChannelLimits {
            per_minute: self.per_minute,
            per_day_recipients: self.per_day_recipients,
            recipients_per_message: self.recipients_per_message,
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
    let host = match (&input.host, current, preset) {
        (Some(h), _, _) => Hostname::parse(h).map_err(|e| ApiError::invalid("smtp.host", e))?,
        (None, Some(c), _) => c.host.clone(),
        (None, None, Some(p)) => Hostname::parse(
            &p.host_for(input.region.as_deref())
                .map_err(|e| ApiError::invalid("smtp.region", e))?,
        )
        .map_err(|e| ApiError::invalid("smtp.host", e))?,
        (None, None, None) => return Err(missing("host")),
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
