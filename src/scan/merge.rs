//! Merging: the same vulnerability on the same package version of the same image is one
//! finding, however many reports and tools name it.
//!
//! Tools name one vulnerability differently (Grype reports a Python package's `GHSA-…` with
//! the CVE among its `relatedVulnerabilities`; Trivy reports the CVE), so each entry is keyed
//! by its CVE when it has one. Only CVE aliases are followed: a vendor advisory such as
//! `DSA-5962-1` covers several CVEs, and following it would merge distinct vulnerabilities.

use std::collections::HashMap;

use super::bind::Binding;
use super::format::Report;
use super::model::{Entry, FixState, Rating, Tool, VulnFinding};

/// Folds report entries into findings.
#[derive(Debug, Default)]
pub struct Merger {
    index: HashMap<Key, usize>,
    findings: Vec<VulnFinding>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    image: String,
    id: String,
    package: String,
    version: String,
}

impl Merger {
    /// Add every entry of `report`, which is about `binding`'s image.
    pub fn add_report(&mut self, report: Report, binding: &Binding) {
        let tool = report.tool();
        for entry in report.entries {
            self.add(entry, tool, binding);
        }
    }

    /// Add one entry reported by `tool` about `binding`'s image.
    pub fn add(&mut self, entry: Entry, tool: Tool, binding: &Binding) {
        let (id, aliases) = canonical_id(entry.id, entry.aliases);
        let key = Key {
            image: binding.image.clone(),
            id: id.to_ascii_uppercase(),
            package: entry.package.name.to_lowercase(),
            version: entry.package.version.clone(),
        };
        let rating = Rating {
            tool,
            severity: entry.severity,
            raw: entry.raw_severity,
        };
        if let Some(&i) = self.index.get(&key) {
            let finding = &mut self.findings[i];
            add_rating(finding, rating);
            union(&mut finding.aliases, aliases);
            union(&mut finding.fixed_versions, entry.fixed_versions);
            finding.fix_state = most_actionable(finding.fix_state, entry.fix_state);
            let package = &mut finding.package;
            package.kind = package.kind.take().or(entry.package.kind);
            package.purl = package.purl.take().or(entry.package.purl);
            package.source = package.source.take().or(entry.package.source);
            finding.title = finding.title.take().or(entry.title);
            finding.url = finding.url.take().or(entry.url);
            if let Some(d) = &binding.digest
                && !finding.digests.contains(d)
            {
                finding.digests.push(d.clone());
            }
            return;
        }
        self.index.insert(key, self.findings.len());
        self.findings.push(VulnFinding {
            id,
            aliases,
            package: entry.package,
            fixed_versions: entry.fixed_versions,
            fix_state: entry.fix_state,
            severity: rating.severity,
            ratings: vec![rating],
            image: binding.image.clone(),
            digests: binding.digest.iter().cloned().collect(),
            title: entry.title,
            url: entry.url,
        });
    }

    /// The findings by image, then most severe first, then by id and package.
    pub fn finish(self) -> Vec<VulnFinding> {
        let mut findings = self.findings;
        for f in &mut findings {
            f.aliases.sort();
            f.ratings.sort_by_key(|r| r.tool);
        }
        findings.sort_by(|a, b| {
            a.image
                .cmp(&b.image)
                .then(b.severity.cmp(&a.severity))
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| a.package.name.cmp(&b.package.name))
                .then_with(|| a.package.version.cmp(&b.package.version))
        });
        findings
    }
}

/// The CVE among `id` and `aliases` when there is one, with every other id as an alias.
fn canonical_id(id: String, aliases: Vec<String>) -> (String, Vec<String>) {
    let is_cve = |s: &str| s.len() > 4 && s[..4].eq_ignore_ascii_case("CVE-");
    if is_cve(&id) {
        return (id, aliases);
    }
    let mut cves: Vec<&String> = aliases.iter().filter(|a| is_cve(a)).collect();
    cves.sort();
    let Some(cve) = cves.first().map(|c| (*c).clone()) else {
        return (id, aliases);
    };
    let mut rest: Vec<String> = aliases.into_iter().filter(|a| *a != cve).collect();
    if !id.is_empty() {
        rest.push(id);
    }
    (cve, rest)
}

/// One rating per tool: a tool that rated the finding twice (two reports) keeps its higher one.
fn add_rating(finding: &mut VulnFinding, rating: Rating) {
    finding.severity = finding.severity.max(rating.severity);
    match finding.ratings.iter_mut().find(|r| r.tool == rating.tool) {
        Some(existing) if existing.severity < rating.severity => *existing = rating,
        Some(_) => {}
        None => finding.ratings.push(rating),
    }
}

fn union(into: &mut Vec<String>, more: Vec<String>) {
    for item in more {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

/// When tools disagree on the fix state, a known fix beats a refusal, which beats "not yet",
/// which beats not knowing.
fn most_actionable(a: FixState, b: FixState) -> FixState {
    let rank = |s: FixState| match s {
        FixState::Fixed => 3,
        FixState::WontFix => 2,
        FixState::NotFixed => 1,
        FixState::Unknown => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::bind::BindingStatus;
    use crate::scan::model::{Package, Severity};

    fn binding(image: &str) -> Binding {
        Binding {
            image: image.to_owned(),
            digest: None,
            platform: None,
            status: BindingStatus::Verified,
        }
    }

    fn entry(id: &str, aliases: &[&str], package: &str, severity: Severity) -> Entry {
        Entry {
            id: id.to_owned(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            package: Package {
                name: package.to_owned(),
                version: "1.0".to_owned(),
                ..Package::default()
            },
            severity,
            raw_severity: severity.as_str().to_uppercase(),
            ..Entry::default()
        }
    }

    #[test]
    fn the_same_vulnerability_from_two_tools_is_one_finding_with_the_higher_severity() {
        let mut merger = Merger::default();
        let b = binding("app");
        merger.add(
            entry("CVE-2024-5535", &[], "libssl3", Severity::Medium),
            Tool::Trivy,
            &b,
        );
        merger.add(
            entry("CVE-2024-5535", &[], "libssl3", Severity::Critical),
            Tool::Grype,
            &b,
        );
        let findings = merger.finish();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Critical);
        assert_eq!(findings[0].tools(), [Tool::Trivy, Tool::Grype]);
        assert!(findings[0].disputed());
    }

    #[test]
    fn a_ghsa_with_a_related_cve_merges_with_that_cve() {
        let mut merger = Merger::default();
        let b = binding("app");
        merger.add(
            entry(
                "GHSA-cx63-2mw6-8hw5",
                &["CVE-2024-6345"],
                "setuptools",
                Severity::High,
            ),
            Tool::Grype,
            &b,
        );
        merger.add(
            entry("CVE-2024-6345", &[], "Setuptools", Severity::High),
            Tool::Trivy,
            &b,
        );
        let findings = merger.finish();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].id, "CVE-2024-6345");
        assert_eq!(findings[0].aliases, ["GHSA-cx63-2mw6-8hw5"]);
    }

    #[test]
    fn vendor_advisories_do_not_merge_distinct_cves() {
        let mut merger = Merger::default();
        let b = binding("app");
        merger.add(
            entry("CVE-2025-1", &["DSA-5962-1"], "gnutls", Severity::High),
            Tool::Trivy,
            &b,
        );
        merger.add(
            entry("CVE-2025-2", &["DSA-5962-1"], "gnutls", Severity::High),
            Tool::Trivy,
            &b,
        );
        assert_eq!(merger.finish().len(), 2);
    }

    #[test]
    fn different_packages_versions_or_images_stay_apart() {
        let mut merger = Merger::default();
        let mut other_version = entry("CVE-1", &[], "a", Severity::Low);
        other_version.package.version = "2.0".to_owned();
        merger.add(
            entry("CVE-1", &[], "a", Severity::Low),
            Tool::Trivy,
            &binding("x"),
        );
        merger.add(
            entry("CVE-1", &[], "b", Severity::Low),
            Tool::Trivy,
            &binding("x"),
        );
        merger.add(other_version, Tool::Trivy, &binding("x"));
        merger.add(
            entry("CVE-1", &[], "a", Severity::Low),
            Tool::Trivy,
            &binding("y"),
        );
        assert_eq!(merger.finish().len(), 4);
    }

    #[test]
    fn a_known_fix_wins_over_an_unknown_fix_state() {
        let mut merger = Merger::default();
        let b = binding("app");
        let mut fixed = entry("CVE-1", &[], "a", Severity::Low);
        fixed.fix_state = FixState::Fixed;
        fixed.fixed_versions = vec!["1.1".to_owned()];
        merger.add(entry("CVE-1", &[], "a", Severity::Low), Tool::Grype, &b);
        merger.add(fixed, Tool::Trivy, &b);
        let findings = merger.finish();
        assert_eq!(findings[0].fix_state, FixState::Fixed);
        assert_eq!(findings[0].fixed_versions, ["1.1"]);
    }

    #[test]
    fn findings_sort_most_severe_first() {
        let mut merger = Merger::default();
        let b = binding("app");
        merger.add(entry("CVE-1", &[], "a", Severity::Low), Tool::Trivy, &b);
        merger.add(
            entry("CVE-2", &[], "a", Severity::Critical),
            Tool::Trivy,
            &b,
        );
        merger.add(entry("CVE-3", &[], "a", Severity::Unknown), Tool::Trivy, &b);
        let ids: Vec<String> = merger.finish().into_iter().map(|f| f.id).collect();
        assert_eq!(ids, ["CVE-2", "CVE-1", "CVE-3"]);
    }
}
