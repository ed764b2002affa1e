//! Building and running the service: data directory, database, migrations, the first
//! operator token, the HTTP server.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::config::Config;
use crate::domains::Domains;
use crate::http::{self, AppState};
use crate::oauth::google::Google;
use crate::oauth::microsoft::Microsoft;
use crate::outbox::{Outbox, Running};
use crate::store::{Store, StoreError, migrations, operator, tenant_keys};
use crate::vault::files::write_private_file;
use crate::vault::{IssuedToken, KeySource, TokenHash, Vault};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("master keys: {0}")]
    Vault(#[from] crate::vault::VaultError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("cannot write the operator token to {path}: {source}")]
    OperatorTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    server: Server,
    local_addr: SocketAddr,
    delivery: Option<Running>,
    /// The domain scheduler and its stop signal (with delivery: background work).
    domain_checks: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// Opens the database (creating the data directory for SQLite) and applies pending
/// migrations.
pub fn open_store(config: &Config) -> Result<Store, StartupError> {
    open_and_migrate(config).map(|(store, _)| store)
}

/// The same as `open_store`, also saying how many migrations it applied.
pub fn open_and_migrate(config: &Config) -> Result<(Store, usize), StartupError> {
    if !config.database.is_postgres() {
        prepare_data_dir(&config.data_dir)?;
    }
    let store = Store::open(&config.database, config.db_pool_size)?;
    let applied = store.run_blocking(migrations::run_pending)?;
    if applied > 0 {
        tracing::info!(applied, database = %config.database, "migrations applied");
    }
    Ok((store, applied))
}

/// Opens the database and the master keys, and checks that the keys open the data: a
/// missing or wrong key stops the start here, naming the key, before anything is served.
pub fn open_store_and_vault(config: &Config) -> Result<(Store, Arc<Vault>), StartupError> {
    let store = open_store(config)?;
    let vault = Vault::open(config.master_keys.clone())?;
    if let KeySource::File {
        path,
        generated: true,
    } = vault.source()
    {
        tracing::warn!(
            path = %path.display(),
            "MASTER KEYS ARE STORED NEXT TO THE DATABASE: anyone with a copy of the data directory can open every secret. \
             For production set SWITCHBOARD_MASTER_KEYS, or SWITCHBOARD_MASTER_KEYS_FILE on another volume"
        );
    }
    store.run_blocking(|conn| tenant_keys::verify_master_keys(conn, &vault))?;
    Ok((store, Arc::new(vault)))
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let config = Arc::new(config);
        if !crate::http::ui::session::CookiePolicy::for_public_url(&config.public_url).secure {
            tracing::warn!(
                public_url = %config.public_url,
                "the admin pages are served over plain HTTP to a non-loopback address, so their session cookie cannot be Secure: \
                 put Switchboard behind HTTPS and set SWITCHBOARD_PUBLIC_URL to the https:// address"
            );
        }
        let (store, vault) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<(Store, Arc<Vault>), StartupError> {
                let (store, vault) = open_store_and_vault(&config)?;
                ensure_operator_token(&store, &config)?;
                Ok((store, vault))
            })
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??
        };
        let listener = TcpListener::bind(&config.bind).map_err(|source| StartupError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let google = oauth_client(
            config.google.as_ref(),
            |s| Google::new(s, &google_redirect_uri(&config)),
            "Google",
            "Gmail is off: set SWITCHBOARD_GOOGLE_CLIENT_ID and SWITCHBOARD_GOOGLE_CLIENT_SECRET to let reps connect Gmail",
        )?;
        let microsoft = oauth_client(
            config.microsoft.as_ref(),
            |s| Microsoft::new(s, &microsoft_redirect_uri(&config)),
            "Microsoft",
            "Microsoft is off: set SWITCHBOARD_MICROSOFT_CLIENT_ID and SWITCHBOARD_MICROSOFT_CLIENT_SECRET to let reps connect Microsoft 365 and Outlook.com mailboxes",
        )?;
        let outbox = Outbox::new(
            store.clone(),
            vault.clone(),
            &config,
            google.clone(),
            microsoft.clone(),
        );
        let delivery = config.delivery.enabled.then(|| outbox.start());
        let domains = Arc::new(
            Domains::new(store.clone(), vault.clone(), config.domains.clone()).with_shared_pool(
                config.shared_pool.is_some(),
                config
                    .shared_pool
                    .as_ref()
                    .and_then(|p| p.settings.username.as_deref()),
            ),
        );
        let domain_checks = config.delivery.enabled.then(|| {
            let (stop, stopped) = watch::channel(false);
            (stop, tokio::spawn(domains.clone().run(stopped)))
        });
        let state = web::Data::new(AppState {
            google,
            microsoft,
            outbox,
            store,
            vault,
            configured_operator_token: config
                .operator_token
                .as_ref()
                .map(|t| TokenHash::of(t.expose_secret())),
            config: config.clone(),
            domains,
        });
        let server = HttpServer::new(move || http::app(state.clone()))
            .workers(config.http_workers)
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                bind: config.bind.clone(),
                source,
            })?
            .run();
        tracing::info!(
            address = %local_addr,
            database = %config.database,
            "listening"
        );
        Ok(Self {
            server,
            local_addr,
            delivery,
            domain_checks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server gracefully (in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (a signal or a handle), then lets the delivery
    /// loop finish its in-flight sends and record them.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some((stop, task)) = self.domain_checks {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(delivery) = self.delivery {
            delivery.stop().await;
        }
        served
    }
}

fn prepare_data_dir(dir: &Path) -> Result<(), StartupError> {
    let io = |source| StartupError::DataDir {
        path: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io)?;
        restrict(dir, 0o700).map_err(io)?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// An OAuth provider's client when it is configured; when not, a line saying how to turn
/// it on.
fn oauth_client<S: Clone, T>(
    settings: Option<&S>,
    build: impl FnOnce(S) -> Result<T, String>,
    provider: &str,
    off: &str,
) -> Result<Option<Arc<T>>, StoreError> {
    match settings {
        Some(settings) => build(settings.clone())
            .map(|client| Some(Arc::new(client)))
            .map_err(|e| StoreError::Internal(format!("{provider} OAuth client: {e}"))),
        None => {
            tracing::info!("{off}");
            Ok(None)
        }
    }
}

/// Where Microsoft sends the user back after sign-in (and an admin after admin consent);
/// register it as a Web redirect URI of the app registration.
pub fn microsoft_redirect_uri(config: &Config) -> String {
    format!("{}/oauth/microsoft/callback", config.public_url)
}

/// Where Google sends the user back after consent; register it in the Google Cloud console.
pub fn google_redirect_uri(config: &Config) -> String {
    format!("{}/oauth/google/callback", config.public_url)
}

/// The file the first generated operator token is written to.
pub fn operator_token_path(config: &Config) -> PathBuf {
    config.data_dir.join("operator-token")
}

/// On the very first start with no operator token configured, mints one, stores its hash
/// and writes the token to a 0600 file in the data directory. It is never logged: logs
/// travel further than a file only its owner can read.
fn ensure_operator_token(store: &Store, config: &Config) -> Result<(), StartupError> {
    if config.operator_token.is_some() {
        return Ok(());
    }
    let token = IssuedToken::generate();
    if !store.run_blocking(|conn| operator::insert_if_none(conn, token.hash))? {
        return Ok(());
    }
    let path = operator_token_path(config);
    write_private_file(&path, &format!("{}\n", token.expose())).map_err(|source| {
        StartupError::OperatorTokenFile {
            path: path.clone(),
            source,
        }
    })?;
    tracing::warn!(
        path = %path.display(),
        "generated the operator token and wrote it to this file (mode 0600); store it somewhere safe and delete the file"
    );
    Ok(())
}
