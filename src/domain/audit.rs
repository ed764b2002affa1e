//! Who did what, for the audit trail. Never holds a secret.

use std::fmt;

use super::{TenantId, UserId};

/// Who caused an audited event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    User(UserId),
    /// The platform operator (operator token).
    Operator,
    /// The command line on the server (`switchboard keys …`).
    Cli,
    /// The service itself (a worker, a scheduled check).
    System,
    /// A recipient of the tenant's mail, through a message's unsubscribe link.
    Recipient,
}

impl fmt::Display for AuditActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditActor::User(id) => write!(f, "user:{id}"),
            AuditActor::Operator => f.write_str("operator"),
            AuditActor::Cli => f.write_str("cli"),
            AuditActor::System => f.write_str("system"),
            AuditActor::Recipient => f.write_str("recipient"),
        }
    }
}

/// One event to record. `detail` is structured and must not contain secrets.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `None` for platform events (master key rotation, tenant deletion).
    pub tenant: Option<TenantId>,
    pub actor: AuditActor,
    /// A stable dotted name: `key.rotated`, `tenant.created`, …
    pub action: &'static str,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}
