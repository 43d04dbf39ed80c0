//! The command line, as clap parses it. Raw arguments only: commands validate them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A terminal soundboard and intercom.
#[derive(Debug, Parser)]
#[command(name = "jhack", version, about, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command (none: the interactive screen).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that go before or after the command.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Keep all state (config, identity, library) under DIR.
    #[arg(long, global = true, env = "JHACK_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Output device: index or part of the name, as `jhack devices` lists them.
    #[arg(long, global = true, value_name = "D")]
    pub output_device: Option<String>,
    /// Input device: index or part of the name.
    #[arg(long, global = true, value_name = "D")]
    pub input_device: Option<String>,
    /// Requested period size in frames.
    #[arg(long, global = true, value_name = "FRAMES", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub buffer: u32,
    /// Use the silent, clock-paced null backend instead of a sound device.
    #[arg(long, global = true)]
    pub no_audio: bool,
    /// Voice slots in the mixer.
    #[arg(long, global = true, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=4096), hide_short_help = true)]
    pub voices: u32,
    /// Run the null backend's clock this many times faster than real time (testing).
    #[arg(
        long,
        global = true,
        value_name = "X",
        default_value_t = 1.0,
        hide = true
    )]
    pub null_speed: f64,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List audio hosts and devices.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Play audio files to the end.
    Play(PlayArgs),
    /// Play a sine tone.
    Tone {
        /// Frequency in Hz.
        #[arg(default_value_t = 440.0)]
        freq: f64,
        /// Length in seconds.
        #[arg(long, short, default_value_t = 1.0, value_name = "S")]
        duration: f64,
        /// Peak amplitude, 0..1.
        #[arg(long, short, default_value_t = 0.5, value_name = "A")]
        amplitude: f32,
    },
    /// Record the input device to a WAV file (RF64 past 4 GiB).
    Record {
        /// The file to write.
        file: PathBuf,
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long, short, value_name = "S")]
        duration: Option<f64>,
        /// Channels to write (default: the device's).
        #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
        channels: Option<u16>,
    },
    /// Monitor: route the input device to the output.
    Wire {
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long, short, value_name = "S")]
        duration: Option<f64>,
    },
}

/// `jhack play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Files to play, one after another.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Gain in dB.
    #[arg(
        long,
        short,
        default_value_t = 0.0,
        value_name = "DB",
        allow_negative_numbers = true
    )]
    pub gain: f32,
    /// Play all files at once instead of one after another.
    #[arg(long)]
    pub mix: bool,
    /// Print latency and device figures as one JSON line at exit.
    #[arg(long)]
    pub stats: bool,
}
