//! `jhack wire`: the input device monitored on the output.

use std::time::Instant;

use super::args::GlobalArgs;
use super::error::CliError;
use super::session::{drain, interrupt_flag, seconds, start_engine, wait_until};
use crate::app::wire::Wire;

pub fn run(g: &GlobalArgs, duration: Option<f64>) -> Result<(), CliError> {
    let duration = duration.map(|d| seconds("duration", d)).transpose()?;
    let interrupted = interrupt_flag();
    let engine = start_engine(g)?;
    let wire = Wire::start(&engine)?;
    let direct = wire.direct;
    let deadline = duration.map(|d| Instant::now() + d);
    wait_until(&interrupted, deadline, || false);
    let outcome = wire.stop(&engine);
    drain(&engine);
    let s = engine.stats();
    tracing::debug!(
        "wire: direct {direct}, skipped {} samples, starved blocks {}, input callbacks {}, input dropped {}, input lost {} times ({} frames filled, {} taken back), xruns {}",
        outcome.map_or(0, |o| o.skipped_samples),
        outcome.map_or(0, |o| o.starved_blocks),
        s.input_callbacks,
        s.input_dropped,
        s.input_losses,
        s.input_filled,
        s.input_taken_back,
        s.xruns
    );
    // CLOCK_MONOTONIC milliseconds, to line dropouts up with the rest of the machine.
    let starvations = engine.starvation_times();
    if !starvations.is_empty() {
        let at: Vec<String> = starvations.iter().map(|t| format!("{t:.1}")).collect();
        tracing::debug!("wire: starvations began at {} ms", at.join(" "));
    }
    Ok(())
}
