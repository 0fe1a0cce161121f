//! BuildKit's shell-word lexer: variable expansion, quote removal and word splitting for the
//! arguments of `ENV`, `ARG`, `COPY`, `WORKDIR`, `USER`, `LABEL`, `FROM`, `EXPOSE`, ...
//! (never for a shell-form `RUN`, which `/bin/sh` reads).
//!
//! - [`Lexer`]: configured with the escape token (`\` or a backtick) and [`Options`]; its
//!   [`Lexer::process_word`], [`Lexer::process_words`] and [`Lexer::process_word_with_matches`]
//!   are BuildKit's `ProcessWord`, `ProcessWords` and `ProcessWordWithMatches`.
//! - [`Env`]: variables from `KEY=VALUE` entries (later wins); any [`Lookup`] will do.
//! - [`Processed`]: the expanded word, its split words and which variables were used.
//!
//! The dialect, exactly as BuildKit reads it:
//!
//! - `'...'` is literal; `"..."` expands variables and lets the escape token escape `"`, `$`
//!   and itself (other escapes stay as written); outside quotes the escape token escapes any
//!   character and is dropped at the very end of the word.
//! - `$NAME` / `${NAME}` where a name is letters, digits and `_`, or a run of digits
//!   (positional parameters), or one of `@ * # ? - $ ! 0`; those are never set in a
//!   Dockerfile, so they expand to nothing. A `$` not followed by a name stays `$`.
//! - `${V:-w}` `${V-w}` `${V:+w}` `${V+w}` `${V:?m}` `${V?m}` (the `:` forms treat empty as
//!   unset), `${V#p}` `${V##p}` `${V%p}` `${V%%p}` `${V/p/r}` `${V//p/r}` with `*`/`?` glob
//!   patterns (see the `pattern` module); words nest (`${A:-${B:-x}}`) and are expanded
//!   even when not used. Anything else (`${V:=w}`, `${V:#p}`, `${}`) is an error.
//! - Errors read `failed to process "<word>": <reason>` with BuildKit's reasons
//!   (`syntax error: missing '}'`, `syntax error: bad substitution`,
//!   `unsupported modifier (:=) in substitution`, `V: is not allowed to be unset`, ...).
//!
//! The quirks BuildKit has and we keep are listed in the `expand` module's docs.

mod chars;
mod env;
mod expand;
mod pattern;

use std::collections::BTreeSet;

use crate::{Error, Result};

pub use chars::go_quote;
pub use env::{Env, KeyCase, Lookup};

/// BuildKit's default escape token.
pub const DEFAULT_ESCAPE: char = '\\';

/// How a [`Lexer`] treats quotes, escapes and unset variables (BuildKit's `Lex` fields).
/// All off by default, which is how instruction arguments are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Keep the quote characters in the output (`'a'` stays `'a'`).
    pub raw_quotes: bool,
    /// Keep escape tokens in the output (`a\ b` stays `a\ b`, still one word).
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (only `$` is special).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X}`, `${X:-w}` with its
    /// word expanded) instead of expanding them.
    pub skip_unset_env: bool,
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Processed {
    /// The word with variables expanded and quotes and escapes removed.
    pub result: String,
    /// The same text split into words on unquoted whitespace (see [`Lexer::process_words`]).
    pub words: Vec<String>,
    /// Variables the word looked up and found set (even to the empty string).
    pub matched: BTreeSet<String>,
    /// Variables the word looked up and found unset.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell-word lexer. Cheap to build and to share between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    options: Options,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new(DEFAULT_ESCAPE)
    }
}

impl Lexer {
    /// A lexer with escape token `escape` (`\` or `` ` ``, from the `# escape=` directive).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            options: Options::default(),
        }
    }

    /// A lexer with escape token `escape` and the given options.
    pub fn with_options(escape: char, options: Options) -> Self {
        Lexer { escape, options }
    }

    /// The escape token.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Expands one word: variables replaced, quotes and escapes removed, whitespace kept.
    pub fn process_word(&self, word: &str, env: &dyn Lookup) -> Result<String> {
        self.process_word_with_matches(word, env)
            .map(|processed| processed.result)
    }

    /// Expands `word` and splits it into words on whitespace that is neither quoted nor
    /// escaped; whitespace coming from an unquoted variable splits too, and empty words are
    /// dropped (`""` alone gives no word).
    pub fn process_words(&self, word: &str, env: &dyn Lookup) -> Result<Vec<String>> {
        self.process_word_with_matches(word, env)
            .map(|processed| processed.words)
    }

    /// Expands one word and reports which variables it used: [`Processed::matched`] are the
    /// ones found set, [`Processed::unmatched`] the ones referenced but unset (for the
    /// "undefined variable" lint), both including variables of words that were not used
    /// (`${SET:-$OTHER}` looks `OTHER` up too).
    pub fn process_word_with_matches(&self, word: &str, env: &dyn Lookup) -> Result<Processed> {
        let expansion = expand::expand(word, self.escape, self.options, env).map_err(|reason| {
            Error::ShellWord {
                word: word.to_owned(),
                reason,
            }
        })?;
        Ok(Processed {
            result: expansion.result,
            words: expansion.words,
            matched: expansion.matched,
            unmatched: expansion.unmatched,
        })
    }
}

#[cfg(test)]
mod tests;
