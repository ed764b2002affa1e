//! Provider presets: the SMTP settings and limits of the services admins and reps already
//! use, so a channel is set up by choosing a name instead of looking up host names. Figures
//! are the providers' published ones at the time of writing; docs/providers/ cites them.

use super::{ChannelLimits, CredentialScope, Security, SmtpAuth};

#[derive(Debug, Clone)]
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
    /// What the provider needs from the DNS of the domains it sends for (docs/providers/
    /// cites each fact).
    pub dns: RelayDns,
}

/// What a relay needs from a sending domain's DNS, and what it does to the envelope sender
/// and the DKIM signature: what the per-channel health checks compare the DNS with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayDns {
    /// The SPF include that authorises the relay's servers (`_spf.sparkpostmail.com`).
    pub spf_include: Option<&'static str>,
    pub bounce: Bounce,
    pub dkim: RelayDkim,
}

/// Whose domain the relay puts in the envelope sender (MAIL FROM, later Return-Path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounce {
    /// The mailbox that logs in: the From address itself (mailbox providers).
    Mailbox,
    /// The domain Switchboard gives in MAIL FROM, which is the sending domain's own
    /// (Mailgun: `bounce+…@` the sending domain, whose MX points at Mailgun).
    Kept,
    /// Its own domain (`default`), unless the domain Switchboard gives in MAIL FROM is
    /// delegated to the relay as a bounce domain.
    Own {
        default: &'static str,
        delegation: Delegation,
    },
}

/// How a bounce domain under the customer's domain is handed to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delegation {
    /// A CNAME to this name (or a name ending in it).
    Cname(&'static str),
    /// MX records whose hosts end in this name, and an SPF record including the relay.
    Mx(&'static str),
}

impl Delegation {
    /// The record to publish at `name`, in words.
    pub fn record(&self, name: &str) -> String {
        match self {
            Delegation::Cname(target) => format!("a CNAME {name} → {target}"),
            Delegation::Mx(host) => {
                format!("an MX record at {name} pointing at the relay's feedback host (…{host})")
            }
        }
    }
}

/// Who DKIM-signs what the relay sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayDkim {
    /// The relay signs with `d=` the From domain once the key it shows is published at its
    /// selectors (named on the domain: `dkim_selectors`); `selectors` says what they look
    /// like.
    Customer { selectors: &'static str },
    /// A mailbox provider: `d=` the From domain when its admin set DKIM up at `selectors`,
    /// otherwise `d=` the provider's `fallback` domain, which passes but does not align.
    Mailbox {
        selectors: &'static [&'static str],
        fallback: &'static str,
    },
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
        per_day_messages: None,
        windows: None,
        warmup: None,
        min_gap: None,
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
        dns: RelayDns {
            spf_include: Some("_spf.google.com"),
            bounce: Bounce::Mailbox,
            dkim: RelayDkim::Mailbox {
                selectors: &["google"],
                fallback: "*.gappssmtp.com",
            },
        },
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
        dns: RelayDns {
            spf_include: None,
            bounce: Bounce::Mailbox,
            dkim: RelayDkim::Mailbox {
                selectors: &[],
                fallback: "yahoo.com",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("spf.protection.outlook.com"),
            bounce: Bounce::Mailbox,
            dkim: RelayDkim::Mailbox {
                selectors: &["selector1", "selector2"],
                fallback: "<tenant>.onmicrosoft.com",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("_spf.sparkpostmail.com"),
            bounce: Bounce::Own {
                default: "sparkpostmail.com",
                delegation: Delegation::Cname("sparkpostmail.com"),
            },
            dkim: RelayDkim::Customer {
                selectors: "the scph… selector SparkPost shows for the domain",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("sendgrid.net"),
            bounce: Bounce::Own {
                default: "sendgrid.net",
                delegation: Delegation::Cname("sendgrid.net"),
            },
            dkim: RelayDkim::Customer {
                selectors: "s1 and s2 (CNAMEs to …domainkey.u….wl.sendgrid.net)",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("amazonses.com"),
            bounce: Bounce::Own {
                default: "amazonses.com",
                delegation: Delegation::Mx("amazonses.com"),
            },
            dkim: RelayDkim::Customer {
                selectors: "the three Easy DKIM tokens (CNAMEs to <token>.dkim.amazonses.com)",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("mailgun.org"),
            bounce: Bounce::Kept,
            dkim: RelayDkim::Customer {
                selectors: "the selector Mailgun shows for the sending domain (e.g. pdk1, smtp, k1)",
            },
        },
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
        dns: RelayDns {
            spf_include: Some("spf.mtasv.net"),
            bounce: Bounce::Own {
                default: "pm.mtasv.net",
                delegation: Delegation::Cname("pm.mtasv.net"),
            },
            dkim: RelayDkim::Customer {
                selectors: "the <date>pm selector Postmark shows for the domain",
            },
        },
    },
];

pub fn preset(id: &str) -> Option<&'static ProviderPreset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// The DNS facts of the provider a channel sends through: its preset's, Google's for a Gmail
/// (OAuth) channel and Microsoft 365's for a Microsoft (Graph) channel, which have no preset
/// but the same provider.
pub fn relay_dns(kind: super::ChannelKind, provider: Option<&str>) -> Option<&'static RelayDns> {
    match kind {
        super::ChannelKind::Gmail => preset("gmail").map(|p| &p.dns),
        super::ChannelKind::Microsoft => preset("office365").map(|p| &p.dns),
        super::ChannelKind::SharedPool => None,
        super::ChannelKind::Smtp => provider.and_then(preset).map(|p| &p.dns),
    }
}

impl ProviderPreset {
    /// The limits a channel made from this preset starts with. A mailbox provider's are its
    /// published per-mailbox figures; Gmail's depend on the account, and over SMTP the From is
    /// all there is to go by: a gmail.com address is a consumer account (500 a day), any
    /// other address on smtp.gmail.com a Workspace one (2,000 a day).
    pub fn limits_for(&self, from: Option<&super::EmailAddress>) -> ChannelLimits {
        use super::MailboxAccount;
        match self.id {
            "gmail" => {
                let consumer = from
                    .is_some_and(|a| matches!(a.domain().as_str(), "gmail.com" | "googlemail.com"));
                if consumer {
                    MailboxAccount::GoogleConsumer.limits()
                } else {
                    MailboxAccount::GoogleWorkspace.limits()
                }
            }
            "office365" => MailboxAccount::Microsoft365.limits(),
            _ => self.limits.clone(),
        }
    }

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
    fn domain_relays_name_their_spf_include_and_mailboxes_keep_the_envelope() {
        for p in PRESETS {
            match p.scope {
                CredentialScope::Domain => {
                    assert!(p.dns.spf_include.is_some(), "{}", p.id);
                    assert!(matches!(p.dns.dkim, RelayDkim::Customer { .. }), "{}", p.id);
                }
                CredentialScope::Mailbox => {
                    assert_eq!(p.dns.bounce, Bounce::Mailbox, "{}", p.id);
                }
            }
        }
        let gmail = relay_dns(super::super::ChannelKind::Gmail, None).unwrap();
        assert_eq!(gmail.spf_include, Some("_spf.google.com"));
    }

    #[test]
    fn office_365_is_a_mailbox_with_its_published_limits() {
        let o = preset("office365").unwrap();
        assert_eq!(o.scope, CredentialScope::Mailbox);
        assert_eq!(o.limits, limits(Some(30), Some(10_000), Some(500)));
    }

    #[test]
    fn a_gmail_channel_starts_at_its_accounts_daily_limits() {
        let gmail = preset("gmail").unwrap();
        let address = |a: &str| crate::domain::EmailAddress::parse(a).unwrap();
        let consumer = gmail.limits_for(Some(&address("ann@gmail.com")));
        assert_eq!(consumer.per_day_messages, Some(500));
        assert_eq!(consumer.per_day_recipients, Some(500));
        let workspace = gmail.limits_for(Some(&address("ann@acme.test")));
        assert_eq!(workspace.per_day_messages, Some(2_000));
        assert_eq!(workspace.per_day_recipients, Some(10_000));
        assert_eq!(workspace.recipients_per_message, Some(100));
        let sendgrid = preset("sendgrid").unwrap();
        assert_eq!(sendgrid.limits_for(None), sendgrid.limits);
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
