//! Golden bytes: each message kind encoded and compared with bytes derived by hand from the
//! protobuf wire format (a key is `field_number << 3 | wire_type`, wire type 0 a varint,
//! 2 a length-delimited value), so a wrong field number or type fails here rather than
//! with a real client. Fields are chosen small so each byte can be checked by eye.

use std::collections::HashMap;

use hoist_proto::control::{
    BytesMessage, CacheOptions, CacheOptionsEntry, DiskUsageRequest, DiskUsageResponse, Exporter,
    InfoRequest, InfoResponse, ListWorkersRequest, ListWorkersResponse, PruneRequest, SolveRequest,
    SolveResponse, StatusRequest, StatusResponse, UsageRecord, Vertex, VertexLog, VertexStatus,
    VertexWarning,
};
use hoist_proto::health::health_check_response::ServingStatus;
use hoist_proto::health::{HealthCheckRequest, HealthCheckResponse};
use hoist_proto::pb::{Definition, Platform, Position, ProgressGroup, Range, SourceInfo};
use hoist_proto::prost::Message;
use hoist_proto::types::{BuildkitVersion, GcPolicy, WorkerRecord};
use hoist_proto::Timestamp;

/// The pieces, concatenated: keys and lengths as byte arrays, strings as `b"…"`.
fn wire(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// Encodes `message`, compares with `expected`, and decodes `expected` back to `message`.
#[track_caller]
fn golden<M: Message + Default + PartialEq + std::fmt::Debug>(message: M, expected: Vec<u8>) {
    assert_eq!(
        message.encode_to_vec(),
        expected,
        "encoding of {message:?} differs from the hand-derived bytes"
    );
    assert_eq!(M::decode(&expected[..]).unwrap(), message);
}

#[test]
fn platform() {
    let message = Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        os_version: String::new(),
        os_features: vec!["x".into()],
    };
    // 1: "arm64", 2: "linux", 3: "v8", 4 empty (omitted), 5: ["x"]
    let expected = wire(&[
        &[0x0a, 5],
        b"arm64",
        &[0x12, 5],
        b"linux",
        &[0x1a, 2],
        b"v8",
        &[0x2a, 1],
        b"x",
    ]);
    golden(message, expected);
}

#[test]
fn gc_policy_fields_are_int64_not_zigzag() {
    let message = GcPolicy {
        all: true,
        keep_duration: 300,
        reserved_space: 1,
        filters: vec!["a".into()],
        max_used_space: 2,
        min_free_space: -1,
    };
    // 300 = 0b10_0101100 → 0xac 0x02; int64 -1 is ten bytes (sint64 would be one: 0x01).
    let expected = wire(&[
        &[0x08, 1],
        &[0x10, 0xac, 0x02],
        &[0x18, 1],
        &[0x22, 1],
        b"a",
        &[0x28, 2],
        &[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ]);
    golden(message, expected);
}

#[test]
fn buildkit_version() {
    let message = BuildkitVersion {
        package: "p".into(),
        version: "v".into(),
        revision: "r".into(),
        dockerfile_version: "d".into(),
    };
    let expected = wire(&[
        &[0x0a, 1],
        b"p",
        &[0x12, 1],
        b"v",
        &[0x1a, 1],
        b"r",
        &[0x22, 1],
        b"d",
    ]);
    golden(message, expected);
}

#[test]
fn worker_record() {
    let message = WorkerRecord {
        id: "w".into(),
        labels: map(&[("k", "v")]),
        platforms: vec![Platform {
            architecture: "a".into(),
            os: "l".into(),
            ..Platform::default()
        }],
        gc_policy: vec![GcPolicy {
            all: true,
            ..GcPolicy::default()
        }],
        buildkit_version: Some(BuildkitVersion {
            version: "1".into(),
            ..BuildkitVersion::default()
        }),
    };
    // A map entry is a message {1: key, 2: value}.
    let expected = wire(&[
        &[0x0a, 1],
        b"w",
        &[0x12, 6, 0x0a, 1],
        b"k",
        &[0x12, 1],
        b"v",
        &[0x1a, 6, 0x0a, 1],
        b"a",
        &[0x12, 1],
        b"l",
        &[0x22, 2, 0x08, 1],
        &[0x2a, 3, 0x12, 1],
        b"1",
    ]);
    golden(message, expected);
}

#[test]
fn list_workers() {
    golden(
        ListWorkersRequest {
            filter: vec!["x".into()],
        },
        wire(&[&[0x0a, 1], b"x"]),
    );
    golden(
        ListWorkersResponse {
            record: vec![WorkerRecord {
                id: "w".into(),
                ..WorkerRecord::default()
            }],
        },
        wire(&[&[0x0a, 3, 0x0a, 1], b"w"]),
    );
}

#[test]
fn info() {
    golden(InfoRequest {}, Vec::new());
    golden(
        InfoResponse {
            buildkit_version: Some(BuildkitVersion {
                package: "p".into(),
                ..BuildkitVersion::default()
            }),
        },
        wire(&[&[0x0a, 3, 0x0a, 1], b"p"]),
    );
}

#[test]
fn usage_record() {
    let message = UsageRecord {
        id: "r".into(),
        mutable: true,
        in_use: true,
        size: 1000,
        parent: String::new(),
        created_at: ts(1, 2),
        last_used_at: ts(3, 0),
        usage_count: 4,
        description: "d".into(),
        record_type: "regular".into(),
        shared: true,
        parents: vec!["p".into()],
    };
    // 1000 = 0b111_1101000 → 0xe8 0x07; field 10 (len) → 0x52, 11 (varint) → 0x58,
    // 12 (len) → 0x62.
    let expected = wire(&[
        &[0x0a, 1],
        b"r",
        &[0x10, 1],
        &[0x18, 1],
        &[0x20, 0xe8, 0x07],
        &[0x32, 4, 0x08, 1, 0x10, 2],
        &[0x3a, 2, 0x08, 3],
        &[0x40, 4],
        &[0x4a, 1],
        b"d",
        &[0x52, 7],
        b"regular",
        &[0x58, 1],
        &[0x62, 1],
        b"p",
    ]);
    golden(message, expected);
}

#[test]
fn disk_usage() {
    golden(
        DiskUsageRequest {
            filter: vec!["id==x".into()],
            age_limit: 5,
        },
        wire(&[&[0x0a, 5], b"id==x", &[0x10, 5]]),
    );
    golden(
        DiskUsageResponse {
            record: vec![UsageRecord {
                id: "a".into(),
                ..UsageRecord::default()
            }],
        },
        wire(&[&[0x0a, 3, 0x0a, 1], b"a"]),
    );
}

#[test]
fn prune_request() {
    let message = PruneRequest {
        filter: vec!["f".into()],
        all: true,
        keep_duration: 60,
        reserved_space: 7,
        max_used_space: 8,
        min_free_space: 9,
    };
    let expected = wire(&[
        &[0x0a, 1],
        b"f",
        &[0x10, 1, 0x18, 60, 0x20, 7, 0x28, 8, 0x30, 9],
    ]);
    golden(message, expected);
}

#[test]
fn solve_request() {
    let message = SolveRequest {
        r#ref: "r".into(),
        definition: Some(Definition {
            def: vec![b"x".to_vec()],
        }),
        exporter: "e".into(),
        exporter_attrs: map(&[("a", "b")]),
        session: "s".into(),
        frontend: "dockerfile.v0".into(),
        frontend_attrs: map(&[("k", "v")]),
        cache: Some(CacheOptions {
            exports: vec![CacheOptionsEntry {
                r#type: "t".into(),
                attrs: HashMap::new(),
            }],
            ..CacheOptions::default()
        }),
        entitlements: vec!["n".into()],
        frontend_inputs: HashMap::from([(
            "i".to_owned(),
            Definition {
                def: vec![b"y".to_vec()],
            },
        )]),
        internal: true,
        exporters: vec![Exporter {
            r#type: "local".into(),
            attrs: map(&[("dest", "o")]),
        }],
        enable_session_exporter: true,
    };
    let expected = wire(&[
        &[0x0a, 1],
        b"r",
        &[0x12, 3, 0x0a, 1],
        b"x",
        &[0x1a, 1],
        b"e",
        &[0x22, 6, 0x0a, 1],
        b"a",
        &[0x12, 1],
        b"b",
        &[0x2a, 1],
        b"s",
        &[0x32, 13],
        b"dockerfile.v0",
        &[0x3a, 6, 0x0a, 1],
        b"k",
        &[0x12, 1],
        b"v",
        // 8: cache {4: exports [{1: "t"}]}
        &[0x42, 5, 0x22, 3, 0x0a, 1],
        b"t",
        &[0x4a, 1],
        b"n",
        // 10: frontend_inputs {"i": {1: ["y"]}}
        &[0x52, 8, 0x0a, 1],
        b"i",
        &[0x12, 3, 0x0a, 1],
        b"y",
        &[0x58, 1],
        // 13: exporters [{1: "local", 2: {"dest": "o"}}]
        &[0x6a, 18, 0x0a, 5],
        b"local",
        &[0x12, 9, 0x0a, 4],
        b"dest",
        &[0x12, 1],
        b"o",
        &[0x70, 1],
    ]);
    golden(message, expected);
}

#[test]
fn solve_request_skips_fields_hoist_does_not_describe() {
    // A definition with op metadata (pb.Definition field 2) and a source policy (field 12):
    // both decode as unknown and are skipped, the rest is read.
    let bytes = wire(&[
        &[0x0a, 1],
        b"r",
        &[0x12, 7, 0x0a, 1],
        b"x",
        &[0x12, 2, 0x0a, 0],
        &[0x62, 2, 0x0a, 0],
        &[0x32, 13],
        b"dockerfile.v0",
    ]);
    let message = SolveRequest::decode(&bytes[..]).unwrap();
    assert_eq!(message.r#ref, "r");
    assert_eq!(message.definition.unwrap().def, vec![b"x".to_vec()]);
    assert_eq!(message.frontend, "dockerfile.v0");
}

#[test]
fn solve_response() {
    golden(
        SolveResponse {
            exporter_response: map(&[("containerimage.digest", "sha256:x")]),
        },
        wire(&[
            &[0x0a, 33, 0x0a, 21],
            b"containerimage.digest",
            &[0x12, 8],
            b"sha256:x",
        ]),
    );
}

#[test]
fn status_request() {
    golden(
        StatusRequest { r#ref: "x".into() },
        wire(&[&[0x0a, 1], b"x"]),
    );
}

fn vertex() -> (Vertex, Vec<u8>) {
    let message = Vertex {
        digest: "sha256:a".into(),
        inputs: vec!["sha256:b".into()],
        name: "[1/2] FROM".into(),
        cached: true,
        started: ts(10, 0),
        completed: ts(11, 1),
        error: "e".into(),
        progress_group: Some(ProgressGroup {
            id: "g".into(),
            name: "n".into(),
            weak: true,
        }),
    };
    let bytes = wire(&[
        &[0x0a, 8],
        b"sha256:a",
        &[0x12, 8],
        b"sha256:b",
        &[0x1a, 10],
        b"[1/2] FROM",
        &[0x20, 1],
        &[0x2a, 2, 0x08, 10],
        &[0x32, 4, 0x08, 11, 0x10, 1],
        &[0x3a, 1],
        b"e",
        &[0x42, 8, 0x0a, 1],
        b"g",
        &[0x12, 1],
        b"n",
        &[0x18, 1],
    ]);
    (message, bytes)
}

fn vertex_status() -> (VertexStatus, Vec<u8>) {
    let message = VertexStatus {
        id: "pull".into(),
        vertex: "sha256:a".into(),
        name: "n".into(),
        current: 5,
        total: 10,
        timestamp: ts(1, 0),
        started: ts(1, 0),
        completed: None,
    };
    let bytes = wire(&[
        &[0x0a, 4],
        b"pull",
        &[0x12, 8],
        b"sha256:a",
        &[0x1a, 1],
        b"n",
        &[0x20, 5, 0x28, 10],
        &[0x32, 2, 0x08, 1],
        &[0x3a, 2, 0x08, 1],
    ]);
    (message, bytes)
}

fn vertex_log() -> (VertexLog, Vec<u8>) {
    let message = VertexLog {
        vertex: "sha256:a".into(),
        timestamp: ts(2, 0),
        stream: 2,
        msg: b"hi\n".to_vec(),
    };
    let bytes = wire(&[
        &[0x0a, 8],
        b"sha256:a",
        &[0x12, 2, 0x08, 2],
        &[0x18, 2],
        &[0x22, 3],
        b"hi\n",
    ]);
    (message, bytes)
}

fn vertex_warning() -> (VertexWarning, Vec<u8>) {
    let message = VertexWarning {
        vertex: "sha256:a".into(),
        level: 1,
        short: b"s".to_vec(),
        detail: vec![b"d".to_vec()],
        url: "u".into(),
        info: Some(SourceInfo {
            filename: "Dockerfile".into(),
            data: b"FROM a".to_vec(),
            definition: None,
            language: "Dockerfile".into(),
        }),
        ranges: vec![Range {
            start: Some(Position {
                line: 1,
                character: 0,
            }),
            end: Some(Position {
                line: 1,
                character: 6,
            }),
        }],
    };
    let bytes = wire(&[
        &[0x0a, 8],
        b"sha256:a",
        &[0x10, 1],
        &[0x1a, 1],
        b"s",
        &[0x22, 1],
        b"d",
        &[0x2a, 1],
        b"u",
        // 6: info {1: "Dockerfile", 2: "FROM a", 4: "Dockerfile"} = 12 + 8 + 12 bytes
        &[0x32, 32, 0x0a, 10],
        b"Dockerfile",
        &[0x12, 6],
        b"FROM a",
        &[0x22, 10],
        b"Dockerfile",
        // 7: ranges [{1: {1: 1}, 2: {1: 1, 2: 6}}]
        &[0x3a, 10, 0x0a, 2, 0x08, 1, 0x12, 4, 0x08, 1, 0x10, 6],
    ]);
    (message, bytes)
}

#[test]
fn status_messages() {
    let (v, v_bytes) = vertex();
    let (s, s_bytes) = vertex_status();
    let (l, l_bytes) = vertex_log();
    let (w, w_bytes) = vertex_warning();
    golden(v.clone(), v_bytes.clone());
    golden(s.clone(), s_bytes.clone());
    golden(l.clone(), l_bytes.clone());
    golden(w.clone(), w_bytes.clone());
    // StatusResponse: 1 vertexes, 2 statuses, 3 logs, 4 warnings (all short enough for a
    // one-byte length).
    let response = StatusResponse {
        vertexes: vec![v],
        statuses: vec![s],
        logs: vec![l],
        warnings: vec![w],
    };
    let mut expected = Vec::new();
    for (key, bytes) in [
        (0x0a, v_bytes),
        (0x12, s_bytes),
        (0x1a, l_bytes),
        (0x22, w_bytes),
    ] {
        assert!(bytes.len() < 128);
        expected.extend([key, bytes.len() as u8]);
        expected.extend(bytes);
    }
    golden(response, expected);
}

#[test]
fn bytes_message() {
    golden(
        BytesMessage {
            data: vec![0, 1, 0xff],
        },
        vec![0x0a, 3, 0, 1, 0xff],
    );
}

#[test]
fn health() {
    golden(
        HealthCheckRequest {
            service: "moby.buildkit.v1.Control".into(),
        },
        wire(&[&[0x0a, 24], b"moby.buildkit.v1.Control"]),
    );
    golden(
        HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        },
        vec![0x08, 1],
    );
    golden(
        HealthCheckResponse {
            status: ServingStatus::ServiceUnknown as i32,
        },
        vec![0x08, 3],
    );
}

#[test]
fn method_paths_are_buildkits() {
    // The HTTP/2 paths clients call: /package.Service/Method.
    assert_eq!(
        hoist_proto::control::control_server::SERVICE_NAME,
        "moby.buildkit.v1.Control"
    );
    assert_eq!(
        hoist_proto::health::health_server::SERVICE_NAME,
        "grpc.health.v1.Health"
    );
    // The services a session's client serves, as the docker CLI lists them in
    // X-Docker-Expose-Session-Grpc-Method (/moby.filesync.v1.FileSync/DiffCopy, ...).
    for (name, want) in [
        (
            hoist_proto::filesync::file_sync_server::SERVICE_NAME,
            "moby.filesync.v1.FileSync",
        ),
        (
            hoist_proto::filesync::file_send_server::SERVICE_NAME,
            "moby.filesync.v1.FileSend",
        ),
        (
            hoist_proto::filesync::auth_server::SERVICE_NAME,
            "moby.filesync.v1.Auth",
        ),
        (
            hoist_proto::secrets::secrets_server::SERVICE_NAME,
            "moby.buildkit.secrets.v1.Secrets",
        ),
        (
            hoist_proto::sshforward::ssh_server::SERVICE_NAME,
            "moby.sshforward.v1.SSH",
        ),
        (
            hoist_proto::upload::upload_server::SERVICE_NAME,
            "moby.upload.v1.Upload",
        ),
        (
            hoist_proto::content::content_server::SERVICE_NAME,
            "containerd.services.content.v1.Content",
        ),
    ] {
        assert_eq!(name, want);
    }
}

// The session services a client serves back to the daemon.

#[test]
fn fsutil_stat_with_xattrs() {
    use hoist_proto::fsutil_types::Stat;
    let message = Stat {
        path: "a".into(),
        mode: 0o644,
        uid: 1,
        gid: 2,
        size: 300,
        mod_time: -1,
        linkname: "b".into(),
        devmajor: 8,
        devminor: 1,
        xattrs: HashMap::from([("k".to_owned(), vec![0, 1])]),
    };
    // 1: "a"; 2: 420 (varint a4 03); 3: 1; 4: 2; 5: 300 (ac 02); 6: -1 as int64 (ten
    // bytes, not zigzag); 7: "b"; 8: 8; 9: 1; 10: one map entry {1: "k", 2: [0, 1]}.
    let expected = wire(&[
        &[0x0a, 1],
        b"a",
        &[0x10, 0xa4, 0x03],
        &[0x18, 1],
        &[0x20, 2],
        &[0x28, 0xac, 0x02],
        &[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[0x3a, 1],
        b"b",
        &[0x40, 8],
        &[0x48, 1],
        &[0x52, 7, 0x0a, 1],
        b"k",
        &[0x12, 2, 0, 1],
    ]);
    golden(message, expected);
}

#[test]
fn fsutil_packets() {
    use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
    let data = Packet {
        r#type: PacketType::PacketData as i32,
        stat: Some(Stat {
            path: "x".into(),
            ..Stat::default()
        }),
        id: 7,
        data: b"hi".to_vec(),
    };
    // 1: 2 (DATA); 2: Stat {1: "x"}; 3: 7; 4: "hi"
    let expected = wire(&[
        &[0x08, 2, 0x12, 3, 0x0a, 1],
        b"x",
        &[0x18, 7, 0x22, 2],
        b"hi",
    ]);
    golden(data, expected);
    // The end of the stat walk: a STAT packet without a stat is no bytes at all.
    golden(Packet::default(), Vec::new());
    assert_eq!(PacketType::PacketReq as i32, 1);
    assert_eq!(PacketType::PacketFin as i32, 3);
    assert_eq!(PacketType::PacketErr as i32, 4);
    golden(
        Packet {
            r#type: PacketType::PacketReq as i32,
            stat: None,
            id: 300,
            data: Vec::new(),
        },
        vec![0x08, 1, 0x18, 0xac, 0x02],
    );
}

#[test]
fn filesync_bytes_message_and_credentials() {
    use hoist_proto::filesync::{BytesMessage, CredentialsRequest, CredentialsResponse};
    golden(
        BytesMessage {
            data: b"abc".to_vec(),
        },
        wire(&[&[0x0a, 3], b"abc"]),
    );
    golden(
        CredentialsRequest {
            host: "r.io".into(),
        },
        wire(&[&[0x0a, 4], b"r.io"]),
    );
    golden(
        CredentialsResponse {
            username: "u".into(),
            secret: "pw".into(),
        },
        wire(&[&[0x0a, 1], b"u", &[0x12, 2], b"pw"]),
    );
}

#[test]
fn secrets_and_ssh_messages() {
    use hoist_proto::secrets::{GetSecretRequest, GetSecretResponse};
    use hoist_proto::sshforward::{BytesMessage, CheckAgentRequest, CheckAgentResponse};
    golden(
        GetSecretRequest {
            id: "tok".into(),
            annotations: map(&[("a", "b")]),
        },
        // 1: "tok"; 2: one map entry {1: "a", 2: "b"}
        wire(&[
            &[0x0a, 3],
            b"tok",
            &[0x12, 6, 0x0a, 1],
            b"a",
            &[0x12, 1],
            b"b",
        ]),
    );
    golden(
        GetSecretResponse {
            data: vec![0, 0xff],
        },
        vec![0x0a, 2, 0, 0xff],
    );
    golden(
        CheckAgentRequest {
            id: "default".into(),
        },
        wire(&[&[0x0a, 7], b"default"]),
    );
    golden(CheckAgentResponse {}, Vec::new());
    golden(BytesMessage { data: vec![1] }, vec![0x0a, 1, 1]);
}

// The gateway (moby.buildkit.v1.frontend.LLBBridge), as buildx drives it.

mod gateway {
    use super::{golden, map, wire};
    use hoist_proto::apicaps::ApiCap;
    use hoist_proto::gateway::result::Result as Refs;
    use hoist_proto::gateway::{
        CacheOptionsEntry, EvaluateRequest, InputsResponse, PongResponse, Ref, RefMap,
        ResolveImageConfigRequest, ResolveImageConfigResponse, Result, ReturnRequest, SolveRequest,
        SolveResponse, WarnRequest,
    };
    use hoist_proto::google::rpc::Status;
    use hoist_proto::pb::{Definition, Platform, Position, Range};
    use hoist_proto::types::WorkerRecord;

    fn def() -> Definition {
        Definition {
            def: vec![b"d".to_vec()],
        }
    }

    #[test]
    fn solve_request_with_every_field() {
        let message = SolveRequest {
            definition: Some(def()),
            frontend: "f".into(),
            frontend_opt: map(&[("k", "v")]),
            allow_result_return: true,
            allow_result_array_ref: true,
            r#final: true,
            exporter_attr: b"{}".to_vec(),
            cache_imports: vec![CacheOptionsEntry {
                r#type: "t".into(),
                attrs: map(&[]),
            }],
            frontend_inputs: [("c".to_owned(), def())].into(),
            evaluate: true,
        };
        // 1: Definition{1: "d"}, 2: "f", 3: {"k": "v"}, 5, 6: true, 10: true, 11: "{}",
        // 12: {1: "t"}, 13: {"c": Definition}, 14: true.
        let expected = wire(&[
            &[0x0a, 3, 0x0a, 1],
            b"d",
            &[0x12, 1],
            b"f",
            &[0x1a, 6, 0x0a, 1],
            b"k",
            &[0x12, 1],
            b"v",
            &[0x28, 1, 0x30, 1, 0x50, 1, 0x5a, 2],
            b"{}",
            &[0x62, 3, 0x0a, 1],
            b"t",
            &[0x6a, 8, 0x0a, 1],
            b"c",
            &[0x12, 3, 0x0a, 1],
            b"d",
            &[0x70, 1],
        ]);
        golden(message, expected);
    }

    #[test]
    fn results_single_multi_and_deprecated() {
        // 3: Ref{1: "r"}; 10: {"m": b"x"}.
        let single = Result {
            result: Some(Refs::Ref(Ref {
                id: "r".into(),
                def: None,
            })),
            metadata: [("m".to_owned(), b"x".to_vec())].into(),
        };
        let expected = wire(&[
            &[0x1a, 3, 0x0a, 1],
            b"r",
            &[0x52, 6, 0x0a, 1],
            b"m",
            &[0x12, 1],
            b"x",
        ]);
        golden(single, expected);
        // 4: RefMap{1: {"linux/arm64": Ref{1: "r"}}}.
        let multi = Result {
            result: Some(Refs::Refs(RefMap {
                refs: [(
                    "linux/arm64".to_owned(),
                    Ref {
                        id: "r".into(),
                        def: None,
                    },
                )]
                .into(),
            })),
            metadata: Default::default(),
        };
        let expected = wire(&[
            &[0x22, 20, 0x0a, 18, 0x0a, 11],
            b"linux/arm64",
            &[0x12, 3, 0x0a, 1],
            b"r",
        ]);
        golden(multi, expected);
        // SolveResponse 3: Result{1: "r"} (a string ref, clients before proto.refarray).
        let response = SolveResponse {
            r#ref: String::new(),
            result: Some(Result {
                result: Some(Refs::RefDeprecated("r".into())),
                metadata: Default::default(),
            }),
        };
        golden(response, wire(&[&[0x1a, 3, 0x0a, 1], b"r"]));
    }

    #[test]
    fn return_with_a_result_and_an_error() {
        let message = ReturnRequest {
            result: Some(Result {
                result: Some(Refs::Ref(Ref {
                    id: "r".into(),
                    def: None,
                })),
                metadata: Default::default(),
            }),
            error: Some(Status {
                code: 2,
                message: "m".into(),
                details: Vec::new(),
            }),
        };
        // 1: Result{3: Ref{1: "r"}}; 2: google.rpc.Status{1: 2 (varint), 2: "m"}.
        let expected = wire(&[
            &[0x0a, 5, 0x1a, 3, 0x0a, 1],
            b"r",
            &[0x12, 5, 0x08, 2, 0x12, 1],
            b"m",
        ]);
        golden(message, expected);
    }

    #[test]
    fn pong_with_caps_and_a_worker() {
        let message = PongResponse {
            frontend_api_caps: vec![ApiCap {
                id: "return".into(),
                enabled: true,
                ..ApiCap::default()
            }],
            llb_caps: vec![ApiCap {
                id: "x".into(),
                disabled_reason: "u".into(),
                ..ApiCap::default()
            }],
            workers: vec![WorkerRecord {
                id: "w".into(),
                ..WorkerRecord::default()
            }],
        };
        // 1: APICap{1: "return", 2: true}; 2: APICap{1: "x", 4: "u"}; 3: WorkerRecord{1: "w"}.
        let expected = wire(&[
            &[0x0a, 10, 0x0a, 6],
            b"return",
            &[0x10, 1, 0x12, 6, 0x0a, 1],
            b"x",
            &[0x22, 1],
            b"u",
            &[0x1a, 3, 0x0a, 1],
            b"w",
        ]);
        golden(message, expected);
    }

    #[test]
    fn resolve_image_config_request_and_response() {
        let request = ResolveImageConfigRequest {
            r#ref: "b".into(),
            platform: Some(Platform {
                architecture: "a".into(),
                os: "l".into(),
                ..Platform::default()
            }),
            resolve_mode: "pull".into(),
            log_name: "n".into(),
            resolver_type: 1,
            session_id: "s".into(),
            store_id: "t".into(),
        };
        let expected = wire(&[
            &[0x0a, 1],
            b"b",
            &[0x12, 6, 0x0a, 1],
            b"a",
            &[0x12, 1],
            b"l",
            &[0x1a, 4],
            b"pull",
            &[0x22, 1],
            b"n",
            &[0x28, 1, 0x32, 1],
            b"s",
            &[0x3a, 1],
            b"t",
        ]);
        golden(request, expected);
        let response = ResolveImageConfigResponse {
            digest: "d".into(),
            config: b"{}".to_vec(),
            r#ref: "r".into(),
        };
        let expected = wire(&[&[0x0a, 1], b"d", &[0x12, 2], b"{}", &[0x1a, 1], b"r"]);
        golden(response, expected);
    }

    #[test]
    fn warn_evaluate_and_inputs() {
        let warn = WarnRequest {
            digest: "d".into(),
            level: 1,
            short: b"s".to_vec(),
            detail: vec![b"x".to_vec()],
            url: "u".into(),
            info: None,
            ranges: vec![Range {
                start: Some(Position {
                    line: 3,
                    character: 0,
                }),
                end: None,
            }],
        };
        let expected = wire(&[
            &[0x0a, 1],
            b"d",
            &[0x10, 1, 0x1a, 1],
            b"s",
            &[0x22, 1],
            b"x",
            &[0x2a, 1],
            b"u",
            &[0x3a, 4, 0x0a, 2, 0x08, 3],
        ]);
        golden(warn, expected);
        golden(
            EvaluateRequest { r#ref: "r".into() },
            wire(&[&[0x0a, 1], b"r"]),
        );
        let inputs = InputsResponse {
            definitions: [("c".to_owned(), def())].into(),
        };
        let expected = wire(&[&[0x0a, 8, 0x0a, 1], b"c", &[0x12, 3, 0x0a, 1], b"d"]);
        golden(inputs, expected);
    }

    #[test]
    fn read_file_read_dir_and_stat_file() {
        use hoist_proto::fsutil_types::Stat;
        use hoist_proto::gateway::{
            FileRange, ReadDirRequest, ReadDirResponse, ReadFileRequest, ReadFileResponse,
            StatFileRequest, StatFileResponse,
        };
        // ReadFileRequest: 1 ref, 2 file path, 3 range {1: offset, 2: length} (int64).
        let read = ReadFileRequest {
            r#ref: "r".into(),
            file_path: "/a".into(),
            range: Some(FileRange {
                offset: 2,
                length: 300,
            }),
        };
        let expected = wire(&[
            &[0x0a, 1],
            b"r",
            &[0x12, 2],
            b"/a",
            &[0x1a, 5, 0x08, 2, 0x10, 0xac, 0x02],
        ]);
        golden(read, expected);
        golden(
            ReadFileResponse {
                data: b"xy".to_vec(),
            },
            wire(&[&[0x0a, 2], b"xy"]),
        );
        // ReadDirRequest: 1 ref, 2 dir path, 3 include pattern.
        let dir = ReadDirRequest {
            r#ref: "r".into(),
            dir_path: "d".into(),
            include_pattern: "*.md".into(),
        };
        let expected = wire(&[&[0x0a, 1], b"r", &[0x12, 1], b"d", &[0x1a, 4], b"*.md"]);
        golden(dir, expected);
        let stat = Stat {
            path: "a".into(),
            mode: 0o644,
            ..Stat::default()
        };
        // ReadDirResponse: 1 entries (fsutil Stat: 1 path, 2 mode).
        let expected = wire(&[&[0x0a, 6, 0x0a, 1], b"a", &[0x10, 0xa4, 0x03]]);
        golden(
            ReadDirResponse {
                entries: vec![stat.clone()],
            },
            expected.clone(),
        );
        // StatFileRequest: 1 ref, 2 path; StatFileResponse: 1 stat.
        golden(
            StatFileRequest {
                r#ref: "r".into(),
                path: "p".into(),
            },
            wire(&[&[0x0a, 1], b"r", &[0x12, 1], b"p"]),
        );
        golden(StatFileResponse { stat: Some(stat) }, expected);
    }
}

#[test]
fn upload_bytes_message() {
    use hoist_proto::upload::BytesMessage;
    // 1: bytes
    golden(
        BytesMessage {
            data: b"tar".to_vec(),
        },
        wire(&[&[0x0a, 3], b"tar"]),
    );
    golden(BytesMessage { data: Vec::new() }, Vec::new());
}

#[test]
fn content_info_and_read() {
    use hoist_proto::content::{
        Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse,
    };
    // 1: "sha256:a"
    golden(
        InfoRequest {
            digest: "sha256:a".into(),
        },
        wire(&[&[0x0a, 8], b"sha256:a"]),
    );
    // Info{1: "d", 2: 300 (int64 varint 0xac 0x02), 3: {1: 5}, 5: {"k": "v"}}
    let info = Info {
        digest: "d".into(),
        size: 300,
        created_at: ts(5, 0),
        updated_at: None,
        labels: map(&[("k", "v")]),
    };
    let info_bytes = wire(&[
        &[0x0a, 1],
        b"d",
        &[0x10, 0xac, 0x02],
        &[0x1a, 2, 0x08, 5],
        &[0x2a, 6, 0x0a, 1],
        b"k",
        &[0x12, 1],
        b"v",
    ]);
    golden(info.clone(), info_bytes.clone());
    golden(
        InfoResponse { info: Some(info) },
        wire(&[&[0x0a, info_bytes.len() as u8], &info_bytes]),
    );
    // 1: "d", 2: 7, 3: 9
    golden(
        ReadContentRequest {
            digest: "d".into(),
            offset: 7,
            size: 9,
        },
        wire(&[&[0x0a, 1], b"d", &[0x10, 7, 0x18, 9]]),
    );
    // 1: 4, 2: "xy"
    golden(
        ReadContentResponse {
            offset: 4,
            data: b"xy".to_vec(),
        },
        wire(&[&[0x08, 4, 0x12, 2], b"xy"]),
    );
}

#[test]
fn content_write_status_and_abort() {
    use hoist_proto::content::{
        AbortRequest, Status, StatusRequest, StatusResponse, WriteAction, WriteContentRequest,
        WriteContentResponse,
    };
    // STAT is 0 (omitted); 2: "r", 3: 3, 4: "e"
    golden(
        WriteContentRequest {
            action: WriteAction::Stat.into(),
            r#ref: "r".into(),
            total: 3,
            expected: "e".into(),
            offset: 0,
            data: Vec::new(),
            labels: HashMap::new(),
        },
        wire(&[&[0x12, 1], b"r", &[0x18, 3, 0x22, 1], b"e"]),
    );
    // 1: WRITE (1), 5: 2, 6: "ab"
    golden(
        WriteContentRequest {
            action: WriteAction::Write.into(),
            offset: 2,
            data: b"ab".to_vec(),
            ..WriteContentRequest::default()
        },
        wire(&[&[0x08, 1, 0x28, 2, 0x32, 2], b"ab"]),
    );
    // 1: COMMIT (2), 7: {"a": "b"}
    golden(
        WriteContentRequest {
            action: WriteAction::Commit.into(),
            labels: map(&[("a", "b")]),
            ..WriteContentRequest::default()
        },
        wire(&[&[0x08, 2, 0x3a, 6, 0x0a, 1], b"a", &[0x12, 1], b"b"]),
    );
    // 1: COMMIT, 2: {1: 1}, 3: {1: 2}, 4: 5, 5: 5, 6: "d"
    golden(
        WriteContentResponse {
            action: WriteAction::Commit.into(),
            started_at: ts(1, 0),
            updated_at: ts(2, 0),
            offset: 5,
            total: 5,
            digest: "d".into(),
        },
        wire(&[
            &[0x08, 2, 0x12, 2, 0x08, 1, 0x1a, 2, 0x08, 2],
            &[0x20, 5, 0x28, 5, 0x32, 1],
            b"d",
        ]),
    );
    golden(
        StatusRequest { r#ref: "r".into() },
        wire(&[&[0x0a, 1], b"r"]),
    );
    // Status{3: "r", 4: 1, 5: 2, 6: "e"} inside StatusResponse field 1
    golden(
        StatusResponse {
            status: Some(Status {
                started_at: None,
                updated_at: None,
                r#ref: "r".into(),
                offset: 1,
                total: 2,
                expected: "e".into(),
            }),
        },
        wire(&[
            &[0x0a, 10, 0x1a, 1],
            b"r",
            &[0x20, 1, 0x28, 2, 0x32, 1],
            b"e",
        ]),
    );
    golden(
        AbortRequest { r#ref: "r".into() },
        wire(&[&[0x0a, 1], b"r"]),
    );
}
