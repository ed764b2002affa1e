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
    /// See every channel of the tenant (others see their own, their team's and the tenant's).
    ReadAllChannels,
    /// Create, change or delete one's own mailbox channels.
    ManageOwnMailboxChannels,
    /// Create, change or delete another user's mailbox channel.
    ManageAnyMailboxChannel,
    /// Create, change or delete team and tenant channels.
    ManageSharedChannels,
    /// Test any channel's connection and login (owners may always test their own).
    TestAnyChannel,
    /// Replace any channel's credential (owners may always replace their own).
    RotateAnyCredential,
    /// Send mail as oneself and read one's own messages.
    SendMail,
    /// Send on behalf of another user of the tenant (`sender_user_id`) and read every
    /// message of the tenant.
    SendAsAnyUser,
    /// Ask the router which channel would carry a message, and why.
    ExplainRoutes,
    /// Read the tenant's audit trail.
    ReadAudit,
    /// Create, change, delete and read the tenant's webhooks, rotate their signing secrets
    /// and read their delivery log.
    ManageWebhooks,
    /// See the tenant's sending domains and their checks, and check them now.
    ReadDomains,
    /// Claim and drop sending domains.
    ManageDomains,
    /// Read the tenant's suppression list (who is no longer mailed, and why).
    ReadSuppressions,
    /// Add addresses to the suppression list or take them off it.
    ManageSuppressions,
    /// Pause any channel and resume a paused one. Admins only: a bounce pause protects the
    /// domain every rep sends from, so whether its list is clean enough to go on is the
    /// tenant's call, not the call of the rep whose mailbox bounced (nor IT's, who keep
    /// channels working but do not decide what is sent).
    PauseChannels,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Action::ReadTenant,
        Action::UpdateTenantPolicy,
        Action::ReadTeams,
        Action::ManageTeams,
        Action::ReadUsers,
        Action::ManageUsers,
        Action::ManageOwnTokens,
        Action::ManageAnyTokens,
        Action::ReadAllChannels,
        Action::ManageOwnMailboxChannels,
        Action::ManageAnyMailboxChannel,
        Action::ManageSharedChannels,
        Action::TestAnyChannel,
        Action::RotateAnyCredential,
        Action::SendMail,
        Action::SendAsAnyUser,
        Action::ExplainRoutes,
        Action::ReadAudit,
        Action::ManageWebhooks,
        Action::ReadDomains,
        Action::ManageDomains,
        Action::ReadSuppressions,
        Action::ManageSuppressions,
        Action::PauseChannels,
    ];

    /// The roles allowed to perform this action: the permission table.
    pub fn allowed_roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::ReadTenant
            | Action::ReadTeams
            | Action::ManageOwnTokens
            | Action::ManageOwnMailboxChannels
            | Action::ExplainRoutes => &[Admin, It, Rep],
            // IT keeps channels working but does not read or send mail.
            Action::SendMail => &[Admin, Rep],
            Action::ReadAllChannels
            | Action::TestAnyChannel
            | Action::RotateAnyCredential
            | Action::ReadAudit
            | Action::ManageWebhooks
            | Action::ReadDomains
            | Action::ReadSuppressions => &[Admin, It],
            Action::UpdateTenantPolicy
            | Action::ManageAnyMailboxChannel
            | Action::ManageSharedChannels
            | Action::ManageTeams
            | Action::ReadUsers
            | Action::ManageUsers
            | Action::ManageAnyTokens
            | Action::SendAsAnyUser
            | Action::ManageDomains
            | Action::ManageSuppressions
            | Action::PauseChannels => &[Admin],
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
            Action::ReadAllChannels => "see every channel of the tenant",
            Action::ManageOwnMailboxChannels => "manage their own mailbox channels",
            Action::ManageAnyMailboxChannel => "manage another user's mailbox channel",
            Action::ManageSharedChannels => "manage team or tenant channels",
            Action::TestAnyChannel => "test channels they do not own",
            Action::RotateAnyCredential => "replace the credential of channels they do not own",
            Action::SendMail => "send mail or read messages",
            Action::SendAsAnyUser => "send as another user or read other users' messages",
            Action::ExplainRoutes => "ask how a message would be routed",
            Action::ReadAudit => "read the audit trail",
            Action::ManageWebhooks => "manage webhooks",
            Action::ReadDomains => "see the sending domains",
            Action::ManageDomains => "claim or drop sending domains",
            Action::ReadSuppressions => "read the suppression list",
            Action::ManageSuppressions => "change the suppression list",
            Action::PauseChannels => "pause or resume channels",
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
    fn reps_read_and_manage_only_what_is_their_own() {
        let who = actor(Role::Rep);
        let allowed: Vec<Action> = Action::ALL.into_iter().filter(|a| who.may(*a)).collect();
        assert_eq!(
            allowed,
            vec![
                Action::ReadTenant,
                Action::ReadTeams,
                Action::ManageOwnTokens,
                Action::ManageOwnMailboxChannels,
                Action::SendMail,
                Action::ExplainRoutes,
            ]
        );
    }

    #[test]
    fn it_also_sees_every_channel_but_changes_no_shared_one() {
        let who = actor(Role::It);
        assert!(who.may(Action::ReadAllChannels));
        assert!(who.may(Action::TestAnyChannel));
        assert!(who.may(Action::RotateAnyCredential));
        assert!(who.may(Action::ManageWebhooks));
        assert!(!who.may(Action::ManageSharedChannels));
        assert!(!who.may(Action::ManageAnyMailboxChannel));
        assert!(!who.may(Action::ReadUsers));
    }

    #[test]
    fn token_management_is_self_or_admin() {
        let rep = actor(Role::Rep);
        assert!(rep.may_manage_tokens_of(rep.user_id));
        assert!(!rep.may_manage_tokens_of(UserId::generate()));
        assert!(actor(Role::Admin).may_manage_tokens_of(UserId::generate()));
    }
}
