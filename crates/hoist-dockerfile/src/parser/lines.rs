//! Physical lines of a Dockerfile, with their line endings, as BuildKit's scanner yields them.
//!
//! BuildKit reads with a `bufio.Scanner` whose buffer holds at most 64 KiB: a line of 65536
//! bytes or more (not counting its `\n`) stops the scan, and the parse then fails with
//! "dockerfile line greater than max allowed size of 65535" unless an earlier error wins.

/// Lines (without their `\n`) must be shorter than this many bytes.
pub const MAX_LINE_LEN: usize = 65_536;

/// An iterator-like reader over physical lines that remembers a too-long line.
#[derive(Debug)]
pub(crate) struct Lines<'a> {
    rest: &'a str,
    too_long: bool,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            rest: text,
            too_long: false,
        }
    }

    /// The next line including its `\n` (the last line may lack one). `None` at the end,
    /// and from the first too-long line on.
    pub(crate) fn next_line(&mut self) -> Option<&'a str> {
        if self.too_long || self.rest.is_empty() {
            return None;
        }
        let content_len = self.rest.find('\n').unwrap_or(self.rest.len());
        if content_len >= MAX_LINE_LEN {
            self.too_long = true;
            return None;
        }
        let take = (content_len + 1).min(self.rest.len());
        let (line, rest) = self.rest.split_at(take);
        self.rest = rest;
        Some(line)
    }

    /// True when reading stopped at a line that is too long.
    pub(crate) fn too_long(&self) -> bool {
        self.too_long
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_endings() {
        let mut l = Lines::new("a\r\nb\n\nc");
        let all: Vec<_> = std::iter::from_fn(|| l.next_line()).collect();
        assert_eq!(all, ["a\r\n", "b\n", "\n", "c"]);
    }

    #[test]
    fn limit() {
        let ok = "a".repeat(MAX_LINE_LEN - 1);
        let mut l = Lines::new(&ok);
        assert!(l.next_line().is_some() && !l.too_long());
        let long = format!("x\n{}\ny", "a".repeat(MAX_LINE_LEN));
        let mut l = Lines::new(&long);
        assert_eq!(l.next_line(), Some("x\n"));
        assert_eq!(l.next_line(), None);
        assert!(l.too_long());
    }
}
