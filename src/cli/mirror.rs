//! `aisupply mirror`: copy every locked image into a registry or an OCI layout directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use aisupply::lock::{LockFile, write_atomically};
use aisupply::mirror::models::ModelReport;
use aisupply::mirror::{self, ImageReport, Layout, Options, Store, Target};

use super::{Format, Global, Outcome, models_mirror, print_result, registry_client_for_lock};

/// Arguments of `aisupply mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Where to copy: a registry and prefix (`localhost:5000/mirror`) or a directory
    /// (`oci:./mirror`)
    #[arg(long, value_name = "TARGET")]
    to: String,
    /// Copy from an OCI layout (written by `mirror --to oci:DIR`) instead of the registries
    /// the lock names, such as on the far side of an air gap
    #[arg(long, value_name = "oci:DIR")]
    from: Option<String>,
    /// Print what would be copied, with sizes; copy nothing
    #[arg(long)]
    dry_run: bool,
    /// Write a JSON map from each locked reference to its mirrored reference and digest
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Mirror only shard I of N (such as `2/4`), so that N jobs can fill one registry at once
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Also mirror every locked model as a CNCF ModelPack artifact, built from the verified
    /// files in the Hugging Face cache (pulled from the Hub first when missing)
    #[arg(long)]
    models: bool,
    /// With `--models`: read the only locked model's files from DIR instead of the cache
    #[arg(long, value_name = "DIR", requires = "models", conflicts_with = "from")]
    local_dir: Option<PathBuf>,
}

pub async fn run(args: MirrorArgs, global: &Global) -> anyhow::Result<Outcome> {
    let lock = LockFile::load(&global.lockfile_path())?;
    let target: Target = args.to.parse()?;
    let options = Options {
        dry_run: args.dry_run,
        shard: args.shard.as_deref().map(mirror::parse_shard).transpose()?,
    };

    // Registry settings (`insecure`) come from the config when there is one.
    let client = registry_client_for_lock(&global.config)?;

    // Source: the registries of the lock, or a layout.
    let from_layout = match &args.from {
        None => None,
        Some(from) => match from.parse::<Target>()? {
            Target::Layout(dir) => Some(Layout::open(&dir)?),
            Target::Registry { .. } => anyhow::bail!(
                "`--from {from}` must be an OCI layout (`oci:DIR`); images are copied from \
                 their own registries when `--from` is not given"
            ),
        },
    };
    let source = from_layout
        .as_ref()
        .map_or(Store::Registry(&client), Store::Layout);

    // Destination: a registry, or a layout (a throwaway empty one stands in for a directory
    // that does not exist yet during a dry run, so that nothing is written).
    let scratch;
    let to_layout = match &target {
        Target::Registry { .. } => None,
        Target::Layout(dir) if args.dry_run && is_missing_or_empty(dir) => {
            scratch = tempfile::tempdir()?;
            Some(Layout::create(scratch.path())?)
        }
        Target::Layout(dir) => Some(Layout::create(dir)?),
    };
    let destination = to_layout
        .as_ref()
        .map_or(Store::Registry(&client), Store::Layout);

    let bars = global.progress();
    let reports =
        mirror::mirror_images(&lock, source, destination, &target, options, &bars).await?;

    // Models only when asked: they are large, and many mirrors hold images alone.
    let models = if args.models {
        let from = match (&args.from, &from_layout) {
            (Some(from), Some(layout)) => Some((Store::Layout(layout), from.parse::<Target>()?)),
            _ => None,
        };
        models_mirror::mirror(
            &lock,
            args.local_dir,
            from,
            destination,
            &target,
            options,
            &bars,
        )
        .await?
    } else {
        Vec::new()
    };
    let models_skipped = if args.models { 0 } else { lock.models.len() };

    if let Some(map) = &args.map {
        write_map(map, &target, &reports, &models)?;
    }
    print_reports(global, &target, args.dry_run, &reports, &models);
    print_models(global, args.dry_run, &models, models_skipped);
    Ok(Outcome::Success)
}

fn print_models(global: &Global, dry_run: bool, models: &[ModelReport], skipped: usize) {
    // In JSON, models are part of the document `print_reports` writes.
    if global.format == Format::Text && !global.quiet {
        print_result(&models_mirror::text(models, dry_run));
    }
    if skipped > 0 && !global.quiet {
        let note = format!(
            "note: {skipped} locked model{} not mirrored; add `--models` to mirror {}\n",
            plural(skipped),
            if skipped == 1 { "it" } else { "them" }
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
    }
}

fn write_map(
    path: &Path,
    target: &Target,
    reports: &[ImageReport],
    models: &[ModelReport],
) -> anyhow::Result<()> {
    let images: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "source": r.source,
                "mirror": r.mirror,
                "digest": r.digest,
            })
        })
        .collect();
    let models: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            serde_json::json!({
                "repo": m.repo,
                "commit": m.commit,
                "mirror": m.mirror,
                "digest": m.digest,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "target": target.to_string(),
        "images": images,
        "models": models,
    });
    write_atomically(path, format!("{doc:#}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!(e).context(format!("cannot write `{}`", path.display())))
}

fn print_reports(
    global: &Global,
    target: &Target,
    dry_run: bool,
    reports: &[ImageReport],
    models: &[ModelReport],
) {
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "target": target.to_string(),
            "dry_run": dry_run,
            "images": reports,
            "models": models,
        });
        print_result(&format!("{doc:#}\n"));
        return;
    }
    let mut out = String::new();
    for r in reports {
        let (mark, what) = if r.up_to_date {
            ("=", "up to date".to_owned())
        } else {
            let verb = if dry_run { "would copy" } else { "copied" };
            let mut what = format!(
                "{verb} {} blob{} ({})",
                r.blobs_copied,
                plural(r.blobs_copied),
                bytes(r.bytes_copied)
            );
            if r.blobs_mounted > 0 {
                let _ = write!(what, ", {} mounted", r.blobs_mounted);
            }
            let _ = write!(
                what,
                ", {} present, {} manifest{}",
                r.blobs_present,
                r.manifests,
                plural(r.manifests)
            );
            if r.signatures > 0 {
                let _ = write!(
                    what,
                    ", {} signature artifact{}",
                    r.signatures,
                    plural(r.signatures)
                );
            }
            (if dry_run { "?" } else { "+" }, what)
        };
        let _ = writeln!(
            out,
            "{mark} {} {} -> {}: {what}",
            r.name, r.source, r.mirror
        );
    }
    let fresh = reports.iter().filter(|r| r.up_to_date).count();
    let sent: u64 = reports.iter().map(|r| r.bytes_copied).sum();
    if reports.is_empty() && !models.is_empty() {
        // A lock of models only: their summary follows.
    } else if fresh == reports.len() {
        let _ = writeln!(
            out,
            "mirror {target}: nothing to copy, all {} image{} up to date",
            reports.len(),
            plural(reports.len())
        );
    } else {
        let verb = if dry_run { "would send" } else { "sent" };
        let _ = writeln!(
            out,
            "mirror {target}: {} image{}, {} up to date, {verb} {}",
            reports.len(),
            plural(reports.len()),
            fresh,
            bytes(sent)
        );
    }
    if !global.quiet || global.format != Format::Text {
        print_result(&out);
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Bytes in the largest binary unit that keeps the number at or above 1.
#[allow(clippy::cast_precision_loss)] // display only
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Whether `dir` does not exist yet or holds nothing: a dry run must not make it a layout.
fn is_missing_or_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}
