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
    }
}
