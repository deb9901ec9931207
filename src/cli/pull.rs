//! `aisupply pull`: download locked model files, verified, into the Hugging Face cache or a
//! local directory. Also the model helpers `lock` and `verify` share.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use aisupply::finding::Finding;
use aisupply::hub::check::{self, ModelOnDisk};
use aisupply::hub::layout::Target;
use aisupply::hub::pull::{self, FileStatus, Options, Report};
use aisupply::hub::{self, HubError, Settings};
use aisupply::lock::{LockFile, LockedModel};
use aisupply::progress::Reporter;
use aisupply::registry::retry::RetryPolicy;

use super::{Format, Global, Outcome, print_result};

/// Arguments of `aisupply pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The models to pull, by repository id [default: every locked model]
    #[arg(value_name = "MODEL")]
    models: Vec<String>,
    /// Put the files of one model in DIR, laid out as in the repository
    #[arg(long, value_name = "DIR")]
    local_dir: Option<PathBuf>,
    /// The Hugging Face cache to fill [default: $HF_HUB_CACHE, else $HF_HOME/hub]
    #[arg(long, value_name = "DIR", conflicts_with = "local_dir")]
    cache_dir: Option<PathBuf>,
    /// Parallel Range requests per large file, at most 8 (each holds a 4 MiB chunk in memory)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=8))]
    connections: u16,
    /// Files downloaded at once
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Trust a file already on disk when its size matches, instead of re-hashing it
    #[arg(long)]
    trust_existing: bool,
    /// Restore from a mirror written by `aisupply mirror --models` instead of the Hub: a
    /// registry and prefix (`localhost:5000/mirror`) or a directory (`oci:./mirror`)
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["connections", "jobs", "trust_existing"])]
    from: Option<String>,
}

pub async fn run(args: PullArgs, global: &Global) -> anyhow::Result<Outcome> {
    let lock_path = global.lockfile_path();
    let lock = LockFile::load(&lock_path)?;

    // Which models, and where they go.
    let models = selected(&lock, &args.models, &lock_path)?;
    if args.local_dir.is_some() && models.len() != 1 {
        return Err(HubError::LocalDirNeedsOneModel {
            count: models.len(),
        }
        .into());
    }
    let settings = Settings::from_env()?;
    let target = match (args.local_dir, args.cache_dir) {
        (Some(dir), _) => Target::LocalDir(dir),
        (None, Some(cache)) => Target::Cache(cache),
        (None, None) => Target::Cache(settings.cache.clone()),
    };

    // From a mirror: the Hub is not contacted.
    if let Some(from) = &args.from {
        let bars = global.progress();
        let report =
            super::models_mirror::restore(&models, from, &global.config, &target, &bars).await?;
        print_report(global, &target, &report);
        return Ok(if report.mismatches.is_empty() {
            Outcome::Success
        } else {
            Outcome::Failed
        });
    }

    // Download, verify, place.
    let client = hub::Client::new(settings, RetryPolicy::default())?;
    let options = Options {
        connections: args.connections.into(),
        jobs: args.jobs.into(),
        rehash_existing: !args.trust_existing,
        ..Options::default()
    };
    let bars = global.progress();
    let report = pull::pull(&models, &target, &client, &options, &bars).await?;

    print_report(global, &target, &report);
    Ok(if report.mismatches.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// The locked models `names` asks for, every one when it is empty.
fn selected(
    lock: &LockFile,
    names: &[String],
    lock_path: &std::path::Path,
) -> Result<Vec<LockedModel>, HubError> {
    if names.is_empty() {
        return Ok(lock.models.clone());
    }
    names
        .iter()
        .map(|name| {
            lock.models
                .iter()
                .find(|m| m.repo == *name)
                .cloned()
                .ok_or_else(|| HubError::NotLocked {
                    repo: name.clone(),
                    lockfile: lock_path.to_owned(),
                })
        })
        .collect()
}

fn print_report(global: &Global, target: &Target, report: &Report) {
    if global.format == Format::Json {
        let mismatches: Vec<_> = report
            .mismatches
            .iter()
            .map(|m| {
                serde_json::json!({
                    "repo": m.repo,
                    "path": m.path,
                    "expected": m.mismatch.expected,
                    "computed": m.mismatch.computed,
                })
            })
            .collect();
        let (kind, dir) = match target {
            Target::Cache(dir) => ("cache", dir),
            Target::LocalDir(dir) => ("local-dir", dir),
        };
        let doc = serde_json::json!({
            "passed": report.mismatches.is_empty(),
            "target": { kind: dir },
            "models": report.models,
            "mismatches": mismatches,
        });
        print_result(&format!("{doc:#}\n"));
    } else {
        // The result line is the command's output: `-q` silences messages, not results.
        let mut out = String::new();
        for model in &report.models {
            let count = |s: FileStatus| model.files.iter().filter(|f| f.status == s).count();
            let bytes: u64 = model.files.iter().map(|f| f.size).sum();
            let _ = writeln!(
                out,
                "{} {}: {} files, {bytes} bytes ({} downloaded, {} resumed, {} already present, \
                 {} failed)\n  {}",
                model.repo,
                model.commit,
                model.files.len(),
                count(FileStatus::Downloaded),
                count(FileStatus::Resumed),
                count(FileStatus::Present),
                count(FileStatus::Mismatch),
                model.path.display()
            );
        }
        print_result(&out);
    }

    // A mismatch is an error message on stderr whatever the format.
    let mut errors = String::new();
    for mismatch in &report.mismatches {
        let _ = writeln!(errors, "error: {mismatch}\n  hint: {}", mismatch.hint());
    }
    let _ = std::io::stderr().write_all(errors.as_bytes());
}

/// A Hub client from the `HF_*` environment.
pub fn hub_client() -> anyhow::Result<hub::Client> {
    Ok(hub::Client::new(
        Settings::from_env()?,
        RetryPolicy::default(),
    )?)
}

/// Check 4 of `verify`: re-hash the locked model files on disk. `local_dirs` holds
/// `--local-dir` values, `DIR` for the only locked model or `REPO=DIR`; other models are
/// looked for in the Hugging Face cache.
pub fn check_models(
    lock: &LockFile,
    local_dirs: &[String],
    require: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<Vec<Finding>> {
    let cache = Settings::from_env()?.cache;
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for value in local_dirs {
        let (repo, dir) = match value.split_once('=') {
            Some((repo, dir)) => (repo.to_owned(), PathBuf::from(dir)),
            None if lock.models.len() == 1 => (lock.models[0].repo.clone(), PathBuf::from(value)),
            None => {
                return Err(HubError::LocalDirNeedsOneModel {
                    count: lock.models.len(),
                }
                .into());
            }
        };
        if !lock.models.iter().any(|m| m.repo == repo) {
            return Err(HubError::NotLocked {
                repo,
                lockfile: PathBuf::from(aisupply::lock::FILE_NAME),
            }
            .into());
        }
        dirs.push((repo, dir));
    }
    let models: Vec<ModelOnDisk<'_>> = lock
        .models
        .iter()
        .map(|model| {
            let target = dirs
                .iter()
                .find(|(repo, _)| *repo == model.repo)
                .map_or_else(
                    || Target::Cache(cache.clone()),
                    |(_, dir)| Target::LocalDir(dir.clone()),
                );
            ModelOnDisk { model, target }
        })
        .collect();
    Ok(check::local_files(&models, require, reporter)?)
}
