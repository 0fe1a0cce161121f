//! `ARG name[=default] ...`: build arguments, several per line.

use crate::ast::Node;
use crate::Result;

/// `ARG a b=1 c=`: one or more build-argument definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub args: Vec<ArgDef>,
}

/// One `name[=default]` of an `ARG` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub key: String,
    /// The default after `=`, not yet expanded; `None` for a bare `ARG name`.
    pub value: Option<String>,
    /// The comment line above that documents this name (`# name does X` → `does X`).
    pub doc_comment: String,
}

impl Arg {
    /// Expands every name and default.
    pub fn expand<F>(&self, expand: &F) -> Result<Arg>
    where
        F: Fn(&str) -> Result<String>,
    {
        let args = self
            .args
            .iter()
            .map(|def| {
                Ok(ArgDef {
                    key: expand(&def.key)?,
                    value: def.value.as_deref().map(expand).transpose()?,
                    doc_comment: def.doc_comment.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Arg { args })
    }
}

/// ARG takes no flags; like BuildKit, flag words are ignored rather than rejected.
pub(super) fn parse(node: &Node) -> Result<Arg, String> {
    if node.args.is_empty() {
        return Err(super::at_least_one_argument("ARG"));
    }
    let args = node
        .args
        .iter()
        .map(|word| {
            let (key, value) = match word.split_once('=') {
                Some(("", _)) => return Err("ARG names can not be blank".to_string()),
                Some((key, value)) => (key.to_string(), Some(value.to_string())),
                None => (word.clone(), None),
            };
            let doc_comment = doc_comment(&node.prev_comment, &key);
            Ok(ArgDef {
                key,
                value,
                doc_comment,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Arg { args })
}

/// The text after `name ` on the first comment line that starts with it, or "".
pub(super) fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}
