//! One sending window as form fields (a time zone, the days, from and to), shared by the
//! channel page's pacing form and the settings page's tenant defaults. More than one window
//! is shown, not edited: the API changes those.

use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::forms::{checkbox_value, non_empty};
use crate::domain::pacing::SendingWindows;

const DAYS: [(&str, &str); 7] = [
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
];

/// The window's boxes as posted. `time_zone` is absent when the page showed several
/// windows (they are left as they are), empty to remove the window.
#[derive(Debug, Default, Deserialize)]
pub struct WindowFields {
    #[serde(rename = "window.time_zone")]
    pub time_zone: Option<String>,
    #[serde(rename = "window.start")]
    pub start: Option<String>,
    #[serde(rename = "window.end")]
    pub end: Option<String>,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub mon: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub tue: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub wed: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub thu: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub fri: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub sat: bool,
    #[serde(default, deserialize_with = "checkbox_value")]
    pub sun: bool,
}

impl WindowFields {
    /// The `windows` value the API takes: `None` to leave them, `null` to remove them.
    pub fn windows_json(&self) -> Option<Value> {
        self.time_zone.as_ref()?;
        let ticked = [
            self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun,
        ];
        let days: Vec<&str> = DAYS
            .iter()
            .zip(ticked)
            .filter(|(_, on)| *on)
            .map(|((code, _), _)| *code)
            .collect();
        Some(match non_empty(&self.time_zone) {
            None => Value::Null,
            Some(zone) => json!({"time_zone": zone, "windows": [{
                "days": days,
                "start": non_empty(&self.start).unwrap_or_default(),
                "end": non_empty(&self.end).unwrap_or_default(),
            }]}),
        })
    }
}

/// The fieldset for `windows` as they stand.
pub fn fieldset(windows: Option<&SendingWindows>) -> Markup {
    let one = windows.and_then(|w| (w.windows.len() == 1).then(|| &w.windows[0]));
    let days = one.map(|w| w.day_codes()).unwrap_or_default();
    html! {
        fieldset {
            legend { "Sending window" }
            @match (windows, one) {
                (Some(w), None) => {
                    p { (w.describe()) }
                    p.muted { "Several windows: change them through the API." }
                }
                _ => {
                    label { "Time zone "
                        input type="text" name="window.time_zone" placeholder="Europe/Berlin" value=(windows.map(|w| w.time_zone.name()).unwrap_or_default());
                    }
                    div.days {
                        @for (code, label) in DAYS {
                            label { input type="checkbox" name=(code) checked[days.contains(&code)]; " " (label) }
                        }
                    }
                    label { "From " input type="time" name="window.start" value=(one.map(|w| w.start_text()).unwrap_or_default()); }
                    label { " to " input type="time" name="window.end" value=(one.map(|w| w.end_text()).unwrap_or_default()); }
                    p.muted { "An empty time zone means no window: mail may leave at any hour." }
                }
            }
        }
    }
}
