//! Access tokens for connected channels, refreshed before they expire and exactly once:
//! however many workers in however many processes need a token when it runs out, one takes
//! the refresh lease in the database and asks the provider; the others wait for the new
//! version and use it. A rotated refresh token (Microsoft rotates on every refresh) replaces
//! the old one in the same transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;

use super::provider::{Provider, ProviderError, Resource};
use crate::domain::{ChannelId, TenantId};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, oauth};
use crate::vault::Vault;

/// An operator alert (our OAuth client refused) is logged at error this often at most: every
/// send of every mailbox meets it, and one line says it all.
const CLIENT_ALERT_EVERY: Duration = Duration::from_secs(600);
/// Refresh this long before the provider's expiry, so a token never runs out mid-send.
const MARGIN_MICROS: i64 = 60_000_000;
/// How long one refresh may hold the lease; a holder that dies is replaced after it.
const LEASE_MICROS: i64 = 30_000_000;
/// How long a caller waits for another's refresh before giving up (and deferring).
const WAIT: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(100);

/// Why no access token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The user must connect again, or their admin act first (`cause`: a `ReauthCause`
    /// code such as `token_revoked`, `password_changed`, `admin_action_required`,
    /// `not_connected`).
    #[error("{detail}")]
    NeedsReauth { cause: &'static str, detail: String },
    /// Google or the database is unavailable, or another refresh took too long.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::Unavailable(e.to_string())
    }
}

/// A usable access token and the version it belongs to.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub version: i64,
}

/// The access tokens of this process's channels.
pub struct AccessTokens {
    store: Store,
    vault: Arc<Vault>,
    provider: Provider,
    /// Counts refusals of our client, for the operator's alerts.
    metrics: Arc<Metrics>,
    /// When the operator was last alerted that the provider refuses our client.
    client_alert: Mutex<Option<std::time::Instant>>,
    /// Names this process's refresh leases.
    owner: String,
    /// channel → (version, token): a token read once per version, not per message.
    cache: Mutex<HashMap<ChannelId, (i64, SecretString)>>,
}

impl AccessTokens {
    pub fn new(store: Store, vault: Arc<Vault>, provider: Provider, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            vault,
            provider,
            metrics,
            client_alert: Mutex::new(None),
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A token for the provider's API valid for at least a minute more.
    pub async fn get(
        &self,
        tenant: TenantId,
        channel: ChannelId,
    ) -> Result<AccessToken, TokenError> {
        self.obtain(tenant, channel, None, Some(Resource::Api))
            .await
    }

    /// A token for `resource` (a Microsoft channel sending over SMTP wants Exchange's).
    pub async fn get_for(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        resource: Resource,
    ) -> Result<AccessToken, TokenError> {
        self.obtain(tenant, channel, None, Some(resource)).await
    }

    /// Whether the channel's grant still yields an access token (refreshing it when the
    /// current one is about to expire: for an idle channel that asks the provider, which
    /// also keeps a Microsoft grant from dying unused). A fresh token for any resource will
    /// do: it proves the grant as well.
    pub async fn check(&self, tenant: TenantId, channel: ChannelId) -> Result<(), TokenError> {
        self.obtain(tenant, channel, None, None).await.map(|_| ())
    }

    /// A token other than `rejected`, which the API refused before its time (revoked, or
    /// the provider rotated keys): refreshed unless someone already did.
    pub async fn replace(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        rejected: i64,
    ) -> Result<AccessToken, TokenError> {
        self.replace_for(tenant, channel, rejected, Resource::Api)
            .await
    }

    /// `replace` for a token for `resource`.
    pub async fn replace_for(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        rejected: i64,
        resource: Resource,
    ) -> Result<AccessToken, TokenError> {
        self.obtain(tenant, channel, Some(rejected), Some(resource))
            .await
    }

    /// `resource`: what the token must be for (`None`: whatever the stored one is for).
    async fn obtain(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        rejected: Option<i64>,
        resource: Option<Resource>,
    ) -> Result<AccessToken, TokenError> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let state = self
                .store
                .run(move |c| oauth::token_state(c, channel))
                .await?
                .ok_or_else(|| TokenError::NeedsReauth {
                    cause: "not_connected",
                    detail: format!(
                        "the channel is not connected; connect {} again",
                        self.provider.label()
                    ),
                })?;
            let now = chrono::Utc::now().timestamp_micros();
            let fresh = state
                .access_expires_at
                .is_some_and(|at| at > now + MARGIN_MICROS)
                && rejected != Some(state.version)
                && resource
                    .is_none_or(|r| r == Resource::from_stored(state.access_resource.as_deref()));
            if fresh {
                return self.read(tenant, channel, state.version).await;
            }
            let (owner, version) = (self.owner.clone(), state.version);
            let mine = self
                .store
                .run(move |c| {
                    oauth::take_refresh_lease(c, channel, version, &owner, now, now + LEASE_MICROS)
                })
                .await?;
            if mine {
                let resource = resource
                    .unwrap_or_else(|| Resource::from_stored(state.access_resource.as_deref()));
                return self
                    .refresh(tenant, channel, state.account_tenant.as_deref(), resource)
                    .await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(TokenError::Unavailable(
                    "another refresh of this channel's token did not finish in time".into(),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn read(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        version: i64,
    ) -> Result<AccessToken, TokenError> {
        if let Some((v, token)) = self.cache.lock().expect("token cache").get(&channel)
            && *v == version
        {
            return Ok(AccessToken {
                token: token.clone(),
                version,
            });
        }
        let vault = self.vault.clone();
        let token = self
            .store
            .run(move |c| oauth::token(c, &vault, tenant, channel, oauth::ACCESS_TOKEN_FIELD))
            .await?
            .ok_or_else(|| TokenError::Unavailable("the access token is missing".into()))?;
        self.cache
            .lock()
            .expect("token cache")
            .insert(channel, (version, token.clone()));
        Ok(AccessToken { token, version })
    }

    /// Under the lease: asks the provider once and stores the result (or gives the lease
    /// back).
    async fn refresh(
        &self,
        tenant: TenantId,
        channel: ChannelId,
        account_tenant: Option<&str>,
        resource: Resource,
    ) -> Result<AccessToken, TokenError> {
        let vault = self.vault.clone();
        let refresh_token = self
            .store
            .run(move |c| oauth::token(c, &vault, tenant, channel, oauth::REFRESH_TOKEN_FIELD))
            .await;
        let result = match refresh_token {
            Ok(Some(rt)) => self
                .provider
                .refresh(&rt, account_tenant, resource)
                .await
                .map_err(|e| self.token_error(e)),
            Ok(None) => Err(TokenError::NeedsReauth {
                cause: "not_connected",
                detail: format!(
                    "the channel has no refresh token; connect {} again",
                    self.provider.label()
                ),
            }),
            Err(e) => Err(e.into()),
        };
        let owner = self.owner.clone();
        match result {
            Ok(tokens) => {
                let expires_at = chrono::Utc::now().timestamp_micros()
                    + i64::try_from(tokens.expires_in.as_micros()).unwrap_or(i64::MAX / 2);
                let vault = self.vault.clone();
                let access = tokens.access_token.clone();
                let rotated = tokens.refresh_token.clone();
                let version = self
                    .store
                    .run(move |c| {
                        let refreshed = oauth::Refreshed {
                            access_token: &access,
                            access_expires_at: expires_at,
                            refresh_token: rotated.as_ref(),
                            access_resource: resource.stored(),
                        };
                        oauth::store_refreshed(c, &vault, tenant, channel, &owner, &refreshed)
                    })
                    .await?;
                let Some(version) = version else {
                    // Our lease ran out and another refresh won; use theirs.
                    return Box::pin(self.obtain(tenant, channel, None, Some(resource))).await;
                };
                tracing::info!(channel_id = %channel, "access token refreshed");
                self.cache
                    .lock()
                    .expect("token cache")
                    .insert(channel, (version, tokens.access_token.clone()));
                Ok(AccessToken {
                    token: tokens.access_token,
                    version,
                })
            }
            Err(e) => {
                let _ = self
                    .store
                    .run(move |c| oauth::release_refresh_lease(c, channel, &owner))
                    .await;
                tracing::warn!(channel_id = %channel, error = %e, "refreshing the access token failed");
                Err(e)
            }
        }
    }

    /// What a refused refresh means for the channel.
    fn token_error(&self, e: ProviderError) -> TokenError {
        match e {
            ProviderError::Reauth { cause, detail } => TokenError::NeedsReauth { cause, detail },
            ProviderError::AdminAction {
                detail,
                consent_url,
            } => TokenError::NeedsReauth {
                cause: "admin_action_required",
                detail: match consent_url {
                    Some(url) => format!("{detail}; admin-consent link: {url}"),
                    None => detail,
                },
            },
            // A refused client is the operator's configuration, not this rep's grant: mail
            // waits (deferred) instead of every mailbox needing a reconnect, and no rep is
            // told it is theirs to fix.
            ProviderError::Client(detail) => {
                self.metrics.oauth_client_refused(self.provider.name());
                let mut last = self.client_alert.lock().expect("client alert");
                if last.is_none_or(|at| at.elapsed() >= CLIENT_ALERT_EVERY) {
                    *last = Some(std::time::Instant::now());
                    tracing::error!(
                        provider = self.provider.name(),
                        alert = "oauth_client_refused",
                        detail = %detail,
                        "the provider refuses Switchboard's OAuth client: fix the client id / secret; mail of these mailboxes is deferred until then"
                    );
                }
                TokenError::Unavailable(detail)
            }
            ProviderError::Temporary(detail) => TokenError::Unavailable(detail),
        }
    }
}
