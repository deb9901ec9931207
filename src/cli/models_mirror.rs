//! Models in a mirror: `mirror --models` pushes them as ModelPack artifacts, `pull --from`
//! restores them from there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aisupply::hub::layout::Target as FilesAt;
use aisupply::hub::pull::Report;
use aisupply::hub::{HubError, Settings, from_mirror};
use aisupply::lock::{LockFile, LockedModel};
use aisupply::mirror::models::{self, Files, ModelReport};
use aisupply::mirror::{Layout, Options, Store, Target};
use aisupply::progress::Reporter;

/// `mirror --models`: every locked model (of the shard) into `destination`, from the mirror
/// `from` (such as a layout carried across an air gap), else from the cache or from
/// `local_dir` (which holds the only locked model).
pub async fn mirror(
    lock: &LockFile,
    local_dir: Option<PathBuf>,
    from: Option<(Store<'_>, Target)>,
    destination: Store<'_>,
    target: &Target,
    options: Options,
    reporter: &dyn Reporter,
) -> anyhow::Result<Vec<ModelReport>> {
    if local_dir.is_some() && lock.models.len() != 1 {
        return Err(HubError::LocalDirNeedsOneModel {
            count: lock.models.len(),
        }
        .into());
    }
    if let Some((store, source)) = &from {
        let files = Files::Mirror {
            store: *store,
            target: source,
        };
        let reports =
            models::mirror_models(&lock.models, files, destination, target, options, reporter)
                .await?;
        return Ok(reports);
    }
    let settings = Settings::from_env()?;
    let at = match local_dir {
        Some(dir) => FilesAt::LocalDir(dir),
        None => FilesAt::Cache(settings.cache.clone()),
    };
    let hub = super::pull::hub_client()?;
    let reports = models::mirror_models(
        &lock.models,
        Files::Local { at: &at, hub: &hub },
        destination,
        target,
        options,
        reporter,
    )
    .await?;
    Ok(reports)
}

/// The lines `mirror` prints for models.
pub fn text(reports: &[ModelReport], dry_run: bool) -> String {
    let mut out = String::new();
    for r in reports {
        if r.up_to_date {
            let _ = writeln!(out, "= {} {} -> {}: up to date", r.repo, r.commit, r.mirror);
            continue;
        }
        let (mark, verb) = if dry_run {
            ("?", "would copy")
        } else {
            ("+", "copied")
        };
        let _ = writeln!(
            out,
            "{mark} {} {} -> {}: {verb} {} file{} ({} bytes), {} present",
            r.repo,
            r.commit,
            r.mirror,
            r.blobs_copied,
            if r.blobs_copied == 1 { "" } else { "s" },
            r.bytes_copied,
            r.blobs_present
        );
    }
    if !reports.is_empty() {
        let fresh = reports.iter().filter(|r| r.up_to_date).count();
        let sent: u64 = reports.iter().map(|r| r.bytes_copied).sum();
        let verb = if dry_run { "would send" } else { "sent" };
        let _ = writeln!(
            out,
            "models: {} mirrored, {fresh} up to date, {verb} {sent} bytes",
            reports.len()
        );
    }
    out
}

/// `pull --from`: restore `models` from the mirror `from` into `target`.
pub async fn restore(
    models: &[LockedModel],
    from: &str,
    config_path: &Path,
    target: &FilesAt,
    reporter: &dyn Reporter,
) -> anyhow::Result<Report> {
    let mirror: Target = from.parse()?;
    let layout = match &mirror {
        Target::Layout(dir) => Some(Layout::open(dir)?),
        Target::Registry { .. } => None,
    };
    let client = super::registry_client_for_lock(config_path)?;
    let source = layout
        .as_ref()
        .map_or(Store::Registry(&client), Store::Layout);
    Ok(from_mirror::restore(models, source, &mirror, target, reporter).await?)
}
