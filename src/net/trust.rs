//! The trust store: `peers.toml` in the home, like SSH's `known_hosts`.
//!
//! It lists the peers this installation trusts, each with a name people use, its
//! [`PeerId`], where to reach it, and what it may do here ([`Permissions`]). Only a
//! peer listed here may connect, and only for what its `allow` grants.
//!
//! The file is TOML that people may edit by hand, so loading checks every entry
//! (the id with its check character, the name, the address, the permission words)
//! and refuses the whole file, naming the entry and the reason, rather than skip
//! one. Saving is atomic: a crash leaves the old file or the new one, never half
//! of one.
//!
//! Only this module reads or writes `peers.toml`, and it must never trust an entry
//! it could not validate.

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::peer_id::PeerId;

/// The port jhack listens on when an address names none.
pub const DEFAULT_PORT: u16 = 7355;

/// The comment at the top of the file that [`TrustStore::save`] writes.
const HEADER: &str = "\
# Peers this jhack trusts: only they may connect, and only for what `allow` lists
# (play: trigger sounds here; voice: talk to me; read: fetch my library; write: add to it;
# control: drive my sound devices from its screen, for my own machines only; `all` leaves it out).
# Edit with `jhack peer add` / `jhack peer rm`, or by hand.
";

/// The shortest id prefix that [`TrustStore::find`] accepts.
const MIN_PREFIX: usize = 4;

/// The longest peer name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The longest DNS name (RFC 1035) and label.
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// What a trusted peer may do here. Nothing by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// Trigger sounds on this soundboard.
    pub play: bool,
    /// Talk to this installation over the intercom.
    pub voice: bool,
    /// Fetch sounds from this library.
    pub read: bool,
    /// Add sounds to this library.
    pub write: bool,
    /// Drive this engine from its screen (devices, meters, spectrogram, recording,
    /// the talk key): for one's own machines only, so `all` does not grant it.
    pub control: bool,
}

impl Permissions {
    /// The name of each permission, in the order they are written.
    pub const ALL_NAMES: [&'static str; 5] = ["play", "voice", "read", "write", "control"];

    /// Parses a list such as `"play,read"` (commas and/or spaces between words, any
    /// case). `"none"` or `""` grants nothing and `"all"` everything but `control`,
    /// which is only ever granted by name. An unknown word
    /// is a [`TrustError::Permission`] naming it and listing the valid ones.
    pub fn parse(text: &str) -> Result<Permissions, TrustError> {
        Permissions::from_words(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty()),
        )
    }

    /// The names of the permissions granted, in [`Permissions::ALL_NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        self.flags()
            .into_iter()
            .filter_map(|(name, granted)| granted.then_some(name))
            .collect()
    }

    /// The permissions named by `words`, each a name, `all` or `none`.
    fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Permissions, TrustError> {
        let mut permissions = Permissions::default();
        let mut none = false;
        let mut other = false;
        for word in words {
            let lower = word.trim().to_lowercase();
            match lower.as_str() {
                "none" => none = true,
                "all" => {
                    other = true;
                    permissions = Permissions {
                        play: true,
                        voice: true,
                        read: true,
                        write: true,
                        control: permissions.control,
                    };
                }
                name => {
                    let flag = permissions.flag_mut(name).ok_or_else(|| {
                        TrustError::Permission(format!(
                            "unknown permission '{word}': the permissions are {} (or all, or none)",
                            Permissions::ALL_NAMES.join(", ")
                        ))
                    })?;
                    *flag = true;
                    other = true;
                }
            }
        }
        if none && other {
            return Err(TrustError::Permission(
                "'none' cannot be combined with other permissions".to_string(),
            ));
        }
        Ok(permissions)
    }

    fn flags(&self) -> [(&'static str, bool); 5] {
        let [play, voice, read, write, control] = Permissions::ALL_NAMES;
        [
            (play, self.play),
            (voice, self.voice),
            (read, self.read),
            (write, self.write),
            (control, self.control),
        ]
    }

    fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        match name {
            "play" => Some(&mut self.play),
            "voice" => Some(&mut self.voice),
            "read" => Some(&mut self.read),
            "write" => Some(&mut self.write),
            "control" => Some(&mut self.control),
            _ => None,
        }
    }
}

impl fmt::Display for Permissions {
    /// `"play,read"`, or `"none"` when nothing is granted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.pad("none")
        } else {
            f.pad(&names.join(","))
        }
    }
}

/// One peer of the trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPeer {
    /// What people call it (unique in the store, ignoring case).
    pub name: String,
    /// Who it is: the hash of its public key.
    pub id: PeerId,
    /// Where to reach it, as `host:port` ([`clean_address`]); `None` when it only
    /// ever connects to us.
    pub address: Option<String>,
    /// What it may do here.
    pub allow: Permissions,
    /// What its library is to ours (`None`: no library sync with it).
    pub sync: Option<SyncRelation>,
    /// The tags of our sounds offered to it (`jhack share TAG --with P`): with `read`,
    /// it may browse and fetch the live sounds carrying any of them, and no others
    /// unless it mirrors us. Cleaned like sound tags, sorted, no repeats.
    pub shares: Vec<String>,
    /// The machine with this person's speakers: a screen run over SSH here plays
    /// there (`speakers = true`; `jhack peer add … --speakers`).
    pub speakers: bool,
}

/// What a peer's library is to ours, in `peers.toml` as `sync = "mirror"` (or
/// `"mirror-all"`, or `"subscribe"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRelation {
    /// One of my own machines: both sides read and write one library (each side
    /// needs `read` and `write` from the other).
    Mirror,
    /// A mirror from which this machine keeps every file (the machine that holds
    /// the whole library): every sound's file is fetched as soon as it is known and
    /// never evicted.
    MirrorAll,
    /// Another person's library: the sounds they share with us appear here under
    /// their name, read-only, and follow their changes (receive only).
    Subscribe,
}

impl SyncRelation {
    /// The words `peers.toml` and `--sync` accept.
    pub const NAMES: [&'static str; 3] = ["mirror", "mirror-all", "subscribe"];

    /// Parses `"mirror"`, `"mirror-all"` or `"subscribe"` (any case); `"none"` or
    /// `""` is no relation.
    pub fn parse(text: &str) -> Result<Option<SyncRelation>, String> {
        match text.trim().to_lowercase().as_str() {
            "mirror" => Ok(Some(SyncRelation::Mirror)),
            "mirror-all" => Ok(Some(SyncRelation::MirrorAll)),
            "subscribe" => Ok(Some(SyncRelation::Subscribe)),
            "" | "none" => Ok(None),
            other => Err(format!(
                "unknown sync relation '{other}' (valid: {}, none)",
                SyncRelation::NAMES.join(", ")
            )),
        }
    }

    /// Its word in the file.
    pub fn name(self) -> &'static str {
        match self {
            SyncRelation::Mirror => "mirror",
            SyncRelation::MirrorAll => "mirror-all",
            SyncRelation::Subscribe => "subscribe",
        }
    }

    /// Whether the peer mirrors this library (one of my own machines).
    pub fn is_mirror(self) -> bool {
        matches!(self, SyncRelation::Mirror | SyncRelation::MirrorAll)
    }
}

/// What [`TrustStore::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The peer was not in the store.
    New,
    /// The entry with the same id was replaced.
    Updated,
}

/// The trust store could not be read, written or changed as asked.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, or not laid out as a trust store.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where (line and column) and what, on one line.
        message: String,
    },
    /// A permission list with a word that is not a permission.
    #[error("{0}")]
    Permission(String),
    /// A peer name that cannot be used.
    #[error("{0}")]
    Name(String),
    /// An address that cannot be used.
    #[error("{0}")]
    Address(String),
    /// A shared tag that cannot be used.
    #[error("{0}")]
    BadShare(String),
    /// Another peer (another id) already has this name.
    #[error("another peer is already called '{name}'")]
    NameTaken {
        /// The name, as that peer has it.
        name: String,
    },
    /// No peer has this name or an id starting with this.
    #[error(
        "no trusted peer is called '{0}' or has an id starting with it \
         (an id prefix needs at least 4 characters)"
    )]
    NotFound(String),
    /// Several peers' ids start with this.
    #[error(
        "'{query}' is the start of more than one peer's id ({}): give more of the id, or the name",
        candidates.join(", ")
    )]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The names of the peers it could be.
        candidates: Vec<String>,
    },
    /// An entry of the file that is not valid; the whole file is refused.
    #[error("{}: peer entry {index}: {reason}", path.display())]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// Which `[[peer]]`, counting from 1.
        index: usize,
        /// What is wrong with it, and where it starts.
        reason: String,
    },
}

/// The trusted peers and the file they are kept in.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
    peers: Vec<TrustedPeer>,
}

/// The file as TOML sees it; each entry is checked on its own so that an error
/// names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    peer: Vec<toml::Spanned<toml::Table>>,
}

/// The file as written.
#[derive(Serialize)]
struct FileOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peer: Vec<FileEntry>,
}

/// One `[[peer]]` of the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sync: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    share: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    speakers: bool,
}

impl TrustStore {
    /// Reads the file at `path`; a missing file is an empty store. A file that is
    /// not TOML, or not laid out as a trust store, is a [`TrustError::Parse`]
    /// naming the file and the line and column; an entry that does not validate,
    /// or repeats another's id or name, is a [`TrustError::BadEntry`].
    pub fn load(path: &Path) -> Result<TrustStore, TrustError> {
        match fs::read_to_string(path) {
            Ok(text) => TrustStore::parse(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TrustStore {
                path: path.to_path_buf(),
                peers: Vec::new(),
            }),
            Err(source) => Err(TrustError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the store to its file atomically: a temporary file in the same
    /// directory, fsynced, renamed over the file, and the directory fsynced. The
    /// file has mode 0600 on Unix. The directory is created when missing. On
    /// failure the old file is left as it was and no temporary file remains.
    pub fn save(&self) -> Result<(), TrustError> {
        let text = self.to_text().map_err(|source| TrustError::Io {
            path: self.path.clone(),
            source,
        })?;
        super::files::write_private(&self.path, text.as_bytes())
            .map_err(|(path, source)| TrustError::Io { path, source })
    }

    /// The file this store is read from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The trusted peers, in the order of the file.
    pub fn peers(&self) -> &[TrustedPeer] {
        &self.peers
    }

    /// The trusted peer with this id.
    pub fn by_id(&self, id: &PeerId) -> Option<&TrustedPeer> {
        self.peers.iter().find(|p| p.id == *id)
    }

    /// The peer called `query` (ignoring case), else the one peer whose id starts
    /// with `query` (at least 4 characters; any case, dashes optional). None is
    /// [`TrustError::NotFound`], several is [`TrustError::Ambiguous`] with their
    /// names.
    pub fn find(&self, query: &str) -> Result<&TrustedPeer, TrustError> {
        let query = query.trim();
        let not_found = || TrustError::NotFound(query.to_string());
        if query.is_empty() {
            return Err(not_found());
        }
        if let Some(peer) = self.peers.iter().find(|p| same_name(&p.name, query)) {
            return Ok(peer);
        }
        let significant = query.chars().filter(|&c| c != '-' && c != ' ').count();
        if significant < MIN_PREFIX {
            return Err(not_found());
        }
        let matches: Vec<&TrustedPeer> = self
            .peers
            .iter()
            .filter(|p| p.id.matches_prefix(query))
            .collect();
        match matches.as_slice() {
            [] => Err(not_found()),
            [one] => Ok(one),
            several => Err(TrustError::Ambiguous {
                query: query.to_string(),
                candidates: several.iter().map(|p| p.name.clone()).collect(),
            }),
        }
    }

    /// Adds `peer`, or replaces the name, address and permissions of the entry
    /// with the same id. The name and address are cleaned first
    /// ([`clean_peer_name`], [`clean_address`]); a name that another id already
    /// has (ignoring case) is [`TrustError::NameTaken`]. Not saved until
    /// [`TrustStore::save`].
    pub fn add(&mut self, peer: TrustedPeer) -> Result<Added, TrustError> {
        let name = clean_peer_name(&peer.name)?;
        let address = peer.address.as_deref().map(clean_address).transpose()?;
        if let Some(other) = self
            .peers
            .iter()
            .find(|p| p.id != peer.id && same_name(&p.name, &name))
        {
            return Err(TrustError::NameTaken {
                name: other.name.clone(),
            });
        }
        let entry = TrustedPeer {
            name,
            id: peer.id,
            address,
            allow: peer.allow,
            sync: peer.sync,
            shares: tidy_shares(&peer.shares)?,
            speakers: peer.speakers,
        };
        match self.peers.iter_mut().find(|p| p.id == entry.id) {
            Some(existing) => {
                *existing = entry;
                Ok(Added::Updated)
            }
            None => {
                self.peers.push(entry);
                Ok(Added::New)
            }
        }
    }

    /// Removes the peer that [`TrustStore::find`] finds for `query` and returns
    /// it. Not saved until [`TrustStore::save`].
    pub fn remove(&mut self, query: &str) -> Result<TrustedPeer, TrustError> {
        let id = self.find(query)?.id;
        match self.peers.iter().position(|p| p.id == id) {
            Some(index) => Ok(self.peers.remove(index)),
            None => Err(TrustError::NotFound(query.trim().to_string())),
        }
    }

    /// The trusted peer whose name (ignoring case) or address equals
    /// `name_or_addr`, if its id is not `id`: for refusing a connection that
    /// presents another key under a known name or address. Addresses are compared
    /// after [`clean_address`], so `studio` matches `studio:7355`.
    pub fn impostor_of(&self, id: &PeerId, name_or_addr: Option<&str>) -> Option<&TrustedPeer> {
        let wanted = name_or_addr?.trim();
        if wanted.is_empty() {
            return None;
        }
        let address = clean_address(wanted).ok();
        self.peers.iter().find(|p| {
            p.id != *id
                && (same_name(&p.name, wanted)
                    || (address.is_some() && p.address.as_deref() == address.as_deref()))
        })
    }

    /// Parses the text of the file at `path`.
    fn parse(path: &Path, text: &str) -> Result<TrustStore, TrustError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| TrustError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        let mut peers: Vec<TrustedPeer> = Vec::with_capacity(raw.peer.len());
        for (i, table) in raw.peer.into_iter().enumerate() {
            let index = i + 1;
            let (line, _) = line_and_column(text, table.span().start);
            let bad = |reason: String| TrustError::BadEntry {
                path: path.to_path_buf(),
                index,
                reason: format!("{reason} ([[peer]] at line {line})"),
            };
            let entry: FileEntry = table
                .into_inner()
                .try_into()
                .map_err(|e: toml::de::Error| bad(one_line(&e.to_string())))?;
            let peer = validate_entry(entry).map_err(bad)?;
            for (j, other) in peers.iter().enumerate() {
                if other.id == peer.id {
                    return Err(bad(format!(
                        "the same id as peer entry {} ('{}')",
                        j + 1,
                        other.name
                    )));
                }
                if same_name(&other.name, &peer.name) {
                    return Err(bad(format!(
                        "the same name as peer entry {} ('{}')",
                        j + 1,
                        other.name
                    )));
                }
            }
            peers.push(peer);
        }
        Ok(TrustStore {
            path: path.to_path_buf(),
            peers,
        })
    }

    /// The text of the file: the header comment, then one `[[peer]]` per peer.
    fn to_text(&self) -> Result<String, io::Error> {
        let file = FileOut {
            peer: self
                .peers
                .iter()
                .map(|p| FileEntry {
                    name: p.name.clone(),
                    id: p.id.to_string(),
                    address: p.address.clone(),
                    allow: p.allow.names().into_iter().map(str::to_string).collect(),
                    sync: p.sync.map(|r| r.name().to_string()),
                    share: p.shares.clone(),
                    speakers: p.speakers,
                })
                .collect(),
        };
        let body = toml::to_string(&file).map_err(io::Error::other)?;
        if body.is_empty() {
            Ok(HEADER.to_string())
        } else {
            Ok(format!("{HEADER}\n{body}"))
        }
    }
}

/// Checks one entry of the file and gives the peer it describes, or why not.
fn validate_entry(entry: FileEntry) -> Result<TrustedPeer, String> {
    let name = clean_peer_name(&entry.name).map_err(|e| e.to_string())?;
    let id = entry
        .id
        .parse::<PeerId>()
        .map_err(|e| format!("the id '{}' is not a peer id: {e}", entry.id))?;
    let address = entry
        .address
        .as_deref()
        .map(clean_address)
        .transpose()
        .map_err(|e| e.to_string())?;
    let allow = Permissions::from_words(entry.allow.iter().map(String::as_str))
        .map_err(|e| format!("allow: {e}"))?;
    let sync = match entry.sync.as_deref() {
        Some(s) => SyncRelation::parse(s).map_err(|e| format!("sync: {e}"))?,
        None => None,
    };
    let shares = tidy_shares(&entry.share).map_err(|e| format!("share: {e}"))?;
    Ok(TrustedPeer {
        name,
        id,
        address,
        allow,
        sync,
        shares,
        speakers: entry.speakers,
    })
}

/// Shared tags as stored: cleaned like a sound's tags (trimmed, lowercase, sorted,
/// no repeats).
fn tidy_shares(tags: &[String]) -> Result<Vec<String>, TrustError> {
    crate::library::clean_tags(tags).map_err(TrustError::BadShare)
}

/// Whether two peer names are the same, ignoring case.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Validates a peer's display name and returns it trimmed: 1 to 64 characters
/// after trimming, no control characters and no invisible or text-direction
/// characters (which would let one name pass for another on screen). A name that
/// looks like the start of a peer id is fine: [`TrustStore::find`] tries names
/// first. Errors are [`TrustError::Name`] saying why.
pub fn clean_peer_name(name: &str) -> Result<String, TrustError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TrustError::Name("a peer name cannot be empty".to_string()));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(TrustError::Name(format!(
            "a peer name has at most {MAX_NAME_CHARS} characters, this has {chars}"
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(TrustError::Name(format!(
            "a peer name cannot contain control characters (it has U+{:04X})",
            u32::from(c)
        )));
    }
    if let Some(c) = name.chars().find(|&c| is_invisible(c)) {
        return Err(TrustError::Name(format!(
            "a peer name cannot contain invisible or text-direction characters (it has U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(name.to_string())
}

/// Zero-width and bidirectional formatting characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// Validates an address and returns it as `host:port`: `"host:port"`, `"host"`
/// (with [`DEFAULT_PORT`]), `"[v6]:port"` or `"[v6]"`; a bare IPv6 address gets
/// brackets and the default port. The host is an IPv4 or IPv6 address (written
/// in its canonical form) or a DNS name (lowercased, without a trailing dot).
/// Empty hosts, ports outside 1–65535, spaces and malformed names are
/// [`TrustError::Address`] saying why.
pub fn clean_address(addr: &str) -> Result<String, TrustError> {
    let addr = addr.trim();
    let bad = |why: &str| TrustError::Address(format!("'{addr}' is not an address: {why}"));
    if addr.is_empty() {
        return Err(TrustError::Address(
            "an address cannot be empty".to_string(),
        ));
    }
    if addr.chars().any(char::is_whitespace) {
        return Err(bad("it has a space"));
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("the '[' has no ']'"))?;
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| bad(&format!("'{inside}' is not an IPv6 address")))?;
        let port = match after {
            "" => DEFAULT_PORT,
            _ => {
                let digits = after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("a ':' and the port must follow the ']'"))?;
                parse_port(digits).map_err(|why| bad(&why))?
            }
        };
        return Ok(format!("[{ip}]:{port}"));
    }
    if addr.matches(':').count() > 1 {
        return match addr.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(format!("[{ip}]:{DEFAULT_PORT}")),
            Err(_) => Err(bad(
                "an IPv6 address with a port is written in brackets: [address]:port",
            )),
        };
    }
    let (host, port) = match addr.split_once(':') {
        Some((host, digits)) => (host, parse_port(digits).map_err(|why| bad(&why))?),
        None => (addr, DEFAULT_PORT),
    };
    let host = clean_host(host).map_err(|why| bad(&why))?;
    Ok(format!("{host}:{port}"))
}

/// A port number, 1 to 65535, in decimal digits.
fn parse_port(digits: &str) -> Result<u16, String> {
    if digits.is_empty() {
        return Err("no port after the ':'".to_string());
    }
    match digits.parse::<u16>() {
        Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!(
            "the port '{digits}' is not a number from 1 to 65535"
        )),
    }
}

/// An IPv4 address or a DNS name, normalised.
fn clean_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("no host before the ':'".to_string());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    if !host.is_ascii() {
        return Err("write an international name in its ASCII (xn--) form".to_string());
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return Err(format!("a host name has 1 to {MAX_HOST_LEN} characters"));
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "each dot-separated part of a host name has 1 to {MAX_LABEL_LEN} characters"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!("'{c}' cannot be in a host name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part of a host name cannot start or end with '-'".to_string());
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it is not a valid IPv4 address".to_string());
    }
    Ok(name)
}

/// A TOML error as "line L, column C: what", on one line.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = one_line(error.message());
    match error.span() {
        Some(span) => {
            let (line, column) = line_and_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Several lines as one, joined with "; ".
fn one_line(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> PeerId {
        PeerId::from_public_key(format!("test key {n}").as_bytes())
    }

    /// Ids that share their first 4 characters (20 bits) and differ after.
    fn sibling_id(n: u8) -> PeerId {
        let mut b = [0u8; 20];
        b[..3].copy_from_slice(&[0xAB, 0xCD, 0xEF]);
        b[3] = n;
        PeerId::from_bytes(b).expect("low bits are zero")
    }

    fn peer(name: &str, id: PeerId, address: Option<&str>, allow: &str) -> TrustedPeer {
        TrustedPeer {
            name: name.to_string(),
            id,
            address: address.map(str::to_string),
            allow: Permissions::parse(allow).expect("permissions"),
            sync: None,
            shares: Vec::new(),
            speakers: false,
        }
    }

    fn store_in(dir: &Path) -> TrustStore {
        TrustStore::load(&dir.join("peers.toml")).expect("load")
    }

    fn load_text(text: &str) -> Result<TrustStore, TrustError> {
        TrustStore::parse(Path::new("/home/me/peers.toml"), text)
    }

    fn bad_entry(text: &str) -> (usize, String) {
        match load_text(text) {
            Err(e @ TrustError::BadEntry { .. }) => {
                let message = e.to_string();
                let TrustError::BadEntry { index, .. } = e else {
                    unreachable!()
                };
                assert!(
                    message.starts_with("/home/me/peers.toml: peer entry "),
                    "{message}"
                );
                assert!(!message.contains('\n'), "{message}");
                (index, message)
            }
            other => panic!("expected a bad entry, got {other:?}"),
        }
    }

    #[test]
    fn permissions_parse_and_display() {
        let p = Permissions::parse("play,read").expect("parse");
        assert_eq!(
            p,
            Permissions {
                play: true,
                read: true,
                ..Permissions::default()
            }
        );
        assert_eq!(p.to_string(), "play,read");
        assert_eq!(p.names(), ["play", "read"]);
        assert_eq!(Permissions::parse(" Read  PLAY, ").expect("parse"), p);
        assert_eq!(Permissions::parse("read play").expect("parse"), p);
        assert_eq!(
            Permissions::parse("").expect("parse"),
            Permissions::default()
        );
        assert_eq!(
            Permissions::parse("none").expect("parse"),
            Permissions::default()
        );
        assert_eq!(Permissions::default().to_string(), "none");
        assert!(Permissions::default().names().is_empty());
        let all = Permissions::parse("all").expect("parse");
        assert_eq!(all.names(), ["play", "voice", "read", "write"]);
        assert!(!all.control, "control is only granted by name");
        assert_eq!(all.to_string(), "play,voice,read,write");
        let own = Permissions::parse("all,control").expect("parse");
        assert_eq!(own.names(), Permissions::ALL_NAMES);
        assert_eq!(own.to_string(), "play,voice,read,write,control");
        assert_eq!(Permissions::parse("control,all").expect("parse"), own);
        assert_eq!(
            Permissions::parse("write,voice,read,play").expect("parse"),
            all
        );
        for p in [p, all, own, Permissions::default()] {
            assert_eq!(Permissions::parse(&p.to_string()).expect("again"), p);
        }
    }

    #[test]
    fn permissions_unknown_word_lists_the_valid_ones() {
        let message = Permissions::parse("play,sing")
            .expect_err("sing")
            .to_string();
        assert!(message.contains("'sing'"), "{message}");
        for name in Permissions::ALL_NAMES {
            assert!(message.contains(name), "{message}");
        }
        let message = Permissions::parse("none,play")
            .expect_err("both")
            .to_string();
        assert!(message.contains("none"), "{message}");
    }

    #[test]
    fn peer_names() {
        assert_eq!(clean_peer_name("  studio  ").expect("ok"), "studio");
        assert_eq!(clean_peer_name("Küche 2").expect("ok"), "Küche 2");
        assert_eq!(
            clean_peer_name("7KQ2").expect("looks like an id: fine"),
            "7KQ2"
        );
        let sixty_four = "é".repeat(64);
        assert_eq!(clean_peer_name(&sixty_four).expect("64"), sixty_four);
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            (&"x".repeat(65), "at most 64 characters, this has 65"),
            ("a\nb", "control"),
            ("a\tb", "control"),
            ("a\u{7}", "control"),
            ("stu\u{202E}oid", "text-direction"),
            ("a\u{200B}b", "invisible"),
        ] {
            match clean_peer_name(bad) {
                Err(TrustError::Name(reason)) => assert!(reason.contains(why), "{bad:?}: {reason}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn addresses() {
        for (given, want) in [
            ("studio", "studio:7355"),
            ("Studio.Example.COM.", "studio.example.com:7355"),
            ("studio:9000", "studio:9000"),
            (" 192.0.2.7:7355 ", "192.0.2.7:7355"),
            ("192.0.2.7", "192.0.2.7:7355"),
            ("host:080", "host:80"),
            ("[::1]:9", "[::1]:9"),
            ("[::1]", "[::1]:7355"),
            ("[2001:DB8:0:0::7]:65535", "[2001:db8::7]:65535"),
            ("::1", "[::1]:7355"),
            ("my-box_1.lan:1", "my-box_1.lan:1"),
            ("xn--kche-0ra.lan", "xn--kche-0ra.lan:7355"),
        ] {
            assert_eq!(clean_address(given).expect(given), want, "{given}");
        }
        for (bad, why) in [
            ("", "empty"),
            (":7355", "no host"),
            ("studio:", "no port"),
            ("studio:0", "1 to 65535"),
            ("studio:65536", "1 to 65535"),
            ("studio:+9", "1 to 65535"),
            ("studio:http", "1 to 65535"),
            ("stu dio", "space"),
            ("studio :9", "space"),
            ("[::1]:", "no port"),
            ("[::1]9", "':'"),
            ("[::1", "']'"),
            ("[studio]:9", "IPv6"),
            ("::1:9000:x", "brackets"),
            ("300.1.2.3", "IPv4"),
            ("01.2.3.4", "IPv4"),
            ("a..b", "1 to 63"),
            ("-a.b", "'-'"),
            ("a/b", "'/'"),
            ("küche.lan", "xn--"),
            (&format!("{}.lan", "a".repeat(64)), "1 to 63"),
        ] {
            match clean_address(bad) {
                Err(TrustError::Address(reason)) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn add_update_remove() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = store_in(dir.path());
        assert!(store.peers().is_empty());
        assert_eq!(store.path(), dir.path().join("peers.toml"));

        let studio = peer(" studio ", id(1), Some("192.0.2.7"), "play,read");
        assert_eq!(store.add(studio).expect("add"), Added::New);
        let got = store.by_id(&id(1)).expect("by id");
        assert_eq!(got.name, "studio");
        assert_eq!(got.address.as_deref(), Some("192.0.2.7:7355"));
        assert_eq!(
            store.add(peer("desk", id(2), None, "voice")).expect("add"),
            Added::New
        );

        // Same id: everything but the id replaced, in place.
        let renamed = peer("Big Studio", id(1), None, "all");
        assert_eq!(store.add(renamed).expect("update"), Added::Updated);
        assert_eq!(store.peers().len(), 2);
        assert_eq!(store.peers()[0].name, "Big Studio");
        assert_eq!(store.peers()[0].address, None);
        assert_eq!(
            store.peers()[0].allow,
            Permissions::parse("all").expect("all")
        );
        // Its own name again, in another case: fine.
        assert_eq!(
            store
                .add(peer("big studio", id(1), None, "play"))
                .expect("update"),
            Added::Updated
        );

        // Another id under a taken name (any case).
        match store.add(peer("DESK", id(3), None, "play")) {
            Err(TrustError::NameTaken { name }) => assert_eq!(name, "desk"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.add(peer("", id(3), None, "play")),
            Err(TrustError::Name(_))
        ));
        assert!(matches!(
            store.add(peer("x", id(3), Some("a b"), "play")),
            Err(TrustError::Address(_))
        ));
        assert_eq!(store.peers().len(), 2);

        let removed = store.remove("DESK").expect("remove");
        assert_eq!(removed.id, id(2));
        assert_eq!(store.peers().len(), 1);
        assert!(store.by_id(&id(2)).is_none());
        assert!(matches!(store.remove("desk"), Err(TrustError::NotFound(_))));
        let prefix = id(1).to_string()[..9].to_lowercase();
        assert_eq!(store.remove(&prefix).expect("by prefix").id, id(1));
        assert!(store.peers().is_empty());
    }

    #[test]
    fn find() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = store_in(dir.path());
        store.add(peer("studio", id(1), None, "play")).expect("add");
        store
            .add(peer("alpha", sibling_id(1), None, "play"))
            .expect("add");
        store
            .add(peer("beta", sibling_id(2), None, "play"))
            .expect("add");

        assert_eq!(store.find("studio").expect("name").id, id(1));
        assert_eq!(store.find(" STUDIO ").expect("name, any case").id, id(1));

        let text = id(1).to_string();
        assert_eq!(store.find(&text).expect("whole id").id, id(1));
        assert_eq!(store.find(&text[..4]).expect("4 characters").id, id(1));
        let plain_lower = text.replace('-', "").to_lowercase();
        assert_eq!(
            store
                .find(&plain_lower[..7])
                .expect("lowercase, no dashes")
                .id,
            id(1)
        );

        // 3 characters is not enough, even when unique.
        assert!(matches!(store.find(&text[..3]), Err(TrustError::NotFound(q)) if q == text[..3]));
        assert!(matches!(store.find(""), Err(TrustError::NotFound(_))));
        assert!(matches!(store.find("nobody"), Err(TrustError::NotFound(_))));

        let shared = sibling_id(1).to_string()[..4].to_string();
        assert_eq!(shared, sibling_id(2).to_string()[..4]);
        match store.find(&shared) {
            Err(e @ TrustError::Ambiguous { .. }) => {
                let message = e.to_string();
                let TrustError::Ambiguous { query, candidates } = e else {
                    unreachable!()
                };
                assert_eq!(query, shared);
                assert_eq!(candidates, ["alpha", "beta"]);
                assert!(message.contains("alpha, beta"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.find(&sibling_id(2).to_string()).expect("whole").name,
            "beta"
        );

        // A name wins over an id prefix.
        store.add(peer(&shared, id(4), None, "play")).expect("add");
        assert_eq!(store.find(&shared).expect("name first").id, id(4));
    }

    #[test]
    fn impostors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = store_in(dir.path());
        store
            .add(peer("studio", id(1), Some("192.0.2.7"), "play"))
            .expect("add");
        store.add(peer("desk", id(2), None, "play")).expect("add");
        let stranger = id(9);
        assert_eq!(
            store.impostor_of(&stranger, Some("Studio")).map(|p| p.id),
            Some(id(1))
        );
        assert_eq!(
            store
                .impostor_of(&stranger, Some("192.0.2.7:7355"))
                .map(|p| p.id),
            Some(id(1))
        );
        assert_eq!(
            store
                .impostor_of(&stranger, Some("192.0.2.7"))
                .map(|p| p.id),
            Some(id(1))
        );
        assert!(store.impostor_of(&stranger, Some("192.0.2.7:9")).is_none());
        assert!(store.impostor_of(&stranger, Some("nobody")).is_none());
        assert!(store.impostor_of(&stranger, None).is_none());
        assert!(store.impostor_of(&stranger, Some("")).is_none());
        // The right key under its own name is no impostor.
        assert!(store.impostor_of(&id(1), Some("studio")).is_none());
        assert!(store.impostor_of(&id(1), Some("192.0.2.7:7355")).is_none());
        assert_eq!(
            store.impostor_of(&id(2), Some("studio")).map(|p| p.id),
            Some(id(1))
        );
    }

    #[test]
    fn save_load_round_trip_is_byte_stable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("peers.toml");
        let mut store = store_in(dir.path());
        store
            .add(peer("studio", id(1), Some("192.0.2.7:7355"), "play,read"))
            .expect("add");
        store
            .add(peer("desk \"2\" it's", id(2), None, "none"))
            .expect("add");
        store
            .add(peer("Küche", id(3), Some("[::1]:9"), "all"))
            .expect("add");
        store.save().expect("save");
        let first = fs::read_to_string(&path).expect("read");

        assert!(first.starts_with(HEADER), "{first}");
        let expected_studio = format!(
            "[[peer]]\nname = \"studio\"\nid = \"{}\"\naddress = \"192.0.2.7:7355\"\nallow = [\"play\", \"read\"]\n",
            id(1)
        );
        assert!(
            first.contains(&format!("{HEADER}\n{expected_studio}\n[[peer]]")),
            "{first}"
        );

        let loaded = TrustStore::load(&path).expect("load");
        assert_eq!(loaded.peers(), store.peers());
        loaded.save().expect("save again");
        let second = fs::read_to_string(&path).expect("read");
        assert_eq!(first, second);
        store.save().expect("save a third time");
        assert_eq!(fs::read_to_string(&path).expect("read"), first);

        // An empty store saves as the header alone, and loads back empty.
        let empty = TrustStore::load(&dir.path().join("other.toml")).expect("missing is empty");
        empty.save().expect("save empty");
        let text = fs::read_to_string(dir.path().join("other.toml")).expect("read");
        assert_eq!(text, HEADER);
        assert!(
            TrustStore::load(&dir.path().join("other.toml"))
                .expect("load")
                .peers()
                .is_empty()
        );
    }

    #[test]
    fn hand_edited_file_loads() {
        let a = id(1).to_string();
        let b = id(2).to_string().replace('-', "").to_lowercase();
        let text = format!(
            "# my peers\n\n\
             [[peer]]  # the studio\n\
             allow = [ 'PLAY',\n   'voice', ]   # it may talk\n\
             id = '{a}'\n\
             name = \"  Studio \"\n\
             address = 'Studio.LAN'\n\
             \n\
             # the laptop, nothing yet\n\
             [[peer]]\n\
             name = \"laptop\"\n\
             id = \"{b}\"\n"
        );
        let store = load_text(&text).expect("loads");
        assert_eq!(
            store.peers(),
            [
                peer("Studio", id(1), Some("studio.lan:7355"), "play,voice"),
                peer("laptop", id(2), None, "none"),
            ]
        );
    }

    #[test]
    fn bad_entries_name_the_entry_and_why() {
        let good = |n: u32| {
            format!(
                "[[peer]]\nname = \"p{n}\"\nid = \"{}\"\nallow = []\n\n",
                id(n)
            )
        };
        let prelude = format!("# comment\n{}", good(1));
        let id_text = id(5).to_string();
        let mut typo = id_text.clone().into_bytes();
        typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).expect("ascii");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("name = \"x\"\nid = \"{typo}\"\n"),
                "check character",
            ),
            (
                format!("name = \"x\"\nid = \"{}\"\n", &id_text[..20]),
                "32 characters",
            ),
            ("name = \"x\"\nid = \"UUUU\"\n".to_string(), "'U'"),
            (format!("name = \"\"\nid = \"{id_text}\"\n"), "empty"),
            (
                format!("name = \"a\\u0007b\"\nid = \"{id_text}\"\n"),
                "control",
            ),
            (
                format!("name = \"{}\"\nid = \"{id_text}\"\n", "n".repeat(65)),
                "at most 64",
            ),
            (
                format!("name = \"x\"\nid = \"{id_text}\"\naddress = \"a b:1\"\n"),
                "space",
            ),
            (
                format!("name = \"x\"\nid = \"{id_text}\"\naddress = \"h:99999\"\n"),
                "65535",
            ),
            (
                format!("name = \"x\"\nid = \"{id_text}\"\nallow = [\"sing\"]\n"),
                "'sing'",
            ),
            (
                format!("name = \"x\"\nid = \"{id_text}\"\nalow = []\n"),
                "unknown field `alow`",
            ),
            ("name = \"x\"\n".to_string(), "missing field `id`"),
            (
                format!("name = 3\nid = \"{id_text}\"\n"),
                "expected a string",
            ),
            (
                format!("name = \"x\"\nid = \"{id_text}\"\nallow = \"play\"\n"),
                "expected a sequence",
            ),
            (
                format!("name = \"x\"\nid = \"{}\"\n", id(1)),
                "same id as peer entry 1 ('p1')",
            ),
            (
                format!("name = \"P1\"\nid = \"{id_text}\"\n"),
                "same name as peer entry 1 ('p1')",
            ),
        ];
        for (entry, why) in cases {
            let text = format!("{prelude}{}[[peer]]\n{entry}\n{}", good(2), good(3));
            let entry_line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with("[[peer]]"))
                .nth(2)
                .map(|(i, _)| i + 1)
                .expect("third entry");
            let (index, message) = bad_entry(&text);
            assert_eq!(index, 3, "{message}");
            assert!(message.contains("peer entry 3:"), "{message}");
            assert!(message.contains(why), "{why}: {message}");
            assert!(
                message.contains(&format!("at line {entry_line})")),
                "{entry_line}: {message}"
            );
        }
    }

    #[test]
    fn malformed_toml_names_the_file_and_line() {
        for (text, line) in [
            ("# ok\n[[peer]]\nname = \n", 3),
            ("[[peer]]\nname = \"a\"\nname = \"b\"\n", 3),
            ("\n\n[[peers]]\nname = \"a\"\n", 3),
            ("peer = 3\n", 1),
            ("# x\n[peer]\nname = \"a\"\n", 2),
        ] {
            match load_text(text) {
                Err(e @ TrustError::Parse { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.starts_with(&format!("/home/me/peers.toml: line {line}, column ")),
                        "{text:?}: {message}"
                    );
                    assert!(!message.contains('\n'), "{message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unreadable_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory where the file should be.
        let path = dir.path().join("peers.toml");
        fs::create_dir(&path).expect("mkdir");
        let e = TrustStore::load(&path).expect_err("a directory");
        assert!(matches!(e, TrustError::Io { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );

        fs::remove_dir(&path).expect("rmdir");
        fs::write(&path, b"\xFF\xFE not utf-8").expect("write");
        assert!(matches!(
            TrustStore::load(&path),
            Err(TrustError::Io { .. })
        ));
    }

    #[test]
    fn save_is_atomic_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("not").join("yet");
        let path = home.join("peers.toml");
        let mut store = TrustStore::load(&path).expect("missing");
        store.add(peer("studio", id(1), None, "play")).expect("add");
        store.save().expect("save creates the directory");
        store.add(peer("desk", id(2), None, "play")).expect("add");
        store.save().expect("save over");
        let names: Vec<String> = fs::read_dir(&home)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["peers.toml"]);
        assert_eq!(TrustStore::load(&path).expect("load").peers().len(), 2);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
            // Also when the file was there before with looser bits.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
            store.save().expect("save");
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
    }

    #[test]
    fn failed_save_keeps_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A non-empty directory where the file should be: the rename fails.
        let path = dir.path().join("peers.toml");
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("keep"), b"x").expect("write");
        let mut store = TrustStore::load(&dir.path().join("peers.toml.new")).expect("missing");
        store.add(peer("studio", id(1), None, "play")).expect("add");
        let store = TrustStore {
            path: path.clone(),
            peers: store.peers().to_vec(),
        };
        let e = store.save().expect_err("cannot replace a directory");
        assert!(matches!(e, TrustError::Io { .. }), "{e:?}");
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["peers.toml"]);
        assert!(path.join("keep").exists());
    }

    #[test]
    fn error_messages() {
        let io = TrustError::Io {
            path: PathBuf::from("/h/peers.toml"),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(io.to_string(), "/h/peers.toml: denied");
        assert_eq!(
            TrustError::NameTaken {
                name: "desk".into()
            }
            .to_string(),
            "another peer is already called 'desk'"
        );
        let not_found = TrustError::NotFound("abc".into()).to_string();
        assert!(
            not_found.contains("'abc'") && not_found.contains("at least 4"),
            "{not_found}"
        );
    }
}
