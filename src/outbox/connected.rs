//! What sending through a connected mailbox (Gmail API, Microsoft Graph) shares: the
//! provider's client with the channel tokens refreshed once for everyone, and a token that
//! could not be had turned into the failure of the send that needed it.

use std::sync::Arc;

use crate::oauth::tokens::{AccessTokens, TokenError};
use crate::transport::FailureClass;
use crate::transport::pool::SendFailure;

/// Sends through provider `P`'s API (`impl`s in `gmail` and `microsoft`).
pub struct ApiSender<P> {
    pub(super) provider: Arc<P>,
    pub(super) tokens: AccessTokens,
}

impl<P> ApiSender<P> {
    pub fn new(provider: Arc<P>, tokens: AccessTokens) -> Self {
        Self { provider, tokens }
    }

    /// The channel tokens this sender uses (the scheduled checks ask them too).
    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }
}

/// A token that could not be had, as the failure of the send that needed it.
pub(super) fn token_failure(e: TokenError) -> SendFailure {
    match e {
        TokenError::NeedsReauth { cause, detail } => SendFailure {
            auth_cause: Some(cause),
            ..SendFailure::new(FailureClass::Auth, None, detail)
        },
        TokenError::Unavailable(detail) => SendFailure::new(FailureClass::Temporary, None, detail),
    }
}
