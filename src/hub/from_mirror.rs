//! `aisupply pull --from`: restore locked models from their ModelPack artifacts in a mirror
//! (a registry or an OCI layout) instead of the Hub.
//!
//! The artifact is untrusted: the lock decides what is written. Every layer must name, through
//! its `org.cncf.model.filepath` annotation, a file the lock has, by a relative path that stays
//! inside the target, with the locked SHA-256 as its digest; anything else refuses the whole
//! model before a byte is written. Each file then streams into its partial file while it is
//! hashed, and a model's files reach their final paths only once every one of them matched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::layout::{Place, Target};
use super::pull::{FileStatus, PulledFile, PulledModel, Report};
use super::{FileMismatch, HubError, download, io_error, path};
use crate::digest::{Algorithm, Hasher, Mismatch};
use crate::lock::{LockedFile, LockedModel};
use crate::mirror::models::{self, ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, FILEPATH, ModelError};
use crate::mirror::{Store, Target as Mirror};
use crate::progress::{Reporter, Unit};
use crate::reference::Reference;

/// Restore `models` from `mirror` (read through `source`) into `target`.
pub async fn restore(
    models: &[LockedModel],
    source: Store<'_>,
    mirror: &Mirror,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Report, ModelError> {
    let mut report = Report::default();
    for model in models {
        let (pulled, mismatches) = restore_model(model, source, mirror, target, reporter).await?;
        report.models.push(pulled);
        report.mismatches.extend(mismatches);
    }
    Ok(report)
}

async fn restore_model(
    model: &LockedModel,
    source: Store<'_>,
    mirror: &Mirror,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<(PulledModel, Vec<FileMismatch>), ModelError> {
    // Every name that becomes a path is checked before anything is written.
    path::check_repo(&model.repo)?;
    path::check_revision(&model.repo, &model.revision)?;
    for file in &model.files {
        path::check_file(&model.repo, &file.path)?;
    }

    // The artifact, checked against the lock.
    let place = models::model_place(mirror, &model.repo, &model.commit)?;
    let shown = models::shown(mirror, &place);
    let Some(manifest) = source.tagged(&place).await? else {
        return Err(ModelError::NotMirrored {
            repo: model.repo.clone(),
            commit: model.commit.clone(),
            place: shown,
        });
    };
    check_artifact(model, &manifest.bytes, &shown)?;

    // Every file into its partial file, hashed while it streams.
    let destination = target.place(&model.repo);
    let mut files = Vec::new();
    let mut fetched: Vec<(&LockedFile, PathBuf, download::PartLock)> = Vec::new();
    let mut mismatches = Vec::new();
    for file in &model.files {
        if present(&destination, &model.commit, file).await? {
            files.push(outcome(file, FileStatus::Present));
            continue;
        }

        // Locked until placed, as `pull` locks it: another pull waits, then finds the file.
        let part = destination.part_path(file);
        destination.ensure_part_dir(&part)?;
        let lock_path = part.clone();
        let lock = tokio::task::spawn_blocking(move || download::lock_part(&lock_path))
            .await
            .expect("a locking task panicked")?;
        if present(&destination, &model.commit, file).await? {
            download::discard(&part);
            files.push(outcome(file, FileStatus::Present));
            continue;
        }
        let computed = fetch(source, &place, file, &part, reporter).await?;
        if computed == file.sha256 {
            files.push(outcome(file, FileStatus::Downloaded));
            fetched.push((file, part, lock));
        } else {
            download::discard(&part);
            files.push(outcome(file, FileStatus::Mismatch));
            mismatches.push(FileMismatch {
                repo: model.repo.clone(),
                path: file.path.clone(),
                mismatch: Mismatch {
                    expected: file.sha256.clone(),
                    computed,
                },
            });
        }
    }

    // All or nothing: a model with one bad file gets none of its new files placed.
    if mismatches.is_empty() {
        for (file, part, _) in &fetched {
            let blob = Place::blob_name_from_bytes(file, part)?;
            destination.place(&model.commit, file, part, &blob)?;
        }
        destination.write_ref(&model.revision, &model.commit)?;
    } else {
        for (_, part, _) in &fetched {
            download::discard(part);
        }
    }
    let pulled = PulledModel {
        repo: model.repo.clone(),
        revision: model.revision.clone(),
        commit: model.commit.clone(),
        path: destination.snapshot(&model.commit),
        files,
    };
    Ok((pulled, mismatches))
}

fn outcome(file: &LockedFile, status: FileStatus) -> PulledFile {
    PulledFile {
        path: file.path.clone(),
        size: file.size,
        sha256: file.sha256.clone(),
        status,
        resumed_from: None,
    }
}

/// Refuse an artifact that is not ModelPack, names a file the lock lacks (or one outside the
/// target), gives a file another digest than the lock, or lacks a locked file.
fn check_artifact(model: &LockedModel, bytes: &[u8], shown: &str) -> Result<(), ModelError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        artifact_type: Option<String>,
        config: Descriptor,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Descriptor {
        media_type: String,
        digest: String,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let bad = |reason: String| ModelError::NotModelPack {
        repo: model.repo.clone(),
        place: shown.to_owned(),
        reason,
    };
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if raw.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(bad(format!("its `artifactType` is not `{ARTIFACT_TYPE}`")));
    }
    if raw.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(bad(format!("its config is not `{CONFIG_MEDIA_TYPE}`")));
    }
    let locked: BTreeMap<&str, &LockedFile> =
        model.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for layer in &raw.layers {
        let Some(name) = layer.annotations.get(FILEPATH) else {
            return Err(bad(format!("a layer has no `{FILEPATH}` annotation")));
        };
        let refuse = |reason: String| ModelError::UnsafeFilepath {
            place: shown.to_owned(),
            path: name.clone(),
            reason,
        };
        if let Err(HubError::UnsafePath { reason, .. }) = path::check_file(&model.repo, name) {
            return Err(refuse(reason.to_owned()));
        }
        let Some(file) = locked.get(name.as_str()) else {
            return Err(refuse("the lockfile has no such file".to_owned()));
        };
        if layer.digest != file.sha256.to_string() {
            return Err(ModelError::LayerDigest {
                place: shown.to_owned(),
                path: name.clone(),
                expected: file.sha256.clone(),
                found: layer.digest.clone(),
            });
        }
        seen.insert(name.as_str());
    }
    if let Some(missing) = locked.keys().find(|p| !seen.contains(*p)) {
        return Err(bad(format!(
            "it has no layer for the locked file `{missing}`"
        )));
    }
    Ok(())
}

/// Whether the locked file is already in place: kept only when it hashes to the lock.
async fn present(place: &Place, commit: &str, file: &LockedFile) -> Result<bool, HubError> {
    let Some(existing) = place.existing(commit, file)? else {
        return Ok(false);
    };
    if existing.size != file.size {
        return Ok(false);
    }
    let path = existing.path.clone();
    let digest = tokio::task::spawn_blocking(move || download::hash_file(&path, &|_| {}))
        .await
        .expect("a hashing task panicked")
        .map_err(io_error("read", &existing.path))?;
    if digest != file.sha256 {
        // As in `pull`: the bytes go, not only the link, so nothing links them back later.
        let removed = place.remove_bad(commit, file, &existing)?;
        tracing::warn!(
            "`{}` on disk does not match the lockfile; removed {}",
            file.path,
            removed
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(" and ")
        );
        return Ok(false);
    }
    if let Some(blob) = &existing.unlinked_blob {
        place.link(commit, file, blob)?;
    }
    Ok(true)
}

/// Stream the layer of `file` into `part` (replacing what was there) and return its digest.
async fn fetch(
    source: Store<'_>,
    place: &Reference,
    file: &LockedFile,
    part: &Path,
    reporter: &dyn Reporter,
) -> Result<crate::digest::Digest, ModelError> {
    let mut body = source.blob(place, &file.sha256).await?;
    let mut out = tokio::fs::File::create(part)
        .await
        .map_err(io_error("create", part))?;
    let bar = reporter.start(&file.path, Some(file.size), Unit::Bytes);
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(io_error("download into", part))?;
        written += chunk.len() as u64;
        hasher.update(&chunk);
        // Never more than the locked size is written: a longer body cannot be the file.
        if written > file.size {
            break;
        }
        out.write_all(&chunk)
            .await
            .map_err(io_error("write", part))?;
        reporter.advance(bar, chunk.len() as u64);
    }
    out.sync_all().await.map_err(io_error("sync", part))?;
    reporter.finish(bar);
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn model() -> LockedModel {
        LockedModel {
            repo: "org/name".to_owned(),
            revision: "main".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            include: Vec::new(),
            exclude: Vec::new(),
            files: vec![LockedFile {
                path: "config.json".to_owned(),
                size: 2,
                sha256: Digest::sha256(b"{}"),
                git_sha1: "0".repeat(40),
            }],
        }
    }

    /// The artifact `mirror` builds for `model`, with the first layer's path replaced.
    fn with_path(path: &str) -> Vec<u8> {
        let built = models::artifact(&model());
        let mut doc: serde_json::Value = serde_json::from_slice(&built.manifest.bytes).unwrap();
        doc["layers"][0]["annotations"][FILEPATH] = path.into();
        serde_json::to_vec(&doc).unwrap()
    }

    #[test]
    fn the_artifact_mirror_builds_is_accepted() {
        assert!(check_artifact(&model(), &with_path("config.json"), "x").is_ok());
    }

    #[test]
    fn layers_that_escape_or_are_not_locked_are_refused() {
        for path in ["../config.json", "/etc/passwd", "a/../../b", "other.json"] {
            let err = check_artifact(&model(), &with_path(path), "x").unwrap_err();
            assert!(
                matches!(err, ModelError::UnsafeFilepath { .. }),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn an_image_is_not_a_model() {
        let mut doc: serde_json::Value = serde_json::from_slice(&with_path("config.json")).unwrap();
        doc.as_object_mut().unwrap().remove("artifactType");
        let err = check_artifact(&model(), &serde_json::to_vec(&doc).unwrap(), "x").unwrap_err();
        assert!(matches!(err, ModelError::NotModelPack { .. }), "{err}");
    }
}
