//! Check 2 of `verify`: every reference in the `[sources]` files is pinned by digest, and that
//! digest is the locked one.

use super::rewrite::locked_via;
use super::{Discovery, Found, Image, SourceError};
use crate::finding::{Code, Finding, Severity};
use crate::lock::LockFile;
use crate::mirror::Target;
use crate::reference::Reference;

/// The findings of check 2 for the references of `discovery`, and one finding for each file
/// that could not be read. With `mirror`, references to the images mirrored there count as
/// references to the locked images.
pub fn check(discovery: &Discovery, lock: &LockFile, mirror: Option<&Target>) -> Vec<Finding> {
    let mut findings: Vec<Finding> = discovery.problems.iter().map(unreadable).collect();
    for found in discovery.references() {
        findings.extend(check_reference(found, lock, mirror));
    }
    findings
}

/// A source file that could not be read, as a finding.
pub fn unreadable(problem: &SourceError) -> Finding {
    let mut message = problem.to_string();
    if let Some(cause) = std::error::Error::source(problem) {
        message = format!("{message}: {cause}");
    }
    let subject = problem.path().display().to_string();
    let finding = Finding::new(Code::UnreadableSource, Severity::Error, &subject, message)
        .at(problem.path(), problem.line());
    match problem.hint() {
        Some(hint) => finding.hint(hint),
        None => finding,
    }
}

fn check_reference(found: &Found, lock: &LockFile, mirror: Option<&Target>) -> Option<Finding> {
    let at = |f: Finding| f.at(&found.file, Some(found.line));
    let written = &found.written;
    let context = &found.context;
    let reference = match &found.image {
        Image::Unresolved { variable } => {
            return Some(at(Finding::new(
                Code::UnpinnedReference,
                Severity::Error,
                written,
                format!(
                    "`{written}` ({context}) cannot be checked: `{variable}` has no value here"
                ),
            )
            .hint(format!(
                "give `{variable}` a default pinned by digest, or leave the file out with \
                 `exclude` under `[sources]`"
            ))));
        }
        Image::Literal { reference, .. } | Image::Substituted { reference } => reference,
    };
    let locked = locked_via(lock, reference, mirror);
    let subject = locked.map_or_else(|| unpinned_name(reference), |l| l.name.clone());
    let finding = |code, message| at(Finding::new(code, Severity::Error, &subject, message));
    let name = unpinned_name(reference);
    let (fix, then) = match (&found.image, locked) {
        (Image::Substituted { .. }, Some(locked)) => {
            let fix = format!(
                "write `{name}@{}` where the variables are set (`aisupply pin` rewrites only \
                 references written literally)",
                locked.digest
            );
            (fix, "pin it where the variables are set".to_owned())
        }
        (Image::Substituted { .. }, None) => (
            String::new(),
            "pin it where the variables are set".to_owned(),
        ),
        _ => {
            let pin = format!("aisupply pin --write {}", found.file.display());
            (format!("run `{pin}`"), format!("`{pin}`"))
        }
    };
    let add = format!(
        "add `[[image]]` with `ref = \"{name}\"` to aisupply.toml, run `aisupply lock`, then {then}"
    );

    match (reference.digest(), locked) {
        (None, Some(_)) => Some(
            finding(
                Code::UnpinnedReference,
                format!("`{written}` ({context}) is not pinned by digest"),
            )
            .hint(fix),
        ),
        (None, None) => Some(
            finding(
                Code::UnpinnedReference,
                format!("`{written}` ({context}) is not pinned by digest, and not locked"),
            )
            .hint(add),
        ),
        (Some(digest), Some(locked)) if *digest != locked.digest => Some(
            finding(
                Code::DigestMismatch,
                format!(
                    "`{written}` ({context}) is pinned to another digest than the lock\n  \
                     expected: {}\n  found:    {digest}",
                    locked.digest
                ),
            )
            .hint(format!(
                "{fix}, or if the file is right, `aisupply lock --update {}`",
                locked.name
            )),
        ),
        (Some(_), Some(_)) => None,
        (Some(digest), None) => Some(
            finding(
                Code::NotLocked,
                format!("`{written}` ({context}) is pinned to `{digest}`, which aisupply.lock does not lock"),
            )
            .hint(add),
        ),
    }
}

/// The reference without its digest, as a user would write it in `ref = "..."`.
fn unpinned_name(reference: &Reference) -> String {
    if reference.tag().is_some() {
        reference.without_digest().familiar()
    } else {
        reference.familiar()
    }
}
