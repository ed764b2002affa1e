//! A connection pool per channel. lettre's own pool cannot be given our sockets (outbound
//! policy, TCP_NODELAY), so we keep authenticated sessions ourselves: at most `pool_size`
//! per channel, reused while idle for less than the idle timeout, discarded when broken,
//! and all dropped when the channel's credential or settings change (a rotated password is
//! never sent on a session opened with the old one, and an edited host, port, security or
//! CA takes effect with the next message).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::classify::{FailureClass, classify, describe};
use super::outbound::OutboundPolicy;
use super::smtp::{OpenError, connect, discard, open_session, within};
use super::transaction::{ServerFeatures, Transaction, TransactionError, read_features, transact};
use crate::domain::{ChannelId, SmtpAuth, SmtpSettings};

/// How long an unused session stays open. Providers close idle sessions after a minute or
/// so; reusing one they already dropped costs a failed send.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a message goes: the channel, the version of its credential (its
/// `credential_updated_at`), its settings and the credential itself.
pub struct Target<'a> {
    pub channel: ChannelId,
    pub credential_version: i64,
    pub settings: &'a SmtpSettings,
    pub credential: Option<&'a SecretString>,
}

/// A failed send, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    pub class: FailureClass,
    pub code: Option<u16>,
    pub message: String,
    /// How long the server asked us to wait, when it said so in a structured way (HTTP
    /// `Retry-After`, a time in a Gmail error); SMTP replies are read for hints instead.
    pub retry_after: Option<std::time::Duration>,
    /// For `Auth`: why the credential is refused, when the transport knows (`token_revoked`).
    pub auth_cause: Option<&'static str>,
    /// The connection broke after the message's end and before the server's answer: the
    /// server may have taken it, so the retry may deliver it a second time.
    pub possibly_delivered: bool,
}

impl SendFailure {
    pub fn new(class: FailureClass, code: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            class,
            code,
            message: message.into(),
            retry_after: None,
            auth_cause: None,
            possibly_delivered: false,
        }
    }

    fn from_transaction(error: TransactionError) -> Self {
        let possibly_delivered = error.possibly_delivered();
        Self {
            possibly_delivered,
            ..Self::new(error.class, error.code, error.message)
        }
    }

    fn from_open(error: OpenError) -> Self {
        match error {
            OpenError::Smtp(e) => Self::from_smtp(&e, false),
            OpenError::Tls(message) => Self::new(FailureClass::Tls, None, message),
            other => Self::new(FailureClass::Network, None, other.to_string()),
        }
    }

    fn from_smtp(error: &lettre::transport::smtp::Error, during_auth: bool) -> Self {
        let (code, message) = describe(error);
        Self::new(classify(error, during_auth), code, message)
    }
}

/// An open, authenticated session and what its server announced.
struct Session {
    conn: AsyncSmtpConnection,
    features: ServerFeatures,
}

struct Idle {
    session: Session,
    since: Instant,
}

struct ChannelSessions {
    version: i64,
    /// The settings the sessions were opened with.
    settings: SmtpSettings,
    idle: Vec<Idle>,
    /// One permit per session that may exist at once (`pool_size`).
    permits: Arc<Semaphore>,
}

impl ChannelSessions {
    /// Whether these sessions were opened for the target's credential and settings.
    fn serves(&self, target: &Target<'_>) -> bool {
        self.version == target.credential_version && self.settings == *target.settings
    }
}

/// The sessions of every channel this process sends through. Cheap to share (`Arc`).
pub struct SmtpPool {
    policy: OutboundPolicy,
    idle_timeout: Duration,
    channels: Mutex<HashMap<ChannelId, ChannelSessions>>,
}

impl SmtpPool {
    pub fn new(policy: OutboundPolicy, idle_timeout: Duration) -> Self {
        Self {
            policy,
            idle_timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The permits of a channel at its current credential version; a new version drops the
    /// old version's idle sessions (sessions still sending finish, and are then dropped too).
    fn permits(&self, target: &Target<'_>) -> Arc<Semaphore> {
        let mut channels = self.channels.lock().expect("pool lock");
        let fresh = || ChannelSessions {
            version: target.credential_version,
            settings: target.settings.clone(),
            idle: Vec::new(),
            permits: Arc::new(Semaphore::new(target.settings.pool_size as usize)),
        };
        let entry = channels.entry(target.channel).or_insert_with(fresh);
        if !entry.serves(target) {
            *entry = fresh();
        }
        entry.permits.clone()
    }

    fn take_idle(&self, target: &Target<'_>) -> Option<Session> {
        let mut channels = self.channels.lock().expect("pool lock");
        let entry = channels.get_mut(&target.channel)?;
        if !entry.serves(target) {
            return None;
        }
        while let Some(idle) = entry.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && !idle.session.conn.has_broken() {
                return Some(idle.session);
            }
        }
        None
    }

    fn give_back(&self, target: &Target<'_>, session: Session) {
        let mut channels = self.channels.lock().expect("pool lock");
        if let Some(entry) = channels.get_mut(&target.channel)
            && entry.serves(target)
        {
            entry.idle.push(Idle {
                session,
                since: Instant::now(),
            });
        }
    }

    async fn open(&self, target: &Target<'_>) -> Result<Session, SendFailure> {
        let settings = target.settings;
        let tcp = connect(settings, &self.policy)
            .await
            .map_err(SendFailure::from_open)?;
        let mut session = open_session(settings, tcp)
            .await
            .map_err(SendFailure::from_open)?;
        let deadline = Duration::from_secs(u64::from(settings.command_timeout_secs));
        let features = read_features(&mut session, deadline)
            .await
            .map_err(SendFailure::from_open)?;
        let session = self.authenticate(target, session).await?;
        Ok(Session {
            conn: session,
            features,
        })
    }

    async fn authenticate(
        &self,
        target: &Target<'_>,
        mut session: AsyncSmtpConnection,
    ) -> Result<AsyncSmtpConnection, SendFailure> {
        let settings = target.settings;
        let mechanism = match settings.auth {
            SmtpAuth::None => return Ok(session),
            SmtpAuth::Plain => Mechanism::Plain,
            SmtpAuth::Login => Mechanism::Login,
            SmtpAuth::Xoauth2 => Mechanism::Xoauth2,
        };
        let secret = target.credential.ok_or_else(|| {
            SendFailure::new(FailureClass::Auth, None, "the channel has no credential")
        })?;
        let credentials = Credentials::new(
            settings.username.clone().unwrap_or_default(),
            secret.expose_secret().to_owned(),
        );
        let deadline = Duration::from_secs(u64::from(settings.command_timeout_secs));
        match within(
            deadline,
            "AUTH",
            session.auth(&[mechanism], &credentials),
            OpenError::Smtp,
        )
        .await
        {
            Ok(_) => Ok(session),
            Err(OpenError::Smtp(e)) => Err(SendFailure::from_smtp(&e, true)),
            Err(other) => Err(SendFailure::from_open(other)),
        }
    }

    /// Sends one message through the channel, on an idle session when there is one. A
    /// failed session is closed, never reused. Recipients the server refuses are answered
    /// one by one in the result; an error means the transaction failed as a whole.
    pub async fn send(
        &self,
        target: &Target<'_>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Transaction, SendFailure> {
        let _permit: OwnedSemaphorePermit = self
            .permits(target)
            .acquire_owned()
            .await
            .expect("the pool's semaphores are never closed");
        let deadline = Duration::from_secs(u64::from(target.settings.command_timeout_secs));
        let mut idle = self.take_idle(target);
        loop {
            let reused = idle.is_some();
            let mut session = match idle.take() {
                Some(session) => session,
                None => self.open(target).await?,
            };
            match transact(
                &mut session.conn,
                &session.features,
                envelope,
                message,
                deadline,
            )
            .await
            {
                Ok(done) => {
                    self.give_back(target, session);
                    return Ok(done);
                }
                // Servers close idle sessions (and end them when a password changes); the
                // first command finding it closed cost nothing yet, so a fresh session takes
                // over at once: no deferral, no failure counted against the channel.
                Err(error) if reused && error.stale_session() => {
                    tracing::debug!(channel_id = %target.channel, error = %error.message, "pooled session was closed by the server; opening a fresh one");
                    discard(session.conn).await;
                }
                Err(error) => {
                    discard(session.conn).await;
                    return Err(SendFailure::from_transaction(error));
                }
            }
        }
    }

    /// Closes sessions idle for longer than the idle timeout (call it now and then).
    pub async fn close_idle(&self) -> usize {
        let expired: Vec<Session> = {
            let mut channels = self.channels.lock().expect("pool lock");
            let mut expired = Vec::new();
            for entry in channels.values_mut() {
                let (keep, drop): (Vec<Idle>, Vec<Idle>) = entry
                    .idle
                    .drain(..)
                    .partition(|i| i.since.elapsed() < self.idle_timeout);
                entry.idle = keep;
                expired.extend(drop.into_iter().map(|i| i.session));
            }
            expired
        };
        let count = expired.len();
        for mut session in expired {
            let _ = tokio::time::timeout(Duration::from_secs(5), session.conn.quit()).await;
        }
        count
    }

    /// Idle sessions kept for a channel (for tests and metrics).
    pub fn idle_count(&self, channel: ChannelId) -> usize {
        self.channels
            .lock()
            .expect("pool lock")
            .get(&channel)
            .map_or(0, |e| e.idle.len())
    }
}
