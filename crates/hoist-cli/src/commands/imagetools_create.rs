//! `hoist imagetools create -t TARGET... [-f FILE]... [--append] [--dry-run] SOURCE...`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::{block_on, print, Context};
use crate::cli::ImagetoolsCreateArgs;
use hoist_images::imagetools::{self, CreateRequest};

pub fn run(ctx: &Context, args: ImagetoolsCreateArgs) -> anyhow::Result<ExitCode> {
    let mut sources = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        sources.push(text);
    }
    sources.extend(args.sources);
    let request = CreateRequest {
        tags: args.tags,
        sources,
        append: args.append,
        dry_run: args.dry_run,
        prefer_index: args.prefer_index,
        annotations: args.annotations,
    };
    let remote = ctx.remote(&[])?;
    let created = block_on(imagetools::create(&remote, &request))??;
    if request.dry_run {
        let mut bytes = created.bytes;
        bytes.push(b'\n');
        print(bytes)?;
    } else {
        for (digest, from, to) in &created.copied {
            eprintln!("copying {digest} from {from} to {to}");
        }
        for tag in &created.pushed {
            eprintln!("pushing {} to {tag}", created.descriptor.digest);
        }
    }
    Ok(ExitCode::SUCCESS)
}
