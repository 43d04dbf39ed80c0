//! The rules for what a sound may be called, tagged and bound to: cleaned forms
//! used for storing and comparing, and one clear reason when something is refused.

/// Longest name, in characters.
const MAX_NAME: usize = 200;
/// Longest tag, in characters.
const MAX_TAG: usize = 64;
/// Most tags on one sound.
const MAX_TAGS: usize = 64;

/// A name as stored: trimmed, non-empty, no control characters, at most 200 chars.
pub fn clean_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a sound's name cannot be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!("the name {name:?} holds control characters"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a name is at most {MAX_NAME} characters"));
    }
    Ok(name.to_string())
}

/// Tags as stored: each trimmed and lowercased, no empty ones, sorted, no repeats.
pub fn clean_tags(tags: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim().to_lowercase();
        if t.is_empty() {
            continue;
        }
        if t.chars().any(|c| c.is_control() || c == ',') {
            return Err(format!("the tag {t:?} holds a comma or control characters"));
        }
        if t.chars().count() > MAX_TAG {
            return Err(format!("a tag is at most {MAX_TAG} characters"));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(format!("a sound has at most {MAX_TAGS} tags"));
    }
    Ok(out)
}

/// A key as stored: the normalised spelling of a key jhack knows.
pub fn clean_key(key: &str) -> Result<String, String> {
    crate::config::normalize_key(key).ok_or_else(|| {
        format!("{key:?} is not a key (one character, or a name such as f1, space, ctrl+r)")
    })
}

/// `name` for n = 1, then `name-2`, `name-3`, …, kept within the name limit.
pub fn numbered(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_string();
    }
    let suffix = format!("-{n}");
    let keep = MAX_NAME.saturating_sub(suffix.len());
    let base: String = name.chars().take(keep).collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tags_and_keys_are_cleaned_or_refused() {
        assert_eq!(clean_name("  horn ").as_deref(), Ok("horn"));
        assert!(clean_name("  ").is_err());
        assert!(clean_name("a\u{7}b").is_err());
        assert!(clean_name(&"x".repeat(201)).is_err());
        let tags = ["Loud".to_string(), "loud".into(), " ".into(), "fx".into()];
        assert_eq!(clean_tags(&tags), Ok(vec!["fx".into(), "loud".into()]));
        assert!(clean_tags(&["a,b".to_string()]).is_err());
        assert_eq!(clean_key("F1").as_deref(), Ok("f1"));
        assert_eq!(clean_key("1").as_deref(), Ok("1"));
        assert!(clean_key("notakey").is_err());
        assert_eq!(numbered("horn", 1), "horn");
        assert_eq!(numbered("horn", 3), "horn-3");
        assert_eq!(numbered(&"y".repeat(200), 12).chars().count(), 200);
    }
}
