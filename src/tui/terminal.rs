//! The terminal while the interface runs: raw mode, the alternate screen, a hidden
//! cursor, the kitty keyboard protocol where the terminal has it, and stderr sent to
//! a log file so nothing a library prints lands on the screen. Everything is undone
//! on every way out: a normal quit, an error, a panic (the hook restores before the
//! message is printed) and SIGTERM/SIGHUP (the loop sees the flag and quits).
//!
//! Output goes through a counting writer, so the bytes sent to the terminal can be
//! measured; it holds a frame until it is flushed and then writes it whole under
//! stdout's lock, so a cursor-position probe written from another thread
//! ([`crate::tui::throttle`]) lands between two frames, never inside one.

use std::fs::File;
use std::io::{self, Stdout, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossterm::event::{
    KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Stdout, counting what is written, a whole frame at a time.
pub struct CountingWriter {
    out: Stdout,
    frame: Vec<u8>,
    count: Arc<AtomicU64>,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.frame.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut out = self.out.lock();
        out.write_all(&self.frame)?;
        out.flush()?;
        self.count
            .fetch_add(self.frame.len() as u64, Ordering::Relaxed);
        self.frame.clear();
        Ok(())
    }
}

/// The interface's terminal.
pub type Term = Terminal<CrosstermBackend<CountingWriter>>;

/// Set once the terminal has been put back (so restoring twice is harmless).
static RESTORED: AtomicBool = AtomicBool::new(true);
/// Whether the kitty keyboard flags were pushed.
static ENHANCED: AtomicBool = AtomicBool::new(false);
/// The real stderr, kept while stderr goes to the log file (-1: not redirected).
static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The terminal in interface mode, and what it needs to be put back.
pub struct Session {
    /// The terminal to draw on.
    pub terminal: Term,
    /// Bytes written to the terminal so far.
    pub bytes: Arc<AtomicU64>,
    /// Whether key release events will arrive (kitty keyboard protocol).
    pub key_release: bool,
}

/// Enters interface mode; stderr goes to `log` from here until [`restore`].
pub fn enter(log: &Path) -> io::Result<Session> {
    install_panic_hook();
    redirect_stderr(log);
    let mut out = io::stdout();
    enable_raw_mode()?;
    RESTORED.store(false, Ordering::SeqCst);
    execute!(out, EnterAlternateScreen, cursor::Hide)?;
    let key_release = crossterm::terminal::supports_keyboard_enhancement().unwrap_or(false);
    if key_release {
        execute!(
            out,
            PushKeyboardEnhancementFlags(
                KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES
                    | KeyboardEnhancementFlags::REPORT_EVENT_TYPES
            )
        )?;
        ENHANCED.store(true, Ordering::SeqCst);
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let writer = CountingWriter {
        out,
        frame: Vec::with_capacity(64 * 1024),
        count: bytes.clone(),
    };
    let terminal = Terminal::new(CrosstermBackend::new(writer))?;
    Ok(Session {
        terminal,
        bytes,
        key_release,
    })
}

/// Puts the terminal back as it was (idempotent) and stderr back on the terminal.
pub fn restore() {
    if RESTORED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if ENHANCED.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, PopKeyboardEnhancementFlags);
    }
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
    let _ = out.flush();
    restore_stderr();
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Sends fd 2 to `log` (appending), keeping the real one to put back.
fn redirect_stderr(log: &Path) {
    let Ok(file) = File::options().create(true).append(true).open(log) else {
        return;
    };
    // SAFETY: dup/dup2 on valid descriptors (2 is always open for a CLI process,
    // `file` is open); the duplicate is owned by SAVED_STDERR until restored.
    unsafe {
        let saved = libc::dup(2);
        if saved < 0 {
            return;
        }
        if libc::dup2(file.as_raw_fd(), 2) < 0 {
            libc::close(saved);
            return;
        }
        SAVED_STDERR.store(saved, Ordering::SeqCst);
    }
}

fn restore_stderr() {
    let saved = SAVED_STDERR.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the descriptor dup'ed in redirect_stderr, still open.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}
