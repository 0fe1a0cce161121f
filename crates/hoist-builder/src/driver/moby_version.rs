//! Which BuildKit a Docker daemon carries, as buildx's `docker` driver reports it in the
//! `BUILDKIT` column: the daemon's version (`/version`'s `Version`) looked up in a table of
//! Docker releases and the BuildKit each vendored (the first matching row wins); a daemon
//! newer than the table is shown by its own version without `-moby` (from Docker 24 on the
//! two are released in step).
//!
//! The table and its matching rules are semantic versioning as buildx evaluates them
//! (Masterminds/semver): Docker's `18.09.1` is `18.9.1`, a bound with a `-0` pre-release
//! admits pre-releases, and a pre-release version (`19.03.5-rc1`) fails every bound that
//! has no pre-release of its own. Written here, a few dozen lines, rather than taking a
//! semver crate: the Rust ones do not evaluate constraints with Masterminds' pre-release
//! rule, and that rule is what decides the rows for release candidates.

use std::cmp::Ordering;

/// `major.minor.patch` and the pre-release, parsed leniently (missing parts are 0, build
/// metadata dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    release: [u64; 3],
    pre: String,
}

impl Version {
    fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let text = text.split_once('+').map_or(text, |(v, _)| v);
        let (core, pre) = text.split_once('-').unwrap_or((text, ""));
        let mut release = [0; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        for (slot, part) in release.iter_mut().zip(&parts) {
            *slot = part.parse().ok()?;
        }
        Some(Version {
            release,
            pre: pre.to_owned(),
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.release.cmp(&other.release).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre(&self.pre, &other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Semver's pre-release order: dot-separated identifiers, numbers numerically and below
/// words, a shorter list first when it is a prefix.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// One bound of a row: `>=`, `>`, `<=`, `<` or `=` a version.
type Bound = (&'static str, &'static str);

/// Docker releases → the BuildKit they vendor, as buildx's docker driver tabulates them
/// (tilde and hyphen ranges written out as their bounds).
const TABLE: &[(&[Bound], &str)] = &[
    (&[(">=", "18.06.0-0"), ("<", "18.06.1-0")], "v0.0.0+9acf51e"),
    (&[(">=", "18.06.1-0"), ("<", "18.09.0-0")], "v0.0.0+98f1604"),
    (&[(">=", "18.09.0-0"), ("<", "18.09.1-0")], "v0.0.0+c7bb575"),
    (&[(">=", "18.09.1-0"), ("<", "18.10.0-0")], "v0.3.3"),
    (&[(">", "18.09.1-0"), ("<", "18.09.6-0")], "v0.3.3+d9f7592"),
    (&[(">=", "18.09.6-0"), ("<", "18.09.7-0")], "v0.4.0+ed4da8b"),
    (&[(">=", "18.09.7-0"), ("<", "19.03.0-0")], "v0.4.0+05766c5"),
    (&[("<=", "19.03.0-beta2")], "v0.4.0+b302896"),
    (&[("<=", "19.03.0-beta3")], "v0.4.0+8818c67"),
    (&[("<=", "19.03.0-beta5")], "v0.5.1+f238f1e"),
    (&[("<", "19.03.2-0")], "v0.5.1+1f89ec1"),
    (&[("<=", "19.03.2-beta1")], "v0.6.1"),
    (&[(">=", "19.03.2-0"), ("<", "19.03.3-0")], "v0.6.1+588c73e"),
    (&[(">=", "19.03.3-0"), ("<", "19.03.5-beta2")], "v0.6.2"),
    (&[("<=", "19.03.5-rc1")], "v0.6.2+ff93519"),
    (&[("<=", "19.03.5")], "v0.6.3+928f3b4"),
    (&[("<=", "19.03.6-rc1")], "v0.6.3+926935b"),
    (
        &[(">=", "19.03.6-rc2"), ("<", "19.03.7-0")],
        "v0.6.3+57e8ad5",
    ),
    (&[(">=", "19.03.7-0"), ("<", "19.03.9-0")], "v0.6.4"),
    (
        &[(">=", "19.03.9-0"), ("<", "19.03.13-0")],
        "v0.6.4+a7d7b7f",
    ),
    (&[("<=", "19.03.13-beta2")], "v0.6.4+da1f4bf"),
    (&[("<=", "19.03.14")], "v0.6.4+df89d4d"),
    (&[("<", "20.10.0")], "v0.6.4+396bfe2"),
    (&[(">=", "20.10.0-0"), ("<=", "20.10.2-0")], "v0.8.1"),
    (&[(">=", "20.10.3-0"), ("<", "20.10.4-0")], "v0.8.1+68bb095"),
    (&[(">=", "20.10.4-0"), ("<=", "20.10.6")], "v0.8.2"),
    (
        &[(">=", "20.10.7-0"), ("<=", "20.10.10-0")],
        "v0.8.2+244e8cde",
    ),
    (
        &[(">=", "20.10.11-0"), ("<=", "20.10.18-0")],
        "v0.8.2+bc07b2b8",
    ),
    (
        &[(">=", "20.10.19-0"), ("<", "20.10.20-0")],
        "v0.8.2+3a1eeca5",
    ),
    (
        &[(">=", "20.10.20-0"), ("<", "20.10.21-0")],
        "v0.8.2+c0149372",
    ),
    (
        &[(">=", "20.10.21-0"), ("<=", "20.10.23")],
        "v0.8.2+eeb7b65",
    ),
    (&[(">=", "20.10.0-0"), ("<", "20.11.0-0")], "v0.8+unknown"),
    (&[(">=", "22.06.0-0"), ("<", "22.07.0-0")], "v0.10.3"),
    (&[(">=", "23.0.0-0"), ("<", "23.0.1-0")], "v0.10.6"),
    (&[("=", "23.0.1")], "v0.10.6+4f0ee09"),
    (&[(">=", "23.0.2-0"), ("<", "23.0.4-0")], "v0.10.6+70f2ad5"),
    (&[(">=", "23.0.0-0"), ("<", "24.0.0-0")], "v0.10+unknown"),
];

fn holds(version: &Version, (op, bound): Bound) -> bool {
    let Some(bound) = Version::parse(bound) else {
        return false;
    };
    if !version.pre.is_empty() && bound.pre.is_empty() {
        return false;
    }
    let order = version.cmp(&bound);
    match op {
        ">=" => order != Ordering::Less,
        ">" => order == Ordering::Greater,
        "<=" => order != Ordering::Greater,
        "<" => order == Ordering::Less,
        _ => order == Ordering::Equal,
    }
}

/// The BuildKit version buildx shows for a Docker daemon of version `docker`.
pub(crate) fn buildkit_of(docker: &str) -> String {
    if let Some(version) = Version::parse(docker) {
        for (bounds, buildkit) in TABLE {
            if bounds.iter().all(|bound| holds(&version, *bound)) {
                return (*buildkit).to_owned();
            }
        }
    }
    docker.strip_suffix("-moby").unwrap_or(docker).to_owned()
}

#[cfg(test)]
mod tests {
    use super::buildkit_of;

    #[test]
    fn docker_releases_map_to_their_buildkit() {
        for (docker, buildkit) in [
            ("18.09.1", "v0.3.3"),
            ("19.03.5-rc1", "v0.6.2+ff93519"),
            ("19.03.5", "v0.6.3+928f3b4"),
            ("19.03.15", "v0.6.4+396bfe2"),
            ("20.10.1", "v0.8.1"),
            // 20.10.2 is above the range's `20.10.2-0` bound: the 20.10 catch-all.
            ("20.10.2", "v0.8+unknown"),
            ("20.10.5", "v0.8.2"),
            ("20.10.17", "v0.8.2+bc07b2b8"),
            ("20.10.23", "v0.8.2+eeb7b65"),
            // Debian's dockerd here: build metadata ignored, above the last 20.10 row.
            ("20.10.24+dfsg1", "v0.8+unknown"),
            ("22.06.0-beta.0", "v0.10.3"),
            ("23.0.1", "v0.10.6+4f0ee09"),
            ("23.0.6", "v0.10+unknown"),
            ("24.0.7", "24.0.7"),
            ("26.1.0-moby", "26.1.0"),
            ("not a version", "not a version"),
        ] {
            assert_eq!(buildkit_of(docker), buildkit, "docker {docker}");
        }
    }
}
