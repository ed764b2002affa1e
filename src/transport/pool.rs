//! A connection pool per channel. lettre's own pool cannot be given our sockets (outbound
//! policy, TCP_NODELAY), so we keep authenticated sessions ourselves: at most `pool_size`
//! per channel, reused while idle for less than the idle timeout, discarded when broken,
//! and all dropped when the channel's credential changes (the key includes its version, so
//! a rotated password is never sent on a session opened with the old one).

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
}

impl SendFailure {
    pub fn new(class: FailureClass, code: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            class,
            code,
            message: message.into(),
            retry_after: None,
            auth_cause: None,
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

struct Idle {
    session: AsyncSmtpConnection,
    since: Instant,
}

struct ChannelSessions {
    version: i64,
    idle: Vec<Idle>,
    /// One permit per session that may exist at once (`pool_size`).
    permits: Arc<Semaphore>,
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
        let entry = channels
            .entry(target.channel)
            .or_insert_with(|| ChannelSessions {
                version: target.credential_version,
                idle: Vec::new(),
                permits: Arc::new(Semaphore::new(target.settings.pool_size as usize)),
            });
        if entry.version != target.credential_version {
            *entry = ChannelSessions {
                version: target.credential_version,
                idle: Vec::new(),
                permits: Arc::new(Semaphore::new(target.settings.pool_size as usize)),
            };
        }
        entry.permits.clone()
    }

    fn take_idle(&self, target: &Target<'_>) -> Option<AsyncSmtpConnection> {
        let mut channels = self.channels.lock().expect("pool lock");
        let entry = channels.get_mut(&target.channel)?;
        if entry.version != target.credential_version {
            return None;
        }
        while let Some(idle) = entry.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && !idle.session.has_broken() {
                return Some(idle.session);
            }
        }
        None
    }

    fn give_back(&self, target: &Target<'_>, session: AsyncSmtpConnection) {
        let mut channels = self.channels.lock().expect("pool lock");
        if let Some(entry) = channels.get_mut(&target.channel)
            && entry.version == target.credential_version
        {
            entry.idle.push(Idle {
                session,
                since: Instant::now(),
            });
        }
    }

    async fn open(&self, target: &Target<'_>) -> Result<AsyncSmtpConnection, SendFailure> {
        let settings = target.settings;
        let tcp = connect(settings, &self.policy)
            .await
            .map_err(SendFailure::from_open)?;
        let mut session = open_session(settings, tcp)
            .await
            .map_err(SendFailure::from_open)?;
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
    /// failed session is closed, never reused.
    pub async fn send(
        &self,
        target: &Target<'_>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<String, SendFailure> {
        let _permit: OwnedSemaphorePermit = self
            .permits(target)
            .acquire_owned()
            .await
            .expect("the pool's semaphores are never closed");
        let mut session = match self.take_idle(target) {
            Some(session) => session,
            None => self.open(target).await?,
        };
        let deadline = Duration::from_secs(u64::from(target.settings.command_timeout_secs));
        match within(
            deadline,
            "sending",
            session.send(envelope, message),
            OpenError::Smtp,
        )
        .await
        {
            Ok(response) => {
                self.give_back(target, session);
                Ok(response.message().collect::<Vec<_>>().join(" "))
            }
            Err(error) => {
                discard(session).await;
                Err(match error {
                    OpenError::Smtp(e) => SendFailure::from_smtp(&e, false),
                    other => SendFailure::from_open(other),
                })
            }
        }
    }

    /// Closes sessions idle for longer than the idle timeout (call it now and then).
    pub async fn close_idle(&self) -> usize {
        let expired: Vec<AsyncSmtpConnection> = {
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
            let _ = tokio::time::timeout(Duration::from_secs(5), session.quit()).await;
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
