//! The `expect_image_config` checks of case.json, typed: a dotted path into the image config
//! JSON (`config.Labels.foo`, `history[0].created_by`), and what must hold there — equality,
//! `contains` (a key ending in ` contains`), or a length (a path ending in `.length`).
//! Expected values may hold the placeholders `<non-empty>` (anything present and not empty)
//! and `<any>` (any text, also inside a string: `PATH=<any>`).

use serde_json::Value;

/// A placeholder for any present, non-empty value.
pub const NON_EMPTY: &str = "<non-empty>";

/// A placeholder for any text.
pub const ANY: &str = "<any>";

/// One step of a path into the config.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What must hold at a [`ConfigCheck`]'s path.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigCheckKind {
    /// The value equals this one (placeholders allowed).
    Equals(Value),
    /// An array holds an element matching each of these; a string holds this substring.
    Contains(Value),
    /// An array has this many elements.
    Length(usize),
}

/// A check on an image config, from one `expect_image_config` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigCheck {
    /// The key as case.json writes it (`config.Env contains`).
    pub key: String,
    /// What must hold.
    pub kind: ConfigCheckKind,
    path: Vec<Step>,
}

impl ConfigCheck {
    /// Reads one `expect_image_config` entry.
    pub fn parse(key: &str, expected: Value) -> Result<ConfigCheck, String> {
        let (path_text, contains) = match key.strip_suffix(" contains") {
            Some(path) => (path, true),
            None => (key, false),
        };
        let (path_text, length) = match path_text.strip_suffix(".length") {
            Some(path) => (path, true),
            None => (path_text, false),
        };
        let kind = match (contains, length) {
            (true, true) => return Err(format!("{key:?}: both contains and length")),
            (true, false) => ConfigCheckKind::Contains(expected),
            (false, true) => {
                let n = expected
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("{key:?}: a length must be a number, not {expected}"))?;
                ConfigCheckKind::Length(n)
            }
            (false, false) => ConfigCheckKind::Equals(expected),
        };
        let mut path = Vec::new();
        for segment in path_text.split('.') {
            let (name, mut rest) = match segment.find('[') {
                Some(at) => segment.split_at(at),
                None => (segment, ""),
            };
            if name.is_empty() {
                return Err(format!("{key:?}: empty path segment"));
            }
            path.push(Step::Key(name.to_owned()));
            while let Some(tail) = rest.strip_prefix('[') {
                let (index, after) = tail
                    .split_once(']')
                    .ok_or_else(|| format!("{key:?}: unclosed ["))?;
                let index = index
                    .parse()
                    .map_err(|_| format!("{key:?}: bad index {index:?}"))?;
                path.push(Step::Index(index));
                rest = after;
            }
            if !rest.is_empty() {
                return Err(format!("{key:?}: unexpected {rest:?}"));
            }
        }
        Ok(ConfigCheck {
            key: key.to_owned(),
            kind,
            path,
        })
    }

    /// Checks `config` (the image config JSON); the error says what was found.
    pub fn check(&self, config: &Value) -> Result<(), String> {
        let mut at = Some(config);
        for step in &self.path {
            at = match (at, step) {
                (Some(Value::Object(map)), Step::Key(key)) => map.get(key),
                (Some(Value::Array(items)), Step::Index(i)) => items.get(*i),
                _ => None,
            };
        }
        let found = at.unwrap_or(&Value::Null);
        let ok = match &self.kind {
            ConfigCheckKind::Equals(expected) => at.is_some() && matches(expected, found),
            ConfigCheckKind::Contains(expected) => contains(found, expected),
            ConfigCheckKind::Length(n) => found.as_array().is_some_and(|a| a.len() == *n),
        };
        if ok {
            Ok(())
        } else {
            let shown = if at.is_some() {
                found.to_string()
            } else {
                "nothing".to_owned()
            };
            Err(format!(
                "{}: expected {}, found {shown}",
                self.key,
                self.expected_text()
            ))
        }
    }

    fn expected_text(&self) -> String {
        match &self.kind {
            ConfigCheckKind::Equals(v) => v.to_string(),
            ConfigCheckKind::Contains(v) => format!("something containing {v}"),
            ConfigCheckKind::Length(n) => format!("{n} elements"),
        }
    }
}

/// Whether `found` matches `expected`, placeholders included.
fn matches(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::String(e), _) if e == NON_EMPTY => match found {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::Bool(_) | Value::Number(_) => true,
        },
        (Value::String(e), _) if e == ANY => true,
        (Value::String(e), Value::String(f)) if e.contains(ANY) => glob(e, f),
        (Value::Array(e), Value::Array(f)) => {
            e.len() == f.len() && e.iter().zip(f).all(|(e, f)| matches(e, f))
        }
        (Value::Object(e), Value::Object(f)) => {
            e.len() == f.len()
                && e.iter()
                    .all(|(k, e)| f.get(k).is_some_and(|f| matches(e, f)))
        }
        _ => expected == found,
    }
}

/// Whether `found` contains `expected`: each expected element (or the value) matches some
/// element of an array; a string holds a substring.
fn contains(found: &Value, expected: &Value) -> bool {
    match (found, expected) {
        (Value::Array(items), Value::Array(wanted)) => wanted
            .iter()
            .all(|w| items.iter().any(|item| matches(w, item))),
        (Value::Array(items), wanted) => items.iter().any(|item| matches(wanted, item)),
        (Value::String(text), Value::String(wanted)) => text.contains(wanted.as_str()),
        _ => false,
    }
}

/// `pattern` with `<any>` standing for any text, matched against the whole of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split(ANY).collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(key: &str, expected: Value, config: &Value) -> Result<(), String> {
        ConfigCheck::parse(key, expected).unwrap().check(config)
    }

    #[test]
    fn paths_placeholders_contains_and_length() {
        let config = json!({
            "os": "linux",
            "config": {"Env": ["PATH=/bin", "foo=bar"], "Labels": {"foo": "bar"}, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [{"created_by": "ENV foo=bar", "empty_layer": true}]
        });
        check("os", json!("<non-empty>"), &config).unwrap();
        check("config.Labels.foo", json!("bar"), &config).unwrap();
        check("rootfs.diff_ids", json!([]), &config).unwrap();
        check("history.length", json!(1), &config).unwrap();
        check("history[0].empty_layer", json!(true), &config).unwrap();
        check(
            "history[0].created_by contains",
            json!("ENV foo=bar"),
            &config,
        )
        .unwrap();
        check(
            "config.Env contains",
            json!(["foo=bar", "PATH=<any>"]),
            &config,
        )
        .unwrap();

        let err = check("config.User", json!("nobody"), &config).unwrap_err();
        assert_eq!(err, "config.User: expected \"nobody\", found nothing");
        check("config.Env contains", json!(["HOME=<any>"]), &config).unwrap_err();
        check("history.length", json!(2), &config).unwrap_err();
        check("architecture", json!("<non-empty>"), &config).unwrap_err();
    }

    #[test]
    fn glob_matches_the_whole_text() {
        assert!(glob("PATH=<any>", "PATH=/bin"));
        assert!(glob("<any>=<any>", "a=b"));
        assert!(!glob("PATH=<any>", "XPATH=/bin"));
        assert!(!glob("a<any>a", "a"));
    }
}
