//! The spectrogram's feed: the spectrum worker pointed at the microphone or at the
//! output mix, and its frames mapped to the picture's logarithmic bands as they
//! arrive. Frames come at `screen.spectrogram_fps`; nothing is analysed while the
//! spectrogram is hidden.

use crate::app::instance::Instance;
use crate::app::spectrum::{SpectrumConfig, SpectrumFrame, SpectrumSource, SpectrumWorker};
use crate::dsp::LogBands;

use super::state::{Source, UiState};
use super::waterfall::Waterfall;

/// The worker and what the picture needs from it.
pub struct SpectrumLink {
    worker: Option<SpectrumWorker>,
    /// The output mix's tap, kept while the microphone is shown (the engine hands
    /// it out once).
    mix: Option<SpectrumSource>,
    /// Whether the worker is reading the mix tap now.
    on_mix: bool,
    seq: u64,
    bands: Option<LogBands>,
    frames: Vec<SpectrumFrame>,
}

impl SpectrumLink {
    /// A link whose worker produces `fps` frames a second.
    pub fn new(fps: u32) -> SpectrumLink {
        let config = SpectrumConfig {
            frame_rate: fps as f32,
            ..SpectrumConfig::default()
        };
        SpectrumLink {
            worker: SpectrumWorker::start(config, None).ok(),
            mix: None,
            on_mix: false,
            seq: 0,
            bands: None,
            frames: Vec::new(),
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

    /// Points the worker at what `ui` asks for (nothing when hidden). A microphone
    /// that cannot be opened falls back to the output, with a message.
    pub fn attach(&mut self, instance: &Instance, ui: &mut UiState) {
        if self.worker.is_none() {
            return;
        }
        let engine = instance.engine();
        let (source, on_mix) = match (ui.spectrum_visible, ui.source) {
            (false, _) => (None, false),
            (true, Source::Input) => match engine.open_input(0.5) {
                Ok(tap) => (Some(SpectrumSource::from_input(tap)), false),
                Err(e) => {
                    ui.warn(format!(
                        "the microphone cannot be shown: {}",
                        crate::domain::chain(&e)
                    ));
                    ui.source = Source::Output;
                    (self.mix_source(instance), true)
                }
            },
            (true, Source::Output) => (self.mix_source(instance), true),
        };
        let Some(worker) = &self.worker else {
            return;
        };
        let previous = worker.set_source(source);
        // Keep the mix tap for later; an input tap detaches when dropped here.
        if self.on_mix {
            self.mix = previous;
        }
        self.on_mix = on_mix;
        self.seq = worker.next_seq();
    }

    /// The output mix's tap: the one kept, or taken from the engine (once).
    fn mix_source(&mut self, instance: &Instance) -> Option<SpectrumSource> {
        self.mix.take().or_else(|| {
            let engine = instance.engine();
            let fmt = engine.format();
            engine
                .take_mix_tap()
                .map(|ring| SpectrumSource::new(ring, fmt.channels, fmt.sample_rate))
        })
    }

    /// Maps new frames into `waterfall`; returns whether there were any.
    pub fn pull(&mut self, waterfall: &mut Waterfall, ui: &UiState) -> bool {
        let Some(worker) = &self.worker else {
            return false;
        };
        self.frames.clear();
        self.seq = worker.frames_since(self.seq, &mut self.frames);
        if self.frames.is_empty() {
            return false;
        }
        let (lo, hi) = ui.freq_range;
        let n = waterfall.bands();
        for f in &self.frames {
            let fits = self.bands.as_ref().is_some_and(|b| {
                b.bands() == n
                    && b.f_min() == lo
                    && b.f_max() == hi
                    && b.matches(f.sample_rate, f.fft_size)
            });
            if !fits {
                let hi = hi.min(f.sample_rate as f32 / 2.0);
                self.bands = Some(LogBands::new(
                    n,
                    lo,
                    hi.max(lo * 2.0),
                    f.sample_rate,
                    f.fft_size,
                ));
                waterfall.clear();
            }
            if let Some(b) = &self.bands {
                let mut out = vec![0.0; n];
                b.map(&f.db, &mut out);
                waterfall.push(out);
            }
        }
        true
    }
}
