//! Findings: what `verify` (and later `scan`) reports, as data.
//!
//! Each finding has a stable kebab-case code that CI scripts and suppressions can rely on, a
//! severity, the entry it is about and, where there is one, the file and line to look at.
//! Renderers in the CLI turn findings into text or JSON.

use std::path::PathBuf;

use serde::Serialize;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails.
    Note,
    /// Fails only when the user asks for it (such as `--fail-on-drift`).
    Warning,
    /// Fails the command with exit code 1.
    Error,
}

impl Severity {
    /// The lowercase word used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// The stable codes of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A config entry has no lock entry.
    NotLocked,
    /// A lock entry has no config entry.
    StaleLockEntry,
    /// A lock entry no longer matches its config entry (reference or platforms changed).
    LockMismatch,
    /// A locked digest no longer exists in its registry.
    DigestMissing,
    /// The locked tag now points at another digest.
    TagDrift,
    /// The registry served content for a locked digest that does not hash to it, or a
    /// `[sources]` file pins a reference to another digest than the lock.
    DigestMismatch,
    /// The lock's media type or platform manifests differ from what the content of the locked
    /// digest says (a hand-edited or tampered lockfile).
    IndexMismatch,
    /// A locked model file is not on disk where `verify` looked.
    ModelFileMissing,
    /// A model file on disk does not hash to its locked SHA-256.
    ModelFileMismatch,
    /// A scanned vulnerability fails the `[scan]` policy.
    Vulnerability,
    /// A scan report is about another digest than the locked one.
    ScanDigestMismatch,
    /// A scan report names no digest, so it cannot be proven to be about the locked one.
    ScanDigestUnverified,
    /// A `[[scan.allow]]` entry has expired.
    AllowExpired,
    /// A `[[scan.allow]]` entry matched no finding.
    AllowStale,
    /// A reference in a `[sources]` file is not pinned by digest, or cannot be checked.
    UnpinnedReference,
    /// A `[sources]` file could not be read: not UTF-8, not valid YAML, an unfinished
    /// instruction or an invalid reference.
    UnreadableSource,
}

impl Code {
    /// The kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLocked => "not-locked",
            Self::StaleLockEntry => "stale-lock-entry",
            Self::LockMismatch => "lock-mismatch",
            Self::DigestMissing => "digest-missing",
            Self::TagDrift => "tag-drift",
            Self::DigestMismatch => "digest-mismatch",
            Self::IndexMismatch => "index-mismatch",
            Self::ModelFileMissing => "model-file-missing",
            Self::ModelFileMismatch => "model-file-mismatch",
            Self::Vulnerability => "vulnerability",
            Self::ScanDigestMismatch => "scan-digest-mismatch",
            Self::ScanDigestUnverified => "scan-digest-unverified",
            Self::AllowExpired => "allow-expired",
            Self::AllowStale => "allow-stale",
            Self::UnpinnedReference => "unpinned-reference",
            Self::UnreadableSource => "unreadable-source",
        }
    }
}

/// A file and line a finding points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// One reported problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The stable code.
    pub code: Code,
    /// How much it matters.
    pub severity: Severity,
    /// The name of the entry it is about.
    pub subject: String,
    /// One sentence saying what is wrong.
    pub message: String,
    /// Where to look.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What fixes it, when there is one step that does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    /// A finding with no location or hint.
    pub fn new(code: Code, severity: Severity, subject: &str, message: String) -> Self {
        Self {
            code,
            severity,
            subject: subject.to_owned(),
            message,
            location: None,
            hint: None,
        }
    }

    /// Point the finding at a file and line.
    #[must_use]
    pub fn at(mut self, file: impl Into<PathBuf>, line: Option<usize>) -> Self {
        self.location = Some(Location {
            file: file.into(),
            line,
        });
        self
    }

    /// Attach the step that fixes the finding.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Give findings that point at `file` without a line the line of their subject in `lines`.
pub fn attach_lines(
    findings: &mut [Finding],
    file: &std::path::Path,
    lines: &std::collections::BTreeMap<String, usize>,
) {
    for finding in findings {
        let subject = &finding.subject;
        match &mut finding.location {
            Some(location) if location.file == file && location.line.is_none() => {
                location.line = lines.get(subject).copied();
            }
            _ => {}
        }
    }
}

/// Whether any finding has severity [`Severity::Error`].
pub fn any_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
