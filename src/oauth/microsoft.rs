//! Microsoft's side of "Connect Microsoft": the authorization URL (`common` authority, code
//! flow, PKCE S256, `state`, `nonce`, `prompt=select_account`), the code exchange with the ID
//! token's claims checked, the mailbox address from Graph `/me`, and refresh at the account's
//! own directory. Plain form posts rather than the oauth2 crate: its error type drops the
//! `error_codes` and `suberror` that decide whether a rep, an admin or the operator must act.
//! The HTTP client never follows redirects.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::google::without_url;
use super::provider::{Authorization, ProviderError, Resource, Tokens, http_client};
use super::settings::MicrosoftSettings;

/// Sign-in and the mailbox's address (`openid email profile User.Read`), a refresh token
/// (`offline_access`), and sending as the signed-in user (`Mail.Send`).
pub const SCOPES: &str = "openid email profile offline_access User.Read Mail.Send";
/// Exchange Online's SMTP submission, for channels that send over SMTP with XOAUTH2: a token
/// of its own (one resource per token request), from the same refresh token.
pub const SMTP_SCOPES: &str = "https://outlook.office.com/SMTP.Send offline_access";
/// What the rep consents to when connecting: Graph's scopes and SMTP.Send (which needs no
/// admin consent), so switching a channel to SMTP later needs no second sign-in.
pub const AUTHORIZE_SCOPES: &str =
    "openid email profile offline_access User.Read Mail.Send https://outlook.office.com/SMTP.Send";
/// The `tid` of every personal Microsoft account (Outlook.com, Hotmail, Live).
pub const PERSONAL_ACCOUNTS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Work, school and personal accounts alike sign in here.
const AUTHORITY_TENANT: &str = "common";
/// Requests to Microsoft that take longer than this fail (and are retried by their caller).
const TIMEOUT: Duration = Duration::from_secs(20);
/// Clock skew tolerated on the ID token's `exp`.
const SKEW_SECS: i64 = 300;

/// Microsoft's OAuth client for this installation.
pub struct Microsoft {
    settings: MicrosoftSettings,
    http: reqwest::Client,
    redirect_uri: String,
}

/// Who signed in: the account's directory and object id (the stable key of the mailbox),
/// with the tokens of the grant.
pub struct SignedIn {
    pub tid: String,
    pub oid: String,
    pub tokens: Tokens,
}

/// The claims of an ID token that we check or use.
#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    aud: String,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    tid: String,
    oid: String,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// The identity platform's error body (RFC 6749 §5.2 plus Microsoft's own fields).
#[derive(Deserialize, Debug, Default)]
pub struct TokenErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<u64>,
    #[serde(default)]
    pub suberror: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

/// What a refused token request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// The rep must connect again, for this `ReauthCause` code.
    Reconnect(&'static str),
    /// Only the account's admin can help (Conditional Access, admin approval).
    Admin,
    /// Our client is refused: a wrong or expired client secret, an unknown client.
    Client,
    /// Anything else: try again later.
    Temporary,
}

/// Classifies an error body by Microsoft's `error_codes` first (AADSTS numbers), then by the
/// OAuth `error`.
pub fn classify(body: &TokenErrorBody) -> TokenRefusal {
    let has = |codes: &[u64]| body.error_codes.iter().any(|c| codes.contains(c));
    if has(&[7_000_222, 7_000_215, 7_000_218, 700_016, 700_023]) || body.error == "invalid_client" {
        TokenRefusal::Client
    } else if has(&[53_003, 530_035, 90_094, 90_095]) {
        TokenRefusal::Admin
    } else if has(&[50_173]) {
        TokenRefusal::Reconnect("password_changed")
    } else if has(&[700_082, 70_008]) {
        TokenRefusal::Reconnect("token_expired")
    } else if has(&[50_076, 50_079, 50_078]) {
        TokenRefusal::Reconnect("mfa_required")
    } else if has(&[70_043]) {
        TokenRefusal::Reconnect("sign_in_frequency")
    } else if has(&[65_001]) || body.suberror.as_deref() == Some("consent_required") {
        TokenRefusal::Reconnect("consent_revoked")
    } else if matches!(
        body.error.as_str(),
        "invalid_grant" | "interaction_required" | "consent_required"
    ) {
        TokenRefusal::Reconnect("token_revoked")
    } else {
        TokenRefusal::Temporary
    }
}

/// The first line of Microsoft's description (the rest is trace and correlation ids), short,
/// with anything secret we sent taken out in case it was echoed.
fn describe(body: &TokenErrorBody, secrets: &[&str]) -> String {
    let mut text: String = body
        .error_description
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(240)
        .collect();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        text = text.replace(secret, "[REDACTED]");
    }
    let code = body
        .error_codes
        .first()
        .map(|c| format!("AADSTS{c} "))
        .unwrap_or_default();
    let suberror = body
        .suberror
        .as_deref()
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    format!("{code}{}{suberror}: {}", body.error, text.trim())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `nonce` of an authorization, derived from its PKCE verifier (kept sealed on our side
/// until the browser returns), so the ID token is bound to the authorization without
/// storing a second secret.
fn nonce_for(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("nonce:{}", verifier.expose_secret()).as_bytes(),
    ))
}

impl Microsoft {
    pub fn new(settings: MicrosoftSettings, redirect_uri: &str) -> Result<Self, String> {
        Ok(Self {
            settings,
            http: http_client(TIMEOUT)?,
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    pub fn settings(&self) -> &MicrosoftSettings {
        &self.settings
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The link a Microsoft 365 admin opens to approve Switchboard for the whole
    /// organisation (`organizations` when the account's directory is not known yet).
    pub fn admin_consent_url(&self, tenant: Option<&str>) -> String {
        let tenant = tenant
            .filter(|t| *t != PERSONAL_ACCOUNTS_TENANT)
            .unwrap_or("organizations");
        let query = serde_urlencoded::to_string([
            ("client_id", self.settings.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
        ])
        .unwrap_or_default();
        format!(
            "{}?{query}",
            self.settings.authority(&format!("{tenant}/adminconsent"))
        )
    }

    /// A new authorization at `common`: random state, PKCE S256, a nonce, the account
    /// picker. Never `prompt=consent`: forcing the consent screen makes users of tenants
    /// whose admin already approved the app ask for approval again.
    pub fn authorize(&self, login_hint: Option<&str>) -> Authorization {
        let verifier = SecretString::from(random_token());
        let state = SecretString::from(random_token());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret()));
        let nonce = nonce_for(&verifier);
        let mut params = vec![
            ("client_id", self.settings.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("response_mode", "query"),
            ("scope", AUTHORIZE_SCOPES),
            ("state", state.expose_secret()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("prompt", "select_account"),
        ];
        if let Some(hint) = login_hint {
            params.push(("login_hint", hint));
        }
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        let url = format!(
            "{}?{query}",
            self.settings
                .authority(&format!("{AUTHORITY_TENANT}/oauth2/v2.0/authorize"))
        );
        Authorization {
            url,
            state,
            verifier,
        }
    }

    /// Exchanges the code at `common`, proving possession of the verifier, and checks the ID
    /// token that came with the tokens.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<SignedIn, ProviderError> {
        let body = self
            .token_request(
                AUTHORITY_TENANT,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", self.redirect_uri.as_str()),
                    ("code_verifier", verifier.expose_secret()),
                    ("scope", SCOPES),
                ],
                None,
            )
            .await?;
        let id_token = body.id_token.as_deref().ok_or_else(|| {
            ProviderError::Temporary(
                "Microsoft returned no ID token (was `openid` granted?)".into(),
            )
        })?;
        let claims = self.verify_id_token(id_token, &nonce_for(verifier))?;
        Ok(SignedIn {
            tid: claims.tid,
            oid: claims.oid,
            tokens: tokens(body),
        })
    }

    /// Checks the ID token received from the token endpoint over TLS. Its signature is not
    /// checked: OpenID Connect Core §3.1.3.7 allows that for a token received directly from
    /// the token endpoint of the configured authority over TLS. What is checked: `aud` is our
    /// client, `iss` is the authority's issuer for the token's own `tid`, `nonce` is this
    /// authorization's, and `exp` has not passed.
    fn verify_id_token(&self, token: &str, nonce: &str) -> Result<IdClaims, ProviderError> {
        let unreadable =
            |why: &str| ProviderError::Temporary(format!("Microsoft's ID token {why}"));
        let payload = token
            .split('.')
            .nth(1)
            .ok_or_else(|| unreadable("is not a JWT"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| unreadable("is not base64url"))?;
        let claims: IdClaims =
            serde_json::from_slice(&bytes).map_err(|_| unreadable("lacks tid, oid, iss or aud"))?;
        let issuer = self.settings.authority(&format!("{}/v2.0", claims.tid));
        let refused = |why: String| {
            ProviderError::Temporary(format!("Microsoft's ID token {why}; nothing was connected"))
        };
        if claims.aud != self.settings.client_id {
            return Err(refused("is for another application".into()));
        }
        if claims.iss != issuer {
            return Err(refused(format!(
                "names issuer {} instead of {issuer}",
                claims.iss
            )));
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(refused("belongs to another sign-in (nonce)".into()));
        }
        if claims.exp + SKEW_SECS < chrono::Utc::now().timestamp() {
            return Err(refused("has expired".into()));
        }
        Ok(claims)
    }

    /// The address the mailbox sends as: `/me`'s `mail`, else its `userPrincipalName`
    /// (`mail` is empty for accounts without Exchange Online and for some Outlook.com ones).
    pub async fn mailbox_address(
        &self,
        access_token: &SecretString,
    ) -> Result<String, ProviderError> {
        let response = self
            .http
            .get(self.settings.graph("me?$select=mail,userPrincipalName"))
            .bearer_auth(access_token.expose_secret())
            .send()
            .await
            .map_err(|e| ProviderError::Temporary(format!("Graph /me: {}", without_url(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                ProviderError::Temporary(format!("Graph /me answered {status}"))
            } else {
                ProviderError::Reauth {
                    cause: "token_revoked",
                    detail: format!("Graph /me refused the new access token ({status})"),
                }
            });
        }
        let me: Me = response
            .json()
            .await
            .map_err(|e| ProviderError::Temporary(format!("Graph /me: {}", without_url(&e))))?;
        me.mail
            .filter(|m| !m.trim().is_empty())
            .or(me.user_principal_name)
            .ok_or_else(|| ProviderError::Temporary("Graph /me named no address".into()))
    }

    /// A new access token (and a new refresh token: Microsoft rotates on every use) at the
    /// account's directory. Refreshing at `common` while connecting at the tenant is how
    /// peers lost their grants.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        account_tenant: Option<&str>,
        resource: Resource,
    ) -> Result<Tokens, ProviderError> {
        let tenant = account_tenant.unwrap_or(AUTHORITY_TENANT);
        let scope = match resource {
            Resource::Api => SCOPES,
            Resource::MicrosoftSmtp => SMTP_SCOPES,
        };
        let body = self
            .token_request(
                tenant,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                    ("scope", scope),
                ],
                account_tenant,
            )
            .await?;
        Ok(tokens(body))
    }

    async fn token_request(
        &self,
        tenant: &str,
        params: &[(&str, &str)],
        account_tenant: Option<&str>,
    ) -> Result<TokenBody, ProviderError> {
        let mut form = vec![
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose_secret()),
        ];
        form.extend_from_slice(params);
        let response = self
            .http
            .post(
                self.settings
                    .authority(&format!("{tenant}/oauth2/v2.0/token")),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                ProviderError::Temporary(format!("token endpoint: {}", without_url(&e)))
            })?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Temporary(format!(
                    "token endpoint answered something unreadable: {e}"
                ))
            });
        }
        let body: TokenErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let secrets: Vec<&str> = form
            .iter()
            .filter(|(k, _)| {
                matches!(
                    *k,
                    "client_secret" | "refresh_token" | "code" | "code_verifier"
                )
            })
            .map(|(_, v)| *v)
            .collect();
        let detail = describe(&body, &secrets);
        Err(match classify(&body) {
            _ if status.is_server_error() => {
                ProviderError::Temporary(format!("token endpoint answered {status}: {detail}"))
            }
            TokenRefusal::Reconnect(cause) => ProviderError::Reauth {
                cause,
                detail: format!(
                    "Microsoft refused the grant ({detail}); the owner must connect the mailbox again"
                ),
            },
            TokenRefusal::Admin => ProviderError::AdminAction {
                detail: format!("Microsoft refused the grant ({detail}); ask your Microsoft admin"),
                consent_url: Some(self.admin_consent_url(account_tenant)),
            },
            TokenRefusal::Client => ProviderError::Client(format!(
                "Microsoft refused Switchboard's OAuth client ({detail}); the operator must check SWITCHBOARD_MICROSOFT_CLIENT_ID and _CLIENT_SECRET (secrets expire)"
            )),
            TokenRefusal::Temporary => {
                ProviderError::Temporary(format!("token endpoint answered {status}: {detail}"))
            }
        })
    }

    /// What an error the browser came back with means (`error`, `error_description`):
    /// admin approval needed, the user declining, or something else.
    pub fn declined(&self, error: &str, description: Option<&str>) -> ProviderError {
        let description = description.unwrap_or_default();
        let codes: Vec<u64> = description
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter_map(|w| w.strip_prefix("AADSTS"))
            .filter_map(|n| n.parse().ok())
            .collect();
        let body = TokenErrorBody {
            error: error.to_owned(),
            error_description: description.to_owned(),
            error_codes: codes,
            suberror: None,
        };
        let detail = describe(&body, &[]);
        if classify(&body) == TokenRefusal::Admin || error == "consent_required" {
            return ProviderError::AdminAction {
                detail: format!(
                    "your organisation wants an admin to approve Switchboard first ({detail}); ask your Microsoft admin to open the admin-consent link, then connect again"
                ),
                consent_url: Some(self.admin_consent_url(None)),
            };
        }
        ProviderError::Reauth {
            cause: "not_connected",
            detail: if error == "access_denied" {
                "you declined the request (access_denied); nothing was changed".into()
            } else {
                format!("Microsoft answered {detail}")
            },
        }
    }
}

fn tokens(body: TokenBody) -> Tokens {
    Tokens {
        access_token: SecretString::from(body.access_token),
        // A missing lifetime is treated as a short one, so the token is refreshed early
        // rather than used past its end.
        expires_in: Duration::from_secs(body.expires_in.unwrap_or(300)),
        refresh_token: body.refresh_token.map(SecretString::from),
        scopes: body
            .scope
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: &str, codes: &[u64], suberror: Option<&str>) -> TokenErrorBody {
        TokenErrorBody {
            error: error.into(),
            error_description: String::new(),
            error_codes: codes.to_vec(),
            suberror: suberror.map(Into::into),
        }
    }

    #[test]
    fn microsofts_error_codes_decide_who_must_act() {
        use TokenRefusal::*;
        let cases = [
            (
                body("invalid_grant", &[50173], Some("bad_token")),
                Reconnect("password_changed"),
            ),
            (
                body("invalid_grant", &[700082], None),
                Reconnect("token_expired"),
            ),
            (
                body("invalid_grant", &[70008], None),
                Reconnect("token_expired"),
            ),
            (
                body("interaction_required", &[50076], None),
                Reconnect("mfa_required"),
            ),
            (
                body("interaction_required", &[50079], None),
                Reconnect("mfa_required"),
            ),
            (
                body("invalid_grant", &[70043], None),
                Reconnect("sign_in_frequency"),
            ),
            (
                body("invalid_grant", &[65001], Some("consent_required")),
                Reconnect("consent_revoked"),
            ),
            (body("invalid_grant", &[53003], None), Admin),
            (body("interaction_required", &[530035], None), Admin),
            (body("invalid_client", &[7000222], None), Client),
            (body("invalid_client", &[7000215], None), Client),
            (body("invalid_client", &[], None), Client),
            (body("temporarily_unavailable", &[90033], None), Temporary),
            (body("invalid_grant", &[], None), Reconnect("token_revoked")),
        ];
        for (b, want) in cases {
            assert_eq!(classify(&b), want, "{b:?}");
        }
    }

    #[test]
    fn descriptions_keep_the_first_line_and_lose_what_we_sent() {
        let b = TokenErrorBody {
            error: "invalid_client".into(),
            error_description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the one for app 'x' not Canary~Secret-123.\r\nTrace ID: 1\r\nCorrelation ID: 2".into(),
            error_codes: vec![7000215],
            suberror: None,
        };
        let text = describe(&b, &["Canary~Secret-123"]);
        assert!(text.starts_with("AADSTS7000215 invalid_client: "), "{text}");
        assert!(!text.contains("Canary"), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
    }
}
