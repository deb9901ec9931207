//! `aisupply mirror`: copy every locked image into the site's own registry, or into an OCI
//! layout directory to carry across an air gap, with every digest unchanged.
//!
//! Images are copied as their exact bytes: the top-level manifest or index, every manifest it
//! lists, and every config and layer. Children go before parents, so a registry never holds a
//! tag whose content is incomplete. Each blob is checked at the destination first, mounted from
//! another repository of the destination when one is known to hold it, and otherwise streamed
//! through a hash: a blob whose bytes do not match its digest fails the copy and never gets a
//! name at the destination. Cosign signatures, attestations and SBOMs (`sha256-<hex>.sig`,
//! `.att`, `.sbom` tags) and OCI referrers travel with their image.

pub mod layout;
pub mod models;
mod signatures;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use crate::digest::{Digest, Mismatch};
use crate::lock::{LockFile, LockedImage};
use crate::progress::{Reporter, Unit};
use crate::reference::Reference;
use crate::registry::RegistryError;
use crate::registry::manifest;

pub use layout::{Layout, LayoutError};
pub use store::{Manifest, Store, ref_name};

/// Blobs copied at once per image.
const BLOB_CONCURRENCY: usize = 4;
/// Attempts at one blob when the transfer breaks.
const BLOB_ATTEMPTS: u32 = 3;

/// Where `mirror` copies to (or, for `--from`, from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A registry and a repository prefix: `HOST[:PORT][/PREFIX]`.
    Registry {
        /// `host[:port]`.
        host: String,
        /// The repository prefix, possibly empty.
        prefix: String,
    },
    /// An OCI image layout directory: `oci:DIR`.
    Layout(PathBuf),
}

/// Why mirroring failed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// `--to` or `--from` is malformed.
    #[error("`{input}` is not a mirror target: {reason}")]
    BadTarget {
        /// The argument as given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// `--shard` is malformed.
    #[error("`--shard {0}` must be `I/N` with 1 ≤ I ≤ N, such as `2/4`")]
    BadShard(String),
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A layout could not be read or written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Content did not match its digest while it streamed.
    #[error("{what} does not match its digest\n  expected: {}\n  computed: {}", mismatch.expected, mismatch.computed)]
    Tampered {
        /// What was being copied.
        what: String,
        /// Expected and computed digests.
        mismatch: Mismatch,
    },
    /// A manifest could not be understood.
    #[error("manifest `{digest}` is malformed: {reason}")]
    BadManifest {
        /// Its digest.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// Copying one image failed.
    #[error("cannot mirror image `{name}` to `{destination}`")]
    Image {
        /// The lock entry's name.
        name: String,
        /// Where it was going.
        destination: String,
        /// Why.
        #[source]
        source: Box<MirrorError>,
    },
}

impl MirrorError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::BadTarget { .. } => Some(
                "give a registry and prefix such as `localhost:5000/mirror`, or a directory \
                 such as `oci:./mirror`"
                    .to_owned(),
            ),
            Self::Registry(e) => e.hint(),
            Self::Layout(LayoutError::NotALayout { .. }) => Some(
                "point `oci:` at a directory written by `aisupply mirror --to oci:DIR` or \
                 `skopeo copy ... oci:DIR`, or at an empty directory"
                    .to_owned(),
            ),
            Self::Tampered { .. } => Some(
                "the source served altered content; nothing was tagged at the destination. A \
                 registry: do not use it until its operators explain the change. A layout: \
                 write it again with `aisupply mirror --to oci:DIR` from a source you trust"
                    .to_owned(),
            ),
            Self::Image { source, .. } => source.hint(),
            _ => None,
        }
    }
}

impl FromStr for Target {
    type Err = MirrorError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| MirrorError::BadTarget {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(dir) = input.strip_prefix("oci:") {
            if dir.is_empty() {
                return Err(bad("`oci:` needs a directory after it"));
            }
            return Ok(Self::Layout(PathBuf::from(dir)));
        }
        if input.contains("://") {
            return Err(bad("drop the URL scheme; write `host[:port]/prefix`"));
        }
        let (host, prefix) = input.split_once('/').unwrap_or((input, ""));
        let prefix = prefix.trim_end_matches('/');
        let looks_like_host = host.contains('.') || host.contains(':') || host == "localhost";
        if !looks_like_host {
            return Err(bad(
                "it starts with no registry host (a host has a `.` or a `:port`, or is \
                 `localhost`); for a directory write `oci:DIR`",
            ));
        }
        // The host and prefix must make valid references once a repository is appended.
        if Reference::parse(&format!("{host}/x")).is_err() {
            return Err(bad(&format!(
                "`{host}` is not a registry host (`host[:port]`)"
            )));
        }
        if !prefix.is_empty() && Reference::parse(&format!("{host}/{prefix}")).is_err() {
            return Err(bad(&format!(
                "the prefix `{prefix}` must be lowercase letters, digits and `.`, `_`, `-` \
                 separators, in `/`-separated parts"
            )));
        }
        Ok(Self::Registry {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registry { host, prefix } if prefix.is_empty() => f.write_str(host),
            Self::Registry { host, prefix } => write!(f, "{host}/{prefix}"),
            Self::Layout(dir) => write!(f, "oci:{}", dir.display()),
        }
    }
}

impl Target {
    /// Where the image `reference` lands: in a registry, under
    /// `PREFIX/<registry>/<repository>` (a registry's `:port` becomes `-port`), with the same
    /// tag; in a layout, under the ref name `<registry>/<repository>:<tag>`.
    ///
    /// An image locked by digest alone keeps no tag: its place is named by the digest.
    pub fn place(&self, reference: &Reference) -> Reference {
        let version = match (reference.tag(), reference.digest()) {
            (Some(tag), _) => format!(":{tag}"),
            (None, Some(digest)) => format!("@{digest}"),
            (None, None) => ":latest".to_owned(),
        };
        let path = match self {
            Self::Layout(_) => format!("{}{version}", reference.name()),
            Self::Registry { host, prefix } => {
                let registry = mirrored_registry_component(reference.registry());
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                format!(
                    "{host}/{prefix}{registry}/{}{version}",
                    reference.repository()
                )
            }
        };
        Reference::parse(&path).expect("a valid host, prefix and repository make a valid reference")
    }
}

/// A registry host as one repository path component: lowercase, `:port` as `-port`, IPv6
/// brackets dropped.
fn mirrored_registry_component(registry: &str) -> String {
    let mapped: String = registry
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::new();
    for part in mapped.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    out
}

/// Parse `--shard I/N` into a 0-based index and a count.
pub fn parse_shard(input: &str) -> Result<(u64, u64), MirrorError> {
    let bad = || MirrorError::BadShard(input.to_owned());
    let (i, n) = input.split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i - 1, n))
}

/// Whether entry `name` belongs to shard `index` of `count`: by a hash of the name, so that
/// adding an entry never moves the others between shards.
pub fn in_shard(name: &str, index: u64, count: u64) -> bool {
    let digest = Digest::sha256(name.as_bytes());
    let first = u64::from_str_radix(&digest.hex()[..16], 16).unwrap_or(0);
    first % count == index
}

/// Settings of a mirror run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Plan only: fetch manifests and check the destination, copy nothing.
    pub dry_run: bool,
    /// `(index, count)`: mirror only the entries of this shard.
    pub shard: Option<(u64, u64)>,
}

/// What happened to one image.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ImageReport {
    /// The lock entry's name.
    pub name: String,
    /// The locked reference.
    pub source: String,
    /// The reference at the destination, with the locked digest.
    pub mirror: String,
    /// The locked top-level digest, identical at the destination.
    pub digest: String,
    /// Whether the destination already had everything.
    pub up_to_date: bool,
    /// Blobs sent (or, in a dry run, that would be sent).
    pub blobs_copied: usize,
    /// Bytes sent (or that would be sent).
    pub bytes_copied: u64,
    /// Blobs mounted from another repository of the destination.
    pub blobs_mounted: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Manifests stored (or that would be stored).
    pub manifests: usize,
    /// Signature, attestation and SBOM manifests copied with the image.
    pub signatures: usize,
}

/// Shared state of one run: which destination repository holds which blob, for mounts.
#[derive(Default)]
struct Known {
    blobs: Mutex<HashMap<Digest, String>>,
}

/// Copy every locked image (of the shard) from `source` to `destination`.
pub async fn mirror_images(
    lock: &LockFile,
    source: Store<'_>,
    destination: Store<'_>,
    target: &Target,
    options: Options,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageReport>, MirrorError> {
    let images: Vec<&LockedImage> = lock
        .images
        .iter()
        .filter(|i| {
            options
                .shard
                .is_none_or(|(index, count)| in_shard(&i.name, index, count))
        })
        .collect();
    let known = Known::default();
    let mut reports = Vec::with_capacity(images.len());
    for image in images {
        let to = target.place(&image.reference);
        let shown = match target {
            Target::Layout(dir) => format!("oci:{}:{}", dir.display(), ref_name(&to)),
            Target::Registry { .. } => to.with_digest(image.digest.clone()).to_string(),
        };
        let copy = Copy {
            source,
            destination,
            from: image.reference.without_digest(),
            to,
            shown,
            dry_run: options.dry_run,
            known: &known,
            reporter,
        };
        let report = copy.image(image).await.map_err(|e| MirrorError::Image {
            name: image.name.clone(),
            destination: copy.shown.clone(),
            source: Box::new(e),
        })?;
        reports.push(report);
    }
    if let (Store::Layout(layout), false) = (destination, options.dry_run) {
        layout.save_index()?;
    }
    Ok(reports)
}

/// One image's copy between two stores.
struct Copy<'a> {
    source: Store<'a>,
    destination: Store<'a>,
    /// The image's repository (and tag) at the source.
    from: Reference,
    /// The image's repository (and tag) at the destination.
    to: Reference,
    /// How the image is named at the destination, for people and the map.
    shown: String,
    dry_run: bool,
    known: &'a Known,
    reporter: &'a dyn Reporter,
}

impl Copy<'_> {
    async fn image(&self, image: &LockedImage) -> Result<ImageReport, MirrorError> {
        let mut report = ImageReport {
            name: image.name.clone(),
            source: image.reference.to_string(),
            mirror: self.shown.clone(),
            digest: image.digest.to_string(),
            ..ImageReport::default()
        };
        // The name at the destination: the tag; in a layout, an image locked by digest alone is
        // named by its digest (a layout keeps only what `index.json` names).
        let layout_name = ref_name(&self.to);
        let tag = match (image.reference.tag(), self.destination) {
            (Some(tag), _) => Some(tag),
            (None, Store::Layout(_)) => layout_name.rsplit_once(':').map(|(_, tag)| tag),
            (None, Store::Registry(_)) => None,
        };

        // Up to date when the destination's tag already points at the locked digest, and
        // (in a layout, which nobody else checks) everything under it is really there.
        let current = match tag {
            Some(tag) => self.destination.tag_digest(&self.to.with_tag(tag)).await?,
            None => self
                .destination
                .has_manifest(&self.to, &image.digest)
                .await?
                .then(|| image.digest.clone()),
        };
        report.up_to_date = current.as_ref() == Some(&image.digest)
            && self.complete_at_destination(&image.digest).await?;
        if !report.up_to_date {
            let top = self.source.manifest(&self.from, &image.digest).await?;
            self.tree(&top, tag, &mut report).await?;
        }

        // Signatures, attestations, SBOMs and referrers travel with the image.
        report.signatures = signatures::copy(self, &image.digest, &mut report).await?;
        report.up_to_date &= report.signatures == 0;
        Ok(report)
    }

    /// Whether the destination holds manifest `digest` and everything under it. Registries
    /// check what they are given; a layout is only files, so it is checked here: every
    /// manifest read back and hashed, every blob present with its size.
    async fn complete_at_destination(&self, digest: &Digest) -> Result<bool, MirrorError> {
        let Store::Layout(layout) = self.destination else {
            return Ok(true);
        };
        let Ok(manifest) = self.destination.manifest(&self.to, digest).await else {
            return Ok(false);
        };
        let references = references(&manifest)?;
        for child in &references.manifests {
            if !Box::pin(self.complete_at_destination(child)).await? {
                return Ok(false);
            }
        }
        Ok(references
            .blobs
            .iter()
            .all(|(blob, size)| layout.has_blob(blob, Some(*size))))
    }

    /// Copy `manifest` and everything it references, children first, then store it under
    /// `tag` (or by digest).
    async fn tree(
        &self,
        manifest: &Manifest,
        tag: Option<&str>,
        report: &mut ImageReport,
    ) -> Result<(), MirrorError> {
        let references = references(manifest)?;
        for child in &references.manifests {
            let present = !self.dry_run
                && self.destination.has_manifest(&self.to, child).await?
                && self.complete_at_destination(child).await?;
            if present {
                continue;
            }
            let child = self.source.manifest(&self.from, child).await?;
            Box::pin(self.tree(&child, None, report)).await?;
        }
        self.blobs(&references.blobs, report).await?;
        report.manifests += 1;
        if !self.dry_run {
            self.destination
                .put_manifest(&self.to, manifest, tag)
                .await?;
        }
        Ok(())
    }

    /// Copy the blobs the destination lacks, a few at a time.
    async fn blobs(
        &self,
        blobs: &BTreeMap<Digest, u64>,
        report: &mut ImageReport,
    ) -> Result<(), MirrorError> {
        let outcomes: Vec<BlobOutcome> = stream::iter(blobs.iter())
            .map(|(digest, size)| self.blob(digest, *size))
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect()
            .await?;
        for outcome in outcomes {
            match outcome {
                BlobOutcome::Present => report.blobs_present += 1,
                BlobOutcome::Mounted => report.blobs_mounted += 1,
                BlobOutcome::Copied(bytes) => {
                    report.blobs_copied += 1;
                    report.bytes_copied += bytes;
                }
            }
        }
        Ok(())
    }

    async fn blob(&self, digest: &Digest, size: u64) -> Result<BlobOutcome, MirrorError> {
        if self.destination.has_blob(&self.to, digest, size).await? {
            self.remember(digest);
            return Ok(BlobOutcome::Present);
        }
        if self.dry_run {
            return Ok(BlobOutcome::Copied(size));
        }
        let mount_from = self
            .known
            .blobs
            .lock()
            .expect("known blobs")
            .get(digest)
            .cloned();
        let mut attempt = 0;
        loop {
            let task = self.reporter.start(&short(digest), Some(size), Unit::Bytes);
            let result = self
                .transfer(digest, size, mount_from.as_deref(), task)
                .await;
            self.reporter.finish(task);
            attempt += 1;
            match result {
                Ok(mounted) => {
                    self.remember(digest);
                    return Ok(if mounted {
                        BlobOutcome::Mounted
                    } else {
                        BlobOutcome::Copied(size)
                    });
                }
                Err(e) if attempt < BLOB_ATTEMPTS && is_transient(&e) => {
                    tracing::debug!(%digest, error = %e, "blob copy broke; starting it again");
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn transfer(
        &self,
        digest: &Digest,
        size: u64,
        mount_from: Option<&str>,
        task: usize,
    ) -> Result<bool, MirrorError> {
        let body = self.source.blob(&self.from, digest).await?;
        // The stream must be 'static, so it counts into an atomic that is read here.
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = std::sync::Arc::clone(&counter);
        let receive =
            self.destination
                .receive_blob(&self.to, digest, size, mount_from, body, move |n| {
                    seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                });
        tokio::pin!(receive);
        let mut reported = 0;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let result = loop {
            tokio::select! {
                result = &mut receive => break result,
                _ = tick.tick() => {
                    let now = counter.load(std::sync::atomic::Ordering::Relaxed);
                    self.reporter.advance(task, now - reported);
                    reported = now;
                }
            }
        };
        let now = counter.load(std::sync::atomic::Ordering::Relaxed);
        self.reporter.advance(task, now - reported);
        // The bytes came from the source: name it, not the destination.
        result.map_err(|e| match e {
            MirrorError::Tampered { mismatch, .. } => MirrorError::Tampered {
                what: format!("blob `{digest}` served by `{}`", self.source_name()),
                mismatch,
            },
            other => other,
        })
    }

    /// The source, as people name it: the repository, or the layout's directory.
    fn source_name(&self) -> String {
        match self.source {
            Store::Registry(_) => self.from.name(),
            Store::Layout(layout) => format!("oci:{}", layout.root().display()),
        }
    }

    fn remember(&self, digest: &Digest) {
        if let Store::Registry(_) = self.destination {
            self.known
                .blobs
                .lock()
                .expect("known blobs")
                .entry(digest.clone())
                .or_insert_with(|| self.to.repository().to_owned());
        }
    }
}

enum BlobOutcome {
    Present,
    Mounted,
    Copied(u64),
}

fn is_transient(error: &MirrorError) -> bool {
    match error {
        MirrorError::Registry(RegistryError::Transport { .. }) => true,
        MirrorError::Registry(RegistryError::Status { status, .. }) => {
            crate::registry::retry::RetryPolicy::is_transient(*status)
        }
        _ => false,
    }
}

fn short(digest: &Digest) -> String {
    format!("{}:{}", digest.algorithm().name(), &digest.hex()[..12])
}

/// What a manifest references: child manifests (of an index) and blobs (config, layers).
#[derive(Debug, Default)]
struct References {
    manifests: Vec<Digest>,
    blobs: BTreeMap<Digest, u64>,
}

fn references(manifest: &Manifest) -> Result<References, MirrorError> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        manifests: Vec<Descriptor>,
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
        size: u64,
    }
    let bad = |reason: String| MirrorError::BadManifest {
        digest: manifest.digest.clone(),
        reason,
    };
    let raw: Raw = serde_json::from_slice(&manifest.bytes).map_err(|e| bad(e.to_string()))?;
    let parse = |d: &Descriptor| -> Result<Digest, MirrorError> {
        d.digest
            .parse()
            .map_err(|e: crate::digest::DigestError| bad(e.to_string()))
    };
    let mut out = References::default();
    if manifest::is_index(&manifest.media_type) || !raw.manifests.is_empty() {
        for d in &raw.manifests {
            out.manifests.push(parse(d)?);
        }
        return Ok(out);
    }
    for d in raw.config.iter().chain(&raw.layers) {
        out.blobs.insert(parse(d)?, d.size);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            "localhost:5000/mirror".parse::<Target>().unwrap(),
            Target::Registry {
                host: "localhost:5000".to_owned(),
                prefix: "mirror".to_owned()
            }
        );
        assert_eq!(
            "oci:./out".parse::<Target>().unwrap(),
            Target::Layout(PathBuf::from("./out"))
        );
        for bad in [
            "mirror",
            "oci:",
            "https://r.example/x",
            "r.example/Upper",
            "r.example/a//b",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn places_keep_the_source_registry_and_repository_under_the_prefix() {
        let target: Target = "registry.lan:5000/mirror".parse().unwrap();
        let place = |r: &str| target.place(&Reference::parse(r).unwrap()).to_string();
        assert_eq!(
            place("ubuntu:22.04"),
            "registry.lan:5000/mirror/docker.io/library/ubuntu:22.04"
        );
        assert_eq!(
            place(
                "localhost:5000/team/app:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ),
            "registry.lan:5000/mirror/localhost-5000/team/app:1"
        );
        assert_eq!(mirrored_registry_component("[::1]:5000"), "1-5000");
    }

    #[test]
    fn shards_partition_entries() {
        let names: Vec<String> = (0..100).map(|i| format!("image-{i}")).collect();
        let mut seen = 0;
        for index in 0..3 {
            seen += names.iter().filter(|n| in_shard(n, index, 3)).count();
        }
        assert_eq!(seen, 100, "every entry is in exactly one shard");
        assert_eq!(parse_shard("2/4").unwrap(), (1, 4));
        for bad in ["0/4", "5/4", "1/0", "x", "1-2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
