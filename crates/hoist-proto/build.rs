//! Compiles hoist's `.proto` files with `protox` (a protobuf compiler in Rust, so building
//! needs no `protoc`) and generates prost messages and tonic clients and servers from them.

const PROTOS: &[&str] = &[
    "proto/pb/ops.proto",
    "proto/moby/buildkit/v1/types/worker.proto",
    "proto/moby/buildkit/v1/control.proto",
    "proto/moby/buildkit/v1/apicaps/caps.proto",
    "proto/google/rpc/status.proto",
    "proto/moby/buildkit/v1/frontend/gateway.proto",
    "proto/grpc/health/v1/health.proto",
    "proto/fsutil/types/wire.proto",
    "proto/moby/filesync/v1/filesync.proto",
    "proto/moby/secrets/v1/secrets.proto",
    "proto/moby/sshforward/v1/ssh.proto",
    "proto/moby/upload/v1/upload.proto",
    "proto/containerd/services/content/v1/content.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
