//! Google's side of "Connect Gmail": the authorization URL (code flow, PKCE S256, offline
//! access, consent), the code exchange, the mailbox address (userinfo), refresh and
//! revocation. The HTTP client never follows redirects: a token endpoint that redirects is
//! refused, not followed to wherever it points.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::settings::GoogleSettings;

/// The scopes a Gmail channel asks for: sending only, plus who the mailbox is.
pub const SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/gmail.send",
    "openid",
    "email",
];

/// Requests to Google that take longer than this fail (and are retried by their caller).
const TIMEOUT: Duration = Duration::from_secs(20);

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

pub use super::provider::ProviderError as GoogleError;
use super::provider::{Authorization, Tokens, http_client};

/// The mailbox behind a grant.
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    pub sub: String,
    pub email: String,
    /// The Google Workspace domain of an organisation's account (`hd`); Google sends none for
    /// a consumer account, whatever its address.
    #[serde(default)]
    pub hd: Option<String>,
}

/// Google's OAuth client for this installation.
pub struct Google {
    client: Client,
    http: reqwest::Client,
    settings: GoogleSettings,
}

impl Google {
    pub fn new(settings: GoogleSettings, redirect_uri: &str) -> Result<Self, String> {
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                settings.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(settings.auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(settings.token_url.clone()))
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned())
                    .map_err(|e| format!("redirect URI {redirect_uri}: {e}"))?,
            );
        Ok(Self {
            client,
            http: http_client(TIMEOUT)?,
            settings,
        })
    }

    pub fn settings(&self) -> &GoogleSettings {
        &self.settings
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A new authorization: random state, PKCE S256, offline access (a refresh token), and
    /// the consent screen every time (a reconnect must yield a fresh refresh token).
    pub fn authorize(&self, login_hint: Option<&str>) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "true");
        for scope in SCOPES {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state) = request.url();
        Authorization {
            url: url.to_string(),
            state: SecretString::from(state.secret().to_owned()),
            verifier: SecretString::from(verifier.secret().to_owned()),
        }
    }

    /// Exchanges the code the user came back with, proving possession of the verifier.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<Tokens, GoogleError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&response))
    }

    /// A new access token for a refresh token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Tokens, GoogleError> {
        let response = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&response))
    }

    /// Who the access token belongs to (OpenID Connect userinfo).
    pub async fn identity(&self, access_token: &SecretString) -> Result<Identity, GoogleError> {
        let response = self
            .http
            .get(self.settings.userinfo_url.clone())
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|e| GoogleError::Temporary(format!("userinfo: {}", without_url(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(if status.is_server_error() {
                GoogleError::Temporary(format!("userinfo answered {status}"))
            } else {
                GoogleError::Reauth {
                    cause: "token_revoked",
                    detail: format!("userinfo refused the new access token ({status})"),
                }
            });
        }
        response
            .json::<Identity>()
            .await
            .map_err(|e| GoogleError::Temporary(format!("userinfo: {}", without_url(&e))))
    }

    /// Revokes the grant at Google (revoking the refresh token revokes its access tokens).
    /// A plain form POST as Google documents it: the oauth2 crate refuses a revocation URL
    /// that is not https, which a local fake is.
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<(), GoogleError> {
        let response = self
            .http
            .post(self.settings.revoke_url.clone())
            .form(&[("token", refresh_token.expose_secret())])
            .send()
            .await
            .map_err(|e| GoogleError::Temporary(format!("revocation: {}", without_url(&e))))?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::BAD_REQUEST {
            // 400 invalid_token: already revoked or expired, which is what the caller wanted.
            Ok(())
        } else {
            Err(GoogleError::Temporary(format!(
                "revocation answered {status}"
            )))
        }
    }
}

fn tokens(response: &oauth2::basic::BasicTokenResponse) -> Tokens {
    Tokens {
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        // Google always sends expires_in; a missing one is treated as a short lifetime so
        // the token is refreshed early rather than used past its end.
        expires_in: response.expires_in().unwrap_or(Duration::from_secs(300)),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// reqwest errors name the URL; ours carry no secrets, but the text stays short.
pub(super) fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}

type TokenRequestError = RequestTokenError<
    oauth2::HttpClientError<reqwest::Error>,
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
>;

/// `invalid_grant` (revoked, expired, password changed), `invalid_client` and
/// `unauthorized_client` need a person; everything else is worth retrying.
fn token_error(e: TokenRequestError) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(response) => {
            let description = response.error_description().cloned().unwrap_or_default();
            match response.error() {
                BasicErrorResponseType::InvalidGrant => GoogleError::Reauth {
                    cause: "token_revoked",
                    detail: format!(
                        "Google refused the grant (invalid_grant: {description}); the user must connect Gmail again"
                    ),
                },
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => GoogleError::Client(format!(
                    "Google refused the OAuth client ({}: {description}); check SWITCHBOARD_GOOGLE_CLIENT_ID and _SECRET",
                    response.error()
                )),
                other => GoogleError::Temporary(format!("token endpoint: {other}: {description}")),
            }
        }
        RequestTokenError::Request(e) => GoogleError::Temporary(format!("token endpoint: {e}")),
        RequestTokenError::Parse(e, _) => {
            GoogleError::Temporary(format!("token endpoint answered something unreadable: {e}"))
        }
        RequestTokenError::Other(e) => GoogleError::Temporary(format!("token endpoint: {e}")),
    }
}
