//! The emails owners get about their channels: what happened, what to do, and that their mail
//! is safe. Written from the event's payload, so the email says what the webhook says.

use serde_json::Value;

/// Subject and plain-text body of the email for an event, or `None` for events that are not
/// emailed.
pub fn render(payload: &Value, public_url: &str) -> Option<(String, String)> {
    let kind = payload["type"].as_str()?;
    let data = &payload["data"];
    let channel = &data["channel"];
    let name = channel["name"].as_str().unwrap_or("a send channel");
    let address = channel["from_address"]
        .as_str()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    let (subject, what) = match kind {
        "channel.needs_reauth" => (
            format!("Action needed: \"{name}\" cannot send"),
            format!(
                "The send channel \"{name}\"{address} stopped sending: {}.\n\n\
                 The server said: {}\n\n\
                 Mail for this channel is held, not lost. It goes out as soon as the \
                 channel works again (or through another channel, if your organisation \
                 allows fallback).",
                data["advice"]
                    .as_str()
                    .unwrap_or("the credential must be replaced"),
                data["reply"].as_str().unwrap_or("(no reply recorded)"),
            ),
        ),
        "channel.failing" => (
            format!("\"{name}\" is failing"),
            format!(
                "The send channel \"{name}\"{address} failed {} times in a row ({}).\n\n\
                 Last error: {}\n\n\
                 Mail for this channel waits (or goes through another channel, if your \
                 organisation allows fallback). Switchboard keeps trying the channel and \
                 sends the waiting mail as soon as it works; you need not do anything \
                 unless it stays broken.",
                data["failures"].as_u64().unwrap_or(0),
                data["cause"].as_str().unwrap_or("errors").replace('_', " "),
                data["last_error"].as_str().unwrap_or("(none recorded)"),
            ),
        ),
        "channel.recovered" => (
            format!("\"{name}\" is sending again"),
            format!(
                "The send channel \"{name}\"{address} works again.{}",
                match data["released"].as_u64() {
                    Some(n) if n > 0 =>
                        format!(" The {n} message(s) that waited are on their way."),
                    _ => String::new(),
                }
            ),
        ),
        "channel.paused" => (
            format!("\"{name}\" is paused"),
            format!(
                "The send channel \"{name}\"{address} was paused ({}): {}.{}\n\n\
                 Mail for this channel is held, not lost (or goes through another channel, if \
                 your organisation allows fallback). It goes out when the channel resumes: \
                 an admin resumes it on the channel's page or with \
                 POST /v1/channels/{}/resume.",
                data["cause"].as_str().unwrap_or("paused").replace('_', " "),
                data["advice"].as_str().unwrap_or("an admin resumes it"),
                pause_figures(data),
                channel["id"].as_str().unwrap_or("{id}"),
            ),
        ),
        "channel.resumed" => (
            format!("\"{name}\" is sending again"),
            format!(
                "The send channel \"{name}\"{address} was resumed{}.{}",
                match data["by"].as_str() {
                    Some("system") => " (the provider's block ended)".to_owned(),
                    _ => " by an admin".to_owned(),
                },
                match data["released"].as_u64() {
                    Some(n) if n > 0 =>
                        format!(" The {n} message(s) that waited are on their way."),
                    _ => String::new(),
                }
            ),
        ),
        "domain.lapsed" => {
            let domain = &data["domain"];
            let name = domain["domain"].as_str().unwrap_or("a sending domain");
            let record = &domain["record"];
            return Some((
                format!("[Switchboard] Action needed: sending as {name} stopped"),
                format!(
                    "Hello,\n\nSwitchboard can no longer find the record that proves your \
                     organisation controls {name}, so no mail is sent as {name} until it is \
                     back.\n\nPublish this TXT record in the DNS of {name}:\n\n  name:  {}\n  \
                     value: {}\n\nThe last check said: {}\n\nMail from {name} waits, it is \
                     not lost: it goes out as soon as the record is found again (Switchboard \
                     looks every hour, or at once from the Domains page).\n\nOpen Switchboard: \
                     {public_url}/ui/domains\n\nYou get this email because you administer \
                     your organisation's Switchboard.\n-- Switchboard\n",
                    record["name"].as_str().unwrap_or("?"),
                    record["value"].as_str().unwrap_or("?"),
                    data["last_check"]["message"]
                        .as_str()
                        .unwrap_or("(none recorded)"),
                ),
            ));
        }
        _ => return None,
    };
    let text = format!(
        "Hello,\n\n{what}\n\nOpen Switchboard: {public_url}\n\n\
         You get this email because you own this channel or administer its team.\n\
         -- Switchboard\n"
    );
    Some((format!("[Switchboard] {subject}"), text))
}

/// The bounce figures of a bounce pause, in words; nothing for other causes.
fn pause_figures(data: &Value) -> String {
    let figures = &data["figures"];
    match (figures["hard_bounces"].as_u64(), figures["sends"].as_u64()) {
        (Some(bounced), Some(sends)) => format!(
            "\n\n{bounced} of {sends} recipients in the last {} day(s) were hard bounces ({:.1} %; the threshold is {} %).",
            figures["window_days"].as_u64().unwrap_or(0),
            figures["rate_percent"].as_f64().unwrap_or(0.0),
            figures["threshold_percent"].as_f64().unwrap_or(0.0),
        ),
        _ => match data["until"].as_str() {
            Some(until) => format!(
                "\n\nThe provider's block ends at {until}; the channel resumes by itself then."
            ),
            None => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_needs_reauth_email_names_the_channel_the_advice_and_that_mail_is_held() {
        let payload = json!({
            "type": "channel.needs_reauth",
            "data": {
                "advice": "the server refused the password: enter the new one",
                "reply": "535 5.7.8 Authentication failed",
                "channel": {"name": "Dana's Office 365", "from_address": "dana@acme.test"}
            }
        });
        let (subject, text) = render(&payload, "https://switchboard.acme.test").unwrap();
        assert!(subject.contains("Dana's Office 365"), "{subject}");
        for part in [
            "dana@acme.test",
            "enter the new one",
            "535 5.7.8",
            "held, not lost",
            "https://switchboard.acme.test",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }

    #[test]
    fn a_pause_email_says_why_with_the_figures_or_when_the_block_ends() {
        let bounced = json!({
            "type": "channel.paused",
            "data": {
                "cause": "bounce_rate",
                "advice": "too many recipients were refused as unknown (hard bounces)",
                "figures": {"sends": 60, "hard_bounces": 4, "rate_percent": 6.67,
                            "threshold_percent": 3.0, "window_days": 7},
                "channel": {"id": "c1", "name": "Dana's mailbox", "from_address": "dana@acme.test"}
            }
        });
        let (subject, text) = render(&bounced, "https://switchboard.acme.test").unwrap();
        assert!(
            subject.contains("\"Dana's mailbox\" is paused"),
            "{subject}"
        );
        for part in [
            "paused (bounce rate)",
            "4 of 60 recipients in the last 7 day(s) were hard bounces (6.7 %; the threshold is 3 %)",
            "held, not lost",
            "POST /v1/channels/c1/resume",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let limit = json!({
            "type": "channel.paused",
            "data": {"cause": "send_limit_reached", "until": "2026-12-03T10:00:00Z",
                     "channel": {"name": "Dana"}}
        });
        let (_, text) = render(&limit, "x").unwrap();
        assert!(text.contains("ends at 2026-12-03T10:00:00Z"), "{text}");
        let resumed = json!({
            "type": "channel.resumed",
            "data": {"by": "system", "released": 3, "channel": {"name": "Dana"}}
        });
        let (subject, text) = render(&resumed, "x").unwrap();
        assert!(subject.contains("sending again"), "{subject}");
        assert!(
            text.contains("the provider's block ended") && text.contains("The 3 message(s)"),
            "{text}"
        );
    }

    #[test]
    fn events_that_are_not_emailed_render_nothing() {
        assert!(render(&json!({"type": "message.failed", "data": {}}), "x").is_none());
        assert!(render(&json!({}), "x").is_none());
    }
}
