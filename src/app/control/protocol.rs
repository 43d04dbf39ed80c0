//! The wire format: request and response types, their JSON envelope, and reading one
//! bounded line from a socket.

use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::SoundMeta;

/// The protocol version this jhack speaks (the `"v"` of every line).
pub const VERSION: u64 = 1;

/// Longest request line the server reads, in bytes (without the newline).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Longest reply line the client reads, in bytes (a `sounds` reply of a big library
/// is long).
pub const MAX_RESPONSE_LINE: usize = 64 * 1024 * 1024;

/// Status of an error that is the request's fault.
pub(crate) const STATUS_BAD_INPUT: u8 = 2;
/// Status of any other error.
pub(crate) const STATUS_FAILURE: u8 = 1;

/// What a client asks the owning process to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Play a library sound.
    Play {
        /// The sound: a name, a key, or an id prefix, as the owner resolves it.
        target: String,
        /// Extra gain for this play, dB.
        #[serde(default)]
        gain_db: f32,
    },
    /// Stop everything playing.
    Stop,
    /// Import files into the library.
    Import {
        /// The files, absolute.
        paths: Vec<PathBuf>,
        /// Name (default: each file's stem).
        #[serde(default)]
        name: Option<String>,
        /// Tags.
        #[serde(default)]
        tags: Vec<String>,
        /// Key to bind.
        #[serde(default)]
        key: Option<String>,
        /// The sounds' own gain, dB.
        #[serde(default)]
        gain_db: f32,
    },
    /// The library's sounds.
    List,
    /// Whether anyone is there.
    Ping,
    /// The trusted peers and their state.
    Peers,
    /// Play a library sound on peers (and here with `local`); answered once every
    /// peer has started or refused.
    PlayOn {
        /// The sound, as for `play`.
        target: String,
        /// The peers: names or id prefixes.
        peers: Vec<String>,
        /// Also play here.
        #[serde(default)]
        local: bool,
        /// Extra gain, dB.
        #[serde(default)]
        gain_db: f32,
    },
    /// Change a library sound (as `jhack edit`).
    Edit {
        /// The sound, as for `play`.
        target: String,
        /// New name.
        #[serde(default)]
        name: Option<String>,
        /// Key to bind.
        #[serde(default)]
        key: Option<String>,
        /// Unbind its key.
        #[serde(default)]
        no_key: bool,
        /// New own gain, dB.
        #[serde(default)]
        gain_db: Option<f32>,
        /// Tags to add.
        #[serde(default)]
        tags: Vec<String>,
        /// Tags to remove.
        #[serde(default)]
        untags: Vec<String>,
    },
    /// Remove a library sound (as `jhack rm`).
    Remove {
        /// The sound, as for `play`.
        target: String,
    },
    /// Pin (or unpin) a sound here: its file is fetched ahead and never evicted.
    Pin {
        /// The sound, as for `play`.
        target: String,
        /// Pin (true) or unpin (false).
        on: bool,
    },
    /// Sync the library with a peer now; answered once the two match (or not).
    Sync {
        /// The peer: a name or an id prefix.
        peer: String,
        /// Then fetch every file this library lists and does not hold.
        #[serde(default)]
        all: bool,
    },
    /// What a peer shares with us now (as `jhack list --peer`).
    Browse {
        /// The peer: a name or an id prefix.
        peer: String,
    },
    /// Copy a sound someone shares with us into our library (as `jhack copy`);
    /// answered once its file is here and it is ours.
    Copy {
        /// The sound, as listed (`owner/name`).
        target: String,
        /// Its name in our library (default: its own name).
        name: Option<String>,
    },
    /// The engine: what it runs on and the devices it could use (for a screen
    /// attached to this machine).
    Engine,
    /// Restart the engine on another output and/or input device, each an index or
    /// a name as `jhack devices` lists them; what is playing stops.
    Switch {
        /// The output device.
        #[serde(default)]
        output: Option<String>,
        /// The input device.
        #[serde(default)]
        input: Option<String>,
    },
    /// Start recording the input (nothing when a recording runs already).
    RecordStart,
    /// Stop the recording; answered with its take, to be saved or discarded.
    RecordStop,
    /// Put a stopped take into the library under `name`.
    RecordSave {
        /// The take, as `record_stop` answered it.
        take: String,
        /// The sound's name.
        name: String,
    },
    /// Throw a stopped take away.
    RecordDiscard {
        /// The take, as `record_stop` answered it.
        take: String,
    },
    /// Open (`down`) or close the call's microphone: the talk key.
    Talk {
        /// Open it.
        down: bool,
    },
}

/// What the owning process answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Done; `message` says what was done, for people.
    Ok {
        /// One line.
        message: String,
    },
    /// The library's sounds (for `list`).
    Sounds {
        /// All of them.
        sounds: Vec<SoundMeta>,
        /// Those whose file is not on this machine (remote sounds).
        #[serde(default)]
        not_here: Vec<crate::domain::SoundId>,
        /// Those pinned by hand here.
        #[serde(default)]
        pinned: Vec<crate::domain::SoundId>,
        /// Those others share with us, and whose they are.
        #[serde(default)]
        owners: Vec<(crate::domain::SoundId, String)>,
    },
    /// What a peer shares with us (after `browse`).
    Offer {
        /// The peer's name.
        peer: String,
        /// Its offered sounds.
        sounds: Vec<crate::sync::share::Offered>,
    },
    /// What an `import` did.
    Imported {
        /// Files added.
        imported: usize,
        /// Files whose bytes were already in the library.
        already_present: usize,
        /// Files not imported, one `"path: reason"` line each.
        failed: Vec<String>,
    },
    /// Not done.
    Error {
        /// One line, for people.
        message: String,
        /// The exit status for the client: 2 bad input, 1 other failure.
        status: u8,
    },
    /// The answer to `ping`: the owner's process id.
    Pong {
        /// Process id.
        pid: u32,
    },
    /// The trusted peers (for `peer list`).
    Peers {
        /// Each one.
        peers: Vec<crate::net::PeerStatus>,
    },
    /// A sound as it is now (after `edit`).
    Sound {
        /// It.
        sound: SoundMeta,
    },
    /// The engine (after `engine`).
    Engine {
        /// What it runs on.
        info: crate::audio::EngineInfo,
        /// The devices the system offers.
        devices: Vec<crate::audio::DeviceInfo>,
        /// How long the recording in progress has run, ms.
        recording_ms: Option<u64>,
        /// Whether the call's microphone is open.
        talking: bool,
    },
    /// A stopped recording (after `record_stop`; none when nothing was recording).
    Recorded {
        /// Its take, for `record_save` or `record_discard`.
        take: Option<String>,
    },
    /// How library sync stands with a peer (after `sync`).
    Synced {
        /// The standing.
        status: crate::app::sync::PeerSync,
        /// What fetching every file did (with `all`).
        #[serde(default)]
        files: Option<crate::app::sync::files::FilesProgress>,
    },
}

impl Response {
    /// An error that is the request's fault (status 2).
    pub fn bad_input(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            status: STATUS_BAD_INPUT,
        }
    }

    /// An error that is not the request's fault (status 1).
    pub fn failure(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            status: STATUS_FAILURE,
        }
    }
}

/// Why a line is not a message this side accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejected {
    pub message: String,
    pub status: u8,
}

impl Rejected {
    fn bad(message: impl Into<String>) -> Rejected {
        Rejected {
            message: message.into(),
            status: STATUS_BAD_INPUT,
        }
    }
}

impl From<Rejected> for Response {
    fn from(r: Rejected) -> Response {
        Response::Error {
            message: r.message,
            status: r.status,
        }
    }
}

/// One message as a line (with its newline), in the versioned envelope.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(msg)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("v".into(), VERSION.into());
    }
    let mut line = serde_json::to_vec(&value)?;
    line.push(b'\n');
    Ok(line)
}

/// A line (without its newline) as a message, checking the envelope's version.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T, Rejected> {
    let fields = envelope(line)?;
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| Rejected::bad(format!("bad message: {e}")))
}

/// A request line as a request, with its fields and values checked.
pub(crate) fn decode_request(line: &[u8]) -> Result<Request, Rejected> {
    let fields = envelope(line)?;
    let names: Vec<String> = fields.keys().cloned().collect();
    let req: Request = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| Rejected::bad(format!("bad request: {e}")))?;
    // serde ignores extra fields of unit variants: compare with what the request
    // has (every field is always encoded, `null` included).
    let known =
        serde_json::to_value(&req).map_err(|e| Rejected::bad(format!("bad request: {e}")))?;
    if let Some(extra) = names.iter().find(|n| known.get(n.as_str()).is_none()) {
        return Err(Rejected::bad(format!(
            "bad request: unknown field `{extra}`"
        )));
    }
    req.validate()?;
    Ok(req)
}

/// The fields of a line's JSON object, without its version (which must be ours).
fn envelope(line: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Rejected> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| Rejected::bad(format!("malformed JSON: {e}")))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(Rejected::bad("not a JSON object"));
    };
    match fields.remove("v") {
        None => Err(Rejected::bad("no protocol version (field \"v\")")),
        Some(v) if v.as_u64() == Some(VERSION) => Ok(fields),
        Some(v) => Err(Rejected {
            message: format!(
                "control protocol version {v} is not supported (this jhack speaks {VERSION})"
            ),
            status: STATUS_FAILURE,
        }),
    }
}

impl Request {
    /// How long a client should wait for this request's reply: a little longer than
    /// the server waits for the owner (see [`Limits`](super::Limits)).
    pub fn suggested_timeout(&self) -> Duration {
        super::Limits::default().timeout_for(self) + Duration::from_secs(2)
    }

    fn validate(&self) -> Result<(), Rejected> {
        let finite = |g: f32| {
            if g.is_finite() {
                Ok(())
            } else {
                Err(Rejected::bad("gain_db is not a finite number"))
            }
        };
        match self {
            Request::Play { target, gain_db } => {
                if target.trim().is_empty() {
                    return Err(Rejected::bad("play: no sound named"));
                }
                finite(*gain_db)
            }
            Request::Import { paths, gain_db, .. } => {
                if paths.is_empty() {
                    return Err(Rejected::bad("import: no files"));
                }
                if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
                    return Err(Rejected::bad(format!(
                        "{}: import paths must be absolute",
                        p.display()
                    )));
                }
                finite(*gain_db)
            }
            Request::PlayOn {
                target,
                peers,
                gain_db,
                ..
            } => {
                if target.trim().is_empty() {
                    return Err(Rejected::bad("play: no sound named"));
                }
                if peers.is_empty() || peers.len() > 64 {
                    return Err(Rejected::bad("play: name one to 64 peers"));
                }
                finite(*gain_db)
            }
            Request::Edit {
                target, gain_db, ..
            } => {
                if target.trim().is_empty() {
                    return Err(Rejected::bad("edit: no sound named"));
                }
                gain_db.map_or(Ok(()), finite)
            }
            Request::Remove { target } | Request::Pin { target, .. } => {
                if target.trim().is_empty() {
                    return Err(Rejected::bad("no sound named"));
                }
                Ok(())
            }
            Request::Sync { peer, .. } | Request::Browse { peer } => {
                if peer.trim().is_empty() {
                    return Err(Rejected::bad("no peer named"));
                }
                Ok(())
            }
            Request::Copy { target, .. } => {
                if target.trim().is_empty() {
                    return Err(Rejected::bad("copy: no sound named"));
                }
                Ok(())
            }
            Request::Switch { output, input } => {
                let blank = |d: &Option<String>| d.as_deref().is_some_and(|d| d.trim().is_empty());
                if (output.is_none() && input.is_none()) || blank(output) || blank(input) {
                    return Err(Rejected::bad("switch: name an output or an input device"));
                }
                Ok(())
            }
            Request::RecordSave { take, name } => {
                if take.trim().is_empty() || name.trim().is_empty() {
                    return Err(Rejected::bad("record_save: a take and a name are needed"));
                }
                Ok(())
            }
            Request::RecordDiscard { take } => {
                if take.trim().is_empty() {
                    return Err(Rejected::bad("record_discard: no take named"));
                }
                Ok(())
            }
            Request::Stop
            | Request::List
            | Request::Ping
            | Request::Peers
            | Request::Engine
            | Request::RecordStart
            | Request::RecordStop
            | Request::Talk { .. } => Ok(()),
        }
    }

    /// Whether the request is well formed, and if not why (one line): what the
    /// socket checks of every line, for requests that arrive another way.
    pub fn check(&self) -> Result<(), String> {
        self.validate().map_err(|r| r.message)
    }
}

/// Why no line was read.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The peer closed before sending anything more.
    Eof,
    /// The line is longer than allowed.
    TooLong,
    /// No complete line before the deadline.
    TimedOut,
    /// The socket failed.
    Io(io::Error),
}

/// Reads one line (without its newline) of at most `max` bytes, by `deadline`. A
/// final line the peer ends by closing, without a newline, counts as a line.
pub(crate) fn read_line(
    reader: &mut BufReader<UnixStream>,
    max: usize,
    deadline: Instant,
) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(LineError::TimedOut);
        }
        reader
            .get_ref()
            .set_read_timeout(Some(remaining))
            .map_err(LineError::Io)?;
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LineError::TimedOut);
            }
            Err(e) => return Err(LineError::Io(e)),
        };
        if buf.is_empty() {
            return if line.is_empty() {
                Err(LineError::Eof)
            } else {
                Ok(line)
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(line);
        }
    }
}
