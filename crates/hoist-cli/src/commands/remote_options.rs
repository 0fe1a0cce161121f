//! `hoist build --addr`'s inputs that travel as BuildKit's attribute maps or session
//! services, turned into them the way buildx does: `--cache-from`/`--cache-to` as the
//! `SolveRequest`'s cache entries (a type and its attributes; `type=local` directories
//! served as the session's content stores, [`local_caches`]), `--annotation` as exporter
//! attributes (`annotation-<type>[<platform>].<key>`), and a context on stdin told apart
//! as an archive (uploaded) or a Dockerfile ([`StdinContext`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use hoist_oci::annotations::{parse_annotation_flag, AnnotationType};
use hoist_proto::control::{CacheOptions, CacheOptionsEntry};

/// `--cache-from` and `--cache-to` as the request's cache entries; `None` when neither is
/// given. A value without `type=` is a registry (`REF` alone is `type=registry,ref=REF`);
/// `type=local` entries keep their `src`/`dest` as given: the daemon reaches those
/// directories through the session's content stores ([`local_caches`]).
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

/// The `type=local` caches of a request, as BuildKit's client prepares them: each
/// directory served on the session as the content store `local:DIR`, and the exports'
/// directories with the tag their `index.json` gets once the daemon answers.
#[derive(Debug, Default)]
pub(super) struct LocalCaches {
    /// (store id, directory) for the session.
    pub stores: Vec<(String, PathBuf)>,
    /// (directory, tag) of each export, tagged from the response's `cache.manifest`.
    pub exports: Vec<(PathBuf, String)>,
}

/// Prepares the `type=local` entries of `options`: an export's directory is created; an
/// import gets the `digest` attribute its tag (`latest` unless `tag=`) names in the
/// directory's `index.json` — one that names none, or whose blob is missing, is dropped
/// with a warning and the build goes on without it, as with BuildKit's client.
pub(super) fn local_caches(options: &mut CacheOptions) -> anyhow::Result<LocalCaches> {
    let mut caches = LocalCaches::default();
    for export in options.exports.iter().filter(|e| e.r#type == "local") {
        let dest = export.attrs.get("dest").cloned().unwrap_or_default();
        std::fs::create_dir_all(&dest)
            .with_context(|| format!("cannot create the cache directory {dest}"))?;
        let tag = export
            .attrs
            .get("tag")
            .cloned()
            .unwrap_or_else(|| "latest".to_owned());
        add_store(&mut caches, &dest);
        caches.exports.push((PathBuf::from(dest), tag));
    }
    let mut kept = Vec::with_capacity(options.imports.len());
    for mut import in std::mem::take(&mut options.imports) {
        if import.r#type != "local" {
            kept.push(import);
            continue;
        }
        let src = import.attrs.get("src").cloned().unwrap_or_default();
        match local_import_digest(&src, &import.attrs) {
            Ok(digest) => {
                import.attrs.insert("digest".to_owned(), digest);
                add_store(&mut caches, &src);
                kept.push(import);
            }
            Err(reason) => eprintln!("WARNING: local cache import at {src} skipped: {reason}"),
        }
    }
    options.imports = kept;
    Ok(caches)
}

fn add_store(caches: &mut LocalCaches, dir: &str) {
    let id = hoist_session::content::store_id(dir);
    if !caches.stores.iter().any(|(known, _)| *known == id) {
        caches.stores.push((id, PathBuf::from(dir)));
    }
}

/// The digest a local import reads: `digest=` as given, else its tag's in `index.json`;
/// either must name a blob the directory holds.
fn local_import_digest(src: &str, attrs: &HashMap<String, String>) -> Result<String, String> {
    let layout = hoist_session::content::LayoutDir::new(PathBuf::from(src));
    let digest = match attrs.get("digest").filter(|d| !d.is_empty()) {
        Some(digest) => hoist_oci::Digest::parse(digest).map_err(|e| e.to_string())?,
        None => {
            let tag = attrs.get("tag").map_or("latest", String::as_str);
            layout
                .tagged(tag)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no digest found for tag {tag:?}"))?
                .digest
        }
    };
    match layout.size(&digest) {
        Ok(Some(_)) => Ok(digest.to_string()),
        Ok(None) => Err(format!("digest {digest} unavailable: not in blobs/")),
        Err(e) => Err(format!("digest {digest} unavailable: {e}")),
    }
}

/// Tags each local export's root (the exporter response's `cache.manifest`, a descriptor
/// in JSON) in its directory's `index.json`; a response without one leaves them as they
/// were (nothing was exported).
pub(super) fn tag_local_caches(
    caches: &LocalCaches,
    response: &HashMap<String, String>,
) -> anyhow::Result<()> {
    let Some(json) = response.get("cache.manifest").filter(|j| !j.is_empty()) else {
        return Ok(());
    };
    let root: hoist_oci::Descriptor = serde_json::from_str(json)
        .with_context(|| format!("the daemon's cache.manifest {json:?} is not a descriptor"))?;
    for (dir, tag) in &caches.exports {
        let layout = hoist_session::content::LayoutDir::new(dir.clone());
        // The response names one root (BuildKit's one `cache.manifest` key): with several
        // local exports, only a directory that received it is tagged.
        if !matches!(layout.size(&root.digest), Ok(Some(size)) if size == root.size) {
            eprintln!(
                "WARNING: the cache in {} is not tagged {tag:?}: the daemon named the root {} \
                 (of another --cache-to), which it does not hold",
                dir.display(),
                root.digest
            );
            continue;
        }
        layout
            .tag(&root, tag)
            .with_context(|| format!("cannot tag the cache in {}/index.json", dir.display()))?;
    }
    Ok(())
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
    let dir_key = if flag == "--cache-to" { "dest" } else { "src" };
    if kind == "local" && attrs.get(dir_key).is_none_or(String::is_empty) {
        bail!("{flag} {spec:?}: type=local needs {dir_key}=DIR");
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
        let err = cache_options(&[], &["type=local,src=/tmp/c".to_owned()]).unwrap_err();
        assert!(
            err.to_string().contains("type=local needs dest=DIR"),
            "{err}"
        );
    }

    #[test]
    fn local_caches_get_their_store_ids_and_an_imports_digest_from_index_json() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let layout = hoist_session::content::LayoutDir::new(cache.clone());
        let root = hoist_oci::Descriptor::of_bytes(hoist_oci::MediaType::OciManifest, b"{}");
        std::fs::create_dir_all(cache.join("blobs/sha256")).unwrap();
        std::fs::write(
            cache.join("blobs/sha256").join(root.digest.encoded()),
            b"{}",
        )
        .unwrap();
        layout.tag(&root, "main").unwrap();
        let (src, dest) = (
            cache.display().to_string(),
            dir.path().join("out").display().to_string(),
        );
        let mut options = cache_options(
            &[
                format!("type=local,src={src},tag=main"),
                format!("type=local,src={src}"), // no `latest`: dropped with a warning
                "reg:5000/c".to_owned(),
            ],
            &[format!("type=local,dest={dest},mode=max")],
        )
        .unwrap()
        .unwrap();
        let caches = local_caches(&mut options).unwrap();
        assert_eq!(options.imports.len(), 2);
        assert_eq!(options.imports[0].attrs["digest"], root.digest.to_string());
        assert_eq!(options.imports[0].attrs["src"], src);
        assert_eq!(options.imports[1].r#type, "registry");
        assert_eq!(options.exports[0].attrs["dest"], dest);
        assert!(std::path::Path::new(&dest).is_dir());
        assert_eq!(
            caches.stores,
            [
                (format!("local:{dest}"), PathBuf::from(&dest)),
                (format!("local:{src}"), cache.clone()),
            ]
        );
        assert_eq!(
            caches.exports,
            [(PathBuf::from(&dest), "latest".to_owned())]
        );
        // The response's root is tagged only where it is.
        let response = HashMap::from([(
            "cache.manifest".to_owned(),
            serde_json::to_string(&root).unwrap(),
        )]);
        tag_local_caches(&caches, &response).unwrap();
        assert!(!std::path::Path::new(&dest).join("index.json").exists());
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
