//! Locking `[[model]]` entries: revision to commit, `include`/`exclude` to files, and per file
//! its size, SHA-256 and git blob SHA-1.
//!
//! The Hub lists the SHA-256 of LFS files. Small files kept in git itself have only a git blob
//! SHA-1 there, so they are downloaded at lock time and hashed; their bytes must also produce
//! the SHA-1 the listing names, so the listing and the content vouch for each other.

use std::path::Path;

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use sha1::Digest as _;

use super::client::{Ask, Client, RemoteFile};
use super::select::Selection;
use super::{HubError, path};
use crate::config::{Config, ModelSpec};
use crate::digest::{Algorithm, Hasher};
use crate::finding::{Code, Finding, Severity};
use crate::lock::{LockFile, LockedFile, LockedModel};
use crate::progress::{Reporter, Unit};
use crate::resolve::{Status, Update};

/// How many models are resolved at once.
const MODELS_AT_ONCE: usize = 4;

/// How many small files of one model are hashed at once.
const FILES_AT_ONCE: usize = 8;

/// What happened to one model entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelChange {
    /// The repository.
    pub repo: String,
    /// What happened.
    pub status: Status,
    /// The revision asked for.
    pub revision: String,
    /// The commit locked before, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The commit locked now (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// How many files are locked now.
    pub files: usize,
}

/// The locked models and what changed.
#[derive(Clone, Debug, Default)]
pub struct Locked {
    /// The lock entries, sorted by repository.
    pub models: Vec<LockedModel>,
    /// One change per entry, sorted by repository.
    pub changes: Vec<ModelChange>,
}

/// Lock every model of `config`, keeping the pins of `existing` except those `update` names
/// (by repository). `client` is needed only when something must be resolved.
pub async fn lock_models(
    config: &Config,
    existing: Option<&LockFile>,
    update: &Update,
    client: Option<&Client>,
    reporter: &dyn Reporter,
) -> Result<Locked, HubError> {
    for (i, spec) in config.models.iter().enumerate() {
        if config.models[..i]
            .iter()
            .any(|other| other.repo == spec.repo)
        {
            return Err(HubError::DuplicateModel {
                repo: spec.repo.clone(),
                config: config.path.clone(),
            });
        }
    }

    // Decide per entry: keep the existing pin, or resolve it again.
    let previous =
        |repo: &str| existing.and_then(|lock| lock.models.iter().find(|m| m.repo == repo));
    let wants_update = |spec: &ModelSpec| match update {
        Update::Nothing => false,
        Update::All => true,
        Update::Names(names) => names.contains(&spec.repo),
    };
    let (kept, to_resolve): (Vec<&ModelSpec>, Vec<&ModelSpec>) =
        config.models.iter().partition(|spec| {
            !wants_update(spec) && previous(&spec.repo).is_some_and(|p| matches_config(p, spec))
        });

    // Resolve what needs it.
    let mut models: Vec<LockedModel> = kept
        .iter()
        .filter_map(|spec| previous(&spec.repo).cloned())
        .collect();
    if !to_resolve.is_empty() {
        let client = client.expect("a Hub client whenever the config has models");
        let task = reporter.start(
            "Resolving models",
            Some(to_resolve.len() as u64),
            Unit::Items,
        );
        let resolved: Vec<LockedModel> = stream::iter(to_resolve)
            .map(|spec| async move {
                let result = lock_model(client, spec).await;
                reporter.advance(task, 1);
                result
            })
            .buffered(MODELS_AT_ONCE)
            .try_collect()
            .await?;
        reporter.finish(task);
        models.extend(resolved);
    }
    models.sort_by(|a, b| a.repo.cmp(&b.repo));

    let changes = changes(config, existing, &models);
    Ok(Locked { models, changes })
}

/// Whether a lock entry still describes `spec`: same repository, revision and globs.
pub fn matches_config(locked: &LockedModel, spec: &ModelSpec) -> bool {
    locked.repo == spec.repo
        && locked.revision == spec.revision
        && locked.include == spec.include
        && locked.exclude == spec.exclude
}

async fn lock_model(client: &Client, spec: &ModelSpec) -> Result<LockedModel, HubError> {
    path::check_repo(&spec.repo)?;
    path::check_revision(&spec.repo, &spec.revision)?;
    let selection = Selection::new(&spec.repo, &spec.include, &spec.exclude)?;
    if client.settings().offline {
        return Err(HubError::Offline {
            repo: spec.repo.clone(),
        });
    }

    // The commit, and the files the globs select; every selected name must be safe.
    let listing = client.revision(&spec.repo, &spec.revision).await?;
    let commit = listing.commit;
    tracing::debug!(repo = %spec.repo, revision = %spec.revision, %commit, "resolved");
    let available: Vec<String> = listing
        .files
        .iter()
        .take(8)
        .map(|f| f.path.clone())
        .collect();
    let selected: Vec<RemoteFile> = listing
        .files
        .into_iter()
        .filter(|f| selection.matches(&f.path))
        .collect();
    if selected.is_empty() {
        return Err(HubError::EmptySelection {
            repo: spec.repo.clone(),
            revision: spec.revision.clone(),
            available,
        });
    }
    for file in &selected {
        path::check_file(&spec.repo, &file.path)?;
    }

    // LFS files come with their SHA-256; the others are hashed from their bytes.
    let commit_ref = commit.as_str();
    let files: Vec<LockedFile> = stream::iter(selected)
        .map(|file| async move {
            match file.lfs_sha256 {
                Some(sha256) => Ok(LockedFile {
                    path: file.path,
                    size: file.size,
                    sha256,
                    git_sha1: file.git_sha1,
                }),
                None => hash_git_file(client, &spec.repo, commit_ref, file).await,
            }
        })
        .buffer_unordered(FILES_AT_ONCE)
        .try_collect()
        .await?;

    let mut files = files;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(LockedModel {
        repo: spec.repo.clone(),
        revision: spec.revision.clone(),
        commit,
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        files,
    })
}

/// Download a file stored in git, and compute its SHA-256 and its git blob SHA-1.
async fn hash_git_file(
    client: &Client,
    repo: &str,
    commit: &str,
    file: RemoteFile,
) -> Result<LockedFile, HubError> {
    let url = client.resolve_url(repo, commit, &file.path);
    let ask = Ask {
        repo,
        revision: commit,
        path: Some(&file.path),
    };
    let mut response = client.get(ask, &url, None).await?;
    let bad = |message: String| HubError::BadResponse {
        url: super::env::redact(&url),
        message,
    };

    let mut sha256 = Hasher::new(Algorithm::Sha256);
    let mut git = sha1::Sha1::new();
    git.update(format!("blob {}\0", file.size).as_bytes());
    let mut len = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| HubError::Transport {
            url: super::env::redact(&url),
            source: source.without_url(),
        })?
    {
        len += chunk.len() as u64;
        if len > file.size {
            return Err(bad(format!(
                "`{}` is longer than the {} bytes the listing states",
                file.path, file.size
            )));
        }
        sha256.update(&chunk);
        git.update(&chunk);
    }
    if len != file.size {
        return Err(bad(format!(
            "`{}` has {len} bytes, the listing states {}",
            file.path, file.size
        )));
    }
    let git_sha1 = hex::encode(git.finalize());
    if git_sha1 != file.git_sha1 {
        return Err(bad(format!(
            "`{}` does not hash to the git blob SHA-1 the listing names\n  expected: {}\n  \
             computed: {git_sha1}",
            file.path, file.git_sha1
        )));
    }
    let sha256 = sha256.finish();
    tracing::debug!(repo, path = %file.path, %sha256, %git_sha1, "hashed a small file");
    Ok(LockedFile {
        path: file.path,
        size: file.size,
        sha256,
        git_sha1,
    })
}

fn changes(
    config: &Config,
    existing: Option<&LockFile>,
    models: &[LockedModel],
) -> Vec<ModelChange> {
    let old = |repo: &str| existing.and_then(|l| l.models.iter().find(|m| m.repo == repo));
    let mut changes: Vec<ModelChange> = models
        .iter()
        .map(|model| {
            let previous = old(&model.repo);
            let status = Status::of(previous, model);
            ModelChange {
                repo: model.repo.clone(),
                status,
                revision: model.revision.clone(),
                previous: previous.map(|p| p.commit.clone()),
                commit: Some(model.commit.clone()),
                files: model.files.len(),
            }
        })
        .collect();
    for gone in existing.map(|l| l.models.as_slice()).unwrap_or_default() {
        if !config.models.iter().any(|spec| spec.repo == gone.repo) {
            changes.push(ModelChange {
                repo: gone.repo.clone(),
                status: Status::Removed,
                revision: gone.revision.clone(),
                previous: Some(gone.commit.clone()),
                commit: None,
                files: 0,
            });
        }
    }
    changes.sort_by(|a, b| a.repo.cmp(&b.repo));
    changes
}

/// Check 1 for models: every `[[model]]` is locked as configured, and the lock holds no model
/// the config dropped.
pub fn consistency(config: &Config, lock: &LockFile, lock_path: &Path) -> Vec<Finding> {
    let fix = "run `aisupply lock` and commit aisupply.lock";
    let mut findings = Vec::new();
    for spec in &config.models {
        let locked = lock.models.iter().find(|m| m.repo == spec.repo);
        let message = match locked {
            None => Some((
                Code::NotLocked,
                format!("model `{}` is not in the lockfile", spec.repo),
            )),
            Some(locked) if !matches_config(locked, spec) => {
                Some((Code::LockMismatch, mismatch_message(locked, spec)))
            }
            Some(_) => None,
        };
        if let Some((code, message)) = message {
            findings.push(
                Finding::new(code, Severity::Error, &spec.repo, message)
                    .at(&config.path, None)
                    .hint(fix),
            );
        }
    }
    for locked in &lock.models {
        if !config.models.iter().any(|spec| spec.repo == locked.repo) {
            findings.push(
                Finding::new(
                    Code::StaleLockEntry,
                    Severity::Error,
                    &locked.repo,
                    format!(
                        "the lockfile pins model `{}`, which is not in `{}`",
                        locked.repo,
                        config.path.display()
                    ),
                )
                .at(lock_path, None)
                .hint(fix),
            );
        }
    }
    findings
}

fn mismatch_message(locked: &LockedModel, spec: &ModelSpec) -> String {
    if locked.revision == spec.revision {
        let show = |globs: &[String]| format!("[{}]", globs.join(", "));
        format!(
            "model `{}` is locked with include {} exclude {} but the config says include {} \
             exclude {}",
            spec.repo,
            show(&locked.include),
            show(&locked.exclude),
            show(&spec.include),
            show(&spec.exclude)
        )
    } else {
        format!(
            "model `{}` is locked at revision `{}` but the config asks for `{}`",
            spec.repo, locked.revision, spec.revision
        )
    }
}
