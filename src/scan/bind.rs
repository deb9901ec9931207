//! Digest binding: proving which locked image, at which digest, a report is about.
//!
//! A report binds when a manifest digest it names (Trivy `RepoDigests`, Grype `manifestDigest`
//! and `repoDigests`) is the top-level digest of a locked image or the manifest digest of one
//! of its locked platforms. The image config digest (`ImageID`) is not in the lock, so it
//! cannot bind. A report of the right repository at another digest is a scan of something
//! else than what is deployed: a failing finding, not a pass. So is a report that names a
//! locked digest and also digests the lock does not have for that image: its digests contradict
//! each other, so it proves nothing.

use std::path::Path;

use serde::Serialize;

use super::format::{Report, SubjectDigest};
use super::{ReportSummary, ScanError};
use crate::config::Config;
use crate::digest::Digest;
use crate::finding::{Code, Finding, Severity};
use crate::lock::{LockFile, LockedImage};

/// The locked image a report is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The locked image's name.
    pub image: String,
    /// The locked digest the report matched: the top-level digest or a platform's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The platform whose manifest digest matched, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// How well the binding is proven.
    #[serde(flatten)]
    pub status: BindingStatus,
}

/// How a report relates to the locked digests of its image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum BindingStatus {
    /// The report names a locked digest of the image.
    Verified,
    /// The report names no manifest digest; `--target` said which image it is about.
    Unverified,
    /// The report names digests of the image's repository that are not locked.
    Mismatch {
        /// The digests it names.
        found: Vec<Digest>,
    },
}

impl Binding {
    /// Whether the report is about another digest than the locked one.
    pub fn is_mismatch(&self) -> bool {
        matches!(self.status, BindingStatus::Mismatch { .. })
    }
}

/// Bind `report` to a locked image. A report that names manifest digests is bound by them;
/// `target` names the image only for a report that names none, and picks among several images
/// that lock the same digest.
pub fn bind(report: &Report, lock: &LockFile, target: Option<&str>) -> Result<Binding, ScanError> {
    let path = || report.path.clone();
    let digests = &report.subject.digests;
    let target = target
        .map(|name| {
            lock.image(name).ok_or_else(|| ScanError::UnknownTarget {
                name: name.to_owned(),
                known: lock.images.iter().map(|i| i.name.clone()).collect(),
            })
        })
        .transpose()?;

    // No digest: only `--target`'s word says which image it is.
    if digests.is_empty() {
        let Some(image) = target else {
            return Err(ScanError::NoImage {
                path: path(),
                what: unbound_subject(report),
            });
        };
        return Ok(Binding {
            image: image.name.clone(),
            digest: None,
            platform: None,
            status: BindingStatus::Unverified,
        });
    }

    // The digests name the image; `--target` only settles a digest that several images lock.
    let mut bound: Vec<Binding> = lock
        .images
        .iter()
        .filter_map(|i| matching(i, digests))
        .collect();
    if let Some(image) = target
        && bound.len() > 1
    {
        bound.retain(|b| b.image == image.name);
    }
    match bound.len() {
        1 => return Ok(bound.into_iter().next().expect("one binding")),
        0 => {}
        _ => {
            return Err(ScanError::Ambiguous {
                path: path(),
                names: bound.into_iter().map(|b| b.image).collect(),
            });
        }
    }

    // No locked digest: a report of a locked repository at another digest is a finding; one
    // about a repository aisupply does not lock cannot be judged at all.
    let same_repository: Vec<&LockedImage> = lock
        .images
        .iter()
        .filter(|i| {
            let name = i.reference.name();
            digests
                .iter()
                .any(|d| d.repository.as_deref() == Some(name.as_str()))
        })
        .collect();
    match same_repository[..] {
        [image] => Ok(mismatch(image, digests)),
        // A bare digest that no image locks: `--target` says whose scan is out of date.
        [] if let Some(image) = target => Ok(mismatch(image, digests)),
        [] => Err(ScanError::NotLocked {
            path: path(),
            found: describe(digests),
        }),
        _ => Err(ScanError::Ambiguous {
            path: path(),
            names: same_repository.iter().map(|i| i.name.clone()).collect(),
        }),
    }
}

/// The binding of `image` when one of `digests` is one of its locked digests.
fn matching(image: &LockedImage, digests: &[SubjectDigest]) -> Option<Binding> {
    // A platform's manifest is the more specific answer: reports often name both it and the
    // index digest they were pulled by.
    let found = |d: &Digest| digests.iter().any(|s| &s.digest == d);
    let (digest, platform) = match image.manifests.iter().find(|m| found(&m.digest)) {
        Some(m) => (m.digest.clone(), Some(m.platform.clone())),
        None if found(&image.digest) => (image.digest.clone(), None),
        None => return None,
    };

    // One locked digest is not proof when the same report also names others: a report whose
    // `userInput` says one digest and whose `manifestDigest` says another is about something
    // else than the lock, or is not to be trusted at all.
    let locked = |d: &Digest| &image.digest == d || image.manifests.iter().any(|m| &m.digest == d);
    let mut contradicting: Vec<Digest> = Vec::new();
    for d in digests {
        if !locked(&d.digest) && !contradicting.contains(&d.digest) {
            contradicting.push(d.digest.clone());
        }
    }
    if !contradicting.is_empty() {
        return Some(Binding {
            image: image.name.clone(),
            digest: None,
            platform: None,
            status: BindingStatus::Mismatch {
                found: contradicting,
            },
        });
    }
    Some(Binding {
        image: image.name.clone(),
        digest: Some(digest),
        platform,
        status: BindingStatus::Verified,
    })
}

fn mismatch(image: &LockedImage, digests: &[SubjectDigest]) -> Binding {
    let mut found: Vec<Digest> = Vec::new();
    for d in digests {
        if !found.contains(&d.digest) {
            found.push(d.digest.clone());
        }
    }
    Binding {
        image: image.name.clone(),
        digest: None,
        platform: None,
        status: BindingStatus::Mismatch { found },
    }
}

/// Each digest once, with a repository where the report gives one.
fn describe(digests: &[SubjectDigest]) -> String {
    let mut all: Vec<String> = Vec::new();
    for d in digests {
        let named = digests
            .iter()
            .find(|other| other.digest == d.digest && other.repository.is_some())
            .unwrap_or(d);
        let text = match &named.repository {
            Some(repo) => format!("{repo}@{}", named.digest),
            None => named.digest.to_string(),
        };
        if !all.contains(&text) {
            all.push(text);
        }
    }
    all.join("`, `")
}

/// Why a report has no digest to bind, for the error message.
fn unbound_subject(report: &Report) -> String {
    let subject = &report.subject;
    match (&subject.name, subject.is_image, &subject.image_id) {
        (Some(name), true, Some(id)) => {
            format!("it names image `{name}` only by its config digest `{id}`")
        }
        (Some(name), true, None) => format!("it names image `{name}` without a digest"),
        (Some(name), false, _) => format!("it is a scan of `{name}`, not of an image"),
        (None, _, _) => format!("a {} report records no target", report.format),
    }
}

/// The finding a report's binding calls for, if any.
pub fn finding(report: &ReportSummary, config: &Config, lock_path: &Path) -> Option<Finding> {
    let binding = &report.binding;
    let at = |f: Finding| match config.image(&binding.image) {
        Some(spec) => f.at(&config.path, Some(spec.line)),
        None => f.at(lock_path, None),
    };
    match &binding.status {
        BindingStatus::Verified => None,
        BindingStatus::Unverified => Some(at(Finding::new(
            Code::ScanDigestUnverified,
            Severity::Warning,
            &binding.image,
            format!(
                "report `{}` names no manifest digest; it was taken to be about image `{}` on \
                 `--target`'s word",
                report.path.display(),
                binding.image
            ),
        )
        .hint("scan the image by digest (`aisupply scan --run`) so that the report names it"))),
        BindingStatus::Mismatch { found } => Some(at(Finding::new(
            Code::ScanDigestMismatch,
            Severity::Error,
            &binding.image,
            format!(
                "report `{}` is about `{}`, not a locked digest of image `{}`",
                report.path.display(),
                found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("`, `"),
                binding.image
            ),
        )
        .hint(format!(
            "scan the locked digest with `aisupply scan --run`, or re-pin with `aisupply lock \
             --update {}` if the scanned digest is the one to deploy",
            binding.image
        )))),
    }
}
