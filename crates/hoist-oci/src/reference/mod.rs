//! [`Reference`]: image references such as `docker.io/library/busybox:1.36@sha256:…`,
//! parsed and normalised like distribution/reference (the package Docker and BuildKit use).
//!
//! - [`Reference::parse`] is the strict grammar (`Parse`): no Docker Hub rules, `busybox`
//!   has no domain.
//! - [`Reference::parse_normalized`] (`ParseNormalizedNamed`, also [`FromStr`] and serde) applies
//!   Docker Hub's rules: `busybox` → `docker.io/library/busybox`, `index.docker.io` →
//!   `docker.io`, and the familiar form drops them again ([`Reference::familiar_name`]).
//! - [`Reference::parse_docker`] (`ParseDockerRef`) also adds `:latest` when there is neither
//!   tag nor digest, and drops the tag when a digest is present.
//! - [`AnyReference::parse`] (`ParseAnyReference`) also accepts a bare image ID or digest.

pub mod grammar;
mod path_match;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::error::{Error, ReferenceErrorKind, Result};

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy domain, rewritten to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag assumed when none is given.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path accepted.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A named image reference: `[domain/]path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn err(reference: &str, reason: ReferenceErrorKind) -> Error {
    Error::Reference {
        reference: reference.to_owned(),
        reason,
    }
}

impl Reference {
    /// distribution's `Parse`: the strict grammar, no normalisation.
    pub fn parse(s: &str) -> Result<Self> {
        let Some(caps) = grammar::REFERENCE.captures(s) else {
            if s.is_empty() {
                return Err(err(s, ReferenceErrorKind::NameEmpty));
            }
            if grammar::REFERENCE.is_match(&s.to_lowercase()) {
                return Err(err(s, ReferenceErrorKind::NameContainsUppercase));
            }
            return Err(err(s, ReferenceErrorKind::InvalidFormat));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        let (domain, path) = split_name(name);
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(s, ReferenceErrorKind::NameTooLong));
        }
        let tag = caps.get(2).map(|m| m.as_str().to_owned());
        let digest = match caps.get(3) {
            Some(m) => Some(
                Digest::parse(m.as_str()).map_err(|e| match e.digest_kind() {
                    Some(kind) => err(s, ReferenceErrorKind::Digest(kind)),
                    None => err(s, ReferenceErrorKind::DigestInvalidFormat),
                })?,
            ),
            None => None,
        };
        Ok(Self {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    /// distribution's `ParseNormalizedNamed`: Docker Hub rules applied.
    pub fn parse_normalized(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(err(s, ReferenceErrorKind::NameEmpty));
        }
        if grammar::ANCHORED_IDENTIFIER.is_match(s) {
            return Err(err(s, ReferenceErrorKind::HexRepositoryName));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |r| r.0);
        if remote.to_lowercase() != remote {
            return Err(err(s, ReferenceErrorKind::NameContainsUppercase));
        }
        Self::parse(&format!("{domain}/{remainder}")).map_err(|e| match e {
            Error::Reference { reason, .. } => err(s, reason),
            other => other,
        })
    }

    /// distribution's `ParseNamed`: like [`Reference::parse_normalized`] but the input must
    /// already be in its normalised (canonical) form.
    pub fn parse_named(s: &str) -> Result<Self> {
        let reference = Self::parse_normalized(s)?;
        if reference.to_string() != s {
            return Err(err(s, ReferenceErrorKind::NameNotCanonical));
        }
        Ok(reference)
    }

    /// distribution's `ParseDockerRef`: normalised, `:latest` added when there is neither tag
    /// nor digest, and the tag dropped when there is a digest.
    pub fn parse_docker(s: &str) -> Result<Self> {
        let mut reference = Self::parse_normalized(s)?;
        if reference.digest.is_some() {
            reference.tag = None;
        } else if reference.tag.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(reference)
    }

    /// distribution's `WithName`: a bare repository name (no tag or digest), not normalised.
    pub fn with_name(name: &str) -> Result<Self> {
        let Some(caps) = grammar::ANCHORED_NAME.captures(name) else {
            return Err(err(name, ReferenceErrorKind::InvalidFormat));
        };
        let domain = caps.get(1).map_or("", |m| m.as_str());
        let path = caps.get(2).map_or("", |m| m.as_str());
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(name, ReferenceErrorKind::NameTooLong));
        }
        Ok(Self {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: None,
            digest: None,
        })
    }

    /// The same reference with `tag` (a digest is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        if !grammar::ANCHORED_TAG.is_match(tag) {
            return Err(err(tag, ReferenceErrorKind::TagInvalidFormat));
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same reference with `digest` (a tag is kept).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// distribution's `WithDigest` on a string: only the reference grammar's digest rule
    /// (`algorithm:hex`, 32+ hex digits) is checked, not the algorithm's exact length.
    pub fn with_digest_str(&self, digest: &str) -> Result<Self> {
        if !grammar::ANCHORED_DIGEST.is_match(digest) {
            return Err(err(digest, ReferenceErrorKind::DigestInvalidFormat));
        }
        let digest = match Digest::parse(digest) {
            Ok(d) => d,
            Err(_) => Digest::from_reference_grammar(digest),
        };
        Ok(self.with_digest(digest))
    }

    /// The same reference without its tag.
    pub fn without_tag(&self) -> Self {
        Self {
            tag: None,
            ..self.clone()
        }
    }

    /// The same reference without its digest.
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }

    /// distribution's `TagNameOnly`: `:latest` added when there is neither tag nor digest.
    pub fn tag_name_only(&self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            Self {
                tag: Some(DEFAULT_TAG.to_owned()),
                ..self.clone()
            }
        } else {
            self.clone()
        }
    }

    /// The registry domain (`docker.io`, `localhost:5000`), empty when the reference came from
    /// [`Reference::parse`] without one.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name, `domain/path` (or `path` with no domain).
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag, or else the digest string: what a registry's manifest endpoint is asked for.
    /// `None` when the reference has neither.
    pub fn tag_or_digest(&self) -> Option<&str> {
        self.digest
            .as_ref()
            .map(Digest::as_str)
            .or(self.tag.as_deref())
    }

    /// Whether this names a Docker Hub repository.
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DEFAULT_DOMAIN
    }

    /// distribution's `FamiliarName`: the name as users type it (`busybox`, `user/app`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// distribution's `FamiliarString`: the familiar name with tag and digest.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_tag_digest(&mut s);
        s
    }

    /// distribution's `FamiliarMatch`: Go `path.Match` of `pattern` against the familiar
    /// string, then against the familiar name.
    pub fn familiar_match(&self, pattern: &str) -> Result<bool> {
        let bad = |_| err(pattern, ReferenceErrorKind::BadPattern);
        if path_match::matches(pattern, &self.familiar_string()).map_err(bad)? {
            return Ok(true);
        }
        path_match::matches(pattern, &self.familiar_name()).map_err(bad)
    }

    fn push_tag_digest(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest.as_str());
        }
    }
}

/// Splits a grammar-valid name into domain and path like the anchored name regexp does.
fn split_name(name: &str) -> (&str, &str) {
    match grammar::ANCHORED_NAME.captures(name) {
        Some(caps) => (
            caps.get(1).map_or("", |m| m.as_str()),
            caps.get(2).map_or(name, |m| m.as_str()),
        ),
        None => ("", name),
    }
}

/// distribution's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_tag_digest(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = Error;
    /// [`Reference::parse_normalized`].
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_normalized(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

/// What distribution's `ParseAnyReference` returns: a named reference, or a bare digest
/// (an image ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyReference {
    /// A (normalised) named reference.
    Named(Reference),
    /// A bare digest: `sha256:<hex>` or a 64-hex image ID.
    Digest(Digest),
}

impl AnyReference {
    /// distribution's `ParseAnyReference`.
    pub fn parse(s: &str) -> Result<Self> {
        if grammar::ANCHORED_IDENTIFIER.is_match(s) {
            return Ok(Self::Digest(Digest::parse(&format!("sha256:{s}"))?));
        }
        if let Ok(digest) = Digest::parse(s) {
            return Ok(Self::Digest(digest));
        }
        Reference::parse_normalized(s).map(Self::Named)
    }

    /// distribution's `FamiliarString`.
    pub fn familiar_string(&self) -> String {
        match self {
            Self::Named(r) => r.familiar_string(),
            Self::Digest(d) => d.to_string(),
        }
    }

    /// distribution's `FamiliarMatch`.
    pub fn familiar_match(&self, pattern: &str) -> Result<bool> {
        match self {
            Self::Named(r) => r.familiar_match(pattern),
            Self::Digest(d) => path_match::matches(pattern, d.as_str())
                .map_err(|_| err(pattern, ReferenceErrorKind::BadPattern)),
        }
    }
}

impl fmt::Display for AnyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(r) => r.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_normalises_to_docker_hub_latest() {
        let r = Reference::parse_docker("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert_eq!(r.tag_or_digest(), Some("latest"));
    }

    #[test]
    fn a_tag_is_made_of_ascii_word_characters_as_in_go() {
        // Go's `\w` is `[0-9A-Za-z_]`: distribution refuses a tag with any other letter.
        assert_eq!(
            Reference::parse_docker("busybox:v1_2.3-rc").unwrap().tag(),
            Some("v1_2.3-rc")
        );
        for tag in ["tägg", "版本", "v1\u{00b2}"] {
            assert!(
                Reference::parse_docker(&format!("busybox:{tag}")).is_err(),
                "{tag} was taken"
            );
        }
        assert!(Reference::parse_docker(&format!("busybox:{}", "a".repeat(128))).is_ok());
        assert!(Reference::parse_docker(&format!("busybox:{}", "a".repeat(129))).is_err());
    }
}
