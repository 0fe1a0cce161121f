//! What a BuildKit daemon says about itself over gRPC — `Control.Info` (its version) and
//! `Control.ListWorkers` (its platforms) — asked the same way of every driver whose node
//! speaks BuildKit's API (`remote`, `docker-container`).

use hoist_oci::Platform;
use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{InfoRequest, ListWorkersRequest};
use hoist_proto::types::BuildkitVersion;
use tonic::transport::Channel;

/// BuildKit's own package name in `Info`'s `buildkit_version`.
const BUILDKIT_PACKAGE: &str = "github.com/moby/buildkit";

/// The daemon's version as `ls`/`inspect` show it, and its workers' platforms (each once,
/// in the order reported).
pub(crate) async fn ask(channel: Channel) -> Result<(String, Vec<Platform>), tonic::Status> {
    let mut client = ControlClient::new(channel);
    let info = client.info(InfoRequest {}).await?.into_inner();
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await?
        .into_inner();
    let mut platforms: Vec<Platform> = Vec::new();
    for record in workers.record {
        for p in record.platforms {
            let platform = Platform {
                architecture: p.architecture,
                os: p.os,
                variant: p.variant,
                os_version: p.os_version,
                os_features: p.os_features,
                ..Platform::default()
            };
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
    }
    Ok((version_text(info.buildkit_version.as_ref()), platforms))
}

/// buildx shows `buildkit_version.version` (`v0.12.5`); a daemon that is not BuildKit
/// (hoistd: package `hoist`) is shown with its package name first (`hoist v0.1.0`), as the
/// embedded driver is, so a hoistd is not mistaken for a BuildKit of that version.
pub(crate) fn version_text(version: Option<&BuildkitVersion>) -> String {
    let Some(v) = version else {
        return String::new();
    };
    if v.package.is_empty() || v.package == BUILDKIT_PACKAGE {
        v.version.clone()
    } else {
        format!("{} {}", v.package, v.version).trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_shown() {
        let v = |package: &str, version: &str| BuildkitVersion {
            package: package.to_owned(),
            version: version.to_owned(),
            ..BuildkitVersion::default()
        };
        assert_eq!(
            version_text(Some(&v("github.com/moby/buildkit", "v0.12.5"))),
            "v0.12.5"
        );
        assert_eq!(version_text(Some(&v("", "v0.12.5"))), "v0.12.5");
        assert_eq!(version_text(Some(&v("hoist", "v0.1.0"))), "hoist v0.1.0");
        assert_eq!(version_text(None), "");
    }
}
