//! Teams of a tenant.

use diesel::prelude::*;

use super::messages::{self, Release};
use super::schema::teams;
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError, audit};
use crate::domain::{AuditActor, AuditEvent, DisplayName, Team, TeamId, TenantId};

#[derive(Queryable, Selectable)]
#[diesel(table_name = teams)]
struct TeamRow {
    id: String,
    tenant_id: String,
    name: String,
    sending_enabled: bool,
    created_at: i64,
}

impl TryFrom<TeamRow> for Team {
    type Error = StoreError;

    fn try_from(row: TeamRow) -> Result<Self, StoreError> {
        Ok(Team {
            id: row.id.parse().map_err(StoreError::corrupt)?,
            tenant_id: row.tenant_id.parse().map_err(StoreError::corrupt)?,
            name: DisplayName::parse(&row.name).map_err(StoreError::corrupt)?,
            sending_enabled: row.sending_enabled,
            created_at: from_micros(row.created_at)?,
        })
    }
}

fn name_taken(name: &DisplayName) -> impl FnOnce() -> String + '_ {
    move || format!("a team named `{name}` already exists in this tenant")
}

pub fn insert(
    conn: &mut DbConnection,
    tenant: TenantId,
    name: &DisplayName,
) -> Result<Team, StoreError> {
    let id = TeamId::generate();
    let now = now_micros();
    diesel::insert_into(teams::table)
        .values((
            teams::id.eq(id.to_string()),
            teams::tenant_id.eq(tenant.to_string()),
            teams::name.eq(name.as_str()),
            teams::created_at.eq(now),
            teams::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| StoreError::on_unique(e, "team_name_taken", name_taken(name)))?;
    get(conn, tenant, id)
}

pub fn get(conn: &mut DbConnection, tenant: TenantId, id: TeamId) -> Result<Team, StoreError> {
    teams::table
        .filter(teams::tenant_id.eq(tenant.to_string()))
        .filter(teams::id.eq(id.to_string()))
        .select(TeamRow::as_select())
        .first(conn)?
        .try_into()
}

pub fn exists(conn: &mut DbConnection, tenant: TenantId, id: TeamId) -> Result<bool, StoreError> {
    match get(conn, tenant, id) {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn list(conn: &mut DbConnection, tenant: TenantId) -> Result<Vec<Team>, StoreError> {
    teams::table
        .filter(teams::tenant_id.eq(tenant.to_string()))
        .order((teams::name, teams::id))
        .select(TeamRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Team::try_from)
        .collect()
}

/// A change to a team; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TeamChanges {
    pub name: Option<DisplayName>,
    pub sending_enabled: Option<bool>,
}

/// Applies `changes`. Switching sending back on releases the mail held for the switch
/// (members of other teams that are still off are held again when routed).
pub fn update(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: TeamId,
    changes: &TeamChanges,
    actor: AuditActor,
) -> Result<Team, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, tenant, id)?;
        if let Some(name) = &changes.name {
            rename(conn, tenant, id, name)?;
        }
        if let Some(enabled) = changes.sending_enabled
            && enabled != before.sending_enabled
        {
            diesel::update(
                teams::table
                    .filter(teams::tenant_id.eq(tenant.to_string()))
                    .filter(teams::id.eq(id.to_string())),
            )
            .set((
                teams::sending_enabled.eq(enabled),
                teams::updated_at.eq(now_micros()),
            ))
            .execute(conn)?;
            let released = if enabled {
                messages::release_held(
                    conn,
                    tenant,
                    Release::Reason("team_sending_disabled"),
                    "the team's sending was switched back on",
                )?
            } else {
                0
            };
            audit::record(
                conn,
                &AuditEvent {
                    tenant: Some(tenant),
                    actor,
                    action: if enabled {
                        "team.sending_enabled"
                    } else {
                        "team.sending_disabled"
                    },
                    target: Some(id.to_string()),
                    detail: serde_json::json!({ "released": released }),
                },
            )?;
        }
        get(conn, tenant, id)
    })
}

fn rename(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: TeamId,
    name: &DisplayName,
) -> Result<Team, StoreError> {
    let changed = diesel::update(
        teams::table
            .filter(teams::tenant_id.eq(tenant.to_string()))
            .filter(teams::id.eq(id.to_string())),
    )
    .set((
        teams::name.eq(name.as_str()),
        teams::updated_at.eq(now_micros()),
    ))
    .execute(conn)
    .map_err(|e| StoreError::on_unique(e, "team_name_taken", name_taken(name)))?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, tenant, id)
}
