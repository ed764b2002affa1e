//! "Connect Gmail" from start to finish: an authorization bound to the rep who started it,
//! and, when Google sends the browser back, the code exchanged (with the PKCE verifier), the
//! mailbox learned, and the rep's Gmail channel created or reconnected. Nothing is stored
//! unless every step succeeds.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::google::{Google, GoogleError};
use crate::domain::{
    AuditActor, ChannelId, ChannelKind, ChannelLimits, ChannelOwner, ChannelSpec, CredentialScope,
    DisplayName, EmailAddress, ReturnPath, TenantId, UserId,
};
use crate::store::oauth::{self, Grant, NewState, StateRejection, TakenState};
use crate::store::{Store, StoreError, channels, users, write_transaction};
use crate::vault::Vault;

/// How long a started authorization may take.
pub const STATE_TTL_MICROS: i64 = 10 * 60 * 1_000_000;
const PROVIDER: &str = "google";
const SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// Why a connection did not happen, for the page the browser lands on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    State(&'static str),
    #[error("Google did not connect the mailbox: {0}")]
    Declined(String),
    #[error("{0}")]
    Google(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the browser's return from Google came to, and where it goes next: `return_to` is
/// the admin page that started the connection (none for API clients, and none when the
/// state itself was refused, since then nothing says who started it).
pub struct Finished {
    pub return_to: Option<String>,
    pub outcome: Result<Connected, ConnectError>,
}

/// A connected mailbox.
pub struct Connected {
    pub channel: ChannelId,
    pub email: EmailAddress,
    pub created: bool,
    pub released: usize,
}

fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

/// Daily limits of the mailbox kind: a consumer account sends about 500 a day, Workspace
/// 10,000 recipients a day; both at most 100 recipients a message (PROVIDERS.md).
fn limits_for(email: &EmailAddress) -> ChannelLimits {
    let consumer = matches!(email.domain().as_str(), "gmail.com" | "googlemail.com");
    ChannelLimits {
        per_minute: None,
        per_day_recipients: Some(if consumer { 500 } else { 10_000 }),
        recipients_per_message: Some(100),
    }
}

pub struct Connector {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub google: Arc<Google>,
}

impl Connector {
    /// Starts an authorization for `user` (reconnecting `channel` when given): the URL to send
    /// the browser to. The state and verifier stay on the server, with `return_to`, the
    /// admin page to come back to when the pages started it.
    pub async fn start(
        &self,
        tenant: TenantId,
        user: UserId,
        channel: Option<ChannelId>,
        login_hint: Option<String>,
        return_to: Option<String>,
    ) -> Result<(String, i64), StoreError> {
        let auth = self.google.authorize(login_hint.as_deref());
        let expires_at = chrono::Utc::now().timestamp_micros() + STATE_TTL_MICROS;
        let vault = self.vault.clone();
        let hash = state_hash(auth.state.expose_secret());
        let verifier = auth.verifier;
        self.store
            .run(move |conn| {
                oauth::insert_state_returning_to(
                    conn,
                    &vault,
                    &NewState {
                        state_hash: &hash,
                        tenant,
                        user,
                        provider: PROVIDER,
                        channel,
                        verifier: &verifier,
                        expires_at,
                    },
                    return_to.as_deref(),
                )
            })
            .await?;
        Ok((auth.url, expires_at))
    }

    /// Finishes an authorization the browser came back with.
    pub async fn finish(&self, state: &str, code: Option<&str>, error: Option<&str>) -> Finished {
        let taken = match self.take(state).await {
            Ok(taken) => taken,
            Err(e) => {
                return Finished {
                    return_to: None,
                    outcome: Err(e),
                };
            }
        };
        let return_to = taken.return_to.clone();
        Finished {
            return_to,
            outcome: self.complete(taken, code, error).await,
        }
    }

    /// Uses the state the browser came back with, once.
    async fn take(&self, state: &str) -> Result<TakenState, ConnectError> {
        let vault = self.vault.clone();
        let hash = state_hash(state);
        self.store
            .run(move |conn| oauth::take_state(conn, &vault, &hash))
            .await?
            .map_err(|r| {
                ConnectError::State(match r {
                    StateRejection::Unknown => {
                        "this sign-in link is not one Switchboard started (or it was cleaned up); start again from Switchboard"
                    }
                    StateRejection::Reused => {
                        "this sign-in link was already used; start again from Switchboard"
                    }
                    StateRejection::Expired => {
                        "this sign-in link expired (it is valid for 10 minutes); start again from Switchboard"
                    }
                })
            })
    }

    /// Exchanges the code of a taken state and stores the connection.
    async fn complete(
        &self,
        taken: TakenState,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<Connected, ConnectError> {
        if let Some(error) = error {
            return Err(ConnectError::Declined(match error {
                "access_denied" => {
                    "you declined the request (access_denied); nothing was changed".into()
                }
                other => format!(
                    "Google answered `{}`",
                    other.chars().take(60).collect::<String>()
                ),
            }));
        }
        let code = code.ok_or(ConnectError::State("Google sent no authorization code"))?;
        let tokens = self
            .google
            .exchange(code, &taken.verifier)
            .await
            .map_err(google_error)?;
        if !tokens.scopes.is_empty() && !tokens.scopes.iter().any(|s| s == SEND_SCOPE) {
            if let Some(rt) = &tokens.refresh_token {
                let _ = self.google.revoke(rt).await;
            }
            return Err(ConnectError::Refused(
                "Google did not grant permission to send mail; connect again and allow \"Send email on your behalf\"".into(),
            ));
        }
        let identity = self
            .google
            .identity(&tokens.access_token)
            .await
            .map_err(google_error)?;
        let email = EmailAddress::parse(&identity.email)
            .map_err(|e| ConnectError::Refused(format!("Google named no usable address: {e}")))?;
        let access_expires_at = chrono::Utc::now().timestamp_micros()
            + i64::try_from(tokens.expires_in.as_micros()).unwrap_or(i64::MAX / 2);
        let vault = self.vault.clone();
        let scopes = tokens.scopes.join(" ");
        let refresh_for_revocation = tokens.refresh_token.clone();
        let connected = self
            .store
            .run(move |conn| write_transaction(conn, |conn| {
                let user = users::get(conn, taken.tenant, taken.user)?;
                if user.disabled {
                    return Err(refused("the user who started this connection is disabled"));
                }
                let all = channels::list(conn, taken.tenant)?;
                let mine = |c: &&crate::domain::SendChannel| {
                    c.spec.kind == ChannelKind::Gmail && c.spec.owner == ChannelOwner::User(user.id)
                };
                let existing = match taken.channel {
                    Some(id) => {
                        let Some(channel) = all.iter().filter(mine).find(|c| c.id == id) else {
                            return Err(refused("the channel to reconnect is gone"));
                        };
                        let expected = channel.spec.from_address.as_ref().map(EmailAddress::normalized);
                        if expected.as_deref() != Some(email.normalized().as_str()) {
                            return Err(refused(format!(
                                "you signed in to Google as {email}, but this channel sends as {}; sign in with that account",
                                expected.unwrap_or_default()
                            )));
                        }
                        Some(id)
                    }
                    None => all
                        .iter()
                        .filter(mine)
                        .find(|c| {
                            c.spec.from_address.as_ref().map(EmailAddress::normalized)
                                == Some(email.normalized())
                        })
                        .map(|c| c.id),
                };
                let actor = AuditActor::User(user.id);
                let (channel, created) = match existing {
                    Some(id) => (id, false),
                    None => {
                        let spec = ChannelSpec {
                            name: DisplayName::parse(&format!("Gmail {email}"))
                                .map_err(StoreError::corrupt)?,
                            kind: ChannelKind::Gmail,
                            owner: ChannelOwner::User(user.id),
                            scope: CredentialScope::Mailbox,
                            from_address: Some(email.clone()),
                            domains: Vec::new(),
                            smtp: None,
                            limits: limits_for(&email),
                            bcc_archive: None,
                            reply_to: None,
                            return_path: ReturnPath::No,
                            // Not the `gmail` SMTP preset: an OAuth channel has no settings.
                            provider: None,
                            // Google signs what the Gmail API sends.
                            dkim_sign: false,
                            spf_include: None,
                        };
                        let c = channels::insert(conn, &vault, taken.tenant, &spec, None, actor.clone())?;
                        (c.id, true)
                    }
                };
                let grant = Grant {
                    subject: &identity.sub,
                    scopes: &scopes,
                    access_token: &tokens.access_token,
                    access_expires_at,
                    refresh_token: tokens.refresh_token.as_ref(),
                };
                let released =
                    oauth::store_grant(conn, &vault, taken.tenant, channel, PROVIDER, &grant, actor)?;
                Ok(Connected {
                    channel,
                    email: email.clone(),
                    created,
                    released,
                })
            }))
            .await;
        // Conflicts (a mailbox another user holds, no refresh token) roll everything back.
        let refused = match connected {
            Ok(connected) => return Ok(connected),
            Err(StoreError::Conflict { detail, .. }) => ConnectError::Refused(detail),
            Err(other) => ConnectError::Store(other),
        };
        // Nothing was kept: give the grant back, so it neither lingers at Google nor counts
        // toward its 100 refresh tokens per account.
        if let Some(rt) = &refresh_for_revocation {
            let _ = self.google.revoke(rt).await;
        }
        Err(refused)
    }

    /// Revokes the grant at Google (when it answers) and removes the tokens here. Returns
    /// whether Google confirmed the revocation.
    pub async fn disconnect(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        actor: AuditActor,
    ) -> Result<bool, StoreError> {
        let vault = self.vault.clone();
        let refresh: Option<SecretString> = self
            .store
            .run(move |c| oauth::token(c, &vault, tenant, channel, oauth::REFRESH_TOKEN_FIELD))
            .await?;
        let revoked = match &refresh {
            Some(rt) => self.google.revoke(rt).await.is_ok(),
            None => true,
        };
        self.store
            .run(move |c| oauth::remove_tokens(c, tenant, channel, actor))
            .await?;
        Ok(revoked)
    }
}

fn refused(detail: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        code: "connect_refused",
        detail: detail.into(),
    }
}

fn google_error(e: GoogleError) -> ConnectError {
    ConnectError::Google(match e {
        GoogleError::Permanent { detail, .. } => detail,
        GoogleError::Temporary(detail) => {
            format!("Google could not be reached or failed ({detail}); try again")
        }
    })
}
