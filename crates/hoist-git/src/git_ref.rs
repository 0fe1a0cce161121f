//! Git URLs as BuildKit reads them: [`Remote`] (where the repository is) and [`GitRef`]
//! (a remote plus what to check out of it).
//!
//! The rules are BuildKit's (`util/gitutil` `ParseURL`, `util/sshutil` scp-style URLs and
//! the Dockerfile frontend's `ParseGitRef`):
//!
//! - a string with a `scheme://` prefix is a URL; only `http`, `https`, `ssh` and `git` are
//!   git transports (any other scheme is an error, the scheme compared case-insensitively);
//! - `user@host:path` is an ssh remote in scp style (`git@github.com:moby/buildkit.git`);
//! - `github.com/owner/repo` is an https remote (deprecated by BuildKit, accepted only for
//!   build contexts: [`GitRef::indistinguishable_from_local`]);
//! - an `http(s)` URL is a git remote only when its path ends in `.git`;
//! - the fragment is `ref[:subdir]` (`#v1`, `#v1:dir`, `#:dir`, `#pull/42/head`), the
//!   subdir cleaned as a path below the root;
//! - the query may say `ref`, `tag` (→ `refs/tags/…`), `branch` (→ `refs/heads/…`),
//!   `subdir`, `checksum`/`commit`, `keep-git-dir`, `submodules`; anything else, or two
//!   values that disagree, is an error.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// The transports a git remote may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Ssh,
    Git,
}

impl Scheme {
    fn parse(name: &str) -> Option<Scheme> {
        match name.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "ssh" => Some(Scheme::Ssh),
            "git" => Some(Scheme::Git),
            _ => None,
        }
    }

    /// The scheme's name as it appears in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ssh => "ssh",
            Scheme::Git => "git",
        }
    }
}

/// Where a repository is: the URL given to git, without fragment or query.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    /// What git is given (`https://user:pw@host/repo.git`, `git@host:repo.git`).
    url: String,
    scheme: Scheme,
    /// `host[:port]`.
    host: String,
    /// The user part (ssh user, or http user name).
    user: Option<String>,
    /// Whether the URL carries a password (http basic credentials).
    has_password: bool,
    path: String,
}

impl Remote {
    /// Parses a remote alone; a fragment or query on it is an error (use [`GitRef::parse`]).
    pub fn parse(url: &str) -> Result<Remote> {
        let parts = split(url)?;
        if parts.fragment.is_some() || parts.query.is_some() {
            return Err(Error::InvalidUrl {
                url: redact(url),
                reason: "a remote has no fragment or query".into(),
            });
        }
        Ok(parts.remote)
    }

    /// The URL git fetches from (credentials included: never print it, see
    /// [`Remote::redacted`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host[:port]` (empty only for a malformed URL git will refuse).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path on the host (`/moby/buildkit.git`, or `moby/buildkit.git` in scp style).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL with any http credentials masked as BuildKit masks them
    /// (`https://xxxxx:xxxxx@host/repo.git`); ssh users are not secrets and stay.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// Whether the URL itself carries http credentials.
    pub fn has_credentials(&self) -> bool {
        self.has_password || (self.user.is_some() && self.is_http())
    }

    /// Whether git reaches it over http(s).
    pub fn is_http(&self) -> bool {
        matches!(self.scheme, Scheme::Http | Scheme::Https)
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Remote").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Remote {
    /// The redacted URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A remote and what to check out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    pub remote: Remote,
    /// A branch, tag, full ref (`refs/tags/v1`, `pull/42/head`) or commit SHA; `None` for the
    /// remote's default branch.
    pub reference: Option<String>,
    /// A directory of the checkout to use instead of its root, relative and cleaned.
    pub subdir: Option<String>,
    /// The commit (or tag object) the ref must resolve to: a hex SHA or a prefix of one.
    pub checksum: Option<String>,
    /// `?keep-git-dir=`: whether the checkout keeps its `.git`.
    pub keep_git_dir: Option<bool>,
    /// `?submodules=`: whether submodules are checked out (default: yes).
    pub submodules: Option<bool>,
    /// The repository's directory name (`buildkit` for `…/moby/buildkit.git`).
    pub short_name: String,
    /// `http://` and `git://` remotes: reached without encryption.
    pub unencrypted_tcp: bool,
    /// `github.com/owner/repo`, which reads like a local path: accepted for build contexts
    /// only.
    pub indistinguishable_from_local: bool,
}

impl GitRef {
    /// Parses a git URL with its fragment and query. [`Error::NotGit`] says the string is
    /// no git URL at all; other errors say it is one, written wrong.
    pub fn parse(text: &str) -> Result<GitRef> {
        let not_git = |reason: &str| Error::NotGit {
            url: redact(text),
            reason: reason.to_owned(),
        };
        if text.starts_with("./") || text.starts_with("../") {
            return Err(not_git("a relative path"));
        }
        let indistinguishable = text.starts_with("github.com/");
        let parts = if indistinguishable {
            split(&format!("https://{text}"))?
        } else {
            match split(text) {
                Ok(parts) => parts,
                Err(Error::NotGit { reason, .. }) => return Err(not_git(&reason)),
                Err(e) => return Err(e),
            }
        };
        let remote = parts.remote;
        if !indistinguishable && remote.is_http() && !remote.path.ends_with(".git") {
            return Err(not_git("an http(s) URL whose path does not end in .git"));
        }
        let (reference, subdir) = match parts.fragment.as_deref() {
            None | Some("") => (None, None),
            Some(fragment) => {
                let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
                (non_empty(reference), non_empty(&clean_subdir(subdir)))
            }
        };
        let shown = if indistinguishable {
            text.split(['?', '#']).next().unwrap_or(text)
        } else {
            remote.url.as_str()
        };
        let short_name = shown
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".git")
            .to_owned();
        let mut git_ref = GitRef {
            unencrypted_tcp: matches!(remote.scheme, Scheme::Http | Scheme::Git)
                && !indistinguishable,
            remote,
            reference,
            subdir,
            checksum: None,
            keep_git_dir: None,
            submodules: None,
            short_name,
            indistinguishable_from_local: indistinguishable,
        };
        if let Some(query) = parts.query.as_deref() {
            git_ref
                .load_query(query)
                .map_err(|reason| Error::InvalidUrl {
                    url: redact(text),
                    reason,
                })?;
        }
        Ok(git_ref)
    }

    /// A ref made of a remote and the ref and subdir given apart (as a graph's git source
    /// holds them); those given override any the remote's own fragment or query named.
    pub fn from_parts(remote: &str, reference: Option<&str>, subdir: Option<&str>) -> Result<Self> {
        let mut git_ref = GitRef::parse(remote)?;
        if let Some(reference) = reference.and_then(non_empty) {
            git_ref.reference = Some(reference);
        }
        if let Some(subdir) = subdir.map(clean_subdir).as_deref().and_then(non_empty) {
            git_ref.subdir = Some(subdir);
        }
        Ok(git_ref)
    }

    /// BuildKit's `loadQuery`: the query's options, checked against the fragment's.
    fn load_query(&mut self, query: &str) -> std::result::Result<(), String> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            values
                .entry(unescape_query(key))
                .or_default()
                .push(unescape_query(value));
        }
        let (mut tag, mut branch) = (None, None);
        for (key, list) in &values {
            if list.len() > 1 {
                return Err(format!("query {key:?} has multiple values"));
            }
            let value = list.first().map(String::as_str).unwrap_or_default();
            let flag = |name: &str| -> std::result::Result<Option<bool>, String> {
                match value {
                    "" => Ok(Some(true)),
                    v => parse_go_bool(v)
                        .map(Some)
                        .ok_or_else(|| format!("invalid {name} value: {v:?}")),
                }
            };
            if value.is_empty() && !matches!(key.as_str(), "submodules" | "keep-git-dir") {
                return Err(format!("query {key:?} has no value"));
            }
            match key.as_str() {
                "ref" => {
                    if let Some(r) = self.reference.as_deref().filter(|r| *r != value) {
                        return Err(format!("ref conflicts: {r:?} vs {value:?}"));
                    }
                    self.reference = Some(value.to_owned());
                }
                "tag" => tag = Some(value.to_owned()),
                "branch" => branch = Some(value.to_owned()),
                "subdir" => {
                    if let Some(s) = self.subdir.as_deref().filter(|s| *s != value) {
                        return Err(format!("subdir conflicts: {s:?} vs {value:?}"));
                    }
                    self.subdir = Some(value.to_owned());
                }
                "checksum" | "commit" => self.checksum = Some(value.to_owned()),
                "keep-git-dir" => self.keep_git_dir = flag("keep-git-dir")?,
                "submodules" => self.submodules = flag("submodules")?,
                other => return Err(format!("unexpected query {other:?}")),
            }
        }
        if let Some(tag) = &tag {
            self.set_qualified_ref("refs/tags/", tag)?;
        }
        if let Some(branch) = &branch {
            if tag.is_some() {
                return Err("branch conflicts with tag".into());
            }
            self.set_qualified_ref("refs/heads/", branch)?;
        }
        Ok(())
    }

    fn set_qualified_ref(&mut self, prefix: &str, name: &str) -> std::result::Result<(), String> {
        let full = if name.starts_with(prefix) {
            name.to_owned()
        } else {
            format!("{prefix}{name}")
        };
        if let Some(r) = self.reference.as_deref().filter(|r| *r != full) {
            return Err(format!("ref conflicts: {r:?} vs {full:?}"));
        }
        self.reference = Some(full);
        Ok(())
    }
}

/// Whether `text` names a git repository as a build context (buildx's and BuildKit's
/// rule: whatever [`GitRef::parse`] takes for a git URL, even one whose query is wrong —
/// that is an error to report, not a local path). `https://host/repo` without `.git` is
/// not one (it is an http context); `github.com/owner/repo` is.
pub fn is_git_url(text: &str) -> bool {
    !matches!(GitRef::parse(text), Err(Error::NotGit { .. }))
}

/// Whether `text` is a full commit SHA (40 hex digits for SHA-1, 64 for SHA-256, lowercase).
pub fn is_commit_sha(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A URL split into its remote, query and fragment.
struct Parts {
    remote: Remote,
    query: Option<String>,
    fragment: Option<String>,
}

/// BuildKit's `ParseURL`: a `scheme://` URL or an scp-style `user@host:path`.
fn split(text: &str) -> Result<Parts> {
    if let Some(scheme_name) = scheme_prefix(text) {
        let Some(scheme) = Scheme::parse(scheme_name) else {
            return Err(Error::NotGit {
                url: redact(text),
                reason: format!("invalid protocol {:?}", scheme_name.to_ascii_lowercase()),
            });
        };
        let rest = &text[scheme_name.len() + 3..];
        let (rest, fragment) = cut(rest, '#');
        let (rest, query) = cut(rest, '?');
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, has_password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, _)) => (Some(user.to_owned()), true),
                None => (Some(info.to_owned()), false),
            },
            None => (None, false),
        };
        let url = match userinfo {
            Some(info) => format!("{}://{info}@{host}{path}", scheme.as_str()),
            None => format!("{}://{host}{path}", scheme.as_str()),
        };
        return Ok(Parts {
            remote: Remote {
                url,
                scheme,
                host: host.to_owned(),
                user,
                has_password,
                path: path.to_owned(),
            },
            query: query.map(str::to_owned),
            fragment: fragment.map(str::to_owned),
        });
    }
    if let Some((user, host, rest)) = scp_style(text) {
        // The path ends at the first `?` or `#`; a `#` ends the query too.
        let (rest, fragment) = cut(rest, '#');
        let (path, query) = cut(rest, '?');
        return Ok(Parts {
            remote: Remote {
                url: format!("{user}@{host}:{path}"),
                scheme: Scheme::Ssh,
                host: host.to_owned(),
                user: Some(user.to_owned()),
                has_password: false,
                path: path.to_owned(),
            },
            query: query.map(str::to_owned),
            fragment: fragment.map(str::to_owned),
        });
    }
    Err(Error::NotGit {
        url: redact(text),
        reason: "unknown protocol".into(),
    })
}

/// The scheme of a `scheme://` prefix (letters and digits only), as written.
fn scheme_prefix(text: &str) -> Option<&str> {
    let end = text.find("://")?;
    let name = &text[..end];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(name)
}

/// `user@host:rest` with BuildKit's character classes (user `[A-Za-z0-9_-]+`, host
/// `[A-Za-z0-9.-]+`).
fn scp_style(text: &str) -> Option<(&str, &str, &str)> {
    let (user, after) = text.split_once('@')?;
    let (host, rest) = after.split_once(':')?;
    let user_ok = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (user_ok && host_ok).then_some((user, host, rest))
}

/// `text` before the first `sep`, and what follows it (if `sep` occurs).
fn cut(text: &str, sep: char) -> (&str, Option<&str>) {
    match text.split_once(sep) {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A fragment's subdir as BuildKit keeps it: cleaned as a path under `/`, without the
/// leading slash (`./a/../b/` → `b`, `..` → ``).
fn clean_subdir(subdir: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in subdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A query key or value decoded as Go's `url.QueryUnescape` does (`+` is a space); bytes
/// that do not decode stay as written.
fn unescape_query(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `text` with the credentials of any `scheme://user:password@` URL in it masked as
/// BuildKit's `RedactCredentials` does; ssh users are kept.
pub(crate) fn redact(text: &str) -> String {
    let Some(scheme_name) = scheme_prefix(text) else {
        return text.to_owned();
    };
    if matches!(Scheme::parse(scheme_name), Some(Scheme::Ssh | Scheme::Git)) {
        return text.to_owned();
    }
    let start = scheme_name.len() + 3;
    let rest = &text[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    let info = &rest[..at];
    let masked = match info.split_once(':') {
        Some(("", _)) => ":xxxxx".to_owned(),
        Some(_) => "xxxxx:xxxxx".to_owned(),
        None if info.is_empty() => String::new(),
        None => "xxxxx".to_owned(),
    };
    format!("{}{masked}{}", &text[..start], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, remote, ref, subdir)` for URLs that parse, from BuildKit's `ParseGitRef`
    /// and `ParseURL` tables.
    const PARSED: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        (
            "https://example.com/foo.git",
            "https://example.com/foo.git",
            None,
            None,
        ),
        (
            "https://example.com/foo.git#deadbeef",
            "https://example.com/foo.git",
            Some("deadbeef"),
            None,
        ),
        (
            "https://example.com/foo.git#release/1.2",
            "https://example.com/foo.git",
            Some("release/1.2"),
            None,
        ),
        ("git://example.com/foo", "git://example.com/foo", None, None),
        (
            "github.com/moby/buildkit#master",
            "https://github.com/moby/buildkit",
            Some("master"),
            None,
        ),
        (
            "https://foo:bar@github.com/moby/buildkit.git",
            "https://foo:bar@github.com/moby/buildkit.git",
            None,
            None,
        ),
        (
            "git@github.com:moby/buildkit",
            "git@github.com:moby/buildkit",
            None,
            None,
        ),
        (
            "git@bitbucket.org:atlassianlabs/atlassian-docker.git",
            "git@bitbucket.org:atlassianlabs/atlassian-docker.git",
            None,
            None,
        ),
        (
            "https://github.com/foo/bar.git#baz/qux:quux/quuz",
            "https://github.com/foo/bar.git",
            Some("baz/qux"),
            Some("quux/quuz"),
        ),
        (
            "https://github.com/docker/docker.git#:myfolder",
            "https://github.com/docker/docker.git",
            None,
            Some("myfolder"),
        ),
        (
            "https://github.com/docker/docker.git#:./a/../b/",
            "https://github.com/docker/docker.git",
            None,
            Some("b"),
        ),
        (
            "https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir",
            "https://github.com/docker/docker.git",
            Some("v1.0.0"),
            Some("/subdir"),
        ),
        (
            "https://github.com/moby/buildkit.git?subdir=/subdir#v1.0.0",
            "https://github.com/moby/buildkit.git",
            Some("v1.0.0"),
            Some("/subdir"),
        ),
        (
            "https://github.com/moby/buildkit.git?tag=v1.0.0",
            "https://github.com/moby/buildkit.git",
            Some("refs/tags/v1.0.0"),
            None,
        ),
        (
            "https://github.com/moby/buildkit.git?branch=v1.0",
            "https://github.com/moby/buildkit.git",
            Some("refs/heads/v1.0"),
            None,
        ),
        (
            "git@github.com:moby/buildkit.git?subdir=/subdir#v1.0.0",
            "git@github.com:moby/buildkit.git",
            Some("v1.0.0"),
            Some("/subdir"),
        ),
        (
            "https://host/r.git#refs/tags/v1",
            "https://host/r.git",
            Some("refs/tags/v1"),
            None,
        ),
        (
            "https://host/r.git#pull/42/head",
            "https://host/r.git",
            Some("pull/42/head"),
            None,
        ),
        (
            "ssh://git@github.com:22/moby/buildkit.git#v1:hack",
            "ssh://git@github.com:22/moby/buildkit.git",
            Some("v1"),
            Some("hack"),
        ),
        (
            "nonstandarduser@example.com:/srv/repos/weird/project.git",
            "nonstandarduser@example.com:/srv/repos/weird/project.git",
            None,
            None,
        ),
        (
            "ssh://someuser@192.168.0.123:456/~/repo-in-my-home-dir.git",
            "ssh://someuser@192.168.0.123:456/~/repo-in-my-home-dir.git",
            None,
            None,
        ),
        (
            "HTTP://github.com/moby/buildkit.git",
            "http://github.com/moby/buildkit.git",
            None,
            None,
        ),
    ];

    #[test]
    fn buildkit_git_refs_parse() {
        for (input, remote, reference, subdir) in PARSED {
            let parsed = GitRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.remote.url(), *remote, "{input}");
            assert_eq!(parsed.reference.as_deref(), *reference, "{input}");
            assert_eq!(parsed.subdir.as_deref(), *subdir, "{input}");
            assert!(is_git_url(input), "{input}");
        }
    }

    #[test]
    fn remotes_have_scheme_host_and_path() {
        let r = GitRef::parse("ssh://root@sub.example:2222/root/foo.git").unwrap();
        assert_eq!(
            (r.remote.scheme(), r.remote.host(), r.remote.path()),
            (Scheme::Ssh, "sub.example:2222", "/root/foo.git")
        );
        let r = GitRef::parse("git@github.com:moby/buildkit.git").unwrap();
        assert_eq!(
            (r.remote.scheme(), r.remote.host(), r.remote.path()),
            (Scheme::Ssh, "github.com", "moby/buildkit.git")
        );
        assert_eq!(r.short_name, "buildkit");
        let r = GitRef::parse("git://host.xz:1234/path/to/repo.git").unwrap();
        assert_eq!(
            (r.remote.scheme(), r.remote.host()),
            (Scheme::Git, "host.xz:1234")
        );
        assert!(r.unencrypted_tcp);
        let r = GitRef::parse("github.com/moby/buildkit").unwrap();
        assert!(r.indistinguishable_from_local);
        assert_eq!(
            (r.short_name.as_str(), r.remote.host()),
            ("buildkit", "github.com")
        );
    }

    #[test]
    fn non_git_strings_are_not_git() {
        for input in [
            "https://example.com/",
            "https://example.com/foo",
            "https://example.com/foo.git/",
            "https://example.com/foo.git.bar",
            "custom.xyz/moby/buildkit.git",
            "https://github.com/moby/buildkit",
            "http://github.com/docker/docker.git:#branch",
            "./.git",
            ".git",
            "httpx://github.com/moby/buildkit.git",
            "context",
            "/abs/path",
        ] {
            assert!(
                matches!(GitRef::parse(input), Err(Error::NotGit { .. })),
                "{input}: {:?}",
                GitRef::parse(input)
            );
            assert!(!is_git_url(input), "{input}");
        }
    }

    #[test]
    fn query_errors_are_git_urls_written_wrong() {
        for (input, message) in [
            (
                "https://github.com/moby/buildkit.git?ref=v1.0.0#v1.2.3",
                "ref conflicts",
            ),
            (
                "https://github.com/moby/buildkit.git?ref=v1.0.0&tag=v1.2.3",
                "ref conflicts",
            ),
            (
                "https://github.com/moby/buildkit.git?tag=v1.0.0&branch=v1.0",
                "branch conflicts with tag",
            ),
            (
                "https://github.com/moby/buildkit.git?invalid=123",
                "unexpected query \"invalid\"",
            ),
            (
                "https://github.com/moby/buildkit.git?keep-git-dir=maybe",
                "invalid keep-git-dir value",
            ),
            (
                "https://github.com/moby/buildkit.git?ref=a&ref=b",
                "multiple values",
            ),
        ] {
            let err = GitRef::parse(input).unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{input}: {err}");
            assert!(err.to_string().contains(message), "{input}: {err}");
            assert!(is_git_url(input), "{input}");
        }
    }

    #[test]
    fn query_flags() {
        let r =
            GitRef::parse("https://h/r.git?keep-git-dir&submodules=false&checksum=abc").unwrap();
        assert_eq!(
            (r.keep_git_dir, r.submodules, r.checksum.as_deref()),
            (Some(true), Some(false), Some("abc"))
        );
    }

    #[test]
    fn from_parts_overrides_the_fragment() {
        let r = GitRef::from_parts("https://h/r.git#main:a", Some("v1"), Some("/b/")).unwrap();
        assert_eq!(
            (r.reference.as_deref(), r.subdir.as_deref()),
            (Some("v1"), Some("b"))
        );
        let r = GitRef::from_parts("https://h/r.git", None, None).unwrap();
        assert_eq!((r.reference, r.subdir), (None, None));
    }

    #[test]
    fn credentials_are_redacted() {
        for (input, shown) in [
            (
                "https://user:pw@host/r.git",
                "https://xxxxx:xxxxx@host/r.git",
            ),
            (
                "https://token@host/r.git#main",
                "https://xxxxx@host/r.git#main",
            ),
            ("https://host/r.git", "https://host/r.git"),
            ("ssh://git@host/r.git", "ssh://git@host/r.git"),
            ("git@host:r.git", "git@host:r.git"),
        ] {
            assert_eq!(redact(input), shown);
        }
        let r = GitRef::parse("https://user:secret@host/r.git").unwrap();
        assert!(!format!("{r:?}").contains("secret"));
        assert!(r.remote.has_credentials());
        let err = GitRef::parse("https://user:secret@host/r?x").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn commit_shas() {
        assert!(is_commit_sha(&"a".repeat(40)));
        assert!(is_commit_sha(&"0".repeat(64)));
        assert!(!is_commit_sha(&"A".repeat(40)));
        assert!(!is_commit_sha("deadbeef"));
    }
}
