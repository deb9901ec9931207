//! HTTP to the Hub: the revision listing, `/resolve` metadata and file bodies.
//!
//! Redirects are followed here, not by `reqwest`, because two things depend on each hop: the
//! token is sent only to the Hub's own origin (never to the CDN host a `/resolve` redirect
//! points at), and the `X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit` headers that matter
//! are on the redirect itself. Transient answers are retried with [`RetryPolicy`], which
//! honours `Retry-After`.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, ETAG, HeaderMap, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Deserialize;

use super::HubError;
use super::env::Settings;
use super::env::{Token, redact};
use super::path::{self, encode_path, encode_segment};
use crate::digest::{Algorithm, Digest};
use crate::registry::retry::{RetryPolicy, is_transient_error};

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 5;

/// The largest revision listing accepted.
const MAX_LISTING_BYTES: usize = 64 * 1024 * 1024;

/// What a revision of a repository is: its commit and its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRevision {
    /// The 40-hex commit.
    pub commit: String,
    /// Every file, in the Hub's order.
    pub files: Vec<RemoteFile>,
}

/// One file of a revision listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// The path in the repository, unchecked.
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// The git blob SHA-1 (of the LFS pointer, for an LFS file).
    pub git_sha1: String,
    /// The SHA-256 of an LFS file's content; `None` for a file stored in git itself.
    pub lfs_sha256: Option<Digest>,
}

/// Where a file's bytes are served, learnt from a `HEAD` of its `/resolve` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The URL to fetch the bytes from: a CDN for LFS files, the Hub for the rest.
    pub url: Url,
    /// `X-Linked-Etag`, else `ETag`, without quotes.
    pub etag: Option<String>,
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
}

/// What a request is about, to name it in errors.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// The repository.
    pub repo: &'a str,
    /// The revision or commit.
    pub revision: &'a str,
    /// The file, for file requests.
    pub path: Option<&'a str>,
}

/// A Hub client shared by every request of a command.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    retry: RetryPolicy,
}

/// `X-Error-Code` and friends, as the Hub names them.
pub mod headers {
    /// The commit a `/resolve` answer is from.
    pub const REPO_COMMIT: &str = "x-repo-commit";
    /// The ETag of the LFS object a redirect points at (its SHA-256).
    pub const LINKED_ETAG: &str = "x-linked-etag";
    /// The size of the LFS object a redirect points at.
    pub const LINKED_SIZE: &str = "x-linked-size";
    /// The Hub's machine-readable error.
    pub const ERROR_CODE: &str = "x-error-code";
    /// The Hub's human-readable error.
    pub const ERROR_MESSAGE: &str = "x-error-message";
}

impl Client {
    /// A client for `settings`, retrying as `retry` says.
    pub fn new(settings: Settings, retry: RetryPolicy) -> Result<Self, HubError> {
        // reqwest is built without a bundled crypto provider; the registry client installs ours.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("aisupply/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HubError::Transport {
                url: settings.endpoint_text(),
                source: e,
            })?;
        let token_source = settings
            .token
            .as_ref()
            .map_or("none", |t| t.source().label());
        tracing::debug!(endpoint = %settings.endpoint_text(), token_source, "Hub client");
        Ok(Self {
            http,
            settings,
            retry,
        })
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The retry policy, for downloads that retry a body themselves.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The commit `revision` names and the files it holds, with sizes and hashes.
    pub async fn revision(&self, repo: &str, revision: &str) -> Result<RepoRevision, HubError> {
        path::check_repo(repo)?;
        let url = self.url(&format!(
            "api/models/{repo}/revision/{}?blobs=true",
            encode_segment(revision)
        ));
        let ask = Ask {
            repo,
            revision,
            path: None,
        };
        let response = self.send(Method::GET, &url, None).await?;
        if !response.status().is_success() {
            return Err(self.refusal(ask, &url, &response));
        }
        let bytes = read_limited(&url, response, MAX_LISTING_BYTES).await?;
        parse_listing(&url, &bytes)
    }

    /// The `/resolve` URL of `path` at `commit`.
    pub fn resolve_url(&self, repo: &str, commit: &str, path: &str) -> Url {
        self.url(&format!("{repo}/resolve/{commit}/{}", encode_path(path)))
    }

    /// Where the bytes of `path` at `commit` are served, following the Hub's redirects with
    /// `HEAD` as far as the first host that is not the Hub.
    pub async fn locate(&self, repo: &str, commit: &str, path: &str) -> Result<Located, HubError> {
        let ask = Ask {
            repo,
            revision: commit,
            path: Some(path),
        };
        let mut url = self.resolve_url(repo, commit, path);
        let mut located = Located {
            url: url.clone(),
            etag: None,
            commit: None,
        };
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(Method::HEAD, &url, None).await?;
            let headers = response.headers();
            located.commit = header(headers, headers::REPO_COMMIT).or(located.commit);
            located.etag = header(headers, headers::LINKED_ETAG)
                .or_else(|| header(headers, ETAG.as_str()))
                .map(|e| normalize_etag(&e))
                .or(located.etag);
            if response.status().is_redirection() {
                let next = redirect_target(&url, &response)?;
                located.url = next.clone();
                if !self.is_hub(&next) {
                    return Ok(located);
                }
                url = next;
                continue;
            }
            if !response.status().is_success() {
                return Err(self.refusal(ask, &url, &response));
            }
            located.url = url;
            return Ok(located);
        }
        Err(HubError::BadResponse {
            url: redact(&url),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// `GET` a file's bytes from `url`, from byte `start` to `end` (inclusive) when given.
    /// Redirects are followed; the answer is a success (200 or 206) or an error.
    pub async fn get(
        &self,
        ask: Ask<'_>,
        url: &Url,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Response, HubError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(Method::GET, &url, range).await?;
            if response.status().is_redirection() {
                url = redirect_target(&url, &response)?;
                continue;
            }
            if !response.status().is_success() {
                return Err(self.refusal(ask, &url, &response));
            }
            return Ok(response);
        }
        Err(HubError::BadResponse {
            url: redact(&url),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn url(&self, rest: &str) -> Url {
        let base = self.settings.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{rest}")).expect("an endpoint joined with a checked path")
    }

    /// Whether `url` is on the Hub's own origin, the only one that receives the token.
    fn is_hub(&self, url: &Url) -> bool {
        url.origin() == self.settings.endpoint.origin()
    }

    /// Send one request, retrying transient failures. The token goes only to the Hub.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Response, HubError> {
        let token = self.settings.token.as_ref().filter(|_| self.is_hub(url));
        let mut attempt = 0;
        loop {
            let request = self.request(method.clone(), url, range, token);
            let last = attempt + 1 >= self.retry.attempts;
            match request.send().await {
                Ok(response) if RetryPolicy::is_transient(response.status()) && !last => {
                    let wait = self.retry.delay(attempt, Some(response.headers()));
                    let status = response.status();
                    tracing::debug!(url = %logged(url), %status, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => {
                    tracing::debug!(%method, url = %logged(url), status = %response.status(), "Hub request");
                    return Ok(response);
                }
                Err(error) if is_transient_error(&error) && !last => {
                    let wait = self.retry.delay(attempt, None);
                    let error = error.without_url();
                    tracing::debug!(url = %logged(url), %error, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(source) => {
                    return Err(HubError::Transport {
                        url: redact(url),
                        source: source.without_url(),
                    });
                }
            }
            attempt += 1;
        }
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        range: Option<(u64, Option<u64>)>,
        token: Option<&Token>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, url.clone())
            .header("Accept-Encoding", "identity");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        match range {
            Some((start, Some(end))) => request.header(RANGE, format!("bytes={start}-{end}")),
            Some((start, None)) => request.header(RANGE, format!("bytes={start}-")),
            None => request,
        }
    }

    /// The error an unsuccessful answer means, from its status and `X-Error-Code`.
    fn refusal(&self, ask: Ask<'_>, url: &Url, response: &Response) -> HubError {
        let status = response.status();
        let headers = response.headers();
        let code = header(headers, headers::ERROR_CODE);
        let token_from = (self.settings.token.as_ref())
            .filter(|_| self.is_hub(url))
            .map(|t| t.source().to_string());
        let (repo, endpoint) = (ask.repo.to_owned(), self.settings.endpoint_text());
        match code.as_deref() {
            Some("RepoNotFound") => HubError::RepoNotFound {
                repo,
                endpoint,
                token_from: token_from.clone(),
            },
            Some("RevisionNotFound") => HubError::RevisionNotFound {
                repo,
                revision: ask.revision.to_owned(),
            },
            Some("EntryNotFound") => HubError::EntryNotFound {
                repo,
                commit: ask.revision.to_owned(),
                path: ask.path.unwrap_or_default().to_owned(),
            },
            Some("GatedRepo") => HubError::Gated {
                repo,
                endpoint,
                status,
                token_from: token_from.clone(),
            },
            _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
                HubError::Unauthorized {
                    repo,
                    status,
                    token_from: token_from.clone(),
                }
            }
            _ => {
                let message = header(headers, headers::ERROR_MESSAGE);
                let detail = match (code, message) {
                    (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                    (c, m) => c.or(m),
                };
                HubError::Status {
                    url: redact(url),
                    status,
                    detail,
                }
            }
        }
    }
}

/// A header's value as text.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// `Content-Length` of an answer.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, CONTENT_LENGTH.as_str())?.parse().ok()
}

/// An ETag without its weak marker and quotes.
fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned()
}

fn redirect_target(from: &Url, response: &Response) -> Result<Url, HubError> {
    let bad = |message: &str| HubError::BadResponse {
        url: redact(from),
        message: message.to_owned(),
    };
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("a redirect without a `Location`"))?;
    let next = from
        .join(location)
        .map_err(|_| bad("a redirect to a malformed `Location`"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(bad("a redirect to a URL that is not http(s)"));
    }
    Ok(next)
}

async fn read_limited(
    url: &Url,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, HubError> {
    let mut bytes = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|source| HubError::Transport {
                source: source.without_url(),
                url: redact(url),
            })?;
        let Some(chunk) = chunk else {
            return Ok(bytes);
        };
        if bytes.len() + chunk.len() > limit {
            return Err(HubError::BadResponse {
                url: redact(url),
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
}

#[derive(Deserialize)]
struct Listing {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// Read a `?blobs=true` revision listing; every hash in it is checked for form.
fn parse_listing(url: &Url, bytes: &[u8]) -> Result<RepoRevision, HubError> {
    let bad = |message: String| HubError::BadResponse {
        url: redact(url),
        message,
    };
    let listing: Listing =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the listing is not JSON: {e}")))?;
    let commit = listing
        .sha
        .filter(|sha| path::is_commit(sha))
        .ok_or_else(|| bad("the listing has no 40-hex `sha`".to_owned()))?;

    let mut files = Vec::with_capacity(listing.siblings.len());
    for sibling in listing.siblings {
        let name = &sibling.rfilename;
        let git_sha1 = sibling
            .blob_id
            .filter(|id| path::is_commit(id))
            .ok_or_else(|| bad(format!("`{name}` has no 40-hex `blobId`")))?;
        let (size, lfs_sha256) = match sibling.lfs {
            Some(lfs) => {
                let digest = Digest::from_hex(Algorithm::Sha256, &lfs.sha256)
                    .map_err(|_| bad(format!("`{name}` has a malformed LFS `sha256`")))?;
                (lfs.size, Some(digest))
            }
            None => (
                sibling
                    .size
                    .ok_or_else(|| bad(format!("`{name}` has no `size`")))?,
                None,
            ),
        };
        files.push(RemoteFile {
            path: sibling.rfilename,
            size,
            git_sha1,
            lfs_sha256,
        });
    }
    Ok(RepoRevision { commit, files })
}

/// `url` for a debug line: no credentials, and no query, which on a CDN may hold a signature.
fn logged(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    redact(&shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn url() -> Url {
        Url::parse("http://hub/api").unwrap()
    }

    #[test]
    fn listing_with_lfs_and_git_files() {
        let json = format!(
            r#"{{"sha":"{COMMIT}","siblings":[
                {{"rfilename":"config.json","size":612,"blobId":"{COMMIT}"}},
                {{"rfilename":"model.safetensors","size":9,"blobId":"{COMMIT}",
                  "lfs":{{"sha256":"{SHA}","size":9,"pointerSize":134}}}}]}}"#
        );
        let listing = parse_listing(&url(), json.as_bytes()).unwrap();
        assert_eq!(listing.commit, COMMIT);
        assert_eq!(listing.files[0].lfs_sha256, None);
        assert_eq!(listing.files[1].lfs_sha256.as_ref().unwrap().hex(), SHA);
    }

    #[test]
    fn listing_without_hashes_is_refused() {
        let no_sha = r#"{"siblings":[]}"#;
        assert!(parse_listing(&url(), no_sha.as_bytes()).is_err());
        let bad_blob = format!(r#"{{"sha":"{COMMIT}","siblings":[{{"rfilename":"a","size":1}}]}}"#);
        assert!(parse_listing(&url(), bad_blob.as_bytes()).is_err());
        let bad_lfs = format!(
            r#"{{"sha":"{COMMIT}","siblings":[{{"rfilename":"a","blobId":"{COMMIT}",
                "lfs":{{"sha256":"XYZ","size":1}}}}]}}"#
        );
        assert!(parse_listing(&url(), bad_lfs.as_bytes()).is_err());
    }

    #[test]
    fn etags_lose_quotes_and_weak_markers() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
    }
}
