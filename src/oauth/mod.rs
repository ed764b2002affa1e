//! Connecting mailboxes with OAuth (Google and Microsoft): the authorization flow, the code
//! exchange, refresh with a single flight across processes, revocation. May import `store`,
//! `vault` and `domain`.

pub mod connect;
pub mod google;
pub mod microsoft;
pub mod provider;
pub mod settings;
pub mod tokens;
