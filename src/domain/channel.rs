//! Send channels: what a channel is, who owns it, which From addresses it may carry, and the
//! SMTP settings admins know from other products. The scope rules live here, so the API, the
//! router and the tests all read the same ones.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{CertificateFingerprint, Domain, DomainError, EmailAddress, TeamId, TenantId, UserId};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, DomainError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(DomainError::new(format!(
                        concat!("unknown ", $what, " `{}`; use {}"),
                        other,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// How a channel sends.
    ChannelKind, "kind" {
        SharedPool => "shared_pool",
        Smtp => "smtp",
        Gmail => "gmail",
        Microsoft => "microsoft",
    }
);

impl ChannelKind {
    /// A mailbox connected with OAuth (Gmail, Microsoft): no password, no SMTP settings, the
    /// From is the signed-in account's, and a reconnect replaces its grant.
    pub fn is_connected_mailbox(self) -> bool {
        matches!(self, ChannelKind::Gmail | ChannelKind::Microsoft)
    }
}
text_enum!(
    /// How a Microsoft channel hands its mail to Exchange Online: Microsoft Graph `sendMail`
    /// (the default), or SMTP submission at smtp.office365.com with `AUTH XOAUTH2`, for
    /// tenants that still allow SMTP AUTH.
    MicrosoftTransport, "transport" { Graph => "graph", Smtp => "smtp" }
);
text_enum!(
    /// The kind of account behind a connected mailbox, as its provider told us at connect:
    /// it decides the provider's sending limits, which the channel may lower, never raise.
    MailboxAccount, "account" {
        GoogleConsumer => "google_consumer",
        GoogleWorkspace => "google_workspace",
        Microsoft365 => "microsoft_365",
        OutlookCom => "outlook_com",
    }
);

impl MailboxAccount {
    /// The provider's limits for one mailbox of this kind (PROVIDERS.md, MICROSOFT.md):
    /// Gmail over a rolling day about 500 messages for a consumer account, 2,000 messages and
    /// 10,000 recipients for Workspace, 100 recipients a message; Exchange Online 30 messages
    /// a minute, 10,000 recipients a rolling day and 500 a message; Outlook.com about 300
    /// recipients a day.
    pub fn limits(self) -> ChannelLimits {
        let (per_minute, per_day_recipients, per_day_messages, recipients_per_message) = match self
        {
            MailboxAccount::GoogleConsumer => (None, 500, Some(500), 100),
            MailboxAccount::GoogleWorkspace => (None, 10_000, Some(2_000), 100),
            MailboxAccount::Microsoft365 => (Some(30), 10_000, None, 500),
            MailboxAccount::OutlookCom => (Some(30), 300, None, 500),
        };
        ChannelLimits {
            per_minute,
            per_day_recipients: Some(per_day_recipients),
            per_day_messages,
            recipients_per_message: Some(recipients_per_message),
            ..ChannelLimits::default()
        }
    }

    /// Who sets the limits, for sentences: "Google Workspace allows …".
    pub fn provider_name(self) -> &'static str {
        match self {
            MailboxAccount::GoogleConsumer => "a consumer Google account (gmail.com)",
            MailboxAccount::GoogleWorkspace => "Google Workspace",
            MailboxAccount::Microsoft365 => "Exchange Online (Microsoft 365)",
            MailboxAccount::OutlookCom => "Outlook.com",
        }
    }

    /// Whether `limits` stays within the provider's: each limit the provider sets must be
    /// set and no higher (`null` would lift it). The first one over, as a field and a sentence.
    pub fn over_limit(self, limits: &ChannelLimits) -> Option<(&'static str, String)> {
        let ceiling = self.limits();
        [
            ("per_minute", ceiling.per_minute, limits.per_minute, "messages a minute"),
            (
                "per_day_recipients",
                ceiling.per_day_recipients,
                limits.per_day_recipients,
                "recipients a rolling day",
            ),
            (
                "per_day_messages",
                ceiling.per_day_messages,
                limits.per_day_messages,
                "messages a rolling day",
            ),
            (
                "recipients_per_message",
                ceiling.recipients_per_message,
                limits.recipients_per_message,
                "recipients a message",
            ),
        ]
        .into_iter()
        .find_map(|(field, max, set, what)| {
            let max = max?;
            match set {
                Some(value) if value <= max => None,
                Some(value) => Some((
                    field,
                    format!(
                        "{} allows {max} {what} per mailbox; {value} would push it past that and the provider would block the mailbox. Set at most {max}",
                        self.provider_name()
                    ),
                )),
                None => Some((
                    field,
                    format!(
                        "{} allows {max} {what} per mailbox; this limit cannot be removed, only lowered",
                        self.provider_name()
                    ),
                )),
            }
        })
    }
}

text_enum!(
    /// Which From addresses a channel's credential may send as.
    CredentialScope, "scope" { Mailbox => "mailbox", Domain => "domain" }
);
text_enum!(
    /// Transport security of an SMTP connection.
    Security, "security" { None => "none", StartTls => "starttls", Tls => "tls" }
);
text_enum!(
    /// SMTP authentication mechanism.
    SmtpAuth, "auth" { None => "none", Plain => "plain", Login => "login", Xoauth2 => "xoauth2" }
);
text_enum!(
    /// Whether a channel carries mail. Only `active` channels do; the others hold it.
    /// `paused`: stopped on purpose (bounces, a provider's block, an admin) until resumed.
    ChannelStatus, "status" {
        Active => "active",
        NeedsReauth => "needs_reauth",
        Failing => "failing",
        Disabled => "disabled",
        Paused => "paused",
    }
);

/// Who owns a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOwner {
    User(UserId),
    Team(TeamId),
    Tenant,
    /// The platform operator: the shared pool, configured outside any tenant, never stored.
    Platform,
}

/// What goes into the envelope sender (MAIL FROM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnPath {
    /// The relay decides (usually the authenticated mailbox).
    No,
    /// The message's From.
    Yes,
    /// A fixed bounce address.
    Specified(EmailAddress),
}

/// A host to connect to: a DNS name or an IP literal, without scheme, port or spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Self(host));
        }
        if host.contains("://") || host.contains(':') || host.contains('/') {
            return Err(DomainError::new(
                "give only the host name, e.g. smtp.office365.com (no scheme, port or path)",
            ));
        }
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(DomainError::new(format!(
                "`{}` is not a host name",
                raw.trim()
            )));
        }
        Ok(Self(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The settings of an SMTP channel. The password is not here: it is a secret, sealed in the
/// vault, and never travels with the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: Hostname,
    pub port: u16,
    pub security: Security,
    pub auth: SmtpAuth,
    pub username: Option<String>,
    /// Off by default and warned about on every read: prefer `ca_pem`.
    pub accept_invalid_certs: bool,
    /// A custom CA certificate (PEM) for servers with a private or self-signed certificate.
    pub ca_pem: Option<String>,
    /// A server certificate the admin trusted by its fingerprint (a security exception): the
    /// server is trusted when it presents exactly this certificate, whoever issued it.
    pub pinned_sha256: Option<CertificateFingerprint>,
    pub connect_timeout_secs: u32,
    pub command_timeout_secs: u32,
    pub pool_size: u32,
}

impl SmtpSettings {
    pub const DEFAULT_CONNECT_TIMEOUT: u32 = 10;
    pub const DEFAULT_COMMAND_TIMEOUT: u32 = 30;
    pub const DEFAULT_POOL_SIZE: u32 = 4;

    /// Checks what a value-by-value parse cannot: the combination.
    pub fn check(&self) -> Result<(), DomainError> {
        if self.port == 0 {
            return Err(DomainError::new("port must be 1 to 65535"));
        }
        if self.auth != SmtpAuth::None && self.username.as_deref().is_none_or(str::is_empty) {
            return Err(DomainError::new(format!(
                "auth `{}` needs a username",
                self.auth
            )));
        }
        if !(1..=300).contains(&self.connect_timeout_secs)
            || !(1..=600).contains(&self.command_timeout_secs)
        {
            return Err(DomainError::new(
                "timeouts: connect 1 to 300 s, command 1 to 600 s",
            ));
        }
        if !(1..=50).contains(&self.pool_size) {
            return Err(DomainError::new("pool_size must be 1 to 50"));
        }
        if let Some(pem) = &self.ca_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(DomainError::new(
                "ca_pem must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        Ok(())
    }

    /// Things that work but that a careful admin should know, as (code, message).
    pub fn warnings(&self) -> Vec<(&'static str, String)> {
        let mut warnings = Vec::new();
        if self.port == 25 {
            warnings.push((
                "port_25",
                "port 25 is often blocked by hosting providers and meant for server-to-server relay; use 587 (STARTTLS) or 465 (TLS)".to_owned(),
            ));
        }
        if self.accept_invalid_certs {
            warnings.push((
                "invalid_certs_accepted",
                "certificate verification is OFF: anyone between us and the server can read the password; give the server's CA in ca_pem instead".to_owned(),
            ));
        }
        if self.security == Security::None && self.auth != SmtpAuth::None {
            warnings.push((
                "plaintext_auth",
                "security is `none`: the password travels unencrypted; use starttls or tls"
                    .to_owned(),
            ));
        }
        if self.is_microsoft_password_login() {
            warnings.push((
                "microsoft_password_login_retiring",
                "Microsoft is retiring password logins to its SMTP servers (off by default for Microsoft 365 from the end of December 2026; Outlook.com has already stopped them): connect this mailbox with Connect Microsoft instead, which needs no password".to_owned(),
            ));
        }
        warnings
    }

    /// A password login to Microsoft 365's or Outlook.com's SMTP submission servers: the
    /// way Microsoft is switching off (XOAUTH2 is not a password).
    pub fn is_microsoft_password_login(&self) -> bool {
        matches!(
            self.host.as_str(),
            "smtp.office365.com" | "smtp-legacy.office365.com" | "smtp-mail.outlook.com"
        ) && matches!(self.auth, SmtpAuth::Plain | SmtpAuth::Login)
    }
}

/// Sending limits of a channel; `None` means no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelLimits {
    pub per_minute: Option<u32>,
    pub per_day_recipients: Option<u32>,
    pub recipients_per_message: Option<u32>,
    /// Messages per rolling 24 h (the providers' daily cap; see `pacing`).
    pub per_day_messages: Option<u32>,
    /// When the channel may send; `None` falls back to the tenant's default.
    pub windows: Option<super::pacing::SendingWindows>,
    /// A warm-up ramp lowering the day's cap while the mailbox is young.
    pub warmup: Option<super::pacing::Warmup>,
    /// A jittered minimum gap between two sends.
    pub min_gap: Option<super::pacing::MinGap>,
}

/// Why a channel's owner, scope and addresses do not fit together. `code` is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeViolation {
    pub code: &'static str,
    pub conflict: bool,
    pub message: String,
}

impl ScopeViolation {
    fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            conflict: true,
            message: message.into(),
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            conflict: false,
            message: message.into(),
        }
    }
}

/// The scope rules. A mailbox credential (Office 365, Gmail, Yahoo) belongs to one person:
/// it is owned by one user and sends only as its own address. A domain credential (SparkPost,
/// SendGrid, SES) belongs to a team or the tenant and covers the From addresses of its
/// domains, which must be the tenant's own.
pub fn check_scope(
    owner: ChannelOwner,
    scope: CredentialScope,
    from_address: Option<&EmailAddress>,
    domains: &[Domain],
    sendable_domains: &[Domain],
) -> Result<(), ScopeViolation> {
    match scope {
        CredentialScope::Mailbox => {
            if !matches!(owner, ChannelOwner::User(_)) {
                return Err(ScopeViolation::conflict(
                    "channel_scope_mismatch",
                    "a mailbox credential belongs to one person: it must be owned by a user, never shared with a team or the tenant; use a domain channel (SparkPost, SendGrid, SES) for shared sending",
                ));
            }
            if from_address.is_none() {
                return Err(ScopeViolation::invalid(
                    "from_address_required",
                    "a mailbox channel needs from_address: the one address it sends as",
                ));
            }
            if !domains.is_empty() {
                return Err(ScopeViolation::invalid(
                    "domains_not_allowed",
                    "a mailbox channel sends only as its from_address; domains are for domain channels",
                ));
            }
        }
        CredentialScope::Domain => {
            if matches!(owner, ChannelOwner::Platform) {
                return Err(ScopeViolation::conflict(
                    "shared_pool_is_operator_configured",
                    "the shared pool is configured by the platform operator (SWITCHBOARD_SHARED_POOL_URL)",
                ));
            }
            if matches!(owner, ChannelOwner::User(_)) {
                return Err(ScopeViolation::conflict(
                    "channel_scope_mismatch",
                    "a domain channel is shared: it must be owned by a team or the tenant",
                ));
            }
            if domains.is_empty() {
                return Err(ScopeViolation::invalid(
                    "domains_required",
                    "a domain channel needs domains: the From domains it may send for",
                ));
            }
            if from_address.is_some() {
                return Err(ScopeViolation::invalid(
                    "from_address_not_allowed",
                    "a domain channel sends for its domains; from_address is for mailbox channels",
                ));
            }
            if let Some(outside) = domains.iter().find(|d| !sendable_domains.contains(d)) {
                return Err(ScopeViolation::invalid(
                    "domain_not_verified",
                    format!(
                        "`{outside}` is not a verified domain of the tenant: an admin claims it (POST /v1/domains) and publishes its TXT record first; each subdomain is claimed on its own"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What a channel is, as its owner configures it: everything but its identity, status and
/// history. A new channel is created from one; a change replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: super::DisplayName,
    pub kind: ChannelKind,
    pub owner: ChannelOwner,
    pub scope: CredentialScope,
    pub from_address: Option<EmailAddress>,
    pub domains: Vec<Domain>,
    pub smtp: Option<SmtpSettings>,
    pub limits: ChannelLimits,
    pub bcc_archive: Option<EmailAddress>,
    pub reply_to: Option<EmailAddress>,
    pub return_path: ReturnPath,
    /// The preset it was created from, if any (`office365`, `sendgrid`, …).
    pub provider: Option<String>,
    /// Switchboard DKIM-signs what it sends, with the tenant's key for the From domain: for
    /// team or tenant relays that do not sign themselves (see `check_dkim_sign`).
    pub dkim_sign: bool,
    /// The SPF include the relay needs (`_spf.relay.example`), for a relay without a preset
    /// that says so; the per-channel SPF check asks the domain's record for it.
    pub spf_include: Option<String>,
    /// How a `microsoft` channel sends (Graph unless changed; ignored for other kinds).
    pub microsoft_transport: MicrosoftTransport,
    /// A connected mailbox's account kind (Gmail, Microsoft), whose provider limits bound the
    /// channel's; `None` for other channels and for mailboxes connected before it was kept.
    pub account: Option<MailboxAccount>,
}

/// Submission servers of mailbox providers that refuse, or rewrite, a From the logged-in
/// account may not send as: Gmail sends only as the account or an alias Google verified
/// (support.google.com/mail/answer/22370), Microsoft 365 and Outlook.com refuse without Send
/// As rights (`5.2.252 SendAsDenied`, MICROSOFT.md §2), Yahoo refuses an address not in the
/// account (`553 5.7.1 From address not verified`). Behind any other server only the login is
/// proven, not the address.
const SENDER_CHECKING_HOSTS: [&str; 4] = [
    "smtp.gmail.com",
    "smtp.office365.com",
    "smtp-mail.outlook.com",
    "smtp.mail.yahoo.com",
];

/// Whether `host` is a mailbox provider's submission server that checks the sender.
pub fn checks_sender(host: &Hostname) -> bool {
    SENDER_CHECKING_HOSTS.contains(&host.as_str())
}

impl ChannelSpec {
    /// Whether connecting this mailbox proves its From address, so that it needs no domain
    /// proof: an OAuth mailbox (the provider sends only as the account), or an SMTP login at
    /// a provider that checks the sender. A mailbox SMTP channel on any other server (the
    /// company's own, or a relay the rep controls) proves only its login, and sends only as a
    /// domain the tenant has verified.
    pub fn login_proves_sender(&self) -> bool {
        match (self.kind, self.scope) {
            (ChannelKind::Gmail | ChannelKind::Microsoft, _) => true,
            (ChannelKind::Smtp, CredentialScope::Mailbox) => {
                self.smtp.as_ref().is_some_and(|s| checks_sender(&s.host))
            }
            _ => false,
        }
    }

    /// Whether the delivery loop signs this channel's mail with the tenant's DKIM key. The
    /// shared pool always does (it is not a stored channel; see `outbox`).
    pub fn signs_dkim(&self) -> bool {
        self.dkim_sign && self.kind == ChannelKind::Smtp && self.scope == CredentialScope::Domain
    }
}

/// `dkim_sign` is for domain-scope SMTP channels only. A mailbox provider (Office 365,
/// Gmail, Yahoo) signs its users' mail itself, with its own key and `d=`; a signature of
/// ours added before it would only be one more for receivers to weigh, and a Gmail channel
/// sends through the API, which signs.
pub fn check_dkim_sign(
    kind: ChannelKind,
    scope: CredentialScope,
    dkim_sign: bool,
) -> Result<(), DomainError> {
    if dkim_sign && (kind != ChannelKind::Smtp || scope != CredentialScope::Domain) {
        return Err(DomainError::new(
            "DKIM signing is for domain channels (a team or tenant relay that does not sign itself); a mailbox provider such as Office 365 or Gmail signs its users' mail itself",
        ));
    }
    Ok(())
}

/// A send channel as stored (its secret excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendChannel {
    pub id: super::ChannelId,
    pub tenant_id: TenantId,
    pub spec: ChannelSpec,
    pub status: ChannelStatus,
    pub status_cause: Option<String>,
    pub credential_updated_at: Option<DateTime<Utc>>,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub health: ChannelHealth,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a channel cannot send a test or probe message from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestSenderError {
    /// The requested From is not in any of the channel's domains.
    NotInDomains,
    /// A domain channel without domains needs a From.
    NoDomain,
}

impl SendChannel {
    /// The From of a test or probe message: a mailbox channel's own address; for a domain
    /// channel the requested one when it is in the channel's domains, else `no-reply@` its
    /// first domain.
    pub fn test_sender(
        &self,
        requested: Option<EmailAddress>,
    ) -> Result<EmailAddress, TestSenderError> {
        match (&self.spec.from_address, requested) {
            (Some(own), _) => Ok(own.clone()),
            (None, Some(from)) if self.spec.domains.contains(from.domain()) => Ok(from),
            (None, Some(_)) => Err(TestSenderError::NotInDomains),
            (None, None) => {
                let domain = self.spec.domains.first().ok_or(TestSenderError::NoDomain)?;
                EmailAddress::parse(&format!("no-reply@{domain}"))
                    .map_err(|_| TestSenderError::NoDomain)
            }
        }
    }
}

/// What sends and checks observed lately: the current run of failures and the last error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelHealth {
    /// Failures in a row (temporary replies, TLS or network errors) since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the status last changed by itself or by a person.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// A paused channel: when a provider's block ends and it resumes by itself.
    pub paused_until: Option<DateTime<Utc>>,
    /// A paused channel: what paused it (the bounce figures, the provider's reply, who).
    pub pause_detail: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn a_mailbox_credential_is_never_shared() {
        let from = addr("rep@acme.test");
        for owner in [ChannelOwner::Team(TeamId::generate()), ChannelOwner::Tenant] {
            let err =
                check_scope(owner, CredentialScope::Mailbox, Some(&from), &[], &[]).unwrap_err();
            assert_eq!(err.code, "channel_scope_mismatch");
            assert!(err.conflict);
        }
        let owner = ChannelOwner::User(UserId::generate());
        assert!(check_scope(owner, CredentialScope::Mailbox, Some(&from), &[], &[]).is_ok());
        assert_eq!(
            check_scope(owner, CredentialScope::Mailbox, None, &[], &[])
                .unwrap_err()
                .code,
            "from_address_required"
        );
        assert_eq!(
            check_scope(
                owner,
                CredentialScope::Mailbox,
                Some(&from),
                &[d("acme.test")],
                &[]
            )
            .unwrap_err()
            .code,
            "domains_not_allowed"
        );
    }

    #[test]
    fn a_domain_credential_covers_only_the_tenants_verified_domains() {
        let tenant = [d("acme.test"), d("mail.acme.test")];
        let team = ChannelOwner::Team(TeamId::generate());
        let ok = [d("acme.test"), d("mail.acme.test")];
        assert!(check_scope(team, CredentialScope::Domain, None, &ok, &tenant).is_ok());
        // A subdomain is proven on its own: acme.test's proof does not cover it.
        for foreign in [
            "gmail.com",
            "evilacme.test",
            "acme.test.evil.example",
            "eu.acme.test",
        ] {
            let err = check_scope(team, CredentialScope::Domain, None, &[d(foreign)], &tenant)
                .unwrap_err();
            assert_eq!(err.code, "domain_not_verified", "{foreign}");
        }
        assert_eq!(
            check_scope(
                ChannelOwner::User(UserId::generate()),
                CredentialScope::Domain,
                None,
                &ok,
                &tenant
            )
            .unwrap_err()
            .code,
            "channel_scope_mismatch"
        );
        assert_eq!(
            check_scope(team, CredentialScope::Domain, None, &[], &tenant)
                .unwrap_err()
                .code,
            "domains_required"
        );
    }

    #[test]
    fn only_domain_smtp_channels_may_sign_with_our_key() {
        use ChannelKind::*;
        use CredentialScope::*;
        assert!(check_dkim_sign(Smtp, Domain, true).is_ok());
        for (kind, scope) in [(Smtp, Mailbox), (Gmail, Mailbox), (SharedPool, Domain)] {
            assert!(
                check_dkim_sign(kind, scope, true).is_err(),
                "{kind} {scope}"
            );
            assert!(
                check_dkim_sign(kind, scope, false).is_ok(),
                "{kind} {scope}"
            );
        }
    }

    #[test]
    fn only_providers_that_check_the_sender_prove_a_mailbox_address() {
        for host in [
            "smtp.gmail.com",
            "SMTP.Office365.com.",
            "smtp-mail.outlook.com",
            "smtp.mail.yahoo.com",
        ] {
            assert!(checks_sender(&Hostname::parse(host).unwrap()), "{host}");
        }
        for host in [
            "smtp.gmail.com.evil.test",
            "mail.acme.test",
            "127.0.0.1",
            "smtp.sendgrid.net",
        ] {
            assert!(!checks_sender(&Hostname::parse(host).unwrap()), "{host}");
        }
    }

    #[test]
    fn hosts_are_names_or_ip_literals_only() {
        assert_eq!(
            Hostname::parse(" SMTP.Office365.com. ").unwrap().as_str(),
            "smtp.office365.com"
        );
        assert!(Hostname::parse("127.0.0.1").is_ok());
        assert!(Hostname::parse("::1").is_ok());
        for bad in [
            "smtp://x.test",
            "x.test:587",
            "x test",
            "",
            "-x.test",
            "x.test/path",
        ] {
            assert!(Hostname::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_are_checked_as_a_whole_and_warned_about() {
        let mut s = SmtpSettings {
            host: Hostname::parse("smtp.example.test").unwrap(),
            port: 25,
            security: Security::None,
            auth: SmtpAuth::Plain,
            username: Some("u".into()),
            accept_invalid_certs: true,
            ca_pem: None,
            pinned_sha256: None,
            connect_timeout_secs: 10,
            command_timeout_secs: 30,
            pool_size: 4,
        };
        assert!(s.check().is_ok());
        let codes: Vec<_> = s.warnings().into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            codes,
            ["port_25", "invalid_certs_accepted", "plaintext_auth"]
        );
        let office = SmtpSettings {
            host: Hostname::parse("SMTP.Office365.com").unwrap(),
            port: 587,
            security: Security::StartTls,
            auth: SmtpAuth::Login,
            accept_invalid_certs: false,
            ..s.clone()
        };
        let codes: Vec<_> = office.warnings().into_iter().map(|(c, _)| c).collect();
        assert_eq!(codes, ["microsoft_password_login_retiring"]);
        let oauth = SmtpSettings {
            auth: SmtpAuth::Xoauth2,
            ..office
        };
        assert!(oauth.warnings().is_empty());
        s.username = None;
        assert!(s.check().unwrap_err().reason.contains("needs a username"));
        s.auth = SmtpAuth::None;
        s.pool_size = 0;
        assert!(s.check().is_err());
    }
}
