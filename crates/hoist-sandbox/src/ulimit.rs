//! [`Ulimit`]: one resource limit a sandboxed process starts with (`--ulimit nofile=1024:2048`),
//! parsed as Docker's `go-units` parses it and applied by both backends: the built-in runtime
//! calls `setrlimit` in the container's pid 1 before it execs, the OCI backend writes
//! `process.rlimits`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The limit names Docker accepts, with the kernel resource each sets.
const RESOURCES: &[(&str, rustix::process::Resource)] = {
    use rustix::process::Resource as R;
    &[
        ("core", R::Core),
        ("cpu", R::Cpu),
        ("data", R::Data),
        ("fsize", R::Fsize),
        ("locks", R::Locks),
        ("memlock", R::Memlock),
        ("msgqueue", R::Msgqueue),
        ("nice", R::Nice),
        ("nofile", R::Nofile),
        ("nproc", R::Nproc),
        ("rss", R::Rss),
        ("rtprio", R::Rtprio),
        ("rttime", R::Rttime),
        ("sigpending", R::Sigpending),
        ("stack", R::Stack),
    ]
};

/// `name=soft[:hard]`: a limit's soft and hard values, `-1` meaning unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// One of Docker's names (`nofile`, `nproc`, `core`, ...), lowercase.
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl FromStr for Ulimit {
    type Err = Error;

    /// `nofile=1024:2048`, or `nofile=1024` for equal soft and hard limits.
    fn from_str(text: &str) -> Result<Ulimit, Error> {
        let refuse = |message: String| Error::InvalidUlimit { message };
        let Some((name, values)) = text.split_once('=') else {
            return Err(refuse(format!("invalid ulimit argument: {text}")));
        };
        if !RESOURCES.iter().any(|(known, _)| *known == name) {
            return Err(refuse(format!("invalid ulimit type: {name}")));
        }
        let number = |value: &str| {
            value.parse::<i64>().map_err(|_| {
                refuse(format!(
                    "invalid ulimit value {value:?} in {text}: not a number"
                ))
            })
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => {
                let both = number(values)?;
                (both, both)
            }
        };
        if hard != -1 && soft > hard {
            return Err(refuse(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        Ok(Ulimit {
            name: name.to_owned(),
            soft,
            hard,
        })
    }
}

impl fmt::Display for Ulimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:{}", self.name, self.soft, self.hard)
    }
}

impl Ulimit {
    /// The OCI `process.rlimits` type: `RLIMIT_NOFILE`.
    pub(crate) fn oci_type(&self) -> String {
        format!("RLIMIT_{}", self.name.to_ascii_uppercase())
    }

    /// A value as the kernel takes it: a negative one is unlimited (`RLIM_INFINITY`).
    pub(crate) fn raw(value: i64) -> u64 {
        u64::try_from(value).unwrap_or(u64::MAX)
    }

    /// Sets this limit on the calling process.
    pub(crate) fn apply(&self) -> std::io::Result<()> {
        let resource = RESOURCES
            .iter()
            .find(|(name, _)| *name == self.name)
            .map(|(_, resource)| *resource)
            .ok_or_else(|| std::io::Error::other(format!("invalid ulimit type: {}", self.name)))?;
        let limit = |value: i64| u64::try_from(value).ok();
        rustix::process::setrlimit(
            resource,
            rustix::process::Rlimit {
                current: limit(self.soft),
                maximum: limit(self.hard),
            },
        )
        .map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_docker_does() {
        let parsed: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!((parsed.soft, parsed.hard), (1024, 2048));
        assert_eq!(parsed.oci_type(), "RLIMIT_NOFILE");
        let both: Ulimit = "nproc=50".parse().unwrap();
        assert_eq!((both.soft, both.hard), (50, 50));
        let unlimited: Ulimit = "core=-1".parse().unwrap();
        assert_eq!(Ulimit::raw(unlimited.hard), u64::MAX);
        let cases = [
            ("nofile", "invalid ulimit argument: nofile"),
            ("files=1", "invalid ulimit type: files"),
            (
                "nofile=10:5",
                "ulimit soft limit must be less than or equal to hard limit: 10 > 5",
            ),
            (
                "nofile=x",
                "invalid ulimit value \"x\" in nofile=x: not a number",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(
                text.parse::<Ulimit>().unwrap_err().to_string(),
                message,
                "{text}"
            );
        }
    }
}
