//! [`ContentStore`]: blobs in an OCI image layout, written only through verified ingests.
//!
//! On disk, under the directory `root` given to [`ContentStore::open`] (hoist's state dir):
//!
//! ```text
//! <root>/content/oci-layout         {"imageLayoutVersion":"1.0.0"}
//! <root>/content/index.json         an image index; names are ref.name annotations
//! <root>/content/blobs/<alg>/<hex>  the blobs, named by the digest of their bytes
//! <root>/ingest/                    temp files of blobs being written
//! <root>/leases/                    GC roots of live writers (see `Lease`)
//! <root>/named-leases/              GC roots that outlive processes (cache records)
//! <root>/variants/                  which blob another converts to (see `set_variant`)
//! <root>/content.lock               flock()ed to update index.json or collect garbage
//! ```
//!
//! A blob becomes visible only by `rename(2)` from `ingest/` after its digest and size were
//! checked and its bytes fsynced, so a reader never sees a partial or wrong blob, and a crash
//! leaves at most a temp file that [`ContentStore::gc`] later removes. Those paths are the
//! store's own: callers write through an [`Ingest`] and read through [`ContentStore::open_blob`].

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_oci::{Descriptor, Digest, MediaType};
use tempfile::NamedTempFile;

use crate::atomic_file::{create_atomic, write_atomic};
use crate::error::{Error, Result};
use crate::ingest::{Expected, Ingest, Written};

/// The content of `oci-layout`.
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The content of a new, empty `index.json`.
const EMPTY_INDEX: &str = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}";

/// The local content store: an OCI image layout of verified blobs plus names.
///
/// Cheap to clone (the paths are shared); safe to use from many threads and many processes at
/// once on the same root.
#[derive(Debug, Clone)]
pub struct ContentStore {
    paths: Arc<Paths>,
}

#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) layout: PathBuf,
    pub(crate) blobs: PathBuf,
    pub(crate) ingest: PathBuf,
    pub(crate) leases: PathBuf,
    pub(crate) named_leases: PathBuf,
    pub(crate) variants: PathBuf,
    pub(crate) index: PathBuf,
    pub(crate) lock: PathBuf,
}

impl ContentStore {
    /// Opens the store kept in the directory `root` (the module docs list what it puts
    /// there), creating the layout if missing.
    ///
    /// Creation is race-free: the two layout files are created with no-clobber renames, so a
    /// concurrent `open` never overwrites an `index.json` another process already filled.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let layout = root.join("content");
        let paths = Paths {
            blobs: layout.join("blobs"),
            index: layout.join("index.json"),
            layout,
            ingest: root.join("ingest"),
            leases: root.join("leases"),
            named_leases: root.join("named-leases"),
            variants: root.join("variants"),
            lock: root.join("content.lock"),
        };
        for dir in [&paths.ingest, &paths.blobs.join("sha256")] {
            fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        let store = Self {
            paths: Arc::new(paths),
        };
        create_atomic(
            &store.paths.layout.join("oci-layout"),
            OCI_LAYOUT.as_bytes(),
        )?;
        create_atomic(&store.paths.index, EMPTY_INDEX.as_bytes())?;
        Ok(store)
    }

    /// The OCI image layout directory (`<root>/content`), readable by skopeo and umoci.
    pub fn layout_dir(&self) -> &Path {
        &self.paths.layout
    }

    /// The directory of in-progress ingests (`<root>/ingest`).
    pub(crate) fn ingest_dir(&self) -> &Path {
        &self.paths.ingest
    }

    pub(crate) fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.paths
            .blobs
            .join(digest.algorithm())
            .join(digest.encoded())
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob that `source` was converted to as `variant` (a name such as `gzip-6`), when
    /// [`ContentStore::set_variant`] recorded one and that blob is still present (like
    /// containerd's content labels, and BuildKit's compression variants). Take a lease on
    /// the result before relying on it.
    pub fn variant(&self, source: &Digest, variant: &str) -> Option<Descriptor> {
        let path = self.variant_path(source, variant)?;
        let bytes = fs::read(path).ok()?;
        let descriptor: Descriptor = serde_json::from_slice(&bytes).ok()?;
        self.has(&descriptor.digest).then_some(descriptor)
    }

    /// Records that `source` converted as `variant` is `result` (a blob of this store).
    /// Replaced atomically (temp file, fsync, rename); a record whose result is later
    /// collected is ignored.
    pub fn set_variant(&self, source: &Digest, variant: &str, result: &Descriptor) -> Result<()> {
        let Some(path) = self.variant_path(source, variant) else {
            return Err(Error::InvalidName {
                name: variant.to_owned(),
                reason: "a variant is a name of [A-Za-z0-9.-]",
            });
        };
        let bytes = serde_json::to_vec(result).map_err(|e| Error::io("encode", &path, e.into()))?;
        write_atomic(&path, &bytes)
    }

    /// Every recorded conversion whose result is present: `(source, result)` pairs.
    pub fn variants(&self) -> Vec<(Digest, Descriptor)> {
        let dir = self.paths.variants.join("sha256");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let (hex, _) = name.split_once('.')?;
                let source = Digest::parse(&format!("sha256:{hex}")).ok()?;
                let bytes = fs::read(entry.path()).ok()?;
                let result: Descriptor = serde_json::from_slice(&bytes).ok()?;
                self.has(&result.digest).then_some((source, result))
            })
            .collect()
    }

    fn variant_path(&self, source: &Digest, variant: &str) -> Option<PathBuf> {
        let plain = !variant.is_empty()
            && variant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        plain.then(|| {
            self.paths
                .variants
                .join(source.algorithm())
                .join(format!("{}.{variant}", source.encoded()))
        })
    }

    /// The size in bytes of a present blob.
    pub fn info(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound {
                digest: digest.clone(),
            }),
            Err(e) => Err(Error::io("stat blob", &path, e)),
        }
    }

    /// Opens a present blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                digest: digest.clone(),
            },
            _ => Error::io("open blob", &path, e),
        })
    }

    /// Reads a whole blob into memory; meant for small blobs such as manifests and configs.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read blob", &self.path(digest), e))?;
        Ok(bytes)
    }

    /// Re-hashes a present blob and checks it against its name (an integrity check).
    pub fn verify_blob(&self, digest: &Digest) -> Result<()> {
        let size = self.info(digest)?;
        let file = self.open_blob(digest)?;
        let mut check = Ingest::verify_only(self.clone(), Expected::new(digest.clone(), size))?;
        copy_into(file, &mut check, digest)?;
        check.finish_verify()
    }

    /// Removes the blob `digest` if it fails [`ContentStore::verify_blob`] (a file that does
    /// not hash to its name is garbage no reader may get); returns whether it did. A missing
    /// blob is not an error.
    pub fn remove_if_corrupt(&self, digest: &Digest) -> Result<bool> {
        // Under the lock, so two callers that both find it corrupt cannot remove a good
        // copy the first one's caller stored again in between.
        let _lock = self.lock()?;
        match self.verify_blob(digest) {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(false),
            Err(
                Error::DigestMismatch { .. } | Error::SizeMismatch { .. } | Error::TooLarge { .. },
            ) => {
                let path = self.path(digest);
                match fs::remove_file(&path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(Error::io("remove corrupt blob", &path, e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Starts writing a blob expected to have `expected`'s digest and size. Write its bytes,
    /// then call [`Ingest::commit`]; dropping the ingest instead leaves nothing behind.
    pub fn begin(&self, expected: impl Into<Expected>) -> Result<Ingest> {
        Ingest::begin(self.clone(), expected.into())
    }

    /// Starts writing a blob whose digest is not known yet (a layer being made, a download):
    /// the bytes are hashed (sha256) as they are written, once, to the store's own temp
    /// file; [`Ingest::commit`] stores them under their digest, after checking whatever it
    /// is given to expect. Dropping the ingest instead leaves nothing behind.
    pub fn writer(&self) -> Result<Ingest> {
        Ingest::unknown(self.clone())
    }

    /// Writes a blob from `content`, verifying digest and size before it becomes visible.
    ///
    /// When the blob is already present this is a no-op that does not read `content`.
    pub fn write_blob(&self, expected: impl Into<Expected>, content: impl Read) -> Result<Written> {
        let expected = expected.into();
        if self.has(&expected.digest) {
            return self.already_present(&expected);
        }
        let digest = expected.digest.clone();
        let mut ingest = self.begin(expected)?;
        copy_into(content, &mut ingest, &digest)?;
        Ok(ingest.commit(None)?.written)
    }

    /// Stores a small document (a manifest, index or config) and describes it.
    pub fn put_bytes(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
        let digest = Digest::sha256_of(bytes);
        let size = bytes.len() as u64;
        self.write_blob(Expected::new(digest.clone(), size), bytes)?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// The outcome of writing a blob that is already present: checks the size, and
    /// refreshes the modification time so [`crate::GcOptions::min_blob_age`] spares it.
    pub(crate) fn already_present(&self, expected: &Expected) -> Result<Written> {
        let actual = self.info(&expected.digest)?;
        // Best effort: a blob owned by another user cannot be touched, and needs not be.
        let _ = File::open(self.path(&expected.digest))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if actual != expected.size {
            return Err(Error::SizeMismatch {
                digest: expected.digest.clone(),
                expected: expected.size,
                actual,
            });
        }
        Ok(Written::AlreadyPresent)
    }

    /// A new temp file in `ingest/`, world-readable so the layout stays readable by tools.
    pub(crate) fn temp_file(&self, prefix: &str) -> Result<NamedTempFile> {
        use std::os::unix::fs::PermissionsExt;
        tempfile::Builder::new()
            .prefix(prefix)
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(&self.paths.ingest)
            .map_err(|e| Error::io("create temp file in", &self.paths.ingest, e))
    }
}

/// Copies `content` into `sink`, telling a failed read (the source) from a failed write.
fn copy_into(mut content: impl Read, sink: &mut Ingest, digest: &Digest) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match content.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::ReadContent {
                    digest: digest.clone(),
                    source,
                })
            }
        };
        sink.append(&buf[..n])?;
    }
}
