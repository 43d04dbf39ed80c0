//! The spectrogram's picture: the most recent spectrum frames, already reduced to one
//! value per column (a logarithmic frequency band), newest first. The view draws two
//! frames per terminal row with half-block characters.

use std::collections::VecDeque;

/// Bottom of the colour scale before the display gain, dBFS.
pub const FLOOR_DB: f32 = -96.0;
/// Span of the colour scale, dB.
pub const RANGE_DB: f32 = 72.0;

/// Recent frames of band levels (dBFS), newest first.
#[derive(Debug, Clone, Default)]
pub struct Waterfall {
    bands: usize,
    capacity: usize,
    frames: VecDeque<Vec<f32>>,
}

impl Waterfall {
    /// Room for `rows` terminal rows (two frames each) of `bands` columns.
    pub fn new(bands: usize, rows: usize) -> Waterfall {
        Waterfall {
            bands,
            capacity: rows * 2,
            frames: VecDeque::with_capacity(rows * 2),
        }
    }

    /// Columns per frame.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Adapts to a new panel size; a change of width starts the picture afresh.
    pub fn resize(&mut self, bands: usize, rows: usize) {
        if bands != self.bands {
            self.frames.clear();
            self.bands = bands;
        }
        self.capacity = rows * 2;
        self.frames.truncate(self.capacity);
    }

    /// Adds the newest frame (its length must be `bands`; others are ignored).
    pub fn push(&mut self, frame: Vec<f32>) {
        if frame.len() != self.bands || self.capacity == 0 {
            return;
        }
        if self.frames.len() == self.capacity {
            self.frames.pop_back();
        }
        self.frames.push_front(frame);
    }

    /// Forgets every frame.
    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// Frame `age` (0: newest), if there is one.
    pub fn frame(&self, age: usize) -> Option<&[f32]> {
        self.frames.get(age).map(Vec::as_slice)
    }

    /// How many frames it holds.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// A level in dBFS as a position 0..=1 on the colour scale, after `gain_db`.
pub fn scale(db: f32, gain_db: f32) -> f32 {
    ((db + gain_db - FLOOR_DB) / RANGE_DB).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_frames_of_the_right_width() {
        let mut w = Waterfall::new(3, 2);
        for i in 0..6 {
            w.push(vec![i as f32; 3]);
        }
        w.push(vec![0.0; 2]); // wrong width: ignored
        assert_eq!(w.len(), 4);
        assert_eq!(w.frame(0), Some(&[5.0; 3][..]));
        assert_eq!(w.frame(3), Some(&[2.0; 3][..]));
        w.resize(3, 1);
        assert_eq!(w.len(), 2);
        w.resize(4, 1);
        assert!(w.is_empty());
        assert_eq!(scale(FLOOR_DB, 0.0), 0.0);
        assert_eq!(scale(0.0, 0.0), 1.0);
        assert!((scale(FLOOR_DB + RANGE_DB / 2.0, 0.0) - 0.5).abs() < 1e-6);
    }
}
