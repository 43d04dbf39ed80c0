//! Guards around decoding untrusted files: size, channel and rate limits, and catching
//! a decoder's panic so that one bad file is reported instead of crashing jhack.
//!
//! A caught panic must never print to stderr (it would corrupt the TUI and look like a
//! crash); any other panic keeps going to the previously installed hook. Nothing here
//! may allocate per call beyond what `catch_unwind` itself does.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::domain::AudioFormat;

/// Largest file [`Decoder::open`](super::Decoder::open) accepts: 2 GiB. Sounds for a
/// soundboard are seconds to minutes long; anything bigger is refused up front rather
/// than decoded into memory.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Most channels a decoded stream may have (0 is always invalid).
pub const MAX_CHANNELS: u16 = 32;

/// Lowest accepted sample rate, in Hz.
pub const MIN_RATE: u32 = 1;

/// Highest accepted sample rate, in Hz.
pub const MAX_RATE: u32 = 768_000;

/// Most interleaved samples [`decode_file`](super::decode_file) keeps in memory:
/// 256 Mi samples (1 GiB of f32, 46 minutes of 48 kHz stereo).
pub const MAX_DECODED_SAMPLES: usize = 1 << 28;

/// Consecutive undecodable packets after which a stream is abandoned as corrupt.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 100;

thread_local! {
    /// Depth of `catch_decoder_panic` calls on this thread; > 0 means "stay quiet".
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Runs `f`; a panic inside becomes `Err(())`, without printing the panic message.
///
/// Installs the quiet panic hook on first use. The closure's captured state may be
/// left inconsistent by the panic: callers must treat whatever it touched (a decoder,
/// a reader) as broken afterwards.
#[allow(clippy::result_unit_err)] // The API other modules use: a panic carries no usable detail.
pub fn catch_decoder_panic<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    install_quiet_panic_hook();
    QUIET.with(|q| q.set(q.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get().saturating_sub(1)));
    result.map_err(|_| ())
}

/// Installs (once per process) a panic hook that stays silent for panics inside
/// [`catch_decoder_panic`] on the panicking thread and defers to the previous hook
/// otherwise. Call it after any other hook is installed (e.g. the TUI's terminal
/// restorer), so that hook is the one deferred to.
pub fn install_quiet_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_with` fails only while the thread is being torn down; be loud then.
            let quiet = QUIET.try_with(|q| q.get() > 0).unwrap_or(false);
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Whether the current thread is inside [`catch_decoder_panic`].
pub fn in_guarded_section() -> bool {
    QUIET.with(|q| q.get() > 0)
}

/// Checks a stream's rate and channel count against the limits; the error says what is
/// wrong ("0 channels", "255 channels (limit 32)", "sample rate 0 Hz").
pub fn check_format(format: AudioFormat) -> Result<(), FormatProblem> {
    if format.channels == 0 {
        return Err(FormatProblem::Invalid("0 channels".into()));
    }
    if format.channels > MAX_CHANNELS {
        return Err(FormatProblem::Unsupported(format!(
            "{} channels (limit {MAX_CHANNELS})",
            format.channels
        )));
    }
    if format.sample_rate < MIN_RATE {
        return Err(FormatProblem::Invalid(format!(
            "sample rate {} Hz",
            format.sample_rate
        )));
    }
    if format.sample_rate > MAX_RATE {
        return Err(FormatProblem::Unsupported(format!(
            "sample rate {} Hz (limit {MAX_RATE} Hz)",
            format.sample_rate
        )));
    }
    Ok(())
}

/// Why a format fails [`check_format`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatProblem {
    /// The value cannot be right (zero channels, zero rate).
    Invalid(String),
    /// The value is plausible but beyond the limits.
    Unsupported(String),
}

impl FormatProblem {
    /// The description.
    pub fn what(&self) -> &str {
        match self {
            Self::Invalid(s) | Self::Unsupported(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let r: Result<u32, ()> = catch_decoder_panic(|| panic!("decoder bug"));
        assert_eq!(r, Err(()));
        assert!(
            !in_guarded_section(),
            "the quiet flag is reset after a panic"
        );
        assert_eq!(catch_decoder_panic(|| 7), Ok(7));
        assert!(!in_guarded_section());
    }

    #[test]
    fn nested_guards_unwind_to_the_innermost() {
        let outer = catch_decoder_panic(|| {
            let inner: Result<(), ()> = catch_decoder_panic(|| {
                let v: Vec<u8> = Vec::new();
                let _ = v[3]; // An index panic, as a buggy decoder would hit.
            });
            assert!(in_guarded_section());
            inner
        });
        assert_eq!(outer, Ok(Err(())));
        assert!(!in_guarded_section());
    }

    #[test]
    fn guard_is_per_thread() {
        let h = std::thread::spawn(|| catch_decoder_panic(in_guarded_section));
        assert_eq!(h.join().unwrap(), Ok(true));
        assert!(!in_guarded_section());
    }

    #[test]
    fn format_limits() {
        assert!(check_format(AudioFormat::new(48_000, 2)).is_ok());
        assert!(check_format(AudioFormat::new(768_000, 32)).is_ok());
        assert_eq!(
            check_format(AudioFormat::new(48_000, 0)),
            Err(FormatProblem::Invalid("0 channels".into()))
        );
        assert_eq!(
            check_format(AudioFormat::new(48_000, 255)),
            Err(FormatProblem::Unsupported("255 channels (limit 32)".into()))
        );
        assert!(matches!(
            check_format(AudioFormat::new(0, 2)),
            Err(FormatProblem::Invalid(_))
        ));
        assert!(matches!(
            check_format(AudioFormat::new(768_001, 2)),
            Err(FormatProblem::Unsupported(_))
        ));
    }
}
