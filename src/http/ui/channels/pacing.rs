//! The channel page's pacing form: the daily cap, a warm-up ramp, the gap between sends and
//! a sending window, for whoever may manage the channel (any kind: a Gmail or Microsoft
//! mailbox too). Saving is the API's own `PATCH /v1/channels/{id}` with those `limits` keys
//! only, so its checks (and a connected mailbox's provider ceiling) apply unchanged.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::UiError;
use super::super::forms::non_empty;
use super::super::layout;
use super::super::session::{self, UiPost, UiSession};
use super::super::window_fields::{self, WindowFields};
use crate::domain::SendChannel;
use crate::http::AppState;
use crate::http::channels::{self as api, UpdateChannelRequest, require_manage};
use crate::http::error::ApiError;

/// The form as posted: every box as typed; an empty group means "none".
#[derive(Debug, Default, Deserialize)]
struct PacingForm {
    per_day_messages: Option<String>,
    #[serde(rename = "warmup.start")]
    warmup_start: Option<String>,
    #[serde(rename = "warmup.step")]
    warmup_step: Option<String>,
    #[serde(rename = "warmup.target")]
    warmup_target: Option<String>,
    #[serde(rename = "min_gap.min_seconds")]
    gap_min: Option<String>,
    #[serde(rename = "min_gap.max_seconds")]
    gap_max: Option<String>,
    #[serde(flatten)]
    window: WindowFields,
}

fn invalid(field: &str, detail: &str) -> ApiError {
    ApiError::InvalidMessage {
        code: "invalid_limits",
        field: field.to_owned(),
        detail: detail.to_owned(),
    }
}

/// A whole number from a box, `None` when it is empty.
fn number(raw: &Option<String>, field: &str) -> Result<Option<u32>, ApiError> {
    non_empty(raw)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| invalid(field, "must be a whole number, or empty"))
        })
        .transpose()
}

impl PacingForm {
    /// The `limits` keys this form sets, as the API takes them (`null` clears one).
    fn limits(&self) -> Result<Value, ApiError> {
        let mut limits = Map::new();
        limits.insert(
            "per_day_messages".into(),
            json!(number(&self.per_day_messages, "limits.per_day_messages")?),
        );
        let ramp = [
            number(&self.warmup_start, "limits.warmup.start")?,
            number(&self.warmup_step, "limits.warmup.step")?,
            number(&self.warmup_target, "limits.warmup.target")?,
        ];
        limits.insert(
            "warmup".into(),
            match ramp {
                [None, None, None] => Value::Null,
                [Some(start), Some(step), Some(target)] => {
                    json!({"start": start, "step": step, "target": target})
                }
                _ => {
                    return Err(invalid(
                        "limits.warmup",
                        "a warm-up ramp needs its start, its daily step and its target; leave all three empty for none",
                    ));
                }
            },
        );
        let gap = [
            number(&self.gap_min, "limits.min_gap.min_seconds")?,
            number(&self.gap_max, "limits.min_gap.max_seconds")?,
        ];
        limits.insert(
            "min_gap".into(),
            match gap {
                [None, None] => Value::Null,
                [Some(min), max] => json!({"min_seconds": min, "max_seconds": max.unwrap_or(min)}),
                [None, Some(_)] => {
                    return Err(invalid(
                        "limits.min_gap.min_seconds",
                        "a gap needs its shortest length (the longest may stay empty for a fixed gap)",
                    ));
                }
            },
        );
        if let Some(windows) = self.window.windows_json() {
            limits.insert("windows".into(), windows);
        }
        Ok(Value::Object(limits))
    }
}

/// The form, for those who may change the channel.
pub(super) fn panel(session: &UiSession, channel: &SendChannel) -> Markup {
    if require_manage(&session.caller, channel.spec.owner).is_err() {
        return html! {};
    }
    let limits = &channel.spec.limits;
    let text = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let ramp = limits.warmup.as_ref();
    let gap = limits.min_gap.as_ref();
    html! {
        section.panel aria-labelledby="pacing-form-heading" {
            h2 id="pacing-form-heading" { "Pacing" }
            p.muted {
                "How fast this mailbox may send: the providers judge mail one mailbox at a time. Empty boxes mean no limit of that kind (docs/pacing.md says what each does)."
            }
            form method="post" action={"/ui/channels/" (channel.id) "/pacing"} {
                (layout::csrf(session))
                fieldset {
                    legend { "Daily cap" }
                    label { "Messages per rolling 24 hours "
                        input type="number" min="1" name="per_day_messages" value=(text(limits.per_day_messages));
                    }
                }
                fieldset {
                    legend { "Warm-up ramp" }
                    label { "Start at " input type="number" min="1" name="warmup.start" value=(text(ramp.map(|r| r.start))); " a day" }
                    label { ", add " input type="number" min="1" name="warmup.step" value=(text(ramp.map(|r| r.step))); " a day" }
                    label { ", up to " input type="number" min="1" name="warmup.target" value=(text(ramp.map(|r| r.target))); }
                    @if let Some(r) = ramp { p.muted { "Started on " (r.started_on.format("%-d %b %Y")) "." } }
                }
                fieldset {
                    legend { "Gap between two sends" }
                    label { "At least " input type="number" min="1" name="min_gap.min_seconds" value=(text(gap.map(|g| g.min_seconds))); " s" }
                    label { ", at most " input type="number" min="1" name="min_gap.max_seconds" value=(text(gap.map(|g| g.max_seconds))); " s (a random gap in between)" }
                }
                (window_fields::fieldset(limits.windows.as_ref()))
                button type="submit" { "Save pacing" }
            }
        }
    }
}

async fn save(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<PacingForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let result = async {
        let request: UpdateChannelRequest =
            serde_json::from_value(json!({ "limits": form.limits()? }))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        api::update(&session.caller, &state, &id, request).await
    }
    .await;
    match result {
        Ok(channel) => Ok(session::redirect_with_flash(
            &req,
            &format!("/ui/channels/{}", channel.id),
            "Pacing saved.",
        )),
        Err(e) => super::detail::refused(&session, &state, &id, e).await,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/pacing", web::post().to(save));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(fields: &[(&str, &str)]) -> Result<Value, ApiError> {
        let encoded = serde_urlencoded::to_string(fields).unwrap();
        let form: PacingForm = serde_urlencoded::from_str(&encoded).unwrap();
        form.limits()
    }

    #[test]
    fn empty_boxes_clear_and_a_window_takes_its_ticked_days() {
        let limits = posted(&[
            ("per_day_messages", ""),
            ("warmup.start", ""),
            ("window.time_zone", "Europe/Berlin"),
            ("mon", "on"),
            ("fri", "on"),
            ("window.start", "09:00"),
            ("window.end", "17:30"),
            ("min_gap.min_seconds", "60"),
        ])
        .unwrap();
        assert_eq!(limits["per_day_messages"], Value::Null);
        assert_eq!(limits["warmup"], Value::Null);
        assert_eq!(
            limits["min_gap"],
            json!({"min_seconds": 60, "max_seconds": 60})
        );
        assert_eq!(
            limits["windows"],
            json!({"time_zone": "Europe/Berlin", "windows": [{"days": ["mon", "fri"], "start": "09:00", "end": "17:30"}]})
        );
        // Without the window's boxes (several windows): windows are left alone.
        let untouched = posted(&[("per_day_messages", "40")]).unwrap();
        assert!(untouched.get("windows").is_none());
        assert_eq!(untouched["per_day_messages"], 40);
    }

    #[test]
    fn a_half_filled_ramp_or_a_word_for_a_number_is_refused_naming_the_field() {
        let err = posted(&[("warmup.start", "20")]).unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidMessage { ref field, .. } if field == "limits.warmup")
        );
        let err = posted(&[("per_day_messages", "lots")]).unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidMessage { ref field, .. } if field == "limits.per_day_messages")
        );
    }
}
