//! Finding a sound from what a person typed: its exact name, else a unique prefix of
//! its id (at least four hex digits).

use super::{Library, LibraryError};
use crate::domain::SoundMeta;

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 4;

/// No single sound matches.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Nothing matches.
    #[error("no sound with that name or id in the library")]
    NotFound,
    /// Several sounds share the id prefix.
    #[error("ambiguous: {} sounds have ids starting with it ({})", matches.len(), matches.join(", "))]
    Ambiguous {
        /// "name (short id)" of each match (at most a few).
        matches: Vec<String>,
    },
    /// The library failed.
    #[error(transparent)]
    Library(#[from] LibraryError),
}

impl Library {
    /// The sound `target` names: an exact name first, then a unique id prefix.
    pub fn resolve(&self, target: &str) -> Result<SoundMeta, LookupError> {
        let store_err = |e| LookupError::Library(LibraryError::Store(e));
        if let Some(id) = self.store.by_name(target.trim()).map_err(store_err)?
            && let Some(m) = self.get(&id)?
        {
            return Ok(m);
        }
        let prefix = target.trim().to_ascii_lowercase();
        if prefix.len() < MIN_PREFIX
            || prefix.len() > 64
            || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(LookupError::NotFound);
        }
        let ids = self.store.ids_with_prefix(&prefix).map_err(store_err)?;
        match ids.as_slice() {
            [] => Err(LookupError::NotFound),
            [id] => self.get(id)?.ok_or(LookupError::NotFound),
            many => {
                let mut matches = Vec::new();
                for id in many.iter().take(5) {
                    let name = self.get(id)?.map_or_else(String::new, |m| m.name);
                    matches.push(format!("{name} ({})", id.short()));
                }
                Err(LookupError::Ambiguous { matches })
            }
        }
    }
}
