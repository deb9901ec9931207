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

    // The locked manifest, fetched and hashed: it must still exist and still be what was
    // locked, and the lock's platform entries must be what its index lists.
    match fetched(
        client,
        &repository,
        &image.digest,
        image,
        "the locked digest",
    )
    .await?
    {
        Ok(top) => {
            for problem in index_problems(image, &top) {
                findings.push(
                    Finding::new(Code::IndexMismatch, Severity::Error, &image.name, problem).hint(
                        format!(
                            "the lockfile was edited by hand: restore it, or regenerate the \
                             entry with `aisupply lock --update {}`",
                            image.name
                        ),
                    ),
                );
            }
        }
        Err(problem) => findings.push(problem),
    }
    for m in &image.manifests {
        let what = format!("the `{}` manifest", m.platform);
        if let Err(problem) = fetched(client, &repository, &m.digest, image, &what).await? {
            findings.push(problem);
        }
    }
    for finding in &mut findings {
        finding.location = Some(crate::finding::Location {
            file: lock_path.to_owned(),
            line: None,
        });
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
            "tag `{}` no longer exists in its registry",
            image.reference
        ))),
        Err(e) => return Err(e),
    }
    Ok(findings)
}

/// Manifest `digest` of `repository`, fetched and verified; a missing or altered manifest is
/// a finding, any other failure an error.
async fn fetched(
    client: &Client,
    repository: &crate::reference::Reference,
    digest: &crate::digest::Digest,
    image: &LockedImage,
    what: &str,
) -> Result<Result<crate::registry::ManifestInfo, Finding>, RegistryError> {
    let finding = |code, message: String, hint: String| {
        Finding::new(code, Severity::Error, &image.name, message).hint(hint)
    };
    match client.fetch_manifest(repository, Some(digest)).await {
        Ok(found) => Ok(Ok(found)),
        Err(RegistryError::ManifestUnknown { .. }) => Ok(Err(finding(
            Code::DigestMissing,
            format!(
                "{what} `{digest}` of image `{}` no longer exists in `{}`",
                image.name,
                repository.name()
            ),
            format!(
                "restore the image in the registry, or re-pin with `aisupply lock --update {}`",
                image.name
            ),
        ))),
        Err(RegistryError::DigestMismatch { mismatch, .. }) => Ok(Err(finding(
            Code::DigestMismatch,
            format!(
                "{what} of image `{}` served by `{}` does not match its digest (expected \
                 `{}`, computed `{}`)",
                image.name,
                repository.name(),
                mismatch.expected,
                mismatch.computed
            ),
            "do not deploy from this registry until its operators explain the change".to_owned(),
        ))),
        Err(e) => Err(e),
    }
}

/// How the lock entry disagrees with the content of its locked digest: the media type, and
/// for an index the platform manifests the lock should hold.
fn index_problems(image: &LockedImage, top: &crate::registry::ManifestInfo) -> Vec<String> {
    use crate::registry::manifest;
    let mut problems = Vec::new();
    if top.media_type != image.media_type {
        problems.push(format!(
            "image `{}` is locked with media type `{}`, but its digest is a `{}`",
            image.name, image.media_type, top.media_type
        ));
    }
    let mut expected: Vec<(String, String)> = Vec::new();
    if manifest::is_index(&top.media_type) {
        let bytes = top.bytes.as_deref().unwrap_or_default();
        let Ok(listed) = manifest::platform_manifests(bytes) else {
            problems.push(format!("the index of image `{}` is unreadable", image.name));
            return problems;
        };
        let wanted: Option<Vec<crate::platform::Platform>> = image
            .platforms
            .as_ref()
            .map(|list| list.iter().filter_map(|p| p.parse().ok()).collect());
        expected = listed
            .into_iter()
            .filter(|m| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.iter().any(|p| p.matches(&m.platform)))
            })
            .map(|m| (m.platform.to_string(), m.digest.to_string()))
            .collect();
    }
    let mut locked: Vec<(String, String)> = image
        .manifests
        .iter()
        .map(|m| (m.platform.clone(), m.digest.to_string()))
        .collect();
    locked.sort();
    expected.sort();
    if locked != expected {
        let show = |list: &[(String, String)]| {
            if list.is_empty() {
                return "none".to_owned();
            }
            let items: Vec<String> = list.iter().map(|(p, d)| format!("{p} {d}")).collect();
            items.join(", ")
        };
        problems.push(format!(
            "the platform manifests locked for image `{}` ({}) are not the ones its index lists \
             ({})",
            image.name,
            show(&locked),
            show(&expected)
        ));
    }
    problems
}
