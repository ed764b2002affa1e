//! AES-256-GCM sealing. Two layers: each tenant has data keys (DEKs) that seal its secrets;
//! each data key is stored wrapped (sealed) by a master key. Every ciphertext carries a
//! format version and its key's id, and is bound by its AAD to the place it belongs, so a
//! ciphertext copied to another row, field or tenant fails to open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::keyring::{KEY_LEN, MasterKey};
use crate::domain::TenantId;

/// Format version of sealed secrets and wrapped keys; part of the AAD.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
/// Sealed secret: format (1) ‖ data-key version (4, big-endian) ‖ nonce (12) ‖ ciphertext+tag.
const SEALED_HEADER: usize = 1 + 4 + NONCE_LEN;
/// Wrapped key: format (1) ‖ nonce (12) ‖ ciphertext+tag. The master key id is a column.
const WRAPPED_HEADER: usize = 1 + NONCE_LEN;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Wrong key, tampered bytes, or a ciphertext that belongs elsewhere. Deliberately one
    /// error: the cipher cannot tell these apart, and neither should an attacker.
    #[error(
        "the sealed value does not open with its key in this place (tampered, moved, or wrong key)"
    )]
    DoesNotOpen,
    #[error("the sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("unknown format version {0}")]
    UnknownFormat(u8),
}

/// Where a secret belongs: its tenant, the record that owns it and the field it fills.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub tenant: TenantId,
    pub record: &'a str,
    pub field: &'a str,
}

impl SealContext<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(header.len() + 96);
        aad.extend_from_slice(header);
        aad.extend_from_slice(b"switchboard-secret|");
        aad.extend_from_slice(self.tenant.to_string().as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(self.record.as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(self.field.as_bytes());
        aad
    }
}

/// A secret as stored: ciphertext only. There is no way to turn it back into plaintext
/// without the tenant's data key and the context it was sealed for.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The version of the tenant data key that sealed it.
    pub fn key_version(&self) -> Result<u32, SealError> {
        if self.0.len() < SEALED_HEADER + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        if self.0[0] != FORMAT_V1 {
            return Err(SealError::UnknownFormat(self.0[0]));
        }
        Ok(u32::from_be_bytes(
            self.0[1..5].try_into().expect("4 bytes"),
        ))
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A tenant's data key in the clear: lives only in memory, zeroed when dropped.
#[derive(Clone)]
pub struct DataKey {
    pub tenant: TenantId,
    pub version: u32,
    material: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({} v{}, [REDACTED])", self.tenant, self.version)
    }
}

fn cipher(material: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(material))
}

impl DataKey {
    pub fn generate(tenant: TenantId, version: u32) -> Self {
        Self {
            tenant,
            version,
            material: Zeroizing::new(rand::random()),
        }
    }

    /// Seals a secret for one place. A fresh random nonce per seal: sealing the same
    /// secret twice gives two different ciphertexts.
    pub fn seal(&self, context: &SealContext<'_>, secret: &SecretString) -> Sealed {
        debug_assert_eq!(
            context.tenant, self.tenant,
            "sealing with another tenant's key"
        );
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(SEALED_HEADER + secret.expose_secret().len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        let aad = context.aad(&out);
        let ciphertext = cipher(&self.material)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a bounded message cannot fail");
        out.extend_from_slice(&ciphertext);
        Sealed(out)
    }

    pub fn open(
        &self,
        context: &SealContext<'_>,
        sealed: &Sealed,
    ) -> Result<SecretString, SealError> {
        let version = sealed.key_version()?;
        if version != self.version || context.tenant != self.tenant {
            return Err(SealError::DoesNotOpen);
        }
        let (header, ciphertext) = sealed.0.split_at(SEALED_HEADER);
        let aad = context.aad(header);
        let plaintext = Zeroizing::new(
            cipher(&self.material)
                .decrypt(
                    Nonce::from_slice(&header[5..]),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| SealError::DoesNotOpen)?,
        );
        let text =
            std::str::from_utf8(&plaintext).map_err(|_| SealError::Malformed("not UTF-8"))?;
        Ok(SecretString::from(text.to_owned()))
    }
}

fn wrap_aad(tenant: TenantId, version: u32, master_id: &str) -> Vec<u8> {
    format!("switchboard-data-key|{FORMAT_V1}|{tenant}|{version}|{master_id}").into_bytes()
}

/// Seals a data key under a master key, bound to its tenant, version and master key id.
pub fn wrap(master: &MasterKey, key: &DataKey) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let aad = wrap_aad(key.tenant, key.version, &master.id);
    let ciphertext = cipher(&master.material)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.material.as_slice(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = Vec::with_capacity(WRAPPED_HEADER + KEY_LEN + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

pub fn unwrap(
    master: &MasterKey,
    tenant: TenantId,
    version: u32,
    wrapped: &[u8],
) -> Result<DataKey, SealError> {
    if wrapped.len() != WRAPPED_HEADER + KEY_LEN + TAG_LEN {
        return Err(SealError::Malformed("wrapped key has the wrong length"));
    }
    if wrapped[0] != FORMAT_V1 {
        return Err(SealError::UnknownFormat(wrapped[0]));
    }
    let aad = wrap_aad(tenant, version, &master.id);
    let plaintext = Zeroizing::new(
        cipher(&master.material)
            .decrypt(
                Nonce::from_slice(&wrapped[1..WRAPPED_HEADER]),
                Payload {
                    msg: &wrapped[WRAPPED_HEADER..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)?,
    );
    let material: [u8; KEY_LEN] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Malformed("key length"))?;
    Ok(DataKey {
        tenant,
        version,
        material: Zeroizing::new(material),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn open_str(
        key: &DataKey,
        ctx: &SealContext<'_>,
        sealed: &Sealed,
    ) -> Result<String, SealError> {
        key.open(ctx, sealed).map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn a_secret_opens_only_in_the_place_it_was_sealed_for() {
        let tenant = TenantId::generate();
        let key = DataKey::generate(tenant, 1);
        let here = SealContext {
            tenant,
            record: "channel-a",
            field: "password",
        };
        let sealed = key.seal(&here, &secret("hunter2"));
        assert_eq!(open_str(&key, &here, &sealed).unwrap(), "hunter2");
        assert_eq!(sealed.key_version().unwrap(), 1);

        let other_row = SealContext {
            record: "channel-b",
            ..here
        };
        let other_field = SealContext {
            field: "api_key",
            ..here
        };
        for ctx in [other_row, other_field] {
            assert_eq!(open_str(&key, &ctx, &sealed), Err(SealError::DoesNotOpen));
        }
        let other_tenant = TenantId::generate();
        let other_key = DataKey::generate(other_tenant, 1);
        let moved = SealContext {
            tenant: other_tenant,
            ..here
        };
        assert_eq!(
            open_str(&other_key, &moved, &sealed),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let tenant = TenantId::generate();
        let key = DataKey::generate(tenant, 3);
        let ctx = SealContext {
            tenant,
            record: "r",
            field: "f",
        };
        let sealed = key.seal(
            &ctx,
            &secret("a 64-byte secret, or thereabouts, for the tamper test........"),
        );
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            assert!(
                key.open(&ctx, &Sealed::from_bytes(bytes)).is_err(),
                "byte {i} flipped unnoticed"
            );
        }
        let truncated = Sealed::from_bytes(sealed.as_bytes()[..10].to_vec());
        assert!(matches!(
            key.open(&ctx, &truncated),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let tenant = TenantId::generate();
        let key = DataKey::generate(tenant, 1);
        let ctx = SealContext {
            tenant,
            record: "r",
            field: "f",
        };
        assert_ne!(
            key.seal(&ctx, &secret("same")),
            key.seal(&ctx, &secret("same"))
        );
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_tenant_version_and_master_key() {
        let master = MasterKey::generate("k1");
        let tenant = TenantId::generate();
        let key = DataKey::generate(tenant, 1);
        let wrapped = wrap(&master, &key);
        let back = unwrap(&master, tenant, 1, &wrapped).unwrap();
        assert_eq!(*back.material, *key.material);

        assert_eq!(
            unwrap(&master, TenantId::generate(), 1, &wrapped).unwrap_err(),
            SealError::DoesNotOpen
        );
        assert_eq!(
            unwrap(&master, tenant, 2, &wrapped).unwrap_err(),
            SealError::DoesNotOpen
        );
        assert_eq!(
            unwrap(&MasterKey::generate("k1"), tenant, 1, &wrapped).unwrap_err(),
            SealError::DoesNotOpen
        );
        let mut renamed = master.clone();
        renamed.id = "k2".into();
        assert_eq!(
            unwrap(&renamed, tenant, 1, &wrapped).unwrap_err(),
            SealError::DoesNotOpen
        );
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = DataKey::generate(TenantId::generate(), 1);
        let shown = format!("{key:?}");
        assert!(shown.contains("REDACTED"), "{shown}");
        let ctx = SealContext {
            tenant: key.tenant,
            record: "r",
            field: "f",
        };
        assert!(format!("{:?}", key.seal(&ctx, &secret("Canary-1"))).starts_with("Sealed("));
    }
}
