//! The form as posted, and its translation into the API's own request: the JSON body
//! `POST /v1/channels` or `PATCH /v1/channels/{id}` would take.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::domain::providers::ProviderPreset;
use crate::domain::{Action, ChannelKind, ChannelOwner, CredentialScope, ReturnPath, SendChannel};
use crate::http::ui::channels::presets;
use crate::http::ui::forms::{FieldErrors, checkbox_value, non_empty};
use crate::http::ui::session::UiSession;

/// The form as posted (and as shown): every field as typed, so a form sent back keeps it.
/// The password is the exception: it is read, never shown again.
#[derive(Default, Deserialize)]
pub(super) struct ChannelForm {
    pub(super) preset: Option<String>,
    pub(super) name: Option<String>,
    pub(super) scope: Option<String>,
    /// `me`, `tenant` or `team:<id>`.
    pub(super) owner: Option<String>,
    pub(super) from_address: Option<String>,
    /// One per line or comma-separated.
    pub(super) domains: Option<String>,
    #[serde(rename = "smtp.host")]
    pub(super) host: Option<String>,
    #[serde(rename = "smtp.port")]
    pub(super) port: Option<String>,
    #[serde(rename = "smtp.security")]
    pub(super) security: Option<String>,
    #[serde(rename = "smtp.region")]
    pub(super) region: Option<String>,
    #[serde(rename = "smtp.auth")]
    pub(super) auth: Option<String>,
    #[serde(rename = "smtp.username")]
    pub(super) username: Option<String>,
    #[serde(rename = "smtp.password")]
    pub(super) password: Option<SecretString>,
    #[serde(
        rename = "smtp.accept_invalid_certs",
        default,
        deserialize_with = "checkbox_value"
    )]
    pub(super) accept_invalid_certs: bool,
    #[serde(rename = "smtp.ca_pem")]
    pub(super) ca_pem: Option<String>,
    #[serde(rename = "smtp.pinned_sha256")]
    pub(super) pinned_sha256: Option<String>,
    pub(super) bcc_archive: Option<String>,
    pub(super) reply_to: Option<String>,
    #[serde(rename = "return_path.mode")]
    pub(super) return_path_mode: Option<String>,
    #[serde(rename = "return_path.address")]
    pub(super) return_path_address: Option<String>,
    #[serde(rename = "limits.per_minute")]
    pub(super) per_minute: Option<String>,
    #[serde(rename = "limits.per_day_recipients")]
    pub(super) per_day_recipients: Option<String>,
    #[serde(rename = "limits.recipients_per_message")]
    pub(super) recipients_per_message: Option<String>,
    /// Domain channels: Switchboard DKIM-signs what the channel sends.
    #[serde(default, deserialize_with = "checkbox_value")]
    pub(super) dkim_sign: bool,
    /// Domain channels: the SPF include a relay without a preset needs.
    pub(super) spf_include: Option<String>,
    /// "Test before saving" (`POST /v1/channels?verify=true`).
    #[serde(default, deserialize_with = "checkbox_value")]
    pub(super) verify: bool,
}

pub(super) const LIMITS: [(&str, &str); 3] = [
    ("per_minute", "Messages per minute"),
    ("per_day_recipients", "Recipients per day"),
    ("recipients_per_message", "Recipients per message"),
];

fn text(value: impl ToString) -> Option<String> {
    Some(value.to_string())
}

impl ChannelForm {
    /// A new channel's form, filled in from the preset when one was chosen.
    pub(super) fn new_channel(preset: Option<&ProviderPreset>, session: &UiSession) -> Self {
        let shared = session.actor().may(Action::ManageSharedChannels);
        let scope = preset
            .map(|p| p.scope)
            .or((!shared).then_some(CredentialScope::Mailbox));
        let owner = match scope {
            Some(CredentialScope::Domain) => "tenant",
            _ => "me",
        };
        let limits = preset.map(|p| p.limits.clone()).unwrap_or_default();
        Self {
            preset: preset.map(|p| p.id.to_owned()),
            scope: scope.map(|s| s.as_str().to_owned()),
            owner: text(owner),
            host: preset.and_then(presets::host).map(str::to_owned),
            port: text(preset.map_or(587, |p| p.port)),
            security: text(preset.map_or("starttls", |p| p.security.as_str())),
            auth: text(preset.map_or("plain", |p| p.auth.as_str())),
            username: preset.and_then(|p| p.fixed_username).map(str::to_owned),
            return_path_mode: text("no"),
            per_minute: limits.per_minute.map(|v| v.to_string()),
            per_day_recipients: limits.per_day_recipients.map(|v| v.to_string()),
            recipients_per_message: limits.recipients_per_message.map(|v| v.to_string()),
            verify: true,
            ..Self::default()
        }
    }

    /// An existing channel's form (never its secret: the form has no password to show).
    pub(super) fn of(channel: &SendChannel) -> Self {
        let spec = &channel.spec;
        let smtp = spec.smtp.as_ref();
        let (mode, address) = match &spec.return_path {
            ReturnPath::No => ("no", None),
            ReturnPath::Yes => ("yes", None),
            ReturnPath::Specified(a) => ("specified", Some(a.to_string())),
        };
        Self {
            preset: spec.provider.clone(),
            name: text(&spec.name),
            scope: text(spec.scope),
            owner: Some(owner_value(spec.owner)),
            from_address: spec.from_address.as_ref().map(ToString::to_string),
            domains: Some(
                spec.domains
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            host: smtp.map(|s| s.host.to_string()),
            port: smtp.map(|s| s.port.to_string()),
            security: smtp.map(|s| s.security.as_str().to_owned()),
            auth: smtp.map(|s| s.auth.as_str().to_owned()),
            username: smtp.and_then(|s| s.username.clone()),
            accept_invalid_certs: smtp.is_some_and(|s| s.accept_invalid_certs),
            ca_pem: smtp.and_then(|s| s.ca_pem.clone()),
            pinned_sha256: smtp.and_then(|s| s.pinned_sha256.map(|f| f.to_string())),
            bcc_archive: spec.bcc_archive.as_ref().map(ToString::to_string),
            reply_to: spec.reply_to.as_ref().map(ToString::to_string),
            return_path_mode: text(mode),
            return_path_address: address,
            per_minute: spec.limits.per_minute.map(|v| v.to_string()),
            per_day_recipients: spec.limits.per_day_recipients.map(|v| v.to_string()),
            recipients_per_message: spec.limits.recipients_per_message.map(|v| v.to_string()),
            dkim_sign: spec.dkim_sign,
            spf_include: spec.spf_include.clone(),
            ..Self::default()
        }
    }

    pub(super) fn limit(&self, key: &str) -> Option<&String> {
        match key {
            "per_minute" => self.per_minute.as_ref(),
            "per_day_recipients" => self.per_day_recipients.as_ref(),
            _ => self.recipients_per_message.as_ref(),
        }
    }

    /// The limits as the API takes them: a number, or `null` for none (an empty box).
    pub(super) fn limits_json(&self) -> Result<Value, FieldErrors> {
        let mut limits = Map::new();
        for (key, _) in LIMITS {
            let value = match non_empty(&self.limit(key).cloned()) {
                None => Value::Null,
                Some(raw) => json!(raw.parse::<u32>().map_err(|_| {
                    FieldErrors::on(
                        &format!("limits.{key}"),
                        "must be a whole number, or empty for no limit",
                    )
                })?),
            };
            limits.insert(key.to_owned(), value);
        }
        Ok(Value::Object(limits))
    }

    pub(super) fn port_json(&self) -> Result<Option<Value>, FieldErrors> {
        non_empty(&self.port)
            .map(|raw| {
                raw.parse::<u16>()
                    .map(|p| json!(p))
                    .map_err(|_| FieldErrors::on("smtp.port", "must be a number from 1 to 65535"))
            })
            .transpose()
    }

    pub(super) fn domains_list(&self) -> Vec<String> {
        self.domains
            .as_deref()
            .unwrap_or_default()
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The owner as the API takes it; `None` for "me" (the API's default).
    pub(super) fn owner_json(&self) -> Result<Option<Value>, FieldErrors> {
        match non_empty(&self.owner) {
            None | Some("me") => Ok(None),
            Some("tenant") => Ok(Some(json!({"tenant": true}))),
            Some(other) => match other.split_once(':') {
                Some(("team", id)) => Ok(Some(json!({"team": id}))),
                _ => Err(FieldErrors::on("owner", "choose an owner from the list")),
            },
        }
    }

    pub(super) fn return_path_json(&self) -> Option<Value> {
        let mode = non_empty(&self.return_path_mode)?;
        Some(match (mode, non_empty(&self.return_path_address)) {
            // The address box keeps its text while another mode is chosen; only
            // "specified" uses it.
            ("specified", Some(address)) => json!({"mode": mode, "address": address}),
            _ => json!({"mode": mode}),
        })
    }

    /// The SMTP settings both requests share. A PEM pasted from a browser has CRLF line
    /// ends; the stored certificate keeps the ones it was written with.
    pub(super) fn smtp_json(
        &self,
        clear_empty_pem: bool,
    ) -> Result<Map<String, Value>, FieldErrors> {
        let mut smtp = Map::new();
        for (key, value) in [
            ("host", &self.host),
            ("security", &self.security),
            ("auth", &self.auth),
            ("username", &self.username),
            ("region", &self.region),
        ] {
            if let Some(v) = non_empty(value) {
                smtp.insert(key.to_owned(), json!(v));
            }
        }
        if let Some(port) = self.port_json()? {
            smtp.insert("port".into(), port);
        }
        smtp.insert(
            "accept_invalid_certs".into(),
            json!(self.accept_invalid_certs),
        );
        // Untrimmed: an unchanged certificate posts back exactly as stored.
        match self.ca_pem.as_deref().filter(|pem| !pem.trim().is_empty()) {
            Some(pem) => {
                smtp.insert("ca_pem".into(), json!(pem.replace("\r\n", "\n")));
            }
            None if clear_empty_pem => {
                smtp.insert("ca_pem".into(), Value::Null);
            }
            None => {}
        }
        // Emptied on the edit form: the certificate is no longer trusted by its fingerprint.
        match non_empty(&self.pinned_sha256) {
            Some(fingerprint) => {
                smtp.insert("pinned_sha256".into(), json!(fingerprint));
            }
            None if clear_empty_pem => {
                smtp.insert("pinned_sha256".into(), Value::Null);
            }
            None => {}
        }
        Ok(smtp)
    }

    /// `POST /v1/channels`' body.
    pub(super) fn create_request(&self) -> Result<Value, FieldErrors> {
        let mut smtp = self.smtp_json(false)?;
        if let Some(password) = &self.password
            && !password.expose_secret().is_empty()
        {
            smtp.insert("password".into(), json!(password.expose_secret()));
        }
        let mut body = json!({
            "name": self.name.as_deref().unwrap_or_default(),
            "kind": "smtp",
            "smtp": smtp,
            "limits": self.limits_json()?,
        });
        let domains = self.domains_list();
        if !domains.is_empty() {
            body["domains"] = json!(domains);
        }
        if let Some(owner) = self.owner_json()? {
            body["owner"] = owner;
        }
        if let Some(rp) = self.return_path_json() {
            body["return_path"] = rp;
        }
        // Only when ticked: the API refuses `true` for a mailbox channel, and `false` is the
        // default.
        if self.dkim_sign {
            body["dkim_sign"] = json!(true);
        }
        for (key, value) in [
            ("preset", &self.preset),
            ("scope", &self.scope),
            ("from_address", &self.from_address),
            ("bcc_archive", &self.bcc_archive),
            ("reply_to", &self.reply_to),
            ("spf_include", &self.spf_include),
        ] {
            if let Some(v) = non_empty(value) {
                body[key] = json!(v);
            }
        }
        Ok(body)
    }

    /// `PATCH /v1/channels/{id}`' body: the fields this channel's form shows. Empty optional
    /// addresses and limits are cleared (`null`); the password is not here (PATCH refuses
    /// it: a new one is verified through the rotation on the channel page).
    pub(super) fn update_request(
        &self,
        channel: &SendChannel,
        may_move: bool,
    ) -> Result<Value, FieldErrors> {
        let address = |v: &Option<String>| non_empty(v).map_or(Value::Null, |a| json!(a));
        let mut body = json!({
            "name": self.name.as_deref().unwrap_or_default(),
            "limits": self.limits_json()?,
            "bcc_archive": address(&self.bcc_archive),
            "reply_to": address(&self.reply_to),
        });
        let domains = self.domains_list();
        if channel.spec.scope == CredentialScope::Domain || !domains.is_empty() {
            body["domains"] = json!(domains);
        }
        if channel.spec.kind == ChannelKind::Smtp {
            body["smtp"] = Value::Object(self.smtp_json(true)?);
            if let Some(from) = non_empty(&self.from_address) {
                body["from_address"] = json!(from);
            }
            if let Some(rp) = self.return_path_json() {
                body["return_path"] = rp;
            }
            if channel.spec.scope == CredentialScope::Domain {
                body["dkim_sign"] = json!(self.dkim_sign);
                body["spf_include"] = address(&self.spf_include);
            }
        }
        if may_move && let Some(owner) = self.owner_json()? {
            body["owner"] = owner;
        }
        Ok(body)
    }
}

/// The owner choice's value for an owner.
pub(super) fn owner_value(owner: ChannelOwner) -> String {
    match owner {
        ChannelOwner::Team(t) => format!("team:{t}"),
        ChannelOwner::Tenant => "tenant".into(),
        ChannelOwner::User(_) | ChannelOwner::Platform => "me".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::channels::{CreateChannelRequest, UpdateChannelRequest};

    pub(super) fn form(fields: &[(&str, &str)]) -> ChannelForm {
        serde_urlencoded::from_str(&serde_urlencoded::to_string(fields).unwrap()).unwrap()
    }

    #[test]
    pub(super) fn a_posted_form_becomes_the_apis_create_request() {
        let f = form(&[
            ("_csrf", "x"),
            ("preset", "sendgrid"),
            ("name", "Relay"),
            ("scope", "domain"),
            ("owner", "tenant"),
            ("domains", "acme.test,\r\nmail.acme.test"),
            ("smtp.host", "smtp.sendgrid.net"),
            ("smtp.port", "587"),
            ("smtp.password", "Canary"),
            ("smtp.ca_pem", ""),
            ("limits.per_minute", ""),
            ("limits.recipients_per_message", "1000"),
            ("return_path.mode", "no"),
            ("return_path.address", "left@over.test"),
            ("verify", "on"),
        ]);
        assert!(f.verify);
        let body = f.create_request().unwrap();
        assert_eq!(body["owner"], json!({"tenant": true}));
        assert_eq!(body["domains"], json!(["acme.test", "mail.acme.test"]));
        assert_eq!(body["smtp"]["port"], json!(587));
        assert_eq!(body["smtp"]["password"], json!("Canary"));
        assert_eq!(body["smtp"]["accept_invalid_certs"], json!(false));
        assert!(body["smtp"].get("ca_pem").is_none());
        assert_eq!(body["limits"]["per_minute"], Value::Null);
        assert_eq!(body["limits"]["recipients_per_message"], json!(1000));
        assert_eq!(body["return_path"], json!({"mode": "no"}));
        assert!(
            body.get("dkim_sign").is_none(),
            "unticked: left to the default"
        );
        assert!(serde_json::from_value::<CreateChannelRequest>(body).is_ok());
        let mut signed = f;
        signed.dkim_sign = true;
        let body = signed.create_request().unwrap();
        assert_eq!(body["dkim_sign"], json!(true));
        assert!(serde_json::from_value::<CreateChannelRequest>(body).is_ok());
    }

    #[test]
    pub(super) fn the_trusted_fingerprint_posts_back_as_shown_and_emptied_stops_trusting() {
        let shown = crate::domain::CertificateFingerprint::of(b"server").to_string();
        let kept = form(&[("smtp.pinned_sha256", shown.as_str())]);
        assert_eq!(kept.smtp_json(true).unwrap()["pinned_sha256"], json!(shown));
        let emptied = form(&[("smtp.pinned_sha256", " ")]);
        assert_eq!(
            emptied.smtp_json(true).unwrap()["pinned_sha256"],
            Value::Null
        );
        assert!(
            emptied
                .smtp_json(false)
                .unwrap()
                .get("pinned_sha256")
                .is_none()
        );
    }

    #[test]
    pub(super) fn numbers_that_are_not_numbers_are_refused_next_to_their_box() {
        let errors = form(&[("smtp.port", "five-eight-seven")])
            .create_request()
            .unwrap_err();
        assert!(errors.get("smtp.port").is_some());
        let errors = form(&[("limits.per_minute", "lots")])
            .create_request()
            .unwrap_err();
        assert!(errors.get("limits.per_minute").is_some());
    }

    pub(super) fn gmail_channel() -> SendChannel {
        use crate::domain::{ChannelId, ChannelSpec, ChannelStatus, DisplayName, EmailAddress};
        use crate::domain::{TenantId, UserId};
        let now = chrono::Utc::now();
        SendChannel {
            id: ChannelId::generate(),
            tenant_id: TenantId::generate(),
            spec: ChannelSpec {
                name: DisplayName::parse("Dana's Gmail").unwrap(),
                kind: ChannelKind::Gmail,
                owner: ChannelOwner::User(UserId::generate()),
                scope: CredentialScope::Mailbox,
                from_address: Some(EmailAddress::parse("dana@acme.test").unwrap()),
                domains: Vec::new(),
                smtp: None,
                limits: Default::default(),
                bcc_archive: None,
                reply_to: None,
                return_path: ReturnPath::No,
                provider: None,
                dkim_sign: false,
                spf_include: None,
                microsoft_transport: crate::domain::MicrosoftTransport::Graph,
            },
            status: ChannelStatus::Active,
            status_cause: None,
            credential_updated_at: Some(now),
            last_verified_at: None,
            last_used_at: None,
            health: Default::default(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    pub(super) fn a_gmail_channels_edit_sends_nothing_the_api_refuses_for_gmail() {
        let channel = gmail_channel();
        let mut posted = ChannelForm::of(&channel);
        posted.name = Some("Dana".into());
        posted.bcc_archive = Some(String::new());
        let body = posted.update_request(&channel, false).unwrap();
        for refused in [
            "smtp",
            "from_address",
            "return_path",
            "domains",
            "owner",
            "dkim_sign",
        ] {
            assert!(body.get(refused).is_none(), "{refused}: {body}");
        }
        assert_eq!(body["name"], "Dana");
        assert_eq!(body["bcc_archive"], Value::Null, "an emptied box clears it");
        assert!(serde_json::from_value::<UpdateChannelRequest>(body).is_ok());
    }

    #[test]
    pub(super) fn an_owner_outside_the_list_is_refused() {
        assert!(
            form(&[("owner", "team:abc")])
                .owner_json()
                .unwrap()
                .is_some()
        );
        assert!(form(&[("owner", "me")]).owner_json().unwrap().is_none());
        assert!(form(&[("owner", "operator")]).owner_json().is_err());
    }
}
