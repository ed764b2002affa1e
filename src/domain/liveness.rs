//! Whether another `serve` process sharing the database is still alive, judged from its
//! heartbeat row and, on the same machine, its process id. Pure: the caller says which pids
//! run. Imports nothing of ours.

/// What one process row says about its process.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub id: &'a str,
    pub pid: i64,
    /// Where `pid` names a process (boot, pid namespace, user); `None` when unknown.
    pub pid_scope: Option<&'a str>,
    /// Microseconds since the epoch, by the peer's clock.
    pub heartbeat_at: i64,
}

/// The process doing the judging.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    pub id: &'a str,
    pub pid_scope: Option<&'a str>,
    /// Now, in microseconds since the epoch.
    pub now: i64,
    /// A heartbeat older than this many microseconds is stale.
    pub timeout: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// No heartbeat for longer than the timeout: stopped, lost, or paused that long.
    Silent,
    /// On this machine and its pid no longer runs: it exited.
    Exited,
}

impl Verdict {
    pub fn is_dead(self) -> bool {
        self != Verdict::Alive
    }

    /// For logs and the `lease_expired` event.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Alive => "alive",
            Verdict::Silent => "heartbeat_stale",
            Verdict::Exited => "process_exited",
        }
    }
}

/// The oldest heartbeat that still counts as alive; the claim uses the same cut-off.
pub fn stale_before(now: i64, timeout: i64) -> i64 {
    now.saturating_sub(timeout)
}

/// The rule. A stale heartbeat is dead wherever the process ran. A fresh one is alive,
/// unless the process ran on this machine (same pid scope) and its pid is gone: a
/// predecessor killed and restarted is dead at once. A pid reused by another program looks
/// alive and only delays the verdict to the heartbeat timeout; so does our own pid (it may be
/// a second delivery loop in this very process, as in tests). `running` answers `None` when
/// it cannot tell.
pub fn judge(peer: &Peer, me: &Judge, running: impl Fn(i64) -> Option<bool>) -> Verdict {
    if peer.id == me.id {
        return Verdict::Alive;
    }
    if peer.heartbeat_at < stale_before(me.now, me.timeout) {
        return Verdict::Silent;
    }
    let same_machine = matches!((peer.pid_scope, me.pid_scope), (Some(a), Some(b)) if a == b);
    if same_machine && running(peer.pid) == Some(false) {
        return Verdict::Exited;
    }
    Verdict::Alive
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;
    const NOW: i64 = 1_000 * SECOND;

    fn me() -> Judge<'static> {
        Judge {
            id: "100-me",
            pid_scope: Some("linux:boot-a:pid:[1]"),
            now: NOW,
            timeout: 30 * SECOND,
        }
    }

    fn peer(pid: i64, scope: Option<&'static str>, age: i64) -> Peer<'static> {
        Peer {
            id: "200-peer",
            pid,
            pid_scope: scope,
            heartbeat_at: NOW - age,
        }
    }

    #[test]
    fn a_fresh_heartbeat_is_alive_and_a_stale_one_dead_wherever_it_ran() {
        let running = |_| Some(true);
        for scope in [
            Some("linux:boot-a:pid:[1]"),
            Some("linux:boot-b:pid:[1]"),
            None,
        ] {
            assert_eq!(judge(&peer(200, scope, 0), &me(), running), Verdict::Alive);
            assert_eq!(
                judge(&peer(200, scope, 30 * SECOND), &me(), running),
                Verdict::Alive,
                "exactly the timeout is still alive"
            );
            assert_eq!(
                judge(&peer(200, scope, 30 * SECOND + 1), &me(), running),
                Verdict::Silent
            );
        }
    }

    #[test]
    fn a_gone_pid_on_this_machine_is_dead_at_once() {
        let gone = |pid| Some(pid != 200);
        let here = peer(200, Some("linux:boot-a:pid:[1]"), 0);
        assert_eq!(judge(&here, &me(), gone), Verdict::Exited);
        // Our own pid under another id: another delivery loop in this process, alive.
        let sibling = peer(100, Some("linux:boot-a:pid:[1]"), 0);
        assert_eq!(
            judge(&sibling, &me(), |pid| Some(pid == 100)),
            Verdict::Alive
        );
    }

    #[test]
    fn pids_elsewhere_or_unknown_say_nothing() {
        let gone = |_| Some(false);
        // Another boot (another machine, or before a reboot), another pid namespace (a
        // container), or a scope nobody could read: the pid means nothing here.
        for scope in [
            Some("linux:boot-b:pid:[1]"),
            Some("linux:boot-a:pid:[2]"),
            None,
        ] {
            assert_eq!(judge(&peer(200, scope, 0), &me(), gone), Verdict::Alive);
        }
        let unknown_here = Judge {
            pid_scope: None,
            ..me()
        };
        assert_eq!(
            judge(&peer(200, None, 0), &unknown_here, gone),
            Verdict::Alive
        );
        assert_eq!(
            judge(&peer(200, Some("linux:boot-a:pid:[1]"), 0), &me(), |_| None),
            Verdict::Alive,
            "a pid we cannot check is left to the heartbeat"
        );
    }

    #[test]
    fn a_reused_pid_delays_the_verdict_to_the_heartbeat_timeout() {
        let reused = |_| Some(true);
        let fresh = peer(200, Some("linux:boot-a:pid:[1]"), 5 * SECOND);
        assert_eq!(judge(&fresh, &me(), reused), Verdict::Alive);
        let stale = peer(200, Some("linux:boot-a:pid:[1]"), 31 * SECOND);
        assert_eq!(judge(&stale, &me(), reused), Verdict::Silent);
    }

    #[test]
    fn a_process_never_judges_itself_dead() {
        let mut own = peer(100, Some("linux:boot-a:pid:[1]"), 3_600 * SECOND);
        own.id = "100-me";
        assert_eq!(judge(&own, &me(), |_| Some(false)), Verdict::Alive);
    }
}
