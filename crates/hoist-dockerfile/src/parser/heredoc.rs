//! Heredoc words (`<<EOF`, `<<-'EOF'`, `3<<EOF`): recognising them and reading their names.
//!
//! BuildKit accepts heredocs on RUN, COPY and ADD (and on those inside ONBUILD) in shell form.
//! A heredoc word matches `^(\d*)<<(-?)\s*([^<]*)$`; the delimiter is what the shell lexer
//! makes of the rest, and the body is expanded later only when no part of the delimiter was
//! quoted.

use super::heredoc_words::{process_words, Mode};
use crate::ast::Heredoc;

/// Parses one word as a heredoc marker, as BuildKit's `ParseHeredoc`. `Ok(None)` when the
/// word is not a heredoc (no `<<`, nothing after it, or more than one word after it); an
/// error when the delimiter is malformed (an unterminated quote, a bad `${`).
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // Go ignores strconv.ParseUint's error: no digits give 0, an overflow the maximum.
    let file_descriptor = match &word[..digits] {
        "" => 0,
        d => d.parse::<u32>().unwrap_or(u32::MAX),
    };

    let plain = Mode {
        raw_quotes: false,
        raw_escapes: false,
    };
    let words = process_words(rest, plain)?;
    let [name] = match <[String; 1]>::try_from(words) {
        Ok(one) => one,
        Err(_) => return Ok(None),
    };
    let raw = Mode {
        raw_quotes: true,
        raw_escapes: false,
    };
    let raw_words = process_words(rest, raw)?;
    let [raw_name] = match <[String; 1]>::try_from(raw_words) {
        Ok(one) => one,
        Err(_) => {
            return Err(format!(
                "internal lexing of heredoc produced inconsistent results: {rest}"
            ))
        }
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    let expand = quotes(&name) == quotes(&raw_name);
    Ok(Some(Heredoc {
        name,
        content: String::new(),
        expand,
        chomp,
        file_descriptor,
    }))
}

/// The heredocs an instruction line opens, in order, as BuildKit's `heredocsFromLine`: the
/// line is split into shell words (a line the lexer rejects has none) and every word that
/// is a heredoc marker counts. Contents are left empty.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
    };
    let words = process_words(line, mode).unwrap_or_default();
    let mut docs = Vec::new();
    for word in &words {
        if let Some(doc) = parse_heredoc(word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Removes the leading tabs of every line, as `<<-` asks (BuildKit's `ChompHeredocContent`).
pub fn chomp_heredoc_content(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        let doc = parse_heredoc("<<-'EOF'").unwrap().unwrap();
        assert_eq!(
            (doc.name.as_str(), doc.expand, doc.chomp),
            ("EOF", false, true)
        );
        let doc = parse_heredoc("12<<EOF").unwrap().unwrap();
        assert_eq!(doc.file_descriptor, 12);
        let doc = parse_heredoc("99999999999999999999<<EOF").unwrap().unwrap();
        assert_eq!(doc.file_descriptor, u32::MAX);
        assert_eq!(parse_heredoc("x<<EOF").unwrap(), None);
        assert_eq!(parse_heredoc("<<EOF sh").unwrap(), None);
        assert!(parse_heredoc("<<'EOF").is_err());
    }

    #[test]
    fn lines() {
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|d| d.name)
                .collect()
        };
        assert_eq!(names("RUN <<A cat <<-B > 'x'"), ["A", "B"]);
        assert!(names("RUN '<<EOF").is_empty());
        // BuildKit's lexer splits "<<-" from "EOF" here, so there is no heredoc
        assert!(names("RUN <<- EOF").is_empty());
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert!(heredocs_from_line("RUN <<'A' <<\"B").unwrap().is_empty());
    }

    #[test]
    fn chomp() {
        assert_eq!(chomp_heredoc_content("\t\ta\n b\n\tc"), "a\n b\nc");
    }
}
