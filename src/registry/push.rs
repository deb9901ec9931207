//! Blobs and pushes: what copying images between registries needs beyond resolving them.
//!
//! Blob bodies are streamed, never held whole: a download is a [`BlobStream`] and an upload
//! consumes one. Uploads follow the distribution protocol: `POST` opens an upload (or mounts
//! the blob from another repository), then either one streamed `PUT ?digest=` or, when the
//! registry asks for a minimum chunk size, `PATCH` chunks and a closing `PUT`.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::{Client, RegistryError, header_digest, manifest, read_limited};
use crate::digest::{Digest, Mismatch};
use crate::reference::Reference;

/// A blob's bytes as they arrive.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The chunk size used when a registry asks for chunked uploads without naming a minimum
/// larger than this.
const CHUNK: usize = 8 * 1024 * 1024;

/// An upload session the registry opened.
#[derive(Debug, Clone)]
pub struct Upload {
    location: Url,
    /// The registry's `OCI-Chunk-Min-Length`, when it asks for chunked uploads.
    chunk_min: Option<usize>,
}

impl Client {
    fn repository_url(&self, repository: &Reference, tail: &str) -> String {
        format!(
            "{}://{}/v2/{}/{tail}",
            self.scheme(repository.registry()),
            repository.api_host(),
            repository.repository()
        )
    }

    /// The size of blob `digest` in `repository`, or `None` when the registry lacks it.
    pub async fn blob_size(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.repository_url(repository, &format!("blobs/{digest}"));
        let response = self
            .execute(repository, &url, &|http| http.head(&url))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(self
                .status_error(repository, Method::HEAD, &url, response)
                .await),
        }
    }

    /// Blob `digest` of `repository` as a stream, with its size when the registry says it.
    /// The bytes are not verified here: the consumer hashes them as they pass.
    pub async fn blob_stream(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<(Option<u64>, BlobStream), RegistryError> {
        let url = self.repository_url(repository, &format!("blobs/{digest}"));
        let response = self
            .execute(repository, &url, &|http| http.get(&url))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::BlobUnknown {
                repository: repository.name(),
                digest: digest.clone(),
            });
        }
        if !response.status().is_success() {
            return Err(self
                .status_error(repository, Method::GET, &url, response)
                .await);
        }
        let size = response.content_length();
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok((size, Box::pin(stream)))
    }

    /// Mount blob `digest` into `repository` from `from` (a repository of the same registry).
    /// `None` when the registry mounted it; otherwise the upload it opened instead.
    pub async fn mount_blob(
        &self,
        repository: &Reference,
        digest: &Digest,
        from: &str,
    ) -> Result<Option<Upload>, RegistryError> {
        let mut url = Url::parse(&self.repository_url(repository, "blobs/uploads/"))
            .map_err(|e| bad_url(repository, &e))?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let response = self
            .execute(repository, url.as_str(), &|http| {
                http.post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(None);
        }
        self.upload_from(repository, url.as_str(), response)
            .await
            .map(Some)
    }

    /// Open an upload in `repository`.
    pub async fn start_upload(&self, repository: &Reference) -> Result<Upload, RegistryError> {
        let url = self.repository_url(repository, "blobs/uploads/");
        let response = self
            .execute(repository, &url, &|http| {
                http.post(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        self.upload_from(repository, &url, response).await
    }

    async fn upload_from(
        &self,
        repository: &Reference,
        url: &str,
        response: reqwest::Response,
    ) -> Result<Upload, RegistryError> {
        if response.status() != StatusCode::ACCEPTED {
            return Err(self
                .status_error(repository, Method::POST, url, response)
                .await);
        }
        let location = Self::location(repository, url, response.headers())?;
        let chunk_min = response
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Ok(Upload {
            location,
            chunk_min,
        })
    }

    /// Send `body` (blob `digest`, `size` bytes) into `upload` and close it. The body is
    /// consumed once, so the request cannot be retried here; callers restart the whole blob.
    pub async fn finish_upload(
        &self,
        repository: &Reference,
        upload: Upload,
        digest: &Digest,
        size: Option<u64>,
        body: BlobStream,
    ) -> Result<(), RegistryError> {
        let (location, body) = match upload.chunk_min {
            None => (upload.location, Some(body)),
            Some(min) => {
                let location = self
                    .send_chunks(repository, upload.location, min.max(1), body)
                    .await?;
                (location, None)
            }
        };
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());

        let mut request = self
            .raw_http()
            .put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream");
        request = match (body, size) {
            (Some(body), Some(size)) => request
                .header(CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(body)),
            (Some(body), None) => request.body(reqwest::Body::wrap_stream(body)),
            (None, _) => request.header(CONTENT_LENGTH, 0),
        };
        let response = self.send_once(repository, &url, request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .status_error(repository, Method::PUT, url.as_str(), response)
                .await);
        }
        match header_digest(repository, response.headers())? {
            Some(stored) if stored != *digest => Err(RegistryError::DigestMismatch {
                reference: repository.with_digest(digest.clone()).to_string(),
                mismatch: Mismatch {
                    expected: digest.clone(),
                    computed: stored,
                },
            }),
            _ => Ok(()),
        }
    }

    /// `PATCH` the body in chunks of at least `min` bytes; returns where to close the upload.
    async fn send_chunks(
        &self,
        repository: &Reference,
        mut location: Url,
        min: usize,
        mut body: BlobStream,
    ) -> Result<Url, RegistryError> {
        let size = min.max(CHUNK);
        let mut offset = 0usize;
        let mut buffer: Vec<u8> = Vec::with_capacity(size);
        loop {
            let next = body.next().await;
            if let Some(chunk) = &next {
                let chunk = chunk.as_ref().map_err(|e| RegistryError::BadResponse {
                    registry: repository.registry().to_owned(),
                    message: format!("the blob being uploaded could not be read: {e}"),
                })?;
                buffer.extend_from_slice(chunk);
                if buffer.len() < size {
                    continue;
                }
            }
            if !buffer.is_empty() {
                let end = offset + buffer.len() - 1;
                let request = self
                    .raw_http()
                    .patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("content-range", format!("{offset}-{end}"))
                    .header(CONTENT_LENGTH, buffer.len())
                    .body(std::mem::replace(&mut buffer, Vec::with_capacity(size)));
                let response = self.send_once(repository, &location, request).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(self
                        .status_error(repository, Method::PATCH, location.as_str(), response)
                        .await);
                }
                location = Self::location(repository, location.as_str(), response.headers())?;
                offset = end + 1;
            }
            if next.is_none() {
                return Ok(location);
            }
        }
    }

    /// Send a request that cannot be repeated, with the authorization learnt for
    /// `repository` — but only to the registry itself, never to a storage host it redirects to.
    async fn send_once(
        &self,
        repository: &Reference,
        url: &Url,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let same_host = url
            .host_str()
            .zip(url.port_or_known_default())
            .is_some_and(|(h, p)| {
                let api = repository.api_host();
                api == h || api == format!("{h}:{p}") || api == format!("[{h}]:{p}")
            });
        if let Some(authorization) = self.authorization_for(repository).filter(|_| same_host) {
            request = request.header(AUTHORIZATION, authorization);
        }
        request
            .send()
            .await
            .map_err(|e| super::transport_error(repository.registry(), url.as_str(), e))
    }

    /// The absolute upload URL of a `Location` header.
    fn location(
        repository: &Reference,
        base: &str,
        headers: &reqwest::header::HeaderMap,
    ) -> Result<Url, RegistryError> {
        let value = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::BadResponse {
                registry: repository.registry().to_owned(),
                message: "an upload answer has no Location header".to_owned(),
            })?;
        Url::parse(base)
            .and_then(|b| b.join(value))
            .map_err(|e| bad_url(repository, &e))
    }

    /// Store a manifest's exact `bytes` under `tag_or_digest`, and check the registry stored
    /// what we sent.
    pub async fn put_manifest(
        &self,
        repository: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let url = self.repository_url(repository, &format!("manifests/{tag_or_digest}"));
        let body = Bytes::copy_from_slice(bytes);
        let response = self
            .execute(repository, &url, &|http| {
                http.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .status_error(repository, Method::PUT, &url, response)
                .await);
        }
        let sent = Digest::sha256(bytes);
        match header_digest(repository, response.headers())? {
            Some(stored) if stored != sent => Err(RegistryError::DigestMismatch {
                reference: repository.with_digest(sent.clone()).to_string(),
                mismatch: Mismatch {
                    expected: sent,
                    computed: stored,
                },
            }),
            _ => Ok(()),
        }
    }

    /// The referrers index of `digest` from the referrers API, or `None` when the registry
    /// does not offer the API.
    pub async fn referrers(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = self.repository_url(repository, &format!("referrers/{digest}"));
        let response = self
            .execute(repository, &url, &|http| {
                http.get(&url).header(ACCEPT, manifest::OCI_INDEX)
            })
            .await?;
        let is_index = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(manifest::OCI_INDEX));
        if !response.status().is_success() || !is_index {
            return Ok(None);
        }
        read_limited(repository, response).await.map(Some)
    }
}

fn bad_url(repository: &Reference, error: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::BadResponse {
        registry: repository.registry().to_owned(),
        message: format!("an upload URL is malformed: {error}"),
    }
}
