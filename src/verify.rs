//! The checks of `aisupply verify`, each producing [`Finding`]s.
//!
//! Check 1 (lock ↔ config consistency) is offline and also answers `aisupply lock --check`;
//! its model half lives in [`crate::hub::lock::consistency`], and check 4 (model files on disk)
//! in [`crate::hub::check`].
//! Check 3 asks each registry whether the locked digests still exist and whether the locked
//! tags still point at them.

use std::path::Path;

use futures_util::stream::{self, StreamExt as _};

use crate::config::Config;
use crate::finding::{Code, Finding, Severity};
use crate::lock::{LockFile, LockedImage};
use crate::progress::{Reporter, Unit};
use crate::registry::{Client, RegistryError};
use crate::resolve::{CONCURRENCY, matches_config, requested_platforms};

/// Check 1: every config entry is locked, and the lock holds nothing stale.
pub fn consistency(config: &Config, lock: &LockFile, lock_path: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let fix = "run `aisupply lock` and commit aisupply.lock";
    for spec in &config.images {
        let at_config = |f: Finding| f.at(&config.path, Some(spec.line)).hint(fix);
        match lock.image(&spec.name) {
            None => findings.push(at_config(Finding::new(
                Code::NotLocked,
                Severity::Error,
                &spec.name,
                format!(
                    "image `{}` ({}) is not in the lockfile",
                    spec.name, spec.reference
                ),
            ))),
            Some(locked) if !matches_config(locked, spec) => {
                findings.push(at_config(Finding::new(
                    Code::LockMismatch,
                    Severity::Error,
                    &spec.name,
                    mismatch_message(locked, &spec.reference.to_string(), spec),
                )));
            }
            Some(_) => {}
        }
    }
    for locked in &lock.images {
        if config.image(&locked.name).is_none() {
            findings.push(
                Finding::new(
                    Code::StaleLockEntry,
                    Severity::Error,
                    &locked.name,
                    format!(
                        "the lockfile pins image `{}`, which is not in `{}`",
                        locked.name,
                        config.path.display()
                    ),
                )
                .at(lock_path, None)
                .hint(fix),
            );
        }
    }
    findings.extend(crate::hub::lock::consistency(config, lock, lock_path));
    findings
}

fn mismatch_message(locked: &LockedImage, wanted: &str, spec: &crate::config::ImageSpec) -> String {
    if locked.reference == spec.reference {
        let show = |p: Option<Vec<String>>| p.map_or_else(|| "all".to_owned(), |p| p.join(", "));
        format!(
            "image `{}` is locked for platforms {} but the config asks for {}",
            spec.name,
            show(locked.platforms.clone()),
            show(requested_platforms(spec))
        )
    } else {
        format!(
            "image `{}` is locked as `{}` but the config says `{wanted}`",
            spec.name, locked.reference
        )
    }
}

/// Options of the registry check.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegistryCheck {
    /// Report a moved tag as an error rather than a warning.
    pub fail_on_drift: bool,
}

/// Check 3: each locked digest (top level and every platform) still exists in its registry,
/// and each locked tag still points at the locked digest.
pub async fn registry(
    lock: &LockFile,
    lock_path: &Path,
    client: &Client,
    options: RegistryCheck,
    reporter: &dyn Reporter,
) -> Result<Vec<Finding>, RegistryError> {
    let task = reporter.start(
        "Checking registries",
        Some(lock.images.len() as u64),
        Unit::Items,
    );
    let results: Vec<Result<Vec<Finding>, RegistryError>> = stream::iter(&lock.images)
        .map(|image| async move {
            let result = check_image(image, lock_path, client, options).await;
            reporter.advance(task, 1);
            result
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    reporter.finish(task);
    let mut findings = Vec::new();
    for result in results {
        findings.extend(result?);
    }
    Ok(findings)
}

async fn check_image(
    image: &LockedImage,
    lock_path: &Path,
    client: &Client,
    options: RegistryCheck,
) -> Result<Vec<Finding>, RegistryError> {
    let mut findings = Vec::new();
    let repository = image.reference.without_digest();
    let missing = |digest: &crate::digest::Digest, what: String| {
        Finding::new(
            Code::DigestMissing,
            Severity::Error,
            &image.name,
            format!(
                "{what} `{digest}` of image `{}` no longer exists in `{}`",
                image.name,
                repository.name()
            ),
        )
        .at(lock_path, None)
        .hint("restore the image in the registry, or re-pin with `aisupply lock --update NAME`")
    };

    // The locked digests themselves.
    if !client.manifest_exists(&repository, &image.digest).await? {
        findings.push(missing(&image.digest, "the locked digest".to_owned()));
    }
    for m in &image.manifests {
        if !client.manifest_exists(&repository, &m.digest).await? {
            findings.push(missing(&m.digest, format!("the `{}` manifest", m.platform)));
        }
    }

    // Where the tag points now; a reference pinned by digest cannot drift.
    if image.reference.digest().is_some() || image.reference.tag().is_none() {
        return Ok(findings);
    }
    let severity = if options.fail_on_drift {
        Severity::Error
    } else {
        Severity::Warning
    };
    let drift = |message: String| {
        Finding::new(Code::TagDrift, severity, &image.name, message)
            .at(lock_path, None)
            .hint(format!(
                "review the change, then re-pin with `aisupply lock --update {}`",
                image.name
            ))
    };
    match client.head(&image.reference).await {
        Ok(now) if now.digest != image.digest => findings.push(drift(format!(
            "tag `{}` now points at `{}`, not the locked `{}`",
            image.reference, now.digest, image.digest
        ))),
        Ok(_) => {}
        Err(RegistryError::ManifestUnknown { .. }) => findings.push(drift(format!(
            "tag `{}` no longer exists; the locked digest is still `{}`",
            image.reference, image.digest
        ))),
        Err(e) => return Err(e),
    }
    Ok(findings)
}
