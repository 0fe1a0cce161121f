//! `COPY` and `ADD`: sources (paths, URLs, heredocs) to a destination, with their flags.

use super::chmod::Chmod;
use super::expand_all;
use super::flags::{FlagSpec, Flags};
use crate::ast::{Heredoc, Node};
use crate::parser;
use crate::{Error, Result};

/// The sources and destination of a COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Paths in the context (or URLs / git refs for ADD), not yet expanded.
    pub paths: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /dest`), already chomped for `<<-`.
    pub contents: Vec<SourceContent>,
    /// The destination, not yet expanded.
    pub dest: String,
}

/// An inline file given as a heredoc source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The file name: the heredoc delimiter.
    pub path: String,
    pub data: String,
    /// False when the delimiter was quoted: the body is used as is.
    pub expand: bool,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]... src... dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Sources,
    /// `--from`: a stage name or index, an image, or a named build context.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    pub link: bool,
    /// `--parents`: keep the source's parent directories under the destination.
    pub parents: bool,
    /// `--exclude` patterns, in order.
    pub excludes: Vec<String>,
}

/// `ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--unpack] [--exclude]...
/// src... dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Sources,
    pub chown: Option<String>,
    pub chmod: Option<Chmod>,
    pub link: bool,
    /// `--keep-git-dir`, `None` when not given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum=sha256:...` of a remote source.
    pub checksum: Option<String>,
    /// `--unpack`, `None` when not given (archives from the context are unpacked, URLs not).
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
}

impl Sources {
    /// Expands the paths and the destination (heredoc bodies are expanded by the engine,
    /// which knows where the content goes).
    pub fn expand<F>(&self, expand: &F) -> Result<Sources>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Sources {
            paths: expand_all(&self.paths, expand)?,
            contents: self.contents.clone(),
            dest: expand(&self.dest)?,
        })
    }
}

impl Sources {
    /// Expands the bodies of heredoc sources whose delimiter was not quoted (BuildKit's
    /// `ExpandRaw`; the engine passes an expander that keeps quotes and whitespace).
    pub fn expand_contents<F>(&self, expand: &F) -> Result<Sources>
    where
        F: Fn(&str) -> Result<String>,
    {
        let contents = self
            .contents
            .iter()
            .map(|content| {
                Ok(SourceContent {
                    data: if content.expand {
                        expand(&content.data)?
                    } else {
                        content.data.clone()
                    },
                    ..content.clone()
                })
            })
            .collect::<Result<_>>()?;
        Ok(Sources {
            contents,
            ..self.clone()
        })
    }
}

impl Copy {
    /// Expands sources, destination, `--chown` and `--chmod` (not `--from`, which BuildKit
    /// refuses to expand, nor `--exclude`).
    pub fn expand<F>(&self, expand: &F) -> Result<Copy>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Copy {
            sources: self.sources.expand(expand)?,
            chown: self.chown.as_deref().map(expand).transpose()?,
            chmod: expand_chmod(&self.chmod, expand)?,
            ..self.clone()
        })
    }
}

impl Add {
    /// Expands sources, destination, `--chown`, `--chmod` and `--checksum`.
    pub fn expand<F>(&self, expand: &F) -> Result<Add>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(Add {
            sources: self.sources.expand(expand)?,
            chown: self.chown.as_deref().map(expand).transpose()?,
            chmod: expand_chmod(&self.chmod, expand)?,
            checksum: self.checksum.as_deref().map(expand).transpose()?,
            ..self.clone()
        })
    }
}

fn expand_chmod<F>(chmod: &Option<Chmod>, expand: &F) -> Result<Option<Chmod>>
where
    F: Fn(&str) -> Result<String>,
{
    let Some(chmod) = chmod else { return Ok(None) };
    let value = expand(&chmod.text())?;
    if value.is_empty() {
        return Ok(None);
    }
    Chmod::parse(&value)
        .map(Some)
        .map_err(|message| Error::InvalidValue { message })
}

const COPY_FLAGS: &[FlagSpec] = &[
    FlagSpec::string("chown"),
    FlagSpec::string("from"),
    FlagSpec::string("chmod"),
    FlagSpec::bool("link"),
    FlagSpec::strings("exclude"),
    FlagSpec::bool("parents"),
];

const ADD_FLAGS: &[FlagSpec] = &[
    FlagSpec::string("chown"),
    FlagSpec::string("chmod"),
    FlagSpec::bool("link"),
    FlagSpec::bool("keep-git-dir"),
    FlagSpec::string("checksum"),
    FlagSpec::bool("unpack"),
    FlagSpec::strings("exclude"),
];

pub(super) fn parse_copy(node: &Node) -> Result<Copy, String> {
    if node.args.len() < 2 {
        return Err(no_destination("COPY"));
    }
    let flags = Flags::parse(&node.flags, COPY_FLAGS)?;
    Ok(Copy {
        sources: sources(node, "COPY")?,
        from: non_empty(flags.string("from")),
        chown: non_empty(flags.string("chown")),
        chmod: chmod(flags.string("chmod"))?,
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        excludes: flags.strings("exclude"),
    })
}

pub(super) fn parse_add(node: &Node) -> Result<Add, String> {
    if node.args.len() < 2 {
        return Err(no_destination("ADD"));
    }
    let flags = Flags::parse(&node.flags, ADD_FLAGS)?;
    Ok(Add {
        sources: sources(node, "ADD")?,
        chown: non_empty(flags.string("chown")),
        chmod: chmod(flags.string("chmod"))?,
        link: flags.bool("link").unwrap_or(false),
        keep_git_dir: flags.bool("keep-git-dir"),
        checksum: non_empty(flags.string("checksum")),
        unpack: flags.bool("unpack"),
        excludes: flags.strings("exclude"),
    })
}

fn no_destination(keyword: &str) -> String {
    format!(
        "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn chmod(value: Option<String>) -> Result<Option<Chmod>, String> {
    match non_empty(value) {
        Some(v) => Chmod::parse_unexpanded(&v).map(Some),
        None => Ok(None),
    }
}

fn sources(node: &Node, keyword: &str) -> Result<Sources, String> {
    let (dest, srcs) = match node.args.split_last() {
        Some(split) => split,
        None => return Err(no_destination(keyword)),
    };
    if heredoc_word(dest).is_some() {
        return Err(format!(
            "{keyword} cannot accept a heredoc as a destination"
        ));
    }
    let mut paths = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match heredoc_word(src) {
            Some(word) => {
                let body = node.heredocs.iter().find(|h| h.name == word.name);
                let data = body.map(|h| h.content.clone()).unwrap_or_default();
                let data = if word.chomp {
                    parser::chomp_heredoc_content(&data)
                } else {
                    data
                };
                contents.push(SourceContent {
                    path: word.name,
                    data,
                    expand: word.expand,
                });
            }
            None => paths.push(src.clone()),
        }
    }
    Ok(Sources {
        paths,
        contents,
        dest: dest.clone(),
    })
}

/// A word that is a heredoc marker (`<<EOF`, `<<-'EOF'`); malformed markers are plain
/// words, as BuildKit's `MustParseHeredoc` treats them.
fn heredoc_word(word: &str) -> Option<Heredoc> {
    parser::parse_heredoc(word).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let w = heredoc_word("<<EOF").unwrap();
        assert_eq!((w.name.as_str(), w.chomp, w.expand), ("EOF", false, true));
        let w = heredoc_word("3<<-'EOF'").unwrap();
        assert_eq!((w.name.as_str(), w.chomp, w.expand), ("EOF", true, false));
        assert!(heredoc_word("<<").is_none());
        assert!(heredoc_word("file.txt").is_none());
        assert!(heredoc_word("<<<EOF").is_none());
    }
}
