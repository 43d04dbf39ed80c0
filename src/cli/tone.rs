//! `jhack tone [FREQ]`: a sine tone on the output.

use std::time::Instant;

use super::args::GlobalArgs;
use super::error::CliError;
use super::session::{drain, interrupt_flag, seconds, start_engine, wait_until};
use crate::app::tone;
use crate::audio::VoiceState;

pub fn run(g: &GlobalArgs, freq: f64, duration: f64, amplitude: f32) -> Result<(), CliError> {
    let duration = seconds("duration", duration)?;
    if !(amplitude.is_finite() && (0.0..=1.0).contains(&amplitude)) {
        return Err(CliError::input(format!(
            "--amplitude: {amplitude} is not between 0 and 1"
        )));
    }
    if !(freq.is_finite() && freq > 0.0 && freq < 1e6) {
        return Err(CliError::input(format!("frequency {freq} Hz is not valid")));
    }
    let interrupted = interrupt_flag();
    let engine = start_engine(g)?;
    let nyquist = f64::from(engine.format().sample_rate) / 2.0;
    if freq >= nyquist {
        return Err(CliError::input(format!(
            "frequency {freq} Hz is above the output's limit of {nyquist} Hz"
        )));
    }
    let t = tone::play(&engine, freq, amplitude, duration)?;
    let ended = || matches!(engine.state(t.id), Some(VoiceState::Ended(_)) | None);
    if wait_until(&interrupted, None, ended) {
        engine.stop_all();
        let never = std::sync::atomic::AtomicBool::new(false);
        wait_until(
            &never,
            Some(Instant::now() + std::time::Duration::from_millis(200)),
            ended,
        );
        drain(&engine);
        return Err(CliError {
            status: 130,
            message: "interrupted".into(),
        });
    }
    drain(&engine);
    Ok(())
}
