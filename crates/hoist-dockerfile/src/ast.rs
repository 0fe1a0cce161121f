//! The Dockerfile syntax tree: what the parser produces and the instruction converter reads.
//!
//! The shape follows BuildKit's `parser.Node` closely enough that its AST dump
//! (`Dockerfile::dump`) is reproduced byte for byte, but in Rust terms: an instruction is a
//! [`Node`] with its arguments in a `Vec`, not a linked list.

/// A 1-based, inclusive range of physical source lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineSpan {
    pub start: usize,
    pub end: usize,
}

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<A <<B /dest`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The body, every line with its trailing newline, not yet chomped.
    pub content: String,
    /// False when the delimiter was quoted in any way: the body is not expanded.
    pub expand: bool,
    /// True for `<<-`: leading tabs are removed from each line when the body is used.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF` → 3); 0 when none was given.
    pub file_descriptor: u32,
}

/// One instruction of a Dockerfile, as parsed (not yet typed or validated).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The instruction keyword, lower-cased (`from`, `run`, ...).
    pub keyword: String,
    /// The keyword exactly as written in the file (`From`), for error messages.
    pub keyword_original: String,
    /// `--flag` / `--flag=value` words that came before the arguments, verbatim.
    pub flags: Vec<String>,
    /// The arguments, split the way BuildKit splits them for this instruction (see the
    /// conformance README: exec form = one per element, shell form = one with the rest of the
    /// line, ENV/LABEL = `key value sep` triples, ...).
    pub args: Vec<String>,
    /// For `ONBUILD`: the nested instruction. Its `args` are empty on the outer node.
    pub nested: Option<Box<Node>>,
    /// True when the arguments came from a JSON (exec form) array.
    pub json: bool,
    /// Heredocs, in the order they appear on the instruction line.
    pub heredocs: Vec<Heredoc>,
    /// The full instruction text after joining continuation lines.
    pub original: String,
    /// The physical source lines this instruction covers.
    pub span: LineSpan,
    /// `#` comment lines directly above the instruction, without the `#` and trimmed.
    pub prev_comment: Vec<String>,
}

/// A non-fatal remark from the parser (for example an empty continuation line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub short: String,
    pub detail: Vec<String>,
    pub url: String,
    pub span: LineSpan,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    /// The instructions in file order.
    pub children: Vec<Node>,
    /// The lines covered from the first to the last instruction.
    pub span: LineSpan,
    /// The escape character in force (`\\` unless `# escape=` said otherwise).
    pub escape: char,
    pub warnings: Vec<Warning>,
}
