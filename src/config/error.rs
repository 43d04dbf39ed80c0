//! How loading a config file fails: one line naming the file, the key and the reason.

use std::path::PathBuf;

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("{}: cannot read the config file", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is not acceptable.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// What is wrong with a config file's content. Keys are written in dotted form
/// (`playback.target_lufs`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// Not valid TOML.
    #[error("line {line}, column {column}: invalid TOML: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// A key jhack does not know.
    #[error("unknown key \"{key}\"{}", suggestion_text(suggestion.as_deref()))]
    UnknownKey {
        /// The key as written, in dotted form.
        key: String,
        /// A known key it was probably meant to be.
        suggestion: Option<String>,
    },
    /// A value of the wrong type.
    #[error("\"{key}\" must be {expected}, not {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type it must have ("an integer").
        expected: &'static str,
        /// The type it has.
        found: &'static str,
    },
    /// A number outside its allowed range.
    #[error("\"{key}\" = {value} is out of range ({min} to {max})")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// The smallest allowed value.
        min: String,
        /// The largest allowed value.
        max: String,
    },
    /// A `[keys]` value that is not a key jhack understands.
    #[error(
        "\"{action}\" = \"{key}\" is not a key (one character, or a name such as \"space\" \
         or \"f1\", optionally after \"ctrl+\", \"alt+\" or \"shift+\")"
    )]
    BadKeyName {
        /// The action, in dotted form (`keys.quit`).
        action: String,
        /// The value as written.
        key: String,
    },
    /// Two actions of `[keys]` use the same key.
    #[error("key \"{key}\" is used by both \"{first}\" and \"{second}\"")]
    DuplicateKey {
        /// The key, normalised.
        key: String,
        /// One action using it, in dotted form.
        first: String,
        /// The other action using it.
        second: String,
    },
    /// Anything else the typed configuration refused (should not happen once the
    /// checks above have passed).
    #[error("{0}")]
    Other(String),
}

fn suggestion_text(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean \"{s}\"?)"))
}
