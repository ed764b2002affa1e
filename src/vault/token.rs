//! Bearer tokens. 256 random bits, shown to the caller once, stored only as a SHA-256 hash:
//! a token has full entropy, so a fast hash is enough and a stolen database holds nothing
//! that can be presented back.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every token we mint, so secret scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "sb_";

/// Longest presented token we bother to hash; anything longer is rejected outright.
pub const MAX_PRESENTED_LEN: usize = 512;

/// The stored form of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Comparison that takes the same time wherever the first difference is.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A freshly minted token: the plaintext to show once, and the hash to store.
pub struct IssuedToken {
    pub plaintext: SecretString,
    pub hash: TokenHash,
}

impl IssuedToken {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = TokenHash::of(&plaintext);
        Self {
            plaintext: SecretString::from(plaintext),
            hash,
        }
    }

    /// A token for a link in a message (an unsubscribe link): 256 random bits as 43 URL-safe
    /// characters, without the prefix of API tokens (it grants nothing in the API, and
    /// secret scanners need not flag it in mail).
    pub fn for_link() -> Self {
        let bytes: [u8; 32] = rand::random();
        let plaintext = URL_SAFE_NO_PAD.encode(bytes);
        let hash = TokenHash::of(&plaintext);
        Self {
            plaintext: SecretString::from(plaintext),
            hash,
        }
    }

    pub fn expose(&self) -> &str {
        self.plaintext.expose_secret()
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_to_their_stored_form() {
        let a = IssuedToken::generate();
        let b = IssuedToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 43);
        assert!(TokenHash::of(a.expose()).matches(&a.hash));
        assert!(!TokenHash::of(b.expose()).matches(&a.hash));
    }

    #[test]
    fn link_tokens_are_url_safe_and_unprefixed() {
        let t = IssuedToken::for_link();
        assert_eq!(t.expose().len(), 43);
        assert!(!t.expose().starts_with(TOKEN_PREFIX));
        assert!(
            t.expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(TokenHash::of(t.expose()).matches(&t.hash));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = IssuedToken::generate();
        let shown = format!("{t:?} {:?}", t.hash);
        assert!(!shown.contains(&t.expose()[3..]), "{shown}");
    }
}
