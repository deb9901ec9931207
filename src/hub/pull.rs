//! `aisupply pull`: every locked file of a model, at the locked commit, verified and placed.
//!
//! Per file: a copy already on disk is re-hashed (unless the user trusts sizes) and kept when it
//! matches; otherwise the file is located at the locked commit, fetched into its partial file
//! (resuming what a killed run left), hashed while it streams, and moved to its final path only
//! when its SHA-256 is the locked one. The partial file is locked from the first byte to the
//! rename, so concurrent pulls into one cache take turns per file. A mismatch removes the
//! download and is reported; it does not stop the other files.

use std::path::PathBuf;

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::client::{Ask, Client};
use super::download::{self, Job, Part};
use super::layout::{Existing, Place, Target};
use super::{FileMismatch, HubError, io_error, path};
use crate::digest::{Digest, Mismatch};
use crate::lock::{LockedFile, LockedModel};
use crate::progress::{Reporter, Unit};

/// The most parallel Range requests per file. Chunks that arrive ahead of the writer wait in
/// memory, at most `connections + 1` of them per file, so a file being downloaded holds at most
/// `(MAX_CONNECTIONS + 1) × chunk` bytes: 36 MiB with the default 4 MiB chunk.
pub const MAX_CONNECTIONS: usize = 8;

/// How a pull runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Parallel Range requests per large file, at most [`MAX_CONNECTIONS`].
    pub connections: usize,
    /// Files downloaded at once.
    pub jobs: usize,
    /// Re-hash a file already on disk before trusting it (otherwise its size is enough).
    pub rehash_existing: bool,
    /// The size of one Range request.
    pub chunk: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connections: 4,
            jobs: 4,
            rehash_existing: true,
            chunk: 4 * 1024 * 1024,
        }
    }
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Downloaded from the start.
    Downloaded,
    /// Continued from a partial download of an earlier run.
    Resumed,
    /// Already on disk and verified.
    Present,
    /// Downloaded, but its SHA-256 was not the locked one; removed.
    Mismatch,
}

/// One file of a pull.
#[derive(Clone, Debug, Serialize)]
pub struct PulledFile {
    /// The path in the repository.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Its locked SHA-256.
    pub sha256: Digest,
    /// What happened.
    pub status: FileStatus,
    /// Bytes a partial download already held, when resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
}

/// One model of a pull.
#[derive(Clone, Debug, Serialize)]
pub struct PulledModel {
    /// The repository.
    pub repo: String,
    /// The locked revision.
    pub revision: String,
    /// The locked commit.
    pub commit: String,
    /// The directory a loader opens.
    pub path: PathBuf,
    /// Every locked file, sorted by path.
    pub files: Vec<PulledFile>,
}

/// The result of a pull.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every model pulled.
    pub models: Vec<PulledModel>,
    /// Files that did not match the lock (removed).
    pub mismatches: Vec<FileMismatch>,
}

/// Pull `models` into `target`.
pub async fn pull(
    models: &[LockedModel],
    target: &Target,
    client: &Client,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<Report, HubError> {
    // Every name that becomes a path is checked before anything is written.
    for model in models {
        path::check_model(model)?;
    }

    let total_bytes = models.iter().flat_map(|m| &m.files).map(|f| f.size).sum();
    let total = reporter.start("Pulling models", Some(total_bytes), Unit::Bytes);
    let ctx = Context {
        target,
        client,
        options,
        reporter,
        total,
    };
    let work = models
        .iter()
        .enumerate()
        .flat_map(|(i, model)| model.files.iter().map(move |file| (i, model, file)));
    let mut results: Vec<(usize, PulledFile, Option<FileMismatch>)> = stream::iter(work)
        .map(|(i, model, file)| {
            let ctx = &ctx;
            async move { pull_file(ctx, model, file).await.map(|(f, m)| (i, f, m)) }
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    reporter.finish(total);
    results.sort_by(|a, b| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)));

    // A ref is written only for a model whose every file is verified in place.
    let mut report = Report::default();
    for (i, model) in models.iter().enumerate() {
        let place = target.place(&model.repo);
        let mut files = Vec::new();
        let mut clean = true;
        for (_, file, mismatch) in results.iter().filter(|r| r.0 == i) {
            files.push(file.clone());
            if let Some(mismatch) = mismatch {
                clean = false;
                report.mismatches.push(mismatch.clone());
            }
        }
        if clean {
            place.write_ref(&model.revision, &model.commit)?;
        }
        report.models.push(PulledModel {
            repo: model.repo.clone(),
            revision: model.revision.clone(),
            commit: model.commit.clone(),
            path: place.snapshot(&model.commit),
            files,
        });
    }
    Ok(report)
}

struct Context<'a> {
    target: &'a Target,
    client: &'a Client,
    options: &'a Options,
    reporter: &'a dyn Reporter,
    total: usize,
}

async fn pull_file(
    ctx: &Context<'_>,
    model: &LockedModel,
    file: &LockedFile,
) -> Result<(PulledFile, Option<FileMismatch>), HubError> {
    let place = ctx.target.place(&model.repo);
    let bar = ctx.reporter.start(&file.path, Some(file.size), Unit::Bytes);
    let advance = |n: u64| {
        ctx.reporter.advance(bar, n);
        ctx.reporter.advance(ctx.total, n);
    };
    let outcome = |status, resumed_from| PulledFile {
        path: file.path.clone(),
        size: file.size,
        sha256: file.sha256.clone(),
        status,
        resumed_from,
    };

    // A copy already on disk is kept when it proves to be the locked one.
    if is_present(ctx, &place, &model.commit, file, &advance).await? {
        ctx.reporter.finish(bar);
        return Ok((outcome(FileStatus::Present, None), None));
    }

    if ctx.client.settings().offline {
        return Err(HubError::Offline {
            repo: model.repo.clone(),
        });
    }

    // One pull at a time per partial file, until the file is placed: a second pull into the
    // same cache waits here, then finds the file the first one placed.
    let part_path = place.part_path(file);
    place.ensure_part_dir(&part_path)?;
    let lock_path = part_path.clone();
    let lock = blocking(move || download::lock_part(&lock_path)).await?;
    if is_present(ctx, &place, &model.commit, file, &advance).await? {
        download::discard(&part_path);
        ctx.reporter.finish(bar);
        return Ok((outcome(FileStatus::Present, None), None));
    }

    // Where the locked commit's bytes are served.
    let located = ctx
        .client
        .locate(&model.repo, &model.commit, &file.path)
        .await?;
    if let Some(served) = located.commit.as_ref().filter(|c| **c != model.commit) {
        return Err(HubError::WrongCommit {
            repo: model.repo.clone(),
            path: file.path.clone(),
            commit: model.commit.clone(),
            served: served.clone(),
        });
    }

    // Fetch into the partial file, resuming what an earlier run left.
    let size = file.size;
    let part = blocking(move || Part::open(&part_path, size)).await?;
    let resumed_from = (part.len() > 0).then_some(part.len());
    advance(part.len());
    let job = Job {
        client: ctx.client,
        ask: Ask {
            repo: &model.repo,
            revision: &model.commit,
            path: Some(&file.path),
        },
        url: &located.url,
        size: file.size,
        connections: ctx.options.connections.clamp(1, MAX_CONNECTIONS),
        chunk: ctx.options.chunk.max(64 * 1024),
        progress: &advance,
    };
    let part = download::fetch(&job, part).await?;
    let (part_path, computed) = blocking(move || part.finish()).await?;
    ctx.reporter.finish(bar);

    // Only a verified file reaches a path a loader reads.
    if computed != file.sha256 {
        download::discard(&part_path);
        let mismatch = FileMismatch {
            repo: model.repo.clone(),
            path: file.path.clone(),
            mismatch: Mismatch {
                expected: file.sha256.clone(),
                computed,
            },
        };
        return Ok((outcome(FileStatus::Mismatch, None), Some(mismatch)));
    }
    tracing::debug!(repo = %model.repo, path = %file.path, sha256 = %computed, "verified");
    let blob = Place::blob_name(file, located.etag.as_deref());
    place.place(&model.commit, file, &part_path, &blob)?;
    drop(lock);
    let status = if resumed_from.is_some() {
        FileStatus::Resumed
    } else {
        FileStatus::Downloaded
    };
    Ok((outcome(status, resumed_from), None))
}

/// Whether the locked `file` is already on disk, verified (see [`keep_existing`]).
async fn is_present(
    ctx: &Context<'_>,
    place: &Place,
    commit: &str,
    file: &LockedFile,
    advance: &(dyn Fn(u64) + Sync),
) -> Result<bool, HubError> {
    match place.existing(commit, file)? {
        Some(existing) => keep_existing(ctx, place, commit, file, &existing, advance).await,
        None => Ok(false),
    }
}

/// Whether `existing` is the locked file; a copy that is not is removed, so nothing wrong
/// stays where a loader reads.
async fn keep_existing(
    ctx: &Context<'_>,
    place: &Place,
    commit: &str,
    file: &LockedFile,
    existing: &Existing,
    advance: &(dyn Fn(u64) + Sync),
) -> Result<bool, HubError> {
    let matches = if existing.size != file.size {
        false
    } else if ctx.options.rehash_existing {
        let path = existing.path.clone();
        let (digest, _) = hash(path, advance).await?;
        tracing::debug!(path = %file.path, sha256 = %digest, "hashed a file on disk");
        digest == file.sha256
    } else {
        advance(file.size);
        true
    };
    if matches {
        if let Some(blob) = &existing.unlinked_blob {
            place.link(commit, file, blob)?;
        }
        return Ok(true);
    }
    // The bytes themselves go, not only the link to them: a blob left under its locked name
    // would be linked back by the next `--trust-existing` pull.
    let removed = place.remove_bad(commit, file, existing)?;
    let removed: Vec<String> = removed
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    tracing::warn!(
        "`{}` on disk does not match the lockfile; removed {}",
        file.path,
        removed.join(" and ")
    );
    Ok(false)
}

/// Hash a file on a blocking thread, reporting progress from the async side when done.
async fn hash(path: PathBuf, advance: &(dyn Fn(u64) + Sync)) -> Result<(Digest, u64), HubError> {
    blocking(move || {
        let hashed = std::cell::Cell::new(0);
        let digest = download::hash_file(&path, &|n| hashed.set(hashed.get() + n));
        digest
            .map(|d| (d, hashed.get()))
            .map_err(io_error("read", &path))
    })
    .await
    .inspect(|(_, hashed)| advance(*hashed))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HubError> + Send + 'static,
) -> Result<T, HubError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking file task panicked")
}
