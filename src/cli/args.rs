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
    /// Requested period size in frames [default: 256, or the config file's].
    #[arg(long, global = true, value_name = "FRAMES",
          value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub buffer: Option<u32>,
    /// Use the silent, clock-paced null backend instead of a sound device.
    #[arg(long, global = true)]
    pub no_audio: bool,
    /// Voice slots in the mixer [default: 128, or the config file's].
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096), hide_short_help = true)]
    pub voices: Option<u32>,
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
    /// The interactive screen (also what `jhack` alone opens).
    Tui {
        /// Write the interface's own figures (bytes sent to the terminal, frames,
        /// start-up time) as JSON to this file at exit.
        #[arg(long, value_name = "FILE", hide = true)]
        stats_file: Option<PathBuf>,
    },
    /// List audio hosts and devices.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Play files or library sounds to the end.
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
    /// Record the input device to a WAV file (RF64 past 4 GiB), or into the library.
    Record {
        /// The file to write (none: record straight into the library).
        file: Option<PathBuf>,
        /// Also import the recording into the library under this name.
        #[arg(long, value_name = "NAME")]
        import: Option<String>,
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
    /// Add sound files (or folders of them, recursively) to the library.
    Import(ImportArgs),
    /// List the sounds in the library (and those shared with it), or with --peer
    /// what a peer shares with us.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// What this peer shares with us now (its name or an id prefix).
        #[arg(long, value_name = "P")]
        peer: Option<String>,
    },
    /// Change a library sound's name, key, gain or tags.
    Edit(EditArgs),
    /// Remove a sound from the library.
    Rm {
        /// The sound: its name or an id prefix.
        sound: String,
    },
    /// Keep a sound's file on this machine: fetched from a mirror ahead of need and
    /// never evicted (sounds bound to keys are pinned anyway).
    Pin {
        /// The sound: its name or an id prefix.
        sound: String,
    },
    /// Let a pinned sound's file be evicted again (within cache.remote_mb).
    Unpin {
        /// The sound: its name or an id prefix.
        sound: String,
    },
    /// Copy a sound someone shares with us into our library (then it is ours).
    Copy {
        /// The sound, as listed: owner/name.
        sound: String,
        /// Its name in our library (default: its own name).
        #[arg(long, value_name = "N")]
        name: Option<String>,
    },
    /// Offer the sounds tagged TAG to a peer (it needs read): it may browse them
    /// (`jhack list --peer`), subscribe to them and fetch them; nothing else.
    Share {
        /// The tag.
        tag: String,
        /// The peer: its name or an id prefix.
        #[arg(long = "with", value_name = "P")]
        with: String,
    },
    /// Withdraw a tag offered to a peer: its sounds leave the peer's list and can no
    /// longer be fetched by it.
    Unshare {
        /// The tag.
        tag: String,
        /// The peer: its name or an id prefix.
        #[arg(long = "with", value_name = "P")]
        with: String,
    },
    /// Verify every sound in the library against its id.
    Check,
    /// Stop everything the running jhack on this home is playing.
    Stop,
    /// Print this jhack's peer id and listen address.
    Id,
    /// Trust, list and forget peers.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Run as a headless peer (no screen) until stopped.
    Serve {
        /// Listen here (UDP) instead of the config file's net.listen.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Take part in calls with this machine's microphone and speaker (the
        /// talk key of a screen attached to it opens the microphone), instead of
        /// relaying voice between the peers.
        #[arg(long)]
        call: bool,
    },
    /// Talk with peers (intercom), both ways at once, until stopped.
    Talk(TalkArgs),
    /// Carry peer connections over a command's stdin/stdout (an SSH connection, when
    /// only SSH gets through): peers reach the far end through --listen.
    Tunnel {
        /// The local UDP address to give for the far end in peers.toml.
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The command that runs `jhack tunnel-end` on the far end, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// The far end of `jhack tunnel` (run by its SSH command): relays to this home's
    /// UDP port.
    TunnelEnd {
        /// Relay to this address instead of this home's net.listen.
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
    },
    /// Sync the library with a mirror (a peer added with --sync mirror) until both
    /// hold the same sounds; a running screen or serve keeps its mirrors in sync live.
    Sync {
        /// The peer: its name or an id prefix.
        peer: String,
        /// Then fetch every file this library lists and does not hold (with a
        /// progress bar), and keep them for good.
        #[arg(long)]
        all: bool,
        /// Print a JSON summary instead of a line.
        #[arg(long)]
        json: bool,
    },
}

/// `jhack talk P [P…]`.
#[derive(Debug, Args)]
pub struct TalkArgs {
    /// The peers to talk to (names or id prefixes); anyone allowed to talk to us is heard.
    #[arg(required = true, value_name = "PEER")]
    pub peers: Vec<String>,
    /// Push to talk: Enter on stdin opens and closes the microphone (a latch).
    #[arg(long, conflicts_with_all = ["open", "vad", "listen_only"])]
    pub ptt: bool,
    /// Open microphone (the default); silence is sent as almost nothing (DTX).
    #[arg(long, conflicts_with_all = ["vad", "listen_only"])]
    pub open: bool,
    /// Voice activity: transmit while the level is above --vad-threshold.
    #[arg(long, conflicts_with = "listen_only")]
    pub vad: bool,
    /// The voice-activity threshold, dBFS.
    #[arg(long, default_value_t = -45.0, value_name = "DB", allow_hyphen_values = true)]
    pub vad_threshold: f32,
    /// Only listen: send nothing.
    #[arg(long)]
    pub listen_only: bool,
    /// low-delay (RESTRICTED_LOWDELAY with redundant copies) or robust (VOIP with FEC).
    #[arg(long, default_value = "low-delay", value_name = "PROFILE")]
    pub profile: String,
    /// Frame length in ms: 2.5, 5, 10 or 20.
    #[arg(long, default_value_t = 10.0, value_name = "MS")]
    pub frame: f64,
    /// Redundant copies of earlier frames in each datagram (low delay: 0, 1 or 2).
    #[arg(long, value_name = "N")]
    pub copies: Option<usize>,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long, short, value_name = "S")]
    pub duration: Option<f64>,
    /// Listen here (UDP) instead of the config file's net.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Print one JSON line of the call's figures at exit.
    #[arg(long)]
    pub stats: bool,
}

/// `jhack peer ...`.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Trust a peer: it may connect, and do what --allow lists.
    Add {
        /// Its peer id (as its `jhack id` prints it).
        id: String,
        /// Where it listens, host:port (the port defaults to 7355).
        addr: Option<String>,
        /// A name for it (default: from its id).
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// What it may do here: play, voice, read, write, control (comma-separated),
        /// all (everything but control), or none (a new peer: play; a known one
        /// keeps what it had). control lets its screen drive this machine's sound
        /// devices, meters, spectrogram, recording and talk key: grant it only to
        /// your own machines.
        #[arg(long, value_name = "LIST")]
        allow: Option<String>,
        /// Library sync with it: `mirror` (one of my machines: one library on both;
        /// allow it read,write), `mirror-all` (the same, and this machine keeps every
        /// file: the one that holds the whole library), `subscribe` (another
        /// person's: the sounds they share with us appear here, read-only), or
        /// `none`.
        #[arg(long, value_name = "RELATION")]
        sync: Option<String>,
        /// Whether it is the machine with my speakers (yes or no): a screen run over
        /// SSH on this machine plays there.
        #[arg(long, value_name = "YES|NO")]
        speakers: Option<String>,
    },
    /// The trusted peers (online state and round trip when a jhack is running).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a peer.
    Rm {
        /// Its name or an id prefix.
        peer: String,
    },
}

/// `jhack import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files or folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Name of the sound (one file only; default: the file name without extension).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Tag every imported sound (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Bind the sound to a key (one file only).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// The sounds' own gain in dB.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "DB",
        allow_negative_numbers = true
    )]
    pub gain: f32,
}

/// `jhack edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The sound: its name or an id prefix.
    pub sound: String,
    /// New name.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Bind to this key.
    #[arg(long, value_name = "K", conflicts_with = "no_key")]
    pub key: Option<String>,
    /// Unbind its key.
    #[arg(long)]
    pub no_key: bool,
    /// Its own gain in dB (applied after loudness normalisation).
    #[arg(long, value_name = "DB", allow_negative_numbers = true)]
    pub gain: Option<f32>,
    /// Add a tag (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Remove a tag (repeatable).
    #[arg(long = "untag", value_name = "T")]
    pub untags: Vec<String>,
}

/// `jhack play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Files, or library sounds (a name or an id prefix), played one after another.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
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
    /// Play on this peer instead (repeatable): a name or an id prefix.
    #[arg(long = "peer", value_name = "P")]
    pub peers: Vec<String>,
    /// With --peer: play here too.
    #[arg(long, requires = "peers")]
    pub local: bool,
}
