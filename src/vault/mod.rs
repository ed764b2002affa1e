//! Secrets: API tokens (random, shown once, stored hashed). Sealing of credentials with the
//! master key ring lands here too. May import `domain` only.

pub mod token;

pub use token::{IssuedToken, TokenHash};
