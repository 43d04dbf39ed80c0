//! The terminal interface's key bindings (`[keys]`) and the key names jhack
//! understands.
//!
//! A key is written as one character (`"q"`, `"?"`, `"]"`; case matters) or a name
//! from [`KEY_NAMES`] (case does not matter), optionally after the modifiers
//! `ctrl+`, `alt+`, `shift+`. [`normalize_key`] gives the one spelling used for
//! comparisons: lowercase names, modifiers in the order ctrl, alt, shift.

use serde::{Deserialize, Serialize};

use super::error::Problem;

/// Named keys, as normalised.
pub const KEY_NAMES: &[&str] = &[
    "space",
    "enter",
    "tab",
    "backtab",
    "esc",
    "backspace",
    "delete",
    "insert",
    "up",
    "down",
    "left",
    "right",
    "home",
    "end",
    "pageup",
    "pagedown",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "f6",
    "f7",
    "f8",
    "f9",
    "f10",
    "f11",
    "f12",
];

/// Other spellings accepted for named keys.
const ALIASES: &[(&str, &str)] = &[(" ", "space"), ("escape", "esc"), ("return", "enter")];

/// The key of each action of the terminal interface; `""` means no key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBindings {
    /// Fade out every playing sound.
    pub stop_all: String,
    /// Leave jhack.
    pub quit: String,
    /// Show the keys.
    pub help: String,
    /// Bind the selected sound to the next key pressed.
    pub bind: String,
    /// Start or stop recording a new sound.
    pub record: String,
    /// Raise the selected sound's gain.
    pub gain_up: String,
    /// Lower the selected sound's gain.
    pub gain_down: String,
    /// Filter the sound list by name or tag.
    pub filter: String,
    /// Talk to the peers: held where the terminal reports key releases, otherwise
    /// pressed once to open the microphone and again to close it.
    pub talk: String,
}

impl KeyBindings {
    /// Every action with its key, in the order of the defaults file.
    pub fn bindings(&self) -> [(&'static str, &str); 9] {
        [
            ("stop_all", &self.stop_all),
            ("quit", &self.quit),
            ("help", &self.help),
            ("bind", &self.bind),
            ("record", &self.record),
            ("gain_up", &self.gain_up),
            ("gain_down", &self.gain_down),
            ("filter", &self.filter),
            ("talk", &self.talk),
        ]
    }

    fn bindings_mut(&mut self) -> [(&'static str, &mut String); 9] {
        [
            ("stop_all", &mut self.stop_all),
            ("quit", &mut self.quit),
            ("help", &mut self.help),
            ("bind", &mut self.bind),
            ("record", &mut self.record),
            ("gain_up", &mut self.gain_up),
            ("gain_down", &mut self.gain_down),
            ("filter", &mut self.filter),
            ("talk", &mut self.talk),
        ]
    }

    /// The action bound to `key` (any accepted spelling), if any. Sound hotkeys
    /// should not use a key for which this answers.
    pub fn action_for(&self, key: &str) -> Option<&'static str> {
        let key = normalize_key(key)?;
        self.bindings()
            .into_iter()
            .find(|(_, k)| *k == key)
            .map(|(action, _)| action)
    }

    /// Rewrites every key in its normalised spelling; refuses unknown key names and
    /// a key used by two actions.
    pub(super) fn normalize(&mut self) -> Result<(), Problem> {
        for (action, key) in self.bindings_mut() {
            if key.is_empty() {
                continue;
            }
            *key = normalize_key(key).ok_or_else(|| Problem::BadKeyName {
                action: format!("keys.{action}"),
                key: key.clone(),
            })?;
        }
        let bindings = self.bindings();
        for (i, (first, key)) in bindings.iter().enumerate() {
            if key.is_empty() {
                continue;
            }
            if let Some((second, _)) = bindings[i + 1..].iter().find(|(_, k)| k == key) {
                return Err(Problem::DuplicateKey {
                    key: key.to_string(),
                    first: format!("keys.{first}"),
                    second: format!("keys.{second}"),
                });
            }
        }
        Ok(())
    }
}

/// The normalised spelling of a key, or `None` if it is not a key jhack knows.
pub fn normalize_key(key: &str) -> Option<String> {
    let (mut ctrl, mut alt, mut shift) = (false, false, false);
    let mut rest = key;
    loop {
        // A modifier needs something after its '+': "ctrl+" alone is no key, and
        // "+" alone is the plus key.
        let lower = rest.to_ascii_lowercase();
        let flag = if lower.starts_with("ctrl+") {
            &mut ctrl
        } else if lower.starts_with("alt+") {
            &mut alt
        } else if lower.starts_with("shift+") {
            &mut shift
        } else {
            break;
        };
        let len = lower.find('+').map_or(0, |i| i + 1);
        if len == rest.len() {
            return None;
        }
        *flag = true;
        rest = &rest[len..];
    }
    let base = base_key(rest)?;
    let mut out = String::new();
    for (on, name) in [(ctrl, "ctrl+"), (alt, "alt+"), (shift, "shift+")] {
        if on {
            out.push_str(name);
        }
    }
    out.push_str(&base);
    Some(out)
}

fn base_key(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    if let Some((_, name)) = ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return Some((*name).to_string());
    }
    if let Some(name) = KEY_NAMES.iter().find(|n| **n == lower) {
        return Some((*name).to_string());
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_whitespace() && !c.is_control() => Some(c.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spellings() {
        assert_eq!(normalize_key("q").as_deref(), Some("q"));
        assert_eq!(normalize_key("Q").as_deref(), Some("Q"));
        assert_eq!(normalize_key("Space").as_deref(), Some("space"));
        assert_eq!(normalize_key(" ").as_deref(), Some("space"));
        assert_eq!(normalize_key("Escape").as_deref(), Some("esc"));
        assert_eq!(normalize_key("F12").as_deref(), Some("f12"));
        assert_eq!(normalize_key("+").as_deref(), Some("+"));
        assert_eq!(normalize_key("ctrl++").as_deref(), Some("ctrl++"));
        assert_eq!(
            normalize_key("Shift+Alt+CTRL+x").as_deref(),
            Some("ctrl+alt+shift+x")
        );
        assert_eq!(normalize_key("é").as_deref(), Some("é"));
        for bad in [
            "",
            "ctrl+",
            "ctrl",
            "qq",
            "f13",
            "\t",
            "hyper+q",
            "ctrl+alt+",
        ] {
            assert_eq!(normalize_key(bad), None, "{bad:?}");
        }
    }

    fn defaults() -> KeyBindings {
        crate::config::Config::default().keys
    }

    #[test]
    fn action_lookup() {
        let keys = defaults();
        assert_eq!(keys.action_for("q"), Some("quit"));
        assert_eq!(keys.action_for(" "), Some("stop_all"));
        assert_eq!(keys.action_for("1"), None);
        assert_eq!(keys.action_for("not a key"), None);
    }

    #[test]
    fn unbound_actions_never_clash() {
        let mut keys = defaults();
        keys.help = String::new();
        keys.bind = String::new();
        assert_eq!(keys.normalize(), Ok(()));
        assert_eq!(keys.action_for(""), None);
    }

    #[test]
    fn the_same_key_in_two_spellings_clashes() {
        let mut keys = defaults();
        keys.filter = "SPACE".into();
        assert_eq!(
            keys.normalize(),
            Err(Problem::DuplicateKey {
                key: "space".into(),
                first: "keys.stop_all".into(),
                second: "keys.filter".into(),
            })
        );
    }
}
