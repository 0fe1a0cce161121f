//! `COPY --chmod=...` / `ADD --chmod=...`: an octal mode (`0755`) or a symbolic one
//! (`u+x,g=r`, `a-w`, `go=u`), as BuildKit accepts them.
//!
//! Symbolic modes follow chmod(1) with a zero umask: clauses separated by commas, each
//! `[ugoa]*` followed by one or more `[+-=]` operations with permissions from `rwxXst` or a
//! class to copy (`u`, `g`, `o`).

use std::fmt;

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// `--chmod=755`: the permission bits to set (at most `0o7777`).
    Octal(u32),
    /// `--chmod=u+x,g=r`: changes applied to each file's current mode.
    Symbolic(SymbolicMode),
    /// The value still holds a variable (`--chmod=$MODE`); parsed once expanded.
    Unexpanded(String),
}

/// A parsed symbolic mode with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicMode {
    pub text: String,
    pub clauses: Vec<ModeClause>,
}

/// `ug+x-w`: the classes affected and the operations applied to them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeClause {
    /// The classes named (`u`, `g`, `o`); none named means all three.
    pub user: bool,
    pub group: bool,
    pub other: bool,
    pub ops: Vec<(ModeOp, ModePerms)>,
}

/// `+`, `-` or `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeOp {
    Add,
    Remove,
    Set,
}

/// The permissions of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModePerms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    /// `X`: execute, only for directories and files that some class may already execute.
    pub search: bool,
    /// `s`: set-user-ID / set-group-ID.
    pub set_id: bool,
    /// `t`: the sticky bit.
    pub sticky: bool,
    /// `u`, `g` or `o`: copy that class's current permissions.
    pub copy_user: bool,
    pub copy_group: bool,
    pub copy_other: bool,
}

impl Chmod {
    /// Reads a final (expanded) value. The error is BuildKit's text.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        if value.starts_with(|c: char| c.is_ascii_digit()) {
            let octal = u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777);
            return octal.map(Chmod::Octal).ok_or_else(|| {
                format!(
                    "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
                )
            });
        }
        parse_symbolic(value)
            .map(|clauses| {
                Chmod::Symbolic(SymbolicMode {
                    text: value.to_string(),
                    clauses,
                })
            })
            .ok_or_else(|| "invalid syntax".to_string())
    }

    /// Parse-time reading: a value with a variable is kept for later.
    pub(super) fn parse_unexpanded(value: &str) -> Result<Chmod, String> {
        if value.contains('$') {
            Ok(Chmod::Unexpanded(value.to_string()))
        } else {
            Chmod::parse(value)
        }
    }

    /// The text to expand: the value as written.
    pub(super) fn text(&self) -> String {
        self.to_string()
    }

    /// The mode a file with mode `mode` gets (`is_dir` matters for `X`); `None` while the
    /// value is unexpanded.
    pub fn apply(&self, mode: u32, is_dir: bool) -> Option<u32> {
        match self {
            Chmod::Octal(bits) => Some((mode & !0o7777) | bits),
            Chmod::Symbolic(symbolic) => Some(symbolic.apply(mode, is_dir)),
            Chmod::Unexpanded(_) => None,
        }
    }
}

impl fmt::Display for Chmod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chmod::Octal(bits) => write!(f, "{bits:04o}"),
            Chmod::Symbolic(symbolic) => f.write_str(&symbolic.text),
            Chmod::Unexpanded(text) => f.write_str(text),
        }
    }
}

impl SymbolicMode {
    /// Applies every clause in order to `mode` (only the low 12 bits change).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode;
        let mut mode = mode;
        for clause in &self.clauses {
            let who = clause.who_mask();
            for (op, perms) in &clause.ops {
                let mut bits = 0;
                if perms.read {
                    bits |= 0o444;
                }
                if perms.write {
                    bits |= 0o222;
                }
                if perms.execute || (perms.search && (is_dir || original & 0o111 != 0)) {
                    bits |= 0o111;
                }
                let mut copied = 0;
                if perms.copy_user {
                    copied |= (mode >> 6) & 0o7;
                }
                if perms.copy_group {
                    copied |= (mode >> 3) & 0o7;
                }
                if perms.copy_other {
                    copied |= mode & 0o7;
                }
                bits |= copied * 0o111;
                let mut special = 0;
                if perms.set_id && (clause.user || clause.group || clause.all()) {
                    special |= 0o6000;
                }
                if perms.sticky && (clause.user || clause.group || clause.all()) {
                    special |= 0o1000;
                }
                let change = (bits & who) | (special & (who | 0o1000));
                mode = match op {
                    ModeOp::Add => mode | change,
                    ModeOp::Remove => mode & !change,
                    ModeOp::Set => (mode & !who) | change,
                };
            }
        }
        mode
    }
}

impl ModeClause {
    fn all(&self) -> bool {
        !(self.user || self.group || self.other)
    }

    /// The permission and set-id bits of the classes named (sticky excluded).
    fn who_mask(&self) -> u32 {
        let all = self.all();
        let mut mask = 0;
        if all || self.user {
            mask |= 0o4700;
        }
        if all || self.group {
            mask |= 0o2070;
        }
        if all || self.other {
            mask |= 0o0007;
        }
        mask
    }
}

/// `None` on a syntax error (an empty clause, a missing operator, a trailing comma...).
fn parse_symbolic(text: &str) -> Option<Vec<ModeClause>> {
    let mut clauses = Vec::new();
    for part in text.split(',') {
        let mut chars = part.chars().peekable();
        let mut clause = ModeClause {
            user: false,
            group: false,
            other: false,
            ops: Vec::new(),
        };
        while let Some(c) = chars.peek() {
            match c {
                'u' => clause.user = true,
                'g' => clause.group = true,
                'o' => clause.other = true,
                'a' => {
                    clause.user = true;
                    clause.group = true;
                    clause.other = true;
                }
                _ => break,
            }
            chars.next();
        }
        // At least one operation per clause.
        loop {
            let op = match chars.next()? {
                '+' => ModeOp::Add,
                '-' => ModeOp::Remove,
                '=' => ModeOp::Set,
                _ => return None,
            };
            let mut perms = ModePerms::default();
            while let Some(c) = chars.peek() {
                match c {
                    'r' => perms.read = true,
                    'w' => perms.write = true,
                    'x' => perms.execute = true,
                    'X' => perms.search = true,
                    's' => perms.set_id = true,
                    't' => perms.sticky = true,
                    'u' => perms.copy_user = true,
                    'g' => perms.copy_group = true,
                    'o' => perms.copy_other = true,
                    _ => break,
                }
                chars.next();
            }
            clause.ops.push((op, perms));
            if chars.peek().is_none() {
                break;
            }
        }
        clauses.push(clause);
    }
    Some(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(text).unwrap().apply(mode, is_dir).unwrap()
    }

    #[test]
    fn octal() {
        assert_eq!(Chmod::parse("755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("0644").unwrap().to_string(), "0644");
        assert_eq!(Chmod::parse("7777").unwrap(), Chmod::Octal(0o7777));
        for bad in ["17777", "8", "0x1", "99999999999999"] {
            assert_eq!(
                Chmod::parse(bad).unwrap_err(),
                format!("invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777")
            );
        }
    }

    #[test]
    fn symbolic() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("u+x,g=r", 0o660, false), 0o740);
        assert_eq!(apply("a-w", 0o666, false), 0o444);
        assert_eq!(apply("+x", 0o600, false), 0o711);
        assert_eq!(apply("go=u", 0o700, false), 0o777);
        assert_eq!(apply("o=", 0o777, false), 0o770);
        assert_eq!(apply("u=rw,go=r", 0o777, false), 0o644);
        assert_eq!(apply("a+X", 0o600, true), 0o711);
        assert_eq!(apply("a+X", 0o600, false), 0o600);
        assert_eq!(apply("a+X", 0o700, false), 0o711);
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("+t", 0o755, true), 0o1755);
        assert_eq!(apply("o+t", 0o755, true), 0o755);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
    }

    #[test]
    fn symbolic_syntax_errors() {
        for bad in ["", "u", "u+x,", "z+x", "u+x,,g+w", "u*x", "u+q"] {
            assert_eq!(Chmod::parse(bad).unwrap_err(), "invalid syntax", "{bad:?}");
        }
    }

    #[test]
    fn variables_wait_for_expansion() {
        assert_eq!(
            Chmod::parse_unexpanded("$MODE").unwrap(),
            Chmod::Unexpanded("$MODE".to_string())
        );
    }
}
