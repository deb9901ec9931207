//! SARIF 2.1.0 from Trivy (`--format sarif`) and Grype (`-o sarif`).
//!
//! SARIF has no field for a package or its version, so each tool writes them into text: Trivy
//! into the result message (`Package: …`, `Installed Version: …`), Grype into the rule's help
//! text (`Package: …`, `Version: …`). Those lines are read here; where they are missing, the
//! rule id and the `security-severity` score still make a finding.

use std::path::Path;

use serde::Deserialize;

use super::{Format, Subject, nullable, versions};
use crate::scan::ScanError;
use crate::scan::model::{Entry, FixState, Package, Severity};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Run {
    tool: Tool,
    #[serde(deserialize_with = "nullable")]
    results: Vec<SarifResult>,
    properties: Option<RunProperties>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Driver {
    name: Option<String>,
    version: Option<String>,
    #[serde(deserialize_with = "nullable")]
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Rule {
    id: Option<String>,
    short_description: Option<Text>,
    full_description: Option<Text>,
    help: Option<Text>,
    help_uri: Option<String>,
    properties: Option<RuleProperties>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Text {
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleProperties {
    #[serde(rename = "security-severity")]
    security_severity: Option<Score>,
    #[serde(deserialize_with = "nullable")]
    purls: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    tags: Vec<String>,
}

/// `security-severity` is a string by the GitHub convention, but some writers emit a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Score {
    Text(String),
    Number(f64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    level: Option<String>,
    message: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RunProperties {
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    image_name: Option<String>,
    #[serde(deserialize_with = "nullable")]
    repo_digests: Vec<String>,
}

type Read = (Format, Option<String>, Subject, Vec<Entry>);

/// The format, tool version, subject and entries of every run.
pub(super) fn read(path: &Path, runs: Vec<Run>) -> Result<Read, ScanError> {
    let mut format = None;
    let mut tool_version = None;
    let mut subject = Subject::default();
    let mut entries = Vec::new();
    for run in runs {
        let name = run.tool.driver.name.clone().unwrap_or_default();
        let this = match name.to_ascii_lowercase().as_str() {
            "trivy" => Format::TrivySarif,
            "grype" => Format::GrypeSarif,
            _ => {
                return Err(ScanError::SarifTool {
                    path: path.to_owned(),
                    tool: name,
                });
            }
        };
        if format.is_some_and(|f| f != this) {
            return Err(ScanError::SarifTool {
                path: path.to_owned(),
                tool: format!("{name} (in a file that mixes tools)"),
            });
        }
        format = Some(this);
        tool_version = tool_version.or(run.tool.driver.version.clone());
        if let Some(properties) = &run.properties {
            run_subject(&mut subject, properties);
        }
        entries.extend(run_entries(this, &run));
    }
    let Some(format) = format else {
        return Err(ScanError::SarifTool {
            path: path.to_owned(),
            tool: String::new(),
        });
    };
    Ok((format, tool_version, subject, entries))
}

/// Trivy writes the image into the run's properties; Grype writes nothing that names a digest.
fn run_subject(subject: &mut Subject, properties: &RunProperties) {
    subject.is_image |= properties.image_id.is_some() || !properties.repo_digests.is_empty();
    if subject.name.is_none() {
        subject.name.clone_from(&properties.image_name);
    }
    if subject.image_id.is_none() {
        subject.image_id.clone_from(&properties.image_id);
    }
    for digest in &properties.repo_digests {
        subject.add_digest(digest);
    }
}

fn run_entries(format: Format, run: &Run) -> Vec<Entry> {
    let rules = &run.tool.driver.rules;
    let mut entries = Vec::new();
    for result in &run.results {
        let rule = result
            .rule_index
            .and_then(|i| rules.get(i))
            .filter(|r| r.id == result.rule_id)
            .or_else(|| {
                rules
                    .iter()
                    .find(|r| r.id.is_some() && r.id == result.rule_id)
            });
        if rule.is_some_and(is_not_a_vulnerability) {
            continue;
        }
        entries.push(match format {
            Format::TrivySarif => trivy_entry(result, rule),
            _ => grype_entry(result, rule),
        });
    }
    entries
}

/// Trivy SARIF also carries misconfigurations and secrets; their rules are tagged so.
fn is_not_a_vulnerability(rule: &Rule) -> bool {
    let tags = rule.properties.as_ref().map_or(&[][..], |p| &p.tags[..]);
    !tags.is_empty()
        && !tags.iter().any(|t| t == "vulnerability")
        && tags
            .iter()
            .any(|t| t == "misconfiguration" || t == "secret")
}

/// The value of the `key: value` line of `text`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The id on the `Vulnerability CVE-…` line both tools write.
fn vulnerability_line(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Vulnerability "))
        .map(str::trim)
        .filter(|id| !id.is_empty() && !id.contains(' '))
}

fn rule_score(rule: Option<&Rule>) -> Option<Severity> {
    let score = match rule?.properties.as_ref()?.security_severity.as_ref()? {
        Score::Text(text) => text.trim().parse().ok()?,
        Score::Number(n) => *n,
    };
    Some(Severity::from_score(score))
}

fn level_severity(level: Option<&str>) -> Severity {
    match level {
        Some("error") => Severity::High,
        Some("warning") => Severity::Medium,
        Some("note") => Severity::Low,
        _ => Severity::Unknown,
    }
}

fn text(t: Option<&Text>) -> &str {
    t.and_then(|t| t.text.as_deref()).unwrap_or("")
}

fn trivy_entry(result: &SarifResult, rule: Option<&Rule>) -> Entry {
    let message = text(result.message.as_ref());
    let fixed_versions = versions(field(message, "Fixed Version").unwrap_or("").split(','));
    let (severity, raw_severity) = severity(field(message, "Severity"), result, rule);
    Entry {
        id: vulnerability_line(message)
            .map(str::to_owned)
            .or_else(|| result.rule_id.clone())
            .unwrap_or_default(),
        aliases: Vec::new(),
        package: Package {
            name: field(message, "Package").unwrap_or("").to_owned(),
            version: field(message, "Installed Version").unwrap_or("").to_owned(),
            ..Package::default()
        },
        fix_state: FixState::from_trivy(None, !fixed_versions.is_empty()),
        fixed_versions,
        severity,
        raw_severity,
        title: rule.and_then(|r| r.short_description.as_ref()?.text.clone()),
        url: rule.and_then(|r| r.help_uri.clone()),
    }
}

fn grype_entry(result: &SarifResult, rule: Option<&Rule>) -> Entry {
    let help = text(rule.and_then(|r| r.help.as_ref()));
    let message = text(result.message.as_ref());
    let (name, version) = match (field(help, "Package"), field(help, "Version")) {
        (Some(name), Some(version)) => (name, version),
        _ => grype_message_package(message).unwrap_or(("", "")),
    };
    let fixed_versions = versions(field(help, "Fix Version").unwrap_or("").split(','));
    let (severity, raw_severity) = severity(field(help, "Severity"), result, rule);
    // Grype's rule id is `<vulnerability>-<package>`.
    let rule_id = result.rule_id.as_deref().unwrap_or("");
    let from_rule_id = rule_id
        .strip_suffix(name)
        .and_then(|id| id.strip_suffix('-'))
        .filter(|id| !name.is_empty() && !id.is_empty())
        .unwrap_or(rule_id);
    Entry {
        id: vulnerability_line(help).unwrap_or(from_rule_id).to_owned(),
        aliases: Vec::new(),
        package: Package {
            name: name.to_owned(),
            version: version.to_owned(),
            kind: field(help, "Type")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            purl: rule.and_then(|r| r.properties.as_ref()?.purls.first().cloned()),
            source: None,
        },
        fix_state: if fixed_versions.is_empty() {
            FixState::NotFixed
        } else {
            FixState::Fixed
        },
        fixed_versions,
        severity,
        raw_severity,
        title: None,
        url: None,
    }
}

/// `… package: NAME, version VERSION was found …` from a Grype result message.
fn grype_message_package(message: &str) -> Option<(&str, &str)> {
    let rest = message.split_once("package: ")?.1;
    let (name, rest) = rest.split_once(", version ")?;
    let version = rest.split_whitespace().next()?;
    Some((name, version))
}

/// The severity word when the text has one, else the rule's score, else the result level.
fn severity(word: Option<&str>, result: &SarifResult, rule: Option<&Rule>) -> (Severity, String) {
    if let Some(word) = word.filter(|w| !w.is_empty()) {
        return (Severity::from_scanner(word), word.to_owned());
    }
    if let Some(severity) = rule_score(rule) {
        return (severity, format!("security-severity {severity}"));
    }
    let level = result.level.clone().unwrap_or_default();
    (level_severity(Some(&level)), format!("level {level}"))
}
