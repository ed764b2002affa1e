//! This process's heartbeat row: registered when delivery starts, renewed every interval,
//! removed at a clean stop; and the look-out for processes that died, whose leased messages
//! the claim then takes over. May import `store`, `domain` and `outbox::host`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::host;
use crate::domain::liveness::{self, Judge, Peer};
use crate::store::processes::{self, Registration};
use crate::store::{DbConnection, Store, StoreError};

/// Rows of processes found dead are kept this long (for whoever looks into what happened),
/// then pruned by housekeeping once none of their messages is still leased.
const KEEP_DEAD_FOR: Duration = Duration::from_secs(3600);

/// This process as a row in `processes`, and the timing that makes it alive.
pub struct Presence {
    store: Store,
    me: Registration,
    interval: Duration,
    timeout: Duration,
    /// When the heartbeat was last written (microseconds, wall clock: other processes compare
    /// it with theirs); 0 before registration.
    last_beat: AtomicI64,
    /// The last look found a process dead or silent, whose messages the claim may take over.
    /// Until then the claim skips that statement: measured on PostgreSQL, running it on every
    /// pass cost about a tenth of the end-to-end rate.
    someone_died: AtomicBool,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Presence {
    pub fn new(store: Store, worker_id: &str, interval: Duration, timeout: Duration) -> Self {
        Self {
            store,
            me: Registration {
                id: worker_id.to_owned(),
                hostname: host::hostname(),
                pid: i64::from(std::process::id()),
                pid_scope: host::pid_scope(),
                started_at: now_micros(),
            },
            interval,
            timeout,
            last_beat: AtomicI64::new(0),
            someone_died: AtomicBool::new(false),
        }
    }

    /// The oldest heartbeat of a live process.
    pub fn stale_before(&self) -> i64 {
        liveness::stale_before(now_micros(), micros(self.timeout))
    }

    /// For the claim: the oldest heartbeat of a live process when the last look found a
    /// process dead or silent (its messages are taken over), else `None`. A process that dies
    /// is found by the next look, within one heartbeat interval.
    pub fn takeover_from(&self) -> Option<i64> {
        self.someone_died
            .load(Ordering::Relaxed)
            .then(|| self.stale_before())
    }

    /// Registers this process and marks the dead ones, so that a process restarted after a
    /// crash takes its predecessor's messages over in its first claim.
    pub async fn start(self: &Arc<Self>) {
        let this = self.clone();
        let result = self
            .store
            .run(move |c| {
                this.register(c)?;
                this.sweep(c)
            })
            .await;
        match result {
            Ok(()) => tracing::info!(
                process = %self.me.id,
                hostname = %self.me.hostname,
                pid = self.me.pid,
                "process registered; its heartbeat tells the others it is alive"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "registering the process failed; trying again at the next heartbeat")
            }
        }
    }

    fn register(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        let now = now_micros();
        processes::register(conn, &self.me, now)?;
        self.last_beat.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Renews the heartbeat. A row that lapsed (this process was paused for longer than the
    /// timeout, or the database was out of reach that long) may have lost its messages to
    /// another process: the lease-guarded recording refuses our outcomes for those, and we
    /// register again before claiming anything more.
    pub fn beat(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        let now = now_micros();
        if processes::beat(conn, &self.me.id, now, self.stale_before())? {
            self.last_beat.store(now, Ordering::Relaxed);
            return Ok(());
        }
        if self.last_beat.load(Ordering::Relaxed) != 0 {
            tracing::warn!(
                process = %self.me.id,
                timeout = ?self.timeout,
                "this process's heartbeat lapsed (paused or cut off from the database for longer than SWITCHBOARD_HEARTBEAT_TIMEOUT): other processes may have taken its messages over, and it does not record outcomes for those; registering again"
            );
        }
        self.register(conn)
    }

    /// Renews the heartbeat if it is due, so that nothing is claimed under a row others may
    /// already take for dead (after a pause the claim loop may run before the heartbeat task).
    pub fn beat_if_due(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        let last = self.last_beat.load(Ordering::Relaxed);
        if now_micros().saturating_sub(last) >= micros(self.interval) {
            self.beat(conn)?;
        }
        Ok(())
    }

    /// Marks the processes that died: silent for longer than the timeout, or gone from this
    /// machine. The claim takes over the messages of both kinds; marking names them in the
    /// logs once and tells a paused process, when it wakes, that it was given up.
    fn sweep(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        let judge = Judge {
            id: &self.me.id,
            pid_scope: self.me.pid_scope.as_deref(),
            now: now_micros(),
            timeout: micros(self.timeout),
        };
        for row in processes::not_found_dead(conn)? {
            let peer = Peer {
                id: &row.id,
                pid: row.pid,
                pid_scope: row.pid_scope.as_deref(),
                heartbeat_at: row.heartbeat_at,
            };
            let verdict = liveness::judge(&peer, &judge, host::pid_running);
            if verdict.is_dead()
                && processes::mark_dead(conn, &row.id, row.heartbeat_at, judge.now)?
            {
                tracing::warn!(
                    process = %row.id,
                    hostname = %row.hostname,
                    pid = row.pid,
                    cause = verdict.as_str(),
                    "a process stopped without a clean shutdown; its messages are taken over now"
                );
            }
        }
        let dead = processes::count_by_state(conn, self.stale_before())?
            .into_iter()
            .any(|(state, n)| state == "dead" && n > 0);
        self.someone_died.store(dead, Ordering::Relaxed);
        Ok(())
    }

    /// Beats and looks for dead processes every interval until stopped.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stopped.changed() => return,
            }
            let this = self.clone();
            if let Err(e) = self
                .store
                .run(move |c| {
                    this.beat(c)?;
                    this.sweep(c)
                })
                .await
            {
                tracing::warn!(error = %e, "renewing the heartbeat failed; trying again");
            }
        }
    }

    /// Removes this process's row at a clean stop, once its outcomes are recorded (see
    /// `processes::leave`).
    pub async fn leave(&self) {
        let id = self.me.id.clone();
        if let Err(e) = self
            .store
            .run(move |c| processes::leave(c, &id, now_micros()))
            .await
        {
            tracing::warn!(error = %e, "removing the process's heartbeat row failed; others will find it silent");
        }
    }

    /// Housekeeping: forgets processes found dead a while ago.
    pub fn prune(conn: &mut DbConnection, now: i64) -> Result<usize, StoreError> {
        processes::prune(conn, now.saturating_sub(micros(KEEP_DEAD_FOR)))
    }
}
