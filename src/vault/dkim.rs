//! DKIM key pairs: making one, and opening its sealed private half into a key that signs.
//! The private half travels as a `SecretString` (base64 of PKCS#8 DER), the form the
//! `secrets` table seals; it is never in `Debug`, logs or errors.
//!
//! Two RSA implementations, each for what it does well: the `rsa` crate makes keys (ring
//! cannot; 2048 bits take 0.2 to 3 s of CPU, mean 0.6 s, in release and in the dev profile's
//! override for the bignum crates, so keys are made on the blocking pool outside any
//! transaction), ring signs with them: it is already our TLS provider, signs in
//! constant time, which the `rsa` crate does not promise (RUSTSEC-2023-0071), and about 4x
//! faster (measured in the dev profile: 1.3 ms against 5 ms a signature).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::VaultError;

/// A freshly made key pair: the private half to seal, the public half to publish.
pub struct DkimKeyPair {
    private_key: SecretString,
    public_key: Vec<u8>,
}

impl fmt::Debug for DkimKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DkimKeyPair(public {} bytes, private [REDACTED])",
            self.public_key.len()
        )
    }
}

impl DkimKeyPair {
    /// A new RSA key pair of `bits` bits.
    pub fn generate_rsa(bits: usize) -> Result<Self, VaultError> {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|_| VaultError::DkimKey("RSA key generation failed"))?;
        // A zeroizing document; the base64 text is moved straight into the secret.
        let der = key
            .to_pkcs8_der()
            .map_err(|_| VaultError::DkimKey("encoding the private key"))?;
        let public_key = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| VaultError::DkimKey("encoding the public key"))?
            .into_vec();
        Ok(Self {
            private_key: SecretString::from(BASE64.encode(der.as_bytes())),
            public_key,
        })
    }

    /// The private key, base64 of PKCS#8 DER: what `secrets` seals.
    pub fn private_key(&self) -> &SecretString {
        &self.private_key
    }

    /// The public key as SubjectPublicKeyInfo DER: what the TXT record's `p=` carries.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
}

/// An opened private key, ready to sign. Opening parses and checks the key, which costs
/// more than a signature: keep one per key rather than one per message.
pub struct DkimSigningKey {
    pair: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for DkimSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DkimSigningKey(rsa {} bits, [REDACTED])",
            self.pair.public().modulus_len() * 8
        )
    }
}

impl DkimSigningKey {
    /// Opens the private half as `DkimKeyPair::private_key` gives it.
    pub fn open(private_key: &SecretString) -> Result<Self, VaultError> {
        let der = Zeroizing::new(
            BASE64
                .decode(private_key.expose_secret())
                .map_err(|_| VaultError::DkimKey("the stored private key is not base64"))?,
        );
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| VaultError::DkimKey("the stored private key is not an RSA key"))?;
        Ok(Self {
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// An RSASSA-PKCS1-v1_5 signature with SHA-256 over `data` (DKIM's `rsa-sha256`).
    pub fn sign_rsa_sha256(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, data, &mut signature)
            .map_err(|_| VaultError::DkimKey("signing failed"))?;
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use rsa::pkcs8::DecodePublicKey;

    #[test]
    fn a_generated_key_signs_what_its_public_half_verifies_and_shows_no_secret() {
        let pair = DkimKeyPair::generate_rsa(2048).unwrap();
        let key = DkimSigningKey::open(pair.private_key()).unwrap();
        let signature = key.sign_rsa_sha256(b"headers").unwrap();
        assert_eq!(signature.len(), 256);
        // ring verifies against the bare RSAPublicKey inside the SubjectPublicKeyInfo.
        let public = rsa::RsaPublicKey::from_public_key_der(pair.public_key()).unwrap();
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&public).unwrap();
        let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1.as_bytes());
        assert!(verifier.verify(b"headers", &signature).is_ok());
        assert!(verifier.verify(b"headerz", &signature).is_err());

        let secret = pair.private_key().expose_secret().to_owned();
        for shown in [format!("{pair:?}"), format!("{key:?}")] {
            assert!(shown.contains("REDACTED"), "{shown}");
            assert!(!shown.contains(&secret[..40]), "{shown}");
        }
        assert!(DkimSigningKey::open(&SecretString::from("not base64!".to_owned())).is_err());
        assert!(DkimSigningKey::open(&SecretString::from("AAAA".to_owned())).is_err());
    }
}
