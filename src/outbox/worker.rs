//! The delivery loop of one process: claim due messages (a lease in the database), route
//! them, send them through their channel with bounded concurrency, and record the outcomes
//! in batches. Outcomes are classified once (`transport::classify`) and mapped here to the
//! message's next state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::checks::Checker;
use super::content::{self, StoredBody, StoredEnvelope};
use super::dkim::{BatchSigners, OpenedKeys, Signing};
use super::gmail::GmailSender;
use super::microsoft::MicrosoftSender;
use super::outcome::{
    FailureContext, after_failure, after_transaction, class_name, nobody_accepted, remaining,
    settle_failed_recipients, stored_recipients,
};
use super::presence::Presence;
use super::render::{SendPolicy, render};
use super::route::{Sender, TenantRoutes, decision_json};
use super::settings::DeliverySettings;
use super::suppressed::{self, Left};
use crate::clock::Clock;
use crate::domain::health::Transition;
use crate::domain::message::MessageDraft;
use crate::domain::recipients::Recipients;
use crate::domain::routing::{Outcome, RouteDecision};
use crate::domain::{
    ChannelId, ChannelKind, EmailAddress, MessageId, MicrosoftTransport, SmtpSettings, TenantId,
    UserId,
};
use crate::metrics::Metrics;
use crate::notify::worker::Notifier;
use crate::oauth::google::Google;
use crate::oauth::microsoft::Microsoft;
use crate::oauth::provider::Provider;
use crate::oauth::tokens::AccessTokens;
use crate::store::delivery::{self, Attempt, ChannelEffect, Completion, Finished};
use crate::store::messages::{self, MessageRecord};
use crate::store::{DbConnection, Store, StoreError, channels, quotas, suppressions};
use crate::transport::dkim::DkimSigner;
use crate::transport::pool::{DEFAULT_IDLE_TIMEOUT, SendFailure, SmtpPool, Target};
use crate::transport::transaction::Transaction;
use crate::transport::{FailureClass, SharedPool};
use crate::vault::Vault;

/// Outcomes recorded per transaction at most.
const COMPLETE_BATCH: usize = 512;

/// The outbox of this process: wakes the workers when mail is accepted here, and runs them.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
    checker: Arc<Checker>,
    notifier: Option<Arc<Notifier>>,
}

struct Inner {
    store: Store,
    vault: Arc<Vault>,
    shared_pool: Option<SharedPool>,
    smtp: SmtpPool,
    /// Gmail API sending, when Google is configured.
    gmail: Option<Arc<GmailSender>>,
    /// Microsoft Graph sending, when Microsoft is configured.
    microsoft: Option<Arc<MicrosoftSender>>,
    /// When the operator was last told that the Microsoft client secret expires.
    secret_warned: Mutex<Option<Instant>>,
    settings: DeliverySettings,
    wake: Notify,
    metrics: Arc<Metrics>,
    /// Names this process's leases; fresh at every start, so a restarted process never
    /// mistakes its predecessor's leases for its own.
    worker_id: String,
    /// The heartbeat row named `worker_id`, which lets the others take our messages over at
    /// once if we die, and us theirs.
    presence: Arc<Presence>,
    /// Opened credentials by (channel, credential version): a rotation changes the version,
    /// so a stale entry is never used, only left behind.
    credentials: Mutex<HashMap<(ChannelId, i64), Option<SecretString>>>,
    /// Opened DKIM keys, by key id.
    dkim_keys: OpenedKeys,
    /// When mail is due, quotas and the day outcomes count for.
    clock: Clock,
}

/// How often a process prunes retained bodies and old quota counters.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
/// Bodies pruned per housekeeping pass at most, to keep its transaction short.
const PRUNE_BATCH: i64 = 10_000;

/// A running delivery loop; `stop` lets in-flight sends finish and records them.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    checks: JoinHandle<()>,
    notify: Option<JoinHandle<()>>,
    /// Stopped apart from the rest, after the last outcome is recorded: sends finishing
    /// during a stop may take half a lease, and others must not take their messages for a
    /// dead process's meanwhile.
    heartbeat_stop: watch::Sender<bool>,
    heartbeat: JoinHandle<()>,
    presence: Arc<Presence>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the delivery loop ended abnormally");
        }
        let _ = self.housekeeping.await;
        let _ = self.checks.await;
        if let Some(notify) = self.notify {
            let _ = notify.await;
        }
        let _ = self.heartbeat_stop.send(true);
        let _ = self.heartbeat.await;
        self.presence.leave().await;
    }
}

/// Runs the scheduled channel checks until stopped.
async fn run_checks(checker: Arc<Checker>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(checker.tick()) => {}
            _ = stopped.changed() => return,
        }
        checker.pass().await;
    }
}

/// A claimed message, routed, with everything its send needs.
struct Job {
    id: MessageId,
    record: MessageRecord,
    draft: MessageDraft,
    /// Each recipient's outcome so far, with the recipients suppressed since acceptance
    /// failed: an attempt leaves out everyone settled.
    recipients: Recipients,
    route: serde_json::Value,
    rerouted: bool,
    channel: ChannelId,
    tenant: TenantId,
    carrier: Carrier,
    /// How the message is signed, when its channel signs (with the tenant's active key for
    /// the From domain, or unsigned and why); `None`: the channel does not sign.
    dkim: Option<Signing>,
}

/// How a channel sends.
struct Carrier {
    kind: ChannelKind,
    transport: Transport,
    /// `credential_updated_at` in microseconds; `None` when the channel never had one.
    credential_version: Option<i64>,
    policy: SendPolicy,
    /// Whether we DKIM-sign what it sends (the shared pool; domain relays with `dkim_sign`).
    signs_dkim: bool,
}

enum Transport {
    Smtp {
        settings: SmtpSettings,
        credential: Option<SecretString>,
    },
    Gmail,
    Microsoft,
    /// A Microsoft channel with transport `smtp`: Exchange Online's SMTP submission, logged
    /// in as `mailbox` with an OAuth token (`AUTH XOAUTH2`).
    MicrosoftSmtp {
        mailbox: String,
    },
}

/// A claimed message with the router's decision.
struct Routed {
    id: MessageId,
    tenant: TenantId,
    sender: UserId,
    record: MessageRecord,
    draft: MessageDraft,
    decision: RouteDecision,
    /// The sender vouched it is transactional: suppressions do not apply.
    transactional: bool,
    recipients: Recipients,
}

fn has_limits(
    limits: &crate::domain::ChannelLimits,
    defaults: &crate::domain::pacing::SendingDefaults,
) -> bool {
    limits.per_minute.is_some()
        || limits.per_day_recipients.is_some()
        || crate::domain::pacing::Pacing::of(limits, defaults).is_paced()
}

/// What planning decided for a claimed message.
enum Step {
    /// Send it through its channel.
    Send(Box<Job>),
    /// Nothing to send now (held, deferred, failed): record this.
    Settled(Box<Done>),
}

fn settled(done: Done) -> Step {
    Step::Settled(Box::new(done))
}

/// What a worker hands to the recorder.
struct Done {
    finished: Finished,
    effect: Option<ChannelEffect>,
    /// For the metrics: the kind of channel tried (`none` when no channel was).
    channel_kind: &'static str,
}

impl Outbox {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        config: &crate::config::Config,
        google: Option<Arc<Google>>,
        microsoft: Option<Arc<Microsoft>>,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let gmail = google.map(|g| {
            Arc::new(GmailSender::new(
                g.clone(),
                AccessTokens::new(
                    store.clone(),
                    vault.clone(),
                    Provider::Google(g),
                    metrics.clone(),
                ),
            ))
        });
        let microsoft = microsoft.map(|m| {
            Arc::new(
                MicrosoftSender::new(
                    m.clone(),
                    AccessTokens::new(
                        store.clone(),
                        vault.clone(),
                        Provider::Microsoft(m),
                        metrics.clone(),
                    ),
                )
                .with_mailbox_limit(super::microsoft::MAILBOX_CONCURRENCY),
            )
        });
        let checker = Arc::new(Checker {
            store: store.clone(),
            vault: vault.clone(),
            policy: config.outbound.clone(),
            gmail: gmail.clone(),
            microsoft: microsoft.clone(),
            rule: config.delivery.failure_rule,
            probe_every: config.delivery.probe_interval,
            idle_after: config.delivery.check_idle_after,
            clock: config.clock.clone(),
        });
        let notifier = match Notifier::new(store.clone(), vault.clone(), config) {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                tracing::error!(error = %e, "notifications are off");
                None
            }
        };
        let worker_id = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let presence = Arc::new(Presence::new(
            store.clone(),
            &worker_id,
            config.delivery.heartbeat_interval,
            config.delivery.heartbeat_timeout,
        ));
        Self {
            checker,
            notifier,
            inner: Arc::new(Inner {
                gmail,
                microsoft,
                secret_warned: Mutex::new(None),
                store,
                vault,
                shared_pool: config.shared_pool.clone(),
                smtp: SmtpPool::new(config.outbound.clone(), DEFAULT_IDLE_TIMEOUT),
                settings: config.delivery.clone(),
                wake: Notify::new(),
                metrics,
                worker_id,
                presence,
                credentials: Mutex::new(HashMap::new()),
                dkim_keys: OpenedKeys::default(),
                clock: config.clock.clone(),
            }),
        }
    }

    /// Tells an idle worker that mail was accepted, so it does not wait for the next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Starts the delivery loop on the current runtime.
    pub fn start(&self) -> Running {
        let (stop, stopped) = watch::channel(false);
        let inner = self.inner.clone();
        let housekeeping = tokio::spawn(inner.clone().housekeeping(stopped.clone()));
        let checks = tokio::spawn(run_checks(self.checker.clone(), stopped.clone()));
        let notify = self
            .notifier
            .clone()
            .map(|n| tokio::spawn(n.run(stopped.clone())));
        let presence = inner.presence.clone();
        let (heartbeat_stop, heartbeat_stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(presence.clone().run(heartbeat_stopped));
        let task = tokio::spawn(async move { inner.run(stopped).await });
        Running {
            stop,
            task,
            housekeeping,
            checks,
            notify,
            heartbeat_stop,
            heartbeat,
            presence,
        }
    }
}

impl Inner {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let concurrency = self.settings.concurrency;
        let permits = Arc::new(Semaphore::new(concurrency));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
        let recorder = tokio::spawn(self.clone().record(done_rx));
        let mut sweep = tokio::time::interval(DEFAULT_IDLE_TIMEOUT);
        // Before the first claim, so that it takes over what a crashed predecessor left.
        self.presence.start().await;
        tracing::info!(worker = %self.worker_id, concurrency, "delivery started");
        while !*stopped.borrow() {
            let free = permits.available_permits().min(self.settings.batch);
            if free == 0 {
                tokio::select! {
                    permit = permits.clone().acquire_owned() => drop(permit),
                    _ = stopped.changed() => {}
                }
                continue;
            }
            let worker = self.worker_id.clone();
            let lease = i64::try_from(self.settings.lease.as_micros()).unwrap_or(i64::MAX);
            let presence = self.presence.clone();
            let now = self.clock.now_micros();
            let claimed = self
                .store
                .run(move |c| {
                    presence.beat_if_due(c)?;
                    delivery::claim(
                        c,
                        &worker,
                        free as i64,
                        lease,
                        presence.takeover_from(),
                        now,
                    )
                })
                .await;
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming messages failed; retrying");
                    self.idle(&mut stopped).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.idle(&mut stopped) => {}
                    _ = sweep.tick() => { self.smtp.close_idle().await; }
                }
                continue;
            }
            let planned = {
                let this = self.clone();
                self.store.run(move |c| Ok(this.plan(c, claimed))).await
            };
            let planned = match planned {
                Ok(planned) => planned,
                Err(e) => {
                    // The leases expire and another pass picks the messages up again.
                    tracing::warn!(error = %e, "routing claimed messages failed");
                    continue;
                }
            };
            for step in planned {
                match step {
                    Step::Send(job) => {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let this = self.clone();
                        let tx = done_tx.clone();
                        tokio::spawn(async move {
                            let done = this.send(job).await;
                            let _ = tx.send(done);
                            drop(permit);
                        });
                    }
                    Step::Settled(done) => {
                        let _ = done_tx.send(*done);
                    }
                }
            }
        }
        // Let in-flight sends finish and their outcomes be recorded.
        let _ = permits.acquire_many(concurrency as u32).await;
        drop(done_tx);
        let _ = recorder.await;
        tracing::info!(worker = %self.worker_id, "delivery stopped");
    }

    /// Retention and quota counters. Every process does it; the statements are idempotent.
    async fn housekeeping(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            self.warn_of_secret_expiry();
            tokio::select! {
                _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                _ = stopped.changed() => return,
            }
            let retention =
                i64::try_from(self.settings.body_retention.as_micros()).unwrap_or(i64::MAX);
            let clock = self.clock.clone();
            let result = self
                .store
                .run(move |conn| {
                    let now = clock.now_micros();
                    let bodies =
                        messages::prune_bodies(conn, now.saturating_sub(retention), PRUNE_BATCH)?;
                    let usage = quotas::prune(conn, now)?;
                    // Authorizations nobody finished, a day after they expired.
                    crate::store::oauth::prune_states(conn, now - 86_400_000_000)?;
                    // The delivery log of notifications, like message bodies.
                    crate::store::notifications::prune(conn, now.saturating_sub(retention))?;
                    // Admin UI sessions past their idle or absolute limit.
                    crate::store::sessions::prune(
                        conn,
                        crate::store::sessions::SessionLimits::DEFAULT,
                    )?;
                    // Heartbeat rows of processes found dead a while ago.
                    Presence::prune(conn, now)?;
                    // DKIM keys rotated out a week ago leave DNS.
                    crate::store::dkim_keys::retire_due(conn, Utc::now())?;
                    Ok((bodies, usage))
                })
                .await;
            match result {
                Ok((bodies, _)) if bodies > 0 => {
                    tracing::info!(bodies, "retention removed message bodies")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed; trying again later"),
            }
        }
    }

    /// At start and then daily: a Microsoft client secret that expires within 30 days (a
    /// warning) or has expired (an error) is the operator's to replace.
    fn warn_of_secret_expiry(&self) {
        let Some(microsoft) = &self.microsoft else {
            return;
        };
        let mut warned = self.secret_warned.lock().expect("secret warning");
        if warned.is_some_and(|at| at.elapsed() < Duration::from_secs(24 * 3600)) {
            return;
        }
        match microsoft.secret_expiry_notice(Utc::now()) {
            Some((true, text)) => {
                tracing::error!(alert = "oauth_client_secret_expired", "{text}")
            }
            Some((false, text)) => {
                tracing::warn!(alert = "oauth_client_secret_expiring", "{text}")
            }
            None => {}
        }
        *warned = Some(Instant::now());
    }

    async fn idle(&self, stopped: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(self.settings.poll_interval) => {}
            _ = stopped.changed() => {}
        }
    }

    /// Routes each claimed message and prepares its send, or says at once what happens to it
    /// (held, deferred for quota, failed). Runs on the blocking pool with one connection.
    fn plan(&self, conn: &mut DbConnection, claimed: Vec<MessageRecord>) -> Vec<Step> {
        let mut tenants: HashMap<TenantId, Result<TenantRoutes, String>> = HashMap::new();
        let mut senders: HashMap<(TenantId, UserId), Result<Sender, String>> = HashMap::new();
        // Route everything first, then take each limited channel's quota once for all the
        // messages routed to it: one short transaction per channel and pass, not per message.
        let mut routed: Vec<Result<Routed, Step>> = claimed
            .into_iter()
            .map(|record| self.route_one(conn, record, &mut tenants, &mut senders))
            .collect();
        self.leave_out_suppressed(conn, &mut routed);
        self.take_quotas(conn, &mut routed, &mut tenants, &senders);
        let mut signers = BatchSigners::new();
        routed
            .into_iter()
            .map(|r| match r {
                Ok(routed) => {
                    let routes = match tenants.get(&routed.tenant) {
                        Some(Ok(routes)) => routes,
                        _ => unreachable!("routed messages have their tenant's routes"),
                    };
                    self.plan_one(conn, routed, routes, &mut signers)
                }
                Err(step) => step,
            })
            .collect()
    }

    /// Takes the quota of every limited channel for the messages routed to it, in claim
    /// order; those that do not fit are routed again with the channel marked full (to a
    /// fallback, or deferred), taking their own quota one by one.
    fn take_quotas(
        &self,
        conn: &mut DbConnection,
        routed: &mut [Result<Routed, Step>],
        tenants: &mut HashMap<TenantId, Result<TenantRoutes, String>>,
        senders: &HashMap<(TenantId, UserId), Result<Sender, String>>,
    ) {
        let mut by_channel: HashMap<ChannelId, Vec<usize>> = HashMap::new();
        for (i, r) in routed.iter().enumerate() {
            if let Ok(m) = r
                && let Outcome::Send { channel, .. } = m.decision.outcome
                && let Some(Ok(routes)) = tenants.get(&m.tenant)
                && routes
                    .channels
                    .get(&channel)
                    .is_some_and(|c| has_limits(&c.spec.limits, &routes.defaults))
            {
                by_channel.entry(channel).or_default().push(i);
            }
        }
        for (channel, indices) in by_channel {
            let Some(Ok(first)) = routed.get(indices[0]) else {
                continue;
            };
            let tenant = first.tenant;
            let Some(Ok(routes)) = tenants.get_mut(&tenant) else {
                continue;
            };
            let limits = routes.channels[&channel].spec.limits.clone();
            let defaults = routes.defaults.clone();
            let recipients: Vec<i64> = indices
                .iter()
                .map(|&i| match &routed[i] {
                    Ok(m) => m.draft.recipient_count() as i64,
                    Err(_) => 0,
                })
                .collect();
            let now = self.clock.now_micros();
            let (fitted, until) = match quotas::reserve_many(
                conn,
                tenant,
                channel,
                &limits,
                &defaults,
                &recipients,
                now,
            ) {
                Ok(result) => result,
                Err(e) => {
                    for &i in &indices {
                        if let Ok(m) = &routed[i] {
                            let step = settled(
                                self.retry_later(&m.record, format!("reserving quota: {e}")),
                            );
                            routed[i] = Err(step);
                        }
                    }
                    continue;
                }
            };
            if fitted == indices.len() {
                continue;
            }
            // The channel's remaining messages are deferred to its until (or fall back): a
            // capped or closed mailbox never holds up another mailbox's mail in this pass.
            if let Some((until, limit)) = until {
                routes.exhaust(
                    channel,
                    DateTime::from_timestamp_micros(until).unwrap_or_default(),
                    limit,
                );
            }
            for &i in &indices[fitted..] {
                let Ok(m) = &mut routed[i] else { continue };
                let Some(Ok(sender)) = senders.get(&(m.tenant, m.sender)) else {
                    continue;
                };
                match self.route_within_quota(conn, routes, sender, &m.draft) {
                    Ok(decision) => m.decision = decision,
                    Err(e) => {
                        let step =
                            settled(self.retry_later(&m.record, format!("reserving quota: {e}")));
                        routed[i] = Err(step);
                    }
                }
            }
        }
    }

    /// Everything about a claimed message up to the router's decision (no quota taken), or
    /// what happens to it at once.
    fn route_one(
        &self,
        conn: &mut DbConnection,
        record: MessageRecord,
        tenants: &mut HashMap<TenantId, Result<TenantRoutes, String>>,
        senders: &mut HashMap<(TenantId, UserId), Result<Sender, String>>,
    ) -> Result<Routed, Step> {
        let fail = |record: &MessageRecord, reason: &'static str, error: String| {
            settled(done_without_attempt(
                record,
                None,
                false,
                Completion::Failed {
                    channel: None,
                    reason,
                    error,
                },
            ))
        };
        let (Ok(id), Ok(tenant), Ok(sender_id)) =
            (record.message_id(), record.tenant(), record.sender())
        else {
            tracing::error!(message_id = %record.id, "a message row does not parse");
            return Err(fail(
                &record,
                "corrupt",
                "the stored message is damaged".into(),
            ));
        };
        let routes = tenants.entry(tenant).or_insert_with(|| {
            TenantRoutes::load_for_delivery(conn, tenant, self.shared_pool.as_ref())
                .map_err(|e| e.to_string())
        });
        let routes = match routes {
            Ok(routes) => routes,
            Err(e) => {
                return Err(settled(
                    self.retry_later(&record, format!("loading routes: {e}")),
                ));
            }
        };
        let sender = senders
            .entry((tenant, sender_id))
            .or_insert_with(|| routes.sender(conn, sender_id).map_err(|e| e.to_string()));
        let sender = match sender {
            Ok(sender) => sender,
            Err(e) => {
                return Err(settled(
                    self.retry_later(&record, format!("loading the sender: {e}")),
                ));
            }
        };
        if sender.user.disabled {
            // An offboarded rep's queued mail waits; re-enabling the user releases it.
            return Err(settled(done_without_attempt(
                &record,
                None,
                false,
                Completion::Held {
                    channel: None,
                    reason: "sender_disabled",
                    error: None,
                },
            )));
        }
        let Some(body) = record.body.as_deref() else {
            return Err(fail(
                &record,
                "body_pruned",
                "the message body was removed by retention before it could be sent".into(),
            ));
        };
        let draft = serde_json::from_str::<StoredEnvelope>(&record.envelope)
            .map_err(|e| e.to_string())
            .and_then(|env| {
                let body: StoredBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
                content::load(&record.from_address, &record.subject, &env, &body)
                    .map(|draft| (draft, env.transactional))
                    .map_err(|e| format!("{}: {}", e.field, e.reason))
            });
        let (draft, transactional) = match draft {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(message_id = %record.id, error = %e, "a stored message does not parse");
                return Err(fail(
                    &record,
                    "corrupt",
                    "the stored message is damaged".into(),
                ));
            }
        };
        let decision = routes.route(sender, &draft.from.address, draft.recipient_count());
        let recipients = stored_recipients(&record);
        Ok(Routed {
            id,
            tenant,
            sender: sender_id,
            record,
            draft,
            decision,
            transactional,
            recipients,
        })
    }

    /// Leaves out the recipients the tenant suppressed since their message was accepted,
    /// with one lookup for the whole claimed batch, whatever its tenants (`suppressed`).
    fn leave_out_suppressed(&self, conn: &mut DbConnection, routed: &mut [Result<Routed, Step>]) {
        let mut wanted: HashMap<TenantId, HashSet<String>> = HashMap::new();
        for m in routed.iter().flatten().filter(|m| !m.transactional) {
            wanted
                .entry(m.tenant)
                .or_default()
                .extend(suppressed::suppressible(&m.draft));
        }
        if wanted.is_empty() {
            return;
        }
        let found = match suppressions::among_tenants(conn, &wanted) {
            Ok(found) => found,
            Err(e) => {
                // Never send to someone who may have unsubscribed: try again soon.
                for slot in routed.iter_mut() {
                    if let Ok(m) = slot
                        && !m.transactional
                    {
                        let step = settled(
                            self.retry_later(&m.record, format!("reading suppressions: {e}")),
                        );
                        *slot = Err(step);
                    }
                }
                return;
            }
        };
        if found.is_empty() {
            return;
        }
        for slot in routed.iter_mut() {
            let Ok(m) = slot else { continue };
            if m.transactional {
                continue;
            }
            let earlier = m.record.channel_id.as_deref().and_then(|c| c.parse().ok());
            if let Left::Nobody(completion) =
                suppressed::leave_out(&m.draft, m.tenant, &mut m.recipients, &found, earlier)
            {
                let done = Done {
                    finished: Finished {
                        id: m.id,
                        tenant: m.tenant,
                        recipient_count: m.record.recipient_count,
                        route: None,
                        rerouted: false,
                        attempt: None,
                        completion,
                        recipients: Some(m.recipients.clone()),
                    },
                    effect: None,
                    channel_kind: "none",
                };
                *slot = Err(settled(done));
            }
        }
    }

    /// From the decision (quota taken) to a job or an outcome.
    fn plan_one(
        &self,
        conn: &mut DbConnection,
        routed: Routed,
        routes: &TenantRoutes,
        signers: &mut BatchSigners,
    ) -> Step {
        let Routed {
            id,
            tenant,
            record,
            draft,
            decision,
            recipients,
            ..
        } = routed;
        let route = decision_json(&decision);
        let rerouted = record.route.as_deref().is_none_or(|stored| {
            serde_json::from_str::<serde_json::Value>(stored)
                .ok()
                .as_ref()
                != Some(&route)
        });
        let channel = match decision.outcome {
            Outcome::Send { channel, .. } => channel,
            Outcome::Hold { channel, reason } => {
                return settled(done_without_attempt(
                    &record,
                    Some(route),
                    rerouted,
                    Completion::Held {
                        channel,
                        reason: reason.code(),
                        error: None,
                    },
                ));
            }
            Outcome::Defer {
                channel,
                until,
                limit,
            } => {
                return settled(done_without_attempt(
                    &record,
                    Some(route),
                    rerouted,
                    Completion::Deferred {
                        channel: Some(channel),
                        until: until.timestamp_micros(),
                        reason: limit.code(),
                        error: Some(routes.describe_block(channel, limit, until)),
                    },
                ));
            }
            Outcome::Reject(reason) => {
                return settled(done_without_attempt(
                    &record,
                    Some(route),
                    rerouted,
                    Completion::Failed {
                        channel: None,
                        reason: reason.code(),
                        error: reason.describe(),
                    },
                ));
            }
        };
        let carrier = match self.carrier(conn, routes, tenant, channel) {
            Ok(carrier) => carrier,
            Err(e) => return settled(self.retry_later(&record, e)),
        };
        let dkim = if carrier.signs_dkim {
            let domain = draft.from.address.domain();
            match self
                .dkim_keys
                .signer(conn, &self.vault, signers, tenant, domain)
            {
                Ok(signing) => Some(signing),
                Err(e) => return settled(self.retry_later(&record, e)),
            }
        } else {
            None
        };
        Step::Send(Box::new(Job {
            id,
            record,
            draft,
            recipients,
            route,
            rerouted,
            channel,
            tenant,
            carrier,
            dkim,
        }))
    }

    /// How the chosen channel sends: its transport, credential and send-time policy.
    fn carrier(
        &self,
        conn: &mut DbConnection,
        routes: &TenantRoutes,
        tenant: TenantId,
        channel: ChannelId,
    ) -> Result<Carrier, String> {
        if channel == ChannelId::shared_pool() {
            let pool = self
                .shared_pool
                .as_ref()
                .ok_or("the shared pool is no longer configured")?;
            return Ok(Carrier {
                kind: ChannelKind::SharedPool,
                transport: Transport::Smtp {
                    settings: pool.settings.clone(),
                    credential: pool.credential.clone(),
                },
                credential_version: None,
                policy: SendPolicy::default(),
                // The platform's relay signs nothing for the tenants: we do.
                signs_dkim: true,
            });
        }
        let c = routes
            .channels
            .get(&channel)
            .ok_or_else(|| format!("channel {channel} is gone"))?;
        let credential_version = c.credential_updated_at.map(|t| t.timestamp_micros());
        let mut policy = SendPolicy {
            reply_to: c.spec.reply_to.clone(),
            bcc_archive: c.spec.bcc_archive.clone(),
            return_path: Some(c.spec.return_path.clone()),
            login: c
                .spec
                .smtp
                .as_ref()
                .and_then(|s| s.username.as_deref())
                .and_then(|u| EmailAddress::parse(u).ok()),
            bcc_in_headers: false,
        };
        let transport = match c.spec.kind {
            ChannelKind::Gmail => {
                // The Gmail API takes its recipients from the headers (it removes Bcc
                // before delivery).
                policy.bcc_in_headers = true;
                Transport::Gmail
            }
            ChannelKind::Microsoft if c.spec.microsoft_transport == MicrosoftTransport::Smtp => {
                // An SMTP envelope, as for any SMTP channel; Exchange sets the return path.
                let mailbox = c
                    .spec
                    .from_address
                    .clone()
                    .ok_or_else(|| format!("channel {channel} has no mailbox address"))?;
                policy.login = Some(mailbox.clone());
                Transport::MicrosoftSmtp {
                    mailbox: mailbox.to_string(),
                }
            }
            ChannelKind::Microsoft => {
                // sendMail with MIME takes its recipients from the headers, like Gmail.
                policy.bcc_in_headers = true;
                Transport::Microsoft
            }
            _ => Transport::Smtp {
                settings: c
                    .spec
                    .smtp
                    .clone()
                    .ok_or_else(|| format!("channel {channel} has no SMTP settings"))?,
                credential: self
                    .credential(conn, tenant, channel, credential_version)
                    .map_err(|e| format!("opening the credential: {e}"))?,
            },
        };
        Ok(Carrier {
            kind: c.spec.kind,
            transport,
            credential_version,
            policy,
            signs_dkim: c.spec.signs_dkim(),
        })
    }

    /// Routes, and takes the chosen channel's quota; a channel found full is marked so for
    /// the rest of the pass and the message routed again (to a fallback, or deferred).
    fn route_within_quota(
        &self,
        conn: &mut DbConnection,
        routes: &mut TenantRoutes,
        sender: &Sender,
        draft: &MessageDraft,
    ) -> Result<RouteDecision, StoreError> {
        let recipients = draft.recipient_count();
        loop {
            let decision = routes.route(sender, &draft.from.address, recipients);
            let Outcome::Send { channel, .. } = decision.outcome else {
                return Ok(decision);
            };
            let Some(limits) = routes.channels.get(&channel).map(|c| c.spec.limits.clone()) else {
                return Ok(decision);
            };
            let defaults = routes.defaults.clone();
            let now = self.clock.now_micros();
            match quotas::reserve(
                conn,
                routes.tenant.id,
                channel,
                &limits,
                &defaults,
                recipients as i64,
                now,
            )? {
                Ok(()) => return Ok(decision),
                Err((until, limit)) => {
                    routes.exhaust(
                        channel,
                        DateTime::from_timestamp_micros(until).unwrap_or_default(),
                        limit,
                    );
                }
            }
        }
    }

    fn credential(
        &self,
        conn: &mut DbConnection,
        tenant: TenantId,
        channel: ChannelId,
        version: Option<i64>,
    ) -> Result<Option<SecretString>, StoreError> {
        let key = (channel, version.unwrap_or(0));
        if let Some(hit) = self.credentials.lock().expect("credential cache").get(&key) {
            return Ok(hit.clone());
        }
        let opened = channels::credential(conn, &self.vault, tenant, channel)?;
        let mut cache = self.credentials.lock().expect("credential cache");
        cache.retain(|(c, _), _| *c != channel);
        cache.insert(key, opened.clone());
        Ok(opened)
    }

    /// Something on our side failed (database, vault): try again soon, without counting it
    /// against the message.
    fn retry_later(&self, record: &MessageRecord, error: String) -> Done {
        tracing::warn!(message_id = %record.id, error = %error, "cannot prepare a message; deferring");
        let until = self.clock.now()
            + chrono::Duration::from_std(self.settings.retry.base).unwrap_or_default();
        done_without_attempt(
            record,
            None,
            false,
            Completion::Deferred {
                channel: None,
                until: until.timestamp_micros(),
                reason: "internal_error",
                error: Some(error),
            },
        )
    }

    async fn send(&self, job: Box<Job>) -> Done {
        let Job {
            id,
            record,
            draft,
            recipients,
            route,
            rerouted,
            channel,
            tenant,
            carrier,
            dkim,
        } = *job;
        let accepted_at = DateTime::from_timestamp_micros(record.created_at).unwrap_or_default();
        // Recipients already sent or refused for good in an earlier attempt (or suppressed
        // since) are left out: a retry never goes again to those who have the mail.
        let failed = |error: String| {
            tracing::error!(message_id = %record.id, error = %error, "rendering failed");
            done_without_attempt(
                &record,
                Some(route.clone()),
                rerouted,
                Completion::Failed {
                    channel: Some(channel),
                    reason: "render_failed",
                    error,
                },
            )
        };
        let mut rendered = match render(
            &draft,
            &record.message_id_header,
            accepted_at,
            &carrier.policy,
        ) {
            Ok(rendered) => rendered,
            Err(e) => return failed(e.to_string()),
        };
        // Last: the signature covers the bytes exactly as the transport sends them, so
        // nothing may change the message after this.
        let dkim_note = dkim
            .as_ref()
            .map(|signing| signing.note(draft.from.address.domain()));
        if let Some(Signing::With(signer)) = dkim {
            rendered.bytes = sign(signer, rendered.bytes, &record).await;
        }
        let envelope = match remaining(&rendered.envelope, &recipients.settled()) {
            Ok(envelope) => envelope,
            Err(e) => return failed(e),
        };
        let attempted: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        let started = Instant::now();
        // Set when a retry found the message already in the mailbox's Sent Items.
        let mut reconciled = false;
        // Within the lease, so an outcome is always recorded by the worker that owns it.
        let deadline = self.settings.lease / 2;
        let sending = async {
            match &carrier.transport {
                Transport::Smtp {
                    settings,
                    credential,
                } => {
                    let target = Target {
                        channel,
                        credential_version: carrier.credential_version.unwrap_or(0),
                        settings,
                        credential: credential.as_ref(),
                    };
                    self.smtp.send(&target, &envelope, &rendered.bytes).await
                }
                // The Gmail API answers for the message as a whole: a recipient it cannot
                // reach comes back later as a bounce, not as a refusal here.
                Transport::Gmail => match &self.gmail {
                    Some(gmail) => {
                        gmail
                            .send(tenant, channel, &rendered.bytes)
                            .await
                            .map(|reply| Transaction {
                                recipients: Vec::new(),
                                delivered: Some(reply),
                            })
                    }
                    None => Err(SendFailure::new(
                        FailureClass::Temporary,
                        None,
                        "Gmail is not configured on this instance (SWITCHBOARD_GOOGLE_CLIENT_ID)",
                    )),
                },
                // Graph answers for the message as a whole, like the Gmail API.
                Transport::Microsoft => match &self.microsoft {
                    Some(microsoft) => microsoft
                        .send(
                            tenant,
                            channel,
                            &rendered.bytes,
                            &record.message_id_header,
                            record.attempts > 1,
                        )
                        .await
                        .map(|delivered| {
                            reconciled = delivered.reconciled;
                            Transaction {
                                recipients: Vec::new(),
                                delivered: Some(delivered.reply),
                            }
                        }),
                    None => Err(microsoft_unconfigured()),
                },
                // SMTP answers recipient by recipient, as for any SMTP channel.
                Transport::MicrosoftSmtp { mailbox } => match &self.microsoft {
                    Some(microsoft) => {
                        microsoft
                            .send_smtp(
                                &self.smtp,
                                tenant,
                                channel,
                                mailbox,
                                &envelope,
                                &rendered.bytes,
                            )
                            .await
                    }
                    None => Err(microsoft_unconfigured()),
                },
            }
        };
        let result = tokio::time::timeout(deadline, sending)
            .await
            .unwrap_or_else(|_| {
                // Each SMTP command has its own, shorter deadline; this one bounds the whole
                // send within the lease and does not know the step it cut.
                Err(SendFailure::new(
                    FailureClass::Network,
                    None,
                    format!("the send did not finish within {} s", deadline.as_secs()),
                ))
            });
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let is_shared_pool = carrier.kind == ChannelKind::SharedPool;
        let ctx = FailureContext {
            channel,
            tenant,
            credential_version: carrier.credential_version,
            is_shared_pool,
            attempts: u32::try_from(record.attempts).unwrap_or(u32::MAX),
            accepted_at,
            now: self.clock.now(),
        };
        let (attempt, completion, effect, recipients) = match result {
            Ok(transaction) => {
                let (completion, effect, recipients) = after_transaction(
                    &transaction,
                    recipients,
                    &attempted,
                    &ctx,
                    &self.settings.retry,
                    &mut rand::rng(),
                );
                let (class, code, reply) = match &transaction.delivered {
                    Some(reply) => ("ok", None, reply.clone()),
                    None => nobody_accepted(&transaction),
                };
                let attempt = Attempt {
                    channel,
                    class,
                    code,
                    reply,
                    duration_ms,
                    recipients: transaction.recipients,
                    possibly_delivered: false,
                    dkim: dkim_note,
                    reconciled,
                };
                (attempt, completion, effect, recipients)
            }
            Err(failure) => {
                if failure.possibly_delivered && matches!(carrier.transport, Transport::Microsoft) {
                    tracing::warn!(
                        message_id = %record.id,
                        channel_id = %channel,
                        error = %failure.message,
                        "Microsoft may have taken the message without saying so: the next attempt looks in Sent Items before sending"
                    );
                } else if failure.possibly_delivered {
                    tracing::warn!(
                        message_id = %record.id,
                        channel_id = %channel,
                        error = %failure.message,
                        "the connection broke after the message was sent and before the server answered: it may have been delivered; the retry may deliver it twice"
                    );
                }
                let attempt = Attempt {
                    channel,
                    class: class_name(failure.class),
                    code: failure.code,
                    reply: failure.message.clone(),
                    duration_ms,
                    recipients: Vec::new(),
                    possibly_delivered: failure.possibly_delivered,
                    dkim: dkim_note,
                    reconciled: false,
                };
                let (completion, effect) =
                    after_failure(&failure, &ctx, &self.settings.retry, &mut rand::rng());
                if is_shared_pool && failure.class == FailureClass::Auth {
                    tracing::error!(error = %failure.message, "the shared pool's relay refused our credential: fix SWITCHBOARD_SHARED_POOL_URL");
                }
                let (completion, recipients) =
                    settle_failed_recipients(completion, recipients, &attempted, failure.code);
                (attempt, completion, effect, recipients)
            }
        };
        self.metrics
            .attempt(carrier.kind.as_str(), attempt.class, started.elapsed());
        Done {
            finished: Finished {
                id,
                tenant,
                recipient_count: record.recipient_count,
                route: Some(route),
                rerouted,
                attempt: Some(attempt),
                completion,
                recipients,
            },
            effect,
            channel_kind: carrier.kind.as_str(),
        }
    }

    /// Records outcomes as they arrive, many per transaction. A failing database is retried:
    /// an unrecorded outcome would otherwise be resent when its lease expires.
    async fn record(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Done>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < COMPLETE_BATCH {
                match rx.try_recv() {
                    Ok(done) => batch.push(done),
                    Err(_) => break,
                }
            }
            let kinds: Vec<&'static str> = batch.iter().map(|d| d.channel_kind).collect();
            let (finished, effects): (Vec<Finished>, Vec<Option<ChannelEffect>>) =
                batch.into_iter().map(|d| (d.finished, d.effect)).unzip();
            let effects: Vec<ChannelEffect> = effects.into_iter().flatten().collect();
            let finished = Arc::new(finished);
            let effects = Arc::new(effects);
            let mut delay = Duration::from_millis(100);
            loop {
                let (worker, f, e) = (self.worker_id.clone(), finished.clone(), effects.clone());
                let rule = self.settings.failure_rule;
                let now = self.clock.now_micros();
                match self
                    .store
                    .run(move |c| delivery::complete(c, &worker, &f, &e, &rule, now))
                    .await
                {
                    Ok(report) => {
                        for (done, kind) in finished.iter().zip(&kinds) {
                            let (outcome, class) = metric_labels(done);
                            self.metrics.outcome(kind, outcome, class);
                        }
                        for (channel, transition) in &report.transitions {
                            log_transition(*channel, *transition);
                        }
                        for channel in &report.paused {
                            tracing::warn!(channel_id = %channel, "hard bounces crossed the threshold: channel paused");
                        }
                        if report.lost_leases > 0 {
                            tracing::warn!(
                                count = report.lost_leases,
                                "outcomes not recorded: the lease had passed to another worker"
                            );
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "recording outcomes failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

/// The message with a DKIM-Signature in front, or as it was when it cannot be signed (never
/// a reason not to send it). An RSA signature is a millisecond of CPU: on the blocking pool,
/// so that the SMTP sessions on this worker thread keep their deadlines meanwhile.
async fn sign(signer: DkimSigner, message: Vec<u8>, record: &MessageRecord) -> Vec<u8> {
    let message = Arc::new(message);
    let shared = message.clone();
    let field = tokio::task::spawn_blocking(move || signer.sign(&shared, Utc::now())).await;
    // The task has ended and dropped its reference: this takes the bytes back, no copy.
    let message = Arc::try_unwrap(message).unwrap_or_else(|shared| (*shared).clone());
    match field {
        Ok(Ok(mut field)) => {
            field.extend_from_slice(&message);
            field
        }
        Ok(Err(e)) => {
            tracing::warn!(message_id = %record.id, error = %e, "DKIM signing failed; sending unsigned");
            message
        }
        Err(e) => {
            tracing::error!(message_id = %record.id, error = %e, "DKIM signing did not finish; sending unsigned");
            message
        }
    }
}

/// One line per status change of a channel, for whoever reads the logs.
fn log_transition(channel: ChannelId, transition: Transition) {
    match transition {
        Transition::NeedsReauth(cause) => tracing::warn!(
            channel_id = %channel,
            cause = cause.as_str(),
            "the server refused the channel's credential: channel needs re-authentication; its mail is held"
        ),
        Transition::Failing(kind) => tracing::warn!(
            channel_id = %channel,
            cause = kind.failing_cause(),
            "the channel failed repeatedly: marked failing; its mail waits or falls back while it is checked"
        ),
        Transition::Recovered => tracing::info!(channel_id = %channel, "the channel works again"),
    }
}

fn done_without_attempt(
    record: &MessageRecord,
    route: Option<serde_json::Value>,
    rerouted: bool,
    completion: Completion,
) -> Done {
    Done {
        finished: Finished {
            // A row whose id does not parse matches no row when recorded: it stays claimed
            // and is logged each time its lease expires, never silently dropped.
            id: record
                .message_id()
                .unwrap_or_else(|_| MessageId::generate()),
            // Likewise a tenant that does not parse: its figures go nowhere.
            tenant: record.tenant().unwrap_or_else(|_| TenantId::generate()),
            recipient_count: record.recipient_count,
            route,
            rerouted,
            attempt: None,
            completion,
            recipients: None,
        },
        effect: None,
        channel_kind: "none",
    }
}

/// The outcome and failure class a finished message counts as in the metrics.
fn metric_labels(finished: &Finished) -> (&'static str, &'static str) {
    let tried = finished.attempt.as_ref().map(|a| a.class);
    match &finished.completion {
        Completion::Sent { .. } => ("sent", "ok"),
        Completion::PartiallySent { .. } => ("partially_sent", "ok"),
        Completion::Deferred { reason, .. } => (
            "deferred",
            tried.unwrap_or(
                if crate::domain::pacing::PaceLimit::parse(reason).is_some() {
                    "quota"
                } else {
                    "internal"
                },
            ),
        ),
        Completion::Held { .. } => ("held", tried.unwrap_or("policy")),
        Completion::Failed { reason, .. } => (
            "failed",
            tried.unwrap_or(match *reason {
                "no_route" | "too_many_recipients" | "recipient_suppressed" => "policy",
                _ => "internal",
            }),
        ),
    }
}

fn microsoft_unconfigured() -> SendFailure {
    SendFailure::new(
        FailureClass::Temporary,
        None,
        "Microsoft is not configured on this instance (SWITCHBOARD_MICROSOFT_CLIENT_ID)",
    )
}
