//! Keys become changes: one key event updates the interface's state and asks the
//! instance for what it means (play, stop, bind, record, switch a device). Problems
//! become messages on the message line, never output on the screen.

use crossterm::event::{KeyCode, KeyEvent};

use super::keys::{Command, Keymap, key_name};
use super::state::{Focus, Mode, Source, UiState};
use crate::app::instance::{GAIN_STEP_DB, Instance};
use crate::audio::{DeviceInfo, DeviceSpec};
use crate::domain::SoundId;

/// A peer's voice volume step, dB.
const VOICE_STEP_DB: f32 = 3.0;
/// Spectrogram gain step, dB.
const SPECTRUM_GAIN_STEP: f32 = 6.0;
/// Frequency range step: a third of an octave.
const FREQ_STEP: f32 = 1.259_921;
/// Lowest and highest frequency the spectrogram may show.
const FREQ_LIMITS: (f32, f32) = (20.0, 24_000.0);

/// What the loop must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The screen changed.
    pub redraw: bool,
    /// The spectrogram's source changed (re-attach its tap).
    pub source_changed: bool,
    /// The engine was restarted on another device (re-attach taps, re-read lists).
    pub devices_changed: bool,
}

/// What the key handler needs besides the state.
pub struct Context<'a> {
    /// The instance.
    pub instance: &'a mut Instance,
    /// Keys.
    pub keymap: &'a Keymap,
    /// Output devices as listed.
    pub outputs: &'a [DeviceInfo],
    /// Input devices as listed.
    pub inputs: &'a [DeviceInfo],
    /// Rows of the sound list on screen.
    pub page: usize,
    /// When the key was read from the terminal (trigger latency counts from it).
    pub pressed: std::time::Instant,
    /// The peers (none: this screen is not on the network).
    pub hub: Option<&'a mut crate::app::peers::PeerHub>,
    /// The engine this screen is attached to (none: its own).
    pub attached: Option<&'a mut crate::app::attach::view::Attached>,
}

/// Handles one key press.
pub fn on_key(ui: &mut UiState, cx: &mut Context<'_>, ev: &KeyEvent) -> Outcome {
    let redraw = Outcome {
        redraw: true,
        ..Outcome::default()
    };
    let key = key_name(ev);
    match ui.mode.clone() {
        Mode::Help => {
            ui.mode = Mode::Normal;
            redraw
        }
        Mode::Filter => {
            match ev.code {
                KeyCode::Enter => ui.mode = Mode::Normal,
                KeyCode::Esc => {
                    ui.filter.clear();
                    ui.mode = Mode::Normal;
                }
                KeyCode::Backspace => {
                    ui.filter.pop();
                }
                KeyCode::Char(c) if !c.is_control() => ui.filter.push(c),
                _ => {}
            }
            ui.selected = 0;
            ui.scroll = 0;
            redraw
        }
        Mode::Bind(id) => {
            ui.mode = Mode::Normal;
            match key.as_deref() {
                None | Some("esc") => ui.notice("binding cancelled"),
                Some(k) => bind(ui, cx, &id, k),
            }
            redraw
        }
        Mode::Name {
            path,
            mut input,
            remote,
        } => {
            match ev.code {
                KeyCode::Enter => {
                    let name = input.trim().to_string();
                    if name.is_empty() {
                        ui.warn("a name is needed (Esc discards the recording)");
                        ui.mode = Mode::Name {
                            path,
                            input,
                            remote,
                        };
                        return redraw;
                    }
                    ui.mode = Mode::Normal;
                    keep_recording(ui, cx, path, remote, Some(name));
                }
                KeyCode::Esc => {
                    ui.mode = Mode::Normal;
                    keep_recording(ui, cx, path, remote, None);
                }
                KeyCode::Backspace => {
                    input.pop();
                    ui.mode = Mode::Name {
                        path,
                        input,
                        remote,
                    };
                }
                KeyCode::Char(c) if !c.is_control() => {
                    input.push(c);
                    ui.mode = Mode::Name {
                        path,
                        input,
                        remote,
                    };
                }
                _ => {
                    ui.mode = Mode::Name {
                        path,
                        input,
                        remote,
                    }
                }
            }
            redraw
        }
        Mode::Normal => {
            let Some(key) = key else {
                return Outcome::default();
            };
            match cx.keymap.command(&key) {
                Some(cmd) => command(ui, cx, cmd),
                None => play_key(ui, cx, &key),
            }
        }
    }
}

/// Saves a finished recording as `name`, or discards it (`None`): here, or on the
/// attached engine's machine when the take is there.
fn keep_recording(
    ui: &mut UiState,
    cx: &mut Context<'_>,
    path: std::path::PathBuf,
    remote: bool,
    name: Option<String>,
) {
    if remote {
        match cx.attached.as_deref() {
            Some(a) => a.keep_take(path.to_string_lossy().into_owned(), name),
            None => ui.warn("the recording's machine is no longer attached: its take stays there"),
        }
        return;
    }
    match name {
        Some(name) => match cx.instance.save_recording(&path, &name) {
            Ok(m) => ui.notice(format!("saved the recording as \"{}\"", m.name)),
            Err(e) => ui.warn(crate::domain::chain(&e)),
        },
        None => {
            let _ = std::fs::remove_file(&path);
            ui.notice("recording discarded");
        }
    }
}

fn selected_id(ui: &UiState, cx: &Context<'_>) -> Option<SoundId> {
    ui.visible(cx.instance.sounds())
        .get(ui.selected)
        .map(|m| m.id)
}

/// Plays `id` where the target says: here, on the connected peers, or both.
fn play(ui: &mut UiState, cx: &mut Context<'_>, id: &SoundId) {
    if ui.target.here() {
        let played = match cx.hub.as_deref_mut() {
            // A remote sound streams from a mirror while it arrives.
            Some(hub) => hub.play_here(cx.instance, id, 0.0, cx.pressed),
            None => cx
                .instance
                .play_triggered(id, 0.0, cx.pressed)
                .map(|_| ())
                .map_err(|e| crate::domain::chain(&e)),
        };
        if let Err(e) = played {
            ui.warn(e);
            return;
        }
    }
    if ui.target == super::state::Target::Person {
        return play_on_person(ui, cx, id);
    }
    if !ui.target.peers() {
        return;
    }
    let Some(hub) = cx.hub.as_deref_mut() else {
        ui.warn("this screen is not on the network (see jhack.log)");
        return;
    };
    let online = hub.online();
    if online.is_empty() {
        ui.warn("no peer is online: nothing played there (t: where keys play)");
        return;
    }
    let Some(meta) = cx.instance.sounds().iter().find(|m| m.id == *id).cloned() else {
        return;
    };
    let failed = hub.trigger(&meta, &online, 0.0);
    if let Some(f) = failed.first() {
        ui.warn(f.clone());
    }
}

/// Plays `id` on the person's own machine only (a screen run over SSH).
fn play_on_person(ui: &mut UiState, cx: &mut Context<'_>, id: &SoundId) {
    let (Some(hub), Some(person)) = (cx.hub.as_deref_mut(), ui.person.clone()) else {
        ui.warn("your machine is not connected: nothing played (t: where keys play)");
        return;
    };
    let Ok(peer) = person.id.parse::<crate::net::PeerId>() else {
        return;
    };
    let Some(meta) = cx.instance.sounds().iter().find(|m| m.id == *id).cloned() else {
        return;
    };
    if let Some(f) = hub.trigger(&meta, &[peer], 0.0).first() {
        ui.warn(f.clone());
    }
}

fn play_key(ui: &mut UiState, cx: &mut Context<'_>, key: &str) -> Outcome {
    let Some(id) = cx.instance.sound_for_key(key).map(|m| m.id) else {
        return Outcome::default();
    };
    play(ui, cx, &id);
    Outcome {
        redraw: true,
        ..Outcome::default()
    }
}

fn bind(ui: &mut UiState, cx: &mut Context<'_>, id: &SoundId, key: &str) {
    if let Some(cmd) = cx.keymap.command(key) {
        ui.warn(format!(
            "{key} is the key to {}; choose another",
            super::strings::HELP_LINES
                .iter()
                .find(|(cmds, _)| cmds.contains(&cmd))
                .map_or("a command", |(_, what)| *what)
        ));
        return;
    }
    match cx.instance.bind(id, key) {
        Ok(m) => ui.notice(format!("{} now plays \"{}\"", key, m.name)),
        Err(e) => ui.warn(crate::domain::chain(&e)),
    }
}

fn command(ui: &mut UiState, cx: &mut Context<'_>, cmd: Command) -> Outcome {
    let mut out = Outcome {
        redraw: true,
        ..Outcome::default()
    };
    let len = ui.visible(cx.instance.sounds()).len();
    let page = cx.page.max(1);
    match cmd {
        Command::Quit => ui.quit = true,
        Command::StopAll | Command::Cancel => {
            cx.instance.stop_all();
            if let Some(a) = cx.attached.as_deref() {
                a.stop_all();
            }
        }
        Command::Help => ui.mode = Mode::Help,
        Command::Filter => {
            ui.focus = Focus::Sounds;
            ui.mode = Mode::Filter;
        }
        Command::Sort => {
            ui.sort = ui.sort.next();
            ui.selected = 0;
        }
        Command::NextPanel => ui.focus = ui.focus.next(),
        Command::PrevPanel => ui.focus = ui.focus.prev(),
        Command::Up
        | Command::Down
        | Command::PageUp
        | Command::PageDown
        | Command::Top
        | Command::Bottom => move_selection(ui, cx, cmd, len, page),
        Command::PlaySelected => match ui.focus {
            Focus::Sounds => {
                if let Some(id) = selected_id(ui, cx) {
                    play(ui, cx, &id);
                }
            }
            Focus::Outputs | Focus::Inputs => {
                out.devices_changed = switch_device(ui, cx);
            }
            Focus::Peers => peer_volume(ui, cx, None),
        },
        Command::Bind => match selected_id(ui, cx) {
            Some(id) => ui.mode = Mode::Bind(id),
            None => ui.warn("no sound selected"),
        },
        Command::Target => {
            ui.target = ui.target.next(ui.person.is_some());
            ui.target_chosen = true;
            ui.notice(format!(
                "{} (t changes it)",
                ui.target.label(ui.person.as_ref())
            ));
        }
        Command::Unbind => {
            if let Some(id) = selected_id(ui, cx) {
                match cx.instance.unbind(&id) {
                    Ok(m) => ui.notice(format!("\"{}\" has no key now", m.name)),
                    Err(e) => ui.warn(crate::domain::chain(&e)),
                }
            }
        }
        Command::GainUp | Command::GainDown if ui.focus == Focus::Peers => {
            let d = if cmd == Command::GainUp {
                VOICE_STEP_DB
            } else {
                -VOICE_STEP_DB
            };
            peer_volume(ui, cx, Some(d));
        }
        Command::Talk if cx.attached.is_some() => {
            if let Some(a) = cx.attached.as_deref_mut() {
                let down = !a.talking();
                a.talk(down);
                ui.notice(if down {
                    format!(
                        "talking through {}'s microphone (the talk key again stops)",
                        a.name()
                    )
                } else {
                    format!("{}'s microphone closed", a.name())
                });
            }
        }
        Command::Talk => match cx.hub.as_deref().and_then(|h| h.call()) {
            // Where key releases are told the loop handles the talk key itself.
            Some(call) => {
                call.toggle();
                ui.notice(if call.pressed() {
                    "talking to the peers (the talk key again stops)"
                } else {
                    "microphone closed"
                });
            }
            None => ui.warn("no call: this screen is not on the network or has no voice"),
        },
        Command::GainUp | Command::GainDown => {
            if let Some(id) = selected_id(ui, cx) {
                let d = if cmd == Command::GainUp {
                    GAIN_STEP_DB
                } else {
                    -GAIN_STEP_DB
                };
                match cx.instance.nudge_gain(&id, d) {
                    Ok(m) => ui.notice(format!("\"{}\": gain {:+.1} dB", m.name, m.gain_db)),
                    Err(e) => ui.warn(crate::domain::chain(&e)),
                }
            }
        }
        Command::Record => record(ui, cx),
        Command::SpectrumSource => {
            ui.source = match ui.source {
                Source::Input => Source::Output,
                Source::Output => Source::Input,
            };
            out.source_changed = true;
        }
        Command::SpectrumToggle => {
            ui.spectrum_visible = !ui.spectrum_visible;
            out.source_changed = true;
        }
        Command::SpectrumGainUp => {
            ui.spectrum_gain_db = (ui.spectrum_gain_db + SPECTRUM_GAIN_STEP).min(48.0);
        }
        Command::SpectrumGainDown => {
            ui.spectrum_gain_db = (ui.spectrum_gain_db - SPECTRUM_GAIN_STEP).max(-48.0);
        }
        Command::FreqLowDown | Command::FreqLowUp | Command::FreqHighDown | Command::FreqHighUp => {
            ui.freq_range = step_range(ui.freq_range, cmd);
        }
    }
    out
}

fn move_selection(ui: &mut UiState, cx: &Context<'_>, cmd: Command, len: usize, page: usize) {
    let (sel, n) = match ui.focus {
        Focus::Sounds => (&mut ui.selected, len),
        Focus::Outputs => (&mut ui.device_selected[0], cx.outputs.len()),
        Focus::Inputs => (&mut ui.device_selected[1], cx.inputs.len()),
        Focus::Peers => (
            &mut ui.peer_selected,
            cx.hub.as_deref().map_or(0, |h| h.peers().len()),
        ),
    };
    let last = n.saturating_sub(1);
    *sel = match cmd {
        Command::Up => sel.saturating_sub(1),
        Command::Down => (*sel + 1).min(last),
        Command::PageUp => sel.saturating_sub(page),
        Command::PageDown => (*sel + page).min(last),
        Command::Top => 0,
        _ => last,
    };
}

/// Mutes or unmutes the selected peer's voice (`None`), or moves its volume by
/// `Some(db)` (within −30…+12 dB; moving it unmutes).
fn peer_volume(ui: &mut UiState, cx: &mut Context<'_>, step: Option<f32>) {
    let Some(hub) = cx.hub.as_deref_mut() else {
        return ui.warn("this screen is not on the network");
    };
    let peers = hub.peers();
    let Some(p) = peers.get(ui.peer_selected) else {
        return ui.warn("no peer selected");
    };
    let Ok(id) = p.id.parse() else {
        return;
    };
    let now = hub.voice_volume(&id);
    let next = match (step, now) {
        (None, Some(_)) => None,
        (None, None) => Some(0.0),
        (Some(d), v) => Some((v.unwrap_or(0.0) + d).clamp(-30.0, 12.0)),
    };
    hub.set_voice_volume(id, next);
    match next {
        None => ui.notice(format!("{} muted", p.name)),
        Some(db) => ui.notice(format!("{}'s voice at {db:+.0} dB", p.name)),
    }
}

fn step_range((lo, hi): (f32, f32), cmd: Command) -> (f32, f32) {
    let (lo, hi) = match cmd {
        Command::FreqLowDown => (lo / FREQ_STEP, hi),
        Command::FreqLowUp => (lo * FREQ_STEP, hi),
        Command::FreqHighDown => (lo, hi / FREQ_STEP),
        _ => (lo, hi * FREQ_STEP),
    };
    let lo = lo.clamp(FREQ_LIMITS.0, FREQ_LIMITS.1 / 2.0);
    let hi = hi.clamp(lo * 2.0, FREQ_LIMITS.1);
    (lo, hi)
}

fn record(ui: &mut UiState, cx: &mut Context<'_>) {
    if let Some(a) = cx.attached.as_deref_mut() {
        let starting = a.recording_for().is_none();
        a.record();
        if starting {
            ui.notice(format!(
                "recording {}'s microphone… press the record key again to stop",
                a.name()
            ));
        }
        return;
    }
    if cx.instance.recording_for().is_none() {
        match cx.instance.start_recording() {
            Ok(()) => ui.notice("recording… press the record key again to stop"),
            Err(e) => ui.warn(crate::domain::chain(&e)),
        }
        return;
    }
    match cx.instance.stop_recording() {
        Ok(Some(path)) => {
            ui.mode = Mode::Name {
                path,
                input: String::new(),
                remote: false,
            }
        }
        Ok(None) => {}
        Err(e) => ui.warn(crate::domain::chain(&e)),
    }
}

fn switch_device(ui: &mut UiState, cx: &mut Context<'_>) -> bool {
    let (list, which) = match ui.focus {
        Focus::Outputs => (cx.outputs, 0),
        _ => (cx.inputs, 1),
    };
    let Some(d) = list.get(ui.device_selected[which]) else {
        return false;
    };
    if let Some(a) = cx.attached.as_deref() {
        a.switch(which == 0, d.index);
        ui.notice(format!("moving {} to {}…", a.name(), d.name));
        return false;
    }
    let spec = DeviceSpec::Index(d.index);
    let (out, inp) = if which == 0 {
        (Some(spec), None)
    } else {
        (None, Some(spec))
    };
    match cx.instance.switch_device(out, inp) {
        Ok(()) => {
            ui.notice(format!("now on {}", d.name));
            true
        }
        Err(e) => {
            ui.warn(format!("{}: {}", d.name, crate::domain::chain(&e)));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frequency_range_moves_by_thirds_of_an_octave_within_limits() {
        let (lo, hi) = step_range((100.0, 10_000.0), Command::FreqLowUp);
        assert!((lo - 125.99).abs() < 0.1 && hi == 10_000.0);
        let (lo, _) = step_range((20.0, 10_000.0), Command::FreqLowDown);
        assert_eq!(lo, 20.0);
        let (_, hi) = step_range((100.0, 24_000.0), Command::FreqHighUp);
        assert_eq!(hi, 24_000.0);
        let (lo, hi) = step_range((1000.0, 2000.0), Command::FreqHighDown);
        assert!(hi >= 2.0 * lo);
    }
}
