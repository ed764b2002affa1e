//! Each recipient's own outcome: sent, refused for good, or waiting to be tried again; and
//! what a message's status is once they are counted. Pure: the outbox applies it after each
//! attempt and stores the result beside the message.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Where one recipient of a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    /// Not tried yet, or the last attempt failed as a whole (the message's status says why).
    Pending,
    /// The server took the message for this recipient.
    Sent,
    /// The server refused this recipient for now (4xx): it is tried again, alone.
    Deferred,
    /// The server refused this recipient for good (5xx), or it waited too long.
    Failed,
}

impl RecipientStatus {
    /// Sent or failed: never tried again.
    pub fn is_settled(self) -> bool {
        matches!(self, RecipientStatus::Sent | RecipientStatus::Failed)
    }
}

/// One recipient as the API shows it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    pub address: String,
    pub status: RecipientStatus,
    /// The server's reply code for this recipient, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The server's reply (or why we did not ask it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Why Switchboard itself left this recipient out, as a stable code (`suppressed`);
    /// none when a server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a server answered to one recipient in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    /// A 4xx: ask again later.
    Deferred,
    /// A 5xx, or refused before asking (an address the server cannot take).
    Refused,
}

/// One recipient's answer in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RcptOutcome {
    pub address: String,
    pub verdict: Verdict,
    pub code: Option<u16>,
    pub reply: String,
}

/// The recipients of a message with their states, in envelope order. Empty means none has an
/// outcome of its own yet: every recipient shares the message's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recipients(Vec<RecipientState>);

/// How many recipients stand where, once an attempt is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    pub failed: usize,
    /// Pending or deferred: still to be tried.
    pub waiting: usize,
}

impl Tally {
    /// Nobody is left to try.
    pub fn is_final(&self) -> bool {
        self.waiting == 0
    }

    /// Some recipients have the message and some never will.
    pub fn is_partial(&self) -> bool {
        self.is_final() && self.sent > 0 && self.failed > 0
    }
}

/// The `reason` of a recipient left out because its address is suppressed.
pub const SUPPRESSED: &str = "suppressed";

fn key(address: &str) -> String {
    address.to_ascii_lowercase()
}

impl Recipients {
    pub fn new(states: Vec<RecipientState>) -> Self {
        Self(states)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn states(&self) -> &[RecipientState] {
        &self.0
    }

    /// Addresses already sent or failed (lower case): an attempt leaves them out.
    pub fn settled(&self) -> HashSet<String> {
        self.0
            .iter()
            .filter(|r| r.status.is_settled())
            .map(|r| key(&r.address))
            .collect()
    }

    /// Counts an attempt at `attempted` (the envelope's recipients this time) whose server
    /// answered each as in `outcomes`; `delivered` is the reply after the message data when
    /// the server took it for the accepted ones. A recipient accepted at RCPT whose data was
    /// then not taken stays pending (the message's failure decides for it). No outcomes at
    /// all means a provider that answers for the message as a whole (the Gmail API): every
    /// recipient shares `delivered`.
    pub fn record(
        &mut self,
        attempted: &[String],
        outcomes: &[RcptOutcome],
        delivered: Option<&str>,
    ) {
        for address in attempted {
            let outcome = outcomes
                .iter()
                .find(|o| o.address.eq_ignore_ascii_case(address));
            let verdict = match outcome {
                Some(o) => Some(o.verdict),
                None if outcomes.is_empty() => Some(Verdict::Accepted),
                None => None,
            };
            let (code, reply) = outcome.map_or((None, None), |o| (o.code, Some(o.reply.clone())));
            let (status, code, reply) = match verdict {
                Some(Verdict::Accepted) if delivered.is_some() => {
                    (RecipientStatus::Sent, None, delivered.map(str::to_owned))
                }
                Some(Verdict::Deferred) => (RecipientStatus::Deferred, code, reply),
                Some(Verdict::Refused) => (RecipientStatus::Failed, code, reply),
                Some(Verdict::Accepted) | None => (RecipientStatus::Pending, code, reply),
            };
            self.set(address, status, code, reply);
        }
    }

    /// Every recipient still waiting fails with this reason (a permanent refusal of the whole
    /// message, or too many attempts).
    pub fn fail_waiting(&mut self, attempted: &[String], code: Option<u16>, reason: &str) {
        for address in attempted {
            let known = self
                .0
                .iter()
                .find(|r| r.address.eq_ignore_ascii_case(address));
            if known.is_none_or(|r| !r.status.is_settled()) {
                self.set(
                    address,
                    RecipientStatus::Failed,
                    code,
                    Some(reason.to_owned()),
                );
            }
        }
    }

    /// A recipient Switchboard does not send to because the tenant suppresses the address:
    /// failed for good, with the reason `suppressed`, unless the message already reached them.
    pub fn suppress(&mut self, address: &str) {
        let known = self
            .0
            .iter()
            .find(|r| r.address.eq_ignore_ascii_case(address));
        if known.is_some_and(|r| r.status.is_settled()) {
            return;
        }
        self.put(RecipientState {
            address: address.to_owned(),
            status: RecipientStatus::Failed,
            code: None,
            reply: Some(
                "not sent: the address is on the tenant's suppression list (it unsubscribed, \
                 bounced or was added by an admin)"
                    .to_owned(),
            ),
            reason: Some(SUPPRESSED.to_owned()),
        });
    }

    fn set(
        &mut self,
        address: &str,
        status: RecipientStatus,
        code: Option<u16>,
        reply: Option<String>,
    ) {
        self.put(RecipientState {
            address: address.to_owned(),
            status,
            code,
            reply,
            reason: None,
        });
    }

    fn put(&mut self, state: RecipientState) {
        let address = state.address.clone();
        match self
            .0
            .iter_mut()
            .find(|r| r.address.eq_ignore_ascii_case(&address))
        {
            Some(existing) => *existing = state,
            None => self.0.push(state),
        }
    }

    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for r in &self.0 {
            match r.status {
                RecipientStatus::Sent => tally.sent += 1,
                RecipientStatus::Failed => tally.failed += 1,
                RecipientStatus::Pending | RecipientStatus::Deferred => tally.waiting += 1,
            }
        }
        tally
    }

    /// The states to show for a message that has none of its own: everyone shares `shared`.
    pub fn shared(addresses: &[String], shared: RecipientStatus) -> Self {
        Self(
            addresses
                .iter()
                .map(|a| RecipientState {
                    address: a.clone(),
                    status: shared,
                    code: None,
                    reply: None,
                    reason: None,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(address: &str, verdict: Verdict, code: u16) -> RcptOutcome {
        RcptOutcome {
            address: address.into(),
            verdict,
            code: Some(code),
            reply: format!("{code} reply for {address}"),
        }
    }

    fn list(addresses: &[&str]) -> Vec<String> {
        addresses.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn one_refused_and_one_deferred_leave_the_accepted_sent() {
        let attempted = list(&["a@x.test", "b@x.test", "c@x.test"]);
        let mut r = Recipients::default();
        r.record(
            &attempted,
            &[
                outcome("a@x.test", Verdict::Accepted, 250),
                outcome("B@x.test", Verdict::Refused, 550),
                outcome("c@x.test", Verdict::Deferred, 451),
            ],
            Some("250 queued"),
        );
        assert_eq!(
            r.tally(),
            Tally {
                sent: 1,
                failed: 1,
                waiting: 1
            }
        );
        // The retry goes to c only, and a second success settles the message as partial.
        let settled = r.settled();
        let retry: Vec<String> = attempted
            .iter()
            .filter(|a| !settled.contains(&a.to_ascii_lowercase()))
            .cloned()
            .collect();
        assert_eq!(retry, list(&["c@x.test"]));
        r.record(
            &retry,
            &[outcome("c@x.test", Verdict::Accepted, 250)],
            Some("250 again"),
        );
        let tally = r.tally();
        assert!(tally.is_final() && tally.is_partial());
        assert_eq!(r.states()[1].code, Some(550));
        assert_eq!(r.states()[2].reply.as_deref(), Some("250 again"));
    }

    #[test]
    fn accepted_but_data_refused_stays_pending_for_the_message_to_decide() {
        let attempted = list(&["a@x.test"]);
        let mut r = Recipients::default();
        r.record(
            &attempted,
            &[outcome("a@x.test", Verdict::Accepted, 250)],
            None,
        );
        assert_eq!(r.tally().waiting, 1);
        r.fail_waiting(&attempted, Some(554), "554 rejected");
        assert_eq!(
            r.tally(),
            Tally {
                sent: 0,
                failed: 1,
                waiting: 0
            }
        );
    }

    #[test]
    fn failing_the_rest_keeps_those_already_sent() {
        let attempted = list(&["a@x.test", "b@x.test"]);
        let mut r = Recipients::default();
        r.record(
            &attempted,
            &[
                outcome("a@x.test", Verdict::Accepted, 250),
                outcome("b@x.test", Verdict::Deferred, 451),
            ],
            Some("250 ok"),
        );
        r.fail_waiting(&attempted, None, "expired");
        assert_eq!(r.states()[0].status, RecipientStatus::Sent);
        assert_eq!(r.states()[1].status, RecipientStatus::Failed);
        assert!(r.tally().is_partial());
    }

    #[test]
    fn a_suppressed_recipient_fails_unless_it_already_has_the_mail() {
        let attempted = list(&["a@x.test", "b@x.test"]);
        let mut r = Recipients::default();
        r.record(
            &attempted,
            &[
                outcome("a@x.test", Verdict::Accepted, 250),
                outcome("b@x.test", Verdict::Deferred, 451),
            ],
            Some("250 ok"),
        );
        r.suppress("A@x.test");
        r.suppress("B@X.test");
        assert_eq!(r.states()[0].status, RecipientStatus::Sent);
        assert_eq!(r.states()[0].reason, None);
        assert_eq!(r.states()[1].status, RecipientStatus::Failed);
        assert_eq!(r.states()[1].reason.as_deref(), Some(SUPPRESSED));
        assert!(r.tally().is_partial());
        // Stored and read back with its reason; older rows without one still parse.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Recipients>(&json).unwrap(), r);
        let old: Recipients =
            serde_json::from_str(r#"[{"address":"a@x.test","status":"sent"}]"#).unwrap();
        assert_eq!(old.states()[0].reason, None);
    }

    #[test]
    fn outcomes_round_trip_as_a_json_array() {
        let attempted = list(&["a@x.test", "b@x.test"]);
        let mut r = Recipients::default();
        r.record(
            &attempted,
            &[
                outcome("a@x.test", Verdict::Accepted, 250),
                outcome("b@x.test", Verdict::Accepted, 250),
            ],
            Some("250 ok"),
        );
        assert_eq!(r.tally().sent, 2);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with('['), "{json}");
        assert_eq!(serde_json::from_str::<Recipients>(&json).unwrap(), r);
    }

    #[test]
    fn a_provider_answering_for_the_whole_message_settles_everyone_together() {
        let attempted = list(&["a@x.test", "b@x.test"]);
        let mut taken = Recipients::default();
        taken.record(&attempted, &[], Some("id 18c4"));
        assert_eq!(taken.tally().sent, 2);
        assert_eq!(taken.states()[1].reply.as_deref(), Some("id 18c4"));
        let mut not_taken = Recipients::default();
        not_taken.record(&attempted, &[], None);
        assert_eq!(not_taken.tally().waiting, 2);
    }
}
