//! `COPY --chmod=...` / `ADD --chmod=...`: an octal mode (`0755`) or a symbolic one
//! (`u+x,g=r`, `a-w`, `go=u`), as BuildKit accepts them.
//!
//! Symbolic modes follow chmod(1) as BSD's `setmode(3)` reads them with a zero umask (what
//! BuildKit applies through tonistiigi/dchapes-mode): clauses separated by commas, each
//! `[ugoa]*` followed by one or more `[+-=]` operations with permissions from `rwxXst` or a
//! class to copy (`u`, `g`, `o`). The mode is applied to each copied file's own mode, so
//! `X` (execute for directories and files some class may already execute) and the class
//! copies depend on the file.

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
    pub ops: Vec<(ModeOp, Vec<ModePerm>)>,
}

/// `+`, `-` or `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeOp {
    Add,
    Remove,
    Set,
}

/// One permission symbol of an operation, in the order written (it matters when classes
/// are copied: `g=ru` is not `g=ur`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModePerm {
    /// `r`
    Read,
    /// `w`
    Write,
    /// `x`
    Execute,
    /// `X`: execute, only for directories and files that some class may already execute
    /// (in the file's mode before the whole `--chmod` applies).
    Search,
    /// `s`: set-user-ID / set-group-ID (ignored for `o` alone).
    SetId,
    /// `t`: the sticky bit (ignored for `o` alone).
    Sticky,
    /// `u`, `g` or `o`: copy that class's current permissions.
    Copy(ModeClass),
}

/// A permission class whose bits `u`, `g` or `o` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeClass {
    User,
    Group,
    Other,
}

impl ModeClass {
    /// How far the class's `rwx` bits are shifted in a mode.
    fn shift(self) -> u32 {
        match self {
            ModeClass::User => 6,
            ModeClass::Group => 3,
            ModeClass::Other => 0,
        }
    }
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

/// Set-user-ID, set-group-ID and the sticky bit.
const SET_UID: u32 = 0o4000;
const SET_GID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
/// What `a` (or no class at all) covers for `=`: everything but the sticky bit.
const STANDARD: u32 = SET_UID | SET_GID | 0o777;

/// One step of a compiled symbolic mode (`setmode(3)`'s bit commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Set these bits.
    Add(u32),
    /// Clear these bits.
    Clear(u32),
    /// Set these bits when the original mode has an execute bit or is a directory's.
    AddIfSearchable(u32),
    /// Copy `from`'s current `rwx` to the classes in `to`: `clear` first (all of them for
    /// `=`, the copied ones for `-`), then `set` (for `+` and `=`).
    Copy {
        from: ModeClass,
        to: [bool; 3],
        clear: bool,
        set: bool,
    },
}

impl SymbolicMode {
    /// Applies every clause in order to `mode` (only the low 12 bits change), as BSD's
    /// `getmode(3)` does with a zero umask.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode & 0o7777;
        let mut bits = original;
        for step in self.steps() {
            match step {
                Step::Add(b) => bits |= b,
                Step::Clear(b) => bits &= !b,
                Step::AddIfSearchable(b) => {
                    if is_dir || original & 0o111 != 0 {
                        bits |= b;
                    }
                }
                Step::Copy {
                    from,
                    to,
                    clear,
                    set,
                } => {
                    let value = (bits >> from.shift()) & 0o7;
                    let targets = [ModeClass::User, ModeClass::Group, ModeClass::Other];
                    for (class, _) in targets.iter().zip(to).filter(|(_, on)| *on) {
                        if clear {
                            let cleared = if set { 0o7 } else { value };
                            bits &= !(cleared << class.shift());
                        }
                        if set {
                            bits |= value << class.shift();
                        }
                    }
                }
            }
        }
        (mode & !0o7777) | bits
    }

    /// The clauses as bit steps, following `setmode(3)`'s reading of each symbol.
    fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for clause in &self.clauses {
            let mut who = 0;
            if clause.user {
                who |= SET_UID | 0o700;
            }
            if clause.group {
                who |= SET_GID | 0o070;
            }
            if clause.other {
                who |= 0o007;
            }
            for (op, perms) in &clause.ops {
                // `t` widens the classes for the rest of this operation only.
                let mut who = who;
                let mut perm = 0;
                let mut search = 0;
                let mut set_done = false;
                // `s` and `t` mean nothing for `o` alone.
                let special = |who: u32| who == 0 || who & !0o007 != 0;
                for symbol in perms {
                    match symbol {
                        ModePerm::Read => perm |= 0o444,
                        ModePerm::Write => perm |= 0o222,
                        ModePerm::Execute => perm |= 0o111,
                        ModePerm::Search if *op == ModeOp::Remove => perm |= 0o111,
                        ModePerm::Search => search = 0o111,
                        ModePerm::SetId if special(who) => perm |= SET_UID | SET_GID,
                        ModePerm::Sticky if special(who) => {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                        ModePerm::SetId | ModePerm::Sticky => {}
                        ModePerm::Copy(from) => {
                            if perm != 0 {
                                push_op(&mut steps, *op, who, perm);
                                perm = 0;
                            }
                            if *op == ModeOp::Set {
                                set_done = true;
                            }
                            if search != 0 {
                                steps.push(Step::AddIfSearchable(masked(who, search)));
                                search = 0;
                            }
                            let all = who == 0;
                            steps.push(Step::Copy {
                                from: *from,
                                to: [
                                    all || who & 0o400 != 0,
                                    all || who & 0o040 != 0,
                                    all || who & 0o004 != 0,
                                ],
                                clear: *op != ModeOp::Add,
                                set: *op != ModeOp::Remove,
                            });
                        }
                    }
                }
                if perm != 0 || (*op == ModeOp::Set && !set_done) {
                    push_op(&mut steps, *op, who, perm);
                }
                if search != 0 {
                    steps.push(Step::AddIfSearchable(masked(who, search)));
                }
            }
        }
        steps
    }
}

/// The bits of `perm` the classes `who` cover (all of them when no class was named).
fn masked(who: u32, perm: u32) -> u32 {
    if who == 0 {
        perm
    } else {
        who & perm
    }
}

/// `+perm`, `-perm` or `=perm` for the classes `who`.
fn push_op(steps: &mut Vec<Step>, op: ModeOp, who: u32, perm: u32) {
    match op {
        ModeOp::Add => steps.push(Step::Add(masked(who, perm))),
        ModeOp::Remove => steps.push(Step::Clear(masked(who, perm))),
        ModeOp::Set => {
            steps.push(Step::Clear(if who == 0 { STANDARD } else { who }));
            steps.push(Step::Add(masked(who, perm)));
        }
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
            let mut perms = Vec::new();
            while let Some(c) = chars.peek() {
                perms.push(match c {
                    'r' => ModePerm::Read,
                    'w' => ModePerm::Write,
                    'x' => ModePerm::Execute,
                    'X' => ModePerm::Search,
                    's' => ModePerm::SetId,
                    't' => ModePerm::Sticky,
                    'u' => ModePerm::Copy(ModeClass::User),
                    'g' => ModePerm::Copy(ModeClass::Group),
                    'o' => ModePerm::Copy(ModeClass::Other),
                    _ => break,
                });
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
        assert_eq!(apply("u+s", 0o755, false), 0o4755);
        assert_eq!(apply("g+s", 0o755, true), 0o2755);
        assert_eq!(apply("o+s", 0o755, false), 0o755);
        assert_eq!(apply("+t", 0o755, true), 0o1755);
        assert_eq!(apply("o+t", 0o755, true), 0o755);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
        assert_eq!(apply("u+x,g-w", 0o664, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("o-rwx,g+x", 0o666, false), 0o670);
        assert_eq!(apply("u=rwx,g=,o=", 0o666, false), 0o700);
        assert_eq!(apply("u+rw,g+r,o-x,o+w", 0o124, true), 0o766);
        // The file type bits above the permissions are kept.
        assert_eq!(apply("a=r", 0o100_644, false), 0o100_444);
    }

    #[test]
    fn capital_x_looks_at_the_original_mode() {
        assert_eq!(apply("a+X", 0o600, true), 0o711);
        assert_eq!(apply("a+X", 0o600, false), 0o600);
        assert_eq!(apply("a+X", 0o700, false), 0o711);
        assert_eq!(apply("a+X", 0o124, true), 0o135);
        // `=` with X: directories 755, files 644 unless some class could execute them.
        assert_eq!(apply("u=rwX,go=rX", 0o500, true), 0o755);
        assert_eq!(apply("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(apply("u=rwX,go=rX", 0o610, false), 0o755);
        assert_eq!(apply("a=rX", 0o640, false), 0o444);
        assert_eq!(apply("a=rX", 0o700, true), 0o555);
        // An execute bit added earlier in the same mode does not count.
        assert_eq!(apply("u+x,a+X", 0o600, false), 0o700);
        // `-X` removes execute whatever the file.
        assert_eq!(apply("a-X", 0o755, false), 0o644);
        assert_eq!(apply("u+x,u-X", 0o600, false), 0o600);
    }

    #[test]
    fn class_copies_read_the_current_mode() {
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("u+x,g=u", 0o600, false), 0o770);
        assert_eq!(apply("o+g", 0o650, false), 0o655);
        assert_eq!(apply("g-o", 0o675, false), 0o625);
        // Copies keep the set-group-ID bit; `=` with bits clears it.
        assert_eq!(apply("g=u", 0o2640, false), 0o2660);
        assert_eq!(apply("g=r", 0o2640, false), 0o640);
        // Symbols apply in order: `g=ru` ends with u's bits, `g=ur` with r alone.
        assert_eq!(apply("g=ru", 0o700, false), 0o770);
        assert_eq!(apply("g=ur", 0o700, false), 0o740);
    }

    #[test]
    fn sticky_with_equals_narrows_to_the_sticky_bit() {
        // setmode(3): `t` in `=` makes the clause's classes the sticky bit alone.
        assert_eq!(apply("=rt", 0o644, true), 0o1644);
        assert_eq!(apply("=r", 0o1777, true), 0o1444);
    }

    #[test]
    fn symbolic_syntax_errors() {
        for bad in ["", "u", "u+x,", "z+x", "u+x,,g+w", "u*x", "u+q"] {
            assert_eq!(Chmod::parse(bad).unwrap_err(), "invalid syntax", "{bad:?}");
        }
        for good in ["+", "=", "a=", "u+x-w+r", "ug+rw,o="] {
            assert!(Chmod::parse(good).is_ok(), "{good:?}");
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
