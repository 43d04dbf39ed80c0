//! What every audio command shares: logging to stderr, starting the engine from the
//! global options, Ctrl-C handling, and letting the last audio drain before exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::args::GlobalArgs;
use super::error::CliError;
use crate::audio::Engine;

/// Sends `tracing` output to stderr as `jhack: warning: ...` lines (level from
/// `JHACK_LOG`: a level such as `info`, or full directives; default warnings).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // A bare level applies to jhack's own messages only: libraries (decoders above
    // all) log freely about the bad input jhack already reports in one line.
    let spec = std::env::var("JHACK_LOG").unwrap_or_default();
    let spec = match spec.trim() {
        "" => "jhack=warn".to_string(),
        s if s.contains('=') || s.contains(',') => s.to_string(),
        level => format!("jhack={level}"),
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("jhack=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .event_format(LineFormat)
        .try_init();
}

struct LineFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LineFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "note",
            _ => "debug",
        };
        write!(writer, "jhack: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Starts the engine the global options and the config file describe.
pub fn start_engine(g: &GlobalArgs) -> Result<Engine, CliError> {
    let ctx = super::context::Context::load(g)?;
    start_engine_with(g, &ctx)
}

/// Starts the engine for an already loaded context.
pub fn start_engine_with(
    g: &GlobalArgs,
    ctx: &super::context::Context,
) -> Result<Engine, CliError> {
    Ok(Engine::start(ctx.engine_config(g))?)
}

/// A flag set by Ctrl-C (SIGINT), SIGTERM or SIGHUP.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

/// Sleeps in small steps until `done()` or the interrupt flag or the deadline.
/// Returns `true` when interrupted.
pub fn wait_until(
    interrupted: &AtomicBool,
    deadline: Option<Instant>,
    mut done: impl FnMut() -> bool,
) -> bool {
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return true;
        }
        if done() || deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for what the engine has mixed to leave the device: the limiter's look-ahead,
/// one period and the device's own latency.
pub fn drain(engine: &Engine) {
    let s = engine.stats();
    let fmt = engine.format();
    let frames = engine.mix_latency_frames() as f64 + f64::from(s.period_frames.max(1));
    let tail = Duration::from_secs_f64(frames / f64::from(fmt.sample_rate.max(1)))
        + Duration::from_secs_f64(s.output_latency_ms.max(0.0) / 1000.0)
        + Duration::from_millis(20);
    std::thread::sleep(tail.min(Duration::from_secs(1)));
}

/// Parses a duration in seconds given on the command line.
pub fn seconds(name: &str, s: f64) -> Result<Duration, CliError> {
    if (0.0..1e9).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(CliError::input(format!(
            "--{name}: {s} is not a valid number of seconds"
        )))
    }
}
