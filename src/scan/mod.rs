//! The scan gate: Trivy and Grype reports, read into one model, bound to the locked digests,
//! merged and judged by the `[scan]` policy of `aisupply.toml`.
//!
//! The steps, each in its own module: [`format`] reads a report whatever its shape, [`bind`]
//! proves which locked image (and digest) it is about, [`merge`] folds entries of every report
//! and tool into [`VulnFinding`]s, [`policy`] decides which of them fail, and [`run`] invokes
//! the scanners themselves. [`Scan`] ties them together for `aisupply scan` and `verify`.

pub mod bind;
pub mod date;
pub mod format;
pub mod merge;
pub mod model;
pub mod policy;
pub mod run;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, ScanPolicy};
use crate::finding::{Code, Finding, Severity as FindingSeverity};
use crate::lock::LockFile;

pub use bind::{Binding, BindingStatus};
pub use date::Date;
pub use format::{Format, Report, Subject};
pub use model::{Entry, FixState, Package, Rating, Severity, Tool, VulnFinding};
pub use policy::{Decision, Evaluation, Notice};

/// Why reports cannot be read or bound, or a scanner cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file could not be read.
    #[error("cannot read report `{}`", path.display())]
    Read {
        /// The report path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON, or is cut short.
    #[error("report `{}` is not valid JSON", path.display())]
    NotJson {
        /// The report path.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON has a field of an unexpected type.
    #[error("report `{}` is JSON, but not a Trivy, Grype or SARIF report", path.display())]
    Shape {
        /// The report path.
        path: PathBuf,
        /// Which field has which wrong type, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON has none of the keys of a supported format.
    #[error(
        "report `{}` is not a Trivy, Grype or SARIF report: expected a Trivy result array, or an \
         object with `SchemaVersion`/`Results` (Trivy), `matches`/`source` (Grype) or `runs` \
         (SARIF){}",
        path.display(),
        found_keys(keys)
    )]
    UnknownFormat {
        /// The report path.
        path: PathBuf,
        /// Some of the top-level keys it has.
        keys: Vec<String>,
    },
    /// A Trivy report with a schema this build does not know.
    #[error("report `{}` has Trivy `SchemaVersion` {found}; aisupply reads version 2", path.display())]
    TrivySchema {
        /// The report path.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// A SARIF log of a version other than 2.1.0.
    #[error(
        "report `{}` is SARIF version {}; aisupply reads SARIF 2.1.0",
        path.display(),
        found.as_deref().unwrap_or("(none given)")
    )]
    SarifVersion {
        /// The report path.
        path: PathBuf,
        /// The `version` found.
        found: Option<String>,
    },
    /// A SARIF log from a tool other than Trivy or Grype.
    #[error("{}", sarif_tool_message(path, tool))]
    SarifTool {
        /// The report path.
        path: PathBuf,
        /// The `tool.driver.name`; empty when the log has no run.
        tool: String,
    },
    /// A report names no image digest, and no `--target` says which image it is about.
    #[error(
        "report `{}` names no image digest ({}), so it cannot be bound to a locked image",
        path.display(),
        what
    )]
    NoImage {
        /// The report path.
        path: PathBuf,
        /// What the report is about instead.
        what: String,
    },
    /// A report is about a digest that no locked image has.
    #[error(
        "report `{}` is about `{found}`, which belongs to no locked image",
        path.display()
    )]
    NotLocked {
        /// The report path.
        path: PathBuf,
        /// The digest(s) it names.
        found: String,
    },
    /// A report's digest belongs to several locked images.
    #[error(
        "report `{}` is about a digest that images {} all lock",
        path.display(),
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous {
        /// The report path.
        path: PathBuf,
        /// The images that lock the digest.
        names: Vec<String>,
    },
    /// `--target NAME` names no locked image.
    #[error("`--target {name}` is not an image of the lockfile")]
    UnknownTarget {
        /// The name given.
        name: String,
        /// The locked image names.
        known: Vec<String>,
    },
    /// A scanner is not installed.
    #[error("`{tool}` was not found on PATH")]
    ToolMissing {
        /// The tool.
        tool: Tool,
    },
    /// Neither scanner is installed.
    #[error("neither `trivy` nor `grype` was found on PATH")]
    NoTools,
    /// A scanner could not be started or failed.
    #[error("`{tool}` failed to scan `{target}`{}", status.as_deref().map(|s| format!(" ({s})")).unwrap_or_default())]
    ToolFailed {
        /// The tool.
        tool: Tool,
        /// The image reference it scanned.
        target: String,
        /// The exit status, when it ran.
        status: Option<String>,
        /// What it printed on stderr, or why it could not start.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn found_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        format!("; found keys {}", keys.join(", "))
    }
}

fn sarif_tool_message(path: &Path, tool: &str) -> String {
    if tool.is_empty() {
        format!(
            "SARIF report `{}` names no tool (it has no runs)",
            path.display()
        )
    } else {
        format!(
            "SARIF report `{}` is from `{tool}`; aisupply reads SARIF from Trivy and Grype",
            path.display()
        )
    }
}

impl ScanError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        let formats = "aisupply reads `trivy image --format json` (or `--format sarif`) and \
                       `grype -o json` (or `-o sarif`)";
        match self {
            Self::NotJson { .. } => Some(
                "the file may be cut short: re-run the scanner and write the report to a file \
                 with `--output FILE` (trivy) or `--file FILE` (grype)"
                    .to_owned(),
            ),
            Self::Shape { .. } | Self::UnknownFormat { .. } | Self::SarifVersion { .. } => {
                Some(formats.to_owned())
            }
            Self::SarifTool { .. } => Some(format!("{formats}; give the scanner's own report")),
            Self::TrivySchema { .. } => {
                Some("upgrade aisupply, or write the report with a Trivy it knows".to_owned())
            }
            Self::NoImage { .. } => Some(
                "pass `--target NAME` with the name of the locked image the report is about"
                    .to_owned(),
            ),
            Self::NotLocked { .. } => Some(
                "scan the locked digest (`aisupply scan --run`), or lock the image first with \
                 `aisupply lock`"
                    .to_owned(),
            ),
            Self::Ambiguous { .. } => {
                Some("pass `--target NAME` to say which image the report is about".to_owned())
            }
            Self::UnknownTarget { known, .. } if known.is_empty() => Some(
                "the lockfile has no images; add one to aisupply.toml and run `aisupply lock`"
                    .to_owned(),
            ),
            Self::UnknownTarget { known, .. } => Some(format!(
                "locked images: {}",
                known
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::ToolMissing { tool } => Some(install_hint(*tool).to_owned()),
            Self::NoTools => Some(format!(
                "{}; or {}",
                install_hint(Tool::Trivy),
                install_hint(Tool::Grype)
            )),
            Self::ToolFailed { tool, .. } => Some(format!(
                "run the command with `-v` to see it, and check that `{tool}` can pull the image \
                 (registry credentials, network)"
            )),
            Self::Read { .. } => None,
        }
    }
}

fn install_hint(tool: Tool) -> &'static str {
    match tool {
        Tool::Trivy => {
            "install Trivy (https://trivy.dev/latest/getting-started/installation/, or \
             `brew install trivy`) and put `trivy` on PATH"
        }
        Tool::Grype => {
            "install Grype (`curl -sSfL https://get.anchore.io/grype | sh -s -- -b \
             /usr/local/bin`, or `brew install grype`) and put `grype` on PATH"
        }
    }
}

/// A report after binding: what it was and which image it is about.
#[derive(Clone, Debug, Serialize)]
pub struct ReportSummary {
    /// Where it was read from.
    pub path: PathBuf,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Its format.
    pub format: Format,
    /// The tool version it records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    /// What it says it scanned.
    pub subject: Subject,
    /// The locked image it is bound to.
    pub binding: Binding,
    /// How many vulnerability entries it holds.
    pub entries: usize,
}

/// Every report of one scan, bound, merged and judged.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The reports, in the order given.
    pub reports: Vec<ReportSummary>,
    /// The merged findings, by image, most severe first.
    pub findings: Vec<VulnFinding>,
    /// The policy's decision on each finding, and its notices about allow entries.
    pub evaluation: Evaluation,
    /// The policy applied.
    pub policy: ScanPolicy,
}

impl Scan {
    /// Bind every report to a locked image (its target, when given, names the image for a
    /// report without a digest), merge their entries and apply the config's `[scan]` policy as
    /// of `today`.
    pub fn assemble(
        reports: Vec<(Report, Option<String>)>,
        config: &Config,
        lock: &LockFile,
        today: Date,
    ) -> Result<Self, ScanError> {
        let mut summaries = Vec::with_capacity(reports.len());
        let mut merger = merge::Merger::default();
        for (report, target) in reports {
            let binding = bind::bind(&report, lock, target.as_deref())?;
            summaries.push(ReportSummary {
                path: report.path.clone(),
                tool: report.tool(),
                format: report.format,
                tool_version: report.tool_version.clone(),
                subject: report.subject.clone(),
                entries: report.entries.len(),
                binding: binding.clone(),
            });
            merger.add_report(report, &binding);
        }
        let findings = merger.finish();

        let policy = config.scan.clone().unwrap_or_default();
        let images: Vec<&str> = summaries.iter().map(|r| r.binding.image.as_str()).collect();
        let evaluation = policy::evaluate(&findings, &policy, today, &images);
        Ok(Self {
            reports: summaries,
            findings,
            evaluation,
            policy,
        })
    }

    /// Whether the scan passes: no finding fails the policy and every report is about its
    /// locked digest.
    pub fn passed(&self) -> bool {
        !self.evaluation.failed() && !self.reports.iter().any(|r| r.binding.is_mismatch())
    }

    /// What is wrong besides the vulnerabilities themselves: reports of another digest or of
    /// no provable digest, expired and stale allow entries.
    pub fn notices(&self, config: &Config, lock_path: &Path) -> Vec<Finding> {
        let mut findings = Vec::new();
        for report in &self.reports {
            findings.extend(bind::finding(report, config, lock_path));
        }
        for notice in &self.evaluation.notices {
            findings.push(notice.finding(&config.path));
        }
        findings
    }

    /// The scan as `verify` findings: the notices, then every vulnerability that fails the
    /// policy as an error at the image's line of the config.
    pub fn verify_findings(&self, config: &Config, lock_path: &Path) -> Vec<Finding> {
        let mut findings = self.notices(config, lock_path);
        for (finding, decision) in self.findings.iter().zip(&self.evaluation.decisions) {
            if *decision != Decision::Fail {
                continue;
            }
            let mut f = Finding::new(
                Code::Vulnerability,
                FindingSeverity::Error,
                &finding.image,
                format!(
                    "{} {} in `{} {}` of image `{}`{}",
                    finding.severity,
                    finding.id,
                    finding.package.name,
                    finding.package.version,
                    finding.image,
                    fixed_in(finding)
                ),
            )
            .hint(format!(
                "upgrade the package, or accept it with a `[[scan.allow]]` entry for `{}` and a \
                 reason",
                finding.id
            ));
            if let Some(line) = config.image(&finding.image).map(|i| i.line) {
                f = f.at(&config.path, Some(line));
            }
            findings.push(f);
        }
        findings
    }
}

/// `, fixed in 1.2.3` or nothing.
pub fn fixed_in(finding: &VulnFinding) -> String {
    if finding.fixed_versions.is_empty() {
        String::new()
    } else {
        format!(", fixed in {}", finding.fixed_versions.join(", "))
    }
}

#[cfg(test)]
mod tests;
