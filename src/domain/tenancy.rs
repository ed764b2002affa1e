//! Tenants, teams, users and the roles that decide what a user may do.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{DisplayName, DomainError, EmailAddress, TeamId, TenantId, UserId};

/// What a tenant user is for. The permission table (`permissions.rs`) maps roles to actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages teams, users, team and tenant channels, and the tenant's policy.
    Admin,
    /// Rotates credentials, reads the audit trail, tests channels; cannot read mail.
    It,
    /// Manages their own mailbox channels and sends mail.
    Rep,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::It, Role::Rep];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::It => "it",
            Role::Rep => "rep",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "it" => Ok(Role::It),
            "rep" => Ok(Role::Rep),
            other => Err(DomainError::new(format!(
                "unknown role `{other}`; use admin, it or rep"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a message whose sender's own channel cannot carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackPolicy {
    /// Keep the message held and tell the owner (the default: never send from a mailbox
    /// the sender did not expect).
    #[default]
    Hold,
    /// Move on to the next candidate channel and record that it did.
    Fallback,
}

impl FallbackPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackPolicy::Hold => "hold",
            FallbackPolicy::Fallback => "fallback",
        }
    }
}

impl FromStr for FallbackPolicy {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hold" => Ok(FallbackPolicy::Hold),
            "fallback" => Ok(FallbackPolicy::Fallback),
            other => Err(DomainError::new(format!(
                "unknown fallback policy `{other}`; use hold or fallback"
            ))),
        }
    }
}

/// The sending policy a tenant admin controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Kill switch: when false nothing of this tenant is sent.
    pub sending_enabled: bool,
    pub fallback_policy: FallbackPolicy,
    /// Whether mail may go through the platform's shared relay.
    pub shared_pool_allowed: bool,
    /// Messages that do not say (`unsubscribe`) and are not transactional carry one-click
    /// unsubscribe headers.
    pub unsubscribe_by_default: bool,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            sending_enabled: true,
            fallback_policy: FallbackPolicy::Hold,
            shared_pool_allowed: true,
            unsubscribe_by_default: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: DisplayName,
    pub policy: TenantPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: TeamId,
    pub tenant_id: TenantId,
    pub name: DisplayName,
    /// The team's kill switch: when false nothing its members send leaves (it is held).
    pub sending_enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: EmailAddress,
    pub name: DisplayName,
    pub role: Role,
    pub team_id: Option<TeamId>,
    /// A disabled user's tokens stop working at once; the user and their history remain.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_policies_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("owner".parse::<Role>().is_err());
        assert_eq!(
            "fallback".parse::<FallbackPolicy>().unwrap(),
            FallbackPolicy::Fallback
        );
        assert!("drop".parse::<FallbackPolicy>().is_err());
    }
}
