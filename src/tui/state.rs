//! The interface's own state: what is selected, focused, filtered and asked for.
//! Plain data, changed only by `update`; views read it.

use std::time::{Duration, Instant};

use crate::domain::{SoundId, SoundMeta};

/// How long a message stays on the message line.
pub const MESSAGE_TIME: Duration = Duration::from_secs(6);

/// The panel that arrow keys and Enter act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The sound list.
    Sounds,
    /// The output device list.
    Outputs,
    /// The input device list.
    Inputs,
    /// The peers (mute, volume).
    Peers,
}

impl Focus {
    /// The next panel (Tab).
    pub fn next(self) -> Focus {
        match self {
            Focus::Sounds => Focus::Outputs,
            Focus::Outputs => Focus::Inputs,
            Focus::Inputs => Focus::Peers,
            Focus::Peers => Focus::Sounds,
        }
    }

    /// The previous panel (Shift-Tab).
    pub fn prev(self) -> Focus {
        match self {
            Focus::Sounds => Focus::Peers,
            Focus::Outputs => Focus::Sounds,
            Focus::Inputs => Focus::Outputs,
            Focus::Peers => Focus::Inputs,
        }
    }
}

/// What keys currently go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys play sounds and run commands.
    Normal,
    /// Typing the filter.
    Filter,
    /// Waiting for the key to bind the sound to.
    Bind(SoundId),
    /// Naming a finished recording (the text typed so far).
    Name {
        /// The recording's file (on an attached engine: its take).
        path: std::path::PathBuf,
        /// The name typed so far.
        input: String,
        /// The take is on the attached engine's machine.
        remote: bool,
    },
    /// The help overlay.
    Help,
}

/// The sound list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// By name.
    Name,
    /// Bound keys first, in key order.
    Key,
    /// Longest first.
    Duration,
    /// Most recently played first.
    Recent,
}

impl Sort {
    /// The next order (the sort key).
    pub fn next(self) -> Sort {
        match self {
            Sort::Name => Sort::Key,
            Sort::Key => Sort::Duration,
            Sort::Duration => Sort::Recent,
            Sort::Recent => Sort::Name,
        }
    }

    /// Its name, for the panel title.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Key => "key",
            Sort::Duration => "length",
            Sort::Recent => "recent",
        }
    }
}

/// Whose audio the spectrogram shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The microphone.
    Input,
    /// What jhack plays.
    Output,
}

/// A message for the message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Whether it reports a problem.
    pub warn: bool,
    /// The text.
    pub text: String,
    /// When it was shown.
    pub at: Instant,
}

/// The interface's state.
#[derive(Debug, Clone)]
pub struct UiState {
    /// The focused panel.
    pub focus: Focus,
    /// What keys go to.
    pub mode: Mode,
    /// Selected row of the (filtered, sorted) sound list.
    pub selected: usize,
    /// First visible row.
    pub scroll: usize,
    /// Filter text (names and tags containing it, case-insensitive).
    pub filter: String,
    /// The sound list's order.
    pub sort: Sort,
    /// Selected row of the output and input device lists.
    pub device_selected: [usize; 2],
    /// The selected peer (in the peers panel's order).
    pub peer_selected: usize,
    /// The message line.
    pub message: Option<Message>,
    /// Whether the spectrogram is shown.
    pub spectrum_visible: bool,
    /// Whose audio it shows.
    pub source: Source,
    /// Display gain, dB.
    pub spectrum_gain_db: f32,
    /// Frequency range shown, Hz.
    pub freq_range: (f32, f32),
    /// Where hotkeys and Enter play.
    pub target: Target,
    /// The person's own machine, when this screen runs over SSH without a sound
    /// device and one is connected (see `app::ssh`).
    pub person: Option<Person>,
    /// The person chose where keys play (`t`): no longer chosen for them.
    pub target_chosen: bool,
    /// The machine whose engine this screen shows and drives (attached), if not
    /// its own.
    pub attached: Option<String>,
    /// What the screen does to keep up with a slow terminal, when it does.
    pub throttled: Option<String>,
    /// Set when the user asked to leave.
    pub quit: bool,
}

/// Where hotkeys play: here, on the connected peers, both, or on the person's own
/// machine (an SSH-hosted screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// This machine only.
    #[default]
    Here,
    /// The connected peers only.
    Peers,
    /// Both.
    Both,
    /// The person's own machine only (the screen runs over SSH).
    Person,
}

/// The person's own machine, as the screen names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Its peer id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Why it is theirs ("your SSH client", "your speakers").
    pub why: &'static str,
}

impl Target {
    /// The next in the cycle (the person's machine only when there is one).
    pub fn next(self, person: bool) -> Target {
        match self {
            Target::Here => Target::Peers,
            Target::Peers => Target::Both,
            Target::Both if person => Target::Person,
            Target::Both | Target::Person => Target::Here,
        }
    }

    /// Words for the panel's title.
    pub fn label(self, person: Option<&Person>) -> String {
        match (self, person) {
            (Target::Here, _) => "keys play here".into(),
            (Target::Peers, _) => "keys play on peers".into(),
            (Target::Both, _) => "keys play here + peers".into(),
            (Target::Person, Some(p)) => format!("keys play on {} ({})", p.name, p.why),
            (Target::Person, None) => "keys play on your machine (not connected)".into(),
        }
    }

    /// Whether it plays here.
    pub fn here(self) -> bool {
        matches!(self, Target::Here | Target::Both)
    }

    /// Whether it plays on every connected peer.
    pub fn peers(self) -> bool {
        matches!(self, Target::Peers | Target::Both)
    }
}

impl UiState {
    /// The state at start.
    pub fn new(source: Source) -> UiState {
        UiState {
            focus: Focus::Sounds,
            mode: Mode::Normal,
            selected: 0,
            scroll: 0,
            filter: String::new(),
            sort: Sort::Name,
            device_selected: [0, 0],
            peer_selected: 0,
            message: None,
            target: Target::Here,
            person: None,
            target_chosen: false,
            attached: None,
            throttled: None,
            spectrum_visible: true,
            source,
            spectrum_gain_db: 0.0,
            freq_range: (40.0, 16_000.0),
            quit: false,
        }
    }

    /// Shows a notice.
    pub fn notice(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            warn: false,
            text: text.into(),
            at: Instant::now(),
        });
    }

    /// Shows a problem.
    pub fn warn(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            warn: true,
            text: text.into(),
            at: Instant::now(),
        });
    }

    /// Drops a message that has been shown long enough; returns whether it did.
    pub fn expire_message(&mut self, now: Instant) -> bool {
        if self
            .message
            .as_ref()
            .is_some_and(|m| now.duration_since(m.at) > MESSAGE_TIME)
        {
            self.message = None;
            return true;
        }
        false
    }

    /// The sounds to list, in order: those matching the filter, sorted.
    pub fn visible<'a>(&self, sounds: &'a [SoundMeta]) -> Vec<&'a SoundMeta> {
        let f = self.filter.to_lowercase();
        let mut v: Vec<&SoundMeta> = sounds
            .iter()
            .filter(|m| {
                f.is_empty()
                    || m.name.to_lowercase().contains(&f)
                    || m.tags.iter().any(|t| t.contains(&f))
            })
            .collect();
        match self.sort {
            Sort::Name => {}
            Sort::Key => v.sort_by_key(|m| (m.key.is_none(), key_order(m.key.as_deref()))),
            Sort::Duration => v.sort_by(|a, b| b.duration_secs().total_cmp(&a.duration_secs())),
            Sort::Recent => v.sort_by_key(|m| std::cmp::Reverse(m.last_played_ms.unwrap_or(0))),
        }
        v
    }

    /// Keeps the selection inside a list of `len` rows shown `height` at a time.
    pub fn clamp_selection(&mut self, len: usize, height: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
        let h = height.max(1);
        if self.selected < self.scroll {
            self.scroll = self.selected;
        } else if self.selected >= self.scroll + h {
            self.scroll = self.selected + 1 - h;
        }
        self.scroll = self.scroll.min(len.saturating_sub(h));
    }
}

/// Digits in numeric order, then other keys alphabetically.
fn key_order(key: Option<&str>) -> (u8, u32, String) {
    match key {
        Some(k) => match k.parse::<u32>() {
            Ok(n) => (0, n, String::new()),
            Err(_) => (1, 0, k.to_string()),
        },
        None => (2, 0, String::new()),
    }
}
