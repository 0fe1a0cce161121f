//! Credentials: the docker CLI's `config.json` (found through `$DOCKER_CONFIG` or
//! `~/.docker`), its `auths` (base64 `user:password` in `auth`, or `identitytoken` /
//! `registrytoken`), `credsStore` and `credHelpers` (the `docker-credential-<helper>` programs,
//! spoken to over stdin/stdout), and explicit per-host overrides.
//!
//! [`Credentials`] is what a [`crate::RegistryClient`] asks; [`DockerConfigFile`] reads and
//! writes the file itself, keeping every key it does not know, so `hoist login` and
//! `docker login` can share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt as _;

use crate::error::{RegistryError, Result};

/// The key Docker Hub credentials are stored under in `config.json`.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// What to present to one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// A user name and password (or personal access token): HTTP Basic, or sent to the token
    /// service with Basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken(String),
    /// A bearer token presented as it is (`registrytoken`).
    BearerToken(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Auth::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Auth::BearerToken(_) => f.write_str("BearerToken(<redacted>)"),
        }
    }
}

/// Credentials asked of someone else, host by host, when a request needs them (a build
/// daemon asking its client's session, as BuildKit's auth provider does); `None` when that
/// party has none for the host. Implementations remember their answers.
pub trait CredentialSource: Send + Sync {
    fn credentials<'a>(
        &'a self,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Auth>> + Send + 'a>>;
}

/// A [`CredentialSource`] held by [`Credentials`].
#[derive(Clone)]
struct Source(std::sync::Arc<dyn CredentialSource>);

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSource")
    }
}

/// Where a client finds credentials for a registry host: explicit overrides first, then a
/// [`CredentialSource`] if one is set, then the docker config file (if any).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    overrides: BTreeMap<String, Auth>,
    source: Option<Source>,
    docker_config: Option<PathBuf>,
}

impl Credentials {
    /// No credentials at all: every request is anonymous (tokens are still fetched anonymously
    /// when a registry asks for them).
    pub fn anonymous() -> Self {
        Credentials::default()
    }

    /// The docker config file at its usual place (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`); anonymous when neither can be located.
    pub fn from_docker_config() -> Self {
        Credentials {
            overrides: BTreeMap::new(),
            source: None,
            docker_config: DockerConfigFile::default_path(),
        }
    }

    /// The docker config file at `path` (which need not exist).
    pub fn from_docker_config_file(path: impl Into<PathBuf>) -> Self {
        Credentials {
            overrides: BTreeMap::new(),
            source: None,
            docker_config: Some(path.into()),
        }
    }

    /// Uses `auth` for `host`, whatever the config file says.
    pub fn with(mut self, host: &str, auth: Auth) -> Self {
        self.overrides.insert(host.to_owned(), auth);
        self
    }

    /// Shorthand for [`Credentials::with`] and [`Auth::Basic`].
    pub fn with_basic(self, host: &str, username: &str, password: &str) -> Self {
        self.with(
            host,
            Auth::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )
    }

    /// Asks `source` for a host's credentials (when it is not overridden) before the
    /// docker config is read.
    pub fn with_source(mut self, source: std::sync::Arc<dyn CredentialSource>) -> Self {
        self.source = Some(Source(source));
        self
    }

    /// The docker config file consulted, if any.
    pub fn docker_config_path(&self) -> Option<&Path> {
        self.docker_config.as_deref()
    }

    /// The credentials for `host` (as written in references: `docker.io`, `host:port`), or
    /// `None` for anonymous access. Runs a credential helper when the config names one.
    pub async fn lookup(&self, host: &str) -> Result<Option<Auth>> {
        if let Some(auth) = self.overrides.get(host) {
            return Ok(Some(auth.clone()));
        }
        if let Some(Source(source)) = &self.source {
            if let Some(auth) = source.credentials(host).await {
                return Ok(Some(auth));
            }
        }
        let Some(path) = &self.docker_config else {
            return Ok(None);
        };
        let file = DockerConfigFile::load(path)?;
        if let Some(helper) = file.helper_for(host) {
            return helper_get(&helper, host).await;
        }
        file.auth_for(host)
    }
}

/// The key a host's credentials live under in `config.json` and are asked of helpers by.
pub fn config_key(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB_CONFIG_KEY.to_owned()
    } else {
        host.to_owned()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | DOCKER_HUB_CONFIG_KEY
    )
}

/// `https://host/v1/` → `host`, as docker normalises `auths` keys.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The docker CLI config file, kept as JSON so unknown keys survive a rewrite.
#[derive(Debug, Clone)]
pub struct DockerConfigFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfigFile {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        Self::path_from(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
    }

    /// [`DockerConfigFile::default_path`] from the values of `DOCKER_CONFIG` and `HOME`.
    pub fn path_from(
        docker_config: Option<std::ffi::OsString>,
        home: Option<std::ffi::OsString>,
    ) -> Option<PathBuf> {
        if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        let home = home.filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Reads the file; a missing file reads as empty.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(RegistryError::DockerConfigIo {
                    action: "read",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let doc = if text.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(RegistryError::DockerConfigInvalid {
                        path: path.to_owned(),
                        message: "not a JSON object".to_owned(),
                    })
                }
                Err(err) => {
                    return Err(RegistryError::DockerConfigInvalid {
                        path: path.to_owned(),
                        message: err.to_string(),
                    })
                }
            }
        };
        Ok(DockerConfigFile {
            path: path.to_owned(),
            doc,
        })
    }

    /// The file this was read from and is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `host`: its `credHelpers` entry, else `credsStore`.
    pub fn helper_for(&self, host: &str) -> Option<String> {
        let key = config_key(host);
        let helpers = self.doc.get("credHelpers").and_then(Value::as_object);
        if let Some(helpers) = helpers {
            for (k, v) in helpers {
                if (k == &key || key_host(k) == key_host(&key)) && v.as_str().is_some() {
                    return v.as_str().map(str::to_owned);
                }
            }
        }
        self.doc
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The credentials stored inline under `auths` for `host`.
    pub fn auth_for(&self, host: &str) -> Result<Option<Auth>> {
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        let key = config_key(host);
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == key_host(&key))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry.and_then(Value::as_object) else {
            return Ok(None);
        };
        let invalid = |message: String| RegistryError::DockerConfigInvalid {
            path: self.path.clone(),
            message: format!("auths.{key:?}: {message}"),
        };
        let text = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(token) = text("identitytoken") {
            return Ok(Some(Auth::IdentityToken(token.to_owned())));
        }
        if let Some(token) = text("registrytoken") {
            return Ok(Some(Auth::BearerToken(token.to_owned())));
        }
        if let Some(encoded) = text("auth") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|err| invalid(format!("auth is not base64: {err}")))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| invalid("auth is not UTF-8".to_owned()))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| invalid("auth is not user:password".to_owned()))?;
            return Ok(Some(Auth::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        if let (Some(username), Some(password)) = (text("username"), text("password")) {
            return Ok(Some(Auth::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        Ok(None)
    }

    /// Stores `user:password` inline under `auths` for `host` (other fields of the entry kept).
    pub fn set_basic(&mut self, host: &str, username: &str, password: &str) {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.edit_auth_entry(host, |entry| {
            entry.insert("auth".to_owned(), Value::String(encoded));
            entry.remove("identitytoken");
        });
    }

    /// Records that `host` has credentials kept by a helper: an empty `auths` entry, as docker
    /// writes, so nothing secret stays inline.
    pub fn set_in_helper(&mut self, host: &str) {
        self.edit_auth_entry(host, |entry| {
            entry.remove("auth");
            entry.remove("identitytoken");
        });
    }

    /// Runs `edit` on `host`'s `auths` entry, creating it (and `auths`) as objects if needed.
    fn edit_auth_entry(&mut self, host: &str, edit: impl FnOnce(&mut Map<String, Value>)) {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(auths) = auths {
            let entry = auths
                .entry(config_key(host))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(entry) = entry {
                edit(entry);
            }
        }
    }

    /// Removes `host`'s `auths` entries; whether there was one.
    pub fn remove(&mut self, host: &str) -> bool {
        let key = config_key(host);
        let Some(Value::Object(auths)) = self.doc.get_mut("auths") else {
            return false;
        };
        let before = auths.len();
        auths.retain(|k, _| k != &key && key_host(k) != key_host(&key));
        auths.len() != before
    }

    /// Writes the file back atomically (temp file + rename, mode 0600), creating its folder.
    pub fn save(&self) -> Result<()> {
        let io_err = |source| RegistryError::DockerConfigIo {
            action: "write",
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut text = serde_json::to_string_pretty(&Value::Object(self.doc.clone()))
            .map_err(|err| io_err(std::io::Error::other(err)))?;
        text.push('\n');
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "config.json".to_owned()),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut file = opts.open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            io_err(err)
        })
    }
}

/// What helpers print for `get`.
#[derive(serde::Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; stdout on success.
async fn run_helper(helper: &str, action: &'static str, host: &str, input: &str) -> Result<String> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| RegistryError::CredentialHelper {
        helper: helper.to_owned(),
        action,
        host: host.to_owned(),
        message,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| fail(format!("cannot run {program}: {err}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|err| fail(format!("cannot write to {program}: {err}")))?;
        // Dropping stdin closes it, so the helper sees the end of its input.
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|err| fail(format!("cannot wait for {program}: {err}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let said = if stdout.is_empty() { stderr } else { stdout };
        Err(fail(format!("{}: {said}", out.status)))
    }
}

/// Asks `docker-credential-<helper> get` for `host`'s credentials; `None` when it has none.
pub async fn helper_get(helper: &str, host: &str) -> Result<Option<Auth>> {
    let key = config_key(host);
    let out = match run_helper(helper, "get", host, &key).await {
        Ok(out) => out,
        // The helpers' agreed way of saying "nothing stored".
        Err(RegistryError::CredentialHelper { message, .. })
            if message.contains("credentials not found") =>
        {
            return Ok(None)
        }
        Err(err) => return Err(err),
    };
    let creds: HelperCredentials =
        serde_json::from_str(&out).map_err(|err| RegistryError::CredentialHelper {
            helper: helper.to_owned(),
            action: "get",
            host: host.to_owned(),
            message: format!("unreadable answer: {err}"),
        })?;
    if creds.secret.is_empty() {
        return Ok(None);
    }
    if creds.username == "<token>" {
        return Ok(Some(Auth::IdentityToken(creds.secret)));
    }
    Ok(Some(Auth::Basic {
        username: creds.username,
        password: creds.secret,
    }))
}

/// Stores credentials for `host` with `docker-credential-<helper> store`.
pub async fn helper_store(helper: &str, host: &str, username: &str, secret: &str) -> Result<()> {
    let input = serde_json::json!({
        "ServerURL": config_key(host),
        "Username": username,
        "Secret": secret,
    })
    .to_string();
    run_helper(helper, "store", host, &input).await.map(drop)
}

/// Removes `host`'s credentials with `docker-credential-<helper> erase`.
pub async fn helper_erase(helper: &str, host: &str) -> Result<()> {
    match run_helper(helper, "erase", host, &config_key(host)).await {
        Err(RegistryError::CredentialHelper { message, .. })
            if message.contains("credentials not found") =>
        {
            Ok(())
        }
        other => other.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_inline_auths_and_hub_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},
                "https://reg.example:5000/v2/":{"auth":"dTpwOndpdGg6Y29sb25z"},
                "tok.example":{"identitytoken":"refresh"}
            }}"#,
        );
        let file = DockerConfigFile::load(&path).unwrap();
        assert_eq!(
            file.auth_for("docker.io").unwrap(),
            Some(Auth::Basic {
                username: "hub".into(),
                password: "secret".into()
            })
        );
        assert_eq!(
            file.auth_for("reg.example:5000").unwrap(),
            Some(Auth::Basic {
                username: "u".into(),
                password: "p:with:colons".into()
            })
        );
        assert_eq!(
            file.auth_for("tok.example").unwrap(),
            Some(Auth::IdentityToken("refresh".into()))
        );
        assert_eq!(file.auth_for("other").unwrap(), None);
    }

    #[test]
    fn bad_auth_names_file_and_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), r#"{"auths":{"r.example":{"auth":"!!!"}}}"#);
        let err = DockerConfigFile::load(&path)
            .unwrap()
            .auth_for("r.example")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("r.example"),
            "{err}"
        );
    }

    #[test]
    fn helpers_take_precedence_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#,
        );
        let file = DockerConfigFile::load(&path).unwrap();
        assert_eq!(file.helper_for("gcr.io").as_deref(), Some("gcloud"));
        assert_eq!(file.helper_for("r.example").as_deref(), Some("desktop"));
    }

    #[test]
    fn rewrite_keeps_unknown_keys_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"{"psFormat":"table","auths":{"keep.example":{"auth":"YTpi"}},"proxies":{"default":{"httpProxy":"x"}}}"#,
        );
        let mut file = DockerConfigFile::load(&path).unwrap();
        file.set_basic("new.example", "me", "pw");
        assert!(file.remove("keep.example"));
        assert!(!file.remove("keep.example"));
        file.save().unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["psFormat"], "table");
        assert_eq!(back["proxies"]["default"]["httpProxy"], "x");
        assert_eq!(back["auths"]["new.example"]["auth"], "bWU6cHc=");
        assert!(back["auths"].get("keep.example").is_none());
        let keys: Vec<_> = back.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["psFormat", "auths", "proxies"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn config_location_follows_docker_config_then_home() {
        let path = |dc: Option<&str>, home: Option<&str>| {
            DockerConfigFile::path_from(dc.map(Into::into), home.map(Into::into))
        };
        assert_eq!(
            path(Some("/etc/dc"), Some("/root")),
            Some(PathBuf::from("/etc/dc/config.json"))
        );
        assert_eq!(
            path(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(path(None, None), None);
    }

    #[test]
    fn missing_file_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = DockerConfigFile::load(&dir.path().join("nope.json")).unwrap();
        assert_eq!(file.auth_for("x").unwrap(), None);
        assert_eq!(file.helper_for("x"), None);
    }
}
