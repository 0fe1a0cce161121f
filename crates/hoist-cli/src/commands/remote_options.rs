//! `hoist build --addr`'s inputs that travel as BuildKit's attribute maps or session
//! services, turned into them the way buildx does: `--cache-from`/`--cache-to` as the
//! `SolveRequest`'s cache entries (a type and its attributes), `--annotation` as exporter
//! attributes (`annotation-<type>[<platform>].<key>`), and a context on stdin told apart
//! as an archive (uploaded) or a Dockerfile ([`StdinContext`]).

use std::collections::HashMap;
use std::io::Read;

use anyhow::{bail, Context as _};
use hoist_oci::annotations::{parse_annotation_flag, AnnotationType};
use hoist_proto::control::{CacheOptions, CacheOptionsEntry};

/// `--cache-from` and `--cache-to` as the request's cache entries; `None` when neither is
/// given. A value without `type=` is a registry (`REF` alone is `type=registry,ref=REF`);
/// `type=local` is refused: BuildKit reads and writes that directory here through the
/// session's content store, which hoist's client does not serve.
pub(super) fn cache_options(
    from: &[String],
    to: &[String],
) -> anyhow::Result<Option<CacheOptions>> {
    let entries = |flags: &[String], flag: &str| -> anyhow::Result<Vec<CacheOptionsEntry>> {
        flags
            .iter()
            .filter(|f| !f.trim().is_empty())
            .map(|spec| cache_entry(spec, flag))
            .collect()
    };
    let imports = entries(from, "--cache-from")?;
    let exports = entries(to, "--cache-to")?;
    if imports.is_empty() && exports.is_empty() {
        return Ok(None);
    }
    Ok(Some(CacheOptions {
        imports,
        exports,
        ..CacheOptions::default()
    }))
}

/// The `cache-imports` frontend attribute BuildKit's client sets next to the request's
/// imports: a JSON list of `{"Type":…,"Attrs":{…}}`; `None` for no import.
pub(super) fn cache_imports_attr(imports: &[CacheOptionsEntry]) -> Option<String> {
    if imports.is_empty() {
        return None;
    }
    let list: Vec<serde_json::Value> = imports
        .iter()
        .map(|entry| {
            let attrs: std::collections::BTreeMap<&String, &String> = entry.attrs.iter().collect();
            serde_json::json!({ "Type": entry.r#type, "Attrs": attrs })
        })
        .collect();
    Some(serde_json::Value::Array(list).to_string())
}

fn cache_entry(spec: &str, flag: &str) -> anyhow::Result<CacheOptionsEntry> {
    let fields = hoist_dockerfile::go_csv::fields(spec)
        .with_context(|| format!("invalid {flag} {spec:?}"))?;
    let mut kind = None;
    let mut attrs = HashMap::new();
    for field in fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        match field.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("type") => {
                kind = Some(value.trim().to_owned());
            }
            Some((key, value)) => {
                attrs.insert(key.trim().to_lowercase(), value.to_owned());
            }
            // buildx: a value with no `=` at all is a registry reference.
            None if fields.len() == 1 => {
                attrs.insert("ref".to_owned(), field.to_owned());
            }
            None => bail!("invalid {flag} {spec:?}: {field:?} is not key=value"),
        }
    }
    let kind = kind.unwrap_or_else(|| "registry".to_owned());
    if kind == "local" {
        bail!(
            "{flag} {spec:?}: type=local is not supported with --addr (BuildKit reaches that \
             directory through the session's content store, which hoist's client does not \
             serve); use type=registry"
        );
    }
    Ok(CacheOptionsEntry {
        r#type: kind,
        attrs,
    })
}

/// `--annotation` values as the exporter attributes buildx sends: `annotation.KEY` for an
/// untyped one, else `annotation-TYPE[PLATFORM].KEY` for each type given.
pub(super) fn annotation_attrs(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut attrs = Vec::new();
    for flag in flags {
        let parsed =
            parse_annotation_flag(flag).with_context(|| format!("invalid annotation {flag:?}"))?;
        for annotation in parsed {
            let mut key = match annotation.kind {
                None => "annotation".to_owned(),
                Some(AnnotationType::Manifest) => "annotation-manifest".to_owned(),
                Some(AnnotationType::ManifestDescriptor) => {
                    "annotation-manifest-descriptor".to_owned()
                }
                Some(AnnotationType::Index) => "annotation-index".to_owned(),
                Some(AnnotationType::IndexDescriptor) => "annotation-index-descriptor".to_owned(),
            };
            if let Some(platform) = &annotation.platform {
                key.push_str(&format!("[{}]", platform.format()));
            }
            attrs.push((format!("{key}.{}", annotation.key), annotation.value));
        }
    }
    Ok(attrs)
}

/// What `hoist build --addr … -` reads on stdin.
pub(super) enum StdinContext {
    /// A tar archive (plain or compressed), streamed to the daemon through the session's
    /// `Upload.Pull`: its first bytes, then the rest of stdin.
    Archive(Box<dyn Read + Send>),
    /// A Dockerfile, built with an empty context.
    Dockerfile(Vec<u8>),
}

/// Reads stdin's first bytes to tell an archive from a Dockerfile, as buildx does; `-f -`
/// with it is refused in buildx's words.
pub(super) fn stdin_context(file: Option<&str>) -> anyhow::Result<StdinContext> {
    read_stdin_context(Box::new(std::io::stdin()), file)
}

fn read_stdin_context(
    mut input: Box<dyn Read + Send>,
    file: Option<&str>,
) -> anyhow::Result<StdinContext> {
    if file == Some("-") {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    let mut head = Vec::with_capacity(hoist_engine::HEAD_LEN);
    (&mut input)
        .take(hoist_engine::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .context("cannot read the build context from stdin")?;
    if hoist_engine::is_archive(&head) {
        return Ok(StdinContext::Archive(Box::new(
            std::io::Cursor::new(head).chain(input),
        )));
    }
    if file.is_some() {
        bail!("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles");
    }
    input
        .read_to_end(&mut head)
        .context("cannot read the Dockerfile from stdin")?;
    Ok(StdinContext::Dockerfile(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_flags_become_typed_entries() {
        let options = cache_options(
            &["reg:5000/app/cache".to_owned()],
            &["type=registry,ref=reg:5000/app/cache,mode=max".to_owned()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.imports[0].r#type, "registry");
        assert_eq!(options.imports[0].attrs["ref"], "reg:5000/app/cache");
        assert_eq!(options.exports[0].attrs["mode"], "max");
        assert_eq!(options.exports[0].attrs["ref"], "reg:5000/app/cache");
        assert!(cache_options(&[], &[]).unwrap().is_none());
        assert_eq!(
            cache_imports_attr(&options.imports).unwrap(),
            r#"[{"Type":"registry","Attrs":{"ref":"reg:5000/app/cache"}}]"#
        );
        let err = cache_options(&[], &["type=local,dest=/tmp/c".to_owned()]).unwrap_err();
        assert!(
            err.to_string().contains("type=local is not supported"),
            "{err}"
        );
    }

    #[test]
    fn annotations_become_buildx_exporter_attributes() {
        let attrs = annotation_attrs(&[
            "a=1".to_owned(),
            "index,manifest-descriptor:b=2".to_owned(),
            "manifest[linux/arm64]:c=3".to_owned(),
        ])
        .unwrap();
        assert_eq!(
            attrs,
            [
                ("annotation.a".to_owned(), "1".to_owned()),
                ("annotation-index.b".to_owned(), "2".to_owned()),
                (
                    "annotation-manifest-descriptor.b".to_owned(),
                    "2".to_owned()
                ),
                (
                    "annotation-manifest[linux/arm64].c".to_owned(),
                    "3".to_owned()
                ),
            ]
        );
        assert!(annotation_attrs(&["novalue".to_owned()]).is_err());
    }

    #[test]
    fn stdin_is_an_archive_or_a_dockerfile() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_cksum();
        tar.append_data(&mut header, "Dockerfile", &b"x\n"[..])
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let read =
            |bytes: Vec<u8>, file| read_stdin_context(Box::new(std::io::Cursor::new(bytes)), file);
        let Ok(StdinContext::Archive(mut all)) = read(bytes.clone(), None) else {
            panic!("a tar is not an archive");
        };
        let mut again = Vec::new();
        all.read_to_end(&mut again).unwrap();
        assert_eq!(again, bytes, "the archive's first bytes are not sent again");
        let Ok(StdinContext::Dockerfile(text)) = read(b"FROM scratch\n".to_vec(), None) else {
            panic!("a Dockerfile is not a Dockerfile");
        };
        assert_eq!(text, b"FROM scratch\n");
        let err = read(b"FROM scratch\n".to_vec(), Some("Dockerfile"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("ambiguous Dockerfile source"),
            "{err}"
        );
        let err = read(bytes, Some("-")).err().unwrap();
        assert!(
            err.to_string().contains("can't use stdin for both"),
            "{err}"
        );
    }
}
