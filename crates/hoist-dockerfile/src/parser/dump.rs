//! The AST dump: BuildKit's `Node.Dump()` text, byte for byte.
//!
//! One line per instruction, `(keyword ["--flag" ...] "arg" ...)`, strings quoted as Go's
//! `strconv.Quote` does, an ONBUILD's nested instruction written unquoted in parentheses.
//! BuildKit's parser tests compare this text with their `result` files.

use super::gotext::{push_quoted, to_lower, trim_space};
use crate::ast::{Dockerfile, Node};

impl Dockerfile {
    /// The AST as BuildKit's `Node.Dump()` prints it: one `(...)` line per instruction, no
    /// trailing newline.
    pub fn dump(&self) -> String {
        let lines: Vec<String> = self
            .children
            .iter()
            .map(|child| format!("({})", child.dump()))
            .collect();
        trim_space(&lines.join("\n")).to_string()
    }
}

impl Node {
    /// This instruction as BuildKit dumps it, without the surrounding parentheses:
    /// `copy ["--from=a"] "x" "/y"`, `onbuild (run "echo hi")`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let mut depth = 0;
        let mut node = self;
        loop {
            out.push_str(&to_lower(&node.keyword));
            if !node.flags.is_empty() {
                out.push_str(" [");
                for (i, flag) in node.flags.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    push_quoted(&mut out, flag);
                }
                out.push(']');
            }
            for arg in &node.args {
                out.push(' ');
                push_quoted(&mut out, arg);
            }
            match node.nested.as_deref() {
                Some(inner) => {
                    out.push_str(" (");
                    depth += 1;
                    node = inner;
                }
                None => break,
            }
        }
        out.extend(std::iter::repeat_n(')', depth));
        trim_space(&out).to_string()
    }
}
