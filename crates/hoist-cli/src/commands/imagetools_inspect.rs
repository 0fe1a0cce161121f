//! `hoist imagetools inspect NAME [--raw] [--format json|TEMPLATE]`.

use std::process::ExitCode;

use super::{block_on, print, Context};
use crate::cli::ImagetoolsInspectArgs;
use hoist_images::imagetools;

pub fn run(ctx: &Context, args: ImagetoolsInspectArgs) -> anyhow::Result<ExitCode> {
    let remote = ctx.remote(&[])?;
    block_on(async {
        let inspection = imagetools::inspect(&remote, &args.name).await?;
        if args.raw {
            // The exact bytes, no newline, so the output hashes to the digest.
            return print(&inspection.fetched.bytes);
        }
        match args.format.as_deref() {
            None | Some("") => print(imagetools::render_inspection(&inspection)),
            Some(template) if template.starts_with("{{.Manifest") => {
                // buildx prints its default view for any `{{.Manifest...}}` template.
                print(imagetools::render_inspection(&inspection))
            }
            Some(format) => {
                let template = if format == "json" {
                    "{{json .}}"
                } else {
                    format
                };
                let input = imagetools::template_input(&remote, &inspection).await?;
                let value = serde_json::to_value(&input)?;
                let mut text = imagetools::render_template(template, &value)?;
                text.push('\n');
                print(text)
            }
        }
    })??;
    Ok(ExitCode::SUCCESS)
}
