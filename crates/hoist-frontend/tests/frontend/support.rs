//! Shared helpers: fake base images and a one-call conversion.

use std::collections::BTreeMap;

use hoist_frontend::{convert, plan, BuildOptions, Converted, ImageRequest, ResolvedImage, Result};
use hoist_oci::{Digest, History, ImageConfig, Platform};

/// A fake config for any image: one layer, `PATH`, `CMD ["sh"]`, the requested platform;
/// `onbuild` images carry ONBUILD triggers.
pub fn fake_config(request: &ImageRequest) -> ImageConfig {
    let mut config = ImageConfig::new(&request.platform);
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = vec![Digest::sha256_of(request.reference.to_string().as_bytes())];
    config.config.env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    config.config.cmd = vec!["sh".into()];
    config.created = Some("2024-01-01T00:00:00Z".into());
    config.history = vec![History {
        created: None,
        created_by: Some("/bin/sh -c #(nop) ADD file:abc in / ".into()),
        author: None,
        comment: None,
        empty_layer: false,
    }];
    if request.reference.path().contains("onbuild") {
        config.config.on_build = vec!["RUN echo triggered".into(), "WORKDIR /app".into()];
    }
    if request.reference.path().contains("withwd") {
        config.config.working_dir = "/srv".into();
        config.config.user = "nobody".into();
    }
    config
}

pub fn resolve_all(requests: &[ImageRequest]) -> BTreeMap<ImageRequest, ResolvedImage> {
    requests
        .iter()
        .map(|r| {
            let digest = Digest::sha256_of(format!("{}|{}", r.reference, r.platform).as_bytes());
            (
                r.clone(),
                ResolvedImage {
                    digest,
                    config: fake_config(r),
                },
            )
        })
        .collect()
}

pub fn options() -> BuildOptions {
    BuildOptions::new(Platform::new("linux", "amd64"))
}

pub fn options_for(platform: &str) -> BuildOptions {
    let mut o = options();
    o.target_platform = Some(Platform::parse(platform).unwrap().normalize());
    o
}

/// Parses, plans, resolves every image with [`fake_config`] and converts.
pub fn build(dockerfile: &str, opts: &BuildOptions) -> Result<Converted> {
    let df = hoist_dockerfile::parser::parse(dockerfile)?;
    let plan = plan(&df, opts)?;
    let resolved = resolve_all(&plan.images);
    convert(&plan, &resolved, opts)
}

/// The graph of the target (digests cut) and the config JSON without history digests.
pub fn snapshot(converted: &Converted) -> String {
    let graph = match converted.target {
        Some(t) => converted.graph.render(t),
        None => "(scratch)\n".into(),
    };
    let graph: String = graph
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let n = parts.next().unwrap_or_default();
            let _digest = parts.next();
            format!("{n} {}\n", parts.next().unwrap_or_default())
        })
        .collect();
    let config = serde_json::to_string_pretty(&converted.config).unwrap();
    format!("{graph}---\n{config}\n")
}
