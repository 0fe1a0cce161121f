//! hoist's protobuf schema for the part of BuildKit's gRPC API that `hoistd` serves (and
//! that hoist's client will call), plus the standard gRPC health service.
//!
//! The `.proto` files under `proto/` are hoist's own, written from BuildKit's wire format:
//! package, service and method names, field numbers and field types agree with BuildKit so
//! buildctl, buildx and the docker CLI interoperate; field names are Rust-style and fields
//! hoistd has no use for are left out (decoding skips them). `build.rs` compiles them with
//! `protox` and `tonic-prost-build`, so no `protoc` is needed.
//!
//! Modules mirror the protobuf packages (generated code refers across them by path):
//! - [`moby::buildkit::v1`] (also [`control`]): the `Control` service (`ListWorkers`, `Info`,
//!   `DiskUsage`, `Prune`, `Solve`, `Status`, `Session`) and its messages: `UsageRecord`,
//!   `StatusResponse` with `Vertex`, `VertexStatus`, `VertexLog`, `VertexWarning`,
//!   `BytesMessage` (the session stream), …; `control_client`/`control_server`.
//! - [`moby::buildkit::v1::types`] (also [`types`]): `WorkerRecord`, `GcPolicy`,
//!   `BuildkitVersion`.
//! - [`pb`]: the few LLB messages the above refer to (`Platform`, `Definition`,
//!   `ProgressGroup`, `SourceInfo`, `Range`, `Position`).
//! - [`moby::buildkit::v1::frontend`] (also [`gateway`]): the gateway's `LLBBridge`
//!   service (`Ping`, `Solve`, `Evaluate`, `Return`, `ResolveImageConfig`, `Inputs`,
//!   `Warn`) that buildx drives a build through after a `Control.Solve` with an empty
//!   frontend; `Result` with its `Ref`/`RefMap`, `ReturnRequest` carrying a
//!   [`google::rpc::Status`] (the gRPC error model); [`apicaps`]: `ApiCap`, the
//!   capabilities `Ping` answers with.
//! - [`grpc::health::v1`] (also [`health`]): `Health` with `Check` and `Watch`.
//! - The session services a BuildKit client serves back to the daemon through
//!   `Control.Session`: [`filesync`] (`FileSync` for directories, `FileSend` for outputs,
//!   `Auth` for registry credentials), [`fsutil_types`] (`Packet`, `Stat`: the file-sync
//!   wire format), [`secrets`] (`Secrets.GetSecret`), [`sshforward`] (`SSH`) and [`upload`] (`Upload.Pull`: a
//!   context the client uploads, such as a tar on stdin), and containerd's [`content`]
//!   store (`Info`, `Read`, `Status`, `Write`, `Abort`), which the client serves for a
//!   `type=local` cache directory (store id `local:<dir>` in the
//!   `buildkit-attachable-store-id` metadata of each call).
//!
//! Timestamps are `prost_types::Timestamp` (re-exported as [`Timestamp`]).

pub use prost;
pub use prost_types::Timestamp;
pub use tonic;

/// Generated code is not held to the workspace's lints.
macro_rules! generated {
    ($file:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $file));
    };
}

pub mod moby {
    pub mod buildkit {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            generated!("moby.buildkit.v1.rs");

            pub mod types {
                #![allow(clippy::all, clippy::pedantic, missing_docs)]
                generated!("moby.buildkit.v1.types.rs");
            }

            pub mod apicaps {
                #![allow(clippy::all, clippy::pedantic, missing_docs)]
                generated!("moby.buildkit.v1.apicaps.rs");
            }

            pub mod frontend {
                #![allow(clippy::all, clippy::pedantic, missing_docs)]
                generated!("moby.buildkit.v1.frontend.rs");
            }
        }
        pub mod secrets {
            pub mod v1 {
                #![allow(clippy::all, clippy::pedantic, missing_docs)]
                generated!("moby.buildkit.secrets.v1.rs");
            }
        }
    }
    pub mod filesync {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            generated!("moby.filesync.v1.rs");
        }
    }
    pub mod sshforward {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            generated!("moby.sshforward.v1.rs");
        }
    }
    pub mod upload {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            generated!("moby.upload.v1.rs");
        }
    }
}

pub mod containerd {
    pub mod services {
        pub mod content {
            pub mod v1 {
                #![allow(clippy::all, clippy::pedantic, missing_docs)]
                generated!("containerd.services.content.v1.rs");
            }
        }
    }
}

pub mod fsutil {
    pub mod types {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        generated!("fsutil.types.rs");
    }
}

pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    generated!("pb.rs");
}

pub mod google {
    pub mod rpc {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        generated!("google.rpc.rs");
    }
}

pub mod grpc {
    pub mod health {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            generated!("grpc.health.v1.rs");
        }
    }
}

pub use containerd::services::content::v1 as content;
pub use fsutil::types as fsutil_types;
pub use grpc::health::v1 as health;
pub use moby::buildkit::secrets::v1 as secrets;
pub use moby::buildkit::v1 as control;
pub use moby::buildkit::v1::apicaps;
pub use moby::buildkit::v1::frontend as gateway;
pub use moby::buildkit::v1::types;
pub use moby::filesync::v1 as filesync;
pub use moby::sshforward::v1 as sshforward;
pub use moby::upload::v1 as upload;
