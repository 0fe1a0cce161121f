//! Names: `index.json` entries annotated with `org.opencontainers.image.ref.name`.
//!
//! This is how `skopeo` (`oci:DIR:name`) and `umoci` (`--image DIR:name`) find images in an
//! OCI layout, so names set here are visible to them. Changes are read-modify-write under
//! the store lock with an atomic replace; readers need no lock because `index.json` is only
//! ever replaced whole. `index.json` is edited as JSON values, so fields and entries hoist
//! does not know (unnamed entries, other annotations) are kept as they are.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use hoist_oci::annotations::REF_NAME;
use hoist_oci::Descriptor;
use serde_json::{Map, Value};

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};
use crate::store::ContentStore;

impl ContentStore {
    /// Points `name` at `descriptor`, replacing what it pointed at. The blob must be present.
    ///
    /// `name` is stored as the `org.opencontainers.image.ref.name` annotation, so it must
    /// follow the OCI grammar for it (a full reference such as `example.com/app:v1` does).
    pub fn set_name(&self, name: &str, descriptor: &Descriptor) -> Result<()> {
        validate_name(name)?;
        let mut entry =
            serde_json::to_value(descriptor).map_err(|source| Error::InvalidDescriptor {
                name: name.to_owned(),
                source,
            })?;
        if let Value::Object(fields) = &mut entry {
            let annotations = fields
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(annotations) = annotations {
                annotations.insert(REF_NAME.to_owned(), Value::String(name.to_owned()));
            }
        }
        let _lock = self.lock()?;
        if !self.has(&descriptor.digest) {
            return Err(Error::NotFound {
                digest: descriptor.digest.clone(),
            });
        }
        let mut index = self.read_index()?;
        let manifests = &mut index.manifests;
        match manifests.iter().position(|m| ref_name(m) == Some(name)) {
            Some(at) => {
                manifests[at] = entry;
                let mut seen = false;
                manifests.retain(|m| {
                    let duplicate = seen && ref_name(m) == Some(name);
                    seen |= ref_name(m) == Some(name);
                    !duplicate
                });
            }
            None => manifests.push(entry),
        }
        self.write_index(index)
    }

    /// What `name` points at, without the ref-name annotation, or `None`.
    pub fn get_name(&self, name: &str) -> Result<Option<Descriptor>> {
        let index = self.read_index()?;
        index
            .manifests
            .iter()
            .find(|m| ref_name(m) == Some(name))
            .map(|m| to_descriptor(name, m))
            .transpose()
    }

    /// Removes `name`; returns whether it existed. The blobs stay until garbage collection.
    pub fn remove_name(&self, name: &str) -> Result<bool> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let manifests = &mut index.manifests;
        let before = manifests.len();
        manifests.retain(|m| ref_name(m) != Some(name));
        if manifests.len() == before {
            return Ok(false);
        }
        self.write_index(index)?;
        Ok(true)
    }

    /// Every name and what it points at (without the ref-name annotation), sorted by name.
    /// Should a name appear twice in `index.json`, its first entry wins.
    pub fn names(&self) -> Result<BTreeMap<String, Descriptor>> {
        let index = self.read_index()?;
        let mut names = BTreeMap::new();
        for entry in &index.manifests {
            if let Some(name) = ref_name(entry) {
                if !names.contains_key(name) {
                    names.insert(name.to_owned(), to_descriptor(name, entry)?);
                }
            }
        }
        Ok(names)
    }

    /// The parsed `index.json`: an object whose `manifests`, when present, is a list.
    pub(crate) fn read_index(&self) -> Result<IndexDoc> {
        let path = &self.paths().index;
        let invalid = |reason: String| Error::InvalidIndex {
            path: path.clone(),
            reason,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid("the file is missing".to_owned()))
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let Value::Object(mut fields) =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?
        else {
            return Err(invalid("not a JSON object".to_owned()));
        };
        let manifests = match fields.get_mut("manifests").map(Value::take) {
            None => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("\"manifests\" is not a list".to_owned())),
        };
        Ok(IndexDoc { fields, manifests })
    }

    fn write_index(&self, index: IndexDoc) -> Result<()> {
        let path = &self.paths().index;
        let IndexDoc {
            mut fields,
            manifests,
        } = index;
        fields.insert("manifests".to_owned(), Value::Array(manifests));
        let bytes = serde_json::to_vec(&fields).map_err(|e| Error::InvalidIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }
}

/// `index.json` taken apart: its `manifests` entries, and every other field kept verbatim
/// (in order; `manifests` is written back in its place).
#[derive(Debug)]
pub(crate) struct IndexDoc {
    fields: Map<String, Value>,
    pub(crate) manifests: Vec<Value>,
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

/// An `index.json` entry as a descriptor, minus the ref-name annotation.
fn to_descriptor(name: &str, entry: &Value) -> Result<Descriptor> {
    let mut descriptor: Descriptor =
        serde_json::from_value(entry.clone()).map_err(|source| Error::InvalidDescriptor {
            name: name.to_owned(),
            source,
        })?;
    descriptor.annotations.remove(REF_NAME);
    Ok(descriptor)
}

/// Checks `name` against the OCI image layout grammar for `org.opencontainers.image.ref.name`:
/// `component ("/" component)*`, `component = alnum+ ((sep | "--") alnum+)*`,
/// `sep = [-._:@+]`.
fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("a name must not be empty");
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return invalid("a name must not have an empty path component");
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return invalid("each path component must start and end with a letter or digit");
        }
        let mut run = 0;
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_alphanumeric() {
                run = 0;
                continue;
            }
            if !b"-._:@+".contains(b) {
                return invalid("only letters, digits, '/' and '-._:@+' are allowed");
            }
            run += 1;
            let double_dash = run == 2 && *b == b'-' && bytes[i - 1] == b'-';
            if run > 1 && !double_dash {
                return invalid("separators other than \"--\" must not repeat");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn valid_names() {
        for name in [
            "latest",
            "v1.0",
            "example.com/app:v1",
            "localhost:5000/a/b@sha256:0123abc",
            "a--b",
            "a+b",
        ] {
            validate_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn invalid_names() {
        for name in [
            "", "/a", "a/", "a//b", "-a", "a-", "a..b", "a---b", "a b", "A%",
        ] {
            assert!(validate_name(name).is_err(), "{name:?} should be invalid");
        }
    }
}
