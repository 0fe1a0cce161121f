//! [`Digest`] (a vertex's identity) and [`CacheKey`] (what its result is stored under).
//!
//! Both are sha256 sums kept as 32 raw bytes: they are hashed and compared in the scheduler's
//! maps on every lookup, so they are `Copy` and cheap. They print as `sha256:<hex>`, the form
//! the rest of hoist (and OCI) uses, and parse back from it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A sha256 digest: the identity of a vertex, or the digest an op reports for its cache map
/// or for the content it selects from an input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps 32 raw sha256 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The lowercase hex encoding, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256:<64 lowercase hex digits>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidDigest {
            digest: s.to_owned(),
        };
        let encoded = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        if encoded.len() != 64 || encoded.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(encoded, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// The key a vertex's result is cached and deduplicated under.
///
/// It is `sha256` over the op's cache digest and, for each input in order, either that input's
/// cache key or a checksum of the part of the input's result the op selects (see
/// [`CacheMap`](crate::CacheMap)). Two vertices with equal keys produce the same result, so the
/// solver runs a key at most once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Digest);

impl CacheKey {
    /// Wraps a digest read back from storage.
    pub const fn from_digest(digest: Digest) -> Self {
        Self(digest)
    }

    /// The digest this key is.
    pub const fn digest(&self) -> Digest {
        self.0
    }

    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        Digest::parse(s).map(Self)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

impl FromStr for CacheKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// Incremental sha256 over a length-prefixed, tagged encoding: every variable-length field is
/// preceded by its length, so no two different field sequences hash the same bytes.
pub(crate) struct Encoder(Sha256);

impl Encoder {
    /// Starts a hash in the domain `domain` (a fixed string naming what is hashed and the
    /// encoding version), so vertex digests and cache keys never collide with each other.
    pub(crate) fn new(domain: &str) -> Self {
        let mut encoder = Self(Sha256::new());
        encoder.bytes(domain.as_bytes());
        encoder
    }

    pub(crate) fn u64(&mut self, n: u64) {
        self.0.update(n.to_be_bytes());
    }

    pub(crate) fn u8(&mut self, n: u8) {
        self.0.update([n]);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        // usize always fits in u64 on the platforms hoist supports.
        self.u64(bytes.len() as u64);
        self.0.update(bytes);
    }

    pub(crate) fn digest(&mut self, digest: &Digest) {
        self.0.update(digest.as_bytes());
    }

    pub(crate) fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_text() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(CacheKey::parse(&d.to_string()).unwrap().digest(), d);
    }

    #[test]
    fn digest_parse_rejects_malformed() {
        for bad in [
            "",
            "sha256:",
            "sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "sha256:2cf24dba",
            "sha256:zzf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn encoder_length_prefix_separates_fields() {
        let mut a = Encoder::new("t");
        a.bytes(b"ab");
        a.bytes(b"c");
        let mut b = Encoder::new("t");
        b.bytes(b"a");
        b.bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
