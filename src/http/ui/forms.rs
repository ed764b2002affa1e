//! Accessible form pieces every page uses: each field has a label, its hint and its error
//! tied to it (`aria-describedby`), and an error summary at the top links to the fields.
//! Errors come from the API's own validation (`ApiError`'s `field`), so the page and the
//! API refuse the same things with the same words.

use maud::{Markup, html};
use serde::{Deserialize, Deserializer};

use crate::http::error::ApiError;

/// Errors to show next to fields, keyed by the API's field name (`smtp.host`), and the
/// error that belongs to no field.
#[derive(Debug, Default)]
pub struct FieldErrors {
    fields: Vec<(String, String)>,
    pub general: Option<String>,
}

impl FieldErrors {
    pub fn none() -> Self {
        Self::default()
    }

    /// Places an API error next to its field when it names one, above the form otherwise.
    pub fn from_api(error: &ApiError) -> Self {
        let problem = error.problem();
        let message = match error {
            ApiError::InvalidField { reason, .. } => reason.clone(),
            ApiError::InvalidMessage { detail, .. } => detail.clone(),
            _ => problem.detail.clone(),
        };
        match problem.field {
            Some(field) => Self {
                fields: vec![(field, message)],
                general: None,
            },
            None => Self {
                fields: Vec::new(),
                general: Some(message),
            },
        }
    }

    /// An error for one field, found by the page itself.
    pub fn on(field: &str, message: impl Into<String>) -> Self {
        Self {
            fields: vec![(field.to_owned(), message.into())],
            general: None,
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }

    /// The box at the top of a form that says what is wrong and links to each field.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.error-summary role="alert" tabindex="-1" {
                    h2 { "There is a problem" }
                    ul {
                        @if let Some(general) = &self.general {
                            li { (general) }
                        }
                        @for (field, message) in &self.fields {
                            li { a href={"#" (field_id(field))} { (message) } }
                        }
                    }
                }
            }
        }
    }
}

/// The element id of a field, from its API name (`smtp.host` → `f-smtp-host`).
pub fn field_id(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("f-{cleaned}")
}

/// One labelled input. Built with the methods below and rendered with `render`.
pub struct Input<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'a str,
    value: Option<&'a str>,
    hint: Option<Markup>,
    required: bool,
    autocomplete: Option<&'a str>,
    placeholder: Option<&'a str>,
    inputmode: Option<&'a str>,
}

impl<'a> Input<'a> {
    pub fn text(name: &'a str, label: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value: None,
            hint: None,
            required: false,
            autocomplete: Some("off"),
            placeholder: None,
            inputmode: None,
        }
    }

    /// A secret: never given a value, so a stored secret cannot reach the page.
    pub fn password(name: &'a str, label: &'a str) -> Self {
        Self {
            kind: "password",
            autocomplete: Some("new-password"),
            ..Self::text(name, label)
        }
    }

    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        if kind == "email" {
            self.inputmode = Some("email");
        }
        self
    }

    pub fn value(mut self, value: Option<&'a str>) -> Self {
        if self.kind != "password" {
            self.value = value;
        }
        self
    }

    pub fn hint(mut self, hint: Markup) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn autocomplete(mut self, value: &'a str) -> Self {
        self.autocomplete = Some(value);
        self
    }

    pub fn placeholder(mut self, value: &'a str) -> Self {
        self.placeholder = Some(value);
        self
    }

    pub fn numeric(mut self) -> Self {
        self.inputmode = Some("numeric");
        self
    }

    pub fn render(&self, errors: &FieldErrors) -> Markup {
        let label = html! { (self.label) @if !self.required { span.optional { " (optional)" } } };
        framed(self.name, label, self.hint.as_ref(), errors, |c| {
            html! {
                input id=(c.id) name=(self.name) type=(self.kind) value=[self.value]
                    required[self.required] autocomplete=[self.autocomplete]
                    placeholder=[self.placeholder] inputmode=[self.inputmode]
                    aria-invalid=[c.invalid] aria-describedby=[&c.described];
            }
        })
    }
}

/// What a control needs to be tied to its label, hint and error.
struct Control {
    id: String,
    described: Option<String>,
    invalid: Option<&'static str>,
}

/// The frame every field shares: the label, the hint and the error, each tied to the control
/// by id (`aria-describedby`), the error announced as one.
fn framed(
    name: &str,
    label: Markup,
    hint: Option<&Markup>,
    errors: &FieldErrors,
    control: impl FnOnce(&Control) -> Markup,
) -> Markup {
    let id = field_id(name);
    let error = errors.get(name);
    let parts: Vec<String> = [
        hint.map(|_| format!("{id}-hint")),
        error.map(|_| format!("{id}-error")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let c = Control {
        described: (!parts.is_empty()).then(|| parts.join(" ")),
        invalid: error.map(|_| "true"),
        id,
    };
    html! {
        div class={"field" @if error.is_some() { " invalid" }} {
            label for=(c.id) { (label) }
            @if let Some(hint) = hint { div.hint id={(c.id) "-hint"} { (hint) } }
            @if let Some(error) = error { p.field-error id={(c.id) "-error"} { span.visually-hidden { "Error: " } (error) } }
            (control(&c))
        }
    }
}

/// A labelled drop-down; `options` are (value, text).
pub fn select(
    name: &str,
    label: &str,
    options: &[(&str, &str)],
    selected: Option<&str>,
    hint: Option<Markup>,
    errors: &FieldErrors,
) -> Markup {
    framed(name, html! { (label) }, hint.as_ref(), errors, |c| {
        html! {
            select id=(c.id) name=(name) aria-invalid=[c.invalid] aria-describedby=[&c.described] {
                @for (value, text) in options {
                    option value=(value) selected[selected == Some(*value)] { (text) }
                }
            }
        }
    })
}

/// A labelled checkbox; posts `on` when ticked and nothing otherwise (read it with
/// `checkbox`).
pub fn checkbox(name: &str, label: &str, checked: bool, hint: Option<Markup>) -> Markup {
    let id = field_id(name);
    html! {
        div.field.check {
            input id=(id) name=(name) type="checkbox" checked[checked]
                aria-describedby=[hint.as_ref().map(|_| format!("{id}-hint"))];
            label for=(id) { (label) }
            @if let Some(hint) = hint { div.hint id={(id) "-hint"} { (hint) } }
        }
    }
}

/// A labelled multi-line text box.
pub fn textarea(
    name: &str,
    label: &str,
    value: &str,
    hint: Option<Markup>,
    errors: &FieldErrors,
) -> Markup {
    framed(name, html! { (label) }, hint.as_ref(), errors, |c| {
        html! {
            textarea id=(c.id) name=(name) rows="3" aria-invalid=[c.invalid] aria-describedby=[&c.described] { (value) }
        }
    })
}

/// Reads an HTML checkbox: present (any value) means ticked.
pub fn checkbox_value<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<String>::deserialize(d)?.is_some())
}

/// A form with nothing but its CSRF token: a button that posts an action.
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// An empty text box means "not given".
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_inputs_never_carry_a_value() {
        let html = Input::password("smtp.password", "Password")
            .value(Some("Canary-Secret"))
            .render(&FieldErrors::none())
            .into_string();
        assert!(!html.contains("Canary-Secret"), "{html}");
        assert!(html.contains("type=\"password\""));
    }

    #[test]
    fn errors_sit_next_to_their_field_and_are_announced() {
        let errors = FieldErrors::from_api(&ApiError::InvalidField {
            field: "smtp.host",
            reason: "must be a host name".into(),
        });
        let html = Input::text("smtp.host", "Host")
            .required()
            .render(&errors)
            .into_string();
        assert!(html.contains("id=\"f-smtp-host-error\""), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(
            html.contains("aria-describedby=\"f-smtp-host-error\""),
            "{html}"
        );
        let summary = errors.summary().into_string();
        assert!(summary.contains("href=\"#f-smtp-host\""), "{summary}");
    }

    #[test]
    fn values_are_escaped() {
        let html = Input::text("name", "Name")
            .value(Some("<script>alert(1)</script>"))
            .render(&FieldErrors::none())
            .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
