//! Splitting one logical instruction line into keyword, `--flags` and arguments.
//!
//! Each instruction has its own argument rule, chosen by the lower-cased keyword exactly as
//! BuildKit's dispatch table does: exec-or-shell form (RUN, CMD, ENTRYPOINT, SHELL), exec form
//! or whitespace-separated list (ADD, COPY, VOLUME), whitespace-separated words (FROM,
//! EXPOSE), quoted words (ARG), `key value sep` triples (ENV, LABEL), the rest of the line
//! (MAINTAINER, USER, WORKDIR, STOPSIGNAL), a type word plus command (HEALTHCHECK) and a
//! nested instruction (ONBUILD). Unknown keywords keep one empty argument, as in BuildKit, and
//! are rejected later by the instruction converter.
//!
//! Two of BuildKit's scanners (flag extraction and HEALTHCHECK) walk bytes and treat each
//! byte as a Latin-1 character; that is reproduced, so non-ASCII text in flags comes out as
//! BuildKit's AST has it.

use super::gotext::{is_space, is_space_byte, lossy, quote, to_lower, trim_space};
use super::json::{parse_exec_form, ExecFormError};
use crate::ast::Node;

/// The arguments of one instruction, before they are put on a [`Node`].
#[derive(Debug, Default)]
struct Args {
    args: Vec<String>,
    nested: Option<Box<Node>>,
    json: bool,
}

/// Builds the node for one logical line (keyword, flags, arguments, nested ONBUILD node).
/// Spans, heredocs and comments are filled in by the caller. Errors carry BuildKit's text.
pub(crate) fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    // ONBUILD nests; build the chain without recursion so deep nesting cannot overflow.
    let mut chain: Vec<Node> = Vec::new();
    let mut text = line.to_string();
    loop {
        let (keyword, flags, rest) = split_command(&text, escape);
        let lower = to_lower(&keyword);
        let mut node = Node {
            keyword: lower,
            keyword_original: keyword,
            flags,
            original: std::mem::take(&mut text),
            ..Node::default()
        };
        if node.keyword == "onbuild" && !rest.is_empty() {
            chain.push(node);
            text = rest;
            continue;
        }
        let parsed = dispatch(&node.keyword, &rest, escape)?;
        node.args = parsed.args;
        node.nested = parsed.nested;
        node.json = parsed.json;
        chain.push(node);
        break;
    }
    let mut inner = chain.pop().unwrap_or_default();
    while let Some(mut outer) = chain.pop() {
        outer.nested = Some(Box::new(inner));
        inner = outer;
    }
    Ok(inner)
}

fn dispatch(keyword: &str, rest: &str, escape: char) -> Result<Args, String> {
    match keyword {
        "add" | "copy" | "volume" => maybe_json_to_list(rest),
        "arg" => Ok(Args {
            args: parse_words(rest, escape),
            ..Args::default()
        }),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest),
        "env" => name_val(rest, "ENV", escape),
        "label" => name_val(rest, "LABEL", escape),
        "expose" | "from" => Ok(whitespace_delimited(rest)),
        "healthcheck" => health_config(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => Ok(Args {
            args: if rest.is_empty() {
                Vec::new()
            } else {
                vec![rest.to_string()]
            },
            ..Args::default()
        }),
        // ONBUILD with nothing after it; with text it was handled by the caller.
        "onbuild" => Ok(Args::default()),
        _ => Ok(Args {
            args: vec![String::new()],
            ..Args::default()
        }),
    }
}

/// Splits a line into keyword, leading `--flags` and the rest (BuildKit's `splitCommand`).
pub(crate) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let line = trim_space(line);
    let (keyword, rest, flags) = match split_ws_once(line) {
        Some((keyword, args)) => {
            let (rest, flags) = extract_builder_flags(args, escape);
            (keyword, rest, flags)
        }
        None => (line, String::new(), Vec::new()),
    };
    (keyword.to_string(), flags, trim_space(&rest).to_string())
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// `reWhitespace.Split(s, 2)` for a string without leading or trailing blanks.
fn split_ws_once(s: &str) -> Option<(&str, &str)> {
    let start = s.find(is_re_ws)?;
    let after = s[start..].trim_start_matches(is_re_ws);
    Some((&s[..start], after))
}

/// `reWhitespace.Split(s, -1)`.
fn split_ws_all(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(is_re_ws) {
        out.push(rest[..start].to_string());
        rest = rest[start..].trim_start_matches(is_re_ws);
    }
    if !rest.is_empty() || s.is_empty() || s.ends_with(is_re_ws) {
        out.push(rest.to_string());
    }
    out
}

/// Takes the `--flag` words off the front of `line`; returns the rest and the flags with
/// quotes and escapes resolved (BuildKit's `extractBuilderFlags`, which walks bytes).
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let escape = u8::try_from(escape).unwrap_or(b'\\');
    let mut words: Vec<String> = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut ch = 0u8;
    let mut pos = 0;
    while pos <= bytes.len() {
        if pos != bytes.len() {
            ch = bytes[pos];
        }
        if phase == Phase::Spaces {
            if pos == bytes.len() {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == bytes.len() || bytes[pos + 1] != b'-' {
                return (lossy(&bytes[pos..]), words);
            }
            phase = Phase::Word;
        }
        if pos == bytes.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (lossy(&bytes[pos..]), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == escape {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes[pos];
            }
            word.push(char::from(ch));
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (String::new(), words)
}

/// Splits `rest` into words on blanks, keeping quotes and escapes inside each word
/// (BuildKit's `parseWords`, used for ARG, ENV and LABEL).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut ch = '\0';
    let mut pos = 0;
    while pos <= chars.len() {
        if pos != chars.len() {
            ch = chars[pos];
        }
        if phase == Phase::Spaces {
            if pos == chars.len() {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == chars.len() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// ENV and LABEL: `k=v ...` gives `k v =` triples, the legacy `k v` form `k v ""`.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::default());
    };
    if !first.contains('=') {
        let Some((name, value)) = split_ws_once(rest) else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(Args {
            args: vec![name.to_string(), value.to_string(), String::new()],
            ..Args::default()
        });
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                quote(word)
            ));
        };
        args.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(Args {
        args,
        ..Args::default()
    })
}

fn whitespace_delimited(rest: &str) -> Args {
    Args {
        args: if rest.is_empty() {
            Vec::new()
        } else {
            split_ws_all(rest)
        },
        ..Args::default()
    }
}

/// Exec form when `rest` is a JSON string array, else the whole text as one argument.
fn maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    match parse_exec_form(rest) {
        Ok(args) => Ok(Args {
            args,
            json: true,
            ..Args::default()
        }),
        Err(ExecFormError::NotStringArray) => Err(ExecFormError::NotStringArray.to_string()),
        Err(_) => Ok(Args {
            args: vec![rest.to_string()],
            ..Args::default()
        }),
    }
}

/// Exec form when `rest` is a JSON string array, else whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Result<Args, String> {
    match parse_exec_form(rest) {
        Ok(args) => Ok(Args {
            args,
            json: true,
            ..Args::default()
        }),
        Err(ExecFormError::NotStringArray) => Err(ExecFormError::NotStringArray.to_string()),
        Err(_) => Ok(whitespace_delimited(rest)),
    }
}

/// HEALTHCHECK: the first word (`CMD`, `NONE`, ...) then the command as in [`maybe_json`].
fn health_config(rest: &str) -> Result<Args, String> {
    let bytes = rest.as_bytes();
    let sep = bytes
        .iter()
        .position(|b| is_space_byte(*b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok(Args::default());
    }
    let next = bytes[sep..]
        .iter()
        .position(|b| !is_space_byte(*b))
        .map_or(bytes.len(), |i| sep + i);
    let kind = lossy(&bytes[..sep]);
    let command = maybe_json(&lossy(&bytes[next..]))?;
    let mut args = vec![kind];
    args.extend(command.args);
    Ok(Args {
        args,
        json: command.json,
        ..Args::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let (rest, flags) = extract_builder_flags("--a=1 --b='x y' -- --c z", '\\');
        assert_eq!(
            (rest.as_str(), flags),
            (" --c z", vec!["--a=1".into(), "--b=x y".into()])
        );
        let (rest, flags) = extract_builder_flags("--a=é x", '\\');
        assert_eq!(rest, "x");
        assert_eq!(flags, ["--a=\u{c3}\u{a9}"]);
        let (rest, flags) = extract_builder_flags("--a=\u{e0} x", '\\');
        assert_eq!(flags, ["--a=\u{c3}"]);
        assert_eq!(rest, "x");
    }

    #[test]
    fn commands() {
        let (k, f, r) = split_command("  RUN\t--x  echo hi ", '\\');
        assert_eq!(
            (k.as_str(), f, r.as_str()),
            ("RUN", vec!["--x".into()], "echo hi")
        );
        let (k, f, r) = split_command("", '\\');
        assert_eq!((k.as_str(), f.len(), r.as_str()), ("", 0, ""));
    }

    #[test]
    fn split_all() {
        assert_eq!(split_ws_all("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(split_ws_all("a"), ["a"]);
    }

    #[test]
    fn name_values() {
        let a = name_val("a=1 b='2 3'", "ENV", '\\').unwrap();
        assert_eq!(a.args, ["a", "1", "=", "b", "'2 3'", "="]);
        let a = name_val("a b c", "ENV", '\\').unwrap();
        assert_eq!(a.args, ["a", "b c", ""]);
        assert_eq!(
            name_val("a", "ENV", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert!(name_val("a=1 b", "LABEL", '\\')
            .unwrap_err()
            .contains("\"b\""));
    }

    #[test]
    fn deep_onbuild() {
        let line = "ONBUILD ".repeat(8_000) + "RUN x";
        let node = node_from_line(&line, '\\').unwrap();
        let mut depth = 0;
        let mut n = &node;
        while let Some(inner) = n.nested.as_deref() {
            depth += 1;
            n = inner;
        }
        assert_eq!((depth, n.keyword.as_str()), (8_000, "run"));
    }
}
