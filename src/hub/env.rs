//! The Hugging Face environment: `HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_CACHE` and
//! `HF_HUB_OFFLINE`, read the way `huggingface_hub` reads them, so that both agree on where the
//! cache is and which account is used.

use std::fmt;
use std::path::PathBuf;

use reqwest::Url;

use super::HubError;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to reach the Hub, and where its cache lives.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `HF_ENDPOINT`, without a trailing slash.
    pub endpoint: Url,
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `$HF_HOME/token`).
    pub token: Option<Token>,
    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`.
    pub cache: PathBuf,
    /// `HF_HUB_OFFLINE`: never touch the network.
    pub offline: bool,
}

/// A Hub token. Its `Debug` form hides the value, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: String,
    source: TokenSource,
}

/// Where the token came from, for messages that must never show the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The `HF_TOKEN` variable.
    Env,
    /// A token file (`HF_TOKEN_PATH`, else `$HF_HOME/token`).
    File(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str("`HF_TOKEN`"),
            Self::File(path) => write!(f, "the token file `{}`", path.display()),
        }
    }
}

impl TokenSource {
    /// A short name for logs: `env` or `token file`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File(_) => "token file",
        }
    }
}

impl Token {
    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where it came from.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }
}

/// `url` as shown in messages and logs: user name and password replaced by `***`.
pub fn redact(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.to_string()
}

/// Like [`redact`], for text that may not even parse as a URL.
fn redact_text(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_owned(),
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Settings {
    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, HubError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Settings from `var`, which looks a variable up by name; empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, HubError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());

        let raw_endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint = Url::parse(raw_endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| HubError::BadEndpoint {
                endpoint: redact_text(&raw_endpoint),
            })?;

        let home = var("HF_HOME").map_or_else(
            || {
                let cache_home = var("XDG_CACHE_HOME").map_or_else(
                    || PathBuf::from(var("HOME").unwrap_or_default()).join(".cache"),
                    PathBuf::from,
                );
                cache_home.join("huggingface")
            },
            PathBuf::from,
        );
        let cache = var("HF_HUB_CACHE").map_or_else(|| home.join("hub"), PathBuf::from);

        let token_file = var("HF_TOKEN_PATH").map_or_else(|| home.join("token"), PathBuf::from);
        let token = var("HF_TOKEN")
            .map(|t| (t, TokenSource::Env))
            .or_else(|| {
                let t = std::fs::read_to_string(&token_file).ok()?;
                Some((t, TokenSource::File(token_file.clone())))
            })
            .map(|(t, source)| (t.trim().to_owned(), source))
            .filter(|(t, _)| !t.is_empty())
            .map(|(value, source)| check_token(value, source))
            .transpose()?;

        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
        });

        Ok(Self {
            endpoint,
            token,
            cache,
            offline,
        })
    }

    /// The endpoint as text, for messages: credentials in it are redacted.
    pub fn endpoint_text(&self) -> String {
        redact(&self.endpoint).trim_end_matches('/').to_owned()
    }
}

/// A token must fit an HTTP header; a pasted newline or control character would otherwise
/// surface as an opaque "builder error" on the first request. The value is never shown.
fn check_token(value: String, source: TokenSource) -> Result<Token, HubError> {
    let fits = !value.chars().any(char::is_control)
        && reqwest::header::HeaderValue::from_str(&format!("Bearer {value}")).is_ok();
    if fits {
        Ok(Token { value, source })
    } else {
        Err(HubError::BadToken {
            from: source.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, HubError> {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_follow_huggingface_hub() {
        let s = settings(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(s.endpoint.as_str(), "https://huggingface.co/");
        assert_eq!(s.cache, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert!(s.token.is_none());
        assert!(!s.offline);
    }

    #[test]
    fn hub_cache_wins_over_hf_home_which_wins_over_xdg() {
        let s = settings(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]).unwrap();
        assert_eq!(s.cache, PathBuf::from("/x/huggingface/hub"));
        let s = settings(&[("HOME", "/h"), ("HF_HOME", "/hf")]).unwrap();
        assert_eq!(s.cache, PathBuf::from("/hf/hub"));
        let s = settings(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]).unwrap();
        assert_eq!(s.cache, PathBuf::from("/c"));
    }

    #[test]
    fn token_comes_from_the_variable_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let s = settings(&[("HF_HOME", home)]).unwrap();
        assert_eq!(s.token.unwrap().expose(), "hf_file");
        let s = settings(&[("HF_HOME", home), ("HF_TOKEN", "hf_var")]).unwrap();
        assert_eq!(s.token.unwrap().expose(), "hf_var");
    }

    #[test]
    fn token_never_shows_in_debug_output() {
        let s = settings(&[("HF_TOKEN", "hf_secret")]).unwrap();
        assert!(!format!("{s:?}").contains("hf_secret"));
    }

    #[test]
    fn a_token_with_a_control_character_is_refused_without_showing_it() {
        let err = settings(&[("HF_TOKEN", "hf_se\x07cret")]).unwrap_err();
        assert!(matches!(err, HubError::BadToken { .. }), "{err}");
        assert!(err.to_string().contains("`HF_TOKEN`"), "{err}");
        assert!(!err.to_string().contains("cret"), "{err}");
    }

    #[test]
    fn credentials_in_the_endpoint_are_redacted_in_messages() {
        let s = settings(&[("HF_ENDPOINT", "http://user:secret@127.0.0.1:8080/")]).unwrap();
        assert_eq!(s.endpoint_text(), "http://***@127.0.0.1:8080");
        let err = settings(&[("HF_ENDPOINT", "ftp://user:secret@host/x")]).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn offline_and_endpoint_values() {
        assert!(settings(&[("HF_HUB_OFFLINE", "1")]).unwrap().offline);
        assert!(settings(&[("HF_HUB_OFFLINE", "true")]).unwrap().offline);
        assert!(!settings(&[("HF_HUB_OFFLINE", "0")]).unwrap().offline);
        let s = settings(&[("HF_ENDPOINT", "http://127.0.0.1:8080/")]).unwrap();
        assert_eq!(s.endpoint_text(), "http://127.0.0.1:8080");
        assert!(matches!(
            settings(&[("HF_ENDPOINT", "huggingface.co")]),
            Err(HubError::BadEndpoint { .. })
        ));
    }
}
