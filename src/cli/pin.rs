//! `aisupply pin`: rewrite the image references of Dockerfiles, compose and Kubernetes files to
//! the locked digests, or show the diff that would.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use aisupply::config::Sources;
use aisupply::lock::{LockFile, write_atomically};
use aisupply::pin::check::unreadable;
use aisupply::pin::rewrite::{self, Change, Plan};
use aisupply::pin::{self, Discovery, Environment, Found};

use super::{Format, Global, Outcome, print_result};

/// Arguments of `aisupply pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Write the pinned files (each replaced atomically) instead of printing a diff
    #[arg(long)]
    write: bool,
    /// Pin only these files, or the `[sources]` files under these directories
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Point each reference at its copy in this registry (`HOST[:PORT]/PREFIX`, as given to
    /// `aisupply mirror --to`) instead of the registry it came from
    #[arg(long, value_name = "HOST/PREFIX")]
    mirror: Option<String>,
}

/// The registry of `--mirror`, if given; a layout cannot be deployed from.
pub fn mirror_target(mirror: Option<&str>) -> anyhow::Result<Option<aisupply::mirror::Target>> {
    let Some(mirror) = mirror else {
        return Ok(None);
    };
    match mirror.parse::<aisupply::mirror::Target>()? {
        target @ aisupply::mirror::Target::Registry { .. } => Ok(Some(target)),
        aisupply::mirror::Target::Layout(_) => anyhow::bail!(
            "`--mirror {mirror}` must be a registry (`HOST[:PORT]/PREFIX`): deployments pull \
             from a registry, not from an OCI layout"
        ),
    }
}

/// References that no lock entry pins, so `pin` cannot know their digests.
#[derive(Debug, thiserror::Error)]
#[error("{} not in aisupply.lock, so nothing was pinned:\n{}", count(.0.len()), .0.join("\n"))]
pub struct UnlockedReferences(Vec<String>);

impl UnlockedReferences {
    /// The steps that lock the references.
    pub fn hint() -> String {
        "add each one as an `[[image]]` to aisupply.toml (`aisupply init --stdout` proposes \
         entries), run `aisupply lock`, then `aisupply pin` again"
            .to_owned()
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 reference is".to_owned()
    } else {
        format!("{n} references are")
    }
}

pub fn run(args: &PinArgs, global: &Global) -> anyhow::Result<Outcome> {
    let config = global.load_config()?;
    let lock = LockFile::load(&global.lockfile_path())?;
    let discovery = discover(global, config.sources.as_ref(), &args.paths)?;
    print_problems(global, &discovery);
    let mirror = mirror_target(args.mirror.as_deref())?;
    let plan = rewrite::plan(&discovery, &lock, mirror.as_ref());

    // Every reference must be locked before any file is touched.
    if !plan.unlocked.is_empty() {
        let list = plan.unlocked.iter().map(|f| format!("  {}", describe(f)));
        return Err(UnlockedReferences(list.collect()).into());
    }
    warn_skipped(global, &plan);

    // A file that cannot be read blocks `--write`, so that a run changes all files or none.
    let invalid = !discovery.problems.is_empty();
    let write = args.write && !invalid;
    if write {
        for file in &plan.files {
            replace_file(&file.disk_path, &file.pinned)?;
        }
    }

    print_plan(global, &plan, write, &discovery);
    if args.write && invalid && global.format == Format::Text {
        let _ = writeln!(
            std::io::stderr(),
            "nothing was written: fix the files above (or leave them out with `exclude` under \
             `[sources]`) first"
        );
    }
    Ok(if invalid {
        Outcome::Invalid
    } else {
        Outcome::Success
    })
}

/// Find the references of the `[sources]` files beside the config.
pub fn discover(
    global: &Global,
    sources: Option<&Sources>,
    paths: &[PathBuf],
) -> anyhow::Result<Discovery> {
    let root = global.config.parent().unwrap_or(Path::new(""));
    let env: Environment = std::env::vars().collect();
    Ok(pin::discover(root, sources, paths, &env)?)
}

/// Each skipped file (such as a Helm template) as a `note:` line, unless `--quiet`.
pub fn skipped_notes(global: &Global, discovery: &Discovery) -> String {
    let mut text = String::new();
    for skipped in discovery.skipped.iter().filter(|_| !global.quiet) {
        let _ = writeln!(
            text,
            "note: skipped `{}`: {}",
            skipped.path.display(),
            skipped.reason
        );
    }
    text
}

/// Each unreadable file as an `error:` with its cause and hint, and each skipped file as a
/// `note:` unless `--quiet`, on stderr (text output only).
pub fn print_problems(global: &Global, discovery: &Discovery) {
    if global.format != Format::Text {
        return;
    }
    let mut text = skipped_notes(global, discovery);
    for problem in &discovery.problems {
        let _ = writeln!(text, "error: {problem}");
        if let Some(cause) = std::error::Error::source(problem) {
            let _ = writeln!(text, "  caused by: {cause}");
        }
        if let Some(hint) = problem.hint() {
            let _ = writeln!(text, "  hint: {hint}");
        }
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `file:line  reference (context)`.
fn describe(found: &Found) -> String {
    format!(
        "{}:{}  {} ({})",
        found.file.display(),
        found.line,
        found.written,
        found.context
    )
}

fn warn_skipped(global: &Global, plan: &Plan) {
    if global.quiet || global.format != Format::Text {
        return;
    }
    let mut text = String::new();
    for skipped in &plan.skipped {
        let _ = writeln!(
            text,
            "warning: cannot pin {} in place: {}",
            describe(&skipped.found),
            skipped.reason
        );
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Replace `path` atomically with `text`, keeping the file's permissions.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let permissions = std::fs::metadata(path).map(|m| m.permissions());
    let context = || format!("cannot write `{}`", path.display());
    anyhow::Context::with_context(write_atomically(path, text.as_bytes()), context)?;
    if let Ok(permissions) = permissions {
        anyhow::Context::with_context(std::fs::set_permissions(path, permissions), context)?;
    }
    Ok(())
}

fn print_plan(global: &Global, plan: &Plan, written: bool, discovery: &Discovery) {
    let changes: Vec<&Change> = plan.files.iter().flat_map(|f| f.changes.iter()).collect();
    if global.format == Format::Json {
        let skipped: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| {
                serde_json::json!({
                    "file": s.found.file, "line": s.found.line,
                    "reference": s.found.written, "reason": s.reason,
                })
            })
            .collect();
        let problems: Vec<_> = discovery.problems.iter().map(unreadable).collect();
        let diff: String = plan.files.iter().map(rewrite::unified_diff).collect();
        let doc = serde_json::json!({
            "written": written,
            "changes": changes,
            "unchanged": plan.unchanged,
            "skipped": skipped,
            "problems": problems,
            "skipped_files": discovery.skipped,
            "diff": if written { None } else { Some(diff) },
        });
        print_result(&format!("{doc:#}\n"));
        return;
    }

    let files = plan.files.len();
    let summary = format!(
        "{} in {} file{}",
        plural(changes.len(), "reference"),
        files,
        if files == 1 { "" } else { "s" }
    );
    if written {
        let mut out = String::new();
        for change in &changes {
            let _ = writeln!(
                out,
                "{}:{}  {} -> {}",
                change.file.display(),
                change.line,
                change.from,
                change.to
            );
        }
        let _ = writeln!(out, "pinned {summary}");
        if !global.quiet || !changes.is_empty() {
            print_result(&out);
        }
        return;
    }
    let diff: String = plan.files.iter().map(rewrite::unified_diff).collect();
    print_result(&diff);
    if !global.quiet {
        let next = if discovery.files.is_empty() && discovery.problems.is_empty() {
            "no source file was selected: no file matches a `[sources]` glob outside what \
             `.gitignore` hides"
                .to_owned()
        } else if changes.is_empty() {
            "every reference is pinned to its locked digest".to_owned()
        } else {
            format!("would pin {summary}; run `aisupply pin --write` to write them")
        };
        let _ = writeln!(std::io::stderr(), "{next}");
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
