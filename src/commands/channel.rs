//! `switchboard channel …`: testing a channel and replacing its credential from the server's
//! command line, by the same rules as `POST /v1/channels/{id}/test` and
//! `PUT /v1/channels/{id}/credentials`. Recorded in the audit trail with the actor `cli`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::domain::channel::TestSenderError;
use crate::domain::{AuditActor, ChannelId, EmailAddress, SendChannel, SmtpSettings};
use crate::startup;
use crate::store::audit::{self, AuditFilter};
use crate::store::{Store, StoreError, channels};
use crate::transport::tester::{TestReport, TestSend, test_smtp};

/// Parses the id and loads the channel from whichever tenant holds it.
fn load(store: &Store, raw_id: &str) -> anyhow::Result<SendChannel> {
    let id: ChannelId = raw_id.parse().context("channel id")?;
    if id == ChannelId::shared_pool() {
        bail!(
            "the shared pool is not stored: the operator configures it, credential included, with SWITCHBOARD_SHARED_POOL_URL, and the running service tests it (POST /v1/channels/{id}/test)"
        );
    }
    let found = store.run_blocking(|conn| {
        let tenant = channels::find_tenant(conn, id)?;
        channels::get(conn, tenant, id)
    });
    match found {
        Err(StoreError::NotFound) => bail!("no channel {id}"),
        other => Ok(other?),
    }
}

/// The channel's SMTP settings; a Gmail channel has none (it sends with OAuth), so `why_not`
/// says what to do instead.
fn smtp_of(channel: &SendChannel, why_not: &str) -> anyhow::Result<SmtpSettings> {
    match &channel.spec.smtp {
        Some(smtp) => Ok(smtp.clone()),
        None => bail!(
            "channel {} is a {} channel: {why_not}; its owner reconnects it with OAuth (POST /v1/oauth/google/start or /v1/oauth/microsoft/start with its channel_id)",
            channel.id,
            channel.spec.kind
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The text with every occurrence of the secret blanked out: a server that echoes what it was
/// sent must not make us print it.
fn redact(text: &str, secret: Option<&SecretString>) -> String {
    match secret.map(|s| s.expose_secret()) {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            text.replace(secret, "[redacted]")
        }
        _ => text.to_owned(),
    }
}

/// One line per stage, status and server reply in columns, each hint under its stage.
fn print_report(report: &TestReport, secret: Option<&SecretString>) {
    for stage in &report.stages {
        let status = if stage.ok { "ok" } else { "FAILED" };
        let code = stage.code.map(|c| format!("{c} ")).unwrap_or_default();
        println!(
            "{:<8} {status:<6} {code}{}",
            stage.stage,
            redact(&stage.message, secret)
        );
        if let Some(hint) = &stage.hint {
            println!("{:<15} hint: {}", "", redact(hint, secret));
        }
        if let Some(c) = &stage.certificate {
            let p = &c.presented;
            println!(
                "{:<15} certificate: {} (issuer {})",
                "", p.subject, p.issuer
            );
            println!("{:<15} names: {}", "", p.names.join(", "));
            println!("{:<15} valid: {} to {}", "", p.not_before, p.not_after);
            println!("{:<15} sha256: {}", "", p.sha256);
        }
    }
}

/// Why the test failed, for the last line and the exit status.
fn failure(report: &TestReport) -> String {
    let stage = report
        .stages
        .iter()
        .find(|s| !s.ok)
        .map_or("unknown", |s| s.stage);
    // The same word the API gives (`auth`, `tls`, `network`, …).
    let class = report
        .classification
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    match class {
        Some(class) => format!("failed at the {stage} stage ({class})"),
        None => format!("failed at the {stage} stage"),
    }
}

/// The From of a test message, as the HTTP handler chooses it: a mailbox channel's own
/// address, else `from` within the channel's domains, else no-reply@ its first domain.
fn test_from(channel: &SendChannel, from: Option<&str>) -> anyhow::Result<EmailAddress> {
    let from = from
        .map(EmailAddress::parse)
        .transpose()
        .context("--from")?;
    channel.test_sender(from).map_err(|e| match e {
        TestSenderError::NotInDomains => {
            anyhow::anyhow!("--from must be an address in one of the channel's domains")
        }
        TestSenderError::NoDomain => {
            anyhow::anyhow!("the channel has no domain to send from: give --from")
        }
    })
}

/// `switchboard channel test <id>`: connect, TLS, EHLO, login and, with `send_to`, a test
/// message, with the stored credential. Exit status 0 only when every stage passed.
pub fn test(
    config: &Config,
    raw_id: &str,
    send_to: Option<&str>,
    from: Option<&str>,
) -> anyhow::Result<()> {
    let (store, vault) = startup::open_store_and_vault(config)?;
    let channel = load(&store, raw_id)?;
    let smtp = smtp_of(&channel, "only SMTP channels can be tested this way")?;
    let send = match send_to {
        None => None,
        Some(to) => Some(TestSend {
            to: EmailAddress::parse(to).context("--send-to")?,
            from: test_from(&channel, from)?,
            deliver: true,
        }),
    };
    let (tenant, id) = (channel.tenant_id, channel.id);
    let credential = store.run_blocking(|conn| channels::credential(conn, &vault, tenant, id))?;
    let report = runtime()?.block_on(test_smtp(
        &smtp,
        credential.as_ref(),
        channel.spec.provider.as_deref(),
        &config.outbound,
        send,
    ));
    print_report(&report, credential.as_ref());
    let failed_stage = report.stages.iter().find(|s| !s.ok).map(|s| s.stage);
    let detail = serde_json::json!({
        "ok": report.ok,
        "failed_stage": failed_stage,
        "classification": report.classification,
    });
    store.run_blocking(|conn| {
        channels::record_test(conn, tenant, id, report.ok, detail, AuditActor::Cli)
    })?;
    tracing::info!(channel_id = %id, ok = report.ok, failed_stage = ?failed_stage, "channel tested");
    if !report.ok {
        bail!("channel {id}: the test {}", failure(&report));
    }
    println!("channel {id} ({}): every stage passed", channel.spec.name);
    Ok(())
}

/// One line of standard input without its line ending, when input is piped or redirected;
/// otherwise a prompt that does not echo. Never an argument or an environment variable:
/// those show in `ps`, in shell history and in `/proc/*/environ`.
fn read_secret(confirm: bool) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("New password or API key (not shown): ")
                .context("reading the secret from the terminal")?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("Again, to be sure (it is stored untested): ")
                    .context("reading the secret from the terminal")?,
            );
            if *again != *first {
                bail!("the two entries differ; nothing was stored");
            }
        }
        first
    } else {
        let mut line = Zeroizing::new(String::with_capacity(512));
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the secret from standard input")?;
        line
    };
    let secret = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if secret.is_empty() {
        bail!(
            "no secret given: pipe the new password or API key on standard input (one line), or run the command in a terminal to be asked for it"
        );
    }
    Ok(SecretString::from(secret.to_owned()))
}

/// A username given with the secret, refused for the same reasons the HTTP API refuses it.
fn check_username(username: Option<&str>) -> anyhow::Result<()> {
    if username.is_some_and(|u| u.trim().is_empty() || u.chars().any(char::is_control)) {
        bail!("--username must not be empty or hold control characters");
    }
    if username.is_some_and(|u| u.len() > 320) {
        bail!("--username must be at most 320 characters");
    }
    Ok(())
}

/// `switchboard channel rotate <id>`: the new secret is tested against the server first and
/// stored only when it logs in (or, with `force`, stored unverified). A verified credential
/// makes a `needs_reauth` channel active again and releases the mail held for it.
pub fn rotate(
    config: &Config,
    raw_id: &str,
    username: Option<&str>,
    force: bool,
) -> anyhow::Result<()> {
    check_username(username)?;
    let (store, vault) = startup::open_store_and_vault(config)?;
    let channel = load(&store, raw_id)?;
    let mut smtp = smtp_of(&channel, "it has no password or API key to rotate")?;
    let secret = read_secret(force)?;
    if let Some(username) = username {
        smtp.username = Some(username.to_owned());
    }
    // A username is shown on every read of the channel; one equal to the secret would be too.
    if smtp
        .username
        .as_deref()
        .is_some_and(|u| !u.is_empty() && u == secret.expose_secret())
    {
        bail!(
            "the username equals the password: usernames are shown on every read, so use a credential whose username is not secret (Postmark: an SMTP token's Access Key and Secret Key); nothing was stored"
        );
    }
    let report = runtime()?.block_on(test_smtp(
        &smtp,
        Some(&secret),
        channel.spec.provider.as_deref(),
        &config.outbound,
        None,
    ));
    print_report(&report, Some(&secret));
    let verified = report.ok;
    if !verified && !force {
        bail!(
            "the new credential {}: nothing was stored and the channel keeps its old credential (--force stores it untested)",
            failure(&report)
        );
    }
    let (tenant, id) = (channel.tenant_id, channel.id);
    let started = chrono::Utc::now().timestamp_micros();
    let (updated, released) = store.run_blocking(|conn| {
        let credential = channels::NewCredential {
            secret: &secret,
            username,
            verified,
        };
        let updated =
            channels::replace_credential(conn, &vault, tenant, id, &credential, AuditActor::Cli)?;
        // How many held messages went back to the queue is only in the audit detail.
        let filter = AuditFilter {
            since: Some(started),
            target: Some(id.to_string()),
            action: Some("credential.rotated".into()),
            limit: 100,
            ..AuditFilter::default()
        };
        let released = audit::search(conn, tenant, &filter)?
            .iter()
            .rev()
            .find(|e| e.actor == AuditActor::Cli.to_string())
            .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
            .and_then(|d| d["released"].as_u64());
        Ok((updated, released))
    })?;
    tracing::info!(channel_id = %id, verified, "credential replaced");
    if verified {
        println!(
            "channel {id} ({}): credential replaced and verified",
            updated.spec.name
        );
    } else {
        println!(
            "channel {id} ({}): credential replaced UNVERIFIED (--force): the test {}",
            updated.spec.name,
            failure(&report)
        );
    }
    match &updated.status_cause {
        Some(cause) => println!("status: {} ({cause})", updated.status),
        None => println!("status: {}", updated.status),
    }
    if let Some(released) = released {
        println!("held messages released: {released}");
    }
    Ok(())
}
