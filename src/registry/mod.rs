//! A client for the OCI distribution API, as far as pinning and verifying need it.
//!
//! We build on `oci-client` for manifest types and talk HTTP through `reqwest` ourselves,
//! because pinning needs what `oci_client::Client` keeps to itself: the response of every
//! request (to honour `Retry-After`, to tell `MANIFEST_UNKNOWN` from a refused login, to name
//! an HTTP/HTTPS mix-up), the exact manifest bytes to hash, and credentials from Docker's
//! credential helpers.
//!
//! Every manifest body received is hashed; when the request named a digest, or the registry
//! claimed one in `Docker-Content-Digest`, a mismatch is an error.

pub mod auth;
pub mod manifest;
mod push;
pub mod retry;

pub use push::{BlobStream, Upload};

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::config::RegistrySettings;
use crate::digest::{Digest, Mismatch};
use crate::reference::Reference;

use auth::{AuthError, Challenge, Credential, CredentialStore};
use retry::RetryPolicy;

/// How long one manifest request may take by default, answer included. A registry that
/// accepts connections but never answers must not stall a CI job for minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest manifest accepted, as in CNCF distribution.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a registry holds for a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The digest of the manifest or index.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its exact bytes, when they were fetched (always for an index).
    pub bytes: Option<Vec<u8>>,
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tag or digest does not exist.
    #[error("`{reference}` was not found in its registry (MANIFEST_UNKNOWN)")]
    ManifestUnknown {
        /// The reference asked for.
        reference: String,
        /// The repository's full name, such as `docker.io/library/ubuntu`.
        name: String,
    },
    /// The registry refused our credentials, or demands some we do not have.
    #[error("registry `{registry}` refused access to `{repository}` ({status})")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The HTTP status.
        status: StatusCode,
        /// Whether we sent credentials.
        had_credentials: bool,
    },
    /// Nothing answers at the registry's address.
    #[error("cannot reach registry `{registry}` at {url}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The URL tried.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// We spoke plain HTTP to a server that only speaks HTTPS.
    #[error("registry `{registry}` speaks HTTPS, but aisupply reached it over plain HTTP")]
    HttpToHttps {
        /// The registry host.
        registry: String,
    },
    /// We spoke HTTPS to a server that only speaks plain HTTP.
    #[error("registry `{registry}` answered plain HTTP to an HTTPS request")]
    HttpsToHttp {
        /// The registry host.
        registry: String,
        /// The TLS error.
        #[source]
        source: reqwest::Error,
    },
    /// Any other transport failure, after retries.
    #[error("request to registry `{registry}` failed: {url}")]
    Transport {
        /// The registry host.
        registry: String,
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status, after retries.
    #[error("registry `{registry}` answered {status} to {method} {url}{}", detail_suffix(.detail.as_ref()))]
    Status {
        /// The registry host.
        registry: String,
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The registry's error code or message, if it gave one.
        detail: Option<String>,
    },
    /// A blob the copy needs is not in the repository.
    #[error("blob `{digest}` is not in `{repository}`")]
    BlobUnknown {
        /// The repository's full name.
        repository: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// The bytes served for a digest do not hash to it.
    #[error("registry served content for `{reference}` that does not match its digest\n  expected: {}\n  computed: {}", mismatch.expected, mismatch.computed)]
    DigestMismatch {
        /// The reference asked for.
        reference: String,
        /// Expected and computed digests.
        mismatch: Mismatch,
    },
    /// The answer is malformed (a bad digest header, an oversized manifest).
    #[error("registry `{registry}` sent a malformed answer: {message}")]
    BadResponse {
        /// The registry host.
        registry: String,
        /// What is wrong.
        message: String,
    },
    /// Credentials could not be looked up.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

fn detail_suffix(detail: Option<&String>) -> String {
    detail.map(|d| format!(" ({d})")).unwrap_or_default()
}

impl RegistryError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::ManifestUnknown { name, .. } => format!(
                "check the tag or digest; `skopeo list-tags docker://{name}` lists the tags"
            ),
            Self::Unauthorized {
                registry,
                had_credentials: false,
                ..
            } => format!(
                "log in with `docker login {registry}` (aisupply reads Docker's credentials), \
                 or check that the repository name is right"
            ),
            Self::Unauthorized { registry, .. } => format!(
                "the credentials for `{registry}` in Docker's config were refused; run \
                 `docker login {registry}` again"
            ),
            Self::Unreachable { .. } => {
                "check that the registry is running and that host and port are right".to_owned()
            }
            Self::HttpToHttps { registry } => format!(
                "remove `insecure = true` from `[registries.\"{registry}\"]`, or set \
                 `insecure = false` for a loopback registry that uses TLS"
            ),
            Self::HttpsToHttp { registry, .. } => format!(
                "if this registry is meant to be reached over plain HTTP, add \
                 `[registries.\"{registry}\"]` with `insecure = true` to aisupply.toml"
            ),
            Self::Auth(e) => return e.hint(),
            Self::Transport { source, .. } if source.is_timeout() => {
                "the registry did not answer in time; check that it is healthy, or allow more \
                 time with `AISUPPLY_HTTP_TIMEOUT=<seconds>`"
                    .to_owned()
            }
            Self::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "the registry is throttling requests even after retries; wait and run again, or \
                 log in (`docker login`) for a higher limit"
                    .to_owned()
            }
            Self::Status { status, .. } if status.is_server_error() => {
                "the registry failed even after retries; run again later, or ask its operators"
                    .to_owned()
            }
            Self::DigestMismatch { .. } => {
                "the registry or something between it and you altered the content; do not use \
                 it, and report it to the registry's operators"
                    .to_owned()
            }
            _ => return None,
        })
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Default)]
pub struct ClientOptions {
    /// Per-registry settings from `aisupply.toml`.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Where credentials come from.
    pub credentials: CredentialStore,
    /// When to retry.
    pub retry: RetryPolicy,
    /// How long one manifest request may take ([`DEFAULT_TIMEOUT`] when unset).
    pub timeout: Option<Duration>,
}

/// A registry client shared by every request of a command.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    /// `Authorization` values by (registry, repository), learnt from challenges.
    authorizations: Mutex<HashMap<(String, String), HeaderValue>>,
}

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("aisupply/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RegistryError::BadResponse {
                registry: String::new(),
                message: format!("cannot set up HTTP: {e}"),
            })?;
        Ok(Self {
            http,
            options,
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    /// The URL scheme for `registry`: plain HTTP for loopback hosts and registries marked
    /// `insecure = true`, HTTPS otherwise.
    pub fn scheme(&self, registry: &str) -> &'static str {
        let insecure = self
            .options
            .registries
            .get(registry)
            .and_then(|s| s.insecure)
            .unwrap_or_else(|| is_loopback(registry));
        if insecure { "http" } else { "https" }
    }

    fn manifest_url(&self, reference: &Reference, tag_or_digest: &str) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{tag_or_digest}",
            self.scheme(reference.registry()),
            reference.api_host(),
            reference.repository()
        )
    }

    /// Resolve `reference` to the digest its registry serves. A tag is resolved with a HEAD
    /// request (falling back to GET and hashing when the registry sends no digest or no usable
    /// media type); a digest is fetched and verified. An index is always fetched, so its
    /// platforms can be read.
    pub async fn resolve(&self, reference: &Reference) -> Result<ManifestInfo, RegistryError> {
        if let Some(digest) = reference.digest() {
            return self.fetch_manifest(reference, Some(digest)).await;
        }
        let found = self.head(reference).await?;
        if found.bytes.is_none() && manifest::is_index(&found.media_type) {
            // By tag, checked against the digest the HEAD announced: a registry whose claim
            // does not match its content is named as such.
            let tag = reference.api_reference();
            return self
                .fetch_manifest_at(reference, &tag, Some(&found.digest))
                .await;
        }
        Ok(found)
    }

    /// The digest and media type `reference`'s tag points at now: one HEAD request, or a GET
    /// whose bytes are hashed when the registry sends no `Docker-Content-Digest` or no known
    /// manifest `Content-Type`.
    pub async fn head(&self, reference: &Reference) -> Result<ManifestInfo, RegistryError> {
        let tag = reference.api_reference();
        let url = self.manifest_url(reference, &tag);
        let response = self.send(reference, Method::HEAD, &url).await?;
        let response = self
            .expect_found(reference, Method::HEAD, &url, response)
            .await?;
        let media_type = content_type(response.headers());
        let claimed = header_digest(reference, response.headers())?;
        tracing::debug!(%reference, digest = ?claimed, %media_type, "HEAD answered");
        match claimed {
            Some(digest) if manifest::is_known(&media_type) => Ok(ManifestInfo {
                digest,
                media_type,
                bytes: None,
            }),
            claimed => {
                self.fetch_manifest_at(reference, &tag, claimed.as_ref())
                    .await
            }
        }
    }

    /// Fetch a small blob (such as an image config) by digest and verify it.
    pub async fn fetch_small_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.scheme(reference.registry()),
            reference.api_host(),
            reference.repository()
        );
        let response = self.send(reference, Method::GET, &url).await?;
        let response = self
            .expect_found(reference, Method::GET, &url, response)
            .await?;
        let bytes = read_limited(reference, response).await?;
        digest
            .verify(&bytes)
            .map_err(|mismatch| RegistryError::DigestMismatch {
                reference: reference.with_digest(digest.clone()).to_string(),
                mismatch,
            })?;
        Ok(bytes)
    }

    /// Fetch a manifest's exact bytes and hash them. With `expected`, or when the registry
    /// names a digest, the bytes must hash to it.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
    ) -> Result<ManifestInfo, RegistryError> {
        let target = expected.map_or_else(|| reference.api_reference(), ToString::to_string);
        self.fetch_manifest_at(reference, &target, expected).await
    }

    /// Fetch the manifest `target` (a tag or digest) of `reference`'s repository; see
    /// [`Client::fetch_manifest`].
    async fn fetch_manifest_at(
        &self,
        reference: &Reference,
        target: &str,
        expected: Option<&Digest>,
    ) -> Result<ManifestInfo, RegistryError> {
        let url = self.manifest_url(reference, target);
        let response = self.send(reference, Method::GET, &url).await?;
        let response = self
            .expect_found(reference, Method::GET, &url, response)
            .await?;
        let claimed = header_digest(reference, response.headers())?;
        let served_type = content_type(response.headers());
        let bytes = read_limited(reference, response).await?;

        let computed = match expected.or(claimed.as_ref()) {
            Some(want) => {
                want.verify(&bytes)
                    .map_err(|mismatch| RegistryError::DigestMismatch {
                        reference: reference.to_string(),
                        mismatch,
                    })?;
                want.clone()
            }
            None => Digest::sha256(&bytes),
        };
        let media_type = manifest::media_type_of(&bytes, &served_type).ok_or_else(|| {
            RegistryError::BadResponse {
                registry: reference.registry().to_owned(),
                message: format!(
                    "it served `{reference}` as `{served_type}`, which is not an image \
                     manifest or index aisupply understands"
                ),
            }
        })?;
        tracing::debug!(%reference, digest = %computed, %media_type, "manifest fetched and hashed");
        Ok(ManifestInfo {
            digest: computed,
            media_type,
            bytes: Some(bytes),
        })
    }

    /// Whether the registry still holds the manifest `digest` in `reference`'s repository.
    pub async fn manifest_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.manifest_url(reference, &digest.to_string());
        let response = self.send(reference, Method::HEAD, &url).await?;
        match self
            .expect_found(reference, Method::HEAD, &url, response)
            .await
        {
            Ok(response) => match header_digest(reference, response.headers())? {
                Some(claimed) if claimed != *digest => Err(RegistryError::DigestMismatch {
                    reference: reference.with_digest(digest.clone()).to_string(),
                    mismatch: Mismatch {
                        expected: digest.clone(),
                        computed: claimed,
                    },
                }),
                _ => Ok(true),
            },
            Err(RegistryError::ManifestUnknown { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Turn a non-success answer into the matching error.
    async fn expect_found(
        &self,
        reference: &Reference,
        method: Method,
        url: &str,
        response: Response,
    ) -> Result<Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown {
                reference: reference.to_string(),
                name: reference.name(),
            });
        }
        Err(self.status_error(reference, method, url, response).await)
    }

    /// The error for an answer that is not a success.
    pub(crate) async fn status_error(
        &self,
        reference: &Reference,
        method: Method,
        url: &str,
        response: Response,
    ) -> RegistryError {
        let status = response.status();
        let registry = reference.registry().to_owned();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let had_credentials = match self.credential(reference).await {
                Ok(found) => found.is_some(),
                Err(e) => return e.into(),
            };
            return RegistryError::Unauthorized {
                registry,
                repository: reference.repository().to_owned(),
                status,
                had_credentials,
            };
        }
        // A TLS port answers plain HTTP with a bare HTTP/1.0 400 (Go's servers add a sentence
        // saying so); HEAD answers carry no body, hence the check of the status line too.
        let bare_http10 = response.version() == reqwest::Version::HTTP_10
            && !response.headers().contains_key(CONTENT_TYPE);
        let body = response.text().await.unwrap_or_default();
        if status == StatusCode::BAD_REQUEST
            && (bare_http10 || body.contains("HTTP request to an HTTPS server"))
        {
            return RegistryError::HttpToHttps { registry };
        }
        RegistryError::Status {
            registry,
            method,
            url: url.to_owned(),
            status,
            detail: error_detail(&body),
        }
    }

    async fn credential(&self, reference: &Reference) -> Result<Option<Credential>, AuthError> {
        self.options.credentials.lookup(reference.registry()).await
    }

    /// Send a manifest request (the four manifest types in `Accept`).
    async fn send(
        &self,
        reference: &Reference,
        method: Method,
        url: &str,
    ) -> Result<Response, RegistryError> {
        self.execute(reference, url, &|http| {
            http.request(method.clone(), url)
                .header(ACCEPT, manifest::ACCEPT)
                .timeout(self.options.timeout.unwrap_or(DEFAULT_TIMEOUT))
        })
        .await
    }

    /// Send the request `build` makes with whatever authorization `reference`'s repository
    /// needs, answering one challenge, and retrying transient failures. `build` is called once
    /// per attempt, so its body must be cheap to make again.
    pub(crate) async fn execute(
        &self,
        reference: &Reference,
        url: &str,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let key = auth_key(reference);
        let cached = self.cached_authorization(&key);
        let response = self
            .send_with_retries(reference, url, build, cached.as_ref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }

        // Answer the challenge once; a second 401 is final.
        let Some(challenge) = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
        else {
            return Ok(response);
        };
        let Some(authorization) = self.authorize(reference, &challenge).await? else {
            return Ok(response);
        };
        self.authorizations
            .lock()
            .expect("authorization cache lock")
            .insert(key, authorization.clone());
        self.send_with_retries(reference, url, build, Some(&authorization))
            .await
    }

    /// The HTTP client, for requests sent once with [`Client::authorization_for`].
    pub(crate) fn raw_http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The `Authorization` value learnt for `reference`'s repository, for requests that cannot
    /// be repeated (a streamed body) and so must be authorized up front.
    pub(crate) fn authorization_for(&self, reference: &Reference) -> Option<HeaderValue> {
        self.cached_authorization(&auth_key(reference))
    }

    fn cached_authorization(&self, key: &(String, String)) -> Option<HeaderValue> {
        self.authorizations
            .lock()
            .expect("authorization cache lock")
            .get(key)
            .cloned()
    }

    /// The `Authorization` value that answers `challenge`, or `None` when we have nothing
    /// to offer (a Basic challenge without credentials).
    async fn authorize(
        &self,
        reference: &Reference,
        challenge: &Challenge,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let credential = self.credential(reference).await?;
        match challenge {
            Challenge::Basic => Ok(credential.and_then(|c| match c {
                Credential::Basic { username, password } => {
                    Some(basic_authorization(&username, password.expose()))
                }
                Credential::IdentityToken(_) => None,
            })),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", reference.repository()));
                let token = self
                    .fetch_token(reference, realm, service.as_deref(), &scope, credential)
                    .await?;
                Ok(token)
            }
        }
    }

    /// Ask the token service at `realm` for a bearer token.
    async fn fetch_token(
        &self,
        reference: &Reference,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<Credential>,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let registry = reference.registry().to_owned();
        let bad = |message: String| RegistryError::BadResponse {
            registry: registry.clone(),
            message,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|_| bad(format!("its token realm `{realm}` is not a URL")))?;
        let realm_host = url.host_str().unwrap_or_default().to_owned();
        if url.scheme() != "https" && credential.is_some() && !is_loopback(&realm_host) {
            return Err(bad(format!(
                "its token realm `{realm}` is not HTTPS; credentials are not sent in the clear"
            )));
        }

        let mut params = vec![("scope", scope.to_owned())];
        if let Some(service) = service {
            params.push(("service", service.to_owned()));
        }
        let request = match &credential {
            Some(Credential::IdentityToken(token)) => {
                params.extend([
                    ("grant_type", "refresh_token".to_owned()),
                    ("client_id", "aisupply".to_owned()),
                    ("refresh_token", token.expose().to_owned()),
                ]);
                let mut form = reqwest::Url::parse("http://form.invalid/").expect("static URL");
                form.query_pairs_mut().extend_pairs(&params);
                self.http
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or_default().to_owned())
            }
            Some(Credential::Basic { username, password }) => {
                url.query_pairs_mut().extend_pairs(&params);
                self.http.get(url).header(
                    AUTHORIZATION,
                    basic_authorization(username, password.expose()),
                )
            }
            None => {
                url.query_pairs_mut().extend_pairs(&params);
                self.http.get(url)
            }
        };

        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&registry, realm, e))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: registry.clone(),
                repository: reference.repository().to_owned(),
                status: response.status(),
                had_credentials: credential.is_some(),
            });
        }
        let not_json = || bad("its token service answered something other than JSON".to_owned());
        let body = response.bytes().await.map_err(|_| not_json())?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| not_json())?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("its token service answered without a token".to_owned()))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| bad("its token holds characters not allowed in a header".to_owned()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    async fn send_with_retries(
        &self,
        reference: &Reference,
        url: &str,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Sync),
        authorization: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let policy = &self.options.retry;
        let mut attempt = 0;
        let mut timed_out = false;
        loop {
            let mut request = build(&self.http);
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let last = attempt + 1 >= policy.attempts;
            let sent = request.send().await;
            if let Ok(response) = &sent {
                tracing::debug!(status = %response.status(), %url, "registry answered");
            }
            match sent {
                Ok(response) if !RetryPolicy::is_transient(response.status()) || last => {
                    return Ok(response);
                }
                Ok(response) => {
                    let wait = policy.delay(attempt, Some(response.headers()));
                    tracing::debug!(%url, status = %response.status(), ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                // A server that timed out once is tried once more, not until the attempts
                // run out.
                Err(e)
                    if retry::is_transient_error(&e) && !last && !(timed_out && e.is_timeout()) =>
                {
                    timed_out |= e.is_timeout();
                    let wait = policy.delay(attempt, None);
                    tracing::debug!(%url, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(transport_error(reference.registry(), url, e)),
            }
            attempt += 1;
        }
    }
}

fn auth_key(reference: &Reference) -> (String, String) {
    (
        reference.registry().to_owned(),
        reference.repository().to_owned(),
    )
}

/// A token service's answer; registries use either name.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

async fn read_limited(
    reference: &Reference,
    mut response: Response,
) -> Result<Vec<u8>, RegistryError> {
    let registry = reference.registry();
    let url = response.url().to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(registry, &url, e))?
    {
        if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::BadResponse {
                registry: registry.to_owned(),
                message: format!(
                    "the manifest of `{reference}` is larger than {MAX_MANIFEST_BYTES} bytes"
                ),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn header_digest(
    reference: &Reference,
    headers: &HeaderMap,
) -> Result<Option<Digest>, RegistryError> {
    let Some(value) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| RegistryError::BadResponse {
            registry: reference.registry().to_owned(),
            message: format!("its Docker-Content-Digest header `{text}` is not a digest"),
        })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_default()
}

/// The first error code and message of a distribution error envelope.
fn error_detail(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    let first = envelope.errors.into_iter().next()?;
    match (first.code, first.message) {
        (Some(code), Some(message)) => Some(format!("{code}: {message}")),
        (code, message) => code.or(message),
    }
}

fn basic_authorization(username: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header");
    value.set_sensitive(true);
    value
}

fn transport_error(registry: &str, url: &str, source: reqwest::Error) -> RegistryError {
    let registry = registry.to_owned();
    if has_tls_message_error(&source) {
        return RegistryError::HttpsToHttp { registry, source };
    }
    if source.is_connect() {
        return RegistryError::Unreachable {
            registry,
            url: url.to_owned(),
            source,
        };
    }
    RegistryError::Transport {
        registry,
        url: url.to_owned(),
        source,
    }
}

/// Whether the TLS layer choked on a non-TLS answer, the sign of a plain-HTTP server.
fn has_tls_message_error(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = find_rustls_error(e) {
            return matches!(tls, rustls::Error::InvalidMessage(_));
        }
        source = e.source();
    }
    false
}

/// The rustls error `e` is or wraps. Connectors box their errors and `io::Error::source`
/// skips the error it wraps, so both wrappers are opened explicitly.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner: &(dyn std::error::Error + 'static) =
        e.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_rustls_error(inner)
}

/// Whether `registry` (`host[:port]`) is on this machine.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn install_crypto_provider() {
    // Installing fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "[2001:db8::1]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn scheme_follows_insecure_setting_and_loopback() {
        let mut options = ClientOptions::default();
        options.registries.insert(
            "registry.lan:5000".to_owned(),
            RegistrySettings {
                insecure: Some(true),
            },
        );
        options.registries.insert(
            "localhost:6000".to_owned(),
            RegistrySettings {
                insecure: Some(false),
            },
        );
        let client = Client::new(options).unwrap();
        assert_eq!(client.scheme("registry.lan:5000"), "http");
        assert_eq!(client.scheme("localhost:5000"), "http");
        assert_eq!(client.scheme("localhost:6000"), "https");
        assert_eq!(client.scheme("ghcr.io"), "https");
    }

    #[test]
    fn error_envelopes_are_summarized() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            error_detail(body).as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(error_detail("<html>"), None);
    }
}
#[cfg(test)]
mod tls_mismatch {
    /// A TLS client talking to a plain HTTP server gets rustls' `InvalidMessage` wrapped in
    /// two `io::Error`s; the regression guarded here is losing it inside them.
    #[tokio::test]
    async fn https_to_a_plain_http_server_is_recognized_through_wrapped_io_errors() {
        super::install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        });
        let client = reqwest::Client::builder().build().unwrap();
        let err = client
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        server.join().unwrap();
        assert!(super::has_tls_message_error(&err), "{err:?}");
    }
}
