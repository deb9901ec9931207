//! Registry credentials and the authentication handshake.
//!
//! Credentials come from Docker's own configuration (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `credHelpers` for one registry, `credsStore` for all, and inline
//! `auths` entries, so whatever `docker login` set up works unchanged. With no credentials
//! aisupply is anonymous. Secrets are wrapped in [`Secret`], whose `Debug` output is redacted,
//! so they cannot reach a log line by accident.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: Secret,
    },
    /// An OAuth2 refresh token, as `docker login` stores for some registries.
    IdentityToken(Secret),
}

/// Why credentials could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The Docker config exists but cannot be read or parsed.
    #[error("cannot read Docker config `{}`", path.display())]
    DockerConfig {
        /// The config path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A credential helper failed.
    #[error("credential helper `docker-credential-{helper}` failed for `{registry}`: {message}")]
    Helper {
        /// The helper's suffix, such as `ecr-login`.
        helper: String,
        /// The registry asked for.
        registry: String,
        /// What went wrong, without any secret.
        message: String,
    },
}

impl AuthError {
    /// The exact step that fixes the problem.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::DockerConfig { path, .. } => format!(
                "fix `{}` (it must be the JSON `docker login` writes), or point `DOCKER_CONFIG` \
                 at another directory",
                path.display()
            ),
            Self::Helper { helper, .. } => format!(
                "check that `docker-credential-{helper}` is installed and on PATH, or remove it \
                 from Docker's config"
            ),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Where credentials come from: a parsed Docker config.
#[derive(Debug, Default)]
pub struct CredentialStore {
    path: Option<PathBuf>,
    config: DockerConfigFile,
}

impl CredentialStore {
    /// No credentials at all: every request is anonymous.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The Docker config of this user: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`; a missing file means anonymous.
    pub fn from_env() -> Result<Self, AuthError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => return Ok(Self::anonymous()),
            },
        };
        Self::from_file(&dir.join("config.json"))
    }

    /// The Docker config at `path`; a missing file means anonymous.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| AuthError::DockerConfig {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::anonymous()),
            Err(e) => return Err(error(Box::new(e))),
        };
        let config = serde_json::from_str(&text).map_err(|e| error(Box::new(e)))?;
        Ok(Self {
            path: Some(path.to_owned()),
            config,
        })
    }

    /// The credentials for `registry` (as in a reference: `docker.io`, `ghcr.io`,
    /// `localhost:5000`), or `None` for anonymous access.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>, AuthError> {
        let server = server_url(registry);
        let helper = self
            .helper_for(registry)
            .or(self.config.creds_store.as_deref());
        if let Some(helper) = helper
            && let Some(found) = run_helper(helper, registry, &server).await?
        {
            tracing::debug!(
                registry,
                helper,
                "credentials from docker-credential-{helper}"
            );
            return Ok(Some(found));
        }
        let found = self.inline_entry(registry)?;
        let source = if found.is_some() {
            "Docker config `auths`"
        } else {
            "none (anonymous)"
        };
        tracing::debug!(registry, "credentials: {source}");
        Ok(found)
    }

    fn helper_for(&self, registry: &str) -> Option<&str> {
        self.config
            .cred_helpers
            .iter()
            .find(|(key, _)| same_registry(key, registry))
            .map(|(_, helper)| helper.as_str())
    }

    fn inline_entry(&self, registry: &str) -> Result<Option<Credential>, AuthError> {
        let Some((_, entry)) = self
            .config
            .auths
            .iter()
            .find(|(key, _)| same_registry(key, registry))
        else {
            return Ok(None);
        };
        if let Some(token) = &entry.identitytoken {
            return Ok(Some(Credential::IdentityToken(Secret::new(token.clone()))));
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: Secret::new(password.clone()),
            }));
        }
        let Some(encoded) = &entry.auth else {
            return Ok(None);
        };
        let bad_entry = |what: &str| AuthError::DockerConfig {
            path: self.path.clone().unwrap_or_default(),
            source: format!("the `auth` value for `{registry}` {what}").into(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad_entry("is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad_entry("is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad_entry("is not `user:password`"))?;
        Ok(Some(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }))
    }
}

/// The server URL Docker uses as the key for a registry.
fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

/// Whether a Docker config key (a host, or a URL such as `https://index.docker.io/v1/`)
/// names `registry`.
fn same_registry(key: &str, registry: &str) -> bool {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    canonical_host(host) == canonical_host(registry)
}

fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Ask `docker-credential-<helper> get` for `server`'s credentials.
async fn run_helper(
    helper: &str,
    registry: &str,
    server: &str,
) -> Result<Option<Credential>, AuthError> {
    let failed = |message: String| AuthError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run `{program}`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| failed(format!("cannot write to it: {e}")))?;
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| failed("no answer within 30 seconds".to_owned()))?
        .map_err(|e| failed(e.to_string()))?;

    if !output.status.success() {
        // Helpers report a missing entry on stdout with exit code 1; that means anonymous.
        let said = String::from_utf8_lossy(&output.stdout);
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(failed(format!("it exited with {}", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("its answer is not the expected JSON".to_owned()))?;
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(Secret::new(answer.secret))
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    }))
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm=...,service=...,scope=...`: fetch a token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to send back.
        service: Option<String>,
        /// The `scope` parameter, when the registry names one.
        scope: Option<String>,
    },
    /// `Basic realm=...`: send the credentials with every request.
    Basic,
}

impl Challenge {
    /// Parse a `WWW-Authenticate` header value; `None` for schemes we do not speak.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = auth_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope"),
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Self::Basic)
        } else {
            None
        }
    }
}

/// `key=value` and `key="quoted, value"` pairs separated by commas.
fn auth_params(input: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = input.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        let after = &rest[eq + 1..];
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".to_owned(),
                service: Some("registry.docker.io".to_owned()),
                scope: Some("repository:library/ubuntu:pull,push".to_owned()),
            }
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(
            Challenge::parse("Bearer service=x"),
            None,
            "a realm is required"
        );
    }

    #[test]
    fn docker_hub_keys_match_every_alias() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(same_registry("registry-1.docker.io", "docker.io"));
        assert!(same_registry("http://localhost:5000", "localhost:5000"));
        assert!(!same_registry("localhost:5000", "localhost:5001"));
    }

    fn store(json: &str) -> CredentialStore {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        CredentialStore::from_file(&path).unwrap()
    }

    #[tokio::test]
    async fn inline_auth_is_decoded() {
        let store =
            store(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="}}}"#);
        let found = store.lookup("docker.io").await.unwrap().unwrap();
        assert_eq!(
            found,
            Credential::Basic {
                username: "user".to_owned(),
                password: Secret::new("pa:ss")
            }
        );
        assert!(store.lookup("ghcr.io").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn identity_tokens_are_used_as_such() {
        let store = store(r#"{"auths":{"r.example":{"identitytoken":"tok"}}}"#);
        assert_eq!(
            store.lookup("r.example").await.unwrap(),
            Some(Credential::IdentityToken(Secret::new("tok")))
        );
    }

    #[tokio::test]
    async fn a_missing_helper_is_an_error_naming_it() {
        let store = store(r#"{"credHelpers":{"r.example":"nonexistent-aisupply-test"}}"#);
        let err = store.lookup("r.example").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-nonexistent-aisupply-test")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = Credential::Basic {
            username: "u".to_owned(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn broken_auth_values_name_the_file() {
        let s = store(r#"{"auths":{"r.example":{"auth":"!!!"}}}"#);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(s.lookup("r.example")).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
