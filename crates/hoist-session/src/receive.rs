//! fsutil's receiver, for the `local` exporter's `FileSend.DiffCopy`: the daemon sends the
//! result's STAT packets, this side asks for each regular file's data by id and writes the
//! tree into the destination directory (merged into what is there, as BuildKit's client).
//! Paths are checked: nothing absolute, no `..`, nothing below a non-directory, so nothing is
//! written outside the destination. Files get the sender's mode and mtime; owners stay this
//! user's, as BuildKit's client maps them.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use futures::{Stream, StreamExt as _};
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::walk::mode;

/// Receives one tree into `dest` over a packet stream: `incoming` from the sender, `send`
/// for this side's requests and FIN. Returns once the sender has answered FIN.
pub async fn receive<S>(
    dest: &Path,
    mut incoming: S,
    send: mpsc::Sender<Packet>,
) -> anyhow::Result<()>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    use anyhow::{bail, Context as _};
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut dirs: HashSet<String> = HashSet::from([String::new()]);
    let mut files: HashSet<String> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    let mut pending: HashMap<u32, (PathBuf, Stat, Option<tokio::fs::File>)> = HashMap::new();
    let mut id: u32 = 0;
    let mut stats_done = false;
    let mut fin_sent = false;
    let request = |p: Packet| {
        let send = send.clone();
        async move {
            send.send(p)
                .await
                .map_err(|_| anyhow::anyhow!("the sender went away"))
        }
    };
    loop {
        if stats_done && pending.is_empty() && !fin_sent {
            request(Packet {
                r#type: PacketType::PacketFin as i32,
                ..Packet::default()
            })
            .await?;
            fin_sent = true;
        }
        let Some(packet) = incoming.next().await else {
            bail!("the output stream ended before it was complete");
        };
        let packet = packet.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketStat) => {
                if stats_done {
                    bail!("a file's metadata after the end of the list");
                }
                let Some(stat) = packet.stat else {
                    stats_done = true;
                    continue;
                };
                let this = id;
                id += 1;
                let target = checked_path(dest, &stat.path, &dirs)?;
                let first = if stat.mode & mode::TYPE == 0 && !stat.linkname.is_empty() {
                    if !files.contains(&stat.linkname) {
                        bail!(
                            "refusing the hardlink {:?}: its target {:?} was not sent before",
                            stat.path,
                            stat.linkname
                        );
                    }
                    Some(dest.join(&stat.linkname))
                } else {
                    None
                };
                if stat.mode & mode::TYPE == 0 {
                    files.insert(stat.path.clone());
                }
                if let Some(file) = create(&target, &stat, first.as_deref()).await? {
                    pending.insert(this, (target.clone(), stat.clone(), Some(file)));
                    request(Packet {
                        r#type: PacketType::PacketReq as i32,
                        id: this,
                        ..Packet::default()
                    })
                    .await?;
                } else if stat.mode & mode::DIR != 0 {
                    dirs.insert(stat.path.clone());
                    dir_times.push((target, stat.mod_time));
                }
            }
            Ok(PacketType::PacketData) => {
                let Some((path, stat, file)) = pending.get_mut(&packet.id) else {
                    bail!("data for a file not asked for (id {})", packet.id);
                };
                let Some(handle) = file.as_mut() else {
                    bail!("data after the end of {}", stat.path);
                };
                if packet.data.is_empty() {
                    handle.flush().await?;
                    drop(file.take());
                    let (path, stat) = (path.clone(), stat.clone());
                    pending.remove(&packet.id);
                    finish(&path, &stat)?;
                } else {
                    handle
                        .write_all(&packet.data)
                        .await
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            Ok(PacketType::PacketFin) => {
                if !fin_sent {
                    bail!("the sender finished before sending every file");
                }
                break;
            }
            Ok(PacketType::PacketErr) => {
                bail!(
                    "error from sender: {}",
                    String::from_utf8_lossy(&packet.data)
                );
            }
            Ok(PacketType::PacketReq) | Err(_) => {
                bail!("unexpected packet type {}", packet.r#type);
            }
        }
    }
    // Directories last (deepest first), once their entries no longer change them.
    for (path, mtime) in dir_times.iter().rev() {
        let _ = filetime::set_symlink_file_times(path, time(*mtime), time(*mtime));
    }
    Ok(())
}

fn time(nanos: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
}

/// `path` under `dest`, refused when absolute, with `..`, or below something that is not a
/// directory this stream created.
fn checked_path(dest: &Path, path: &str, dirs: &HashSet<String>) -> anyhow::Result<PathBuf> {
    let relative = Path::new(path);
    let clean = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !clean {
        anyhow::bail!("refusing the output path {path:?}: not a plain relative path");
    }
    let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
    if !dirs.contains(parent) {
        anyhow::bail!("refusing the output path {path:?}: its directory was not sent first");
    }
    Ok(dest.join(relative))
}

/// Makes the entry; for a regular file with data, the file opened for writing.
async fn create(
    target: &Path,
    stat: &Stat,
    hardlink_to: Option<&Path>,
) -> anyhow::Result<Option<tokio::fs::File>> {
    use anyhow::Context as _;
    use std::os::unix::fs::PermissionsExt as _;
    let cannot = || format!("cannot create {}", target.display());
    let existing = std::fs::symlink_metadata(target).ok();
    let is_dir = stat.mode & mode::DIR != 0;
    if let Some(existing) = &existing {
        if !(is_dir && existing.is_dir()) {
            if existing.is_dir() {
                std::fs::remove_dir_all(target).with_context(cannot)?;
            } else {
                std::fs::remove_file(target).with_context(cannot)?;
            }
        }
    }
    let permissions = std::fs::Permissions::from_mode(mode::to_unix_permissions(stat.mode));
    if is_dir {
        if !existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            std::fs::create_dir(target).with_context(cannot)?;
        }
        std::fs::set_permissions(target, permissions).with_context(cannot)?;
        set_xattrs(target, stat);
        return Ok(None);
    }
    if stat.mode & mode::SYMLINK != 0 {
        std::os::unix::fs::symlink(&stat.linkname, target).with_context(cannot)?;
        let mtime = time(stat.mod_time);
        let _ = filetime::set_symlink_file_times(target, mtime, mtime);
        return Ok(None);
    }
    if stat.mode & mode::TYPE != 0 {
        // Devices, pipes, sockets: not made in a user's output directory.
        return Ok(None);
    }
    if let Some(first) = hardlink_to {
        std::fs::hard_link(first, target).with_context(cannot)?;
        return Ok(None);
    }
    let file = tokio::fs::File::create(target).await.with_context(cannot)?;
    file.set_permissions(permissions)
        .await
        .with_context(cannot)?;
    Ok(Some(file))
}

fn set_xattrs(target: &Path, stat: &Stat) {
    for (key, value) in &stat.xattrs {
        // Best effort, as a user's directory may not take them (security.*, trusted.*).
        let _ = xattr::set(target, key, value);
    }
}

fn finish(path: &Path, stat: &Stat) -> anyhow::Result<()> {
    set_xattrs(path, stat);
    let mtime = time(stat.mod_time);
    filetime::set_file_times(path, mtime, mtime)
        .map_err(|e| anyhow::anyhow!("cannot set the times of {}: {e}", path.display()))
}
