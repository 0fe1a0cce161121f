//! BuildKit's cache config (`application/vnd.buildkit.cacheconfig.v0`) as plain serde
//! structs, and hoist's records in and out of it.
//!
//! The config lists `layers` (a blob and the index of its parent layer, `-1` for none)
//! and `records` (a cache key digest, the inputs linking it to other records, and results:
//! the index of the layer on top of the result's chain). hoist's cache keys already cover
//! their inputs, so its records have no `inputs`; a result is its layer chain. Reading
//! accepts what BuildKit writes (inputs, `chains`, records without results) and keeps
//! only what hoist can use: a record whose digest is a key and whose chain resolves.

use std::collections::{BTreeMap, HashMap};

use hoist_oci::{Descriptor, Digest};
use hoist_solver::CacheKey;
use serde::{Deserialize, Serialize};

/// The media type of the cache config blob.
pub(crate) const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The descriptor annotation holding a layer's uncompressed digest.
pub(crate) const UNCOMPRESSED_ANNOTATION: &str = "containerd.io/uncompressed";
/// The descriptor annotation holding when a layer was made.
pub(crate) const CREATED_AT_ANNOTATION: &str = "buildkit/createdat";

/// Layer chains longer than this are refused (a hostile config could loop).
const MAX_CHAIN: usize = 4096;

/// The cache config document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CacheConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<ConfigLayer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<ConfigRecord>,
    /// hoist's extension: the `RUN --mount=type=cache` directories carried (`mounts=`).
    /// BuildKit's decoder ignores the unknown field; `layers` and `records` do not list
    /// these blobs.
    #[serde(
        rename = "hoist.cacheMounts",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<ConfigMount>,
}

/// One cache mount carried: its id and the layer blob holding its files (listed in the
/// root document with the other layers, so registries keep it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigMount {
    pub id: String,
    pub blob: String,
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

/// One layer: a blob and its parent's index (`-1`: none). Go leaves a zero index out, so
/// a missing `parent` reads as 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigLayer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

/// What BuildKit notes of a layer next to its blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LayerAnnotations {
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<BTreeMap<String, String>>,
}

/// One record: a cache key and its results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigRecord {
    #[serde(rename = "layers", default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ConfigResult>,
    #[serde(rename = "chains", default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainedResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<ConfigInput>>,
}

/// A result: the layer on top of its chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigResult {
    pub layer: i64,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A result given as its layers' indexes, base first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChainedResult {
    #[serde(default)]
    pub layers: Vec<i64>,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A link from a record to one of its inputs' records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    pub link: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One layer of a record to write: the blob as the cache lists it and its diff ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// Builds a config from records (each a key and its layer chain, base first), sharing the
/// layer entries of common chain prefixes. `created_at` is RFC 3339.
pub(crate) fn build_config(
    records: &[(CacheKey, Vec<CacheLayer>)],
    created_at: &str,
) -> CacheConfig {
    let mut config = CacheConfig::default();
    // (blob, parent index) → index: a chain prefix shared by records is listed once.
    let mut indexes: HashMap<(Digest, i64), i64> = HashMap::new();
    for (key, chain) in records {
        let mut parent = -1;
        for layer in chain {
            let entry = (layer.descriptor.digest.clone(), parent);
            parent = match indexes.get(&entry) {
                Some(&index) => index,
                None => {
                    let index = config.layers.len() as i64;
                    config.layers.push(ConfigLayer {
                        blob: Some(layer.descriptor.digest.to_string()),
                        parent,
                        annotations: Some(LayerAnnotations {
                            media_type: Some(layer.descriptor.media_type.as_str().to_owned()),
                            diff_id: Some(layer.diff_id.to_string()),
                            size: i64::try_from(layer.descriptor.size).ok(),
                            created_at: Some(created_at.to_owned()),
                            additional: None,
                        }),
                    });
                    indexes.insert(entry, index);
                    index
                }
            };
        }
        if chain.is_empty() {
            continue;
        }
        config.records.push(ConfigRecord {
            results: vec![ConfigResult {
                layer: parent,
                created_at: Some(created_at.to_owned()),
            }],
            digest: Some(key.to_string()),
            ..ConfigRecord::default()
        });
    }
    config
}

/// A record read from a config: its key and its layer chain, base first, as layer
/// entries (blob digest and the diff ID the config gives, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadRecord {
    pub key: CacheKey,
    pub layers: Vec<(Digest, Option<Digest>)>,
}

/// The records of `config` hoist can use: a `sha256:` digest and a result (or chained
/// result) whose layers resolve. Anything else — BuildKit's intermediate records, a
/// broken parent link — is skipped, never an error.
pub(crate) fn read_records(config: &CacheConfig) -> Vec<ReadRecord> {
    let layer_of = |index: i64| -> Option<(Digest, Option<Digest>)> {
        let layer = config.layers.get(usize::try_from(index).ok()?)?;
        let blob = Digest::parse(layer.blob.as_deref()?).ok()?;
        let diff_id = layer
            .annotations
            .as_ref()
            .and_then(|a| a.diff_id.as_deref())
            .and_then(|d| Digest::parse(d).ok());
        Some((blob, diff_id))
    };
    let chain_of = |top: i64| -> Option<Vec<(Digest, Option<Digest>)>> {
        let mut chain = Vec::new();
        let mut at = top;
        while at >= 0 {
            if chain.len() >= MAX_CHAIN.min(config.layers.len()) {
                return None;
            }
            chain.push(layer_of(at)?);
            at = config.layers.get(usize::try_from(at).ok()?)?.parent;
        }
        chain.reverse();
        Some(chain)
    };
    let mut out = Vec::new();
    for record in &config.records {
        let Some(key) = record
            .digest
            .as_deref()
            .and_then(|d| CacheKey::parse(d).ok())
        else {
            continue;
        };
        let from_results = record.results.iter().find_map(|r| chain_of(r.layer));
        let from_chains = || {
            record.chains.iter().find_map(|c| {
                c.layers
                    .iter()
                    .map(|&i| layer_of(i))
                    .collect::<Option<Vec<_>>>()
            })
        };
        if let Some(layers) = from_results.or_else(from_chains) {
            if !layers.is_empty() {
                out.push(ReadRecord { key, layers });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use hoist_oci::MediaType;

    use super::*;

    fn layer(n: u8) -> CacheLayer {
        CacheLayer {
            descriptor: Descriptor::new(
                MediaType::OciLayerGzip,
                Digest::sha256_of(&[n]),
                u64::from(n),
            ),
            diff_id: Digest::sha256_of(&[n, n]),
        }
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::from_digest(hoist_solver::Digest::of(&[n]))
    }

    #[test]
    fn records_round_trip_and_share_chain_prefixes() {
        let records = vec![
            (key(1), vec![layer(1)]),
            (key(2), vec![layer(1), layer(2)]),
            (key(3), vec![layer(1), layer(3)]),
        ];
        let config = build_config(&records, "2024-01-01T00:00:00Z");
        assert_eq!(config.layers.len(), 3, "layer 1 listed once");
        let json = serde_json::to_vec(&config).unwrap();
        let parsed: CacheConfig = serde_json::from_slice(&json).unwrap();
        let read = read_records(&parsed);
        let expect: Vec<ReadRecord> = records
            .iter()
            .map(|(k, chain)| ReadRecord {
                key: *k,
                layers: chain
                    .iter()
                    .map(|l| (l.descriptor.digest.clone(), Some(l.diff_id.clone())))
                    .collect(),
            })
            .collect();
        assert_eq!(read, expect);
    }

    #[test]
    fn the_written_json_has_buildkits_field_names() {
        let config = build_config(&[(key(1), vec![layer(1), layer(2)])], "T");
        let json: serde_json::Value = serde_json::to_value(&config).unwrap();
        assert_eq!(json["layers"][0]["parent"], -1);
        assert!(
            json["layers"][1].get("parent").is_none(),
            "Go omits index 0"
        );
        assert!(json["layers"][1]["annotations"]["diffID"].is_string());
        assert_eq!(json["records"][0]["layers"][0]["layer"], 1);
        assert_eq!(json["records"][0]["digest"], key(1).to_string());
    }

    #[test]
    fn carried_mounts_sit_beside_buildkits_fields_under_hoists_key() {
        let mut config = build_config(&[(key(1), vec![layer(1)])], "T");
        let plain = serde_json::to_value(&config).unwrap();
        config.mounts.push(ConfigMount {
            id: "/root/.cache".into(),
            blob: layer(9).descriptor.digest.to_string(),
            diff_id: Some(layer(9).diff_id.to_string()),
        });
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["layers"], plain["layers"]);
        assert_eq!(json["records"], plain["records"]);
        assert_eq!(json["hoist.cacheMounts"][0]["id"], "/root/.cache");
        assert!(plain.get("hoist.cacheMounts").is_none());
        let back: CacheConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
        assert_eq!(
            read_records(&back).len(),
            1,
            "the mount's blob is no record"
        );
    }

    #[test]
    fn buildkits_own_records_are_read_without_error() {
        // As BuildKit writes them: inputs, records without results, chains, and a loop.
        let json = r#"{
          "layers": [
            {"blob": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "parent": -1},
            {"blob": "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
            {"blob": "sha256:3333333333333333333333333333333333333333333333333333333333333333", "parent": 2}
          ],
          "records": [
            {"digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
            {"layers": [{"layer": 1, "createdAt": "2024-01-01T00:00:00Z"}],
             "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "inputs": [[{"selector": "", "link": 0}]]},
            {"chains": [{"layers": [0, 1]}],
             "digest": "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"},
            {"layers": [{"layer": 2}],
             "digest": "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"},
            {"layers": [{"layer": 9}], "digest": "random:x"}
          ]
        }"#;
        let config: CacheConfig = serde_json::from_str(json).unwrap();
        let read = read_records(&config);
        let keys: Vec<String> = read.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(
            keys,
            vec![
                format!("sha256:{}", "b".repeat(64)),
                format!("sha256:{}", "c".repeat(64)),
            ],
            "no results, a parent loop and a foreign digest are skipped"
        );
        assert_eq!(
            read[0].layers.len(),
            2,
            "layer 1's missing parent is layer 0"
        );
    }
}
