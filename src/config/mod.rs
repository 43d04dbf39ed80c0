//! The user's configuration file (TOML): audio devices, playback loudness, cache
//! budgets and the terminal interface's keys.
//!
//! The defaults are built in as [`DEFAULT_CONFIG_TOML`], a commented TOML file that
//! is both the documentation and the only source of default values. A user's file
//! is laid over it key by key, so it only needs the keys it changes. The defaults
//! are also the schema: a key they lack, a value of another type, a number out of
//! range or a key used by two actions is refused with one line naming the file, the
//! key and the reason.
//!
//! Loading reads one file and does nothing else: where the file lives (`--home`,
//! XDG) and how command-line options override it is the caller's business.

mod error;
mod keys;
mod loudness;
mod merge;

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Table;

use crate::domain::Decibels;

pub use error::{ConfigError, Problem};
pub use keys::{KEY_NAMES, KeyBindings, normalize_key};
pub use loudness::normalization_gain_db;

/// The built-in configuration, with a comment on every key.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// The config file's name in its directory.
pub const FILE_NAME: &str = "config.toml";

/// One mebibyte: the unit of the `*_mb` budgets.
const MIB: u64 = 1024 * 1024;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[audio]`: devices and the engine's sizes.
    pub audio: AudioConfig,
    /// `[playback]`: loudness normalisation and gain caps.
    pub playback: PlaybackConfig,
    /// `[cache]`: memory and disk budgets.
    pub cache: CacheConfig,
    /// `[screen]`: the terminal interface's refresh and spectrogram.
    pub screen: ScreenConfig,
    /// `[net]`: peers.
    pub net: NetConfig,
    /// `[keys]`: the terminal interface's keys.
    pub keys: KeyBindings,
}

/// `[net]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Listen address, "host:port".
    pub listen: String,
    /// The name told to peers ("" = the host name).
    pub name: String,
    /// Whether to keep connections to trusted peers with addresses.
    pub connect: bool,
    /// Remote triggers per peer per second.
    pub triggers_per_second: f64,
    /// Remote triggers per peer at once.
    pub trigger_burst: u32,
}

impl NetConfig {
    /// The listen address; `Err` names the bad value.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "net.listen: \"{}\" is not an address and port, e.g. \"[::]:7355\"",
                self.listen
            )
        })
    }

    /// The name told to peers.
    pub fn display_name(&self) -> String {
        let n = self.name.trim();
        if !n.is_empty() {
            return n.to_string();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "jhack".to_string())
    }
}

/// `[screen]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenConfig {
    /// Most redraws per second for everything but the spectrogram (1 to 60).
    pub max_fps: u32,
    /// Spectrogram frames (waterfall rows) per second (1 to 60).
    pub spectrogram_fps: u32,
    /// Whether the spectrogram is shown at start.
    pub spectrogram: bool,
    /// What it shows at start: "input" (the microphone) or "output".
    pub spectrogram_source: String,
}

/// `[audio]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// Output device as the CLI takes it: `"default"`, an index or part of a name.
    pub output_device: String,
    /// Input device, in the same forms.
    pub input_device: String,
    /// Requested period size, in frames (16 to 8192).
    pub buffer_frames: u32,
    /// Voice capacity of the mixer (1 to 4096).
    pub voices: usize,
}

/// `[playback]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Whether sounds are normalised to `target_lufs`.
    pub normalize: bool,
    /// The common loudness, LUFS (-70 to 0).
    pub target_lufs: f32,
    /// The largest normalisation boost, dB (0 to 40).
    pub max_gain_db: f32,
    /// The largest gain a peer's trigger may ask for, dB (-60 to 40).
    pub remote_max_gain_db: f32,
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory budget for decoded sounds, MiB.
    pub decoded_mb: u64,
    /// Disk budget for sounds fetched from peers, MiB.
    pub remote_mb: u64,
}

impl Config {
    /// Loads the config file at `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a config file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml_str(text).map_err(|problem| ConfigError::Invalid {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses the text of a config file, laid over the defaults.
    pub fn from_toml_str(text: &str) -> Result<Config, Problem> {
        let user = parse_table(text)?;
        let merged = merge::overlay(&default_table(), user)?;
        let mut config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| Problem::Other(one_line(e.message())))?;
        config.keys.normalize()?;
        if !matches!(
            config.screen.spectrogram_source.as_str(),
            "input" | "output"
        ) {
            return Err(Problem::Other(format!(
                "\"screen.spectrogram_source\" = {:?} must be \"input\" or \"output\"",
                config.screen.spectrogram_source
            )));
        }
        Ok(config)
    }

    /// The configuration in effect as TOML (without comments); parsing it gives
    /// this configuration back.
    pub fn to_toml(&self) -> String {
        // Every field is a string, an integer, a float or a bool inside a table:
        // all representable in TOML, so serialising cannot fail.
        toml::to_string(self).expect("a Config is always representable in TOML")
    }
}

impl Default for Config {
    /// The built-in defaults.
    fn default() -> Self {
        let mut config: Config = default_table()
            .try_into()
            .expect("the built-in defaults are valid (test `defaults_parse`)");
        // Also proven by `defaults_parse`: the default keys are valid and distinct.
        let _ = config.keys.normalize();
        config
    }
}

impl PlaybackConfig {
    /// The normalisation gain for a sound of this loudness: 0 dB when
    /// normalisation is off, else [`normalization_gain_db`] with these settings.
    /// The sound's own gain applies on top.
    pub fn normalization_gain(&self, loudness_lufs: Option<f32>) -> Decibels {
        if !self.normalize {
            return Decibels::ZERO;
        }
        Decibels(normalization_gain_db(
            loudness_lufs,
            self.target_lufs,
            self.max_gain_db,
        ))
    }
}

impl CacheConfig {
    /// The decoded-sound budget in bytes (saturating where memory is smaller).
    pub fn decoded_bytes(&self) -> usize {
        usize::try_from(self.decoded_mb.saturating_mul(MIB)).unwrap_or(usize::MAX)
    }

    /// The remote-sound disk budget in bytes.
    pub fn remote_bytes(&self) -> u64 {
        self.remote_mb.saturating_mul(MIB)
    }
}

fn default_table() -> Table {
    parse_table(DEFAULT_CONFIG_TOML)
        .expect("the built-in defaults are valid TOML (test `defaults_parse`)")
}

fn parse_table(text: &str) -> Result<Table, Problem> {
    text.parse::<Table>().map_err(|e| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_and_column(text, span.start));
        Problem::Syntax {
            line,
            column,
            message: one_line(e.message()),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn one_line(s: &str) -> String {
    s.trim()
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn problem(text: &str) -> String {
        Config::from_toml_str(text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn defaults_parse() {
        let table = parse_table(DEFAULT_CONFIG_TOML).expect("defaults are TOML");
        let config: Config = table.try_into().expect("defaults fit Config");
        let mut keys = config.keys.clone();
        keys.normalize()
            .expect("default keys are valid and distinct");
        assert_eq!(keys, config.keys, "default keys are written normalised");
        let c = Config::default();
        assert_eq!(c, config);
        assert_eq!(c.audio.output_device, "default");
        assert_eq!(c.audio.input_device, "default");
        assert_eq!(c.audio.buffer_frames, 256);
        assert_eq!(c.audio.voices, 128);
        assert!(c.playback.normalize);
        assert_eq!(c.playback.target_lufs, -16.0);
        assert_eq!(c.playback.max_gain_db, 12.0);
        assert_eq!(c.playback.remote_max_gain_db, 0.0);
        assert_eq!(c.cache.decoded_mb, 256);
        assert_eq!(c.cache.remote_mb, 1024);
        assert_eq!(c.cache.decoded_bytes(), 256 << 20);
        assert_eq!(c.cache.remote_bytes(), 1024 << 20);
        assert_eq!(c.keys.quit, "q");
        assert_eq!(c.keys.stop_all, "space");
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Config::from_toml_str(""), Ok(Config::default()));
        assert_eq!(
            Config::from_toml_str("# nothing but a comment\n"),
            Ok(Config::default())
        );
    }

    #[test]
    fn user_file_overrides_only_what_it_names() {
        let c = Config::from_toml_str(
            "[playback]\ntarget_lufs = -23\n[keys]\nquit = \"ctrl+q\"\n[audio]\nvoices = 32\n",
        )
        .expect("valid");
        let mut want = Config::default();
        want.playback.target_lufs = -23.0;
        want.keys.quit = "ctrl+q".into();
        want.audio.voices = 32;
        assert_eq!(c, want);
    }

    #[test]
    fn dotted_and_inline_forms_merge_too() {
        let c = Config::from_toml_str("cache.remote_mb = 0\naudio = { buffer_frames = 128 }\n")
            .expect("valid");
        assert_eq!(c.cache.remote_mb, 0);
        assert_eq!(c.cache.decoded_mb, 256);
        assert_eq!(c.audio.buffer_frames, 128);
        assert_eq!(c.audio.voices, 128);
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        assert_eq!(
            problem("[playback]\nnormalise = false\n"),
            "unknown key \"playback.normalise\" (did you mean \"playback.normalize\"?)"
        );
        assert_eq!(
            problem("[audio]\ntarget_lufs = -20\n"),
            "unknown key \"audio.target_lufs\" (did you mean \"playback.target_lufs\"?)"
        );
        assert_eq!(
            problem("[keys]\nexplode = \"x\"\n"),
            "unknown key \"keys.explode\""
        );
        assert_eq!(
            problem("[playbak]\nnormalize = true\n"),
            "unknown key \"playbak\" (did you mean \"playback\"?)"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            problem("[playback]\nnormalize = \"yes\"\n"),
            "\"playback.normalize\" must be true or false, not a string"
        );
        assert_eq!(
            problem("[audio]\nvoices = 64.0\n"),
            "\"audio.voices\" must be an integer, not a number"
        );
        assert_eq!(
            problem("[audio]\noutput_device = 3\n"),
            "\"audio.output_device\" must be a string, not an integer"
        );
        assert_eq!(
            problem("keys = [\"q\"]\n"),
            "\"keys\" must be a table, not a list"
        );
    }

    #[test]
    fn out_of_range_values_are_named() {
        assert_eq!(
            problem("[audio]\nbuffer_frames = -5\n"),
            "\"audio.buffer_frames\" = -5 is out of range (16 to 8192)"
        );
        assert_eq!(
            problem("[audio]\nvoices = 0\n"),
            "\"audio.voices\" = 0 is out of range (1 to 4096)"
        );
        assert_eq!(
            problem("[playback]\ntarget_lufs = nan\n"),
            "\"playback.target_lufs\" = NaN is out of range (-70 to 0)"
        );
        assert_eq!(
            problem("[playback]\nmax_gain_db = 40.5\n"),
            "\"playback.max_gain_db\" = 40.5 is out of range (0 to 40)"
        );
        assert_eq!(
            problem("[cache]\ndecoded_mb = 99999999999\n"),
            "\"cache.decoded_mb\" = 99999999999 is out of range (0 to 1048576)"
        );
        // The limits themselves are allowed.
        let c = Config::from_toml_str("[audio]\nbuffer_frames = 16\nvoices = 4096\n")
            .expect("limits are inclusive");
        assert_eq!((c.audio.buffer_frames, c.audio.voices), (16, 4096));
    }

    #[test]
    fn duplicate_and_bad_keys_are_refused() {
        assert_eq!(
            problem("[keys]\nbind = \"q\"\n"),
            "key \"q\" is used by both \"keys.quit\" and \"keys.bind\""
        );
        assert_eq!(
            problem("[keys]\nfilter = \"Space\"\n"),
            "key \"space\" is used by both \"keys.stop_all\" and \"keys.filter\""
        );
        assert!(
            problem("[keys]\nhelp = \"hello\"\n")
                .starts_with("\"keys.help\" = \"hello\" is not a key (")
        );
        // Swapping two keys in one file is fine, and "" unbinds.
        let c = Config::from_toml_str("[keys]\nquit = \"b\"\nbind = \"q\"\nhelp = \"\"\n")
            .expect("a swap is valid");
        assert_eq!((c.keys.quit.as_str(), c.keys.bind.as_str()), ("b", "q"));
        assert_eq!(c.keys.action_for("?"), None);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let msg = problem("[audio]\nvoices = 12\nbuffer_frames = = 3\n");
        assert!(msg.starts_with("line 3, column "), "{msg}");
        assert!(msg.contains("invalid TOML"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let msg = problem("[audio]\n[audio]\n");
        assert!(msg.starts_with("line 2, column "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn errors_name_the_file_on_one_line() {
        let path = PathBuf::from("/home/x/config.toml");
        let err = Config::parse("[playback]\nlodness = 1\n", &path).expect_err("unknown key");
        assert_eq!(
            err.to_string(),
            "/home/x/config.toml: unknown key \"playback.lodness\""
        );
    }

    #[test]
    fn load_reads_files_and_treats_missing_as_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(FILE_NAME);
        assert_eq!(
            Config::load(&path).expect("missing is fine"),
            Config::default()
        );

        std::fs::write(&path, "[cache]\ndecoded_mb = 64\n").expect("write");
        let c = Config::load(&path).expect("valid file");
        assert_eq!(c.cache.decoded_mb, 64);
        assert_eq!(c.cache.remote_mb, 1024);

        std::fs::write(&path, "[cache]\ndecoded = 64\n").expect("write");
        let msg = Config::load(&path).expect_err("unknown key").to_string();
        assert_eq!(
            msg,
            format!(
                "{}: unknown key \"cache.decoded\" (did you mean \"cache.decoded_mb\"?)",
                path.display()
            )
        );

        // A directory where the file should be is a read error, not the defaults.
        let err = Config::load(dir.path()).expect_err("a directory");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot read the config file"));
    }

    #[test]
    fn to_toml_round_trips() {
        let mut c = Config::default();
        c.audio.output_device = "USB \"Audio\"".into();
        c.playback.target_lufs = -14.1;
        c.keys.quit = "ctrl+q".into();
        let text = c.to_toml();
        assert_eq!(Config::from_toml_str(&text), Ok(c));
        assert!(text.contains("target_lufs = -14.1"), "{text}");
        assert_eq!(
            Config::from_toml_str(&Config::default().to_toml()),
            Ok(Config::default())
        );
    }

    #[test]
    fn limits_cover_exactly_the_numeric_defaults() {
        let defaults = default_table();
        let mut numeric: Vec<String> = merge::leaf_keys(&defaults)
            .into_iter()
            .filter(|k| {
                matches!(
                    merge::lookup(&defaults, k),
                    Some(toml::Value::Integer(_) | toml::Value::Float(_))
                )
            })
            .collect();
        let mut limited: Vec<String> = merge::LIMITS.iter().map(|l| l.key.to_string()).collect();
        numeric.sort();
        limited.sort();
        assert_eq!(numeric, limited);
        for l in merge::LIMITS {
            assert!(l.min <= l.max, "{}", l.key);
        }
        // The defaults are within their own limits.
        merge::overlay(&defaults, Table::new()).expect("defaults within limits");
    }

    #[test]
    fn every_documented_range_matches_its_limit() {
        // Each key's comment in the defaults states its range as "MIN to MAX".
        let mut comments = std::collections::HashMap::new();
        let mut comment = String::new();
        for line in DEFAULT_CONFIG_TOML.lines() {
            if let Some(text) = line.strip_prefix('#') {
                comment.push_str(text);
                comment.push(' ');
            } else {
                if let Some((name, _)) = line.split_once(" = ") {
                    comments.insert(name.to_string(), comment.clone());
                }
                comment.clear();
            }
        }
        for l in merge::LIMITS {
            let name = l.key.rsplit('.').next().expect("dotted key");
            let comment = comments.get(name).expect("a commented key");
            let range = format!("{} to {}", l.min, l.max);
            assert!(
                comment.contains(&range),
                "{}: {range:?} not in {comment:?}",
                l.key
            );
        }
    }

    #[test]
    fn playback_gain_follows_the_switch() {
        let mut p = Config::default().playback;
        assert_eq!(p.normalization_gain(Some(-20.0)), Decibels(4.0));
        assert_eq!(p.normalization_gain(None), Decibels::ZERO);
        p.normalize = false;
        assert_eq!(p.normalization_gain(Some(-20.0)), Decibels::ZERO);
    }
}
