//! [`Auth`]: what git may use to reach a private remote — an http `Authorization` header
//! (from BuildKit's `GIT_AUTH_TOKEN` / `GIT_AUTH_HEADER` secrets), an ssh agent socket and
//! known hosts. Nothing here prints a secret: `Debug` shows only what is set.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::git_ref::Remote;

/// The secret id whose value is a token, sent as `Authorization: basic
/// base64(x-access-token:TOKEN)` (BuildKit's default `AuthTokenSecret`).
pub const AUTH_TOKEN_SECRET: &str = "GIT_AUTH_TOKEN";

/// The secret id whose value is a whole `Authorization` header value (BuildKit's default
/// `AuthHeaderSecret`).
pub const AUTH_HEADER_SECRET: &str = "GIT_AUTH_HEADER";

/// Credentials for one remote.
#[derive(Clone, Default)]
pub struct Auth {
    /// The `Authorization` header value for http(s) remotes.
    header: Option<String>,
    /// Strings that must never reach a message (the header and the token it was made of).
    secrets: Vec<String>,
    ssh_agent: Option<PathBuf>,
    known_hosts: Option<String>,
}

impl Auth {
    /// No credentials.
    pub fn none() -> Auth {
        Auth::default()
    }

    /// The credentials BuildKit's git source takes from the build's secrets, in its order:
    /// `GIT_AUTH_HEADER.<host>`, `GIT_AUTH_TOKEN.<host>`, `GIT_AUTH_HEADER`,
    /// `GIT_AUTH_TOKEN`; the first present wins. `secret` looks a secret up by id.
    pub fn from_secrets(remote: &Remote, secret: impl Fn(&str) -> Option<Vec<u8>>) -> Auth {
        let host = remote.host();
        let candidates = [
            (format!("{AUTH_HEADER_SECRET}.{host}"), false),
            (format!("{AUTH_TOKEN_SECRET}.{host}"), true),
            (AUTH_HEADER_SECRET.to_owned(), false),
            (AUTH_TOKEN_SECRET.to_owned(), true),
        ];
        for (id, is_token) in candidates {
            if let Some(value) = secret(&id) {
                let value = String::from_utf8_lossy(&value).into_owned();
                return if is_token {
                    Auth::none().with_token(&value)
                } else {
                    Auth::none().with_header(&value)
                };
            }
        }
        Auth::none()
    }

    /// Sends `Authorization: <value>` to http(s) remotes.
    pub fn with_header(mut self, value: &str) -> Auth {
        let value = value.trim_end_matches(['\r', '\n']).to_owned();
        self.secrets.push(value.clone());
        self.header = Some(value);
        self
    }

    /// Sends a token as GitHub's `x-access-token` basic credentials.
    pub fn with_token(self, token: &str) -> Auth {
        let token = token.trim_end_matches(['\r', '\n']);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        let mut auth = self.with_header(&format!("basic {encoded}"));
        auth.secrets.push(token.to_owned());
        auth
    }

    /// The ssh agent socket ssh remotes are reached with (`SSH_AUTH_SOCK`).
    pub fn with_ssh_agent(mut self, socket: impl Into<PathBuf>) -> Auth {
        self.ssh_agent = Some(socket.into());
        self
    }

    /// `known_hosts` lines ssh checks the host key against; without them, any host key is
    /// accepted (as BuildKit does).
    pub fn with_known_hosts(mut self, lines: &str) -> Auth {
        self.known_hosts = Some(lines.to_owned());
        self
    }

    pub(crate) fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    pub(crate) fn ssh_agent(&self) -> Option<&Path> {
        self.ssh_agent.as_deref()
    }

    pub(crate) fn known_hosts(&self) -> Option<&str> {
        self.known_hosts.as_deref()
    }

    /// `text` with every secret of this auth replaced by `xxxxx`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), "xxxxx");
        }
        text
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("header", &self.header.as_ref().map(|_| "<set>"))
            .field("ssh_agent", &self.ssh_agent)
            .field("known_hosts", &self.known_hosts.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The URL prefix the header is scoped to: the remote itself, or all of github.com for a
/// github.com remote (BuildKit's `tokenScope`, after actions/checkout).
pub(crate) fn header_scope(remote: &Remote) -> String {
    let url = remote.url();
    for prefix in ["https://github.com/", "https://www.github.com/"] {
        if url.starts_with(prefix) {
            return prefix.to_owned();
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Remote {
        Remote::parse("https://git.example:8443/org/repo.git").unwrap()
    }

    #[test]
    fn a_host_secret_wins_over_the_plain_one_and_headers_over_tokens() {
        let secrets = |ids: &'static [&'static str]| {
            move |id: &str| ids.contains(&id).then(|| format!("v-{id}").into_bytes())
        };
        let auth = Auth::from_secrets(
            &remote(),
            secrets(&["GIT_AUTH_TOKEN", "GIT_AUTH_TOKEN.git.example:8443"]),
        );
        let expected = base64::engine::general_purpose::STANDARD
            .encode("x-access-token:v-GIT_AUTH_TOKEN.git.example:8443");
        assert_eq!(auth.header(), Some(format!("basic {expected}").as_str()));
        let auth = Auth::from_secrets(&remote(), secrets(&["GIT_AUTH_TOKEN", "GIT_AUTH_HEADER"]));
        assert_eq!(auth.header(), Some("v-GIT_AUTH_HEADER"));
        assert_eq!(Auth::from_secrets(&remote(), secrets(&[])).header(), None);
    }

    #[test]
    fn secrets_are_scrubbed_and_not_debug_printed() {
        let auth = Auth::none().with_token("s3cret");
        let header = auth.header().unwrap().to_owned();
        let text = format!("token s3cret header {header}");
        assert_eq!(auth.scrub(&text), "token xxxxx header xxxxx");
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert!(!format!("{auth:?}").contains(&header));
    }

    #[test]
    fn github_tokens_cover_all_of_github() {
        let gh = Remote::parse("https://github.com/a/b.git").unwrap();
        assert_eq!(header_scope(&gh), "https://github.com/");
        assert_eq!(
            header_scope(&remote()),
            "https://git.example:8443/org/repo.git"
        );
    }
}
