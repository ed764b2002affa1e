//! "Connect Gmail" and "Connect Microsoft" from start to finish: an authorization bound to
//! the rep who started it, and, when the provider sends the browser back, the code exchanged
//! (with the PKCE verifier), the mailbox learned, and the rep's mailbox channel created or
//! reconnected. Nothing is stored unless every step succeeds.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::microsoft::{Microsoft, PERSONAL_ACCOUNTS_TENANT};
use super::provider::{Provider, ProviderError, Tokens};
use crate::domain::{
    AuditActor, ChannelId, ChannelLimits, ChannelOwner, ChannelSpec, CredentialScope, DisplayName,
    EmailAddress, ReturnPath, TenantId, UserId,
};
use crate::store::oauth::{self, Grant, NewState, StateRejection, TakenState};
use crate::store::{Store, StoreError, channels, users, write_transaction};
use crate::vault::Vault;

/// How long a started authorization may take.
pub const STATE_TTL_MICROS: i64 = 10 * 60 * 1_000_000;
const SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// Why a connection did not happen, for the page the browser lands on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    State(&'static str),
    #[error("{0}")]
    Declined(String),
    /// The provider failed or refused on its side (unreachable, our client refused).
    #[error("{0}")]
    Provider(String),
    /// Only the account's administrator can let the connection through; `consent_url` is
    /// the admin-consent link to hand them.
    #[error("{detail}")]
    AdminApproval {
        detail: String,
        consent_url: Option<String>,
    },
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

/// Daily limits of a Gmail mailbox: a consumer account sends about 500 a day, Workspace
/// 10,000 recipients a day; both at most 100 recipients a message (PROVIDERS.md). Which one
/// it is, Google says (`hd`, the Workspace domain), not the address: a Workspace account may
/// have any domain, and a consumer Google account need not be @gmail.com.
fn gmail_limits(hosted_domain: Option<&str>) -> ChannelLimits {
    let consumer = hosted_domain.is_none();
    ChannelLimits {
        per_minute: None,
        per_day_recipients: Some(if consumer { 500 } else { 10_000 }),
        recipients_per_message: Some(100),
        ..ChannelLimits::default()
    }
}

/// Exchange Online's limits per mailbox: 30 messages a minute, 10,000 recipients a rolling
/// day, 500 a message; a free Outlook.com account about 300 a day (MICROSOFT.md).
fn microsoft_limits(tid: &str) -> ChannelLimits {
    ChannelLimits {
        per_minute: Some(30),
        per_day_recipients: Some(if tid == PERSONAL_ACCOUNTS_TENANT {
            300
        } else {
            10_000
        }),
        recipients_per_message: Some(500),
        ..ChannelLimits::default()
    }
}

/// The account a grant belongs to, as the provider named it.
struct Account {
    /// Google's `sub`; Microsoft's `oid`.
    subject: String,
    /// Microsoft's `tid`: with `oid`, the key of the mailbox; refreshes go to it.
    account_tenant: Option<String>,
    email: EmailAddress,
    tokens: Tokens,
    limits: ChannelLimits,
}

pub struct Connector {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub provider: Provider,
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
        let auth = match &self.provider {
            Provider::Google(google) => google.authorize(login_hint.as_deref()),
            Provider::Microsoft(microsoft) => microsoft.authorize(login_hint.as_deref()),
        };
        let provider = self.provider.name();
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
                        provider,
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

    /// Finishes an authorization the browser came back with (`error` with the provider's
    /// description, when it sent one).
    pub async fn finish(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<(&str, Option<&str>)>,
    ) -> Finished {
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

    /// Exchanges the code of a taken state and learns whose mailbox it is.
    async fn account(
        &self,
        taken: &TakenState,
        code: Option<&str>,
        error: Option<(&str, Option<&str>)>,
    ) -> Result<Account, ConnectError> {
        if taken.provider != self.provider.name() {
            return Err(ConnectError::State(
                "this sign-in link was started for another provider; start again from Switchboard",
            ));
        }
        match &self.provider {
            Provider::Google(google) => {
                if let Some((error, _)) = error {
                    return Err(ConnectError::Declined(match error {
                        "access_denied" => "Google did not connect the mailbox: you declined the request (access_denied); nothing was changed".into(),
                        other => format!(
                            "Google did not connect the mailbox: Google answered `{}`",
                            other.chars().take(60).collect::<String>()
                        ),
                    }));
                }
                let code = code.ok_or(ConnectError::State("Google sent no authorization code"))?;
                let tokens = google
                    .exchange(code, &taken.verifier)
                    .await
                    .map_err(|e| provider_error("Google", e))?;
                if !tokens.scopes.is_empty() && !tokens.scopes.iter().any(|s| s == SEND_SCOPE) {
                    if let Some(rt) = &tokens.refresh_token {
                        let _ = google.revoke(rt).await;
                    }
                    return Err(ConnectError::Refused(
                        "Google did not grant permission to send mail; connect again and allow \"Send email on your behalf\"".into(),
                    ));
                }
                let identity = google
                    .identity(&tokens.access_token)
                    .await
                    .map_err(|e| provider_error("Google", e))?;
                let email = EmailAddress::parse(&identity.email).map_err(|e| {
                    ConnectError::Refused(format!("Google named no usable address: {e}"))
                })?;
                Ok(Account {
                    subject: identity.sub,
                    account_tenant: None,
                    limits: gmail_limits(identity.hd.as_deref()),
                    email,
                    tokens,
                })
            }
            Provider::Microsoft(microsoft) => {
                if let Some((error, description)) = error {
                    return Err(match microsoft.declined(error, description) {
                        ProviderError::Reauth { detail, .. } => ConnectError::Declined(detail),
                        other => provider_error("Microsoft", other),
                    });
                }
                let code =
                    code.ok_or(ConnectError::State("Microsoft sent no authorization code"))?;
                self.microsoft_account(microsoft, code, &taken.verifier)
                    .await
            }
        }
    }

    async fn microsoft_account(
        &self,
        microsoft: &Microsoft,
        code: &str,
        verifier: &SecretString,
    ) -> Result<Account, ConnectError> {
        let signed_in = microsoft
            .exchange(code, verifier)
            .await
            .map_err(|e| provider_error("Microsoft", e))?;
        if !signed_in.tokens.scopes.is_empty()
            && !signed_in
                .tokens
                .scopes
                .iter()
                .any(|s| s.eq_ignore_ascii_case("Mail.Send") || s.ends_with("/Mail.Send"))
        {
            return Err(ConnectError::Refused(
                "Microsoft did not grant permission to send mail (Mail.Send); connect again and accept the permissions, or ask your Microsoft admin to approve Switchboard".into(),
            ));
        }
        let address = microsoft
            .mailbox_address(&signed_in.tokens.access_token)
            .await
            .map_err(|e| provider_error("Microsoft", e))?;
        let email = EmailAddress::parse(&address).map_err(|e| {
            ConnectError::Refused(format!(
                "Microsoft named no usable address ({address}): {e}"
            ))
        })?;
        Ok(Account {
            subject: signed_in.oid,
            limits: microsoft_limits(&signed_in.tid),
            account_tenant: Some(signed_in.tid),
            email,
            tokens: signed_in.tokens,
        })
    }

    /// Exchanges the code of a taken state and stores the connection.
    async fn complete(
        &self,
        taken: TakenState,
        code: Option<&str>,
        error: Option<(&str, Option<&str>)>,
    ) -> Result<Connected, ConnectError> {
        let Account {
            subject,
            account_tenant,
            email,
            tokens,
            limits,
        } = self.account(&taken, code, error).await?;
        let access_expires_at = chrono::Utc::now().timestamp_micros()
            + i64::try_from(tokens.expires_in.as_micros()).unwrap_or(i64::MAX / 2);
        let (kind, provider, label) = (
            self.provider.kind(),
            self.provider.name(),
            self.provider.label(),
        );
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
                    c.spec.kind == kind && c.spec.owner == ChannelOwner::User(user.id)
                };
                // A Microsoft mailbox is the account (`tid` + `oid`), whatever its address
                // says today; a Gmail mailbox is its address.
                let accounts = oauth::accounts(conn, taken.tenant, provider)?;
                let same_account = |c: &crate::domain::SendChannel| match &account_tenant {
                    Some(tid) => accounts.get(&c.id) == Some(&(subject.clone(), Some(tid.clone()))),
                    None => {
                        c.spec.from_address.as_ref().map(EmailAddress::normalized)
                            == Some(email.normalized())
                    }
                };
                let existing = match taken.channel {
                    Some(id) => {
                        let Some(channel) = all.iter().filter(mine).find(|c| c.id == id) else {
                            return Err(refused("the channel to reconnect is gone"));
                        };
                        if !same_account(channel) {
                            let expected = channel.spec.from_address.as_ref().map(EmailAddress::normalized);
                            return Err(refused(format!(
                                "you signed in to {label} as {email}, but this channel sends as {}; sign in with that account",
                                expected.unwrap_or_default()
                            )));
                        }
                        Some(id)
                    }
                    None => all
                        .iter()
                        .filter(mine)
                        .find(|c| same_account(c))
                        .map(|c| c.id),
                };
                let actor = AuditActor::User(user.id);
                let (channel, created) = match existing {
                    Some(id) => (id, false),
                    None => {
                        let spec = ChannelSpec {
                            name: DisplayName::parse(&format!("{label} {email}"))
                                .map_err(StoreError::corrupt)?,
                            kind,
                            owner: ChannelOwner::User(user.id),
                            scope: CredentialScope::Mailbox,
                            from_address: Some(email.clone()),
                            domains: Vec::new(),
                            smtp: None,
                            limits,
                            bcc_archive: None,
                            reply_to: None,
                            return_path: ReturnPath::No,
                            // Not an SMTP preset: an OAuth channel has no settings.
                            provider: None,
                            // The provider signs what its API sends.
                            dkim_sign: false,
                            spf_include: None,
                            microsoft_transport: crate::domain::MicrosoftTransport::Graph,
                        };
                        let c = channels::insert(conn, &vault, taken.tenant, &spec, None, actor.clone())?;
                        (c.id, true)
                    }
                };
                let grant = Grant {
                    subject: &subject,
                    account_tenant: account_tenant.as_deref(),
                    scopes: &scopes,
                    access_token: &tokens.access_token,
                    access_expires_at,
                    refresh_token: tokens.refresh_token.as_ref(),
                };
                let released =
                    oauth::store_grant(conn, &vault, taken.tenant, channel, provider, &grant, actor)?;
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
            let _ = self.provider.revoke(rt).await;
        }
        Err(refused)
    }

    /// Revokes the grant at the provider (Google, when it answers; Microsoft has no
    /// revocation endpoint) and removes the tokens here. Returns whether the provider
    /// confirmed the revocation.
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
            Some(rt) => self.provider.revoke(rt).await,
            None => true,
        };
        let provider = self.provider.name();
        self.store
            .run(move |c| oauth::remove_tokens(c, tenant, channel, provider, actor))
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

fn provider_error(label: &str, e: ProviderError) -> ConnectError {
    match e {
        ProviderError::Reauth { detail, .. } => ConnectError::Provider(detail),
        ProviderError::AdminAction {
            detail,
            consent_url,
        } => ConnectError::AdminApproval {
            detail,
            consent_url,
        },
        ProviderError::Client(detail) => {
            tracing::error!(detail = %detail, "{label} refuses Switchboard's OAuth client");
            ConnectError::Provider(format!(
                "{label} refused Switchboard's OAuth client; the operator has been alerted. Try again later"
            ))
        }
        ProviderError::Temporary(detail) => ConnectError::Provider(format!(
            "{label} could not be reached or failed ({detail}); try again"
        )),
    }
}
