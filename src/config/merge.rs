//! Lays the user's table over the defaults' table. The defaults are the schema:
//! every key the user writes must exist there with a value of the same type, and
//! numbers must lie within [`LIMITS`]. Only what the user names is replaced.
//!
//! Nothing here reads files or knows the typed configuration.

use toml::{Table, Value};

use super::error::Problem;

/// The allowed range of a numeric key (inclusive at both ends).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limit {
    /// Dotted key.
    pub(super) key: &'static str,
    /// Smallest allowed value.
    pub(super) min: f64,
    /// Largest allowed value.
    pub(super) max: f64,
}

const fn limit(key: &'static str, min: f64, max: f64) -> Limit {
    Limit { key, min, max }
}

/// Ranges of every numeric key of the defaults (a test checks that both lists
/// agree). They also keep every value within its Rust type, so that turning the
/// merged table into a `Config` cannot fail on a number.
pub(super) const LIMITS: &[Limit] = &[
    limit("audio.buffer_frames", 16.0, 8192.0),
    limit("screen.max_fps", 1.0, 60.0),
    limit("screen.spectrogram_fps", 1.0, 60.0),
    limit("audio.voices", 1.0, 4096.0),
    limit("playback.target_lufs", -70.0, 0.0),
    limit("playback.max_gain_db", 0.0, 40.0),
    limit("playback.remote_max_gain_db", -60.0, 40.0),
    limit("cache.decoded_mb", 0.0, 1_048_576.0),
    limit("cache.remote_mb", 0.0, 16_777_216.0),
    limit("net.triggers_per_second", 0.1, 1000.0),
    limit("net.trigger_burst", 1.0, 1000.0),
];

/// `defaults` with `user` laid over it, or the first problem found in `user`.
pub(super) fn overlay(defaults: &Table, user: Table) -> Result<Table, Problem> {
    let mut merged = defaults.clone();
    overlay_into(&mut merged, user, "", defaults)?;
    check_limits(&merged)?;
    Ok(merged)
}

fn overlay_into(base: &mut Table, user: Table, prefix: &str, root: &Table) -> Result<(), Problem> {
    for (key, value) in user {
        let path = join(prefix, &key);
        let Some(slot) = base.get_mut(&key) else {
            return Err(Problem::UnknownKey {
                suggestion: suggest(root, prefix, &key),
                key: path,
            });
        };
        match (slot, value) {
            (Value::Table(inner), Value::Table(user_inner)) => {
                overlay_into(inner, user_inner, &path, root)?;
            }
            // `-16` where a float is expected is what the user means by `-16.0`.
            // Exact for every value within LIMITS.
            (slot @ Value::Float(_), Value::Integer(i)) => *slot = Value::Float(i as f64),
            (slot, value) if type_name(slot) == type_name(&value) => *slot = value,
            (slot, value) => {
                return Err(Problem::WrongType {
                    key: path,
                    expected: type_name(slot),
                    found: type_name(&value),
                });
            }
        }
    }
    Ok(())
}

fn check_limits(merged: &Table) -> Result<(), Problem> {
    for l in LIMITS {
        let (value, written) = match lookup(merged, l.key) {
            Some(Value::Integer(i)) => (*i as f64, i.to_string()),
            Some(Value::Float(f)) => (*f, f.to_string()),
            // Not a number: the defaults (which the overlay keeps the types of) say
            // it is, so this is a mistake in LIMITS, which a test rules out.
            _ => continue,
        };
        // `contains` is false for NaN, which is refused like any other stray value.
        if !(l.min..=l.max).contains(&value) {
            return Err(Problem::OutOfRange {
                key: l.key.to_string(),
                value: written,
                min: l.min.to_string(),
                max: l.max.to_string(),
            });
        }
    }
    Ok(())
}

/// The value at a dotted key.
pub(super) fn lookup<'a>(table: &'a Table, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Every leaf key of `table`, dotted.
pub(super) fn leaf_keys(table: &Table) -> Vec<String> {
    fn walk(table: &Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = join(prefix, k);
            match v {
                Value::Table(t) => walk(t, &path, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// The known key an unknown `key` (found under `prefix`) was probably meant to be:
/// a close key of the same table, else the same or a close name anywhere.
fn suggest(root: &Table, prefix: &str, key: &str) -> Option<String> {
    let here = if prefix.is_empty() {
        Some(root)
    } else {
        lookup(root, prefix).and_then(Value::as_table)
    };
    if let Some(table) = here
        && let Some(close) = closest(key, table.keys().map(String::as_str))
    {
        return Some(join(prefix, close));
    }
    let mut everywhere: Vec<String> = leaf_keys(root);
    everywhere.extend(root.keys().cloned());
    let last = |path: &str| path.rsplit('.').next().unwrap_or(path).to_string();
    let exact = everywhere
        .iter()
        .find(|p| last(p).eq_ignore_ascii_case(key))
        .cloned();
    exact.or_else(|| {
        let names: Vec<String> = everywhere.iter().map(|p| last(p)).collect();
        let best = closest(key, names.iter().map(String::as_str))?;
        everywhere.iter().find(|p| last(p) == best).cloned()
    })
}

/// The candidate nearest to `word` if it is near enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let threshold = (word.chars().count() / 3).max(1);
    candidates
        .filter_map(|c| {
            let lower = c.to_ascii_lowercase();
            // "buffer" for "buffer_frames": a leading part of the name counts as close.
            let prefix = word.len() >= 4 && (lower.starts_with(&word) || word.starts_with(&lower));
            let mut d = edit_distance(&word, &lower);
            if prefix {
                d = d.min(1);
            }
            (d <= threshold).then_some((d, c))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> Table {
        toml::from_str(s).expect("test TOML")
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("lodness", "loudness"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn only_named_keys_are_replaced_and_integers_become_floats() {
        let defaults = table("[a]\nx = 1\ny = 2.5\nz = \"s\"\n[b]\nw = true\n");
        let merged = overlay(&defaults, table("[a]\ny = -3\n")).expect("valid overlay");
        assert_eq!(lookup(&merged, "a.x"), Some(&Value::Integer(1)));
        assert_eq!(lookup(&merged, "a.y"), Some(&Value::Float(-3.0)));
        assert_eq!(lookup(&merged, "a.z"), Some(&Value::String("s".into())));
        assert_eq!(lookup(&merged, "b.w"), Some(&Value::Boolean(true)));
    }

    #[test]
    fn a_float_is_not_an_integer() {
        let defaults = table("[a]\nx = 1\n");
        let err = overlay(&defaults, table("[a]\nx = 1.5\n")).expect_err("must refuse");
        assert_eq!(
            err,
            Problem::WrongType {
                key: "a.x".into(),
                expected: "an integer",
                found: "a number"
            }
        );
    }

    #[test]
    fn a_section_must_stay_a_table() {
        let defaults = table("[a]\nx = 1\n");
        let err = overlay(&defaults, table("a = 3\n")).expect_err("must refuse");
        assert_eq!(err.to_string(), "\"a\" must be a table, not an integer");
    }

    #[test]
    fn suggestions() {
        let root = table(
            "[audio]\nvoices = 1\nbuffer_frames = 2\n[playback]\nnormalize = true\ntarget_lufs = 1.0\n",
        );
        assert_eq!(
            suggest(&root, "playback", "normalise").as_deref(),
            Some("playback.normalize")
        );
        assert_eq!(
            suggest(&root, "audio", "buffer").as_deref(),
            Some("audio.buffer_frames")
        );
        // In the wrong section, or at the top level.
        assert_eq!(
            suggest(&root, "audio", "target_lufs").as_deref(),
            Some("playback.target_lufs")
        );
        assert_eq!(
            suggest(&root, "", "voices").as_deref(),
            Some("audio.voices")
        );
        assert_eq!(suggest(&root, "", "playbak").as_deref(), Some("playback"));
        assert_eq!(suggest(&root, "audio", "zzz"), None);
        // A key under a section that does not exist.
        assert_eq!(
            suggest(&root, "nope", "voice").as_deref(),
            Some("audio.voices")
        );
    }
}
