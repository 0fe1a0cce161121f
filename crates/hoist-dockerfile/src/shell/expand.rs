//! The expansion state machine: one pass over a word's characters, the way BuildKit's
//! `shellWord` scans it.
//!
//! Quirks kept on purpose, because Dockerfiles are read by BuildKit's rules:
//!
//! - The word-splitting buffer is shared by nested scans: expanding the word of a
//!   `${V:-word}`-style modifier (or a `${V/p/r}`) drops the part of the current split word
//!   gathered before the `$` (`a${X:-b}` splits to `["b"]` while the result is `ab`).
//! - With raw escapes on, an escape inside double quotes that escapes nothing is kept twice.
//! - `<<` and the blanks after it stay in one split word (heredoc markers).
//! - With `skip_unset_env`, `${V//p/r}` of an unset `V` is written back with one `/`.
//! - A missing character (end of input) is printed as U+FFFD in messages, as Go prints it.

use std::collections::BTreeSet;

use super::chars::{self, go_char};
use super::env::Lookup;
use super::pattern;
use super::Options;

const MISSING_BRACE: &str = "syntax error: missing '}'";
const BAD_SUBSTITUTION: &str = "syntax error: bad substitution";
const MISSING_SLASH: &str = "syntax error: missing '/' in ${}";

/// What one pass produced.
#[derive(Debug)]
pub(crate) struct Expansion {
    pub result: String,
    pub words: Vec<String>,
    pub matched: BTreeSet<String>,
    pub unmatched: BTreeSet<String>,
}

/// Expands `word`; the error is BuildKit's reason, not yet prefixed by the word.
pub(crate) fn expand(
    word: &str,
    escape: char,
    options: Options,
    env: &dyn Lookup,
) -> Result<Expansion, String> {
    // Go's text/scanner drops a byte-order mark at the very start of its input.
    let chars: Vec<char> = word
        .strip_prefix('\u{feff}')
        .unwrap_or(word)
        .chars()
        .collect();
    let mut scan = Scanner {
        chars,
        pos: 0,
        escape,
        options,
        env,
        raw_escapes: options.raw_escapes,
        split_buf: String::new(),
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    let (result, words) = scan.until(None, options.raw_escapes)?;
    Ok(Expansion {
        result,
        words,
        matched: scan.matched,
        unmatched: scan.unmatched,
    })
}

struct Scanner<'e> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    options: Options,
    env: &'e dyn Lookup,
    /// Whether escapes are kept in the output of the scan in progress.
    raw_escapes: bool,
    /// The split word being gathered, shared by nested scans (see the module docs).
    split_buf: String,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// The words a scan splits its text into; the word in progress lives in
/// [`Scanner::split_buf`].
#[derive(Default)]
struct Words {
    done: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: whitespace ends the word in progress.
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.done.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, ch);
        }
    }

    /// A quoted or escaped character: always part of the word.
    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    /// Text from a variable: split like unquoted characters.
    fn add_str(&mut self, buf: &mut String, text: &str) {
        for ch in text.chars() {
            self.add_char(buf, ch);
        }
    }

    /// Quoted text: one piece of the word, even when empty.
    fn add_raw_str(&mut self, buf: &mut String, text: &str) {
        buf.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.done.push(std::mem::take(buf));
        }
        self.done
    }
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Scans until `stop` (consumed) or, when `stop` is `None`, the end of the input,
    /// keeping escapes in the output when `raw_escapes`. Returns the text and its words.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let scanned = self.scan_until(stop);
        self.raw_escapes = saved;
        scanned
    }

    fn scan_until(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        self.split_buf.clear();
        let quotes = !self.options.skip_process_quotes;

        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish(&mut self.split_buf)));
            }
            let special = match ch {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' if quotes => Some(self.single_quoted()?),
                '"' if quotes => Some(self.double_quoted()?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                if ch == '$' {
                    words.add_str(&mut self.split_buf, &text);
                } else {
                    words.add_raw_str(&mut self.split_buf, &text);
                }
                continue;
            }

            self.next();
            if ch != self.escape {
                words.add_char(&mut self.split_buf, ch);
                result.push(ch);
                continue;
            }
            if self.raw_escapes {
                words.add_raw_char(&mut self.split_buf, ch);
                result.push(ch);
            }
            // The escape token escapes the next character; at the very end it is dropped.
            let Some(escaped) = self.next() else { break };
            words.add_raw_char(&mut self.split_buf, escaped);
            result.push(escaped);
        }

        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish(&mut self.split_buf))),
        }
    }

    /// `'...'`: everything literal up to the next `'`; nothing escapes it.
    fn single_quoted(&mut self) -> Result<String, String> {
        let raw = self.options.raw_quotes;
        let mut out = String::new();
        self.next();
        if raw {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    )
                }
                Some('\'') => {
                    if raw {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(ch) => out.push(ch),
            }
        }
    }

    /// `"..."`: variables expand; the escape token escapes only `"`, `$` and itself.
    fn double_quoted(&mut self) -> Result<String, String> {
        let raw = self.options.raw_quotes;
        let mut out = String::new();
        self.next();
        if raw {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    )
                }
                Some('"') => {
                    self.next();
                    if raw {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape right before the end is dropped; the missing quote
                            // is reported on the next turn.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.next();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A `<` that may start a heredoc marker: `<<` takes the blanks after it along.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.next();
        let mut out = "<<".to_owned();
        while let Some(blank @ (' ' | '\t' | '\r')) = self.peek() {
            out.push(blank);
            self.next();
        }
        out
    }

    /// A variable name after `$` or `${`: a run of digits (positional), one special
    /// parameter character, or letters, digits and `_`. Empty when none is there.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && chars::is_digit(ch) {
                while let Some(digit) = self.peek().filter(|&c| chars::is_digit(c)) {
                    self.next();
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && chars::is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !chars::is_name_char(ch) {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    /// Looks `name` up, remembering whether it was set.
    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(value) => {
                self.matched.insert(name.to_owned());
                Some(value.to_owned())
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    /// `$...` at the current position.
    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.options.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }

        self.next();
        match self.peek() {
            None => return Err(MISSING_BRACE.to_owned()),
            Some('{' | '}' | ':') => return Err(BAD_SUBSTITUTION.to_owned()),
            Some(_) => {}
        }
        let name = self.name();
        let first = self.next();
        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.options.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => self.modifier(&name, first),
            Some('/') => self.substitution(&name),
            other => Err(unsupported(&go_char(other).to_string())),
        }
    }

    /// `${name:-word}` and the other one- or two-character modifiers; `first` was read.
    fn modifier(&mut self, name: &str, first: Option<char>) -> Result<String, String> {
        let mut spelled = go_char(first).to_string();
        let null_is_unset = first == Some(':');
        let op = if null_is_unset {
            let op = self.next();
            spelled.push(go_char(op));
            op
        } else {
            first
        };
        let trims = matches!(op, Some('#' | '%'));
        if null_is_unset && trims {
            return Err(unsupported(&spelled));
        }
        let word = self.nested(Some('}'), trims, MISSING_BRACE)?;

        let value = self.get_env(name);
        if value.is_none() && self.options.skip_unset_env {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let empty = value
            .as_deref()
            .is_none_or(|v| null_is_unset && v.is_empty());
        match op {
            Some('-') => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            Some('+') => Ok(if empty { String::new() } else { word }),
            Some('?') => {
                let message = match value {
                    None => "is not allowed to be unset",
                    Some(_) if empty => "is not allowed to be empty",
                    Some(value) => return Ok(value),
                };
                let message = if word.is_empty() { message } else { &word };
                Err(format!("{name}: {message}"))
            }
            Some(c @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                // `##` / `%%` (the doubled character, as expanded) ask for the longest match.
                let (pattern, greedy) = match word.strip_prefix(c) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                if c == '%' {
                    pattern::trim_suffix(pattern, &value, greedy)
                } else {
                    pattern::trim_prefix(pattern, &value, greedy)
                }
            }
            _ => Err(unsupported(&spelled)),
        }
    }

    /// `${name/pattern/replacement}` or `${name//pattern/replacement}`; the first `/` was read.
    fn substitution(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = self.nested(Some('/'), true, MISSING_SLASH)?;
        let replacement = self.nested(Some('}'), true, MISSING_BRACE)?;

        let value = self.get_env(name);
        match value {
            None if self.options.skip_unset_env => {
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            value => pattern::replace(&pattern, &value.unwrap_or_default(), &replacement, all),
        }
    }

    /// The text of a modifier's word up to `stop`; running out of input is `at_end`.
    fn nested(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        at_end: &str,
    ) -> Result<String, String> {
        match self.until(stop, raw_escapes) {
            Ok((text, _)) => Ok(text),
            Err(_) if self.peek().is_none() => Err(at_end.to_owned()),
            Err(e) => Err(e),
        }
    }
}

fn unsupported(spelled: &str) -> String {
    format!("unsupported modifier ({spelled}) in substitution")
}
