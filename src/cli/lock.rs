//! `aisupply lock`: resolve every entry and write `aisupply.lock`.

use std::fmt::Write as _;

use clap::Args;

use aisupply::finding::Finding;
use aisupply::lock::LockFile;
use aisupply::resolve::{self, Outcome as Locked, Status, Update};
use aisupply::verify;

use super::{Format, Global, Outcome, print_result, registry_client, render};

/// Arguments of `aisupply lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Re-resolve these entries (by name), or every entry when no name is given
    #[arg(long, value_name = "NAME", num_args = 0..)]
    update: Option<Vec<String>>,
    /// Change nothing; exit 1 when the lockfile is stale (for CI)
    #[arg(long, conflicts_with = "update")]
    check: bool,
}

pub async fn run(args: LockArgs, global: &Global) -> anyhow::Result<Outcome> {
    let config = global.load_config()?;
    let lock_path = global.lockfile_path();
    let existing = LockFile::load_if_exists(&lock_path)?;

    // `--check` is the offline consistency check: would `aisupply lock` change the file?
    if args.check {
        let findings = match &existing {
            Some(lock) => verify::consistency(&config, lock, &lock_path),
            None => Vec::new(),
        };
        let stale = existing.is_none() || !findings.is_empty();
        print_check(global, &lock_path, existing.is_some(), &findings);
        return Ok(if stale { Outcome::Failed } else { Outcome::Success });
    }

    // Resolve what is new, changed or asked for.
    let update = match args.update {
        None => Update::Nothing,
        Some(names) if names.is_empty() => Update::All,
        Some(names) => Update::Names(names),
    };
    let client = registry_client(&config)?;
    let bars = global.progress();
    let locked = resolve::lock_images(&config, existing.as_ref(), &update, &client, &bars).await?;

    // Write only when something changed, so the file's timestamp means something.
    if locked.changed() || existing.as_ref() != Some(&locked.lock) {
        locked.lock.write(&lock_path)?;
    }
    print_outcome(global, &lock_path, &locked);
    Ok(Outcome::Success)
}

fn print_outcome(global: &Global, lock_path: &std::path::Path, locked: &Locked) {
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "lockfile": lock_path,
            "changed": locked.changed(),
            "images": locked.changes,
        });
        print_result(&format!("{doc:#}\n"));
        return;
    }
    let mut out = String::new();
    for change in &locked.changes {
        let (mark, digest) = match change.status {
            Status::Added => ("+", change.digest.as_ref()),
            Status::Updated => ("~", change.digest.as_ref()),
            Status::Unchanged => ("=", change.digest.as_ref()),
            Status::Removed => ("-", change.previous.as_ref()),
        };
        let digest = digest.map(ToString::to_string).unwrap_or_default();
        let _ = writeln!(out, "{mark} {} {} {digest}", change.name, change.reference);
    }
    let count = |s: Status| locked.changes.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "{}: {} added, {} updated, {} removed, {} unchanged",
        lock_path.display(),
        count(Status::Added),
        count(Status::Updated),
        count(Status::Removed),
        count(Status::Unchanged)
    );
    if global.quiet {
        return;
    }
    print_result(&out);
}

fn print_check(global: &Global, lock_path: &std::path::Path, exists: bool, findings: &[Finding]) {
    let stale = !exists || !findings.is_empty();
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "lockfile": lock_path,
            "exists": exists,
            "stale": stale,
            "findings": findings,
        });
        print_result(&format!("{doc:#}\n"));
        return;
    }
    let mut out = render::findings_text(findings);
    if !exists {
        let _ = writeln!(out, "{} does not exist: run `aisupply lock`", lock_path.display());
    } else if stale {
        let _ = writeln!(out, "{} is stale: run `aisupply lock`", lock_path.display());
    } else {
        let _ = writeln!(out, "{} is up to date", lock_path.display());
    }
    print_result(&out);
}
