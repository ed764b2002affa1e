//! Provider presets on the SMTP form: the chooser that reloads the form filled in, and the
//! provider's guidance (app passwords, Office 365's limits and basic-auth retirement,
//! SparkPost's SMTP_Injection). The presets themselves are `domain::providers::PRESETS`,
//! the same ones the API applies.

use maud::{Markup, html};

use super::super::forms;
use crate::domain::providers::{PRESETS, ProviderPreset};

/// The preset named in a query, if it is one.
pub(super) fn find(id: Option<&str>) -> Option<&'static ProviderPreset> {
    id.and_then(crate::domain::providers::preset)
}

/// The chooser above the form: a GET form, so choosing a provider reloads the page with the
/// form filled in. The script submits it on change; the button does without the script.
pub(super) fn chooser(chosen: Option<&ProviderPreset>) -> Markup {
    let mut options: Vec<(&str, &str)> = vec![("", "Custom server")];
    options.extend(PRESETS.iter().map(|p| (p.id, p.name)));
    let id = forms::field_id("preset");
    html! {
        form.stacked.preset method="get" action="/ui/channels/new" {
            div.field {
                label for=(id) { "Provider" }
                div.hint id={(id) "-hint"} {
                    "Choose your provider to fill in its server, port, security and username, "
                    "and to see what to watch out for."
                }
                select id=(id) name="preset" data-autosubmit aria-describedby={(id) "-hint"} {
                    @for (value, text) in &options {
                        option value=(value) selected[chosen.map_or("", |p| p.id) == *value] { (text) }
                    }
                }
            }
            button.secondary type="submit" { "Use preset" }
        }
    }
}

/// What people trip over with this provider, and where the details are.
pub(super) fn guidance(preset: &ProviderPreset) -> Markup {
    html! {
        div.guidance role="note" aria-label={ (preset.name) " guidance" } {
            p { strong { (preset.name) } }
            ul {
                @for line in preset.guidance { li { (line) } }
            }
            p.muted { "More in " code { (preset.docs) } " of the Switchboard documentation." }
        }
    }
}

/// The host to show in the form: a region-dependent host is left empty, the region chooser
/// fills it in.
pub(super) fn host(preset: &ProviderPreset) -> Option<&'static str> {
    preset.regions.is_empty().then_some(preset.host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chooser_lists_every_preset_and_marks_the_chosen_one() {
        let office = find(Some("office365")).expect("a preset");
        let html = chooser(Some(office)).into_string();
        for p in PRESETS {
            assert!(html.contains(&format!("value=\"{}\"", p.id)), "{}", p.id);
        }
        assert!(
            html.contains("<option value=\"office365\" selected>"),
            "{html}"
        );
        assert!(html.contains("data-autosubmit"));
        assert!(html.contains("Use preset"));
    }

    #[test]
    fn region_hosts_are_not_shown_as_hosts() {
        assert_eq!(host(find(Some("amazon_ses")).unwrap()), None);
        assert_eq!(
            host(find(Some("sendgrid")).unwrap()),
            Some("smtp.sendgrid.net")
        );
        assert!(find(Some("nope")).is_none());
    }
}
