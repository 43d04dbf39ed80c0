//! The starter pack: the sounds in the repository's `sounds/` folder, built into the
//! binary so that a fresh library anywhere has something to press. The first nine
//! are bound to keys 1–9 on first run.

/// One starter sound: file name and bytes.
pub struct StarterSound {
    /// File name (its stem becomes the sound's name, without the number prefix).
    pub file: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
}

macro_rules! starter {
    ($($file:literal),* $(,)?) => {
        &[$(StarterSound { file: $file, bytes: include_bytes!(concat!("../../sounds/", $file)) }),*]
    };
}

/// Every starter sound, in key order.
pub const STARTER_SOUNDS: &[StarterSound] = starter!(
    "01-airhorn.wav",
    "02-rimshot.flac",
    "03-ding.ogg",
    "04-buzzer.wav",
    "05-success.mp3",
    "06-drumroll.flac",
    "07-whoosh.ogg",
    "08-clap.wav",
    "09-countdown.flac",
    "10-nice.mp3",
    "11-hello-there.ogg",
    "12-ready.wav",
);

impl StarterSound {
    /// The sound's name: the file stem without its number prefix ("01-airhorn.wav" → "airhorn").
    pub fn name(&self) -> &'static str {
        let stem = self.file.rsplit_once('.').map_or(self.file, |(s, _)| s);
        stem.split_once('-').map_or(stem, |(n, rest)| {
            if n.chars().all(|c| c.is_ascii_digit()) {
                rest
            } else {
                stem
            }
        })
    }

    /// The file extension, as a format hint.
    pub fn extension(&self) -> &'static str {
        self.file.rsplit_once('.').map_or("", |(_, e)| e)
    }

    /// The key it is bound to on first run: "1".."9" for the first nine.
    pub fn key(index: usize) -> Option<String> {
        (index < 9).then(|| (index + 1).to_string())
    }
}

/// Imports the starter pack into `lib`, binding the first nine to keys 1–9 (a key
/// already taken is left to its sound). Returns how many were added.
pub fn import_starter_pack(
    lib: &crate::library::Library,
) -> Result<usize, super::import::ImportError> {
    use super::import::{ImportOptions, Imported, add_staged};
    let mut added = 0;
    for (i, s) in STARTER_SOUNDS.iter().enumerate() {
        let temp = lib
            .stage_bytes(s.bytes, Some(s.extension()))
            .map_err(|source| super::import::ImportError::Library {
                path: s.file.into(),
                source,
            })?;
        let key = StarterSound::key(i).filter(|k| lib.by_key(k).ok().flatten().is_none());
        let opts = ImportOptions {
            key,
            tags: vec!["starter".into()],
            ..ImportOptions::default()
        };
        let origin = crate::domain::Origin::Local;
        if let Imported::New(_) = add_staged(lib, temp, s.name().into(), &opts, origin)? {
            added += 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_every_file_is_listed() {
        assert_eq!(STARTER_SOUNDS[0].name(), "airhorn");
        assert_eq!(STARTER_SOUNDS[10].name(), "hello-there");
        assert_eq!(STARTER_SOUNDS[2].extension(), "ogg");
        assert_eq!(StarterSound::key(0).as_deref(), Some("1"));
        assert_eq!(StarterSound::key(8).as_deref(), Some("9"));
        assert_eq!(StarterSound::key(9), None);
        // Every audio file in sounds/ is built in (a new file must be added here too).
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sounds");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.ends_with(".txt"))
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = STARTER_SOUNDS.iter().map(|s| s.file).collect();
        assert_eq!(on_disk, built_in);
    }
}
