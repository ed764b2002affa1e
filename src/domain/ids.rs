//! Ids are newtypes over UUIDs so that a tenant id can never be passed where a user id is
//! expected; they are opaque strings on the wire.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::DomainError;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| DomainError::new(concat!("not a valid ", $what, " id (expected a UUID)")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }
    };
}

id_type!(
    /// A tenant: one customer organisation, the unit of isolation.
    TenantId, "tenant"
);
id_type!(
    /// A team inside a tenant.
    TeamId, "team"
);
id_type!(
    /// A user (admin, IT or rep) inside a tenant.
    UserId, "user"
);
id_type!(
    /// An API token (the id, never the secret).
    TokenId, "token"
);
id_type!(
    /// A send channel.
    ChannelId, "channel"
);

id_type!(
    /// A message accepted for sending.
    MessageId, "message"
);

id_type!(
    /// A tenant's webhook: a URL that is told about events, signed with its own secret.
    WebhookId, "webhook"
);

id_type!(
    /// A tenant's claim on a sending domain (several tenants may claim one domain).
    DomainClaimId, "domain"
);

impl ChannelId {
    /// The id of the platform's shared pool, the same in every tenant (it is not stored).
    pub const fn shared_pool() -> Self {
        Self(Uuid::nil())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = TenantId::generate();
        let parsed: TenantId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn garbage_is_not_an_id() {
        let err = "tenant-1".parse::<UserId>().unwrap_err();
        assert!(err.reason.contains("user id"), "{err}");
    }
}
