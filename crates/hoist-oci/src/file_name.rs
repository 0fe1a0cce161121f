//! [`is_plain_name`]: the one rule for names that hoist's stores use as a single file name
//! (snapshot keys and ids, named leases): `[A-Za-z0-9._-]{1,200}`, not starting with `.`.
//! Such a name cannot climb out of its directory, hide, or collide with temp files (which
//! start with `.`), on any filesystem.

/// Whether `name` is a plain name (see the module docs).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn plain_names() {
        for ok in ["cache-0a1b", "a", "x.y_z-1", &"x".repeat(200)] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "é", &"x".repeat(201)] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
