//! The image the `docker-container` driver runs, assembled by hoist from its own files — no
//! registry, works offline: `hoistd` (found next to the running executable, else in `PATH`),
//! the shared libraries `ldd` names for it, and a minimal `/etc`, as one layer in a
//! docker-archive that the daemon loads (`POST /images/load`).
//!
//! hoistd's built-in runtime re-executes hoistd itself for RUN steps, so no other binary is
//! needed. The image carries the label [`DIGEST_LABEL`], the digest of the `hoistd` it was
//! made from, so an image already loaded from the same binary is used as it is.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_oci::{Algorithm, Digest, Digester, Platform};

/// The label naming the digest of the `hoistd` binary an image was made from.
pub const DIGEST_LABEL: &str = "org.hoist.hoistd.digest";

/// Where hoistd is in the image (in the image's `PATH`).
const HOISTD_IN_IMAGE: &str = "usr/bin/hoistd";

/// The `hoistd` to put in the image: next to the running executable, else in `PATH`.
pub fn find_hoistd() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().ok();
    if let Some(sibling) = exe.as_ref().map(|e| e.with_file_name("hoistd")) {
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("hoistd");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "cannot find hoistd next to {} or in PATH: the docker-container driver builds its \
         image from it (install hoistd, or give --driver-opt image=IMAGE)",
        exe.map_or_else(|| "hoist".to_owned(), |e| e.display().to_string())
    ))
}

/// The sha256 digest of a file.
pub fn file_digest(path: &Path) -> Result<Digest, String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Digest::of_reader(Algorithm::Sha256, &mut file)
        .map(|(digest, _)| digest)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The shared libraries (and the dynamic loader) `ldd` lists for `binary`; none for a
/// static binary.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // `name => /path (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`, `linux-vdso.so.1 (0x…)`.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        } else if line.contains("not found") {
            return Err(format!("ldd {}: {line}", binary.display()));
        }
    }
    Ok(libraries)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// A tar being written: directories added once, parents first.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
    dirs: Vec<String>,
}

impl Layer {
    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        let mut parent = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if self.dirs.contains(&parent) {
                continue;
            }
            self.dirs.push(parent.clone());
            let mode = if parent == path { mode } else { 0o755 };
            let mut h = header(tar::EntryType::Directory, mode, 0);
            self.builder
                .append_data(&mut h, format!("{parent}/"), std::io::empty())?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent, 0o755)?;
        }
        let mut h = header(tar::EntryType::Regular, mode, bytes.len() as u64);
        self.builder.append_data(&mut h, path, bytes)
    }
}

/// The docker-archive of the image: hoistd, its libraries, a minimal `/etc`, tagged `tag`.
pub fn docker_archive(hoistd: &Path, digest: &Digest, tag: &str) -> Result<Vec<u8>, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let io = |e: std::io::Error| format!("cannot assemble the hoistd image: {e}");
    let mut layer = Layer {
        builder: tar::Builder::new(Vec::new()),
        dirs: Vec::new(),
    };
    layer
        .file(HOISTD_IN_IMAGE, 0o755, &read(hoistd)?)
        .map_err(io)?;
    for library in shared_libraries(hoistd)? {
        let name = library.to_string_lossy().trim_start_matches('/').to_owned();
        // Read through symlinks: the image has the file under the name the loader asks for.
        layer.file(&name, 0o755, &read(&library)?).map_err(io)?;
    }
    layer
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\n",
        )
        .map_err(io)?;
    layer.file("etc/group", 0o644, b"root:x:0:\n").map_err(io)?;
    layer
        .file("etc/nsswitch.conf", 0o644, b"hosts: files dns\n")
        .map_err(io)?;
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if let Ok(bytes) = std::fs::read(ca) {
        layer
            .file("etc/ssl/certs/ca-certificates.crt", 0o644, &bytes)
            .map_err(io)?;
    }
    for (dir, mode) in [
        ("tmp", 0o1777),
        ("root", 0o700),
        ("run/hoistd", 0o755),
        ("var/lib/hoist", 0o700),
        ("etc/hoist", 0o755),
    ] {
        layer.dir(dir, mode).map_err(io)?;
    }
    let layer = layer.builder.into_inner().map_err(io)?;
    let mut digester = Digester::new(Algorithm::Sha256);
    digester.update(&layer);
    let (diff_id, _) = digester.finish();

    let platform = Platform::host();
    let mut config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["hoistd"],
            "WorkingDir": "/",
            "Labels": { DIGEST_LABEL: digest.to_string() },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
        "history": [{ "created_by": "hoist: hoistd, its shared libraries and a minimal /etc" }],
    });
    if !platform.variant.is_empty() {
        config["variant"] = platform.variant.clone().into();
    }
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_name = format!("{}.json", Digest::sha256_of(&config).encoded());
    let layer_name = format!("{}/layer.tar", diff_id.encoded());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": [layer_name],
    }]))
    .map_err(|e| e.to_string())?;

    let mut archive = tar::Builder::new(Vec::with_capacity(layer.len() + 64 * 1024));
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        archive.append_data(&mut h, name, bytes)
    };
    add(&layer_name, &layer).map_err(io)?;
    add(&config_name, &config).map_err(io)?;
    add("manifest.json", &manifest).map_err(io)?;
    let mut bytes = archive.into_inner().map_err(io)?;
    bytes.flush().map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_has_the_binary_its_loader_and_a_manifest_naming_the_tag() {
        // Any dynamic binary will do: ldd itself is a script, so use the test binary.
        let exe = std::env::current_exe().unwrap();
        let digest = file_digest(&exe).unwrap();
        let archive = docker_archive(&exe, &digest, "hoist/hoistd:test").unwrap();
        let mut names = Vec::new();
        let mut manifest = None;
        let mut layer_names = Vec::new();
        for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                manifest = Some(text);
            } else if name.ends_with("/layer.tar") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                for inner in tar::Archive::new(&bytes[..]).entries().unwrap() {
                    let inner = inner.unwrap();
                    layer_names.push(inner.path().unwrap().to_string_lossy().into_owned());
                }
            }
            names.push(name);
        }
        let manifest = manifest.expect("manifest.json");
        assert!(
            manifest.contains(r#""RepoTags":["hoist/hoistd:test"]"#),
            "{manifest}"
        );
        assert!(
            layer_names.iter().any(|n| n == HOISTD_IN_IMAGE),
            "{layer_names:?}"
        );
        assert!(
            layer_names.iter().any(|n| n.contains("libc.so")),
            "{layer_names:?}"
        );
        assert!(layer_names.iter().any(|n| n == "tmp/"), "{layer_names:?}");
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
