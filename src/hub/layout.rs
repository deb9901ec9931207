//! Where pulled files go: the Hugging Face cache layout, or a plain `--local-dir`.
//!
//! The cache layout is the one `huggingface_hub` reads with `HF_HUB_OFFLINE=1`:
//!
//! ```text
//! models--org--name/blobs/<etag>                    the bytes (etag: LFS sha256 or git sha1)
//! models--org--name/snapshots/<commit>/<path>       relative symlink to the blob
//! models--org--name/refs/<revision>                 the commit a branch or tag named
//! ```
//!
//! Partial downloads live beside the final files (so the last step is a rename on one file
//! system) but outside any path a loader reads. Directories on the way to a file are created one
//! by one and must not be symbolic links, so a link planted in `--local-dir` cannot redirect a
//! write outside it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{HubError, cache_dir_name, io_error};
use crate::digest::Digest;
use crate::lock::LockedFile;

/// Where a command puts (or looks for) model files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The Hugging Face cache rooted here (the `hub` directory).
    Cache(PathBuf),
    /// One model's files, laid out as in the repository.
    LocalDir(PathBuf),
}

/// The place of one model inside a [`Target`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    cache: bool,
    root: PathBuf,
}

/// A file already on disk that may be the wanted one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The file (a blob, in the cache).
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// For a cache blob that no snapshot links to yet: the blob's name.
    pub unlinked_blob: Option<String>,
}

impl Target {
    /// Where model `repo` goes.
    pub fn place(&self, repo: &str) -> Place {
        match self {
            Self::Cache(root) => Place {
                cache: true,
                root: root.join(cache_dir_name(repo)),
            },
            Self::LocalDir(dir) => Place {
                cache: false,
                root: dir.clone(),
            },
        }
    }
}

impl Place {
    /// The model's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory a loader opens: the snapshot of `commit`, or the local directory.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        if self.cache {
            self.root.join("snapshots").join(commit)
        } else {
            self.root.clone()
        }
    }

    /// Where a loader reads `path` of `commit`.
    pub fn final_path(&self, commit: &str, path: &str) -> PathBuf {
        self.snapshot(commit).join(path)
    }

    /// The partial download of `file`: named by content and path, so a rerun finds it.
    pub fn part_path(&self, file: &LockedFile) -> PathBuf {
        let dir = if self.cache {
            self.root.join(".aisupply-partial")
        } else {
            self.root.join(".cache/aisupply/partial")
        };
        let path_hash = Digest::sha256(file.path.as_bytes());
        dir.join(format!("{}-{}", file.sha256.hex(), &path_hash.hex()[..16]))
    }

    /// A file on disk that may already hold `file` of `commit`.
    pub fn existing(&self, commit: &str, file: &LockedFile) -> Result<Option<Existing>, HubError> {
        let final_path = self.final_path(commit, &file.path);
        if !self.cache {
            check_no_links(&self.root, Path::new(&file.path))?;
            return Ok(match fs::symlink_metadata(&final_path) {
                Ok(m) if m.is_file() => Some(Existing {
                    path: final_path,
                    size: m.len(),
                    unlinked_blob: None,
                }),
                _ => None,
            });
        }
        if let Ok(m) = fs::metadata(&final_path)
            && m.is_file()
        {
            return Ok(Some(Existing {
                path: final_path,
                size: m.len(),
                unlinked_blob: None,
            }));
        }
        for name in [file.sha256.hex(), file.git_sha1.as_str()] {
            let blob = self.root.join("blobs").join(name);
            if let Ok(m) = fs::symlink_metadata(&blob)
                && m.is_file()
            {
                return Ok(Some(Existing {
                    path: blob,
                    size: m.len(),
                    unlinked_blob: Some(name.to_owned()),
                }));
            }
        }
        Ok(None)
    }

    /// The blob name of `file`: its SHA-256 when the Hub's etag says it is an LFS object,
    /// else its git SHA-1, as `huggingface_hub` names blobs. Only names from the lock are used.
    pub fn blob_name(file: &LockedFile, etag: Option<&str>) -> String {
        if etag == Some(file.sha256.hex()) || etag.is_none() && file.size > 10 * 1024 * 1024 {
            file.sha256.hex().to_owned()
        } else {
            file.git_sha1.clone()
        }
    }

    /// The blob name of a file restored without the Hub (no etag to go by), from its bytes in
    /// `part`: its git SHA-1 when that is the SHA-1 of these bytes (a file stored in git), else
    /// its SHA-256 (an LFS object, whose git SHA-1 is of its pointer). The Hub keeps every file
    /// over 10 MB in LFS, so those are not read again.
    pub fn blob_name_from_bytes(file: &LockedFile, part: &Path) -> Result<String, HubError> {
        use sha1::Digest as _;
        if file.size > 10 * 1024 * 1024 {
            return Ok(file.sha256.hex().to_owned());
        }
        let bytes = fs::read(part).map_err(io_error("read", part))?;
        let mut git = sha1::Sha1::new();
        git.update(format!("blob {}\0", bytes.len()).as_bytes());
        git.update(&bytes);
        Ok(if hex::encode(git.finalize()) == file.git_sha1 {
            file.git_sha1.clone()
        } else {
            file.sha256.hex().to_owned()
        })
    }

    /// Move the verified, synced `part` to its final place and return the path a loader reads.
    pub fn place(
        &self,
        commit: &str,
        file: &LockedFile,
        part: &Path,
        blob_name: &str,
    ) -> Result<PathBuf, HubError> {
        if !self.cache {
            let final_path = self.final_path(commit, &file.path);
            ensure_dirs(&self.root, parent(Path::new(&file.path)))?;
            rename(part, &final_path)?;
            return Ok(final_path);
        }
        ensure_dirs(&self.root, Path::new("blobs"))?;
        let blob = self.root.join("blobs").join(blob_name);
        rename(part, &blob)?;
        self.link(commit, file, blob_name)
    }

    /// Point the snapshot of `commit` at blob `blob_name` (cache only).
    pub fn link(
        &self,
        commit: &str,
        file: &LockedFile,
        blob_name: &str,
    ) -> Result<PathBuf, HubError> {
        let relative_file = Path::new(&file.path);
        let in_snapshot = Path::new("snapshots").join(commit);
        ensure_dirs(&self.root, &in_snapshot.join(parent(relative_file)))?;

        // From snapshots/<commit>/<dirs>/ back up to the model directory, then into blobs/.
        let ups = relative_file.components().count() + 1;
        let mut target = PathBuf::new();
        for _ in 0..ups {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob_name);

        let final_path = self.final_path(commit, &file.path);
        if fs::read_link(&final_path).is_ok_and(|held| held == target) {
            return Ok(final_path);
        }
        let temp = final_path.with_file_name(format!(
            ".{}.aisupply-link-{}",
            final_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("file"),
            fastrand::u64(..)
        ));
        std::os::unix::fs::symlink(&target, &temp).map_err(io_error("create link", &temp))?;
        rename(&temp, &final_path)?;
        Ok(final_path)
    }

    /// Remove a copy of `file` that failed its hash: the bytes (in the cache, the blob the
    /// snapshot links to) and the snapshot link. Returns what was removed.
    pub fn remove_bad(
        &self,
        commit: &str,
        file: &LockedFile,
        existing: &Existing,
    ) -> Result<Vec<PathBuf>, HubError> {
        let mut removed = Vec::new();
        let final_path = self.final_path(commit, &file.path);
        if self.cache && existing.path == final_path {
            // Only a blob of this model is removed, whatever the link says.
            let blobs = fs::canonicalize(self.root.join("blobs")).ok();
            let blob = fs::canonicalize(&final_path).ok();
            if let (Some(blobs), Some(blob)) = (blobs, blob)
                && blob.parent() == Some(blobs.as_path())
            {
                remove(&blob)?;
                removed.push(blob);
            }
        } else {
            remove(&existing.path)?;
            removed.push(existing.path.clone());
        }
        if !removed.contains(&final_path) && fs::symlink_metadata(&final_path).is_ok() {
            remove(&final_path)?;
            removed.push(final_path);
        }
        Ok(removed)
    }

    /// Record that `revision` names `commit` (cache only; a commit needs no ref). A ref that
    /// already names `commit` is left alone, so a complete read-only cache can be pulled.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if !self.cache || revision == commit {
            return Ok(());
        }
        let relative = Path::new("refs").join(revision);
        let path = self.root.join(&relative);
        if fs::read_to_string(&path).is_ok_and(|held| held.trim() == commit) {
            return Ok(());
        }
        ensure_dirs(&self.root, parent(&relative))?;
        crate::lock::write_atomically(&path, commit.as_bytes()).map_err(io_error("write", &path))
    }

    /// Create the directory that holds partial downloads.
    pub fn ensure_part_dir(&self, part: &Path) -> Result<(), HubError> {
        let relative = part.strip_prefix(&self.root).unwrap_or(part);
        ensure_dirs(&self.root, parent(relative))
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn remove(path: &Path) -> Result<(), HubError> {
    fs::remove_file(path).map_err(io_error("remove", path))
}

fn rename(from: &Path, to: &Path) -> Result<(), HubError> {
    if fs::symlink_metadata(to).is_ok_and(|m| m.is_dir()) {
        return Err(HubError::Io {
            action: "replace",
            path: to.to_owned(),
            source: std::io::Error::new(ErrorKind::IsADirectory, "a directory is in the way"),
        });
    }
    fs::rename(from, to).map_err(io_error("move a verified file to", to))?;
    if let Some(dir) = to.parent().and_then(|d| fs::File::open(d).ok()) {
        // Make the rename durable; not every file system lets a directory be synced.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Create `relative` below `root` one directory at a time, refusing symbolic links.
fn ensure_dirs(root: &Path, relative: &Path) -> Result<(), HubError> {
    fs::create_dir_all(root).map_err(io_error("create directory", root))?;
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(HubError::SymlinkInTarget { path: current });
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HubError::Io {
                    action: "create directory",
                    path: current,
                    source: std::io::Error::new(ErrorKind::AlreadyExists, "a file is in the way"),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => match fs::create_dir(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("create directory", &current)(e)),
            },
            Err(e) => return Err(io_error("inspect", &current)(e)),
        }
    }
    Ok(())
}

/// Refuse a symbolic link among the existing directories on the way to `relative`.
fn check_no_links(root: &Path, relative: &Path) -> Result<(), HubError> {
    let mut current = root.to_path_buf();
    for component in parent(relative).components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(HubError::SymlinkInTarget { path: current });
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> LockedFile {
        LockedFile {
            path: path.to_owned(),
            size: 3,
            sha256: Digest::sha256(b"abc"),
            git_sha1: "f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f".to_owned(),
        }
    }

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Regression: without a Hub etag, a small file stored in LFS was named by the git SHA-1
    /// of its pointer, where `pull` and huggingface_hub name it by its SHA-256.
    #[test]
    fn restored_blobs_are_named_as_the_hub_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("part");
        fs::write(&part, b"abc").unwrap();
        let in_git = file("a.txt");
        assert_eq!(
            Place::blob_name_from_bytes(&in_git, &part).unwrap(),
            in_git.git_sha1
        );
        let in_lfs = LockedFile {
            git_sha1: "d49eff1e4a6f0e3ba5069f21c6d20aad156dd2c9".to_owned(),
            ..file("small.bin")
        };
        assert_eq!(
            Place::blob_name_from_bytes(&in_lfs, &part).unwrap(),
            in_lfs.sha256.hex()
        );
    }

    #[test]
    fn cache_links_are_relative_and_resolve_to_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let place = Target::Cache(dir.path().to_owned()).place("org/name");
        let f = file("1_Pooling/config.json");
        let part = place.part_path(&f);
        place.ensure_part_dir(&part).unwrap();
        fs::write(&part, b"abc").unwrap();

        let placed = place.place(COMMIT, &f, &part, &f.git_sha1).unwrap();

        let link = fs::read_link(&placed).unwrap();
        assert_eq!(link, Path::new("../../../blobs").join(&f.git_sha1));
        assert_eq!(fs::read(&placed).unwrap(), b"abc");
        assert!(placed.starts_with(dir.path().join("models--org--name/snapshots")));
        place.write_ref("main", COMMIT).unwrap();
        let refs = dir.path().join("models--org--name/refs/main");
        assert_eq!(fs::read_to_string(refs).unwrap(), COMMIT);
    }

    #[test]
    fn a_symlinked_folder_in_a_local_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("1_Pooling")).unwrap();
        let place = Target::LocalDir(dir.path().to_owned()).place("org/name");
        let f = file("1_Pooling/config.json");
        let part = place.part_path(&f);
        place.ensure_part_dir(&part).unwrap();
        fs::write(&part, b"abc").unwrap();

        let err = place.place(COMMIT, &f, &part, "x").unwrap_err();

        assert!(matches!(err, HubError::SymlinkInTarget { .. }), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(place.existing(COMMIT, &f).is_err());
    }
}
