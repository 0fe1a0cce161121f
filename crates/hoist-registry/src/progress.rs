//! Transfer progress: what a client reports while blobs move, for progress displays. Set a
//! [`ProgressHook`] in [`crate::RegistryConfig::progress`]; events carry the blob digest, so
//! one hook can follow many concurrent transfers.

use std::fmt;
use std::sync::Arc;

use hoist_oci::{Descriptor, Digest};

use crate::RegistryClient;

/// Which way a blob moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Registry to content store.
    Download,
    /// Disk or memory to registry.
    Upload,
}

/// How a blob transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Downloaded and verified into the store.
    Downloaded,
    /// The store had it already; nothing was fetched.
    AlreadyPresent,
    /// Uploaded.
    Uploaded,
    /// The repository had it already; nothing was sent.
    Exists,
    /// Mounted from another repository; nothing was sent.
    Mounted,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// Bytes are about to move.
    Started {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// Which way.
        direction: Direction,
    },
    /// Bytes moved so far (at least every MiB and at the end; back to 0 when a download
    /// has to start over).
    Bytes {
        /// The blob.
        digest: Digest,
        /// Bytes transferred so far.
        done: u64,
        /// Its size.
        size: u64,
    },
    /// The blob is where it should be.
    Finished {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How it got there.
        outcome: TransferOutcome,
    },
}

/// A callback receiving [`TransferEvent`]s; called from the transfer tasks, so keep it quick.
#[derive(Clone)]
pub struct ProgressHook(Arc<dyn Fn(&TransferEvent) + Send + Sync>);

impl ProgressHook {
    /// Wraps a callback.
    pub fn new(callback: impl Fn(&TransferEvent) + Send + Sync + 'static) -> Self {
        ProgressHook(Arc::new(callback))
    }

    pub(crate) fn emit(&self, event: &TransferEvent) {
        (self.0)(event);
    }
}

impl fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressHook(..)")
    }
}

/// Emits through an optional hook.
pub(crate) fn emit(hook: &Option<ProgressHook>, event: impl FnOnce() -> TransferEvent) {
    if let Some(hook) = hook {
        hook.emit(&event());
    }
}

impl RegistryClient {
    /// Reports that `descriptor`'s blob is in place, and how.
    pub(crate) fn finished(&self, descriptor: &Descriptor, outcome: TransferOutcome) {
        emit(&self.inner.config.progress, || TransferEvent::Finished {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            outcome,
        });
    }
}
