//! A spectrogram's feed from an engine: the spectrum worker pointed at the
//! microphone or at the output mix (kept across switches: the engine hands its mix
//! tap out once), and its frames mapped to a picture's logarithmic bands. Used by
//! the screen for its own engine and by an attached engine for the screen watching
//! it, so both show the same picture.
//!
//! Never touches the audio thread: it only takes taps the engine offers and reads
//! frames the worker made.

use crate::app::spectrum::{SpectrumConfig, SpectrumFrame, SpectrumSource, SpectrumWorker};
use crate::audio::Engine;
use crate::dsp::LogBands;

/// What a spectrogram shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// Nothing (hidden).
    Nothing,
    /// The microphone.
    Input,
    /// The output mix.
    Output,
}

/// The worker and the taps it reads.
pub struct SpectrumFeed {
    worker: Option<SpectrumWorker>,
    /// The output mix's tap, kept while the microphone is shown.
    mix: Option<SpectrumSource>,
    /// Whether the worker reads the mix tap now.
    on_mix: bool,
    seq: u64,
}

impl SpectrumFeed {
    /// A feed whose worker makes `fps` frames a second (none when the worker's
    /// thread cannot start: the spectrogram then stays empty).
    pub fn new(fps: f32) -> SpectrumFeed {
        let config = SpectrumConfig {
            frame_rate: fps,
            ..SpectrumConfig::default()
        };
        SpectrumFeed {
            worker: SpectrumWorker::start(config, None).ok(),
            mix: None,
            on_mix: false,
            seq: 0,
        }
    }

    /// Frames per second from now on.
    pub fn set_frame_rate(&self, fps: f32) {
        if let Some(w) = &self.worker {
            w.set_frame_rate(fps);
        }
    }

    /// The engine was replaced: taps of the old one are gone.
    pub fn engine_changed(&mut self) {
        if let Some(w) = &self.worker {
            w.set_source(None);
        }
        self.mix = None;
        self.on_mix = false;
    }

    /// Points the worker at `want` on `engine`; what it shows then, and why not
    /// what was wanted. A microphone that cannot be opened falls back to the output.
    pub fn attach(&mut self, engine: &Engine, want: Shown) -> (Shown, Option<String>) {
        if self.worker.is_none() {
            return (Shown::Nothing, None);
        }
        let mut warning = None;
        let (source, shown) = match want {
            Shown::Nothing => (None, Shown::Nothing),
            Shown::Input => match engine.open_input(0.5) {
                Ok(tap) => (Some(SpectrumSource::from_input(tap)), Shown::Input),
                Err(e) => {
                    warning = Some(format!(
                        "the microphone cannot be shown: {}",
                        crate::domain::chain(&e)
                    ));
                    (self.mix_source(engine), Shown::Output)
                }
            },
            Shown::Output => (self.mix_source(engine), Shown::Output),
        };
        let shown = if source.is_none() && shown == Shown::Output {
            warning.get_or_insert_with(|| "the output mix is shown elsewhere".into());
            Shown::Nothing
        } else {
            shown
        };
        let Some(worker) = &self.worker else {
            return (Shown::Nothing, warning);
        };
        let previous = worker.set_source(source);
        // Keep the mix tap for later; an input tap detaches when dropped here.
        if self.on_mix {
            self.mix = previous;
        }
        self.on_mix = shown == Shown::Output;
        self.seq = worker.next_seq();
        (shown, warning)
    }

    /// The output mix's tap: the one kept, or taken from the engine (once).
    fn mix_source(&mut self, engine: &Engine) -> Option<SpectrumSource> {
        self.mix.take().or_else(|| {
            let fmt = engine.format();
            engine
                .take_mix_tap()
                .map(|ring| SpectrumSource::new(ring, fmt.channels, fmt.sample_rate))
        })
    }

    /// Appends the frames made since the last call to `out`.
    pub fn frames(&mut self, out: &mut Vec<SpectrumFrame>) {
        if let Some(w) = &self.worker {
            self.seq = w.frames_since(self.seq, out);
        }
    }
}

/// Maps frames to a picture's bands: `n` logarithmic bands over `lo`..`hi` Hz.
#[derive(Default)]
pub struct BandMapper {
    bands: Option<LogBands>,
}

impl BandMapper {
    /// `frame` as `n` bands over `lo`..`hi` Hz (dBFS each) into `out`; true when
    /// the mapping changed since the last frame (older rows no longer match).
    pub fn map(
        &mut self,
        frame: &SpectrumFrame,
        n: usize,
        (lo, hi): (f32, f32),
        out: &mut Vec<f32>,
    ) -> bool {
        let fits = self.bands.as_ref().is_some_and(|b| {
            b.bands() == n
                && b.f_min() == lo
                && b.f_max() == hi.min(frame.sample_rate as f32 / 2.0).max(lo * 2.0)
                && b.matches(frame.sample_rate, frame.fft_size)
        });
        if !fits {
            let hi = hi.min(frame.sample_rate as f32 / 2.0);
            self.bands = Some(LogBands::new(
                n,
                lo,
                hi.max(lo * 2.0),
                frame.sample_rate,
                frame.fft_size,
            ));
        }
        out.clear();
        out.resize(n, 0.0);
        if let Some(b) = &self.bands {
            b.map(&frame.db, out);
        }
        !fits
    }
}
