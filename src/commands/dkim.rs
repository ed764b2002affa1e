//! `switchboard dkim …`: a tenant's DKIM keys for one domain, for operators on the server:
//! the records to publish, and rotation (which makes the first key when there is none).
//! Keys are in the same states as through the API: a new key is pending until the Domains
//! service finds its record in DNS, then signs.

use anyhow::{Context, bail};

use crate::config::Config;
use crate::domain::dkim::{DkimKeyState, DkimRecord};
use crate::domain::{AuditActor, ClaimState, Domain, TenantId};
use crate::startup;
use crate::store::{Store, StoreError, dkim_keys, domains, tenants};

fn parse(tenant: &str, domain: &str) -> anyhow::Result<(TenantId, Domain)> {
    Ok((
        tenant.parse().context("--tenant")?,
        Domain::parse(domain).context("--domain")?,
    ))
}

/// Refuses an unknown tenant by name rather than with a foreign-key error; warns when the
/// tenant has not proven the domain (its mail cannot use the key then).
fn check_tenant(store: &Store, tenant: TenantId, domain: &Domain) -> anyhow::Result<()> {
    let state = store.run_blocking(|conn| {
        tenants::get(conn, tenant)?;
        Ok(domains::states(conn, tenant)?.get(domain).copied())
    });
    match state {
        Ok(Some(ClaimState::Verified)) => Ok(()),
        Ok(other) => {
            eprintln!(
                "note: tenant {tenant} has not proven {domain} ({}); no mail is sent as it until it does",
                other.map_or("not claimed", ClaimState::as_str)
            );
            Ok(())
        }
        Err(StoreError::NotFound) => bail!("no tenant {tenant}"),
        Err(e) => Err(e.into()),
    }
}

fn json(records: &[DkimRecord]) -> serde_json::Value {
    records
        .iter()
        .map(|r| {
            serde_json::json!({
                "selector": r.selector.as_str(),
                "name": r.name,
                "type": "TXT",
                "value": r.value,
                "state": r.state.as_str(),
                "created_at": r.created_at,
                "activated_at": r.activated_at,
                "retire_after": r.retire_after,
            })
        })
        .collect()
}

fn print(domain: &Domain, records: &[DkimRecord], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json(records))?);
        return Ok(());
    }
    if records.is_empty() {
        println!(
            "{domain} has no DKIM key; `switchboard dkim rotate` makes one (claiming the domain makes one too; mail from it is sent unsigned until its record is published)"
        );
        return Ok(());
    }
    println!("Publish these TXT records for {domain} (and keep them until the date given):");
    for r in records {
        let when = match (r.state, r.retire_after) {
            (DkimKeyState::Retiring, Some(after)) => format!(
                "retiring: signs nothing, keep it published until {}",
                after.format("%Y-%m-%d %H:%M UTC")
            ),
            (DkimKeyState::Pending, _) => {
                "pending: publish it now; it signs once Switchboard finds it in DNS (the domain's next check, or Check now)".to_owned()
            }
            _ => format!(
                "active: signs new mail, since {}",
                r.activated_at
                    .unwrap_or(r.created_at)
                    .format("%Y-%m-%d %H:%M UTC")
            ),
        };
        println!("\n{}  TXT\n  \"{}\"\n  {when}", r.name, r.value);
    }
    Ok(())
}

/// `switchboard dkim show --tenant <id> --domain <d>`: the records to publish. Reads only.
pub fn show(config: &Config, tenant: &str, domain: &str, as_json: bool) -> anyhow::Result<()> {
    let (tenant, domain) = parse(tenant, domain)?;
    let store = startup::open_store(config)?;
    check_tenant(&store, tenant, &domain)?;
    let records = store.run_blocking(|conn| dkim_keys::published(conn, tenant, &domain))?;
    print(&domain, &records, as_json)
}

/// `switchboard dkim rotate --tenant <id> --domain <d>`: a new pending key (the first one
/// when there is none; it replaces a pending one); the active key keeps signing until the
/// new record is found in DNS, then stays published for a week. Recorded in the audit
/// trail as done from the command line.
pub fn rotate(config: &Config, tenant: &str, domain: &str, as_json: bool) -> anyhow::Result<()> {
    let (tenant, domain) = parse(tenant, domain)?;
    let (store, vault) = startup::open_store_and_vault(config)?;
    check_tenant(&store, tenant, &domain)?;
    let pair = dkim_keys::new_pair()?;
    let (rotated, records) = store.run_blocking(|conn| {
        let rotated = dkim_keys::rotate(conn, &vault, tenant, &domain, &pair, AuditActor::Cli)?;
        Ok((rotated, dkim_keys::published(conn, tenant, &domain)?))
    })?;
    if !as_json {
        let until = match &rotated.still_signing {
            Some(old) => format!("{old} keeps signing until then"),
            None => "mail is sent unsigned until then".to_owned(),
        };
        eprintln!(
            "new DKIM key {} for {domain}: publish its record; it signs once Switchboard finds it in DNS ({until})",
            rotated.record.selector
        );
        if let Some(replaced) = &rotated.replaced_pending {
            eprintln!(
                "it replaces the pending key {replaced}, which never signed: its record can go"
            );
        }
    }
    print(&domain, &records, as_json)
}
