//! [`Ingest`]: one blob being written, hashed as it goes, visible only after [`Ingest::commit`].
//!
//! An ingest either expects a blob from the start ([`ContentStore::begin`]: a pull, whose
//! descriptor is known) or learns what it wrote ([`ContentStore::writer`]: a layer, a
//! download, a recompressed export, whose digest is known only at the end). Either way the
//! bytes go once, to a uniquely named temp file in `<root>/ingest/`; `commit` checks size
//! and digest against every expectation given, fsyncs the file, renames it into `blobs/`
//! and fsyncs that directory. Dropping an ingest without committing deletes its temp file;
//! a process that dies mid-write leaves a temp file nobody can mistake for a blob, which
//! the next garbage collection removes.
//!
//! A live ingest holds an exclusive `flock(2)` on its temp file for as long as it writes
//! (the kernel drops it when the writer's process dies), so garbage collection tells a live
//! writer's file from a dead one's by trying the lock, never by its age.

use std::io::{self, Write};

use hoist_oci::{Descriptor, Digest, Digester, MediaType};
use tempfile::TempPath;

use crate::atomic_file::sync_parent;
use crate::error::{Error, Result};
use crate::sink::TempSink;
use crate::store::ContentStore;

/// What a blob is expected to be: the digest of its bytes and their number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The digest the bytes must hash to.
    pub digest: Digest,
    /// The exact number of bytes.
    pub size: u64,
}

impl Expected {
    /// Expects `size` bytes hashing to `digest`.
    pub fn new(digest: Digest, size: u64) -> Self {
        Self { digest, size }
    }
}

impl From<&Descriptor> for Expected {
    fn from(descriptor: &Descriptor) -> Self {
        Self::new(descriptor.digest.clone(), descriptor.size)
    }
}

impl From<Descriptor> for Expected {
    fn from(descriptor: Descriptor) -> Self {
        Self::from(&descriptor)
    }
}

impl From<(Digest, u64)> for Expected {
    fn from((digest, size): (Digest, u64)) -> Self {
        Self::new(digest, size)
    }
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The blob was verified and stored.
    Stored,
    /// The blob was already present (stored before, or by a concurrent writer).
    AlreadyPresent,
}

/// A committed blob: what its bytes hash to, how many there are, and whether this commit
/// stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The digest of the bytes (in the expected algorithm, else sha256).
    pub digest: Digest,
    /// The number of bytes.
    pub size: u64,
    /// Stored now, or present before.
    pub written: Written,
}

impl Committed {
    /// The blob described as `media_type`.
    pub fn descriptor(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size)
    }
}

/// A blob being written. Implements [`Write`]; finish with [`Ingest::commit`].
///
/// When the blob is already present at [`ContentStore::begin`], no temp file is made: the
/// bytes written are still hashed and checked at commit, but not stored again. Callers that
/// can skip producing the bytes should check [`Ingest::is_present`] first.
#[derive(Debug)]
pub struct Ingest {
    store: ContentStore,
    /// What the bytes must be, when known from the start.
    expected: Option<Expected>,
    digester: Digester,
    written: u64,
    too_large: bool,
    /// A write to the temp file failed, so its bytes may differ from what was hashed.
    broken: bool,
    /// The temp file; `None` when the blob was already present (or when only verifying).
    temp: Option<(TempSink, TempPath)>,
}

impl Ingest {
    pub(crate) fn begin(store: ContentStore, expected: Expected) -> Result<Self> {
        let digester = digester_for(&expected.digest)?;
        let temp = if store.has(&expected.digest) {
            None
        } else {
            let encoded = expected.digest.encoded();
            Some(temp_writer(&store, encoded.get(..16).unwrap_or(encoded))?)
        };
        Ok(Self {
            digester,
            store,
            expected: Some(expected),
            written: 0,
            too_large: false,
            broken: false,
            temp,
        })
    }

    /// An ingest of a blob not known yet, hashed in sha256.
    pub(crate) fn unknown(store: ContentStore) -> Result<Self> {
        let temp = Some(temp_writer(&store, "new")?);
        Ok(Self {
            digester: Digester::sha256(),
            store,
            expected: None,
            written: 0,
            too_large: false,
            broken: false,
            temp,
        })
    }

    /// An ingest that only hashes, to check a present blob.
    pub(crate) fn verify_only(store: ContentStore, expected: Expected) -> Result<Self> {
        Ok(Self {
            digester: digester_for(&expected.digest)?,
            store,
            expected: Some(expected),
            written: 0,
            too_large: false,
            broken: false,
            temp: None,
        })
    }

    /// What this ingest was begun expecting, if anything.
    pub fn expected(&self) -> Option<&Expected> {
        self.expected.as_ref()
    }

    /// The number of bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of the bytes written so far: what an ingest from
    /// [`ContentStore::writer`] will commit as (lease it before committing).
    pub fn digest(&self) -> Digest {
        self.digester.clone().finish().0
    }

    /// Whether the blob was already present when the ingest began (nothing will be stored).
    pub fn is_present(&self) -> bool {
        self.temp.is_none()
    }

    /// Appends `chunk` (hashing it and writing it to the temp file): `write_all` with the
    /// store's typed errors — [`Error::TooLarge`] past the expected size, [`Error::Io`]
    /// naming the temp file, [`Error::IngestBroken`] after an earlier failed write.
    pub fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.check_not_broken()?;
        let total = self.written + chunk.len() as u64;
        if let Some(expected) = &self.expected {
            if self.too_large || total > expected.size {
                self.too_large = true;
                return Err(Error::TooLarge {
                    digest: expected.digest.clone(),
                    expected: expected.size,
                });
            }
        }
        if let Some((file, path)) = &mut self.temp {
            if let Err(e) = file.write_all(chunk) {
                self.broken = true;
                return Err(Error::io("write", path, e));
            }
        }
        self.digester.update(chunk);
        self.written = total;
        Ok(())
    }

    fn check_not_broken(&self) -> Result<()> {
        if self.broken {
            return Err(Error::IngestBroken {
                digest: self.display_digest(),
            });
        }
        Ok(())
    }

    /// The digest to name in an error: the expected one, else what was written.
    fn display_digest(&self) -> Digest {
        match &self.expected {
            Some(expected) => expected.digest.clone(),
            None => self.digest(),
        }
    }

    /// Checks size and digest against `expected` (the ingest's own expectation, and the
    /// commit's); returns what the bytes are.
    fn check(&self, also: Option<&Expected>) -> Result<(Digest, u64)> {
        self.check_not_broken()?;
        if let (true, Some(expected)) = (self.too_large, &self.expected) {
            return Err(Error::TooLarge {
                digest: expected.digest.clone(),
                expected: expected.size,
            });
        }
        let (actual, size) = self.digester.clone().finish();
        for expected in self.expected.iter().chain(also) {
            if size != expected.size {
                return Err(Error::SizeMismatch {
                    digest: expected.digest.clone(),
                    expected: expected.size,
                    actual: size,
                });
            }
            if actual != expected.digest {
                return Err(Error::DigestMismatch {
                    expected: expected.digest.clone(),
                    actual,
                });
            }
        }
        Ok((actual, size))
    }

    pub(crate) fn finish_verify(self) -> Result<()> {
        self.check(None).map(drop)
    }

    /// Verifies the bytes against what the ingest was begun expecting and against
    /// `expected` (either may be absent), then makes the blob visible atomically and
    /// durably under the digest of its bytes.
    ///
    /// On a mismatch the temp file is deleted and the error names the expected and actual
    /// digest (or size); no blob appears. An ingest from [`ContentStore::writer`] hashes in
    /// sha256, so an `expected` digest in another algorithm never matches.
    pub fn commit(mut self, expected: Option<Expected>) -> Result<Committed> {
        let (digest, size) = self.check(expected.as_ref())?;
        let stored = Expected::new(digest, size);
        let written = match self.temp.take() {
            None => self.store.already_present(&stored)?,
            Some((writer, temp_path)) => self.persist(writer, temp_path, &stored)?,
        };
        let Expected { digest, size } = stored;
        Ok(Committed {
            digest,
            size,
            written,
        })
    }

    /// fsyncs the temp file and renames it to the blob `stored`, unless that appeared
    /// meanwhile.
    fn persist(&self, writer: TempSink, temp_path: TempPath, stored: &Expected) -> Result<Written> {
        let file = writer
            .finish()
            .map_err(|e| Error::io("write", &temp_path, e))?;
        let target = self.store.path(&stored.digest);
        if target.is_file() {
            // Stored before, or a concurrent writer won; the bytes are the same, ours are
            // dropped.
            return self.store.already_present(stored);
        }
        file.sync_all()
            .map_err(|e| Error::io("fsync", &temp_path, e))?;
        // `file` stays open, keeping the temp file locked as a live writer's, until renamed.
        if let Some(dir) = target.parent().filter(|dir| !dir.is_dir()) {
            // blobs/<alg>/ for a new algorithm; made durable like the blob itself.
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            sync_parent(dir)?;
        }
        temp_path
            .persist(&target)
            .map_err(|e| Error::io("rename temp file to", &target, e.error))?;
        drop(file);
        sync_parent(&target)?;
        Ok(Written::Stored)
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.append(buf) {
            Ok(()) => Ok(buf.len()),
            Err(Error::Io { source, .. }) => Err(source),
            Err(other) => Err(io::Error::new(io::ErrorKind::InvalidData, other)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.temp {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// A buffered temp file in the store's `ingest/`, named `<prefix>-<random>`, locked as
/// this live writer's.
fn temp_writer(store: &ContentStore, prefix: &str) -> Result<(TempSink, TempPath)> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let (file, path) = store.temp_file(&format!("{prefix}-"))?.into_parts();
        fs4::fs_std::FileExt::lock_exclusive(&file).map_err(|e| Error::io("lock", &path, e))?;
        // A GC that saw the file before it was locked took the lock first and removed it:
        // then the file has no name any more, and a new one is made.
        let linked = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .nlink();
        if linked > 0 {
            return Ok((TempSink::new(file), path));
        }
    }
}

/// A hasher in the algorithm of `digest`, or an error naming the digest.
fn digester_for(digest: &Digest) -> Result<Digester> {
    digest.digester().map_err(|_| Error::UnsupportedAlgorithm {
        digest: digest.clone(),
    })
}
