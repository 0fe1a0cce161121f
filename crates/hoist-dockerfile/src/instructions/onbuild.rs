//! `ONBUILD <instruction>`: a trigger stored in the image, run by builds that use it as base.

use super::flags::Flags;
use super::{at_least_one_argument, parse_node, Instruction};
use crate::ast::Node;

/// `ONBUILD RUN make`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBuild {
    /// The trigger's text as stored in the image config (`RUN make`), heredoc bodies
    /// appended.
    pub expression: String,
    /// The trigger, parsed.
    pub trigger: Box<Instruction>,
}

pub(super) fn parse(node: &Node) -> Result<OnBuild, String> {
    let Some(nested) = node.nested.as_deref() else {
        return Err(at_least_one_argument("ONBUILD"));
    };
    Flags::parse(&node.flags, &[])?;
    let trigger_keyword = nested.keyword.trim().to_uppercase();
    match trigger_keyword.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()),
        "MAINTAINER" | "FROM" => {
            return Err(format!(
                "{trigger_keyword} isn't allowed as an ONBUILD trigger"
            ))
        }
        _ => {}
    }
    let trigger = Box::new(parse_node(nested)?);
    Ok(OnBuild {
        expression: expression(node),
        trigger,
    })
}

/// The node's text without the leading `ONBUILD` keyword, with heredoc bodies appended.
fn expression(node: &Node) -> String {
    let text = node.original.trim_start();
    let keyword_len = "onbuild".len();
    let mut expression = match text.get(..keyword_len) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => {
            text[keyword_len..].trim_start().to_string()
        }
        _ => text.to_string(),
    };
    let heredocs = if node.heredocs.is_empty() {
        node.nested
            .as_deref()
            .map(|n| n.heredocs.as_slice())
            .unwrap_or_default()
    } else {
        node.heredocs.as_slice()
    };
    for heredoc in heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    expression
}
