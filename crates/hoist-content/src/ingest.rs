//! [`Ingest`]: one blob being written, hashed as it goes, visible only after [`Ingest::commit`].
//!
//! The bytes go to a uniquely named temp file in `<root>/ingest/`. `commit` checks the size
//! and digest, fsyncs the file, renames it into `blobs/` and fsyncs that directory. Dropping
//! an ingest without committing deletes its temp file; a process that dies mid-write leaves
//! a temp file nobody can mistake for a blob, which garbage collection removes later.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use hoist_oci::{Descriptor, Digest, Digester};
use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::store::{sync_parent, ContentStore};

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

/// A blob being written. Implements [`Write`]; finish with [`Ingest::commit`].
///
/// When the blob is already present at [`ContentStore::begin`], no temp file is made: the
/// bytes written are still hashed and checked at commit, but not stored again. Callers that
/// can skip producing the bytes should check [`Ingest::is_present`] first.
#[derive(Debug)]
pub struct Ingest {
    store: ContentStore,
    expected: Expected,
    digester: Digester,
    written: u64,
    too_large: bool,
    /// A write to the temp file failed, so its bytes may differ from what was hashed.
    broken: bool,
    /// The temp file; `None` when the blob was already present (or when only verifying).
    temp: Option<(BufWriter<File>, TempPath)>,
}

impl Ingest {
    pub(crate) fn begin(store: ContentStore, expected: Expected) -> Result<Self> {
        let digester = digester_for(&expected.digest)?;
        let temp = if store.has(&expected.digest) {
            None
        } else {
            let encoded = expected.digest.encoded();
            let prefix = format!("{}-", encoded.get(..16).unwrap_or(encoded));
            let (file, path) = store.temp_file(&prefix)?.into_parts();
            Some((BufWriter::with_capacity(128 * 1024, file), path))
        };
        Ok(Self {
            digester,
            store,
            expected,
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
            expected,
            written: 0,
            too_large: false,
            broken: false,
            temp: None,
        })
    }

    /// What this ingest expects.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// The number of bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the blob was already present when the ingest began (nothing will be stored).
    pub fn is_present(&self) -> bool {
        self.temp.is_none()
    }

    /// The temp file being written, if any.
    pub fn temp_path(&self) -> Option<&Path> {
        self.temp.as_ref().map(|(_, path)| path.as_ref())
    }

    /// Appends `chunk` (hashing it and writing it to the temp file): `write_all` with the
    /// store's typed errors — [`Error::TooLarge`] past the expected size, [`Error::Io`]
    /// naming the temp file, [`Error::IngestBroken`] after an earlier failed write.
    pub fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.check_not_broken()?;
        let total = self.written + chunk.len() as u64;
        if self.too_large || total > self.expected.size {
            self.too_large = true;
            return Err(Error::TooLarge {
                digest: self.expected.digest.clone(),
                expected: self.expected.size,
            });
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
                digest: self.expected.digest.clone(),
            });
        }
        Ok(())
    }

    /// Checks size and digest; `Ok` when the bytes are exactly the expected blob.
    fn check(&self) -> Result<()> {
        self.check_not_broken()?;
        let expected = &self.expected;
        if self.too_large {
            return Err(Error::TooLarge {
                digest: expected.digest.clone(),
                expected: expected.size,
            });
        }
        if self.written != expected.size {
            return Err(Error::SizeMismatch {
                digest: expected.digest.clone(),
                expected: expected.size,
                actual: self.written,
            });
        }
        let (actual, _) = self.digester.clone().finish();
        if actual != expected.digest {
            return Err(Error::DigestMismatch {
                expected: expected.digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    pub(crate) fn finish_verify(self) -> Result<()> {
        self.check()
    }

    /// Verifies digest and size, then makes the blob visible atomically and durably.
    ///
    /// On a mismatch the temp file is deleted and the error names the expected and actual
    /// digest (or size); no blob appears.
    pub fn commit(mut self) -> Result<Written> {
        self.check()?;
        let Some((writer, temp_path)) = self.temp.take() else {
            return self.store.already_present(&self.expected);
        };
        let file = writer
            .into_inner()
            .map_err(|e| Error::io("write", &temp_path, e.into_error()))?;
        let target = self.store.path(&self.expected.digest);
        if target.is_file() {
            // A concurrent writer won; its bytes are the same, ours are dropped.
            return Ok(Written::AlreadyPresent);
        }
        file.sync_all()
            .map_err(|e| Error::io("fsync", &temp_path, e))?;
        drop(file);
        if let Some(dir) = target.parent().filter(|dir| !dir.is_dir()) {
            // blobs/<alg>/ for a new algorithm; made durable like the blob itself.
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            sync_parent(dir)?;
        }
        temp_path
            .persist(&target)
            .map_err(|e| Error::io("rename temp file to", &target, e.error))?;
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

/// A hasher in the algorithm of `digest`, or an error naming the digest.
fn digester_for(digest: &Digest) -> Result<Digester> {
    digest.digester().map_err(|_| Error::UnsupportedAlgorithm {
        digest: digest.clone(),
    })
}
