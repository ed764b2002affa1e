//! Which DKIM key signs a claimed message: the tenant's active key for the From domain,
//! looked up once per (tenant, domain) and claimed batch, and opened once per key for the
//! life of the process (a key's private half never changes: a rotation makes a new key with
//! a new id, so a cached key is never stale, only unused). A pending key signs nothing: the
//! message says so in its log, as the route explanation does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::domain::dkim::Unsigned;
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

/// How the tenant's mail from a domain is signed on a channel that signs: with its active
/// key, or not, and why.
#[derive(Debug, Clone)]
pub(super) enum Signing {
    With(DkimSigner),
    Without(Unsigned),
}

impl Signing {
    /// What the message log and the route explanation say.
    pub(super) fn note(&self, domain: &Domain) -> Value {
        match self {
            Signing::With(signer) => json!({
                "signed": true,
                "domain": signer.domain.as_str(),
                "selector": signer.selector.as_str(),
            }),
            Signing::Without(why) => json!({
                "signed": false,
                "code": why.code(),
                "detail": why.describe(domain),
            }),
        }
    }
}

/// The signing of one claimed batch, by (tenant, From domain).
pub(super) type BatchSigners = HashMap<(TenantId, Domain), Signing>;

/// How the tenant's mail from `domain` would be signed now on a channel that signs, as the
/// route explanation shows it.
pub fn signing_note(
    conn: &mut DbConnection,
    tenant: TenantId,
    domain: &Domain,
) -> Result<Value, StoreError> {
    Ok(match dkim_keys::signing_key(conn, tenant, domain)? {
        Ok(key) => {
            json!({"signed": true, "domain": domain.as_str(), "selector": key.selector.as_str()})
        }
        Err(why) => Signing::Without(why).note(domain),
    })
}

impl OpenedKeys {
    /// The signer for the tenant's mail from `domain`, or why there is none: no key, or only
    /// a pending one (the mail goes unsigned; logged at debug). A key that no longer opens (a
    /// broken vault) is logged as an error and the mail goes unsigned: holding it would not
    /// mend it. An error is the database's: try the message again later rather than send it
    /// unsigned.
    pub(super) fn signer(
        &self,
        conn: &mut DbConnection,
        vault: &Vault,
        batch: &mut BatchSigners,
        tenant: TenantId,
        domain: &Domain,
    ) -> Result<Signing, String> {
        if let Some(known) = batch.get(&(tenant, domain.clone())) {
            return Ok(known.clone());
        }
        let signer = match self.lookup(conn, vault, tenant, domain) {
            Ok(Ok(signer)) => Signing::With(signer),
            Ok(Err(why)) => {
                tracing::debug!(tenant_id = %tenant, domain = %domain, reason = why.code(), "no active DKIM key for the From domain; sending unsigned");
                Signing::Without(why)
            }
            Err(StoreError::Vault(e)) => {
                tracing::error!(tenant_id = %tenant, domain = %domain, error = %e, "the DKIM key does not open; sending unsigned");
                Signing::Without(Unsigned::KeyDoesNotOpen)
            }
            Err(e) => return Err(format!("reading the DKIM key: {e}")),
        };
        batch.insert((tenant, domain.clone()), signer.clone());
        Ok(signer)
    }

    fn lookup(
        &self,
        conn: &mut DbConnection,
        vault: &Vault,
        tenant: TenantId,
        domain: &Domain,
    ) -> Result<Result<DkimSigner, Unsigned>, StoreError> {
        let active = match dkim_keys::signing_key(conn, tenant, domain)? {
            Ok(active) => active,
            Err(why) => return Ok(Err(why)),
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
        Ok(Ok(DkimSigner::new(domain.clone(), active.selector, key)))
    }
}
