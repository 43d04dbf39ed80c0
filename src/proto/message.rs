//! Versioned messages exchanged between peers, encoded with postcard.
//!
//! Each message travels as the payload of one frame (see the `frame` module).
//! The first frame on a control stream is a [`Hello`] from each side; the
//! versions they announce are settled with [`negotiate`], and every later frame
//! is a [`Message`]. A blob stream starts with a [`FetchRequest`] answered by a
//! [`FetchReply`].
//!
//! The order of enum variants and struct fields is the wire format: postcard
//! writes variants by index and fields in declaration order. Changing either
//! needs a new [`PROTOCOL_VERSION`]; [`Hello`] never changes at all.
//!
//! Room to grow: a frame holds exactly one message, so the frame is the message's
//! envelope (its length) and the variant index in front is its type. A new message
//! is a new variant appended at the end; a peer that does not know it gets
//! [`Decoded::Unknown`] from [`decode_message_lenient`] and skips it, instead of
//! closing the connection. A feature's own messages travel inside
//! [`Message::Feature`], routed by their kind to the feature that registered it.
//! Every stream a peer opens starts with a [`StreamKind`] header, and every datagram
//! with a one-byte kind, so a new stream or datagram kind never reaches a handler
//! of another.
//!
//! Decoding is strict: a frame must hold exactly one value in its one canonical
//! encoding (no trailing bytes, no over-long integers), and the value must make
//! sense (see the `validate` methods). This module must never do I/O, never
//! panic whatever bytes it is given, and never hand out a value that failed
//! those checks.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::frame::MAX_FRAME;
use crate::domain::SoundId;

/// The newest protocol version this build speaks. Version 2 added stream headers,
/// skippable messages, feature lists and datagrams.
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 2;
/// Most features one side may announce.
pub const MAX_FEATURES: usize = 64;
/// Largest body of a [`Message::Feature`], in bytes.
pub const MAX_FEATURE_BODY: usize = 16 * 1024;
/// First bytes of every [`Hello`], telling a jhack peer from anything else.
pub const MAGIC: [u8; 4] = *b"JHAK";
/// Largest sound blob a peer may offer or serve, in bytes (2 GiB).
pub const MAX_BLOB: u64 = 2 << 30;
/// Bytes of sound data covered by one chunk hash on a blob stream.
pub const GROUP_LEN: u32 = 64 * 1024;
/// Longest name (peer, software, sound, format), in bytes of UTF-8.
pub const MAX_NAME: usize = 256;
/// Longest human-readable message (refusals, failures), in bytes of UTF-8.
pub const MAX_TEXT: usize = 1024;
/// Quietest gain a play request may ask for, in dB.
pub const MIN_GAIN_DB: f32 = -60.0;
/// Loudest gain a play request may ask for, in dB.
pub const MAX_GAIN_DB: f32 = 40.0;
/// Highest sample rate a sound offer may announce, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most channels a sound offer may announce.
pub const MAX_CHANNELS: u16 = 32;

/// First frame each side sends on the control stream. Its layout never changes between versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// Newest protocol version the sender speaks.
    pub version: u16,
    /// Oldest protocol version the sender speaks.
    pub min_version: u16,
    /// The sender's software and version, for logs (e.g. "jhack 0.1.0").
    pub software: String,
    /// The name the sender's user goes by.
    pub name: String,
    /// Random number identifying this run of the sender, to tell reconnects apart.
    pub session: u64,
}

impl Hello {
    /// This build's greeting: [`MAGIC`] and the versions it speaks.
    pub fn new(software: impl Into<String>, name: impl Into<String>, session: u64) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            min_version: MIN_PROTOCOL_VERSION,
            software: software.into(),
            name: name.into(),
            session,
        }
    }

    /// Checks what decoding alone cannot: the magic, the version range, the names.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if self.magic != MAGIC {
            return Err(ProtoError::NotJhack);
        }
        if self.min_version > self.version {
            return Err(invalid(format!(
                "greeting's oldest version {} is above its newest {}",
                self.min_version, self.version
            )));
        }
        check_name("software name", &self.software)?;
        check_name("peer name", &self.name)
    }
}

/// Everything said on the control stream after the [`Hello`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Refusal, then the sender closes (e.g. incompatible version).
    Refuse {
        /// Why, for the program.
        reason: Refusal,
        /// Why, for people.
        message: String,
    },
    /// Asks for a [`Message::Pong`] with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answers a [`Message::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Asks the receiver to play a sound.
    Play(PlayRequest),
    /// What became of a [`Message::Play`].
    PlayReply {
        /// The request's trigger.
        trigger: u64,
        /// What happened.
        outcome: PlayOutcome,
    },
    /// The sender is leaving; the receiver closes the connection.
    Bye,
    /// The features the sender speaks (e.g. `"blob/1"`, `"voice/1"`); sent by each
    /// side right after the [`Hello`]s. A feature is used only when both speak it.
    Features {
        /// Feature names with their version.
        names: Vec<String>,
    },
    /// A message of a feature, opaque here: the receiving side hands `body` to the
    /// feature that registered `kind` (skipped when none did).
    Feature {
        /// Which feature message (see [`feature_kind`]).
        kind: u16,
        /// The feature's own encoding.
        body: Vec<u8>,
    },
    /// The receiver refused something the sender's feature did (e.g. talking without
    /// the `voice` permission); the connection stays up.
    Denied {
        /// The feature refused.
        feature: String,
        /// Why, for people.
        message: String,
    },
    /// A fetch of one of the receiver's sounds ended here: the whole blob is verified
    /// (`error` None), or it was given up. The server may leave once each peer it
    /// triggered holds the sound.
    Fetched {
        /// The sound.
        id: SoundId,
        /// Why it was given up, if it was.
        error: Option<String>,
    },
}

impl Message {
    /// Checks the message's fields (texts, gain, sound offer).
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Message::Refuse { message, .. } => check_text("refusal message", message),
            Message::Ping { .. } | Message::Pong { .. } | Message::Bye => Ok(()),
            Message::Play(request) => request.validate(),
            Message::PlayReply { outcome, .. } => outcome.validate(),
            Message::Features { names } => {
                if names.len() > MAX_FEATURES {
                    return Err(invalid(format!(
                        "{} features announced, over the limit of {MAX_FEATURES}",
                        names.len()
                    )));
                }
                names.iter().try_for_each(|n| check_name("feature name", n))
            }
            Message::Feature { body, .. } => {
                if body.len() > MAX_FEATURE_BODY {
                    return Err(invalid(format!(
                        "feature message of {} bytes, over the {MAX_FEATURE_BODY}-byte limit",
                        body.len()
                    )));
                }
                Ok(())
            }
            Message::Denied { feature, message } => {
                check_name("feature name", feature)?;
                check_text("denial message", message)
            }
            Message::Fetched { error, .. } => match error {
                Some(e) => check_text("fetch error", e),
                None => Ok(()),
            },
        }
    }
}

/// The number of [`Message`] variants this build knows: a frame whose type is at or
/// past it is a newer peer's message, skipped.
pub const MESSAGE_KINDS: u64 = 10;

/// What a control-stream frame held.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A message this build knows, decoded and checked.
    Known(Message),
    /// A message type from a newer peer: skip it.
    Unknown(u64),
}

/// Kinds of [`Message::Feature`] messages, one range per feature.
pub mod feature_kind {
    /// Voice: a receiver's report (loss, jitter) to the talker.
    pub const VOICE_REPORT: u16 = 0x0100;
    /// Voice: the talker starts or stops a call.
    pub const VOICE_CALL: u16 = 0x0101;
}

/// The header of every stream a peer opens: the first two bytes, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKind(pub u16);

impl StreamKind {
    /// A blob fetch: a framed [`FetchRequest`] follows.
    pub const BLOB: StreamKind = StreamKind(1);
    /// A library sync request: one sync message, answered by one (`sync::wire`).
    pub const SYNC: StreamKind = StreamKind(2);
    /// A shared-sounds request: one share message, answered by one (`sync::share`).
    pub const SHARE: StreamKind = StreamKind(3);
    /// A request to an engine a screen is attached to (`app::attach`).
    pub const ENGINE: StreamKind = StreamKind(4);
    /// A mirror asks which device number this library stamps its changes with
    /// (`app::sync`): an empty request, answered by eight bytes.
    pub const SYNC_DEVICE: StreamKind = StreamKind(5);
    /// A batch of small blobs: a framed [`FetchBatchRequest`] follows, answered blob
    /// by blob, in its order: each a framed [`FetchReply`] and, when it is `Ready`,
    /// the blob's bytes whole, without group hashes (the receiver verifies the whole
    /// against its id). Kind 6 was the first batch stream (`blob-batch/1`), which sent
    /// group hashes the receiver of a whole blob does not need and the sender had to
    /// compute; it is no longer spoken.
    pub const BLOB_BATCH: StreamKind = StreamKind(7);

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// The kind from a header's bytes.
    pub fn from_bytes(b: [u8; 2]) -> StreamKind {
        StreamKind(u16::from_be_bytes(b))
    }
}

/// The first byte of every datagram.
pub mod datagram_kind {
    /// A voice packet.
    pub const VOICE: u8 = 1;
    /// A voice packet forwarded by a relay: the talker's 20-byte peer id, then the
    /// packet as the talker sent it.
    pub const VOICE_RELAYED: u8 = 2;
    /// An attached engine's meters and spectrum, to the screen watching it.
    pub const ENGINE_FRAME: u8 = 3;
}

/// A request to play a sound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayRequest {
    /// Sender-chosen number matching the [`Message::PlayReply`] to this request.
    pub trigger: u64,
    /// The sound to play.
    pub sound: SoundOffer,
    /// Gain to apply on top of loudness normalisation, in dB
    /// ([`MIN_GAIN_DB`]..=[`MAX_GAIN_DB`]).
    pub gain_db: f32,
}

impl PlayRequest {
    /// Checks the gain and the sound offer.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let gain = self.gain_db;
        if !gain.is_finite() || !(MIN_GAIN_DB..=MAX_GAIN_DB).contains(&gain) {
            return Err(invalid(format!(
                "gain of {gain} dB is outside {MIN_GAIN_DB}..={MAX_GAIN_DB} dB"
            )));
        }
        self.sound.validate()
    }
}

/// What the receiver needs to play, normalise, fetch and keep a sound it may not have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoundOffer {
    /// Content hash of the sound's file.
    pub id: SoundId,
    /// Size of the file in bytes (at most [`MAX_BLOB`]).
    pub size: u64,
    /// The sound's name as shown to people.
    pub name: String,
    /// Container or codec of the file (e.g. "flac").
    pub format: String,
    /// Length in sample frames.
    pub frames: u64,
    /// Sample rate in Hz (1..=[`MAX_SAMPLE_RATE`]).
    pub sample_rate: u32,
    /// Channel count (1..=[`MAX_CHANNELS`]).
    pub channels: u16,
    /// Integrated loudness, if measured.
    pub loudness_lufs: Option<f32>,
}

impl SoundOffer {
    /// Checks size, names, sample rate, channels and loudness.
    pub fn validate(&self) -> Result<(), ProtoError> {
        check_size("sound", self.size)?;
        check_name("sound name", &self.name)?;
        check_name("sound format", &self.format)?;
        if !(1..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(invalid(format!(
                "sample rate of {} Hz is outside 1..={MAX_SAMPLE_RATE} Hz",
                self.sample_rate
            )));
        }
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return Err(invalid(format!(
                "{} channels is outside 1..={MAX_CHANNELS}",
                self.channels
            )));
        }
        match self.loudness_lufs {
            Some(lufs) if !lufs.is_finite() => {
                Err(invalid(format!("loudness of {lufs} LUFS is not finite")))
            }
            _ => Ok(()),
        }
    }
}

/// What became of a play request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlayOutcome {
    /// The sound is playing.
    Started {
        /// Whether the receiver already had the sound.
        cached: bool,
        /// Time from receiving the request to the first sample, in microseconds.
        latency_us: u32,
    },
    /// The receiver would not play it.
    Refused {
        /// Why, for the program.
        reason: Refusal,
        /// Why, for people.
        message: String,
    },
    /// The receiver tried and could not.
    Failed {
        /// What went wrong, for people.
        message: String,
    },
}

impl PlayOutcome {
    /// Checks the message text, if any.
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            PlayOutcome::Started { .. } => Ok(()),
            PlayOutcome::Refused { message, .. } => check_text("refusal message", message),
            PlayOutcome::Failed { message } => check_text("failure message", message),
        }
    }
}

/// Why a peer refuses something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// No protocol version in common.
    Version,
    /// The user does not allow it.
    NotAllowed,
    /// Too many requests lately.
    RateLimited,
    /// The sound is larger than the receiver accepts.
    TooLarge,
    /// The receiver is busy.
    Busy,
    /// The thing asked for is not there.
    Unavailable,
    /// Anything else; the message says what.
    Other,
}

/// First frame on a blob stream (the fetching side opens it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The sound wanted.
    pub id: SoundId,
    /// Index of the first [`GROUP_LEN`]-byte group wanted (to resume a fetch).
    pub from_group: u64,
}

impl FetchRequest {
    /// Nothing to check without the sound's size; always `Ok`.
    pub fn validate(&self) -> Result<(), ProtoError> {
        Ok(())
    }
}

/// Most blobs one batch asks for.
pub const MAX_BATCH: usize = 64;

/// First frame on a batch stream: the blobs wanted, each whole, answered in this
/// order (each with a [`FetchReply`], then, when ready, its bytes whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchBatchRequest {
    /// The sounds wanted: 1 to [`MAX_BATCH`].
    pub ids: Vec<SoundId>,
}

impl FetchBatchRequest {
    /// Checks the number of sounds asked for.
    pub fn validate(&self) -> Result<(), ProtoError> {
        if self.ids.is_empty() || self.ids.len() > MAX_BATCH {
            return Err(invalid(format!(
                "a batch of {} blobs (1 to {MAX_BATCH})",
                self.ids.len()
            )));
        }
        Ok(())
    }
}

/// The server's answer; after `Ready`, raw bytes follow on the stream (not framed):
/// first 32-byte chunk hashes, then the data (another module defines those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchReply {
    /// The blob follows.
    Ready {
        /// Size of the whole blob in bytes (at most [`MAX_BLOB`]).
        size: u64,
        /// Bytes per hashed group; always [`GROUP_LEN`].
        group_len: u32,
    },
    /// The server will not send it.
    Refused {
        /// Why, for the program.
        reason: Refusal,
        /// Why, for people.
        message: String,
    },
}

impl FetchReply {
    /// Checks the size and group length, or the message text.
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            FetchReply::Ready { size, group_len } => {
                check_size("blob", *size)?;
                if *group_len != GROUP_LEN {
                    return Err(invalid(format!(
                        "group length of {group_len} bytes is not {GROUP_LEN}"
                    )));
                }
                Ok(())
            }
            FetchReply::Refused { message, .. } => check_text("refusal message", message),
        }
    }
}

/// Why a message could not be encoded, decoded or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The bytes are not a well-formed encoding of the expected type.
    #[error("malformed message: {0}")]
    Decode(String),
    /// A whole value was read with this many bytes left over.
    #[error("malformed message: {0} unexpected bytes after its end")]
    Trailing(usize),
    /// Well-formed but meaningless or out of bounds.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The encoding is this many bytes, over [`MAX_FRAME`].
    #[error("message of {0} bytes exceeds the {max}-byte frame limit", max = MAX_FRAME)]
    TooLarge(usize),
    /// The greeting lacks [`MAGIC`]: the other side is not jhack.
    #[error("not a jhack peer: its greeting lacks the jhack magic")]
    NotJhack,
    /// No protocol version in common.
    #[error("{}", version_text(*.ours_min, *.ours_max, *.theirs_min, *.theirs_max))]
    Version {
        /// Oldest version this side speaks.
        ours_min: u16,
        /// Newest version this side speaks.
        ours_max: u16,
        /// Oldest version the peer speaks.
        theirs_min: u16,
        /// Newest version the peer speaks.
        theirs_max: u16,
    },
}

/// The text of [`ProtoError::Version`].
fn version_text(ours_min: u16, ours_max: u16, theirs_min: u16, theirs_max: u16) -> String {
    let range = |min: u16, max: u16| {
        if min == max {
            min.to_string()
        } else {
            format!("{min}–{max}")
        }
    };
    let theirs = range(theirs_min, theirs_max);
    let ours = range(ours_min, ours_max);
    if ours_min == ours_max && theirs_min == theirs_max {
        format!(
            "the peer speaks protocol {theirs}, this jhack {ours}: both sides need the same \
             version, so one of the two needs updating"
        )
    } else {
        format!(
            "the peer speaks protocol {theirs}, this jhack {ours}: one of the two needs updating"
        )
    }
}

fn invalid(text: String) -> ProtoError {
    ProtoError::Invalid(text)
}

fn check_name(what: &str, name: &str) -> Result<(), ProtoError> {
    if name.len() > MAX_NAME {
        return Err(invalid(format!(
            "{what} is {} bytes, over the {MAX_NAME}-byte limit",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(format!("{what} contains control characters")));
    }
    Ok(())
}

fn check_text(what: &str, text: &str) -> Result<(), ProtoError> {
    if text.len() > MAX_TEXT {
        return Err(invalid(format!(
            "{what} is {} bytes, over the {MAX_TEXT}-byte limit",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(format!(
            "{what} contains control characters other than newline and tab"
        )));
    }
    Ok(())
}

fn check_size(what: &str, size: u64) -> Result<(), ProtoError> {
    if size > MAX_BLOB {
        return Err(invalid(format!(
            "{what} of {size} bytes exceeds the {MAX_BLOB}-byte limit"
        )));
    }
    Ok(())
}

/// Encodes a value with postcard, ready to be the payload of one frame.
///
/// Refuses an encoding over [`MAX_FRAME`] bytes ([`ProtoError::TooLarge`]) and
/// one of zero bytes ([`ProtoError::Invalid`]), neither of which fits a frame.
/// It does not validate: call the value's `validate` first to be sure the peer
/// will accept it.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtoError> {
    let bytes = postcard::to_allocvec(value)
        .map_err(|e| invalid(format!("cannot encode: {}", postcard_text(&e))))?;
    if bytes.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(bytes.len()));
    }
    if bytes.is_empty() {
        return Err(invalid("the value encodes to nothing".to_owned()));
    }
    Ok(bytes)
}

/// Decodes and checks the [`Hello`] in a frame; [`ProtoError::NotJhack`] if it
/// does not start with [`MAGIC`].
pub fn decode_hello(frame: &[u8]) -> Result<Hello, ProtoError> {
    if !frame.starts_with(&MAGIC) {
        return Err(ProtoError::NotJhack);
    }
    decode_checked(frame, Hello::validate)
}

/// Decodes and checks the [`Message`] in a frame; a type this build does not know is
/// an error here (see [`decode_message_lenient`] for the control stream).
pub fn decode_message(frame: &[u8]) -> Result<Message, ProtoError> {
    decode_checked(frame, Message::validate)
}

/// Decodes a control-stream frame: a known message is decoded strictly (malformed is
/// an error), a message type past the ones this build knows is [`Decoded::Unknown`].
pub fn decode_message_lenient(frame: &[u8]) -> Result<Decoded, ProtoError> {
    let kind = match postcard::take_from_bytes::<u64>(frame) {
        Ok((k, _)) => k,
        Err(e) => return Err(ProtoError::Decode(postcard_text(&e))),
    };
    if kind >= MESSAGE_KINDS {
        if frame.len() > MAX_FRAME {
            return Err(ProtoError::TooLarge(frame.len()));
        }
        return Ok(Decoded::Unknown(kind));
    }
    decode_message(frame).map(Decoded::Known)
}

/// Decodes and checks the [`FetchRequest`] in a frame.
pub fn decode_fetch_request(frame: &[u8]) -> Result<FetchRequest, ProtoError> {
    decode_checked(frame, FetchRequest::validate)
}

/// Decodes and checks the [`FetchBatchRequest`] in a frame.
pub fn decode_fetch_batch_request(frame: &[u8]) -> Result<FetchBatchRequest, ProtoError> {
    decode_checked(frame, FetchBatchRequest::validate)
}

/// Decodes and checks the [`FetchReply`] in a frame.
pub fn decode_fetch_reply(frame: &[u8]) -> Result<FetchReply, ProtoError> {
    decode_checked(frame, FetchReply::validate)
}

/// Decodes exactly one `T` in its canonical encoding, then validates it.
fn decode_checked<T: Serialize + DeserializeOwned>(
    frame: &[u8],
    validate: fn(&T) -> Result<(), ProtoError>,
) -> Result<T, ProtoError> {
    if frame.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(frame.len()));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(frame).map_err(|e| ProtoError::Decode(postcard_text(&e)))?;
    if !rest.is_empty() {
        return Err(ProtoError::Trailing(rest.len()));
    }
    // Postcard accepts over-long integer encodings; only the shortest is valid here,
    // so that each value has exactly one encoding.
    match postcard::to_allocvec(&value) {
        Ok(again) if again == frame => {}
        _ => return Err(ProtoError::Decode("over-long integer encoding".to_owned())),
    }
    validate(&value)?;
    Ok(value)
}

/// A lowercase account of a postcard error.
fn postcard_text(error: &postcard::Error) -> String {
    use postcard::Error as E;
    match error {
        E::DeserializeUnexpectedEnd => "it ends early".to_owned(),
        E::DeserializeBadVarint => "an integer is too large or unterminated".to_owned(),
        E::DeserializeBadBool => "a flag is neither 0 nor 1".to_owned(),
        E::DeserializeBadChar => "an invalid character".to_owned(),
        E::DeserializeBadUtf8 => "text is not valid utf-8".to_owned(),
        E::DeserializeBadOption => "an optional field's tag is neither 0 nor 1".to_owned(),
        E::DeserializeBadEnum | E::SerdeDeCustom => "unknown variant or invalid value".to_owned(),
        other => other.to_string().to_lowercase(),
    }
}

/// The highest protocol version both sides speak: this side speaks
/// `mine_min..=mine_max`, the peer what its [`Hello`] says.
pub fn negotiate(mine_min: u16, mine_max: u16, theirs: &Hello) -> Result<u16, ProtoError> {
    let low = mine_min.max(theirs.min_version);
    let high = mine_max.min(theirs.version);
    if low <= high {
        Ok(high)
    } else {
        Err(ProtoError::Version {
            ours_min: mine_min,
            ours_max: mine_max,
            theirs_min: theirs.min_version,
            theirs_max: theirs.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{FrameDecoder, FrameError, encode_frame};

    /// Tiny seeded PRNG (xorshift64*), so that runs are repeatable.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform-ish in `0..n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        /// Between `min` and `min + spread - 1` random bytes.
        fn some_bytes(&mut self, min: usize, spread: usize) -> Vec<u8> {
            let n = min + self.below(spread);
            self.bytes(n)
        }
        fn text(&mut self, max: usize) -> String {
            const PIECES: [&str; 8] = ["a", "Z", " ", "é", "ß", "🔊", "jhack", "-"];
            let mut s = String::new();
            let want = self.below(max + 1);
            while s.len() < want {
                let piece = PIECES[self.below(PIECES.len())];
                if s.len() + piece.len() > max {
                    break;
                }
                s.push_str(piece);
            }
            s
        }
        fn refusal(&mut self) -> Refusal {
            const ALL: [Refusal; 7] = [
                Refusal::Version,
                Refusal::NotAllowed,
                Refusal::RateLimited,
                Refusal::TooLarge,
                Refusal::Busy,
                Refusal::Unavailable,
                Refusal::Other,
            ];
            ALL[self.below(ALL.len())]
        }
        fn id(&mut self) -> SoundId {
            let mut id = [0; 32];
            for b in &mut id {
                *b = self.next() as u8;
            }
            SoundId(id)
        }
        /// Any u64, with small values common (to get every varint length).
        fn int(&mut self) -> u64 {
            let bits = self.below(65) as u32;
            self.next().checked_shr(64 - bits).unwrap_or(0)
        }
    }

    fn offer(rng: &mut Rng) -> SoundOffer {
        SoundOffer {
            id: rng.id(),
            size: rng.int() % (MAX_BLOB + 1),
            name: rng.text(MAX_NAME),
            format: rng.text(8),
            frames: rng.int(),
            sample_rate: 1 + (rng.int() % u64::from(MAX_SAMPLE_RATE)) as u32,
            channels: 1 + rng.below(MAX_CHANNELS as usize) as u16,
            loudness_lufs: rng.chance(3).then(|| -(rng.below(7000) as f32) / 100.0),
        }
    }

    fn message(rng: &mut Rng, variant: usize) -> Message {
        match variant % 12 {
            11 => Message::Fetched {
                id: rng.id(),
                error: rng.chance(2).then(|| rng.text(100)),
            },
            8 => Message::Features {
                names: (0..rng.below(5)).map(|_| rng.text(20)).collect(),
            },
            9 => Message::Feature {
                kind: rng.int() as u16,
                body: rng.some_bytes(0, 200),
            },
            10 => Message::Denied {
                feature: rng.text(20),
                message: rng.text(200),
            },
            0 => Message::Refuse {
                reason: rng.refusal(),
                message: rng.text(MAX_TEXT),
            },
            1 => Message::Ping { nonce: rng.int() },
            2 => Message::Pong { nonce: rng.int() },
            3 => Message::Play(PlayRequest {
                trigger: rng.int(),
                sound: offer(rng),
                gain_db: (rng.below(10001) as f32) / 100.0 - 60.0,
            }),
            4 => Message::PlayReply {
                trigger: rng.int(),
                outcome: PlayOutcome::Started {
                    cached: rng.chance(2),
                    latency_us: rng.int() as u32,
                },
            },
            5 => Message::PlayReply {
                trigger: rng.int(),
                outcome: PlayOutcome::Refused {
                    reason: rng.refusal(),
                    message: rng.text(40),
                },
            },
            6 => Message::PlayReply {
                trigger: rng.int(),
                outcome: PlayOutcome::Failed {
                    message: rng.text(MAX_TEXT),
                },
            },
            _ => Message::Bye,
        }
    }

    fn hello(rng: &mut Rng) -> Hello {
        let min_version = rng.int() as u16;
        Hello {
            magic: MAGIC,
            version: min_version.saturating_add(rng.int() as u16),
            min_version,
            software: rng.text(20),
            name: rng.text(MAX_NAME),
            session: rng.int(),
        }
    }

    fn fetch_request(rng: &mut Rng) -> FetchRequest {
        FetchRequest {
            id: rng.id(),
            from_group: rng.int(),
        }
    }

    fn fetch_reply(rng: &mut Rng) -> FetchReply {
        if rng.chance(2) {
            FetchReply::Ready {
                size: rng.int() % (MAX_BLOB + 1),
                group_len: GROUP_LEN,
            }
        } else {
            FetchReply::Refused {
                reason: rng.refusal(),
                message: rng.text(100),
            }
        }
    }

    /// Every decoder on `bytes`: each either refuses or returns a value whose
    /// encoding is exactly `bytes`. Returns how many accepted.
    fn decode_all(bytes: &[u8]) -> usize {
        let mut ok = 0;
        if let Ok(v) = decode_hello(bytes) {
            assert_eq!(encode(&v).unwrap(), bytes, "{v:?}");
            ok += 1;
        }
        if let Ok(v) = decode_message(bytes) {
            assert_eq!(encode(&v).unwrap(), bytes, "{v:?}");
            ok += 1;
        }
        if let Ok(v) = decode_fetch_request(bytes) {
            assert_eq!(encode(&v).unwrap(), bytes, "{v:?}");
            ok += 1;
        }
        if let Ok(v) = decode_fetch_reply(bytes) {
            assert_eq!(encode(&v).unwrap(), bytes, "{v:?}");
            ok += 1;
        }
        ok
    }

    /// Pushes `stream` in random pieces, checking the memory bound, and returns
    /// the payloads and how the stream ended.
    fn feed(
        rng: &mut Rng,
        dec: &mut FrameDecoder,
        stream: &[u8],
    ) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let max = dec.max();
        let mut frames = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let n = match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(8),
                2 => 1 + rng.below(200),
                _ => rest.len(),
            }
            .min(rest.len());
            let (now, later) = rest.split_at(n);
            rest = later;
            dec.push(now);
            assert!(dec.buffered() <= 4 + max + n);
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => {
                        assert!(!f.is_empty() && f.len() <= max);
                        frames.push(f);
                    }
                    Ok(None) => {
                        assert!(dec.buffered() < 4 + max);
                        break;
                    }
                    Err(e) => {
                        assert_eq!(dec.buffered(), 0);
                        assert_eq!(dec.next_frame(), Err(e.clone()));
                        dec.push(rest);
                        assert_eq!(dec.buffered(), 0);
                        assert_eq!(dec.finish(), Err(e.clone()));
                        return (frames, Err(e));
                    }
                }
            }
        }
        (frames, dec.finish())
    }

    /// A straightforward reading of a whole stream, to compare the decoder with.
    fn reference(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            if stream.len() - at < 4 {
                let needed = 4 - (stream.len() - at);
                return (frames, Err(FrameError::Truncated { needed }));
            }
            let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                return (frames, Err(FrameError::Empty));
            }
            if len > max {
                let len = len as u64;
                return (frames, Err(FrameError::TooLarge { len, max }));
            }
            if stream.len() - at - 4 < len {
                let needed = len - (stream.len() - at - 4);
                return (frames, Err(FrameError::Truncated { needed }));
            }
            frames.push(stream[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        (frames, Ok(()))
    }

    fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
                2 => bytes.truncate(rng.below(bytes.len() + 1)),
                3 => {
                    let i = rng.below(bytes.len() + 1);
                    let insert = rng.some_bytes(1, 4);
                    bytes.splice(i..i, insert);
                }
                4 => {
                    let garbage = rng.some_bytes(1, 8);
                    bytes.extend_from_slice(&garbage);
                }
                _ => {
                    // An over-long integer: re-encode a byte as two.
                    if let Some(i) = bytes.iter().position(|b| b & 0x80 == 0) {
                        let b = bytes[i];
                        bytes.splice(i..=i, [b | 0x80, 0]);
                    }
                }
            }
        }
    }

    fn through_frames(payloads: &[Vec<u8>], rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut stream = Vec::new();
        for p in payloads {
            encode_frame(p, &mut stream).unwrap();
        }
        // Byte by byte.
        let mut dec = FrameDecoder::new(MAX_FRAME);
        let mut got = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b));
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        dec.finish().unwrap();
        assert_eq!(&got, payloads);
        // In random splits.
        for _ in 0..20 {
            let mut dec = FrameDecoder::new(MAX_FRAME);
            let (frames, end) = feed(rng, &mut dec, &stream);
            end.unwrap();
            assert_eq!(&frames, payloads);
        }
        got
    }

    #[test]
    fn every_value_round_trips_through_frames() {
        let mut rng = Rng::new(7);
        let mut messages: Vec<Message> = (0..12).map(|v| message(&mut rng, v)).collect();
        messages.push(Message::Play(PlayRequest {
            trigger: u64::MAX,
            sound: SoundOffer {
                id: SoundId([0xff; 32]),
                size: MAX_BLOB,
                name: "x".repeat(MAX_NAME),
                format: "wav".into(),
                frames: u64::MAX,
                sample_rate: MAX_SAMPLE_RATE,
                channels: MAX_CHANNELS,
                loudness_lufs: Some(-23.0),
            },
            gain_db: MIN_GAIN_DB,
        }));
        let hellos = [Hello::new("jhack 0.1.0", "alice", 42), hello(&mut rng)];
        let requests = [fetch_request(&mut rng)];
        let replies = [
            FetchReply::Ready {
                size: 123_456,
                group_len: GROUP_LEN,
            },
            FetchReply::Refused {
                reason: Refusal::Unavailable,
                message: "not here".into(),
            },
        ];

        let mut payloads = Vec::new();
        payloads.extend(hellos.iter().map(|v| encode(v).unwrap()));
        payloads.extend(messages.iter().map(|v| encode(v).unwrap()));
        payloads.extend(requests.iter().map(|v| encode(v).unwrap()));
        payloads.extend(replies.iter().map(|v| encode(v).unwrap()));
        let got = through_frames(&payloads, &mut rng);

        let mut got = got.iter();
        for v in &hellos {
            assert_eq!(&decode_hello(got.next().unwrap()).unwrap(), v);
        }
        for v in &messages {
            assert_eq!(&decode_message(got.next().unwrap()).unwrap(), v);
        }
        for v in &requests {
            assert_eq!(&decode_fetch_request(got.next().unwrap()).unwrap(), v);
        }
        for v in &replies {
            assert_eq!(&decode_fetch_reply(got.next().unwrap()).unwrap(), v);
        }
        assert!(got.next().is_none());
    }

    #[test]
    fn a_newer_peers_message_is_skipped_not_fatal() {
        // A message type past the ones this build knows, with any body.
        let mut frame = Vec::new();
        frame.extend_from_slice(&postcard::to_allocvec(&(MESSAGE_KINDS + 3)).unwrap());
        frame.extend_from_slice(b"some future body");
        assert_eq!(
            decode_message_lenient(&frame),
            Ok(Decoded::Unknown(MESSAGE_KINDS + 3))
        );
        // Strict decoding still refuses it.
        assert!(decode_message(&frame).is_err());
        // Known messages decode as before; a malformed known one is still an error.
        let ping = encode(&Message::Ping { nonce: 9 }).unwrap();
        assert_eq!(
            decode_message_lenient(&ping),
            Ok(Decoded::Known(Message::Ping { nonce: 9 }))
        );
        assert!(decode_message_lenient(&ping[..1]).is_err());
        assert!(decode_message_lenient(&[]).is_err());
        // Every known variant is below MESSAGE_KINDS.
        let mut rng = Rng::new(11);
        for v in 0..12 {
            let bytes = encode(&message(&mut rng, v)).unwrap();
            let (kind, _) = postcard::take_from_bytes::<u64>(&bytes).unwrap();
            assert!(kind < MESSAGE_KINDS, "variant {v} encodes as kind {kind}");
        }
    }

    #[test]
    fn feature_lists_and_bodies_are_bounded() {
        let many = Message::Features {
            names: vec!["x".into(); MAX_FEATURES + 1],
        };
        assert!(decode_message(&encode(&many).unwrap()).is_err());
        let big = Message::Feature {
            kind: 1,
            body: vec![0; MAX_FEATURE_BODY + 1],
        };
        assert!(decode_message(&encode(&big).unwrap()).is_err());
        let ok = Message::Feature {
            kind: 1,
            body: vec![0; MAX_FEATURE_BODY],
        };
        assert_eq!(decode_message(&encode(&ok).unwrap()), Ok(ok));
    }

    #[test]
    fn stream_kinds_round_trip() {
        assert_eq!(
            StreamKind::from_bytes(StreamKind::BLOB.to_bytes()),
            StreamKind::BLOB
        );
        assert_eq!(StreamKind(0x1234).to_bytes(), [0x12, 0x34]);
    }

    #[test]
    fn hello_layout_is_fixed() {
        let hello = Hello {
            magic: MAGIC,
            version: 3,
            min_version: 1,
            software: "j".into(),
            name: "al".into(),
            session: 300,
        };
        let bytes = encode(&hello).unwrap();
        assert_eq!(bytes, b"JHAK\x03\x01\x01j\x02al\xac\x02");
        assert_eq!(decode_hello(&bytes).unwrap(), hello);
    }

    #[test]
    fn bad_magic_is_not_jhack() {
        let mut hello = Hello::new("jhack", "bob", 1);
        hello.magic = *b"HTTP";
        let bytes = encode(&hello).unwrap();
        let err = decode_hello(&bytes).unwrap_err();
        assert_eq!(err, ProtoError::NotJhack);
        assert!(err.to_string().starts_with("not a jhack peer"));
        assert_eq!(decode_hello(b"GET / HTTP/1.1"), Err(ProtoError::NotJhack));
        assert_eq!(decode_hello(b""), Err(ProtoError::NotJhack));
        assert_eq!(hello.validate(), Err(ProtoError::NotJhack));
    }

    #[test]
    fn hello_with_inverted_versions_is_invalid() {
        let mut hello = Hello::new("jhack", "bob", 1);
        hello.min_version = 2;
        hello.version = 1;
        assert!(matches!(
            decode_hello(&encode(&hello).unwrap()),
            Err(ProtoError::Invalid(_))
        ));
    }

    #[test]
    fn long_names_and_control_characters_are_invalid() {
        let long = Hello::new("jhack", "n".repeat(MAX_NAME + 1), 1);
        let err = decode_hello(&encode(&long).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid message: peer name is 257 bytes, over the 256-byte limit"
        );
        let just = Hello::new("jhack", "n".repeat(MAX_NAME), 1);
        decode_hello(&encode(&just).unwrap()).unwrap();
        for bad in ["a\nb", "\u{1b}[2J", "tab\t", "\u{7f}", "\u{85}"] {
            let hello = Hello::new("jhack", bad, 1);
            assert!(matches!(
                decode_hello(&encode(&hello).unwrap()),
                Err(ProtoError::Invalid(_))
            ));
            let hello = Hello::new(bad, "bob", 1);
            assert!(decode_hello(&encode(&hello).unwrap()).is_err());
        }

        let mut rng = Rng::new(3);
        let Message::Play(mut play) = message(&mut rng, 3) else {
            unreachable!()
        };
        play.sound.name = "s".repeat(MAX_NAME + 1);
        let msg = Message::Play(play.clone());
        assert!(matches!(
            decode_message(&encode(&msg).unwrap()),
            Err(ProtoError::Invalid(_))
        ));
        play.sound.name = "ok".into();
        play.sound.format = "fl\0ac".into();
        let msg = Message::Play(play);
        assert!(matches!(
            decode_message(&encode(&msg).unwrap()),
            Err(ProtoError::Invalid(_))
        ));
    }

    #[test]
    fn long_messages_are_invalid() {
        let ok = Message::Refuse {
            reason: Refusal::Busy,
            message: "m".repeat(MAX_TEXT),
        };
        decode_message(&encode(&ok).unwrap()).unwrap();
        let multi_line = Message::PlayReply {
            trigger: 1,
            outcome: PlayOutcome::Failed {
                message: "cannot decode:\n\tbad header".into(),
            },
        };
        decode_message(&encode(&multi_line).unwrap()).unwrap();
        let bad = [
            Message::Refuse {
                reason: Refusal::Busy,
                message: "m".repeat(MAX_TEXT + 1),
            },
            Message::PlayReply {
                trigger: 1,
                outcome: PlayOutcome::Failed {
                    message: "é".repeat(MAX_TEXT / 2 + 1),
                },
            },
            Message::PlayReply {
                trigger: 1,
                outcome: PlayOutcome::Refused {
                    reason: Refusal::Other,
                    message: "\u{1b}]0;pwned\u{7}".into(),
                },
            },
        ];
        for msg in bad {
            assert!(matches!(
                decode_message(&encode(&msg).unwrap()),
                Err(ProtoError::Invalid(_))
            ));
        }
        let reply = FetchReply::Refused {
            reason: Refusal::Other,
            message: "x".repeat(MAX_TEXT + 1),
        };
        assert!(matches!(
            decode_fetch_reply(&encode(&reply).unwrap()),
            Err(ProtoError::Invalid(_))
        ));
    }

    fn play_with(edit: impl FnOnce(&mut PlayRequest)) -> Result<Message, ProtoError> {
        let mut rng = Rng::new(11);
        let Message::Play(mut play) = message(&mut rng, 3) else {
            unreachable!()
        };
        edit(&mut play);
        decode_message(&encode(&Message::Play(play)).unwrap())
    }

    #[test]
    fn gain_must_be_finite_and_in_range() {
        for gain in [MIN_GAIN_DB, 0.0, -0.0, MAX_GAIN_DB] {
            play_with(|p| p.gain_db = gain).unwrap();
        }
        for gain in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -60.01,
            40.01,
            1e30,
        ] {
            let err = play_with(|p| p.gain_db = gain).unwrap_err();
            assert!(matches!(err, ProtoError::Invalid(_)), "{gain}");
        }
        let err = play_with(|p| p.gain_db = 41.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid message: gain of 41 dB is outside -60..=40 dB"
        );
    }

    #[test]
    fn offer_fields_must_be_in_range() {
        play_with(|p| p.sound.size = MAX_BLOB).unwrap();
        play_with(|p| p.sound.loudness_lufs = None).unwrap();
        let bad: [fn(&mut PlayRequest); 8] = [
            |p| p.sound.size = MAX_BLOB + 1,
            |p| p.sound.size = u64::MAX,
            |p| p.sound.sample_rate = 0,
            |p| p.sound.sample_rate = MAX_SAMPLE_RATE + 1,
            |p| p.sound.channels = 0,
            |p| p.sound.channels = MAX_CHANNELS + 1,
            |p| p.sound.loudness_lufs = Some(f32::NAN),
            |p| p.sound.loudness_lufs = Some(f32::NEG_INFINITY),
        ];
        for edit in bad {
            assert!(matches!(play_with(edit), Err(ProtoError::Invalid(_))));
        }
    }

    #[test]
    fn a_batch_asks_for_one_to_max_batch_blobs() {
        let batch = |n: usize| FetchBatchRequest {
            ids: (0..n)
                .map(|i| SoundId([u8::try_from(i % 256).unwrap_or(0); 32]))
                .collect(),
        };
        for n in [1, 2, MAX_BATCH] {
            let b = batch(n);
            assert_eq!(decode_fetch_batch_request(&encode(&b).unwrap()).unwrap(), b);
        }
        for n in [0, MAX_BATCH + 1, 4 * MAX_BATCH] {
            let err = decode_fetch_batch_request(&encode(&batch(n)).unwrap()).unwrap_err();
            assert!(matches!(err, ProtoError::Invalid(_)), "{n}: {err}");
        }
        // Ten thousand ids do not even make a frame.
        assert!(matches!(
            encode(&batch(10_000)),
            Err(ProtoError::TooLarge(_))
        ));
        // A length prefix claiming a million ids in a few bytes: refused, no
        // million-entry allocation.
        let mut lying = Vec::new();
        lying.extend_from_slice(&[0xc0, 0x84, 0x3d]);
        lying.extend_from_slice(&[7u8; 64]);
        assert!(decode_fetch_batch_request(&lying).is_err());
    }

    #[test]
    fn fetch_reply_size_and_group_len_are_checked() {
        let ready = |size, group_len| FetchReply::Ready { size, group_len };
        decode_fetch_reply(&encode(&ready(MAX_BLOB, GROUP_LEN)).unwrap()).unwrap();
        decode_fetch_reply(&encode(&ready(0, GROUP_LEN)).unwrap()).unwrap();
        for bad in [
            ready(MAX_BLOB + 1, GROUP_LEN),
            ready(u64::MAX, GROUP_LEN),
            ready(10, GROUP_LEN - 1),
            ready(10, 0),
            ready(10, u32::MAX),
        ] {
            let err = decode_fetch_reply(&encode(&bad).unwrap()).unwrap_err();
            assert!(matches!(err, ProtoError::Invalid(_)), "{bad:?}");
        }
        let err = decode_fetch_reply(&encode(&ready(1, 4096)).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid message: group length of 4096 bytes is not 65536"
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Message::Ping { nonce: 5 }).unwrap();
        bytes.extend_from_slice(&[0, 0]);
        let err = decode_message(&bytes).unwrap_err();
        assert_eq!(err, ProtoError::Trailing(2));
        assert_eq!(
            err.to_string(),
            "malformed message: 2 unexpected bytes after its end"
        );
        let mut bytes = encode(&Hello::new("j", "a", 1)).unwrap();
        bytes.push(1);
        assert_eq!(decode_hello(&bytes), Err(ProtoError::Trailing(1)));
        let mut bytes = encode(&fetch_request(&mut Rng::new(1))).unwrap();
        bytes.push(1);
        assert_eq!(decode_fetch_request(&bytes), Err(ProtoError::Trailing(1)));
        let mut bytes = encode(&FetchReply::Ready {
            size: 1,
            group_len: GROUP_LEN,
        })
        .unwrap();
        bytes.push(1);
        assert_eq!(decode_fetch_reply(&bytes), Err(ProtoError::Trailing(1)));
    }

    #[test]
    fn malformed_and_over_long_encodings_are_refused() {
        // Ping with nonce 0 written as a two-byte varint.
        let err = decode_message(&[1, 0x80, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed message: over-long integer encoding"
        );
        assert_eq!(
            decode_message(&[1]).unwrap_err().to_string(),
            "malformed message: it ends early"
        );
        assert!(matches!(decode_message(&[6]), Err(ProtoError::Decode(_))));
        assert!(matches!(decode_message(&[]), Err(ProtoError::Decode(_))));
        let mut bytes = encode(&FetchReply::Refused {
            reason: Refusal::Busy,
            message: "ab".into(),
        })
        .unwrap();
        *bytes.last_mut().unwrap() = 0xff;
        assert_eq!(
            decode_fetch_reply(&bytes).unwrap_err().to_string(),
            "malformed message: text is not valid utf-8"
        );
    }

    #[test]
    fn oversized_encodings_are_refused() {
        let big = Message::Refuse {
            reason: Refusal::Other,
            message: "x".repeat(MAX_FRAME),
        };
        let err = encode(&big).unwrap_err();
        assert!(matches!(err, ProtoError::TooLarge(n) if n > MAX_FRAME));
        assert!(
            err.to_string()
                .ends_with("exceeds the 65536-byte frame limit")
        );
        assert!(matches!(encode(&()), Err(ProtoError::Invalid(_))));
        let huge = vec![1u8; MAX_FRAME + 1];
        assert_eq!(
            decode_message(&huge),
            Err(ProtoError::TooLarge(MAX_FRAME + 1))
        );
    }

    fn peer(min_version: u16, version: u16) -> Hello {
        Hello {
            min_version,
            version,
            ..Hello::new("jhack", "peer", 1)
        }
    }

    #[test]
    fn negotiate_picks_the_highest_common_version() {
        assert_eq!(negotiate(1, 1, &peer(1, 1)), Ok(1));
        assert_eq!(negotiate(1, 3, &peer(2, 5)), Ok(3));
        assert_eq!(negotiate(2, 5, &peer(1, 3)), Ok(3));
        assert_eq!(negotiate(1, 9, &peer(4, 4)), Ok(4));
        assert_eq!(negotiate(3, 3, &peer(1, 9)), Ok(3));
        assert_eq!(
            negotiate(
                MIN_PROTOCOL_VERSION,
                PROTOCOL_VERSION,
                &Hello::new("j", "a", 0)
            ),
            Ok(PROTOCOL_VERSION)
        );
    }

    #[test]
    fn negotiate_explains_disjoint_versions() {
        let err = negotiate(1, 1, &peer(2, 3)).unwrap_err();
        assert_eq!(
            err,
            ProtoError::Version {
                ours_min: 1,
                ours_max: 1,
                theirs_min: 2,
                theirs_max: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "the peer speaks protocol 2–3, this jhack 1: one of the two needs updating"
        );
        assert_eq!(
            negotiate(4, 6, &peer(1, 2)).unwrap_err().to_string(),
            "the peer speaks protocol 1–2, this jhack 4–6: one of the two needs updating"
        );
        assert_eq!(
            negotiate(1, 1, &peer(2, 2)).unwrap_err().to_string(),
            "the peer speaks protocol 2, this jhack 1: both sides need the same version, \
             so one of the two needs updating"
        );
        assert!(negotiate(1, 3, &peer(3, 1)).is_err());
    }

    #[test]
    fn fuzz_never_panics_and_never_accepts_garbage() {
        const AT_LEAST: usize = 1_000_000;
        let want = std::env::var("PROTO_FUZZ_INPUTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(AT_LEAST)
            .max(AT_LEAST);
        let seed = std::env::var("PROTO_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x6a68_6163_6b21_u64);
        eprintln!("proto fuzz: seed {seed} (set PROTO_FUZZ_SEED to repeat another)");
        let started = std::time::Instant::now();
        let mut rng = Rng::new(seed);

        // Valid encodings of every type, to mutate.
        let mut corpus: Vec<Vec<u8>> = Vec::new();
        for i in 0..400 {
            corpus.push(encode(&message(&mut rng, i)).unwrap());
        }
        for _ in 0..100 {
            corpus.push(encode(&hello(&mut rng)).unwrap());
            corpus.push(encode(&fetch_request(&mut rng)).unwrap());
            corpus.push(encode(&fetch_reply(&mut rng)).unwrap());
        }
        for bytes in &corpus {
            assert!(decode_all(bytes) >= 1);
        }

        let mut count = 0usize;
        let mut accepted = 0usize;
        let mut too_large = 0usize;
        while count < want {
            count += 1;
            match count % 10 {
                // Pure random bytes: through every decoder, and as a stream.
                0..=2 => {
                    let n = rng.below(300);
                    let bytes = rng.bytes(n);
                    accepted += decode_all(&bytes);
                    if count.is_multiple_of(3) {
                        let max = 1 + rng.below(400);
                        let mut dec = FrameDecoder::new(max);
                        let (frames, end) = feed(&mut rng, &mut dec, &bytes);
                        assert_eq!((frames, end), reference(&bytes, max));
                    }
                }
                // Mutations of valid encodings.
                3..=6 => {
                    let mut bytes = corpus[rng.below(corpus.len())].clone();
                    mutate(&mut rng, &mut bytes);
                    accepted += decode_all(&bytes);
                }
                // Random length prefixes, huge ones included.
                7 | 8 => {
                    let max = if rng.chance(4) {
                        MAX_FRAME
                    } else {
                        1 + rng.below(1000)
                    };
                    let len: u32 = match rng.below(6) {
                        0 => 0,
                        1 => u32::MAX,
                        2 => max as u32 + rng.below(3) as u32,
                        3 => (max as u32).saturating_sub(rng.below(3) as u32),
                        4 => rng.next() as u32,
                        _ => rng.below(2 * max) as u32,
                    };
                    let mut dec = FrameDecoder::new(max);
                    let before = if rng.chance(2) {
                        let p = rng.some_bytes(1, max.min(50));
                        let mut framed = Vec::new();
                        encode_frame(&p, &mut framed).unwrap();
                        dec.push(&framed);
                        Some(p)
                    } else {
                        None
                    };
                    let held = dec.buffered();
                    let mut rest = len.to_be_bytes().to_vec();
                    rest.extend(rng.some_bytes(0, 64));
                    let split = rng.below(4);
                    dec.push(&rest[..split]);
                    dec.push(&rest[split..]);
                    if len == 0 || len as usize > max {
                        // Refused as soon as the prefix was whole: no payload kept.
                        assert_eq!(dec.buffered(), held);
                        if let Some(p) = before {
                            assert_eq!(dec.next_frame(), Ok(Some(p)));
                        }
                        let want = if len == 0 {
                            FrameError::Empty
                        } else {
                            too_large += 1;
                            FrameError::TooLarge {
                                len: len.into(),
                                max,
                            }
                        };
                        assert_eq!(dec.next_frame(), Err(want.clone()));
                        assert_eq!(dec.next_frame(), Err(want));
                        assert_eq!(dec.buffered(), 0);
                    } else {
                        assert!(dec.buffered() <= held + rest.len());
                        if let Some(p) = before {
                            assert_eq!(dec.next_frame(), Ok(Some(p)));
                        }
                        let payload = &rest[4..];
                        if payload.len() >= len as usize {
                            let f = dec.next_frame().unwrap().unwrap();
                            assert_eq!(f, &payload[..len as usize]);
                            decode_all(&f);
                        } else {
                            assert_eq!(dec.next_frame(), Ok(None));
                            let needed = len as usize - payload.len();
                            assert_eq!(dec.finish(), Err(FrameError::Truncated { needed }));
                        }
                    }
                }
                // Valid frames interleaved with garbage.
                _ => {
                    let mut stream = Vec::new();
                    for _ in 0..1 + rng.below(6) {
                        let payload = &corpus[rng.below(corpus.len())];
                        encode_frame(payload, &mut stream).unwrap();
                        if rng.chance(3) {
                            let garbage = rng.some_bytes(1, 12);
                            stream.extend_from_slice(&garbage);
                        }
                    }
                    let max = if rng.chance(2) {
                        MAX_FRAME
                    } else {
                        1 + rng.below(1200)
                    };
                    let mut dec = FrameDecoder::new(max);
                    let (frames, end) = feed(&mut rng, &mut dec, &stream);
                    let (want_frames, want_end) = reference(&stream, max);
                    assert_eq!(frames, want_frames);
                    assert_eq!(end, want_end);
                    for f in &frames {
                        decode_all(f);
                    }
                }
            }
        }
        assert_eq!(count, want);
        assert!(count >= AT_LEAST);
        assert!(too_large > count / 20, "{too_large} oversized prefixes");
        eprintln!(
            "proto fuzz: {count} inputs ({accepted} decoded as valid, {too_large} oversized \
             prefixes) in {:.2?}",
            started.elapsed()
        );
    }
}
