//! OCI image layouts (`oci:DIR`): a directory of content-addressed blobs and an `index.json`
//! naming the images in it, the form that carries images across an air gap.
//!
//! Blobs are written to a temporary file, hashed as they stream, flushed and only then renamed
//! into `blobs/<algorithm>/<hex>`, so a blob at its final path always matches its name. Names
//! (`org.opencontainers.image.ref.name`) are recorded in `index.json`, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::digest::{Digest, Hasher, Mismatch};
use crate::registry::BlobStream;

/// The annotation that names an image in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";

/// An OCI image layout directory.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    /// Names to add to `index.json` when the run is over.
    pending: Mutex<BTreeMap<String, Descriptor>>,
}

/// A descriptor as `index.json` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations, among them the ref name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Why a layout cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The directory is not an OCI layout.
    #[error("`{}` is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A file of the layout cannot be read or written.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A blob's bytes do not match its name.
    #[error("blob `{digest}` of layout `{}` does not match its digest\n  expected: {}\n  computed: {}", path.display(), mismatch.expected, mismatch.computed)]
    Corrupt {
        /// The layout.
        path: PathBuf,
        /// The blob.
        digest: Digest,
        /// Expected and computed digests.
        mismatch: Mismatch,
    },
    /// The layout has no blob with this digest.
    #[error("layout `{}` has no blob `{digest}`", path.display())]
    MissingBlob {
        /// The layout.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
}

impl Layout {
    /// Open an existing layout for reading.
    pub fn open(root: &Path) -> Result<Self, LayoutError> {
        let not_a_layout = |reason: &str| LayoutError::NotALayout {
            path: root.to_owned(),
            reason: reason.to_owned(),
        };
        let marker = std::fs::read_to_string(root.join(LAYOUT_FILE))
            .map_err(|_| not_a_layout("it has no `oci-layout` file"))?;
        let version: serde_json::Value = serde_json::from_str(&marker)
            .map_err(|_| not_a_layout("its `oci-layout` file is not JSON"))?;
        if version
            .get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return Err(not_a_layout(
                "its `oci-layout` file has no `imageLayoutVersion`",
            ));
        }
        let layout = Self {
            root: root.to_owned(),
            pending: Mutex::new(BTreeMap::new()),
        };
        layout.read_index()?;
        Ok(layout)
    }

    /// Open the layout at `root`, creating it when the directory is missing or empty.
    pub fn create(root: &Path) -> Result<Self, LayoutError> {
        // A directory holding only what a layout being created holds (another run may be
        // creating it right now) is created, idempotently; anything else must be a layout.
        let layout_part = |name: &std::ffi::OsStr| {
            let name = name.to_string_lossy();
            [LAYOUT_FILE, INDEX_FILE, "blobs"].contains(&name.as_ref())
                || name.starts_with(".aisupply-")
        };
        let empty = match std::fs::read_dir(root) {
            Ok(mut entries) => {
                let marker = root.join(LAYOUT_FILE);
                !marker.exists() && entries.all(|e| e.is_ok_and(|e| layout_part(&e.file_name())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(source) => {
                return Err(LayoutError::Io {
                    action: "read",
                    path: root.to_owned(),
                    source,
                });
            }
        };
        if !empty {
            return Self::open(root);
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LayoutError::Io {
                action: "create",
                path,
                source,
            }
        };
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        let marker = root.join(LAYOUT_FILE);
        // Written atomically: a concurrent run must never read a half-written marker.
        crate::lock::write_atomically(&marker, b"{\"imageLayoutVersion\":\"1.0.0\"}")
            .map_err(io(&marker))?;
        let index = root.join(INDEX_FILE);
        if !index.exists() {
            crate::lock::write_atomically(&index, b"{\"schemaVersion\":2,\"manifests\":[]}")
                .map_err(io(&index))?;
        }
        Self::open(root)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn read_index(&self) -> Result<Index, LayoutError> {
        let path = self.root.join(INDEX_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| LayoutError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| LayoutError::NotALayout {
            path: self.root.clone(),
            reason: format!("its `index.json` is not an OCI index: {e}"),
        })
    }

    /// The descriptor named `name`, from `index.json` or added during this run.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>, LayoutError> {
        if let Some(found) = self.pending.lock().expect("layout lock").get(name) {
            return Ok(Some(found.clone()));
        }
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == name)))
    }

    /// Whether the layout holds blob `digest` (with `size` bytes, when given).
    pub fn has_blob(&self, digest: &Digest, size: Option<u64>) -> bool {
        std::fs::metadata(self.blob_path(digest))
            .is_ok_and(|m| m.is_file() && size.is_none_or(|s| s == m.len()))
    }

    /// Store `body` as blob `digest`, verifying it as it streams; the blob appears under its
    /// name only when complete and verified.
    pub async fn write_blob(
        &self,
        digest: &Digest,
        mut body: BlobStream,
    ) -> Result<u64, LayoutError> {
        let dir = self
            .blob_path(digest)
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| LayoutError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let temp = tempfile::Builder::new()
            .prefix(".aisupply-")
            .tempfile_in(&dir)
            .map_err(io("create a temporary file in", &dir))?;
        let (std_file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = Hasher::new(digest.algorithm());
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(io("download into", &temp_path))?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(io("write", &temp_path))?;
            written += chunk.len() as u64;
        }
        let computed = hasher.finish();
        if computed != *digest {
            return Err(LayoutError::Corrupt {
                path: self.root.clone(),
                digest: digest.clone(),
                mismatch: Mismatch {
                    expected: digest.clone(),
                    computed,
                },
            });
        }
        file.sync_all().await.map_err(io("flush", &temp_path))?;
        // Blobs are read by whoever carries the layout on, not only by us.
        {
            use std::os::unix::fs::PermissionsExt as _;
            let readable = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(&temp_path, readable)
                .map_err(io("set the mode of", &temp_path))?;
        }
        let target = self.blob_path(digest);
        temp_path.persist(&target).map_err(|e| LayoutError::Io {
            action: "rename into",
            path: target.clone(),
            source: e.error,
        })?;
        Ok(written)
    }

    /// Store small content (a manifest) as a blob.
    pub async fn write_bytes(&self, digest: &Digest, bytes: Vec<u8>) -> Result<(), LayoutError> {
        if self.has_blob(digest, Some(bytes.len() as u64)) {
            return Ok(());
        }
        let stream: BlobStream =
            Box::pin(futures_util::stream::once(
                async move { Ok(Bytes::from(bytes)) },
            ));
        self.write_blob(digest, stream).await.map(|_| ())
    }

    /// Blob `digest` as a stream of 256 KiB chunks, with its size. The consumer verifies.
    pub async fn blob_stream(&self, digest: &Digest) -> Result<(u64, BlobStream), LayoutError> {
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| LayoutError::MissingBlob {
                path: self.root.clone(),
                digest: digest.clone(),
            })?;
        let size = file
            .metadata()
            .await
            .map_err(|source| LayoutError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?
            .len();
        Ok((size, file_chunks(file)))
    }

    /// Read blob `digest` whole (manifests and configs only) and verify it.
    pub async fn read_small(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|_| LayoutError::MissingBlob {
                path: self.root.clone(),
                digest: digest.clone(),
            })?;
        digest
            .verify(&bytes)
            .map_err(|mismatch| LayoutError::Corrupt {
                path: self.root.clone(),
                digest: digest.clone(),
                mismatch,
            })?;
        Ok(bytes)
    }

    /// Name `descriptor` `name` in `index.json` once [`Layout::save_index`] runs.
    pub fn name(&self, name: &str, mut descriptor: Descriptor) {
        descriptor
            .annotations
            .insert(REF_NAME.to_owned(), name.to_owned());
        self.pending
            .lock()
            .expect("layout lock")
            .insert(name.to_owned(), descriptor);
    }

    /// Write the names added during this run into `index.json`, atomically, replacing entries
    /// of the same name and keeping every other entry.
    pub fn save_index(&self) -> Result<(), LayoutError> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("layout lock"));
        if pending.is_empty() {
            return Ok(());
        }
        // Another run (another shard) may be naming images in the same layout: the read, merge
        // and replace of `index.json` happen under an exclusive lock on `oci-layout`, the one
        // file of a layout that is never replaced.
        let marker = self.root.join(LAYOUT_FILE);
        let io = |action, source| LayoutError::Io {
            action,
            path: marker.clone(),
            source,
        };
        let guard = std::fs::File::open(&marker).map_err(|e| io("open", e))?;
        guard.lock().map_err(|e| io("lock", e))?;
        let mut index = self.read_index()?;
        index.schema_version = 2;
        index.manifests.retain(|d| {
            d.annotations
                .get(REF_NAME)
                .is_none_or(|name| !pending.contains_key(name))
        });
        index.manifests.extend(pending.into_values());
        let text = serde_json::to_string_pretty(&index).expect("an index serializes");
        let path = self.root.join(INDEX_FILE);
        crate::lock::write_atomically(&path, text.as_bytes()).map_err(|source| LayoutError::Io {
            action: "write",
            path,
            source,
        })
    }
}

/// A file's bytes as a stream of 256 KiB chunks, read as the consumer asks for them.
pub fn file_chunks(file: tokio::fs::File) -> BlobStream {
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(bytes: &'static [u8]) -> BlobStream {
        Box::pin(futures_util::stream::iter(
            bytes.chunks(3).map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    #[tokio::test]
    async fn blobs_round_trip_and_names_persist() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let digest = Digest::sha256(b"hello layout");
        layout
            .write_blob(&digest, stream(b"hello layout"))
            .await
            .unwrap();
        assert!(layout.has_blob(&digest, Some(12)));
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(dir.path().join("blobs/sha256").join(digest.hex()))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode & 0o777, 0o644, "blobs are readable by others");
        assert_eq!(layout.read_small(&digest).await.unwrap(), b"hello layout");
        layout.name(
            "docker.io/library/x:1",
            Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                digest: digest.clone(),
                size: 12,
                annotations: BTreeMap::new(),
            },
        );
        layout.save_index().unwrap();
        let reopened = Layout::open(dir.path()).unwrap();
        assert_eq!(
            reopened
                .lookup("docker.io/library/x:1")
                .unwrap()
                .unwrap()
                .digest,
            digest
        );
    }

    #[tokio::test]
    async fn a_corrupt_blob_never_reaches_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let digest = Digest::sha256(b"the real bytes");
        let err = layout
            .write_blob(&digest, stream(b"other bytes"))
            .await
            .unwrap_err();
        assert!(matches!(err, LayoutError::Corrupt { .. }), "{err}");
        assert!(!layout.has_blob(&digest, None));
        let leftovers = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "the temporary file is removed");
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let err = Layout::create(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("is not an OCI image layout"),
            "{err}"
        );
    }
}
