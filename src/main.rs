use clap::{Parser, Subcommand};
use switchboard::config::Config;
use switchboard::{commands, telemetry};

/// Switchboard: send channels for sales-engagement email.
///
/// Configuration comes from SWITCHBOARD_* environment variables; with none set the service
/// runs on an embedded SQLite database in ./data, bound to 127.0.0.1:8080.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Mint a new operator token and print it (for a lost token).
    OperatorToken {
        /// Revoke every older operator token.
        #[arg(long)]
        revoke_others: bool,
    },
    /// Exit 0 when the running service answers /readyz (for container health checks).
    Healthcheck,
    /// Master keys and tenant data keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Send channels: test one, or replace its password or API key.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// DKIM keys of a tenant's sending domain: the records to publish, and rotation.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
}

#[derive(Subcommand)]
enum DkimCommand {
    /// The DKIM records the tenant must publish for the domain (the active key, and rotated
    /// keys still to be kept). Reads only.
    Show(DkimTarget),
    /// Make a new signing key for the domain (the first one when it has none).
    ///
    /// The new key signs from now on, under a new selector: publish its record at once. The
    /// key it replaces signs nothing more but must stay published for 7 days, for mail it
    /// signed that is still on its way; then it is retired. Recorded in the audit trail.
    Rotate(DkimTarget),
}

#[derive(clap::Args)]
struct DkimTarget {
    /// The tenant's id.
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// The sending domain, e.g. acme.com.
    #[arg(long, value_name = "DOMAIN")]
    domain: String,
    /// Print the records as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Test a channel with its stored credential.
    ///
    /// Connect, TLS, EHLO, login and, with --send-to, a test message: each stage is printed
    /// with the server's reply and, when it failed, a hint. Exit status 0 only when every
    /// stage passed. Recorded in the audit trail.
    Test {
        /// The channel's id (GET /v1/channels shows it).
        channel_id: String,
        /// Also send a short test message to this address.
        #[arg(long, value_name = "ADDR")]
        send_to: Option<String>,
        /// The From of the test message (domain channels; defaults to no-reply@ its first
        /// domain). Mailbox channels always use their own address.
        #[arg(long, value_name = "ADDR")]
        from: Option<String>,
    },
    /// Replace a channel's password or API key, e.g. after a password change.
    ///
    /// The new secret is read from standard input (one line) when it is piped or redirected,
    /// else asked for without echo; never from an argument or the environment. It is tested
    /// against the server first and stored only when the login works; until then the old
    /// credential stays in use. A verified credential makes a `needs_reauth` channel active
    /// again and releases the mail held for it.
    ///
    /// Running services pick up the new credential by themselves (their SMTP sessions are
    /// keyed by the credential's change time): nothing needs restarting or signalling.
    Rotate {
        /// The channel's id (GET /v1/channels shows it).
        channel_id: String,
        /// A new username, for credentials that come as a pair (new SES SMTP credentials):
        /// tested and stored together with the secret.
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
        /// Store the secret even though the login test fails, marked unverified.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new master key as `id:base64` for SWITCHBOARD_MASTER_KEYS.
    Generate {
        #[arg(long)]
        id: Option<String>,
    },
    /// The master keys and how many tenant data keys each wraps.
    List,
    /// Make a new master key active and re-wrap every tenant data key under it.
    Rotate {
        /// Data keys re-wrapped per transaction.
        #[arg(long, default_value_t = commands::keys::DEFAULT_BATCH)]
        batch: i64,
    },
    /// Retire a master key that no longer wraps anything.
    Retire { id: String },
    /// Give one tenant a new data key and re-seal all its secrets.
    RotateTenant { tenant_id: String },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first admin's token.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_name: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(commands::serve(config)),
        Command::Migrate => commands::migrate(&config),
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    admin_email,
                    admin_name,
                },
        } => commands::create_tenant(&config, &name, &admin_email, admin_name.as_deref()),
        Command::OperatorToken { revoke_others } => {
            commands::new_operator_token(&config, revoke_others)
        }
        Command::Healthcheck => commands::healthcheck(&config),
        Command::Keys { command } => match command {
            KeysCommand::Generate { id } => commands::keys::generate(id.as_deref()),
            KeysCommand::List => commands::keys::list(&config),
            KeysCommand::Rotate { batch } => commands::keys::rotate(&config, batch),
            KeysCommand::Retire { id } => commands::keys::retire(&config, &id),
            KeysCommand::RotateTenant { tenant_id } => {
                commands::keys::rotate_tenant(&config, &tenant_id)
            }
        },
        Command::Channel { command } => match command {
            ChannelCommand::Test {
                channel_id,
                send_to,
                from,
            } => commands::channel::test(&config, &channel_id, send_to.as_deref(), from.as_deref()),
            ChannelCommand::Rotate {
                channel_id,
                username,
                force,
            } => commands::channel::rotate(&config, &channel_id, username.as_deref(), force),
        },
        Command::Dkim { command } => match command {
            DkimCommand::Show(t) => commands::dkim::show(&config, &t.tenant, &t.domain, t.json),
            DkimCommand::Rotate(t) => commands::dkim::rotate(&config, &t.tenant, &t.domain, t.json),
        },
    }
}
