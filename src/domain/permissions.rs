//! The one place that decides what each role may do. Handlers name an `Action`; this table
//! answers. Ownership ("the user themself") is the only rule decided elsewhere, and it is
//! expressed here too, as the `Own…` actions.

use super::{Role, TenantId, UserId};

/// Something a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadTenant,
    UpdateTenantPolicy,
    ReadTeams,
    ManageTeams,
    ReadUsers,
    ManageUsers,
    /// Issue, list or revoke one's own API tokens.
    ManageOwnTokens,
    /// Issue, list or revoke any user's API tokens in the tenant.
    ManageAnyTokens,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::ReadTenant,
        Action::UpdateTenantPolicy,
        Action::ReadTeams,
        Action::ManageTeams,
        Action::ReadUsers,
        Action::ManageUsers,
        Action::ManageOwnTokens,
        Action::ManageAnyTokens,
    ];

    /// The roles allowed to perform this action: the permission table.
    pub fn allowed_roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::ReadTenant | Action::ReadTeams | Action::ManageOwnTokens => &[Admin, It, Rep],
            Action::UpdateTenantPolicy
            | Action::ManageTeams
            | Action::ReadUsers
            | Action::ManageUsers
            | Action::ManageAnyTokens => &[Admin],
        }
    }

    /// What the action is, in words for an error message ("… may not {describe}").
    pub fn describe(self) -> &'static str {
        match self {
            Action::ReadTenant => "read the tenant",
            Action::UpdateTenantPolicy => "change the tenant's policy",
            Action::ReadTeams => "read teams",
            Action::ManageTeams => "create or change teams",
            Action::ReadUsers => "read other users",
            Action::ManageUsers => "create or change users",
            Action::ManageOwnTokens => "manage their own tokens",
            Action::ManageAnyTokens => "manage other users' tokens",
        }
    }
}

/// The authenticated user behind a tenant token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

impl Actor {
    pub fn may(&self, action: Action) -> bool {
        action.allowed_roles().contains(&self.role)
    }

    /// Token management: anyone for themself, admins for everyone in their tenant.
    pub fn may_manage_tokens_of(&self, user: UserId) -> bool {
        if user == self.user_id {
            self.may(Action::ManageOwnTokens)
        } else {
            self.may(Action::ManageAnyTokens)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            tenant_id: TenantId::generate(),
            user_id: UserId::generate(),
            role,
        }
    }

    #[test]
    fn admins_may_do_everything() {
        let admin = actor(Role::Admin);
        assert!(Action::ALL.iter().all(|a| admin.may(*a)));
    }

    #[test]
    fn reps_and_it_may_only_read_and_manage_their_own_tokens() {
        for role in [Role::It, Role::Rep] {
            let who = actor(role);
            let allowed: Vec<Action> = Action::ALL.into_iter().filter(|a| who.may(*a)).collect();
            assert_eq!(
                allowed,
                vec![
                    Action::ReadTenant,
                    Action::ReadTeams,
                    Action::ManageOwnTokens
                ],
                "{role}"
            );
        }
    }

    #[test]
    fn token_management_is_self_or_admin() {
        let rep = actor(Role::Rep);
        assert!(rep.may_manage_tokens_of(rep.user_id));
        assert!(!rep.may_manage_tokens_of(UserId::generate()));
        assert!(actor(Role::Admin).may_manage_tokens_of(UserId::generate()));
    }
}
