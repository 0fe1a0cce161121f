//! The `--flag` parser every instruction shares, with BuildKit's `BFlags` semantics.
//!
//! An instruction declares the flags it accepts ([`FlagSpec`]), then [`Flags::parse`] reads the
//! node's flag words:
//!
//! - `--name=value` for string flags (a value is required, `--name=` gives the empty string);
//! - `--name`, `--name=true` or `--name=false` (any case) for bool flags;
//! - string-slice flags may repeat (`--exclude=a --exclude=b`), others may not
//!   ("duplicate flag specified: --name");
//! - a word `--` ends flag parsing; a word not starting with `--` is an error;
//! - an unknown flag is "unknown flag: --name", with a "did you mean" hint when one is close.

use std::collections::BTreeMap;

use super::suggest;

/// What kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--link`, `--link=false`.
    Bool,
    /// `--from=builder`, given at most once.
    String,
    /// `--exclude=a --exclude=b`, repeatable.
    Strings,
}

/// One flag an instruction accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagKind,
}

impl FlagSpec {
    pub const fn bool(name: &'static str) -> Self {
        Self {
            name,
            kind: FlagKind::Bool,
        }
    }
    pub const fn string(name: &'static str) -> Self {
        Self {
            name,
            kind: FlagKind::String,
        }
    }
    pub const fn strings(name: &'static str) -> Self {
        Self {
            name,
            kind: FlagKind::Strings,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FlagValue {
    Bool(bool),
    String(String),
    Strings(Vec<String>),
}

/// The flags an instruction was given, after validation. Only flags that were used appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    used: BTreeMap<&'static str, FlagValue>,
}

impl Flags {
    /// Reads `words` (the node's flags, verbatim) against the flags `specs` accepts.
    /// The error is the message only; the caller attaches the instruction's span.
    pub fn parse(words: &[String], specs: &[FlagSpec]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for word in words {
            if word == "--" {
                break;
            }
            let Some(body) = word.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {word}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                let message = format!("unknown flag: {flag_name}");
                let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                return Err(suggest::with_suggestion(message, name, &names, true));
            };
            let previous = flags.used.get(spec.name);
            if previous.is_some() && spec.kind != FlagKind::Strings {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            let new_value = match spec.kind {
                FlagKind::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {flag_name}")),
                    None => FlagValue::Bool(true),
                    Some(v) if v.eq_ignore_ascii_case("true") => FlagValue::Bool(true),
                    Some(v) if v.eq_ignore_ascii_case("false") => FlagValue::Bool(false),
                    Some(v) => {
                        return Err(format!(
                            "expecting boolean value for flag {flag_name}, not: {v}"
                        ))
                    }
                },
                FlagKind::String => match value {
                    Some(v) => FlagValue::String(v.to_string()),
                    None => return Err(format!("missing a value on flag: {flag_name}")),
                },
                FlagKind::Strings => {
                    let Some(v) = value else {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    };
                    let mut all = match previous {
                        Some(FlagValue::Strings(all)) => all.clone(),
                        _ => Vec::new(),
                    };
                    all.push(v.to_string());
                    FlagValue::Strings(all)
                }
            };
            flags.used.insert(spec.name, new_value);
        }
        Ok(flags)
    }

    /// The value of a string flag, `None` when it was not given.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.used.get(name) {
            Some(FlagValue::String(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// The value of a bool flag, `None` when it was not given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.used.get(name) {
            Some(FlagValue::Bool(v)) => Some(*v),
            _ => None,
        }
    }

    /// Every value of a repeatable flag, in order (empty when it was not given).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.used.get(name) {
            Some(FlagValue::Strings(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec::bool("link"),
        FlagSpec::string("from"),
        FlagSpec::strings("exclude"),
    ];

    fn parse(words: &[&str]) -> Result<Flags, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Flags::parse(&words, SPECS)
    }

    #[test]
    fn values_of_each_kind() {
        let flags = parse(&["--link", "--from=builder", "--exclude=a", "--exclude=b"]).unwrap();
        assert_eq!(flags.bool("link"), Some(true));
        assert_eq!(flags.string("from").as_deref(), Some("builder"));
        assert_eq!(flags.strings("exclude"), vec!["a", "b"]);
    }

    #[test]
    fn bool_values_are_case_insensitive() {
        assert_eq!(parse(&["--link=FALSE"]).unwrap().bool("link"), Some(false));
        assert_eq!(parse(&["--link=True"]).unwrap().bool("link"), Some(true));
        assert_eq!(parse(&[]).unwrap().bool("link"), None);
    }

    #[test]
    fn empty_string_value_is_allowed() {
        assert_eq!(
            parse(&["--from="]).unwrap().string("from").as_deref(),
            Some("")
        );
    }

    #[test]
    fn double_dash_ends_flags() {
        let flags = parse(&["--link", "--", "--nope"]).unwrap();
        assert_eq!(flags.bool("link"), Some(true));
    }

    #[test]
    fn errors_match_buildkit() {
        assert_eq!(parse(&["--boo"]).unwrap_err(), "unknown flag: --boo");
        assert_eq!(
            parse(&["--lnk"]).unwrap_err(),
            "unknown flag: --lnk (did you mean link?)"
        );
        assert_eq!(parse(&["-x"]).unwrap_err(), "arg should start with -- : -x");
        assert_eq!(
            parse(&["--from=a", "--from=b"]).unwrap_err(),
            "duplicate flag specified: --from"
        );
        assert_eq!(
            parse(&["--from"]).unwrap_err(),
            "missing a value on flag: --from"
        );
        assert_eq!(
            parse(&["--exclude"]).unwrap_err(),
            "missing a value on flag: --exclude"
        );
        assert_eq!(
            parse(&["--link="]).unwrap_err(),
            "missing a value on flag: --link"
        );
        assert_eq!(
            parse(&["--link=yes"]).unwrap_err(),
            "expecting boolean value for flag --link, not: yes"
        );
        assert_eq!(
            parse(&["--link", "--link"]).unwrap_err(),
            "duplicate flag specified: --link"
        );
    }
}
