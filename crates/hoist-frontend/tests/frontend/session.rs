//! `hoist_frontend::solve`, the frontend session: every base image of every platform is
//! asked of the resolver once and all at the same time; the images ONBUILD triggers name
//! come in a second round; a failed resolution names the image and the `FROM` line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hoist_frontend::{solve, Error, ImageRequest, MetaResolver, ResolvedImage};
use hoist_oci::{Digest, Platform};

use crate::support::{fake_config, options};

/// Answers with fake configs; records each request and the most in flight at once (each
/// resolution yields once before answering, so resolutions started together overlap).
#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    fail: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("no such image")]
struct NoSuchImage;

impl MetaResolver for Fake {
    type Error = NoSuchImage;

    async fn resolve(&self, request: &ImageRequest) -> Result<ResolvedImage, NoSuchImage> {
        let name = format!("{} {}", request.reference, request.platform.format());
        self.asked.lock().unwrap().push(name);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        // Yield once so that the other resolutions of this round start before any ends.
        YieldOnce(false).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self
            .fail
            .is_some_and(|f| request.reference.path().contains(f))
        {
            return Err(NoSuchImage);
        }
        Ok(ResolvedImage {
            digest: Digest::sha256_of(request.reference.to_string().as_bytes()),
            config: fake_config(request),
        })
    }
}

/// A future that is pending once, then ready.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

fn platforms(list: &[&str]) -> Vec<Platform> {
    list.iter().map(|p| Platform::parse(p).unwrap()).collect()
}

#[test]
fn every_base_of_every_platform_is_resolved_once_and_at_once() {
    let df = hoist_dockerfile::parser::parse(
        "FROM example/one AS a\nFROM example/two AS b\nFROM example/three\n\
         COPY --from=a /x /x\nCOPY --from=b /y /y\nCOPY --from=example/one /z /z\n",
    )
    .unwrap();
    let fake = Fake::default();
    let definition = futures::executor::block_on(solve(
        &df,
        &options(),
        &platforms(&["linux/amd64", "linux/arm64"]),
        &fake,
    ))
    .unwrap();
    assert_eq!(definition.targets.len(), 2);
    let mut asked = fake.asked.lock().unwrap().clone();
    let total = asked.len();
    asked.sort();
    asked.dedup();
    assert_eq!(
        asked.len(),
        total,
        "an image was resolved twice: {asked:#?}"
    );
    // Three images for each of two platforms, in one round.
    assert_eq!(total, 6, "{asked:#?}");
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 6);
}

#[test]
fn images_named_by_onbuild_triggers_come_in_a_second_round() {
    let df = hoist_dockerfile::parser::parse("FROM example/base\nRUN true\n").unwrap();
    let fake = OnbuildFake(Fake::default());
    let definition = futures::executor::block_on(solve(&df, &options(), &[], &fake)).unwrap();
    let asked = fake.0.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            "docker.io/example/base:latest linux/amd64",
            "docker.io/example/tools:latest linux/amd64"
        ]
    );
    assert_eq!(definition.images.len(), 2);
}

/// A base whose ONBUILD trigger copies from another image.
struct OnbuildFake(Fake);

impl MetaResolver for OnbuildFake {
    type Error = NoSuchImage;

    async fn resolve(&self, request: &ImageRequest) -> Result<ResolvedImage, NoSuchImage> {
        let mut image = self.0.resolve(request).await?;
        if request.reference.path().contains("base") {
            image.config.config.on_build = vec!["COPY --from=example/tools /bin/tool /bin/".into()];
        }
        Ok(image)
    }
}

#[test]
fn a_failed_resolution_names_the_image_and_its_from_line() {
    let df =
        hoist_dockerfile::parser::parse("FROM example/ok AS a\nRUN true\nFROM example/missing\n")
            .unwrap();
    let fake = Fake {
        fail: Some("missing"),
        ..Fake::default()
    };
    let err = futures::executor::block_on(solve(&df, &options(), &[], &fake)).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err}");
    assert_eq!(err.span().map(|s| s.start), Some(3));
    assert_eq!(
        err.to_string(),
        "failed to resolve source metadata for docker.io/example/missing:latest: no such image"
    );
}
