//! Types and rules of the product, with no I/O: ids, addresses, tenancy, permissions,
//! channels, messages and the router.
//! Imports no other module of ours; everything else imports this.

pub mod audit;
pub mod bounces;
pub mod bulk;
pub mod channel;
pub mod channel_dns;
pub mod claims;
pub mod daily_stats;
pub mod dkim;
pub mod dns_checks;
pub mod email;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod health;
pub mod ids;
pub mod liveness;
pub mod message;
pub mod name;
pub mod pacing;
pub mod pause;
pub mod permissions;
pub mod providers;
pub mod recipients;
pub mod routing;
pub mod spf;
pub mod suppression;
pub mod tenancy;

pub use audit::{AuditActor, AuditEvent};
pub use channel::{
    ChannelHealth, ChannelKind, ChannelLimits, ChannelOwner, ChannelSpec, ChannelStatus,
    CredentialScope, Hostname, MailboxAccount, MicrosoftTransport, ReturnPath, Security,
    SendChannel, SmtpAuth, SmtpSettings,
};
pub use claims::{ClaimState, ClaimToken};
pub use email::{Domain, EmailAddress};
pub use error::DomainError;
pub use events::EventType;
pub use fingerprint::CertificateFingerprint;
pub use ids::{ChannelId, DomainClaimId, MessageId, TeamId, TenantId, TokenId, UserId, WebhookId};
pub use name::DisplayName;
pub use permissions::{Action, Actor};
pub use suppression::SuppressionReason;
pub use tenancy::{FallbackPolicy, Role, Team, Tenant, TenantPolicy, User};
