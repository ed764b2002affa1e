//! Names for the ids the API answers with: channels (linked to their page, with their
//! status), users (by address) and teams (by name). A page names only what its viewer may see through the
//! API; anything else stays an id, as the API gives it.

use std::collections::HashMap;

use maud::{Markup, html};

use crate::domain::{Action, ChannelId, ChannelOwner, SendChannel, TeamId, User, UserId};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::ui::forms::{self, FieldErrors};
use crate::http::ui::{UiError, layout};
use crate::store::{teams, users};

/// The channels the viewer may see, by id (as `GET /v1/channels` lists them).
pub struct ChannelLabels {
    channels: HashMap<String, SendChannel>,
    /// In the order the API lists them, for drop-downs.
    order: Vec<String>,
}

impl ChannelLabels {
    pub async fn load(caller: &TenantCaller, state: &AppState) -> Result<Self, UiError> {
        let list = crate::http::channels::visible(caller, state).await?;
        let order = list.iter().map(|c| c.id.to_string()).collect();
        Ok(Self {
            channels: list.into_iter().map(|c| (c.id.to_string(), c)).collect(),
            order,
        })
    }

    pub fn get(&self, id: &str) -> Option<&SendChannel> {
        self.channels.get(id)
    }

    /// The channel's name linked to its page, or the bare id when the viewer may not see it.
    pub fn link(&self, id: &str) -> Markup {
        match self.get(id) {
            Some(c) => html! { a href={"/ui/channels/" (id)} { (c.spec.name) } },
            // The shared pool is not listed for tenants that do not allow it.
            None if id == ChannelId::shared_pool().to_string() => html! { "Shared pool" },
            None => html! { span.muted { "channel " code { (short(id)) } } },
        }
    }

    /// The link and the channel's status badge.
    pub fn link_with_status(&self, id: &str) -> Markup {
        html! {
            (self.link(id))
            @if let Some(c) = self.get(id) {
                " " (layout::status_badge(c.status, c.status_cause.as_deref()))
            }
        }
    }

    /// The "Channel" drop-down of a filter form (`channel_id`): every visible channel by
    /// name, after "All channels". A selected id no longer listed (a deleted channel, an id
    /// from a link) stays selectable, so the filter still says what it filters by.
    pub fn filter_select(&self, selected: Option<&str>, errors: &FieldErrors) -> Markup {
        let mut options: Vec<(&str, &str)> = vec![("", "All channels")];
        options.extend(
            self.order
                .iter()
                .filter_map(|id| self.get(id).map(|c| (id.as_str(), c.spec.name.as_str()))),
        );
        if let Some(id) = selected.filter(|id| self.get(id).is_none()) {
            options.push((id, id));
        }
        forms::select(
            "channel_id",
            "Channel",
            &options,
            selected.or(Some("")),
            None,
            errors,
        )
    }
}

/// The tenant's people and teams, to name the users and teams the API answers with by id:
/// a user by address, a team by name. Pages name only what their viewer already sees (a
/// channel's owner, an audit entry's actor); the list of every user, for a sender choice, is
/// for viewers who may read users (`GET /v1/users` asks for `ReadUsers`: admins).
pub struct People {
    me: UserId,
    may_list: bool,
    users: Vec<User>,
    teams: HashMap<TeamId, String>,
}

impl People {
    pub async fn load(caller: &TenantCaller, state: &AppState) -> Result<Self, UiError> {
        let (tenant, me) = (caller.actor.tenant_id, caller.actor.user_id);
        let (users, teams) = state
            .store
            .run(move |c| Ok((users::list(c, tenant)?, teams::list(c, tenant)?)))
            .await
            .map_err(crate::http::error::ApiError::from)?;
        Ok(Self {
            me,
            may_list: caller.actor.may(Action::ReadUsers),
            users,
            teams: teams
                .into_iter()
                .map(|t| (t.id, t.name.to_string()))
                .collect(),
        })
    }

    /// Every user, when the viewer may list them.
    pub fn all(&self) -> Option<&[User]> {
        self.may_list.then_some(self.users.as_slice())
    }

    /// The teams, by name, for an owner choice.
    pub fn teams(&self) -> Vec<(TeamId, &str)> {
        let mut teams: Vec<(TeamId, &str)> =
            self.teams.iter().map(|(id, n)| (*id, n.as_str())).collect();
        teams.sort_by(|a, b| a.1.cmp(b.1));
        teams
    }

    fn email(&self, id: UserId) -> Option<String> {
        self.users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.email.to_string())
    }

    /// How to name a user given as an id string (an audit actor, a sender): their address,
    /// else "you" or a short id.
    pub fn name(&self, id: &str) -> Markup {
        let user = id.parse::<UserId>().ok();
        match user.and_then(|u| self.email(u)) {
            Some(email) => html! { (email) },
            None if user == Some(self.me) => html! { "you" },
            None => html! { span.muted { "user " code { (short(id)) } } },
        }
    }

    /// Who owns a channel, in words.
    pub fn owner(&self, owner: ChannelOwner) -> String {
        match owner {
            ChannelOwner::User(u) if u == self.me => "you".to_owned(),
            ChannelOwner::User(u) => self.email(u).unwrap_or_else(|| format!("user {u}")),
            ChannelOwner::Team(t) => match self.teams.get(&t) {
                Some(name) => format!("team {name}"),
                None => format!("team {t}"),
            },
            ChannelOwner::Tenant => "the whole tenant".to_owned(),
            ChannelOwner::Platform => "the platform (shared pool)".to_owned(),
        }
    }
}

/// The first block of a UUID: enough to tell ids apart on one page.
pub fn short(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

/// A JSON detail as one readable line: `key: value` pairs, nested values compact, long
/// texts cut. The API's details hold ids, codes and server replies, never a secret.
pub fn summarize(detail: &serde_json::Value) -> String {
    use serde_json::Value;
    fn value(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "none".to_owned(),
            Value::Array(items) => items.iter().map(value).collect::<Vec<_>>().join(", "),
            Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{}: {}", k.replace('_', " "), value(v)))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        }
    }
    let text = match detail {
        Value::Null => String::new(),
        Value::Object(map) if map.is_empty() => String::new(),
        other => value(other),
    };
    cut(&text, 300)
}

/// At most `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_as_one_line_without_nulls() {
        let detail = json!({"released": 2, "cause_was": null, "from": "failing",
                            "owner": {"team": "t1"}});
        assert_eq!(
            summarize(&detail),
            "from: failing, owner: team: t1, released: 2"
        );
        assert_eq!(summarize(&json!({})), "");
        assert_eq!(summarize(&json!(null)), "");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        assert_eq!(cut("äöü", 2), "äö…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
