//! Content digests: [`Digest`] (`algorithm:encoded`), [`Algorithm`], and the streaming
//! hashers [`Digester`] and [`DigestWriter`].
//!
//! Parsing follows opencontainers/go-digest `Parse`: the text must contain `:` with something
//! after it; an algorithm we do not implement gives [`Error::DigestUnsupported`] when the whole
//! string matches the digest grammar (else [`Error::DigestFormat`]); a known algorithm checks the
//! length of the encoded part first ([`Error::DigestLength`]), then that it is lower-case hex.
//!
//! Deserialising a digest (inside a descriptor) is more lenient, like the OCI schema validator:
//! a digest whose algorithm we do not know is kept as long as it matches the grammar, so
//! documents that mention such digests still parse. Hashing with it fails.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::{Error, Result};

/// A digest algorithm hoist can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`, the canonical algorithm.
    Sha256,
    /// `sha384` (go-digest knows it; rarely seen).
    Sha384,
    /// `sha512`.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// The algorithm named `name`, if hoist implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Length of the hex-encoded hash.
    pub fn encoded_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha384 => 96,
            Self::Sha512 => 128,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn digester(self) -> Digester {
        Digester::new(self)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// Ordering and equality are those of the string form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    value: String,
    colon: usize,
}

impl Digest {
    /// Parses like go-digest `Parse`: only algorithms hoist implements are accepted.
    pub fn parse(s: &str) -> Result<Self> {
        let digest = Self::parse_lenient(s)?;
        if digest.known_algorithm().is_none() {
            return Err(Error::DigestUnsupported {
                digest: s.to_owned(),
            });
        }
        Ok(digest)
    }

    /// Parses like the OCI descriptor validation: a digest with an algorithm hoist does not
    /// implement is accepted when it matches the grammar
    /// `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`; known algorithms are fully checked.
    pub fn parse_lenient(s: &str) -> Result<Self> {
        let colon = match s.find(':') {
            Some(i) if i > 0 && i + 1 < s.len() => i,
            _ => {
                return Err(Error::DigestFormat {
                    digest: s.to_owned(),
                })
            }
        };
        let (algorithm, encoded) = (&s[..colon], &s[colon + 1..]);
        match Algorithm::from_name(algorithm) {
            None => {
                if !grammar_algorithm(algorithm) || !grammar_encoded(encoded) {
                    return Err(Error::DigestFormat {
                        digest: s.to_owned(),
                    });
                }
            }
            Some(alg) => {
                if encoded.len() != alg.encoded_len() {
                    return Err(Error::DigestLength {
                        digest: s.to_owned(),
                    });
                }
                if !encoded
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(Error::DigestFormat {
                        digest: s.to_owned(),
                    });
                }
            }
        }
        Ok(Self {
            value: s.to_owned(),
            colon,
        })
    }

    /// A digest that only matched the reference grammar's looser rule (`algorithm:hex` with
    /// 32+ hex digits), as distribution's `WithDigest` accepts it.
    pub(crate) fn from_reference_grammar(s: &str) -> Self {
        Self {
            value: s.to_owned(),
            colon: s.find(':').unwrap_or(0),
        }
    }

    /// go-digest `NewDigestFromEncoded`, validated.
    pub fn from_parts(algorithm: &str, encoded: &str) -> Result<Self> {
        Self::parse(&format!("{algorithm}:{encoded}"))
    }

    /// The digest of a hash value computed with `algorithm`.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Self {
        let name = algorithm.as_str();
        Self {
            value: format!("{name}:{}", hex::encode(hash)),
            colon: name.len(),
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, bytes)
    }

    /// The sha512 digest of `bytes`.
    pub fn sha512_of(bytes: &[u8]) -> Self {
        Self::of(Algorithm::Sha512, bytes)
    }

    /// The `algorithm` digest of `bytes`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut digester = Digester::new(algorithm);
        digester.update(bytes);
        digester.finish().0
    }

    /// The `algorithm` digest of everything `reader` yields, and its length.
    pub fn of_reader(algorithm: Algorithm, reader: &mut dyn io::Read) -> io::Result<(Self, u64)> {
        let mut digester = Digester::new(algorithm);
        io::copy(reader, &mut digester)?;
        Ok(digester.finish())
    }

    /// The whole `algorithm:encoded` text.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> &str {
        &self.value[..self.colon]
    }

    /// The algorithm, when hoist implements it.
    pub fn known_algorithm(&self) -> Option<Algorithm> {
        Algorithm::from_name(self.algorithm())
    }

    /// The encoded part (the hex of the hash for the known algorithms).
    pub fn encoded(&self) -> &str {
        &self.value[self.colon + 1..]
    }

    /// A hasher for this digest's algorithm, failing for algorithms hoist does not implement.
    pub fn digester(&self) -> Result<Digester> {
        self.known_algorithm()
            .map(Digester::new)
            .ok_or_else(|| Error::DigestUnsupported {
                digest: self.value.clone(),
            })
    }

    /// Checks that `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<()> {
        let mut digester = self.digester()?;
        digester.update(bytes);
        let (actual, _) = digester.finish();
        if actual == *self {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                expected: self.value.clone(),
                actual: actual.value,
            })
        }
    }
}

fn grammar_algorithm(s: &str) -> bool {
    // [a-z0-9]+(?:[.+_-][a-z0-9]+)*
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.split(['.', '+', '_', '-']).all(component)
}

fn grammar_encoded(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.value)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse_lenient(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

/// A streaming hasher: feed bytes (or `write` to it), then [`Digester::finish`] gives the
/// [`Digest`] and the number of bytes seen.
#[derive(Clone)]
pub struct Digester {
    hasher: Hasher,
    algorithm: Algorithm,
    len: u64,
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm)
            .field("len", &self.len)
            .finish()
    }
}

impl Digester {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        };
        Self {
            hasher,
            algorithm,
            len: 0,
        }
    }

    /// A sha256 hasher.
    pub fn sha256() -> Self {
        Self::new(Algorithm::Sha256)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed, and its length in bytes.
    pub fn finish(self) -> (Digest, u64) {
        let hash = match self.hasher {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        (Digest::from_hash(self.algorithm, &hash), self.len)
    }
}

impl Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes everything passed through it to an inner writer, in one pass.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> DigestWriter<W> {
    /// Hashes with sha256 what is written to `inner`.
    pub fn new(inner: W) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }

    /// Hashes with `algorithm` what is written to `inner`.
    pub fn with_algorithm(inner: W, algorithm: Algorithm) -> Self {
        Self {
            inner,
            digester: Digester::new(algorithm),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, the digest of what went through and its length.
    pub fn finish(self) -> (W, Digest, u64) {
        let (digest, len) = self.digester.finish();
        (self.inner, digest, len)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_is_the_well_known_digest() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_writer_counts_and_hashes() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, digest, len) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(len, 11);
        assert_eq!(digest, Digest::sha256_of(b"hello world"));
        digest.verify(b"hello world").unwrap();
        assert!(digest.verify(b"hello").is_err());
    }

    #[test]
    fn of_reader_matches_of_bytes() {
        let (d, n) = Digest::of_reader(Algorithm::Sha512, &mut &b"abc"[..]).unwrap();
        assert_eq!((d, n), (Digest::sha512_of(b"abc"), 3));
    }

    #[test]
    fn lenient_keeps_unknown_algorithms() {
        let d = Digest::parse_lenient("sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564")
            .unwrap();
        assert_eq!(d.algorithm(), "sha256+b64");
        assert!(d.known_algorithm().is_none());
        assert!(Digest::parse(d.as_str()).is_err());
    }
}
