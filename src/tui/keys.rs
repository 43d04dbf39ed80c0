//! Keys: a terminal key event in jhack's key spelling (the config file's), and the
//! keymap that turns a key into an interface command.
//!
//! The configurable commands come from `[keys]`; the rest are fixed here and listed
//! in the help. A key that belongs to a command is never a sound's hotkey: binding a
//! sound to it is refused, so pressing it always does what the help says.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::config::KeyBindings;

/// An interface command a key can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Fade out everything.
    StopAll,
    /// Leave.
    Quit,
    /// Show or hide the help.
    Help,
    /// Bind the selected sound to the next key.
    Bind,
    /// Start/stop recording.
    Record,
    /// Raise the selected sound's gain.
    GainUp,
    /// Lower it.
    GainDown,
    /// Filter the list.
    Filter,
    /// Play the selected sound.
    PlaySelected,
    /// Selection up/down, a page, the ends.
    Up,
    /// See [`Command::Up`].
    Down,
    /// See [`Command::Up`].
    PageUp,
    /// See [`Command::Up`].
    PageDown,
    /// See [`Command::Up`].
    Top,
    /// See [`Command::Up`].
    Bottom,
    /// Move the focus to the next panel.
    NextPanel,
    /// Move it to the previous panel.
    PrevPanel,
    /// Cycle the sound list's order.
    Sort,
    /// Spectrogram: microphone or output mix.
    SpectrumSource,
    /// Spectrogram shown or hidden.
    SpectrumToggle,
    /// Spectrogram gain.
    SpectrumGainUp,
    /// See [`Command::SpectrumGainUp`].
    SpectrumGainDown,
    /// Spectrogram frequency range: lower edge down/up, upper edge down/up.
    FreqLowDown,
    /// See [`Command::FreqLowDown`].
    FreqLowUp,
    /// See [`Command::FreqLowDown`].
    FreqHighDown,
    /// See [`Command::FreqLowDown`].
    FreqHighUp,
    /// Unbind the selected sound's key.
    Unbind,
    /// Stop the recording and ask for its name, or cancel a prompt.
    Cancel,
    /// Where keys play: here, peers, both.
    Target,
    /// Talk to the peers (held, or latched where key releases are not told).
    Talk,
}

/// The fixed keys (not in the config file), with their commands.
pub const FIXED: &[(&str, Command)] = &[
    ("enter", Command::PlaySelected),
    ("up", Command::Up),
    ("k", Command::Up),
    ("down", Command::Down),
    ("j", Command::Down),
    ("pageup", Command::PageUp),
    ("pagedown", Command::PageDown),
    ("home", Command::Top),
    ("end", Command::Bottom),
    ("tab", Command::NextPanel),
    ("backtab", Command::PrevPanel),
    ("o", Command::Sort),
    ("s", Command::SpectrumSource),
    ("v", Command::SpectrumToggle),
    ("+", Command::SpectrumGainUp),
    ("=", Command::SpectrumGainUp),
    ("-", Command::SpectrumGainDown),
    (",", Command::FreqLowDown),
    (".", Command::FreqLowUp),
    ("<", Command::FreqHighDown),
    (">", Command::FreqHighUp),
    ("u", Command::Unbind),
    ("t", Command::Target),
    ("esc", Command::Cancel),
    ("ctrl+c", Command::Quit),
];

/// Key → command, for the configured and the fixed keys.
#[derive(Debug, Clone)]
pub struct Keymap {
    entries: Vec<(String, Command)>,
}

impl Keymap {
    /// The keymap for these bindings. A configured key wins over a fixed one.
    pub fn new(keys: &KeyBindings) -> Keymap {
        let mut entries: Vec<(String, Command)> = Vec::new();
        for (action, key) in keys.bindings() {
            if key.is_empty() {
                continue;
            }
            let cmd = match action {
                "stop_all" => Command::StopAll,
                "quit" => Command::Quit,
                "help" => Command::Help,
                "bind" => Command::Bind,
                "record" => Command::Record,
                "gain_up" => Command::GainUp,
                "gain_down" => Command::GainDown,
                "talk" => Command::Talk,
                _ => Command::Filter,
            };
            entries.push((key.to_string(), cmd));
        }
        for (key, cmd) in FIXED {
            if !entries.iter().any(|(k, _)| k == key) {
                entries.push(((*key).to_string(), *cmd));
            }
        }
        Keymap { entries }
    }

    /// The command of `key` (jhack spelling).
    pub fn command(&self, key: &str) -> Option<Command> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, c)| *c)
    }

    /// The key of `cmd` (the first, if several), for the help and hints.
    pub fn key_of(&self, cmd: Command) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, c)| *c == cmd)
            .map(|(k, _)| k.as_str())
    }

    /// Every (key, command), in help order.
    pub fn entries(&self) -> &[(String, Command)] {
        &self.entries
    }
}

/// A key event in jhack's spelling: "a", "A", "1", "space", "f1", "ctrl+r", … `None`
/// for keys jhack has no name for.
pub fn key_name(ev: &KeyEvent) -> Option<String> {
    let mut base = match ev.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "backtab".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Delete => "delete".into(),
        KeyCode::Insert => "insert".into(),
        KeyCode::Up => "up".into(),
        KeyCode::Down => "down".into(),
        KeyCode::Left => "left".into(),
        KeyCode::Right => "right".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::PageUp => "pageup".into(),
        KeyCode::PageDown => "pagedown".into(),
        KeyCode::F(n @ 1..=12) => format!("f{n}"),
        _ => return None,
    };
    let m = ev.modifiers;
    // Shift is already in the character ("A", "?"); it is named only for keys
    // without a shifted character.
    let is_char = matches!(ev.code, KeyCode::Char(c) if c != ' ');
    let mut prefix = String::new();
    if m.contains(KeyModifiers::CONTROL) {
        prefix.push_str("ctrl+");
        if is_char {
            base = base.to_lowercase();
        }
    }
    if m.contains(KeyModifiers::ALT) {
        prefix.push_str("alt+");
    }
    if m.contains(KeyModifiers::SHIFT) && !is_char && ev.code != KeyCode::BackTab {
        prefix.push_str("shift+");
    }
    Some(prefix + &base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn key_events_are_spelt_as_in_the_config() {
        let n = KeyModifiers::NONE;
        assert_eq!(key_name(&ev(KeyCode::Char('1'), n)).as_deref(), Some("1"));
        assert_eq!(
            key_name(&ev(KeyCode::Char(' '), n)).as_deref(),
            Some("space")
        );
        assert_eq!(
            key_name(&ev(KeyCode::Char('A'), KeyModifiers::SHIFT)).as_deref(),
            Some("A")
        );
        assert_eq!(
            key_name(&ev(KeyCode::Char('r'), KeyModifiers::CONTROL)).as_deref(),
            Some("ctrl+r")
        );
        assert_eq!(key_name(&ev(KeyCode::F(5), n)).as_deref(), Some("f5"));
        assert_eq!(
            key_name(&ev(KeyCode::Up, KeyModifiers::SHIFT)).as_deref(),
            Some("shift+up")
        );
        for k in ["1", "space", "ctrl+r", "f5", "shift+up", "A"] {
            assert_eq!(crate::config::normalize_key(k).as_deref(), Some(k));
        }
    }

    #[test]
    fn configured_keys_win_and_every_command_has_a_key() {
        let mut keys = crate::config::Config::default().keys;
        keys.quit = "x".into();
        let map = Keymap::new(&keys);
        assert_eq!(map.command("x"), Some(Command::Quit));
        assert_eq!(map.command("q"), None);
        assert_eq!(map.command("space"), Some(Command::StopAll));
        assert_eq!(map.command("esc"), Some(Command::Cancel));
        assert_eq!(map.command("1"), None, "digits are for sounds");
    }
}
