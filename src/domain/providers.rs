//! Provider presets: the SMTP settings and limits of the services admins and reps already
//! use, so a channel is set up by choosing a name instead of looking up host names. Figures
//! are the providers' published ones at the time of writing; docs/providers/ cites them.

use super::{ChannelLimits, CredentialScope, Security, SmtpAuth};

#[derive(Debug, Clone, Copy)]
pub struct ProviderPreset {
    pub id: &'static str,
    pub name: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub security: Security,
    pub auth: SmtpAuth,
    /// What goes in the username field, in words ("your full address", "apikey").
    pub username_hint: &'static str,
    /// A username every account of this provider uses, filled in for the user.
    pub fixed_username: Option<&'static str>,
    pub scope: CredentialScope,
    pub limits: ChannelLimits,
    /// What people trip over, in one or two sentences each.
    pub guidance: &'static [&'static str],
    /// Regions, for providers whose host depends on one (`{region}` in `host`).
    pub regions: &'static [&'static str],
    pub docs: &'static str,
}

const fn limits(
    per_minute: Option<u32>,
    per_day_recipients: Option<u32>,
    recipients_per_message: Option<u32>,
) -> ChannelLimits {
    ChannelLimits {
        per_minute,
        per_day_recipients,
        recipients_per_message,
    }
}

pub const PRESETS: &[ProviderPreset] = &[
    ProviderPreset {
        id: "gmail",
        name: "Gmail / Google Workspace (app password)",
        host: "smtp.gmail.com",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username_hint: "your full Gmail or Workspace address",
        fixed_username: None,
        scope: CredentialScope::Mailbox,
        limits: limits(None, Some(10_000), Some(100)),
        guidance: &[
            "Google refuses your normal password over SMTP: create an app password (Google Account → Security → 2-Step Verification → App passwords); it needs 2-Step Verification turned on.",
            "Prefer \"Connect Gmail\" (OAuth): no password to store, and no app password to recreate; after a Google password change the rep reconnects with one click.",
            "Daily limits: about 500 messages for gmail.com, 2,000 for Workspace; 100 recipients per message.",
        ],
        regions: &[],
        docs: "docs/providers/gmail.md",
    },
    ProviderPreset {
        id: "yahoo",
        name: "Yahoo Mail (app password)",
        host: "smtp.mail.yahoo.com",
        port: 465,
        security: Security::Tls,
        auth: SmtpAuth::Plain,
        username_hint: "your full Yahoo address",
        fixed_username: None,
        scope: CredentialScope::Mailbox,
        limits: limits(None, None, Some(100)),
        guidance: &[
            "Yahoo needs an app password (Account Info → Account Security → Generate app password); your normal password is refused.",
        ],
        regions: &[],
        docs: "docs/providers/yahoo.md",
    },
    ProviderPreset {
        id: "office365",
        name: "Microsoft 365 / Office 365",
        host: "smtp.office365.com",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Login,
        username_hint: "your full Microsoft 365 address",
        fixed_username: None,
        scope: CredentialScope::Mailbox,
        limits: limits(Some(30), Some(10_000), Some(500)),
        guidance: &[
            "SMTP AUTH must be enabled for the mailbox (Microsoft 365 admin center → user → Mail → Manage email apps → Authenticated SMTP); tenants with Security Defaults refuse it.",
            "Microsoft is retiring Basic authentication for SMTP AUTH (off by default from the end of December 2026): prefer Connect Microsoft, which sends through Microsoft Graph without a password.",
            "Limits: 30 messages per minute, 10,000 recipients per day, 500 recipients per message.",
            "This is one person's mailbox: it cannot be shared with a team.",
        ],
        regions: &[],
        docs: "docs/providers/office365.md",
    },
    ProviderPreset {
        id: "sparkpost",
        name: "SparkPost",
        host: "smtp.sparkpostmail.com",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Login,
        username_hint: "SMTP_Injection",
        fixed_username: Some("SMTP_Injection"),
        scope: CredentialScope::Domain,
        limits: limits(None, None, None),
        guidance: &[
            "The username is literally SMTP_Injection; the password is an API key with the \"Send via SMTP\" permission.",
            "EU accounts use smtp.eu.sparkpostmail.com.",
            "The sending domain must be verified in SparkPost first.",
        ],
        regions: &[],
        docs: "docs/providers/sparkpost.md",
    },
    ProviderPreset {
        id: "sendgrid",
        name: "SendGrid",
        host: "smtp.sendgrid.net",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username_hint: "apikey",
        fixed_username: Some("apikey"),
        scope: CredentialScope::Domain,
        limits: limits(None, None, Some(1000)),
        guidance: &[
            "The username is literally apikey; the password is a SendGrid API key with Mail Send permission.",
            "Authenticate the sending domain in SendGrid (Sender Authentication) first.",
        ],
        regions: &[],
        docs: "docs/providers/sendgrid.md",
    },
    ProviderPreset {
        id: "amazon_ses",
        name: "Amazon SES",
        host: "email-smtp.{region}.amazonaws.com",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Login,
        username_hint: "the SMTP user name from the SES console (not an IAM access key id)",
        fixed_username: None,
        scope: CredentialScope::Domain,
        limits: limits(None, None, Some(50)),
        guidance: &[
            "Create SMTP credentials in the SES console (SMTP settings → Create SMTP credentials); IAM access keys do not work as they are.",
            "New accounts are in the sandbox: they can only send to verified addresses until production access is granted.",
            "The sending domain must be a verified identity in the same region.",
        ],
        regions: &[
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-central-1",
            "eu-north-1",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-northeast-1",
            "sa-east-1",
        ],
        docs: "docs/providers/amazon-ses.md",
    },
    ProviderPreset {
        id: "mailgun",
        name: "Mailgun",
        host: "smtp.mailgun.org",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username_hint: "the domain's SMTP login, e.g. postmaster@mg.acme.com",
        fixed_username: None,
        scope: CredentialScope::Domain,
        limits: limits(None, None, Some(1000)),
        guidance: &[
            "SMTP credentials are per sending domain (Sending → Domain settings → SMTP credentials).",
            "EU accounts use smtp.eu.mailgun.org.",
        ],
        regions: &[],
        docs: "docs/providers/mailgun.md",
    },
    ProviderPreset {
        id: "postmark",
        name: "Postmark",
        host: "smtp.postmarkapp.com",
        port: 587,
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username_hint: "the Access Key of an SMTP token (the Secret Key is the password)",
        fixed_username: None,
        scope: CredentialScope::Domain,
        limits: limits(None, None, Some(50)),
        guidance: &[
            "Create an SMTP token for the server (Access Key as username, Secret Key as password). The older way, the Server API token as both, is refused here: a username is shown on every read of the channel.",
            "The sender signature or domain must be confirmed in Postmark first.",
        ],
        regions: &[],
        docs: "docs/providers/postmark.md",
    },
];

pub fn preset(id: &str) -> Option<&'static ProviderPreset> {
    PRESETS.iter().find(|p| p.id == id)
}

impl ProviderPreset {
    /// The host for a region (`{region}` replaced), refusing regions the preset does not list.
    pub fn host_for(&self, region: Option<&str>) -> Result<String, super::DomainError> {
        match (self.regions.is_empty(), region) {
            (true, None) => Ok(self.host.to_owned()),
            (true, Some(_)) => Err(super::DomainError::new(format!(
                "{} has no regions",
                self.name
            ))),
            (false, Some(r)) if self.regions.contains(&r) => Ok(self.host.replace("{region}", r)),
            (false, _) => Err(super::DomainError::new(format!(
                "{} needs a region, one of: {}",
                self.name,
                self.regions.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_unique_and_use_the_recommended_ports() {
        let mut ids: Vec<_> = PRESETS.iter().map(|p| p.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), PRESETS.len());
        for p in PRESETS {
            assert!(
                matches!(
                    (p.port, p.security),
                    (587, Security::StartTls) | (465, Security::Tls)
                ),
                "{}",
                p.id
            );
            assert!(!p.guidance.is_empty(), "{}", p.id);
        }
    }

    #[test]
    fn office_365_is_a_mailbox_with_its_published_limits() {
        let o = preset("office365").unwrap();
        assert_eq!(o.scope, CredentialScope::Mailbox);
        assert_eq!(o.limits, limits(Some(30), Some(10_000), Some(500)));
    }

    #[test]
    fn regional_hosts_need_a_listed_region() {
        let ses = preset("amazon_ses").unwrap();
        assert_eq!(
            ses.host_for(Some("eu-west-1")).unwrap(),
            "email-smtp.eu-west-1.amazonaws.com"
        );
        assert!(ses.host_for(None).is_err());
        assert!(ses.host_for(Some("mars-1")).is_err());
        assert!(
            preset("sendgrid")
                .unwrap()
                .host_for(Some("eu-west-1"))
                .is_err()
        );
    }
}
