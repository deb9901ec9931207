//! Check 4 of `aisupply verify`: model files on disk hash to their locked SHA-256.
//!
//! Offline. Files are hashed in parallel, one thread per core, each file by one thread (SHA-256
//! cannot be split), largest first so that one big file does not start last.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::HubError;
use super::download::hash_file;
use super::layout::Target;
use super::path::check_model;
use crate::digest::Digest;
use crate::finding::{Code, Finding, Severity};
use crate::lock::{LockedFile, LockedModel};
use crate::progress::{Reporter, Unit};

/// One model to check and where its files should be.
#[derive(Clone, Debug)]
pub struct ModelOnDisk<'a> {
    /// The locked model.
    pub model: &'a LockedModel,
    /// Where it was pulled to.
    pub target: Target,
}

struct Queued<'a> {
    model: &'a LockedModel,
    file: &'a LockedFile,
    path: PathBuf,
}

/// Re-hash every locked file found on disk. A file that differs is an error; missing files
/// are a warning, or an error when `require` is set. A lockfile name that could leave the
/// target directory is refused before any file is opened, as `pull` refuses it.
pub fn local_files(
    models: &[ModelOnDisk<'_>],
    require: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<Finding>, HubError> {
    for entry in models {
        check_model(entry.model)?;
    }
    let mut findings = Vec::new();
    let mut queue = Vec::new();

    // What is there, what is missing, and what has the wrong size (no need to hash that).
    for entry in models {
        let place = entry.target.place(&entry.model.repo);
        let mut missing = Vec::new();
        for file in &entry.model.files {
            let path = place.final_path(&entry.model.commit, &file.path);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() == file.size => queue.push(Queued {
                    model: entry.model,
                    file,
                    path,
                }),
                Ok(m) if m.is_file() => findings.push(differs(
                    entry.model,
                    file,
                    path,
                    &format!("has {} bytes; the lockfile says {}", m.len(), file.size),
                )),
                _ => missing.push(file.path.as_str()),
            }
        }
        if !missing.is_empty() {
            findings.push(missing_finding(entry, &missing, require));
        }
    }

    // Hash the rest in parallel, biggest files first.
    queue.sort_by_key(|q| std::cmp::Reverse(q.file.size));
    let total = queue.iter().map(|q| q.file.size).sum();
    let task = reporter.start("Hashing models", Some(total), Unit::Bytes);
    let results = hash_all(&queue, &|n| reporter.advance(task, n));
    reporter.finish(task);
    for (queued, result) in queue.into_iter().zip(results) {
        match result {
            Ok(digest) if digest == queued.file.sha256 => {}
            Ok(digest) => findings.push(differs(
                queued.model,
                queued.file,
                queued.path,
                &format!(
                    "does not match the lockfile\n  expected: {}\n  computed: {digest}",
                    queued.file.sha256
                ),
            )),
            Err(e) => findings.push(differs(
                queued.model,
                queued.file,
                queued.path,
                &format!("cannot be read: {e}"),
            )),
        }
    }
    Ok(findings)
}

fn hash_all(queue: &[Queued<'_>], progress: &(dyn Fn(u64) + Sync)) -> Vec<std::io::Result<Digest>> {
    let results: Vec<Mutex<Option<std::io::Result<Digest>>>> =
        queue.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(queue.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(queued) = queue.get(i) else { break };
                    let result = hash_file(&queued.path, progress);
                    *results[i].lock().expect("result slot") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("result slot")
                .expect("every queued file was hashed")
        })
        .collect()
}

fn differs(model: &LockedModel, file: &LockedFile, path: PathBuf, what: &str) -> Finding {
    Finding::new(
        Code::ModelFileMismatch,
        Severity::Error,
        &model.repo,
        format!("`{}` of model `{}` {what}", file.path, model.repo),
    )
    .at(path, None)
    .hint(format!(
        "do not load it; delete it and run `aisupply pull {}` to fetch the locked file",
        model.repo
    ))
}

fn missing_finding(entry: &ModelOnDisk<'_>, missing: &[&str], require: bool) -> Finding {
    let model = entry.model;
    let shown: Vec<String> = missing.iter().take(5).map(|p| format!("`{p}`")).collect();
    let more = if missing.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    let place = entry.target.place(&model.repo);
    let severity = if require {
        Severity::Error
    } else {
        Severity::Warning
    };
    Finding::new(
        Code::ModelFileMissing,
        severity,
        &model.repo,
        format!(
            "{} of {} files of model `{}` are not on disk: {}{more}",
            missing.len(),
            model.files.len(),
            model.repo,
            shown.join(", ")
        ),
    )
    .at(place.snapshot(&model.commit), None)
    .hint(format!("run `aisupply pull {}`", model.repo))
}
