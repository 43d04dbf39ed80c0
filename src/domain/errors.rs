//! Errors as people read them: one line, outermost context first.

/// Formats an error and its sources on one line: "outer: inner: root", leaving out
/// a source whose text the line already holds.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}
