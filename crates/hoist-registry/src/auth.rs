//! Authentication: `WWW-Authenticate` challenges (RFC 7235 syntax: several challenges per
//! header, quoted strings with escapes), the Distribution token flow (`GET realm?service=&scope=`
//! with Basic credentials, or the OAuth2 refresh-token `POST` for identity tokens), and a cache
//! of bearer tokens per registry and scope set, kept until shortly before they expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::credentials::Auth;
use crate::error::{RegistryError, Result};
use crate::retry::{is_retryable_status, is_retryable_transport, retry_after, RetryPolicy};

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: send the user name and password on every request.
    Basic {
        /// The protection space, if given.
        realm: Option<String>,
    },
    /// Distribution token auth: get a token from `realm`.
    Bearer {
        /// The token service URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry says the request needs (space-separated scopes).
        scope: Option<String>,
        /// An OAuth error code (`insufficient_scope`, `invalid_token`).
        error: Option<String>,
    },
}

/// A scheme and its parameters (names lowercased), as written in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChallenge {
    /// The auth scheme, lowercased (`bearer`, `basic`).
    pub scheme: String,
    /// The auth-params, names lowercased.
    pub params: BTreeMap<String, String>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Splits a `WWW-Authenticate` value into its challenges.
pub fn parse_raw_challenges(header: &str) -> std::result::Result<Vec<RawChallenge>, String> {
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < chars.len() && is_tchar(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect()
    };
    let mut out: Vec<RawChallenge> = Vec::new();
    loop {
        // Skip empty list elements.
        skip_ws(&mut i);
        while i < chars.len() && chars[i] == ',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= chars.len() {
            break;
        }
        let scheme = token(&mut i);
        if scheme.is_empty() {
            return Err(format!("expected an auth scheme at column {}", i + 1));
        }
        let mut params = BTreeMap::new();
        // A token68 credential form (`Negotiate abc==`) right after the scheme: skip it.
        skip_ws(&mut i);
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || "-._~+/".contains(chars[j])) {
            j += 1;
        }
        if j > i {
            while j < chars.len() && chars[j] == '=' {
                j += 1;
            }
            let mut k = j;
            while k < chars.len() && (chars[k] == ' ' || chars[k] == '\t') {
                k += 1;
            }
            if k >= chars.len() || chars[k] == ',' {
                let token68: String = chars[i..j].iter().collect();
                // A lone token with no '=' is the next challenge's scheme, not a token68.
                if token68.contains('=') || k >= chars.len() {
                    i = k;
                    out.push(RawChallenge {
                        scheme: scheme.to_ascii_lowercase(),
                        params,
                    });
                    continue;
                }
            }
        }
        // Parameters: name=value pairs separated by commas, until a token not followed by '='
        // (the next challenge's scheme).
        loop {
            skip_ws(&mut i);
            let save = i;
            let name = token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() || i >= chars.len() || chars[i] != '=' {
                // Not a parameter: the next challenge's scheme.
                i = save;
                break;
            }
            i += 1; // '='
            skip_ws(&mut i);
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated quoted value for {name}")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let Some(c) = chars.get(i + 1) else {
                                return Err(format!("unterminated quoted value for {name}"));
                            };
                            v.push(*c);
                            i += 2;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                v
            } else {
                // Strictly a token; servers also send bare URLs, so read up to a separator.
                let start = i;
                while i < chars.len() && !matches!(chars[i], ',' | ' ' | '\t' | '"') {
                    i += 1;
                }
                chars[start..i].iter().collect()
            };
            params.insert(name.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < chars.len() && chars[i] == ',' {
                i += 1;
                continue;
            }
            if i < chars.len() {
                return Err(format!("unexpected {:?} at column {}", chars[i], i + 1));
            }
            break;
        }
        out.push(RawChallenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    Ok(out)
}

/// The challenges of a `WWW-Authenticate` header we can answer (Bearer and Basic), in the
/// order given. `registry` is only used in errors.
pub fn parse_challenges(registry: &str, header: &str) -> Result<Vec<Challenge>> {
    let bad = |message: String| RegistryError::BadChallenge {
        registry: registry.to_owned(),
        header: header.to_owned(),
        message,
    };
    let raw = parse_raw_challenges(header).map_err(bad)?;
    let mut out = Vec::new();
    for mut c in raw {
        match c.scheme.as_str() {
            "bearer" => {
                let realm = c
                    .params
                    .remove("realm")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| bad("bearer challenge without realm".to_owned()))?;
                out.push(Challenge::Bearer {
                    realm,
                    service: c.params.remove("service"),
                    scope: c.params.remove("scope"),
                    error: c.params.remove("error"),
                });
            }
            "basic" => out.push(Challenge::Basic {
                realm: c.params.remove("realm"),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The scope string for `repository` with push access or pull only.
pub fn repository_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

/// What the token service answers.
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Tokens are assumed to live this long when the service does not say (the spec's minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    renew_at: Instant,
}

/// Bearer tokens per (registry, sorted scope set), reused until shortly before they expire.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
}

impl TokenCache {
    fn key(registry: &str, scopes: &BTreeSet<String>) -> (String, String) {
        let joined = scopes.iter().cloned().collect::<Vec<_>>().join(" ");
        (registry.to_owned(), joined)
    }

    /// A cached, still valid token for these scopes.
    pub fn get(&self, registry: &str, scopes: &BTreeSet<String>) -> Option<String> {
        let key = Self::key(registry, scopes);
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(&key)
            .filter(|t| Instant::now() < t.renew_at)
            .map(|t| t.token.clone())
    }

    /// Remembers a token valid for `lifetime`.
    pub fn put(
        &self,
        registry: &str,
        scopes: &BTreeSet<String>,
        token: String,
        lifetime: Duration,
    ) {
        // Renew a little early so a token never expires between check and use.
        let margin = (lifetime / 10)
            .max(Duration::from_secs(5))
            .min(lifetime / 2);
        let renew_at = Instant::now() + lifetime - margin;
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.insert(Self::key(registry, scopes), CachedToken { token, renew_at });
    }

    /// Forgets a token the registry refused.
    pub fn forget(&self, registry: &str, scopes: &BTreeSet<String>) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.remove(&Self::key(registry, scopes));
    }
}

/// What a token request needs besides the HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The registry host (for errors and the OAuth `client_id` context).
    pub registry: &'a str,
    /// The token service URL.
    pub realm: &'a str,
    /// The `service` parameter.
    pub service: Option<&'a str>,
    /// Scopes asked for; may be empty (a login check).
    pub scopes: &'a BTreeSet<String>,
    /// Credentials to present, if any.
    pub auth: Option<&'a Auth>,
    /// How transient failures of the token service are retried.
    pub retry: &'a RetryPolicy,
}

/// Gets a bearer token and its lifetime from a token service.
pub async fn fetch_token(
    http: &reqwest::Client,
    req: TokenRequest<'_>,
) -> Result<(String, Duration)> {
    let scope_text = req.scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let fail = |message: String| RegistryError::Token {
        registry: req.registry.to_owned(),
        realm: req.realm.to_owned(),
        scope: scope_text.clone(),
        message,
    };
    let mut url = url::Url::parse(req.realm).map_err(|err| fail(format!("bad realm: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("realm is not an http(s) URL".to_owned()));
    }
    let request = match req.auth {
        Some(Auth::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, as docker does for identity tokens.
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", "hoist"),
            ];
            if let Some(service) = req.service {
                form.push(("service", service));
            }
            let scope_joined = scope_text.as_str();
            if !scope_joined.is_empty() {
                form.push(("scope", scope_joined));
            }
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            http.post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        }
        other => {
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = req.service {
                    query.append_pair("service", service);
                }
                for scope in req.scopes {
                    query.append_pair("scope", scope);
                }
                // Older token services key the grant on `account`, as docker sends it.
                if let Some(Auth::Basic { username, .. }) = other {
                    query.append_pair("account", username);
                }
            }
            let mut builder = http.get(url.clone());
            match other {
                Some(Auth::Basic { username, password }) => {
                    builder = builder.basic_auth(username, Some(password));
                }
                Some(Auth::BearerToken(token)) => {
                    builder = builder.bearer_auth(token);
                }
                _ => {}
            }
            builder
        }
    };
    // Token services fail transiently like registries do: same retry rules.
    let mut attempts = req.retry.attempts();
    let (status, body) = loop {
        let can_retry = attempts.can_retry();
        let this = request
            .try_clone()
            .ok_or_else(|| fail("the token request cannot be repeated".to_owned()))?;
        match this.send().await {
            Err(err) if can_retry && is_retryable_transport(&err) => attempts.wait(None).await,
            Err(err) => return Err(fail(format!("request failed: {err}"))),
            Ok(resp) if can_retry && is_retryable_status(resp.status()) => {
                let asked = retry_after(resp.headers());
                drop(resp);
                attempts.wait(asked).await;
            }
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Ok(body) => break (status, body),
                    Err(err) if can_retry => {
                        drop(err);
                        attempts.wait(None).await;
                    }
                    Err(err) => return Err(fail(format!("reading the answer failed: {err}"))),
                }
            }
        }
    };
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            registry: req.registry.to_owned(),
            what: format!("token for {scope_text:?}"),
            message: format!(
                "token service {} answered {status}{}",
                req.realm,
                if req.auth.is_none() {
                    " (no credentials were given)"
                } else {
                    ""
                }
            ),
        });
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        return Err(fail(format!("answered {status}: {}", text.trim())));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|err| fail(format!("unreadable token answer: {err}")))?;
    let token = if parsed.token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if token.is_empty() {
        return Err(fail("the answer holds no token".to_owned()));
    }
    let lifetime = parsed
        .expires_in
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let got = parse_challenges(
            "registry-1.docker.io",
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(
            got,
            [Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
                error: None,
            }]
        );
    }

    #[test]
    fn parses_several_challenges_escapes_and_case() {
        let got = parse_raw_challenges(
            r#"Negotiate abc==, BASIC Realm="a \"quoted\" realm" , Bearer realm=https://t/x,scope="a b",error=insufficient_scope"#,
        )
        .unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].scheme, "negotiate");
        assert_eq!(got[1].scheme, "basic");
        assert_eq!(got[1].params["realm"], r#"a "quoted" realm"#);
        assert_eq!(got[2].params["realm"], "https://t/x");
        assert_eq!(got[2].params["scope"], "a b");
        assert_eq!(got[2].params["error"], "insufficient_scope");
        let typed = parse_challenges("r", r#"Basic realm="x", Bearer realm="https://t""#).unwrap();
        assert_eq!(typed.len(), 2);
    }

    #[test]
    fn rejects_broken_challenges() {
        for header in [
            r#"Bearer realm="unterminated"#,
            r#"Bearer service="x""#,
            r#"Bearer realm="a" junk"#,
        ] {
            let err = parse_challenges("reg.example", header)
                .unwrap_err()
                .to_string();
            assert!(err.contains("reg.example"), "{err}");
        }
    }

    #[test]
    fn token_cache_expires_and_forgets() {
        let cache = TokenCache::default();
        let scopes: BTreeSet<String> = [repository_scope("a/b", false)].into();
        cache.put("r", &scopes, "t1".into(), Duration::from_secs(300));
        assert_eq!(cache.get("r", &scopes).as_deref(), Some("t1"));
        let other: BTreeSet<String> = [repository_scope("a/b", true)].into();
        assert_eq!(cache.get("r", &other), None);
        cache.forget("r", &scopes);
        assert_eq!(cache.get("r", &scopes), None);
        cache.put("r", &scopes, "t2".into(), Duration::from_secs(0));
        assert_eq!(cache.get("r", &scopes), None);
    }
}
