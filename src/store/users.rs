//! Users of a tenant. A tenant always keeps at least one active admin.

use diesel::prelude::*;

use super::messages;
use super::schema::users;
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError, teams};
use crate::domain::{DisplayName, EmailAddress, Role, TeamId, TenantId, User, UserId};

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    tenant_id: String,
    email: String,
    name: String,
    role: String,
    team_id: Option<String>,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: row.id.parse().map_err(StoreError::corrupt)?,
            tenant_id: row.tenant_id.parse().map_err(StoreError::corrupt)?,
            email: EmailAddress::parse(&row.email).map_err(StoreError::corrupt)?,
            name: DisplayName::parse(&row.name).map_err(StoreError::corrupt)?,
            role: row.role.parse().map_err(StoreError::corrupt)?,
            team_id: row
                .team_id
                .map(|t| t.parse().map_err(StoreError::corrupt))
                .transpose()?,
            disabled: row.disabled,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

pub struct NewUser {
    pub email: EmailAddress,
    pub name: DisplayName,
    pub role: Role,
    pub team_id: Option<TeamId>,
}

/// A partial update; `None` leaves a field as it is. `team_id: Some(None)` removes the user
/// from their team.
#[derive(Default)]
pub struct UserChanges {
    pub email: Option<EmailAddress>,
    pub name: Option<DisplayName>,
    pub role: Option<Role>,
    pub team_id: Option<Option<TeamId>>,
    pub disabled: Option<bool>,
}

fn email_taken(email: &EmailAddress) -> impl FnOnce() -> String + '_ {
    move || format!("a user with the address {email} already exists in this tenant")
}

fn check_team(
    conn: &mut DbConnection,
    tenant: TenantId,
    team: Option<TeamId>,
) -> Result<(), StoreError> {
    match team {
        Some(team) if !teams::exists(conn, tenant, team)? => {
            Err(StoreError::MissingReference("team"))
        }
        _ => Ok(()),
    }
}

pub fn insert(
    conn: &mut DbConnection,
    tenant: TenantId,
    new: &NewUser,
) -> Result<User, StoreError> {
    check_team(conn, tenant, new.team_id)?;
    let id = UserId::generate();
    let now = now_micros();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(id.to_string()),
            users::tenant_id.eq(tenant.to_string()),
            users::email.eq(new.email.normalized()),
            users::name.eq(new.name.as_str()),
            users::role.eq(new.role.as_str()),
            users::team_id.eq(new.team_id.map(|t| t.to_string())),
            users::disabled.eq(false),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| StoreError::on_unique(e, "email_taken", email_taken(&new.email)))?;
    get(conn, tenant, id)
}

pub fn get(conn: &mut DbConnection, tenant: TenantId, id: UserId) -> Result<User, StoreError> {
    users::table
        .filter(users::tenant_id.eq(tenant.to_string()))
        .filter(users::id.eq(id.to_string()))
        .select(UserRow::as_select())
        .first(conn)?
        .try_into()
}

pub fn list(conn: &mut DbConnection, tenant: TenantId) -> Result<Vec<User>, StoreError> {
    users::table
        .filter(users::tenant_id.eq(tenant.to_string()))
        .order((users::email, users::id))
        .select(UserRow::as_select())
        .load(conn)?
        .into_iter()
        .map(User::try_from)
        .collect()
}

fn active_admins(conn: &mut DbConnection, tenant: TenantId) -> Result<i64, StoreError> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant.to_string()))
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}

pub fn update(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: UserId,
    changes: UserChanges,
) -> Result<User, StoreError> {
    write_transaction(conn, |conn| {
        let mut user = get(conn, tenant, id)?;
        let was_disabled = user.disabled;
        let was_active_admin = user.role == Role::Admin && !user.disabled;
        if let Some(email) = changes.email {
            user.email = email;
        }
        if let Some(name) = changes.name {
            user.name = name;
        }
        if let Some(role) = changes.role {
            user.role = role;
        }
        if let Some(team) = changes.team_id {
            check_team(conn, tenant, team)?;
            user.team_id = team;
        }
        if let Some(disabled) = changes.disabled {
            user.disabled = disabled;
        }
        let stays_active_admin = user.role == Role::Admin && !user.disabled;
        if was_active_admin && !stays_active_admin && active_admins(conn, tenant)? <= 1 {
            return Err(StoreError::Conflict {
                code: "last_admin",
                detail: "this is the tenant's last active admin; make another user admin first"
                    .into(),
            });
        }
        diesel::update(
            users::table
                .filter(users::tenant_id.eq(tenant.to_string()))
                .filter(users::id.eq(id.to_string())),
        )
        .set((
            users::email.eq(user.email.normalized()),
            users::name.eq(user.name.as_str()),
            users::role.eq(user.role.as_str()),
            users::team_id.eq(user.team_id.map(|t| t.to_string())),
            users::disabled.eq(user.disabled),
            users::updated_at.eq(now_micros()),
        ))
        .execute(conn)
        .map_err(|e| StoreError::on_unique(e, "email_taken", email_taken(&user.email)))?;
        if was_disabled && !user.disabled {
            // Held mail of senders still disabled is held again when routed.
            messages::release_held(
                conn,
                tenant,
                messages::Release::Reason("sender_disabled"),
                "the sender was enabled again",
            )?;
        }
        get(conn, tenant, id)
    })
}
