//! What the command line can do. `main.rs` parses arguments and calls these.

pub mod channel;
pub mod dkim;
pub mod keys;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::domain::{AuditActor, DisplayName, EmailAddress};
use crate::startup::{self, Application};
use crate::store::{operator, tenants};
use crate::vault::IssuedToken;

/// `switchboard serve`: runs the service until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// `switchboard migrate`: applies pending migrations and says how many.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    let (_, applied) = startup::open_and_migrate(config)?;
    println!("{applied} migration(s) applied to {}", config.database);
    Ok(())
}

/// `switchboard tenant create`: the same as `POST /v1/tenants`, printing the JSON answer.
pub fn create_tenant(
    config: &Config,
    name: &str,
    admin_email: &str,
    admin_name: Option<&str>,
) -> anyhow::Result<()> {
    let name = DisplayName::parse(name).context("--name")?;
    let email = EmailAddress::parse(admin_email).context("--admin-email")?;
    let admin_name =
        DisplayName::parse(admin_name.unwrap_or(email.local_part())).context("--admin-name")?;
    let (store, vault) = startup::open_store_and_vault(config)?;
    let token = IssuedToken::generate();
    let created = store.run_blocking(|conn| {
        tenants::create_with_admin(
            conn,
            &vault,
            AuditActor::Cli,
            &name,
            &email,
            &admin_name,
            token.hash,
        )
    })?;
    let out = serde_json::json!({
        "id": created.tenant.id,
        "name": created.tenant.name.as_str(),
        "admin": {
            "user_id": created.admin.id,
            "email": created.admin.email.to_string(),
            "token": token.expose(),
            "token_id": created.admin_token_id,
        }
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `switchboard operator-token`: mints a new operator token and prints it once (for a lost
/// token); with `revoke_others`, every older operator token stops working.
pub fn new_operator_token(config: &Config, revoke_others: bool) -> anyhow::Result<()> {
    let store = startup::open_store(config)?;
    let token = IssuedToken::generate();
    let revoked = store.run_blocking(|conn| {
        let id = operator::insert(conn, token.hash)?;
        if revoke_others {
            operator::revoke_all_except(conn, id)
        } else {
            Ok(0)
        }
    })?;
    println!("{}", token.expose());
    if revoke_others {
        eprintln!("{revoked} older operator token(s) revoked");
    }
    Ok(())
}

/// `switchboard healthcheck`: asks the running service's `/readyz` (for container health
/// checks, where no HTTP client is installed). Exit status 0 when ready.
pub fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let bind = config
        .bind
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let addr = bind
        .to_socket_addrs()
        .with_context(|| format!("SWITCHBOARD_BIND={bind}"))?
        .next()
        .context("SWITCHBOARD_BIND resolves to no address")?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET /readyz HTTP/1.0\r\nHost: {bind}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        println!("ready");
        Ok(())
    } else {
        bail!("not ready: {status_line}")
    }
}
