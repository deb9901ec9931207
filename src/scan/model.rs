//! The one vulnerability model every scanner format is read into.
//!
//! A report yields [`Entry`]s, one per vulnerability entry in the file; [`merge`](super::merge)
//! folds the entries of every report into [`VulnFinding`]s, one per vulnerability on one package
//! version of one image.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::digest::Digest;

/// Severity on the one scale both scanners map onto:
/// unknown < negligible < low < medium < high < critical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The scanner gave none, or a word we do not know.
    #[default]
    Unknown,
    /// Grype's "Negligible": the distribution does not consider it a risk.
    Negligible,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 6] = [
        Self::Unknown,
        Self::Negligible,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// The lowercase word used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Negligible => "negligible",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// A scanner's word (`HIGH`, `High`, `high`); anything else is [`Severity::Unknown`].
    pub fn from_scanner(word: &str) -> Self {
        word.trim().parse().unwrap_or(Self::Unknown)
    }

    /// The CVSS-style band of a SARIF `security-severity` score.
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Unknown,
        }
    }

    /// A representative score for SARIF `security-severity`, in the band GitHub code scanning
    /// shows as this severity.
    pub fn score(self) -> &'static str {
        match self {
            Self::Critical => "9.5",
            Self::High => "8.0",
            Self::Medium => "5.5",
            Self::Low => "2.0",
            Self::Negligible => "0.5",
            Self::Unknown => "0.0",
        }
    }
}

impl FromStr for Severity {
    type Err = ();

    fn from_str(word: &str) -> Result<Self, ()> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
            .ok_or(())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the package's maintainers ship a fix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    /// A fixed version exists.
    Fixed,
    /// No fix yet.
    NotFixed,
    /// The maintainers decided not to fix it (or deferred it, or the release is end of life).
    WontFix,
    /// The scanner does not say.
    #[default]
    Unknown,
}

impl FixState {
    /// Every state, in config order.
    pub const ALL: [Self; 4] = [Self::Fixed, Self::NotFixed, Self::WontFix, Self::Unknown];

    /// The kebab-case word used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::NotFixed => "not-fixed",
            Self::WontFix => "wont-fix",
            Self::Unknown => "unknown",
        }
    }

    /// The states `ignore-unfixed = true` ignores: every one without a fix to upgrade to.
    pub const UNFIXED: [Self; 3] = [Self::NotFixed, Self::WontFix, Self::Unknown];

    /// Trivy's `Status`; reports older than v0.35 have none, and then a `FixedVersion` is
    /// what tells a fixed vulnerability from an unfixed one.
    pub fn from_trivy(status: Option<&str>, has_fixed_version: bool) -> Self {
        match status.map(str::trim) {
            Some("fixed") => Self::Fixed,
            Some("affected" | "under_investigation") => Self::NotFixed,
            Some("will_not_fix" | "fix_deferred" | "end_of_life") => Self::WontFix,
            Some(s) if !s.is_empty() => Self::Unknown,
            _ if has_fixed_version => Self::Fixed,
            _ => Self::NotFixed,
        }
    }

    /// Grype's `fix.state`; the empty string some versions write means unknown.
    pub fn from_grype(state: Option<&str>) -> Self {
        match state.map(str::trim) {
            Some("fixed") => Self::Fixed,
            Some("not-fixed") => Self::NotFixed,
            Some("wont-fix") => Self::WontFix,
            _ => Self::Unknown,
        }
    }
}

impl FromStr for FixState {
    type Err = ();

    fn from_str(word: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|s| s.as_str() == word).ok_or(())
    }
}

impl fmt::Display for FixState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scanners aisupply reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// Aqua Security's Trivy.
    Trivy,
    /// Anchore's Grype.
    Grype,
}

impl Tool {
    /// Both tools, in the order they run.
    pub const ALL: [Self; 2] = [Self::Trivy, Self::Grype];

    /// The executable name, which is also the word in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trivy => "trivy",
            Self::Grype => "grype",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The package a vulnerability was found in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The name, as the scanner reports it.
    pub name: String,
    /// The installed version.
    pub version: String,
    /// The ecosystem: Trivy's result `Type` (`debian`, `python-pkg`), Grype's `artifact.type`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The package URL, when the scanner gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The source package it was built from (Grype `upstreams`), such as `openssl` for
    /// `libssl3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One vulnerability entry of one report, normalized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The id the scanner reports, such as `CVE-2024-5535` or `GHSA-cx63-2mw6-8hw5`.
    pub id: String,
    /// Other ids of the same vulnerability (Grype `relatedVulnerabilities`, Trivy `VendorIDs`).
    pub aliases: Vec<String>,
    /// The affected package.
    pub package: Package,
    /// Versions that fix it.
    pub fixed_versions: Vec<String>,
    /// Whether a fix exists.
    pub fix_state: FixState,
    /// The severity on our scale.
    pub severity: Severity,
    /// The scanner's own severity word.
    pub raw_severity: String,
    /// A one-line title, when the scanner gives one.
    pub title: Option<String>,
    /// A page about the vulnerability.
    pub url: Option<String>,
}

/// How one tool rated a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rating {
    /// The tool.
    pub tool: Tool,
    /// Its severity on our scale.
    pub severity: Severity,
    /// Its own word, such as `MEDIUM` or `Critical`.
    pub raw: String,
}

/// One vulnerability on one package version of one image, merged across reports and tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VulnFinding {
    /// The vulnerability id: the CVE when any tool names one, else the tool's id.
    pub id: String,
    /// Every other id the tools gave it, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The affected package.
    pub package: Package,
    /// Versions that fix it, as the tools list them; `[]`, not absent, when there are none.
    pub fixed_versions: Vec<String>,
    /// Whether a fix exists; when the tools disagree, the most actionable state wins.
    pub fix_state: FixState,
    /// The severity that counts: the highest any tool gave.
    pub severity: Severity,
    /// Each tool's rating, so that a disagreement stays visible.
    pub ratings: Vec<Rating>,
    /// The locked image (by name) the finding is in.
    pub image: String,
    /// The digests of the image that the reports were about.
    pub digests: Vec<Digest>,
    /// A one-line title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A page about the vulnerability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl VulnFinding {
    /// The tools that reported it, without repeats.
    pub fn tools(&self) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self.ratings.iter().map(|r| r.tool).collect();
        tools.sort();
        tools.dedup();
        tools
    }

    /// Whether the tools rated it differently.
    pub fn disputed(&self) -> bool {
        self.ratings.iter().any(|r| r.severity != self.severity)
    }

    /// Whether `id` names this vulnerability (its id or an alias), ignoring case.
    pub fn is_known_as(&self, id: &str) -> bool {
        self.id.eq_ignore_ascii_case(id) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_from_unknown_to_critical() {
        let mut shuffled = [
            Severity::High,
            Severity::Unknown,
            Severity::Critical,
            Severity::Negligible,
            Severity::Medium,
            Severity::Low,
        ];
        shuffled.sort();
        assert_eq!(shuffled, Severity::ALL);
    }

    #[test]
    fn scanner_words_map_onto_one_scale_ignoring_case() {
        assert_eq!(Severity::from_scanner("CRITICAL"), Severity::Critical);
        assert_eq!(Severity::from_scanner("Negligible"), Severity::Negligible);
        assert_eq!(Severity::from_scanner("medium"), Severity::Medium);
        assert_eq!(Severity::from_scanner("UNKNOWN"), Severity::Unknown);
        assert_eq!(Severity::from_scanner("severe"), Severity::Unknown);
        assert_eq!(Severity::from_scanner(""), Severity::Unknown);
    }

    #[test]
    fn scores_map_onto_cvss_bands_and_back() {
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_score(7.0), Severity::High);
        assert_eq!(Severity::from_score(5.3), Severity::Medium);
        assert_eq!(Severity::from_score(0.1), Severity::Low);
        assert_eq!(Severity::from_score(0.0), Severity::Unknown);
        for s in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(Severity::from_score(s.score().parse().unwrap()), s);
        }
    }

    #[test]
    fn trivy_status_maps_onto_fix_states() {
        assert_eq!(FixState::from_trivy(Some("fixed"), true), FixState::Fixed);
        assert_eq!(
            FixState::from_trivy(Some("affected"), false),
            FixState::NotFixed
        );
        assert_eq!(
            FixState::from_trivy(Some("will_not_fix"), false),
            FixState::WontFix
        );
        assert_eq!(
            FixState::from_trivy(Some("fix_deferred"), false),
            FixState::WontFix
        );
        assert_eq!(
            FixState::from_trivy(Some("end_of_life"), false),
            FixState::WontFix
        );
        assert_eq!(
            FixState::from_trivy(Some("unknown"), false),
            FixState::Unknown
        );
    }

    #[test]
    fn trivy_without_status_is_fixed_only_when_a_fixed_version_is_named() {
        assert_eq!(FixState::from_trivy(None, true), FixState::Fixed);
        assert_eq!(FixState::from_trivy(None, false), FixState::NotFixed);
        assert_eq!(FixState::from_trivy(Some(""), false), FixState::NotFixed);
    }

    #[test]
    fn grype_empty_fix_state_is_unknown() {
        assert_eq!(FixState::from_grype(Some("fixed")), FixState::Fixed);
        assert_eq!(FixState::from_grype(Some("not-fixed")), FixState::NotFixed);
        assert_eq!(FixState::from_grype(Some("wont-fix")), FixState::WontFix);
        assert_eq!(FixState::from_grype(Some("")), FixState::Unknown);
        assert_eq!(FixState::from_grype(None), FixState::Unknown);
    }
}
