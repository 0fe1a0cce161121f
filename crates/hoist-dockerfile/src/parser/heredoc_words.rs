//! The shell-word splitting BuildKit's parser runs to find heredocs on an instruction line.
//!
//! BuildKit finds heredocs by running its shell lexer (`shell.Lex.ProcessWords`) over the
//! line with no variables, unset variables kept as written, and then over each heredoc word
//! again to tell quoted delimiters from plain ones. Only that mode is needed here, quirks
//! included (it decides which words count as heredocs), so this is a small dedicated
//! reimplementation rather than the full expander in [`crate::shell`]:
//!
//! - `$VAR`, `${VAR}` and `${VAR<op>word}` come back as written (unset variables are kept);
//! - `<<` plus any following blanks stays glued to the next word;
//! - the escape character is always `\`, whatever `# escape=` says;
//! - the words buffer is shared with nested `${...}` words, so text before such a
//!   substitution in the same word is dropped, as in BuildKit.
//!
//! One deliberate difference: `${...}` nested more than [`MAX_NESTING`] deep is an error
//! here (Go's growable stacks let BuildKit recurse without limit; ours would overflow).

/// How the lexer treats quotes and escapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
}

const ESCAPE: char = '\\';

/// How deep `${...}` substitutions may nest before the lexer gives up.
pub(crate) const MAX_NESTING: usize = 200;

/// Splits `src` into words the way `ProcessWords` does with an empty environment and
/// `SkipUnsetEnv`. Errors are the lexer's (unterminated quotes, bad substitutions).
pub(crate) fn process_words(src: &str, mode: Mode) -> Result<Vec<String>, String> {
    let mut chars: Vec<char> = src.chars().collect();
    // Go's text/scanner skips a byte-order mark at the very start of its input.
    if chars.first() == Some(&'\u{feff}') {
        chars.remove(0);
    }
    let mut lex = Lexer {
        chars,
        pos: 0,
        raw_quotes: mode.raw_quotes,
        raw_escapes: mode.raw_escapes,
        buf: String::new(),
        depth: 0,
    };
    lex.stop_on(None, mode.raw_escapes)
        .map(|(_, words)| words)
        .map_err(|e| format!("failed to process {}: {e}", super::gotext::quote(src)))
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// The words buffer, shared by every nesting level as in BuildKit.
    buf: String,
    /// Current `${...}` nesting.
    depth: usize,
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, c: char) {
        let space = super::gotext::is_space(c);
        if space && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !space {
            self.add_raw_char(buf, c);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

/// Go's `string(rune)` for what text/scanner's `Next` returned (EOF becomes U+FFFD).
fn rune_text(c: Option<char>) -> String {
    c.unwrap_or('\u{fffd}').to_string()
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        self.buf.clear();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok((result, words.finish(&mut self.buf)));
            }
            match c {
                '$' => {
                    let tmp = self.dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.buf, &tmp);
                }
                '<' | '\'' | '"' => {
                    let tmp = match c {
                        '<' => self.possible_heredoc(),
                        '\'' => self.single_quote()?,
                        _ => self.double_quote()?,
                    };
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.buf, &tmp);
                }
                _ => {
                    self.next();
                    if c == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.buf, c);
                            result.push(c);
                        }
                        let Some(escaped) = self.next() else {
                            break;
                        };
                        words.add_raw_char(&mut self.buf, escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(&mut self.buf, c);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish(&mut self.buf)))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(c) => {
                    self.next();
                    let mut c = c;
                    if c == ESCAPE {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$' | ESCAPE) => {
                                if let Some(escaped) = self.next() {
                                    c = escaped;
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$...` with no variable set: the text as written, or BuildKit's syntax errors.
    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        let op = self.next();
        let mut ops = rune_text(op);
        match op {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut op = op;
                let null_is_unset = op == Some(':');
                if null_is_unset {
                    op = self.next();
                    ops.push_str(&rune_text(op));
                }
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({ops}) in substitution"));
                }
                let word = self.nested('}', raw, "syntax error: missing '}'")?;
                Ok(format!("${{{name}{ops}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.next();
                }
                let pattern = self.nested('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.nested('}', true, "syntax error: missing '}'")?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({ops}) in substitution")),
        }
    }

    fn nested(&mut self, stop: char, raw_escapes: bool, at_end: &str) -> Result<String, String> {
        if self.depth >= MAX_NESTING {
            return Err("substitutions nested too deeply".to_string());
        }
        self.depth += 1;
        let out = self.stop_on(Some(stop), raw_escapes);
        self.depth -= 1;
        match out {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(at_end.to_string()),
            Err(e) => Err(e),
        }
    }

    fn name(&mut self) -> String {
        use super::gotext::{is_digit, is_letter};
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut out = "<<".to_string();
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            self.next();
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: Mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
    };
    const PLAIN: Mode = Mode {
        raw_quotes: false,
        raw_escapes: false,
    };

    fn words(src: &str, mode: Mode) -> Vec<String> {
        process_words(src, mode).unwrap()
    }

    #[test]
    fn heredoc_markers_stay_glued() {
        assert_eq!(
            words("RUN <<  EOF  > foo", LINE),
            ["RUN", "<<  EOF", ">", "foo"]
        );
        assert_eq!(words("RUN 3<<EOF", LINE), ["RUN", "3<<EOF"]);
        assert_eq!(words("RUN <<<EOF", LINE), ["RUN", "<<<EOF"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("a 'b c' \"d e\"", LINE), ["a", "'b c'", "\"d e\""]);
        assert_eq!(words("a 'b c' \"d e\"", PLAIN), ["a", "b c", "d e"]);
        assert_eq!(words(r"eo\'f", PLAIN), ["eo'f"]);
        assert_eq!(words(r"eo\'f", LINE), [r"eo\'f"]);
        assert_eq!(words(r#""a\nb""#, LINE), [r#""a\\nb""#]);
        assert!(process_words("'abc", PLAIN).is_err());
        assert!(process_words("\"abc", PLAIN).is_err());
    }

    #[test]
    fn variables_are_kept() {
        assert_eq!(
            words("$EOF ${A} $ $1x", PLAIN),
            ["$EOF", "${A}", "$", "$1x"]
        );
        assert_eq!(words("${A:-b c}", PLAIN), ["${A:-b", "c}"]);
        assert_eq!(words("${A//x/y}", PLAIN), ["${A/x/y}"]);
        // the shared words buffer drops what came before a nested word, as in BuildKit
        assert_eq!(words("pre${A:-b}post", PLAIN), ["${A:-b}post"]);
        assert!(process_words("${", PLAIN).is_err());
        assert!(process_words("${}", PLAIN).is_err());
        assert!(process_words("${A:#x}", PLAIN).is_err());
        assert!(process_words("${A=x}", PLAIN).is_err());
        assert!(process_words("${A:-x", PLAIN).is_err());
    }
}
