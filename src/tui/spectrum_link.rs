//! The spectrogram's feed for the screen's own engine: a [`SpectrumFeed`] pointed
//! at the microphone or at the output mix, its frames mapped to the picture's bands
//! as they arrive. Frames come at `screen.spectrogram_fps`; nothing is analysed
//! while the spectrogram is hidden.

use crate::app::instance::Instance;
use crate::app::spectrum::SpectrumFrame;
use crate::app::spectrum_feed::{BandMapper, Shown, SpectrumFeed};

use super::state::{Source, UiState};
use super::waterfall::Waterfall;

/// The feed and what the picture needs from it.
pub struct SpectrumLink {
    feed: SpectrumFeed,
    mapper: BandMapper,
    frames: Vec<SpectrumFrame>,
}

/// What the screen's state asks the spectrogram to show.
pub fn wanted(ui: &UiState) -> Shown {
    match (ui.spectrum_visible, ui.source) {
        (false, _) => Shown::Nothing,
        (true, Source::Input) => Shown::Input,
        (true, Source::Output) => Shown::Output,
    }
}

impl SpectrumLink {
    /// A link whose worker produces `fps` frames a second.
    pub fn new(fps: u32) -> SpectrumLink {
        SpectrumLink {
            feed: SpectrumFeed::new(fps as f32),
            mapper: BandMapper::default(),
            frames: Vec::new(),
        }
    }

    /// The engine was replaced: taps of the old one are gone.
    pub fn engine_changed(&mut self) {
        self.feed.engine_changed();
    }

    /// Points the feed at what `ui` asks for (nothing when hidden). A microphone
    /// that cannot be opened falls back to the output, with a message.
    pub fn attach(&mut self, instance: &Instance, ui: &mut UiState) {
        let (shown, warning) = self.feed.attach(instance.engine(), wanted(ui));
        if let Some(w) = warning {
            ui.warn(w);
        }
        if shown == Shown::Output {
            ui.source = Source::Output;
        }
    }

    /// Stops analysing (the picture comes from elsewhere).
    pub fn detach(&mut self, instance: &Instance) {
        self.feed.attach(instance.engine(), Shown::Nothing);
    }

    /// Frames a second from now on.
    pub fn set_fps(&self, fps: f32) {
        self.feed.set_frame_rate(fps);
    }

    /// Drops the frames made since the last pull (the picture waits).
    pub fn skip(&mut self) {
        self.frames.clear();
        self.feed.frames(&mut self.frames);
        self.frames.clear();
    }

    /// Maps new frames into `waterfall`; returns whether there were any.
    pub fn pull(&mut self, waterfall: &mut Waterfall, ui: &UiState) -> bool {
        self.frames.clear();
        self.feed.frames(&mut self.frames);
        if self.frames.is_empty() {
            return false;
        }
        let n = waterfall.bands();
        for f in &self.frames {
            let mut row = Vec::with_capacity(n);
            if self.mapper.map(f, n, ui.freq_range, &mut row) {
                waterfall.clear();
            }
            waterfall.push(row);
        }
        true
    }
}
