//! Builder and node names: [`validate_name`] (buildx's rule: a letter first, then letters,
//! digits and `._-`; stored lowercase) and [`generate_name`] for `create` without `--name`
//! (buildx draws docker's `adjective_surname`; hoist draws `adjective_noun` from its own
//! short lists, retrying on a name already taken).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Checks a builder or node name and returns it lowercased, as buildx stores it.
pub fn validate_name(name: &str) -> Result<String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !first_ok || !rest_ok {
        return Err(Error::InvalidName(name.to_owned()));
    }
    Ok(name.to_ascii_lowercase())
}

const ADJECTIVES: &[&str] = &[
    "amber", "brisk", "calm", "deft", "eager", "fleet", "gentle", "hardy", "keen", "lucid",
    "mellow", "nimble", "plucky", "quiet", "rugged", "steady", "tidy", "upbeat", "vivid", "witty",
];

const NOUNS: &[&str] = &[
    "anchor", "beam", "crane", "davit", "gantry", "hook", "jack", "lever", "mast", "pulley",
    "rigger", "sheave", "tackle", "winch", "yard", "boom", "cleat", "derrick", "capstan", "block",
];

/// A fresh `adjective_noun` name that `taken` says is free (six draws, as buildx).
pub fn generate_name(taken: impl Fn(&str) -> bool) -> Result<String> {
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ u64::from(std::process::id()).rotate_left(32);
    for _ in 0..6 {
        // xorshift64: any spread will do, names only need to differ.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let adjective = ADJECTIVES[(seed % ADJECTIVES.len() as u64) as usize];
        let noun = NOUNS[((seed >> 32) % NOUNS.len() as u64) as usize];
        let name = format!("{adjective}_{noun}");
        if !taken(&name) {
            return Ok(name);
        }
    }
    Err(Error::Invalid("failed to generate random name".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_buildx_validates_them() {
        assert_eq!(validate_name("My.Builder-1_x").unwrap(), "my.builder-1_x");
        for bad in ["", "1abc", "-a", "a b", "a/b", "ä"] {
            assert_eq!(
                validate_name(bad).unwrap_err().to_string(),
                format!("invalid name {bad}, name needs to start with a letter and may not contain symbols, except ._-")
            );
        }
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate_name(|_| false).unwrap();
        assert_eq!(validate_name(&first).unwrap(), first);
        assert!(first.contains('_'));
        assert!(generate_name(|_| true).is_err());
    }
}
