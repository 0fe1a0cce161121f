//! `rewrite-timestamp=true`: layers after the base's come out with every time later than
//! `SOURCE_DATE_EPOCH` set to it (ustar fields and PAX records), the same bytes from two
//! fresh stores, their new diff IDs in the config, and remembered as a store variant.

use std::io::Read;

use hoist_content::ContentStore;
use hoist_export::{ExportLayer, ExportRequest, Exporter, Output, PlatformImage};
use hoist_oci::{Descriptor, Digest, ImageConfig, Manifest, MediaType, Platform};
use hoist_snapshot::{LayerOptions, LayerWriter};
use tempfile::TempDir;

const EPOCH: i64 = 1_500_000_000;
const NEW: u64 = 2_000_000_000;
const OLD: u64 = 1_000_000_000;

/// A layer tar: `name` entries with `mtime`, one with a PAX `mtime` record later than the
/// epoch (with a fraction), one with a GNU long name.
fn layer_tar(names: &[(&str, u64)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, mtime) in names {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(*mtime);
        header.set_size(name.len() as u64);
        builder
            .append_data(&mut header, name, name.as_bytes())
            .unwrap();
    }
    builder
        .append_pax_extensions([("mtime", b"2000000000.25".as_slice())])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_mtime(NEW);
    header.set_size(0);
    builder
        .append_data(&mut header, "paxdir/", std::io::empty())
        .unwrap();
    let long = format!("long/{}", "n".repeat(150));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(NEW);
    header.set_size(4);
    builder
        .append_data(&mut header, &long, b"long".as_slice())
        .unwrap();
    builder.into_inner().unwrap()
}

/// Stores `tar` gzipped; the layer as the engine hands it over.
fn store_layer(store: &ContentStore, tar: &[u8]) -> ExportLayer {
    let mut writer = LayerWriter::new(Vec::new(), LayerOptions::default()).unwrap();
    std::io::Write::write_all(&mut writer, tar).unwrap();
    let (bytes, layer) = writer.finish().unwrap();
    store
        .write_blob(&layer.descriptor, bytes.as_slice())
        .unwrap();
    ExportLayer::from(layer)
}

struct Built {
    _tmp: TempDir,
    store: ContentStore,
    image: PlatformImage,
}

/// A fresh store with a base layer and a top layer, both with times after the epoch; the
/// base layer is the base image's.
fn build(epoch: Option<i64>) -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path().join("state")).unwrap();
    let base = store_layer(&store, &layer_tar(&[("etc/base", NEW)]));
    let top = store_layer(&store, &layer_tar(&[("app/new", NEW), ("app/old", OLD)]));
    let platform = Platform::parse("linux/amd64").unwrap();
    let mut config = ImageConfig::new(&platform);
    config.created = Some("2017-07-14T02:40:00Z".into());
    let base_diff_ids = vec![base.diff_id.clone()];
    let image = PlatformImage::new(platform, config, vec![base, top], None)
        .with_source_date_epoch(epoch, base_diff_ids);
    Built {
        _tmp: tmp,
        store,
        image,
    }
}

impl Built {
    async fn export(&self, spec: &str) -> (Descriptor, Manifest, ImageConfig) {
        let request = ExportRequest {
            images: vec![self.image.clone()],
            outputs: vec![Output::parse(spec).unwrap()],
        };
        let result = Exporter::new(self.store.clone())
            .export(&request)
            .await
            .unwrap();
        let root = result.outputs[0].image.clone().unwrap().descriptor;
        let manifest: Manifest = serde_json::from_slice(&self.read(&root.digest)).unwrap();
        let config: ImageConfig =
            serde_json::from_slice(&self.read(&manifest.config.digest)).unwrap();
        (root, manifest, config)
    }

    fn read(&self, digest: &Digest) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.store
            .open_blob(digest)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    /// The uncompressed tar of a stored layer.
    fn tar(&self, layer: &Descriptor) -> Vec<u8> {
        let mut tar = Vec::new();
        hoist_snapshot::decompress(self.store.open_blob(&layer.digest).unwrap())
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        tar
    }
}

/// Every entry's path and mtime (PAX mtime records applied, fractions dropped).
fn times(tar: &[u8]) -> Vec<(String, u64)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let pax_mtime = entry.pax_extensions().unwrap().and_then(|records| {
                records
                    .map(Result::unwrap)
                    .find(|r| r.key() == Ok("mtime"))
                    .map(|r| r.value().unwrap().to_owned())
            });
            let mtime = match pax_mtime {
                Some(value) => value.split('.').next().unwrap().parse().unwrap(),
                None => entry.header().mtime().unwrap(),
            };
            (entry.path().unwrap().display().to_string(), mtime)
        })
        .collect()
}

#[tokio::test]
async fn layers_after_the_base_are_clamped_to_the_epoch_the_same_way_twice() {
    let spec = "type=image,name=app,rewrite-timestamp=true";
    let first = build(Some(EPOCH));
    let (root, manifest, config) = first.export(spec).await;

    // The base image's layer is kept as it is; the top one is rewritten.
    let [base, top] = manifest.layers.as_slice() else {
        panic!("two layers expected: {manifest:?}")
    };
    assert_eq!(base.digest, first.image.layers[0].descriptor.digest);
    assert_ne!(top.digest, first.image.layers[1].descriptor.digest);
    assert_eq!(top.media_type, MediaType::OciLayerGzip);
    let tar = first.tar(top);
    let long = format!("long/{}", "n".repeat(150));
    assert_eq!(
        times(&tar),
        vec![
            ("app/new".to_owned(), EPOCH as u64),
            ("app/old".to_owned(), OLD),
            ("paxdir/".to_owned(), EPOCH as u64),
            (long, EPOCH as u64),
        ]
    );
    // Contents are untouched.
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut new = String::new();
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    entry.read_to_string(&mut new).unwrap();
    assert_eq!(new, "app/new");
    assert_eq!(
        config.rootfs.diff_ids,
        vec![
            first.image.layers[0].diff_id.clone(),
            Digest::sha256_of(&tar)
        ]
    );

    // A fresh store gives the same image.
    let second = build(Some(EPOCH));
    let (again, _, _) = second.export(spec).await;
    assert_eq!(again.digest, root.digest);

    // The rewrite is remembered for the next export.
    let source = &first.image.layers[1].descriptor.digest;
    let variant = first
        .store
        .variant(source, &format!("gzip.epoch-{EPOCH}"))
        .expect("the rewrite is recorded as a variant");
    assert_eq!(variant.digest, top.digest);
    let (reused, _, _) = first
        .export("type=image,name=other,rewrite-timestamp=true")
        .await;
    assert_eq!(reused.digest, root.digest);
}

#[tokio::test]
async fn without_the_option_or_an_epoch_layers_are_kept() {
    for (epoch, spec) in [
        (Some(EPOCH), "type=image,name=app"),
        (Some(EPOCH), "type=image,name=app,rewrite-timestamp=false"),
        (None, "type=image,name=app,rewrite-timestamp=true"),
    ] {
        let built = build(epoch);
        let (_, manifest, config) = built.export(spec).await;
        let kept: Vec<&Digest> = built
            .image
            .layers
            .iter()
            .map(|l| &l.descriptor.digest)
            .collect();
        let exported: Vec<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
        assert_eq!(exported, kept, "{spec} with epoch {epoch:?}");
        assert_eq!(config.rootfs.diff_ids, built.image.config.rootfs.diff_ids);
    }
}

#[tokio::test]
async fn a_rewrite_follows_the_output_compression() {
    let built = build(Some(EPOCH));
    let (_, manifest, _) = built
        .export("type=image,name=app,rewrite-timestamp=true,compression=zstd")
        .await;
    let top = &manifest.layers[1];
    assert_eq!(top.media_type, MediaType::OciLayerZstd);
    let tar = built.tar(top);
    assert!(times(&tar).iter().all(|(_, t)| *t <= EPOCH as u64));
}

#[tokio::test]
async fn a_recorded_rewrite_is_reused_not_redone() {
    let built = build(Some(EPOCH));
    // A record planted for the top layer (naming the base's blob) shows which one is used.
    let planted = &built.image.layers[0];
    let mut record = planted.descriptor.clone();
    record.annotations.insert(
        "containerd.io/uncompressed".to_owned(),
        planted.diff_id.to_string(),
    );
    let source = &built.image.layers[1].descriptor.digest;
    built
        .store
        .set_variant(source, &format!("gzip.epoch-{EPOCH}"), &record)
        .unwrap();
    let (_, manifest, config) = built
        .export("type=image,name=app,rewrite-timestamp=true")
        .await;
    assert_eq!(manifest.layers[1].digest, planted.descriptor.digest);
    assert!(manifest.layers[1].annotations.is_empty());
    assert_eq!(config.rootfs.diff_ids[1], planted.diff_id);
    // Another epoch is another variant: rewritten now.
    let mut other = built.image.clone();
    other.source_date_epoch = Some(EPOCH + 1);
    let request = ExportRequest {
        images: vec![other],
        outputs: vec![Output::parse("type=image,name=app,rewrite-timestamp=true").unwrap()],
    };
    let result = Exporter::new(built.store.clone())
        .export(&request)
        .await
        .unwrap();
    let root = result.outputs[0].image.clone().unwrap().descriptor;
    let manifest: Manifest = serde_json::from_slice(&built.read(&root.digest)).unwrap();
    assert_ne!(manifest.layers[1].digest, planted.descriptor.digest);
}
