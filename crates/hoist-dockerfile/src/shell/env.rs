//! The variables a word is expanded against.
//!
//! [`Lookup`] is all the lexer needs: "is this name set, and to what". [`Env`] is the usual
//! implementation, built from `KEY=VALUE` entries the way BuildKit builds one from a
//! process-style environment list: a later entry for the same key wins, an entry without `=`
//! sets the key to the empty string. Keys compare exactly (Linux); [`KeyCase::Insensitive`]
//! gives Windows' case-insensitive keys.

use std::collections::{BTreeMap, HashMap};

/// Something variables can be looked up in. `None` means "not set", which differs from
/// set-but-empty for `${V-word}`, `${V+word}` and `${V?msg}`.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

/// Whether variable names compare exactly or ignoring case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyCase {
    /// Linux and every other Unix: `$pwd` and `$PWD` are different variables.
    #[default]
    Sensitive,
    /// Windows: `$pwd` is `$PWD`.
    Insensitive,
}

/// Variables from a list of `KEY=VALUE` entries, a later entry winning over an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    keys: Vec<String>,
    case: KeyCase,
}

impl Env {
    /// An empty environment with case-sensitive keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty environment whose keys compare as `case` says.
    pub fn with_case(case: KeyCase) -> Self {
        Env {
            case,
            ..Self::default()
        }
    }

    /// Case-sensitive variables from `KEY=VALUE` entries (`KEY` alone means `KEY=`).
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut env = Self::new();
        env.extend(pairs);
        env
    }

    /// Adds one `KEY=VALUE` entry (split at the first `=`; `KEY` alone sets it empty),
    /// replacing an earlier value of the same key.
    pub fn push(&mut self, entry: &str) {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        self.set(key, value);
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: &str, value: &str) {
        self.keys.push(key.to_owned());
        self.vars.insert(self.normalize(key), value.to_owned());
    }

    /// The value of `name`, or `None` when it is not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.case {
            KeyCase::Sensitive => self.vars.get(name),
            KeyCase::Insensitive => self.vars.get(&upper(name)),
        }
        .map(String::as_str)
    }

    /// Every key in the order it was added, repeats included (as given, not normalised).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// How keys compare.
    pub fn case(&self) -> KeyCase {
        self.case
    }

    fn normalize(&self, key: &str) -> String {
        match self.case {
            KeyCase::Sensitive => key.to_owned(),
            KeyCase::Insensitive => upper(key),
        }
    }
}

/// Upper-cases one character at a time, keeping characters whose upper case is not a single
/// character (`ß`), as Go's `strings.ToUpper` does.
fn upper(key: &str) -> String {
    key.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

impl<S: AsRef<str>> Extend<S> for Env {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        for entry in iter {
            self.push(entry.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for Env {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}

impl Lookup for Env {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Lookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<L: Lookup + ?Sized> Lookup for &L {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_win_and_bare_keys_are_empty() {
        let env = Env::from_pairs(["foo=bar", "car=hat", "car=bike", "bare", "eq=a=b"]);
        assert_eq!(env.get("foo"), Some("bar"));
        assert_eq!(env.get("car"), Some("bike"));
        assert_eq!(env.get("bare"), Some(""));
        assert_eq!(env.get("eq"), Some("a=b"));
        assert_eq!(env.get("missing"), None);
        assert_eq!(env.get("FOO"), None);
        assert_eq!(env.keys(), ["foo", "car", "car", "bare", "eq"]);
    }

    #[test]
    fn insensitive_keys_ignore_case() {
        let mut env = Env::with_case(KeyCase::Insensitive);
        env.extend(["Path=a", "PATH=b"]);
        assert_eq!(env.get("path"), Some("b"));
        assert_eq!(upper("straße"), "STRAßE");
    }
}
