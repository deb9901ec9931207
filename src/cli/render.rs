//! Turning findings and errors into text for people and JSON for machines.

use std::fmt::Write as _;

use aisupply::config::ConfigError;
use aisupply::finding::{Finding, Severity};
use aisupply::hub::HubError;
use aisupply::lock::LockError;
use aisupply::reference::ReferenceError;
use aisupply::registry::RegistryError;
use aisupply::registry::auth::AuthError;
use aisupply::resolve::ResolveError;
use aisupply::scan::ScanError;

/// The hint of the first error in the chain that has one.
pub fn hint_for(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<ConfigError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<LockError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<ScanError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<ResolveError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<RegistryError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<aisupply::mirror::MirrorError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<aisupply::mirror::models::ModelError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<HubError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<aisupply::pin::DiscoveryError>() {
            e.hint()
        } else if let Some(e) = e.downcast_ref::<aisupply::pin::SourceError>() {
            e.hint()
        } else if e.is::<super::pin::UnlockedReferences>() {
            Some(super::pin::UnlockedReferences::hint())
        } else if e.is::<super::init::ConfigExists>() {
            Some(super::init::ConfigExists::hint())
        } else if let Some(e) = e.downcast_ref::<AuthError>() {
            e.hint()
        } else if e.downcast_ref::<ReferenceError>().is_some() {
            Some("references look like `ubuntu:22.04` or `ghcr.io/org/app:1.0@sha256:…`".into())
        } else {
            None
        }
    })
}

/// Findings as text, one block each, most severe first, then a summary line.
pub fn findings_text(findings: &[Finding]) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.subject.cmp(&b.subject)));
    let mut out = String::new();
    for f in sorted {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            f.severity.as_str(),
            f.code.as_str(),
            f.message
        );
        if let Some(location) = &f.location {
            match location.line {
                Some(line) => {
                    let _ = writeln!(out, "  --> {}:{line}", location.file.display());
                }
                None => {
                    let _ = writeln!(out, "  --> {}", location.file.display());
                }
            }
        }
        if let Some(hint) = &f.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
    }
    out
}

/// "1 error, 2 warnings" or "no findings".
pub fn counts(findings: &[Finding]) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let parts: Vec<String> = [
        (count(Severity::Error), "error"),
        (count(Severity::Warning), "warning"),
        (count(Severity::Note), "note"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, word)| plural(n, word))
    .collect();
    if parts.is_empty() {
        "no findings".to_owned()
    } else {
        parts.join(", ")
    }
}
