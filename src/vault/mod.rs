//! Secrets: the master key ring, tenant data keys, sealing of credentials (AES-256-GCM with
//! place-binding AAD), and API tokens. May import `domain` only; the tables that hold
//! wrapped keys and sealed secrets are in `store`.

pub mod dkim;
pub mod files;
pub mod keyring;
pub mod seal;
pub mod token;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

pub use keyring::{KeyRing, KeySource, KeyringError, MasterKey};
pub use seal::{DataKey, SealContext, SealError, Sealed};
pub use token::{IssuedToken, TokenHash};

use crate::domain::TenantId;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "master key `{0}` is not configured, but data is sealed with it; add it to SWITCHBOARD_MASTER_KEYS (or the key file) again"
    )]
    MissingMasterKey(String),
    #[error(
        "the data key of tenant {tenant} (version {version}) does not open with master key `{master}`: {source}"
    )]
    DataKey {
        tenant: TenantId,
        version: u32,
        master: String,
        source: SealError,
    },
    #[error("{0}")]
    Seal(#[from] SealError),
    #[error("{0}")]
    Keyring(#[from] KeyringError),
    #[error("{0}")]
    Unsupported(String),
    /// A DKIM key that cannot be made, read or used; never carries key material.
    #[error("DKIM key: {0}")]
    DkimKey(&'static str),
}

/// A data key sealed under a master key, as stored.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    pub master_key_id: String,
    pub bytes: Vec<u8>,
}

/// Unwrapped data keys kept in memory; a data key never changes once made (re-wrapping
/// changes only its envelope), so entries never go stale. Bounded so a platform with many
/// tenants does not grow without limit.
const CACHE_LIMIT: usize = 10_000;

/// The key ring plus a cache of unwrapped tenant data keys. One per process, shared.
pub struct Vault {
    ring: RwLock<KeyRing>,
    cache: Mutex<HashMap<(TenantId, u32), DataKey>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([REDACTED])")
    }
}

impl Vault {
    pub fn open(source: KeySource) -> Result<Self, VaultError> {
        Ok(Self::from_ring(KeyRing::load(source)?))
    }

    pub fn from_ring(ring: KeyRing) -> Self {
        Self {
            ring: RwLock::new(ring),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Picks up a key file changed by `switchboard keys rotate` while we run.
    fn refresh(&self) {
        let changed = self.ring.write().expect("key ring lock").refresh();
        match changed {
            Ok(true) => tracing::info!(keys = ?self.key_ids(), "master key file reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "master key file changed but cannot be read; keeping the keys loaded")
            }
        }
    }

    pub fn active_key_id(&self) -> String {
        self.refresh();
        self.ring.read().expect("key ring lock").active().id.clone()
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.ring.read().expect("key ring lock").ids()
    }

    pub fn source(&self) -> KeySource {
        self.ring.read().expect("key ring lock").source().clone()
    }

    /// A fresh data key for a tenant, and its envelope under the active master key.
    pub fn new_data_key(&self, tenant: TenantId, version: u32) -> (DataKey, WrappedKey) {
        self.refresh();
        let key = DataKey::generate(tenant, version);
        let ring = self.ring.read().expect("key ring lock");
        let master = ring.active();
        let wrapped = WrappedKey {
            master_key_id: master.id.clone(),
            bytes: seal::wrap(master, &key),
        };
        (key, wrapped)
    }

    /// The data key inside an envelope, from the cache when it was opened before.
    pub fn data_key(
        &self,
        tenant: TenantId,
        version: u32,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, VaultError> {
        if let Some(key) = self
            .cache
            .lock()
            .expect("cache lock")
            .get(&(tenant, version))
        {
            return Ok(key.clone());
        }
        let key = self.unwrap_uncached(tenant, version, wrapped)?;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert((tenant, version), key.clone());
        Ok(key)
    }

    fn unwrap_uncached(
        &self,
        tenant: TenantId,
        version: u32,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, VaultError> {
        let id = &wrapped.master_key_id;
        if self.ring.read().expect("key ring lock").get(id).is_none() {
            self.refresh();
        }
        let ring = self.ring.read().expect("key ring lock");
        let master = ring
            .get(id)
            .ok_or_else(|| VaultError::MissingMasterKey(id.clone()))?;
        seal::unwrap(master, tenant, version, &wrapped.bytes).map_err(|source| {
            VaultError::DataKey {
                tenant,
                version,
                master: id.clone(),
                source,
            }
        })
    }

    /// The same data key in an envelope of master key `target`.
    pub fn rewrap_to(
        &self,
        target: &str,
        tenant: TenantId,
        version: u32,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, VaultError> {
        let key = self.unwrap_uncached(tenant, version, wrapped)?;
        let ring = self.ring.read().expect("key ring lock");
        let master = ring
            .get(target)
            .ok_or_else(|| VaultError::MissingMasterKey(target.to_owned()))?;
        Ok(WrappedKey {
            master_key_id: master.id.clone(),
            bytes: seal::wrap(master, &key),
        })
    }

    /// Drops a deleted tenant's keys from memory.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.cache
            .lock()
            .expect("cache lock")
            .retain(|(t, _), _| *t != tenant);
    }

    /// Adds a newly generated master key in front of the key file, making it active.
    /// Only for file-based keys: configured keys are changed in the configuration.
    pub fn add_active_key(&self) -> Result<String, VaultError> {
        let mut ring = self.ring.write().expect("key ring lock");
        let KeySource::File { path, .. } = ring.source().clone() else {
            return Err(VaultError::Unsupported(
                "the master keys come from SWITCHBOARD_MASTER_KEYS: put the new key (from `switchboard keys generate`) first in that list, restart, then run `switchboard keys rotate`".into(),
            ));
        };
        let _ = ring.refresh()?;
        let id = keyring::next_key_id(&ring.ids());
        let mut keys = vec![MasterKey::generate(&id)];
        keys.extend(ring.ids().iter().filter_map(|i| ring.get(i).cloned()));
        keyring::write_key_file(&path, &keys)?;
        ring.refresh()?;
        Ok(id)
    }

    /// Removes a master key from the key file (file-based keys only).
    pub fn remove_key(&self, id: &str) -> Result<(), VaultError> {
        let mut ring = self.ring.write().expect("key ring lock");
        let KeySource::File { path, .. } = ring.source().clone() else {
            return Err(VaultError::Unsupported(format!(
                "remove `{id}` from SWITCHBOARD_MASTER_KEYS yourself; it is no longer used"
            )));
        };
        let _ = ring.refresh()?;
        let keys: Vec<MasterKey> = ring
            .ids()
            .iter()
            .filter(|i| i.as_str() != id)
            .filter_map(|i| ring.get(i).cloned())
            .collect();
        keyring::write_key_file(&path, &keys)?;
        ring.refresh()?;
        Ok(())
    }
}
