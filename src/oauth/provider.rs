//! What every OAuth mailbox provider has in common: the authorization to send a browser to,
//! the tokens that come back, and why a call failed, classified the same way for Google and
//! Microsoft so that connecting, refreshing and sending treat both alike.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::google::Google;
use super::microsoft::Microsoft;
use crate::domain::ChannelKind;

/// An authorization to send the user to, and what to keep until they come back.
pub struct Authorization {
    pub url: String,
    pub state: SecretString,
    pub verifier: SecretString,
}

/// Tokens from a code exchange or a refresh.
pub struct Tokens {
    pub access_token: SecretString,
    pub expires_in: Duration,
    pub refresh_token: Option<SecretString>,
    pub scopes: Vec<String>,
}

/// Why a call to a provider failed, classified for the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The grant is gone (revoked, expired, password changed, MFA wanted): the user must
    /// connect again. `cause` is a `ReauthCause` code (`token_revoked`, `password_changed`, …).
    #[error("{detail}")]
    Reauth { cause: &'static str, detail: String },
    /// Only the account's administrator can let it through (Conditional Access, admin
    /// approval); `consent_url` is the admin-consent link to hand them, when there is one.
    #[error("{detail}")]
    AdminAction {
        detail: String,
        consent_url: Option<String>,
    },
    /// The provider refuses our OAuth client (a wrong or expired client secret): the
    /// operator's to fix, not any user's.
    #[error("{0}")]
    Client(String),
    /// The provider is unavailable or slow: try again later.
    #[error("{0}")]
    Temporary(String),
}

/// The HTTP client for a provider's endpoints: it never follows redirects (a token endpoint
/// that redirects is refused, not followed to wherever it points), and gives up after
/// `timeout` (the caller retries later).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// What an access token is for. Microsoft issues a token for one resource per request
/// (mixing Graph and Exchange Online scopes is refused, AADSTS700022), while the refresh
/// token is the same grant for both; Google's tokens are always `Api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The provider's HTTP API: Microsoft Graph, the Gmail API.
    Api,
    /// Exchange Online's SMTP submission (`https://outlook.office.com/SMTP.Send`), for
    /// `AUTH XOAUTH2` at smtp.office365.com.
    MicrosoftSmtp,
}

impl Resource {
    /// As stored beside the token (`oauth_tokens.access_resource`).
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Resource::Api => None,
            Resource::MicrosoftSmtp => Some("smtp"),
        }
    }

    pub fn from_stored(stored: Option<&str>) -> Self {
        match stored {
            Some("smtp") => Resource::MicrosoftSmtp,
            _ => Resource::Api,
        }
    }
}

/// A configured OAuth mailbox provider.
#[derive(Clone)]
pub enum Provider {
    Google(Arc<Google>),
    Microsoft(Arc<Microsoft>),
}

impl Provider {
    /// The name stored with states and tokens (`google`, `microsoft`).
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Google(_) => "google",
            Provider::Microsoft(_) => "microsoft",
        }
    }

    /// What people call it.
    pub fn label(&self) -> &'static str {
        match self {
            Provider::Google(_) => "Gmail",
            Provider::Microsoft(_) => "Microsoft",
        }
    }

    pub fn kind(&self) -> ChannelKind {
        match self {
            Provider::Google(_) => ChannelKind::Gmail,
            Provider::Microsoft(_) => ChannelKind::Microsoft,
        }
    }

    /// A new access token for `resource` from a refresh token; Microsoft refreshes at the
    /// account's own directory (`account_tenant`), never at `common`.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        account_tenant: Option<&str>,
        resource: Resource,
    ) -> Result<Tokens, ProviderError> {
        match self {
            Provider::Google(google) => google.refresh(refresh_token).await,
            Provider::Microsoft(microsoft) => {
                microsoft
                    .refresh(refresh_token, account_tenant, resource)
                    .await
            }
        }
    }

    /// Gives a grant back where the provider can take it (Google); Microsoft has no
    /// revocation endpoint, so nothing is confirmed there.
    pub async fn revoke(&self, refresh_token: &SecretString) -> bool {
        match self {
            Provider::Google(google) => google.revoke(refresh_token).await.is_ok(),
            Provider::Microsoft(_) => false,
        }
    }
}
