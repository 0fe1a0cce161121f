//! [`resolve_user`]: turn a `USER` string into numeric ids using the rootfs's `/etc/passwd` and
//! `/etc/group`, with the rules runc and BuildKit apply to a process; [`resolve_owner`]: the
//! laxer rules BuildKit's file ops apply to the owner of files they create; [`home_dir`]: the
//! `HOME` runc gives a process.

use std::path::Path;

use crate::{Error, Result, User};

/// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, any mix; empty means root) against
/// `rootfs/etc/passwd` and `rootfs/etc/group`.
///
/// - A name must exist in `passwd`; a number need not (its gid is then 0).
/// - A group, when given, is looked up by name in `group` (a number need not exist).
/// - Without an explicit group, the supplementary gids are those of the groups listing the
///   user by name; with an explicit group there are none.
/// - The primary gid is put first among the supplementary gids unless already there, as
///   BuildKit (after containerd) does, so `id` inside shows it under `groups=`.
///
/// The files are read through the rootfs, so symlinks in it cannot point outside it.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<User> {
    if user.is_empty() {
        return Ok(User::root());
    }
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(Error::InvalidUser {
            user: user.to_owned(),
            reason: "expected name, uid, name:group or uid:gid",
        });
    }
    let passwd = read_etc(rootfs, "etc/passwd")?;
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = passwd
        .lines()
        .filter_map(PasswdEntry::parse)
        .find(|e| match numeric_uid {
            Some(uid) => e.uid == uid,
            None => e.name == user_part,
        });
    let (uid, mut gid, name) = match (entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(Error::UnknownUser {
                name: user_part.to_owned(),
            })
        }
    };
    let mut additional_gids = Vec::new();
    if group_part.is_some() || name.is_some() {
        let groups = read_etc(rootfs, "etc/group")?;
        let entries = || groups.lines().filter_map(GroupEntry::parse);
        match group_part {
            Some(group) => match group.parse::<u32>() {
                Ok(number) => gid = number,
                Err(_) => {
                    gid = entries()
                        .find(|g| g.name == group)
                        .map(|g| g.gid)
                        .ok_or_else(|| Error::UnknownGroup {
                            name: group.to_owned(),
                        })?;
                }
            },
            None => {
                if let Some(name) = name {
                    additional_gids = entries()
                        .filter(|g| g.members.split(',').any(|m| m == name))
                        .map(|g| g.gid)
                        .collect();
                }
            }
        }
    }
    if !additional_gids.contains(&gid) {
        additional_gids.insert(0, gid);
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// Resolves `owner` (`user[:group]`) to the uid and gid BuildKit's file ops (WORKDIR's
/// mkdir, `COPY --chown`, `ADD --chown`) give what they create. Unlike a process's user
/// ([`resolve_user`]) nothing here is an error:
///
/// - `root` is 0 and a number is itself, with no passwd file read; a number alone is also
///   the gid (`--chown=1000` is 1000:1000).
/// - A name is looked up in `passwd` (its uid and gid); a name not there, or no passwd file
///   at all, is 0:0.
/// - A group, when given, replaces the gid: `root` or a number as is, a name from `group`;
///   a group name not there leaves the user's gid.
pub fn resolve_owner(owner: &str, rootfs: &Path) -> Result<(u32, u32)> {
    let (user_part, group_part) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let (uid, mut gid) = match owner_id(user_part) {
        Some(id) => (id, id),
        None => read_etc(rootfs, "etc/passwd")?
            .lines()
            .filter_map(PasswdEntry::parse)
            .find(|e| e.name == user_part)
            .map_or((0, 0), |e| (e.uid, e.gid)),
    };
    if let Some(group) = group_part {
        match owner_id(group) {
            Some(id) => gid = id,
            None => {
                if let Some(entry) = read_etc(rootfs, "etc/group")?
                    .lines()
                    .filter_map(GroupEntry::parse)
                    .find(|g| g.name == group)
                {
                    gid = entry.gid;
                }
            }
        }
    }
    Ok((uid, gid))
}

/// `root` or a decimal id: the ids a file op takes without reading passwd or group.
fn owner_id(part: &str) -> Option<u32> {
    if part == "root" {
        Some(0)
    } else {
        part.parse().ok()
    }
}

/// The home directory of `uid` in `rootfs/etc/passwd`, or `/` when it has no entry (or
/// there is no passwd file): the `HOME` runc puts in a process's environment when the
/// environment has none.
pub fn home_dir(uid: u32, rootfs: &Path) -> Result<String> {
    Ok(read_etc(rootfs, "etc/passwd")?
        .lines()
        .filter_map(PasswdEntry::parse)
        .find(|e| e.uid == uid)
        .map(|e| e.home.to_owned())
        .filter(|home| !home.is_empty())
        .unwrap_or_else(|| "/".to_owned()))
}

/// The text of `rel` inside `rootfs`, or "" when it does not exist.
fn read_etc(rootfs: &Path, rel: &str) -> Result<String> {
    let path = safe_path::scoped_join(rootfs, rel)
        .map_err(|e| Error::io("resolve", rootfs.join(rel), e))?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// `name:password:uid:gid:gecos:home:shell`
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

impl<'a> PasswdEntry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split(':');
        let name = fields.next()?.trim();
        if name.is_empty() || name.starts_with('#') {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.trim().parse().ok()?;
        let gid = fields.next()?.trim().parse().ok()?;
        let _gecos = fields.next();
        let home = fields.next().unwrap_or("").trim();
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    }
}

/// `name:password:gid:member,member`
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

impl<'a> GroupEntry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split(':');
        let name = fields.next()?.trim();
        if name.is_empty() || name.starts_with('#') {
            return None;
        }
        let _password = fields.next()?;
        let gid = fields.next()?.trim().parse().ok()?;
        let members = fields.next().unwrap_or("").trim();
        Some(GroupEntry { name, gid, members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nusers:x:100:\nalice:x:1000:\nstaff:x:50:alice,bob\nwheel:x:10:alice\n",
        )
        .unwrap();
        dir
    }

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn resolve_user_cases() {
        let dir = rootfs();
        let root = dir.path();
        let cases: &[(&str, User)] = &[
            ("", User::root()),
            ("root", user(0, 0, &[0])),
            ("0", user(0, 0, &[0])),
            ("alice", user(1000, 1000, &[1000, 50, 10])),
            ("1000", user(1000, 1000, &[1000, 50, 10])),
            ("bob", user(1001, 100, &[100, 50])),
            ("alice:staff", user(1000, 50, &[50])),
            ("alice:4242", user(1000, 4242, &[4242])),
            ("1234", user(1234, 0, &[0])),
            ("1234:5678", user(1234, 5678, &[5678])),
            ("1234:wheel", user(1234, 10, &[10])),
        ];
        for (input, expected) in cases {
            assert_eq!(&resolve_user(input, root).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn resolve_user_errors_name_the_missing_entry() {
        let dir = rootfs();
        let err = resolve_user("carol", dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user carol: no matching entries in passwd file"
        );
        let err = resolve_user("alice:nogroup", dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        assert!(matches!(
            resolve_user(":1", dir.path()),
            Err(Error::InvalidUser { .. })
        ));
        assert!(matches!(
            resolve_user("1:", dir.path()),
            Err(Error::InvalidUser { .. })
        ));
    }

    #[test]
    fn resolve_user_without_etc_files_accepts_numbers_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user("5:6", dir.path()).unwrap(), user(5, 6, &[6]));
        assert!(matches!(
            resolve_user("alice", dir.path()),
            Err(Error::UnknownUser { .. })
        ));
    }

    #[test]
    fn resolve_owner_follows_buildkit_file_ops() {
        let dir = rootfs();
        let root = dir.path();
        let cases: &[(&str, (u32, u32))] = &[
            ("root", (0, 0)),
            ("alice", (1000, 1000)),
            ("bob", (1001, 100)),
            ("1000", (1000, 1000)),
            ("1234", (1234, 1234)),
            ("1234:wheel", (1234, 10)),
            ("alice:staff", (1000, 50)),
            ("alice:root", (1000, 0)),
            ("alice:nogroup", (1000, 1000)),
            ("carol", (0, 0)),
            ("carol:staff", (0, 50)),
            ("docker:root", (0, 0)),
        ];
        for (input, expected) in cases {
            assert_eq!(&resolve_owner(input, root).unwrap(), expected, "{input}");
        }
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve_owner("root", empty.path()).unwrap(), (0, 0));
        assert_eq!(resolve_owner("app:app", empty.path()).unwrap(), (0, 0));
        assert_eq!(resolve_owner("5", empty.path()).unwrap(), (5, 5));
    }

    #[test]
    fn home_dir_is_the_passwd_entry_of_the_uid_or_slash() {
        let dir = rootfs();
        assert_eq!(home_dir(0, dir.path()).unwrap(), "/root");
        assert_eq!(home_dir(1000, dir.path()).unwrap(), "/home/alice");
        assert_eq!(home_dir(4242, dir.path()).unwrap(), "/");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(home_dir(0, empty.path()).unwrap(), "/");
    }

    #[test]
    fn resolve_user_passwd_symlink_stays_in_rootfs() {
        let dir = rootfs();
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        // An absolute symlink is resolved inside the rootfs, not on the host.
        std::os::unix::fs::symlink("/etc/passwd.real", dir.path().join("etc/passwd")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd.real"),
            "dave:x:7:8::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(resolve_user("dave", dir.path()).unwrap(), user(7, 8, &[8]));
    }
}
