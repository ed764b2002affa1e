//! `switchboard keys …`: master key generation, rotation and retirement, and rotation of a
//! tenant's data key. Every rotation is recorded in the audit trail.

use std::time::Instant;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::domain::{AuditActor, AuditEvent, TenantId};
use crate::startup;
use crate::store::{Store, StoreError, audit, tenant_keys};
use crate::vault::keyring::valid_key_id;
use crate::vault::{KeySource, MasterKey, Vault, VaultError};

/// Data keys re-wrapped per transaction: large enough to amortise the commit (1000: 34k
/// keys/s on SQLite, 5000: 55k keys/s; benches/vault.rs), small enough that a running
/// service's writes wait at most about 0.1 s for SQLite's write lock.
pub const DEFAULT_BATCH: i64 = 5000;

/// Records a key event of the platform (no tenant), done from the command line.
fn record_platform_event(
    store: &Store,
    action: &'static str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    let event = AuditEvent {
        tenant: None,
        actor: AuditActor::Cli,
        action,
        target: Some(target.to_owned()),
        detail,
    };
    store.run_blocking(|conn| audit::record(conn, &event))
}

/// `switchboard keys generate`: a fresh key in the `id:base64` form of the configuration.
pub fn generate(id: Option<&str>) -> anyhow::Result<()> {
    let id = id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("k{}", chrono::Utc::now().format("%Y%m%d")));
    if !valid_key_id(&id) {
        bail!("a key id is 1 to 32 letters, digits, - or _");
    }
    println!(
        "{}",
        MasterKey::generate(&id).to_config_entry().expose_secret()
    );
    Ok(())
}

/// `switchboard keys list`: the configured keys and how many data keys each wraps.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let (store, vault) = startup::open_store_and_vault(config)?;
    let usage = store.run_blocking(tenant_keys::usage)?;
    let active = vault.active_key_id();
    println!("{:<34} {:>8} {:>12}", "key", "state", "data keys");
    for id in vault.key_ids() {
        let count = usage.iter().find(|(m, _)| *m == id).map_or(0, |(_, n)| *n);
        let state = if id == active { "active" } else { "old" };
        println!("{id:<34} {state:>8} {count:>12}");
    }
    Ok(())
}

/// What a master key rotation did.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterRotation {
    pub active: String,
    pub rewrapped: usize,
    pub seconds: f64,
}

/// Re-wraps every data key under the active master key, batch by batch, while the service
/// keeps running; reports progress through `progress`. Recorded as `key.rotated`.
pub fn rewrap_all(
    store: &Store,
    vault: &Vault,
    batch: i64,
    mut progress: impl FnMut(usize),
) -> Result<MasterRotation, StoreError> {
    let started = Instant::now();
    let active = vault.active_key_id();
    let mut rewrapped = 0;
    // Passes over the whole table until one finds nothing left: keys wrapped under an old
    // master key by a service that had not yet seen the new one are caught by the next pass.
    loop {
        let mut cursor = None;
        let mut this_pass = 0;
        loop {
            let (done, next) = store.run_blocking(|conn| {
                tenant_keys::rewrap_batch(conn, vault, &active, &cursor, batch)
            })?;
            this_pass += done;
            rewrapped += done;
            if done > 0 {
                progress(rewrapped);
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if this_pass == 0 {
            break;
        }
    }
    let rotation = MasterRotation {
        active: active.clone(),
        rewrapped,
        seconds: started.elapsed().as_secs_f64(),
    };
    record_platform_event(
        store,
        "key.rotated",
        &active,
        serde_json::json!({ "rewrapped": rewrapped }),
    )?;
    Ok(rotation)
}

/// `switchboard keys rotate`: with a key file, adds a new key and makes it active; with
/// configured keys, the first configured key is the target. Then re-wraps every data key.
pub fn rotate(config: &Config, batch: i64) -> anyhow::Result<()> {
    let (store, vault) = startup::open_store_and_vault(config)?;
    if let KeySource::File { path, .. } = vault.source() {
        let id = vault.add_active_key()?;
        eprintln!(
            "added master key `{id}` to {} and made it active",
            path.display()
        );
    }
    let rotation = rewrap_all(&store, &vault, batch, |n| {
        eprintln!("re-wrapped {n} data keys")
    })?;
    println!(
        "active master key `{}`: {} data key(s) re-wrapped in {:.2} s",
        rotation.active, rotation.rewrapped, rotation.seconds
    );
    let usage = store.run_blocking(tenant_keys::usage)?;
    for (id, count) in usage.iter().filter(|(id, _)| *id != rotation.active) {
        println!("`{id}` still wraps {count} data key(s); run `switchboard keys rotate` again");
    }
    Ok(())
}

/// `switchboard keys retire <id>`: refuses while the key is active or wraps anything.
pub fn retire(config: &Config, id: &str) -> anyhow::Result<()> {
    let (store, vault) = startup::open_store_and_vault(config)?;
    if !vault.key_ids().iter().any(|k| k == id) {
        bail!("there is no master key `{id}`; `switchboard keys list` shows them");
    }
    if vault.active_key_id() == id {
        bail!(
            "`{id}` is the active master key; add a new key and run `switchboard keys rotate` first"
        );
    }
    let in_use = store
        .run_blocking(tenant_keys::usage)?
        .into_iter()
        .find(|(m, _)| m == id)
        .map_or(0, |(_, n)| n);
    if in_use > 0 {
        bail!("`{id}` still wraps {in_use} data key(s); run `switchboard keys rotate` first");
    }
    match vault.remove_key(id) {
        Ok(()) => println!("master key `{id}` retired and removed from the key file"),
        Err(VaultError::Unsupported(advice)) => println!("master key `{id}` retired: {advice}"),
        Err(e) => return Err(e.into()),
    }
    record_platform_event(&store, "key.retired", id, serde_json::json!({}))?;
    Ok(())
}

/// `switchboard keys rotate-tenant <id>`: a new data key for one tenant; every secret of the
/// tenant is re-sealed under it and the old versions are deleted.
pub fn rotate_tenant(config: &Config, tenant: &str) -> anyhow::Result<()> {
    let tenant: TenantId = tenant.parse().context("tenant id")?;
    let (store, vault) = startup::open_store_and_vault(config)?;
    let rotation = store.run_blocking(|conn| {
        let rotation = tenant_keys::rotate_tenant(conn, &vault, tenant)?;
        audit::record(
            conn,
            &AuditEvent {
                tenant: Some(tenant),
                actor: AuditActor::Cli,
                action: "tenant_key.rotated",
                target: Some(tenant.to_string()),
                detail: serde_json::json!({
                    "version": rotation.new_version,
                    "resealed": rotation.resealed,
                }),
            },
        )?;
        Ok(rotation)
    });
    let rotation = match rotation {
        Err(StoreError::NotFound) => bail!("no tenant {tenant}"),
        other => other?,
    };
    println!(
        "tenant {tenant}: data key version {}, {} secret(s) re-sealed, {} old version(s) deleted",
        rotation.new_version, rotation.resealed, rotation.retired_versions
    );
    Ok(())
}
