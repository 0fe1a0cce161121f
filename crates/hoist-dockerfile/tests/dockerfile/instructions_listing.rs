//! Snapshot of `instructions::listing` (what `hoist debug instructions` prints) on a Dockerfile
//! that uses every instruction and most flags, and of the error excerpt.

use hoist_dockerfile::instructions::{error_context, listing, parse_stages};
use hoist_dockerfile::parser;

const RICH: &str = r#"# syntax=docker/dockerfile:1
# GO_VERSION selects the toolchain
ARG GO_VERSION=1.22 BASE
ARG TARGETOS

# builder compiles the binaries
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Builder
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
ENV LEGACY value with spaces
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=bind,source=go.sum,target=go.sum \
    --mount=type=secret,id=netrc,target=/root/.netrc,required \
    go build ./...
RUN --network=none --security=insecure ["go", "test", "./..."]
RUN --mount=type=tmpfs,target=/tmp,size=64m --mount=type=ssh,mode=0600 <<EOF
set -e
echo "$GO_VERSION"
EOF
RUN --mount=type=cache,id=$CACHE_ID,target=/go/pkg go mod download
COPY --link --chmod=u+x,g=r --exclude=*.md --exclude=.git . /src/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --unpack=false https://example.invalid/a.tar.gz /a.tar.gz
ADD --keep-git-dir=true git@example.invalid:org/repo.git /repo

FROM scratch
LABEL org.opencontainers.image.title="hoist" maintainer=me
MAINTAINER someone@example.invalid
COPY --from=builder --chown=1000:1000 --chmod=0755 /out/app /usr/bin/app
COPY <<-CONF <<'RAW' /etc/
	port=8080
CONF
$kept
RAW
EXPOSE 8080/tcp 443
VOLUME ["/data", "/cache"]
VOLUME /logs /tmp
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --retries=3 CMD curl -f http://localhost/ || exit 1
ONBUILD RUN echo triggered
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/usr/bin/app"]
CMD serve --port 8080

FROM builder
ARG GO_VERSION
HEALTHCHECK NONE
ENTRYPOINT []
"#;

const RICH_LISTING: &str = r##"meta line 3: ARG GO_VERSION="1.22" BASE
meta line 4: ARG TARGETOS
stage 0 (builder) line 7: FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS builder
stage 0 (builder) line 8: WORKDIR "/src"
stage 0 (builder) line 9: ENV "CGO_ENABLED"="0" "GOFLAGS"="\"-trimpath -mod=readonly\""
stage 0 (builder) line 10: ENV "LEGACY"="value with spaces"
stage 0 (builder) line 11: RUN --mount=type=cache,target=/root/.cache --mount=type=bind,source=go.sum,target=go.sum --mount=type=secret,target=/root/.netrc,id=netrc,required [shell] "go build ./..."
stage 0 (builder) line 15: RUN --network=none --security=insecure [exec] ["go", "test", "./..."]
stage 0 (builder) line 16: RUN --mount=type=tmpfs,target=/tmp,size=67108864 --mount=type=ssh,mode=0600 [shell] "<<EOF" <<EOF="set -e\necho \"$GO_VERSION\"\n"
stage 0 (builder) line 20: RUN --mount=type=cache,id=$CACHE_ID,target=/go/pkg [shell] "go mod download"
stage 0 (builder) line 21: COPY --chmod=u+x,g=r --link --exclude="*.md" --exclude=".git" ["."] -> "/src/"
stage 0 (builder) line 22: ADD --checksum="sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d" --unpack=false ["https://example.invalid/a.tar.gz"] -> "/a.tar.gz"
stage 0 (builder) line 23: ADD --keep-git-dir=true ["git@example.invalid:org/repo.git"] -> "/repo"
stage 1 line 25: FROM scratch
stage 1 line 26: LABEL "org.opencontainers.image.title"="\"hoist\"" "maintainer"="me"
stage 1 line 27: MAINTAINER "someone@example.invalid"
stage 1 line 28: COPY --from="builder" --chown="1000:1000" --chmod=0755 ["/out/app"] -> "/usr/bin/app"
stage 1 line 29: COPY [] <<CONF="port=8080\n" <<RAW="$kept\n" (raw) -> "/etc/"
stage 1 line 34: EXPOSE ["443", "8080/tcp"]
stage 1 line 35: VOLUME ["/data", "/cache"]
stage 1 line 36: VOLUME ["/logs", "/tmp"]
stage 1 line 37: USER "1000:1000"
stage 1 line 38: STOPSIGNAL "SIGTERM"
stage 1 line 39: HEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --retries=3 ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
stage 1 line 40: ONBUILD RUN [shell] "echo triggered"
stage 1 line 41: SHELL ["/bin/sh", "-ec"]
stage 1 line 42: ENTRYPOINT [exec] ["/usr/bin/app"]
stage 1 line 43: CMD [shell] "serve --port 8080"
stage 2 line 45: FROM builder
stage 2 line 46: ARG GO_VERSION
stage 2 line 47: HEALTHCHECK NONE
stage 2 line 48: ENTRYPOINT [exec] []
"##;

#[test]
fn listing_of_a_rich_dockerfile() {
    let dockerfile = parser::parse(RICH).unwrap();
    let text = listing(&dockerfile).unwrap();
    assert_eq!(text, RICH_LISTING, "\n{text}");
}

#[test]
fn rich_dockerfile_stages() {
    let dockerfile = parser::parse(RICH).unwrap();
    let (metas, stages) = parse_stages(&dockerfile).unwrap();
    let keys: Vec<&str> = metas.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["GO_VERSION", "BASE", "TARGETOS"]);
    assert_eq!(metas[0].doc_comment, "selects the toolchain");
    let names: Vec<Option<&str>> = stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("builder"), None, None]);
    assert_eq!(stages[0].doc_comment, "compiles the binaries");
    assert_eq!(stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(stages[2].base_name, "builder");
    assert_eq!(stages[0].span.start, 7);
}

#[test]
fn error_excerpt_points_at_the_instruction() {
    let text = "FROM alpine\n\nRUN --mount=type=nope,target=/x \\\n    true\nCMD [\"sh\"]\n";
    let dockerfile = parser::parse(text).unwrap();
    let err = parse_stages(&dockerfile).unwrap_err();
    assert_eq!(
        error_context("Dockerfile", text, &err),
        "Dockerfile:3\n\
         --------------------\n   \
         2 |     \n   \
         3 | >>> RUN --mount=type=nope,target=/x \\\n   \
         4 | >>>     true\n   \
         5 |     CMD [\"sh\"]\n\
         --------------------\n\
         ERROR: dockerfile parse error on line 3: unsupported mount type \"nope\"\n"
    );
}

#[test]
fn instruction_before_from() {
    let text = "ARG A\nRUN true\nFROM alpine\n";
    let dockerfile = parser::parse(text).unwrap();
    let err = parse_stages(&dockerfile).unwrap_err();
    assert_eq!(
        error_context("Dockerfile", text, &err),
        "Dockerfile:2\n\
         --------------------\n   \
         1 |     ARG A\n   \
         2 | >>> RUN true\n   \
         3 |     FROM alpine\n   \
         4 |     \n\
         --------------------\n\
         ERROR: no build stage in current context\n"
    );
}
