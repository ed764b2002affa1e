//! A routing decision as people read it. The value is the API's own JSON (`decision_json`,
//! as `POST /v1/route/explain` answers and a message's `route` keeps it), so the page shows
//! the same codes and sentences a script gets; this module only adds what to do about them.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::http::ui::labels::ChannelLabels;
use crate::http::ui::layout;

#[derive(Debug, Deserialize)]
pub struct Decision {
    /// `send`, `hold`, `defer` or `reject`.
    pub outcome: String,
    pub channel_id: Option<String>,
    #[serde(default)]
    pub fell_back: bool,
    /// Why it is not sent now (`no_route`, `channel_unavailable`, …), and in words.
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Whether the chosen channel would DKIM-sign it, when it is one Switchboard signs for.
    #[serde(default)]
    pub dkim: Option<DkimNote>,
}

#[derive(Debug, Deserialize)]
pub struct DkimNote {
    pub signed: bool,
    pub selector: Option<String>,
    /// Why not, in words.
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Candidate {
    pub channel_id: String,
    pub kind: String,
    pub tier: String,
    pub accepted: bool,
    pub reason: String,
    pub detail: String,
}

impl Decision {
    /// Reads the API's decision; `None` for a value of another shape (never expected).
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(value.clone()).ok()
    }

    fn chosen(&self) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.accepted)
    }

    /// One line for a table: where it goes, or why it does not.
    pub fn summary(&self) -> String {
        match self.outcome.as_str() {
            "send" => {
                let tier = self.chosen().map_or("a channel", |c| tier_words(&c.tier));
                if self.fell_back {
                    format!("fell back to {tier}")
                } else {
                    format!("selected: {tier}")
                }
            }
            "hold" => format!("held: {}", self.detail.as_deref().unwrap_or("waiting")),
            "defer" => format!(
                "over quota, waits until {}",
                self.until
                    .map(|u| u.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "the next window".into())
            ),
            _ => format!(
                "no channel: {}",
                self.detail.as_deref().unwrap_or("cannot be routed")
            ),
        }
    }
}

/// The tier a candidate was considered in, for a person.
pub fn tier_words(tier: &str) -> &'static str {
    match tier {
        "mailbox" => "the sender's own mailbox",
        "team" => "a team channel",
        "tenant" => "a tenant-wide channel",
        "shared_pool" => "the shared pool",
        _ => "a channel",
    }
}

/// What someone can do about a decision that does not send now.
fn what_to_do(decision: &Decision, labels: &ChannelLabels) -> Markup {
    match decision.reason.as_deref() {
        Some("no_route") => html! {
            "Connect the sender's mailbox for this address on the "
            a href="/ui/channels" { "Channels" } " page, or ask an admin to add a domain channel "
            "for its domain."
        },
        Some("domain_not_verified") => html! {
            "Mail from a domain goes out only once the organisation has proven the domain: an admin "
            "claims it and publishes its TXT record on the " a href="/ui/domains" { "Domains" } " page. "
            "New mail from it is refused until then; mail already queued waits and is sent when it is verified. "
            "The sender's own connected mailbox needs no proof when its provider checks the sender (Gmail, Microsoft 365, Outlook.com, Yahoo)."
        },
        Some("too_many_recipients") => html! {
            "Send to fewer recipients per message, or raise the channel's per-message limit."
        },
        Some("sending_disabled") => html! {
            "An admin switches sending back on in the tenant's "
            a href="/ui/settings" { "settings" } "."
        },
        Some("team_sending_disabled") => html! {
            "An admin switches sending back on for the sender's team."
        },
        Some("channel_unavailable") => html! {
            @if let Some(id) = &decision.channel_id {
                "Mail waits for " (labels.link(id)) ". "
            }
            "Once the channel works again (reconnect it, or replace its credential) the waiting "
            "mail is sent. An admin may instead set the fallback policy to fallback in the "
            a href="/ui/settings" { "settings" } ", so mail goes through the next channel."
        },
        Some("quota_exhausted") => html! {
            "Nothing to do: the message is sent when the channel's quota window opens again."
        },
        _ => html! {},
    }
}

/// Whether a decision is a question asked now (route explain) or one a message's route
/// records; only the wording differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    WouldBe,
    Was,
}

/// The decision in full: the channel that carries the message and why, or the problem and
/// what to do; then every candidate in routing order with its verdict.
pub fn render(decision: &Decision, labels: &ChannelLabels, tense: Tense) -> Markup {
    let refused_now = decision.reason.as_deref() == Some("domain_not_verified");
    let heading = match (decision.outcome.as_str(), tense) {
        ("send", Tense::WouldBe) => "Would be sent",
        ("hold", Tense::WouldBe) if refused_now => "Cannot be sent",
        ("send", Tense::Was) => "Routed",
        ("hold", Tense::WouldBe) => "Would be held",
        ("hold", Tense::Was) => "Held",
        ("defer", Tense::WouldBe) => "Would wait for quota",
        ("defer", Tense::Was) => "Waiting for quota",
        (_, Tense::WouldBe) => "Cannot be sent",
        (_, Tense::Was) => "No channel could carry it",
    };
    html! {
        div.decision data-outcome=(decision.outcome) {
            @if decision.outcome == "send" {
                div.notice.success role="status" {
                    p {
                        strong { (heading) } " through "
                        @if let Some(id) = &decision.channel_id { (labels.link_with_status(id)) }
                    }
                    p {
                        @if let Some(chosen) = decision.chosen() {
                            @if decision.fell_back {
                                "The sender's own channel cannot send now, and the fallback policy "
                                "sends through the next channel: " (tier_words(&chosen.tier)) "."
                            } @else {
                                "It is the first usable channel for this From address: "
                                (tier_words(&chosen.tier)) "."
                            }
                        }
                    }
                    @if let Some(dkim) = &decision.dkim {
                        p {
                            @if dkim.signed {
                                "DKIM-signed by Switchboard with selector "
                                code { (dkim.selector.as_deref().unwrap_or_default()) } "."
                            } @else {
                                "Sent " (dkim.detail.as_deref().unwrap_or("not DKIM-signed")) "."
                            }
                        }
                    }
                }
            } @else {
                div class={"notice " @if decision.outcome == "reject" { "error" } @else { "warning" }} role="status" {
                    p {
                        strong { (heading) } ": "
                        (decision.detail.as_deref().unwrap_or("no channel may carry it now"))
                        @if let Some(code) = &decision.reason { " (" code { (code) } ")" }
                        @if let Some(until) = decision.until { ", until " (layout::when(Some(until))) }
                        "."
                    }
                    p { (what_to_do(decision, labels)) }
                }
            }
            h3 { "Channels considered, in order" }
            @if decision.candidates.is_empty() {
                p.muted { "None: the decision was made before any channel was looked at." }
            } @else {
                ol.stages.candidates {
                    @for c in &decision.candidates {
                        li class=(if c.accepted { "passed" } else { "skipped" }) {
                            (labels.link_with_status(&c.channel_id))
                            span.muted { " — " (tier_words(&c.tier)) ", " (c.kind.replace('_', " ")) }
                            br;
                            @if c.accepted {
                                strong { "Selected" } ": " (c.detail)
                            } @else {
                                strong { "Skipped" } ": " (c.detail) " (" code { (c.reason) } ")"
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_say_where_mail_goes_or_why_not() {
        let sent = Decision::from_json(&json!({
            "outcome": "send", "channel_id": "c1", "fell_back": true, "reason": null,
            "detail": null, "until": null, "reasons": [],
            "candidates": [{"channel_id": "c1", "kind": "smtp", "tier": "tenant",
                            "accepted": true, "reason": "selected", "detail": "x"}]
        }))
        .unwrap();
        assert_eq!(sent.summary(), "fell back to a tenant-wide channel");
        let rejected = Decision::from_json(&json!({
            "outcome": "reject", "channel_id": null, "reason": "no_route",
            "detail": "no channel may send as this From address", "candidates": []
        }))
        .unwrap();
        assert_eq!(
            rejected.summary(),
            "no channel: no channel may send as this From address"
        );
    }
}
