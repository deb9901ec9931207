//! Pushing fixture images to a registry over the distribution HTTP API.
//!
//! These helpers block; they run their own runtime, so async tests may call them too. Every
//! digest they return is computed from the bytes pushed and checked against the digest the
//! registry reports.

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::http::{block_on, client};
use super::image::{self, Blob, Format, Image, Index, LINUX_AMD64};

/// What a fixture pusher put in the registry.
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// `HOST/REPO:TAG`.
    pub reference: String,
    /// The digest of the top-level manifest, index or list.
    pub digest: String,
    pub media_type: String,
    /// For an index or list, each child manifest in index order (attestations included).
    pub children: Vec<ChildManifest>,
}

/// One entry of a pushed index.
#[derive(Clone, Debug)]
pub struct ChildManifest {
    /// `os/architecture[/variant]`, e.g. `linux/arm64/v8`; `unknown/unknown` for attestations.
    pub platform: String,
    pub digest: String,
}

impl PushedImage {
    /// `HOST/REPO@DIGEST`.
    pub fn pinned(&self) -> String {
        let repository = self
            .reference
            .rsplit_once(':')
            .map_or("", |(repository, _)| repository);
        format!("{repository}@{}", self.digest)
    }

    /// The digest of the child manifest for `platform`.
    pub fn child(&self, platform: &str) -> &str {
        let child = self
            .children
            .iter()
            .find(|child| child.platform == platform);
        &child
            .unwrap_or_else(|| panic!("no `{platform}` manifest in {self:?}"))
            .digest
    }
}

/// Pushes a single-platform OCI image manifest (linux/amd64) built from `seed`.
pub fn push_oci_image(host: &str, repo: &str, tag: &str, seed: u64) -> PushedImage {
    push_image(
        host,
        repo,
        tag,
        &image::image(Format::Oci, seed, LINUX_AMD64),
    )
}

/// Pushes a single-platform Docker v2 schema 2 manifest (linux/amd64) built from `seed`.
pub fn push_docker_image(host: &str, repo: &str, tag: &str, seed: u64) -> PushedImage {
    push_image(
        host,
        repo,
        tag,
        &image::image(Format::Docker, seed, LINUX_AMD64),
    )
}

/// Pushes an OCI index: linux/amd64, linux/arm64/v8 and an attestation manifest.
pub fn push_oci_index(host: &str, repo: &str, tag: &str, seed: u64) -> PushedImage {
    push_index(host, repo, tag, &image::oci_index(seed))
}

/// Pushes a Docker manifest list: linux/amd64 and linux/arm/v7.
pub fn push_docker_list(host: &str, repo: &str, tag: &str, seed: u64) -> PushedImage {
    push_index(host, repo, tag, &image::docker_list(seed))
}

/// Deletes the manifest `digest` from `repo`, so that it no longer resolves.
pub fn delete_manifest(host: &str, repo: &str, digest: &str) {
    let upload = Upload::new(host, repo);
    let url = format!("{}/manifests/{digest}", upload.base);
    block_on(upload.send(Method::DELETE, &url, None, StatusCode::ACCEPTED));
}

/// Push an image built by the test (its blobs, then its manifest under `tag`).
pub fn push_image(host: &str, repo: &str, tag: &str, image: &Image) -> PushedImage {
    let upload = Upload::new(host, repo);
    block_on(upload.image(image, tag));
    pushed(host, repo, tag, &image.manifest, Vec::new())
}

fn push_index(host: &str, repo: &str, tag: &str, index: &Index) -> PushedImage {
    let upload = Upload::new(host, repo);
    block_on(async {
        for (_, child) in &index.children {
            upload.image(child, &child.manifest.digest).await;
        }
        upload.manifest(tag, &index.manifest).await;
    });
    let children = index
        .children
        .iter()
        .map(|(platform, child)| ChildManifest {
            platform: platform.clone(),
            digest: child.manifest.digest.clone(),
        });
    pushed(host, repo, tag, &index.manifest, children.collect())
}

fn pushed(
    host: &str,
    repo: &str,
    tag: &str,
    top: &Blob,
    children: Vec<ChildManifest>,
) -> PushedImage {
    PushedImage {
        reference: format!("{host}/{repo}:{tag}"),
        digest: top.digest.clone(),
        media_type: top.media_type.to_owned(),
        children,
    }
}

/// One repository of one registry, spoken to over the distribution HTTP API.
struct Upload {
    client: reqwest::Client,
    host: String,
    /// `http://HOST/v2/REPO`.
    base: String,
}

impl Upload {
    fn new(host: &str, repo: &str) -> Self {
        Self {
            client: client(),
            host: host.to_owned(),
            base: format!("http://{host}/v2/{repo}"),
        }
    }

    /// Pushes the blobs of `image`, then its manifest under `reference`.
    async fn image(&self, image: &Image, reference: &str) {
        for blob in &image.blobs {
            self.blob(blob).await;
        }
        self.manifest(reference, &image.manifest).await;
    }

    /// A monolithic upload: open an upload session, then PUT the whole blob with its digest.
    async fn blob(&self, blob: &Blob) {
        let start = format!("{}/blobs/uploads/", self.base);
        let session = self
            .send(Method::POST, &start, None, StatusCode::ACCEPTED)
            .await;
        let location = session
            .headers()
            .get(LOCATION)
            .expect("upload session has a Location");
        let location = location.to_str().expect("Location is ASCII");
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.host)
        } else {
            location.to_owned()
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={}", blob.digest);
        let body = ("application/octet-stream", blob.bytes.clone());
        self.send(Method::PUT, &url, Some(body), StatusCode::CREATED)
            .await;
    }

    /// Pushes `manifest` under `reference` and checks that the registry hashed it as we did.
    async fn manifest(&self, reference: &str, manifest: &Blob) {
        let url = format!("{}/manifests/{reference}", self.base);
        let body = (manifest.media_type, manifest.bytes.clone());
        let response = self
            .send(Method::PUT, &url, Some(body), StatusCode::CREATED)
            .await;
        let stored = response.headers().get("docker-content-digest");
        let stored = stored.and_then(|value| value.to_str().ok());
        assert_eq!(
            stored,
            Some(manifest.digest.as_str()),
            "registry digest for PUT {url}"
        );
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        expected: StatusCode,
    ) -> reqwest::Response {
        let mut request = self.client.request(method.clone(), url);
        if let Some((content_type, bytes)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {url}: {err}"));
        let status = response.status();
        if status != expected {
            let text = response.text().await.unwrap_or_default();
            panic!("{method} {url}: expected {expected}, got {status}: {text}");
        }
        response
    }
}
