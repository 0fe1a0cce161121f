//! Listener addresses as buildkitd writes them: `unix:///path/to.sock`, `tcp://host:port`.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where the daemon listens (or `dial-stdio` connects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` (a name, an IPv4 address, or `[v6]`).
    Tcp(String),
}

impl Address {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub fn parse(text: &str) -> Result<Address> {
        let bad = |reason: &str| Error::Address {
            address: text.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("a unix socket path must be absolute: unix:///path"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = text.strip_prefix("tcp://") {
            let hostport = hostport.trim_end_matches('/');
            let Some((host, port)) = hostport.rsplit_once(':') else {
                return Err(bad("expected tcp://HOST:PORT"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("expected tcp://HOST:PORT with a port number"));
            }
            return Ok(Address::Tcp(hostport.to_owned()));
        }
        Err(bad("expected unix:///PATH or tcp://HOST:PORT"))
    }

    /// The default: `unix:///run/hoistd/hoistd.sock` as root, else
    /// `$XDG_RUNTIME_DIR/hoistd/hoistd.sock` (as rootless buildkitd).
    pub fn default_for(is_root: bool, xdg_runtime_dir: Option<PathBuf>) -> Address {
        match xdg_runtime_dir {
            Some(dir) if !is_root => Address::Unix(dir.join("hoistd/hoistd.sock")),
            _ => Address::Unix(PathBuf::from("/run/hoistd/hoistd.sock")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp(hostport) => write!(f, "tcp://{hostport}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkitd_addresses() {
        assert_eq!(
            Address::parse("unix:///run/hoistd/hoistd.sock").unwrap(),
            Address::Unix("/run/hoistd/hoistd.sock".into())
        );
        assert_eq!(
            Address::parse("tcp://127.0.0.1:1234").unwrap(),
            Address::Tcp("127.0.0.1:1234".into())
        );
        assert_eq!(
            Address::parse("tcp://[::1]:1234").unwrap(),
            Address::Tcp("[::1]:1234".into())
        );
        for bad in [
            "unix://relative.sock",
            "tcp://host",
            "tcp://:1",
            "http://x:1",
            "x",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_is_rootless_under_xdg_runtime_dir() {
        assert_eq!(
            Address::default_for(true, Some("/run/user/1000".into())).to_string(),
            "unix:///run/hoistd/hoistd.sock"
        );
        assert_eq!(
            Address::default_for(false, Some("/run/user/1000".into())).to_string(),
            "unix:///run/user/1000/hoistd/hoistd.sock"
        );
    }
}
