//! `FROM [--platform=p] image [AS name]`: the instruction that starts a build stage.

use super::arg::doc_comment;
use super::flags::{FlagSpec, Flags};
use crate::ast::Node;
use crate::Result;

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base: an image reference, a previous stage's name, or `scratch`; not yet expanded.
    pub image: String,
    /// The stage name after `AS`, lower-cased (stage names are case-insensitive).
    pub name: Option<String>,
    /// `--platform`, not yet expanded (often `$BUILDPLATFORM`).
    pub platform: Option<String>,
    /// The comment block above the line that documents the stage (`# name does X` → `does X`).
    pub doc_comment: String,
}

impl From {
    /// Expands the image and the platform (BuildKit does so with the global ARGs in scope).
    pub fn expand<F>(&self, expand: &F) -> Result<From>
    where
        F: Fn(&str) -> Result<String>,
    {
        Ok(From {
            image: expand(&self.image)?,
            name: self.name.clone(),
            platform: self.platform.as_deref().map(expand).transpose()?,
            doc_comment: self.doc_comment.clone(),
        })
    }
}

/// BuildKit's stage-name rule `^[a-z][a-z0-9-_.]*$`, checked on the lower-cased name.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(super) fn parse(node: &Node) -> Result<From, String> {
    let args = &node.args;
    let name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_lowercase();
            if !is_valid_stage_name(&name) {
                return Err(format!(
                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                    args[2]
                ));
            }
            Some(name)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".to_string()),
    };
    let flags = Flags::parse(&node.flags, &[FlagSpec::string("platform")])?;
    let doc_comment = match &name {
        Some(name) => doc_comment(&node.prev_comment, name),
        None => String::new(),
    };
    Ok(From {
        image: args[0].clone(),
        name,
        platform: flags.string("platform").filter(|p| !p.is_empty()),
        doc_comment,
    })
}
