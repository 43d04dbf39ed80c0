//! Importing sounds: a file's bytes are staged as a blob (hashed on the way), decoded
//! once to learn its format, length and loudness, and then added to the library.
//!
//! The decode runs on the staged copy, so what is measured is exactly what is stored.
//! Bytes already in the library are recognised by their hash before any decoding.
//! A bad file ends in an [`ImportError`] naming it; nothing in the library changes.

use std::path::{Path, PathBuf};

use crate::domain::{Origin, SoundMeta};
use crate::dsp::LoudnessMeter;
use crate::library::{Added, Library, LibraryError, NewSound, TempBlob};
use crate::media::{Decoder, MediaError};

/// What the caller wants recorded for the sounds it imports.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name (default: the file's stem).
    pub name: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Key to bind.
    pub key: Option<String>,
    /// Own gain, dB.
    pub gain_db: f32,
}

/// What importing one file did.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// Added.
    New(SoundMeta),
    /// The same bytes were already in the library.
    AlreadyPresent(SoundMeta),
}

/// Why one file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not audio jhack can decode (or is unreadable).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file as the user named it.
        path: PathBuf,
        /// Why, in a few words.
        reason: String,
    },
    /// The library refused or failed.
    #[error("{}: {source}", path.display())]
    Library {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: LibraryError,
    },
}

impl ImportError {
    /// Whether the fault is the file's (bad input) rather than the library's.
    pub fn is_bad_file(&self) -> bool {
        match self {
            ImportError::BadFile { .. } => true,
            ImportError::Library { source, .. } => {
                matches!(source, LibraryError::Invalid(_) | LibraryError::Io { .. })
            }
        }
    }
}

/// Format, length and loudness of a decoded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Frames decoded.
    pub frames: u64,
    /// Native rate.
    pub sample_rate: u32,
    /// Native channels.
    pub channels: u16,
    /// "container/codec".
    pub format: String,
    /// Integrated loudness.
    pub loudness_lufs: Option<f32>,
}

/// Decodes `path` once, block by block (constant memory), measuring it.
pub fn analyse(path: &Path) -> Result<Analysis, MediaError> {
    let mut dec = Decoder::open(path)?;
    let info = dec.info().clone();
    let mut meter = LoudnessMeter::new(info.format.channels, info.format.sample_rate);
    let mut block = Vec::with_capacity(1 << 16);
    let mut frames = 0u64;
    loop {
        block.clear();
        let n = dec.next_block(&mut block)?;
        if n == 0 {
            break;
        }
        frames += n as u64;
        meter.add(&block);
    }
    let format = if info.container == info.codec {
        info.codec.clone()
    } else {
        format!("{}/{}", info.container, info.codec)
    };
    Ok(Analysis {
        frames,
        sample_rate: info.format.sample_rate,
        channels: info.format.channels,
        format,
        loudness_lufs: meter.integrated(),
    })
}

/// Imports one file.
pub fn import_file(
    lib: &Library,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let library = |source| ImportError::Library {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(ImportError::BadFile {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    let temp = lib.stage_file(path).map_err(|e| match e {
        LibraryError::Io { source, .. } => ImportError::BadFile {
            path: path.to_path_buf(),
            reason: io_reason(&source),
        },
        e => library(e),
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sound".into());
    add_staged(
        lib,
        temp,
        opts.name.clone().unwrap_or(stem),
        opts,
        Origin::Local,
    )
    .map_err(|e| e.with_path(path))
}

/// Adds a staged blob: recognised by hash, else decoded, measured and added.
pub fn add_staged(
    lib: &Library,
    temp: TempBlob,
    name: String,
    opts: &ImportOptions,
    origin: Origin,
) -> Result<Imported, ImportError> {
    let at = temp.path().to_path_buf();
    if let Some(existing) = lib.get(&temp.id).map_err(|source| ImportError::Library {
        path: at.clone(),
        source,
    })? {
        return Ok(Imported::AlreadyPresent(existing));
    }
    let a = analyse(temp.path()).map_err(|e| ImportError::BadFile {
        path: at.clone(),
        reason: e.reason(),
    })?;
    let new = NewSound {
        name,
        tags: opts.tags.clone(),
        key: opts.key.clone(),
        gain_db: opts.gain_db,
        frames: a.frames,
        sample_rate: a.sample_rate,
        channels: a.channels,
        format: a.format,
        loudness_lufs: a.loudness_lufs,
        origin,
    };
    match lib.add(temp, new) {
        Ok(Added::New(m)) => Ok(Imported::New(m)),
        Ok(Added::AlreadyPresent(m)) => Ok(Imported::AlreadyPresent(m)),
        Err(source) => Err(ImportError::Library { path: at, source }),
    }
}

impl ImportError {
    /// The same error, naming `path` (the file as the user gave it).
    fn with_path(self, path: &Path) -> ImportError {
        match self {
            ImportError::BadFile { reason, .. } => ImportError::BadFile {
                path: path.to_path_buf(),
                reason,
            },
            ImportError::Library { source, .. } => ImportError::Library {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file".into(),
        K::PermissionDenied => "permission denied".into(),
        K::InvalidData => e.to_string(),
        K::StorageFull => "the disk is full".into(),
        _ => e.to_string(),
    }
}

/// The files under `paths`: files as given, folders walked recursively (sorted, so
/// imports are repeatable; hidden entries skipped). Paths that cannot be read are
/// returned as errors.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ImportError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                errors.push(ImportError::BadFile {
                    path: p.clone(),
                    reason: io_reason(&e),
                });
                continue;
            }
        };
        if !meta.is_dir() {
            files.push(p.clone());
            continue;
        }
        let walk = walkdir::WalkDir::new(p)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() => files.push(e.into_path()),
                Ok(_) => {}
                Err(e) => errors.push(ImportError::BadFile {
                    path: e.path().map_or_else(|| p.clone(), Path::to_path_buf),
                    reason: e
                        .io_error()
                        .map_or_else(|| "cannot be read".into(), io_reason),
                }),
            }
        }
    }
    (files, errors)
}
