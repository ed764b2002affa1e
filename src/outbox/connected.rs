//! What sending through a connected mailbox (Gmail API, Microsoft Graph) shares: the
//! provider's client with the channel tokens refreshed once for everyone, and a token that
//! could not be had turned into the failure of the send that needed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::ChannelId;
use crate::oauth::tokens::{AccessTokens, TokenError};
use crate::transport::FailureClass;
use crate::transport::pool::SendFailure;

/// Sends through provider `P`'s API (`impl`s in `gmail` and `microsoft`).
pub struct ApiSender<P> {
    pub(super) provider: Arc<P>,
    pub(super) tokens: AccessTokens,
    /// Requests in flight per mailbox at most, in this process (`None`: no limit).
    per_mailbox: Option<usize>,
    slots: Mutex<HashMap<ChannelId, Arc<Semaphore>>>,
    /// Mailboxes the provider asked to leave alone (`Retry-After`), until when.
    paused: Mutex<HashMap<ChannelId, Instant>>,
}

/// A pause shorter than this is waited out in the send; a longer one defers the message.
const WAIT_OUT: Duration = Duration::from_secs(30);

impl<P> ApiSender<P> {
    pub fn new(provider: Arc<P>, tokens: AccessTokens) -> Self {
        Self {
            provider,
            tokens,
            per_mailbox: None,
            slots: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
        }
    }

    /// The provider asked (`Retry-After`) that the mailbox be left alone this long: every
    /// send to it waits, not only the one that was told.
    pub(super) fn pause(&self, channel: ChannelId, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused.lock().expect("paused mailboxes");
        let entry = paused.entry(channel).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Waits out a short pause of the mailbox; a long one is returned, to defer the message.
    pub(super) async fn wait_if_paused(&self, channel: ChannelId) -> Result<(), Duration> {
        let until = {
            let mut paused = self.paused.lock().expect("paused mailboxes");
            match paused.get(&channel) {
                Some(until) if *until > Instant::now() => *until,
                Some(_) => {
                    paused.remove(&channel);
                    return Ok(());
                }
                None => return Ok(()),
            }
        };
        let left = until.saturating_duration_since(Instant::now());
        if left > WAIT_OUT {
            return Err(left);
        }
        tokio::time::sleep(left).await;
        Ok(())
    }

    /// At most `limit` sends to one mailbox at a time (Graph answers more with 429
    /// `MailboxConcurrency`).
    pub fn with_mailbox_limit(self, limit: usize) -> Self {
        Self {
            per_mailbox: Some(limit),
            ..self
        }
    }

    /// Waits for a free slot of the mailbox, when its requests are limited.
    pub(super) async fn slot(&self, channel: ChannelId) -> Option<OwnedSemaphorePermit> {
        let limit = self.per_mailbox?;
        let semaphore = self
            .slots
            .lock()
            .expect("mailbox slots")
            .entry(channel)
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        semaphore.acquire_owned().await.ok()
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
