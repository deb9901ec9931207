//! Where images are copied from and to: a registry or an OCI layout, behind one set of
//! operations so that the copy logic does not care which.
//!
//! A place in a store is named by a [`Reference`]: in a registry, its repository (and tag); in
//! a layout, the ref name `<registry>/<repository>:<tag>` that `index.json` records.

use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Mismatch, verify_stream};
use crate::mirror::MirrorError;
use crate::mirror::layout::{Descriptor, Layout};
use crate::reference::Reference;
use crate::registry::{BlobStream, Client, RegistryError, manifest};

/// A registry or a layout.
#[derive(Clone, Copy, Debug)]
pub enum Store<'a> {
    /// A registry, reached through a client.
    Registry(&'a Client),
    /// An OCI image layout directory.
    Layout(&'a Layout),
}

/// A manifest with its exact bytes.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Its digest, verified against the bytes.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// The ref name a layout uses for `place`: `<name>:<tag>`, or for an image locked by digest
/// alone `<name>:sha256_<hex>` (a valid tag, and unlike cosign's `sha256-<hex>`).
pub fn ref_name(place: &Reference) -> String {
    match (place.tag(), place.digest()) {
        (Some(tag), _) => format!("{}:{tag}", place.name()),
        (None, Some(digest)) => {
            format!(
                "{}:{}_{}",
                place.name(),
                digest.algorithm().name(),
                digest.hex()
            )
        }
        (None, None) => format!("{}:latest", place.name()),
    }
}

impl Store<'_> {
    /// Manifest `digest` of `place`'s repository, verified.
    pub async fn manifest(
        &self,
        place: &Reference,
        digest: &Digest,
    ) -> Result<Manifest, MirrorError> {
        match self {
            Store::Registry(client) => {
                let found = client
                    .fetch_manifest(&place.with_digest(digest.clone()), Some(digest))
                    .await?;
                Ok(Manifest {
                    digest: found.digest,
                    media_type: found.media_type,
                    bytes: found.bytes.unwrap_or_default(),
                })
            }
            Store::Layout(layout) => {
                let bytes = layout.read_small(digest).await?;
                Ok(Manifest {
                    digest: digest.clone(),
                    media_type: media_type_of(&bytes),
                    bytes,
                })
            }
        }
    }

    /// The manifest `place`'s tag points at, or `None` when there is no such tag.
    pub async fn tagged(&self, place: &Reference) -> Result<Option<Manifest>, MirrorError> {
        match self {
            Store::Registry(client) => match client.fetch_manifest(place, None).await {
                Ok(found) => Ok(Some(Manifest {
                    digest: found.digest,
                    media_type: found.media_type,
                    bytes: found.bytes.unwrap_or_default(),
                })),
                Err(RegistryError::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Store::Layout(layout) => match layout.lookup(&ref_name(place))? {
                Some(descriptor) => self.manifest(place, &descriptor.digest).await.map(Some),
                None => Ok(None),
            },
        }
    }

    /// The digest `place`'s tag points at, or `None`.
    pub async fn tag_digest(&self, place: &Reference) -> Result<Option<Digest>, MirrorError> {
        match self {
            Store::Registry(client) => match client.head(place).await {
                Ok(found) => Ok(Some(found.digest)),
                Err(RegistryError::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Store::Layout(layout) => Ok(layout.lookup(&ref_name(place))?.map(|d| d.digest)),
        }
    }

    /// Whether the store holds manifest `digest` in `place`'s repository.
    pub async fn has_manifest(
        &self,
        place: &Reference,
        digest: &Digest,
    ) -> Result<bool, MirrorError> {
        match self {
            Store::Registry(client) => Ok(client.manifest_exists(place, digest).await?),
            Store::Layout(layout) => Ok(layout.has_blob(digest, None)),
        }
    }

    /// Whether the store holds blob `digest` of `size` bytes in `place`'s repository.
    pub async fn has_blob(
        &self,
        place: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, MirrorError> {
        match self {
            Store::Registry(client) => Ok(client
                .blob_size(place, digest)
                .await?
                .is_some_and(|found| found == size || found == 0)),
            Store::Layout(layout) => Ok(layout.has_blob(digest, Some(size))),
        }
    }

    /// Blob `digest` as a stream.
    pub async fn blob(
        &self,
        place: &Reference,
        digest: &Digest,
    ) -> Result<BlobStream, MirrorError> {
        match self {
            Store::Registry(client) => Ok(client.blob_stream(place, digest).await?.1),
            Store::Layout(layout) => Ok(layout.blob_stream(digest).await?.1),
        }
    }

    /// Copy blob `digest` (`size` bytes) from `source` into this store, verifying it while it
    /// streams. `mount_from` names a repository of this registry known to hold the blob.
    /// Returns whether it was mounted rather than uploaded.
    pub async fn receive_blob(
        &self,
        place: &Reference,
        digest: &Digest,
        size: u64,
        mount_from: Option<&str>,
        source: BlobStream,
        on_bytes: impl FnMut(u64) + Send + 'static,
    ) -> Result<bool, MirrorError> {
        let mismatch: Arc<Mutex<Option<Mismatch>>> = Arc::default();
        let verified: BlobStream = Box::pin(verify_stream(
            source,
            digest.clone(),
            Some(size),
            Arc::clone(&mismatch),
            on_bytes,
        ));
        let result = match self {
            Store::Registry(client) => {
                let upload = match mount_from {
                    Some(from) => match client.mount_blob(place, digest, from).await? {
                        None => return Ok(true),
                        Some(upload) => upload,
                    },
                    None => client.start_upload(place).await?,
                };
                client
                    .finish_upload(place, upload, digest, Some(size), verified)
                    .await
                    .map_err(MirrorError::from)
            }
            Store::Layout(layout) => layout
                .write_blob(digest, verified)
                .await
                .map(|_| ())
                .map_err(MirrorError::from),
        };
        // A mismatch found while streaming is the real cause of whatever failed after it.
        if let Some(found) = mismatch.lock().expect("mismatch slot").take() {
            return Err(MirrorError::Tampered {
                what: format!("blob `{digest}` of `{}`", place.name()),
                mismatch: found,
            });
        }
        result.map(|()| false)
    }

    /// Store `manifest` in `place`'s repository, under `tag` when given (else by digest).
    pub async fn put_manifest(
        &self,
        place: &Reference,
        manifest: &Manifest,
        tag: Option<&str>,
    ) -> Result<(), MirrorError> {
        match self {
            Store::Registry(client) => {
                let target = tag.map_or_else(|| manifest.digest.to_string(), str::to_owned);
                client
                    .put_manifest(place, &target, &manifest.media_type, &manifest.bytes)
                    .await?;
            }
            Store::Layout(layout) => {
                layout
                    .write_bytes(&manifest.digest, manifest.bytes.clone())
                    .await?;
                if let Some(tag) = tag {
                    let descriptor = Descriptor {
                        media_type: manifest.media_type.clone(),
                        digest: manifest.digest.clone(),
                        size: manifest.bytes.len() as u64,
                        annotations: std::collections::BTreeMap::new(),
                    };
                    layout.name(&ref_name(&place.with_tag(tag)), descriptor);
                }
            }
        }
        Ok(())
    }

    /// The referrers index of `digest` from the referrers API; `None` when the store has no
    /// such API (layouts, and registries such as CNCF distribution 2.8).
    pub async fn referrers(
        &self,
        place: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, MirrorError> {
        match self {
            Store::Registry(client) => Ok(client.referrers(place, digest).await?),
            Store::Layout(_) => Ok(None),
        }
    }
}

/// The media type of a manifest read from a layout, which has no `Content-Type` to go by.
fn media_type_of(bytes: &[u8]) -> String {
    manifest::media_type_of(bytes, "").unwrap_or_else(|| manifest::OCI_MANIFEST.to_owned())
}
