//! Which DKIM key signs a claimed message: the tenant's active key for the From domain,
//! looked up once per (tenant, domain) and claimed batch, and opened once per key for the
//! life of the process (a key's private half never changes: a rotation makes a new key with
//! a new id, so a cached key is never stale, only unused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{Domain, TenantId};
use crate::store::{DbConnection, StoreError, dkim_keys};
use crate::transport::dkim::DkimSigner;
use crate::vault::Vault;
use crate::vault::dkim::DkimSigningKey;

/// Opened keys kept at most; a platform with more signing domains than this reopens some
/// (about 40 µs each, plus reading the secret).
const CACHE_LIMIT: usize = 10_000;

/// Opened signing keys by key id. One per process, shared by its workers.
#[derive(Default)]
pub(super) struct OpenedKeys(Mutex<HashMap<String, Arc<DkimSigningKey>>>);

/// The signers of one claimed batch, by (tenant, From domain); `None`: no key, unsigned.
pub(super) type BatchSigners = HashMap<(TenantId, Domain), Option<DkimSigner>>;

impl OpenedKeys {
    /// The signer for the tenant's mail from `domain`, or `None` when the tenant has no key
    /// for it (the mail goes unsigned; logged at debug). A key that no longer opens (a broken
    /// vault) is logged as an error and the mail goes unsigned: holding it would not mend it.
    /// An error is the database's: try the message again later rather than send it unsigned.
    pub(super) fn signer(
        &self,
        conn: &mut DbConnection,
        vault: &Vault,
        batch: &mut BatchSigners,
        tenant: TenantId,
        domain: &Domain,
    ) -> Result<Option<DkimSigner>, String> {
        if let Some(known) = batch.get(&(tenant, domain.clone())) {
            return Ok(known.clone());
        }
        let signer = match self.lookup(conn, vault, tenant, domain) {
            Ok(signer) => signer,
            Err(StoreError::Vault(e)) => {
                tracing::error!(tenant_id = %tenant, domain = %domain, error = %e, "the DKIM key does not open; sending unsigned");
                None
            }
            Err(e) => return Err(format!("reading the DKIM key: {e}")),
        };
        if signer.is_none() {
            tracing::debug!(tenant_id = %tenant, domain = %domain, "no DKIM key for the From domain; sending unsigned");
        }
        batch.insert((tenant, domain.clone()), signer.clone());
        Ok(signer)
    }

    fn lookup(
        &self,
        conn: &mut DbConnection,
        vault: &Vault,
        tenant: TenantId,
        domain: &Domain,
    ) -> Result<Option<DkimSigner>, StoreError> {
        let Some(active) = dkim_keys::active_key(conn, tenant, domain)? else {
            return Ok(None);
        };
        let cached = self
            .0
            .lock()
            .expect("DKIM key cache")
            .get(&active.id)
            .cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                let private = dkim_keys::private_key(conn, vault, tenant, &active)?;
                let key = Arc::new(DkimSigningKey::open(&private)?);
                let mut cache = self.0.lock().expect("DKIM key cache");
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(active.id.clone(), key.clone());
                key
            }
        };
        Ok(Some(DkimSigner::new(domain.clone(), active.selector, key)))
    }
}
