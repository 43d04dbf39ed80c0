//! Every text the interface shows, in one place.

use super::keys::Command;

/// The help, line by line: the commands whose keys a line shows, and what they do.
pub const HELP_LINES: &[(&[Command], &str)] = &[
    (
        &[Command::PlaySelected],
        "play / use the device / mute the peer",
    ),
    (
        &[Command::StopAll, Command::Cancel],
        "stop everything (fade out)",
    ),
    (&[Command::Up, Command::Down], "move the selection"),
    (
        &[
            Command::PageUp,
            Command::PageDown,
            Command::Top,
            Command::Bottom,
        ],
        "page, first, last",
    ),
    (
        &[Command::NextPanel, Command::PrevPanel],
        "panel: sounds, outputs, inputs, peers",
    ),
    (&[Command::Filter], "filter sounds by name or tag"),
    (&[Command::Sort], "sort: name, key, length, recent"),
    (&[Command::Target], "keys play: here, on peers, both"),
    (&[Command::Talk], "talk to the peers (hold, or press twice)"),
    (&[Command::Bind], "bind the selected sound to the next key"),
    (&[Command::Unbind], "unbind the selected sound's key"),
    (
        &[Command::GainDown, Command::GainUp],
        "gain -/+ 1 dB (peers panel: voice ±3 dB)",
    ),
    (
        &[Command::Record],
        "record the microphone; again: stop, name it",
    ),
    (
        &[Command::SpectrumSource],
        "spectrogram: microphone or output",
    ),
    (&[Command::SpectrumToggle], "spectrogram: show or hide"),
    (
        &[Command::SpectrumGainDown, Command::SpectrumGainUp],
        "spectrogram gain -/+ 6 dB",
    ),
    (
        &[Command::FreqLowDown, Command::FreqLowUp],
        "spectrogram: lowest frequency",
    ),
    (
        &[Command::FreqHighDown, Command::FreqHighUp],
        "spectrogram: highest frequency",
    ),
    (&[Command::Help], "this help"),
    (&[Command::Quit], "quit"),
];

/// The help's first line.
pub const HELP_INTRO: &str = "A key bound to a sound plays it (see KEY in the list).";

/// Panel titles.
pub const SOUNDS: &str = "Sounds";
/// See [`SOUNDS`].
pub const SPECTROGRAM: &str = "Spectrogram";
/// See [`SOUNDS`].
pub const DEVICES: &str = "Devices";
/// See [`SOUNDS`].
pub const PEERS: &str = "Peers";
/// See [`SOUNDS`].
pub const HELP: &str = "Keys";

/// The peers panel until peers exist.
pub const NO_PEERS: &[&str] = &[
    "No peers yet.",
    "Your id: jhack id",
    "Add one: jhack peer add ID ADDR",
];

/// An empty library.
pub const EMPTY_LIBRARY: &str = "No sounds. Add some: jhack import PATH";
/// No sound matches the filter.
pub const NO_MATCH: &str = "No sound matches the filter.";
/// The null backend, in the status line.
pub const NO_AUDIO: &str = "no audio device: silent";
/// The window is smaller than the interface needs.
pub fn too_small(w: u16, h: u16) -> String {
    format!("Window too small ({w}×{h}); jhack needs 80×24.")
}
/// The hint line when there is no message.
pub const HINT: &str = "? help  / filter  b bind  r record  s source  Tab devices  q quit";
/// Prompt while binding.
pub fn bind_prompt(name: &str) -> String {
    format!("Press the key for \"{name}\" (Esc cancels)")
}
/// Prompt for a recording's name.
pub fn name_prompt(input: &str) -> String {
    format!("Name the recording: {input}▏ (Enter saves, Esc discards)")
}
/// Prompt while filtering.
pub fn filter_prompt(input: &str) -> String {
    format!("Filter: {input}▏ (Enter keeps, Esc clears)")
}
