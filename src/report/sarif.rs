//! SARIF 2.1.0, as GitHub code scanning and other SARIF consumers read it.
//!
//! An image has no source file of its own, so each vulnerability result points at the line of
//! `aisupply.toml` that declares the image: the place where a reviewer would act on it. Rules
//! are one per vulnerability id, with `security-severity` set from the highest severity any
//! finding of that id has, so that code scanning ranks them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::uri;
use crate::config::Config;
use crate::finding::{Finding, Severity as FindingSeverity};
use crate::scan::{Decision, Scan, Severity, VulnFinding, fixed_in};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF log of a scan: its vulnerabilities and its `notices` (digest binding, allow
/// entries).
pub fn scan(scan: &Scan, config: &Config, notices: &[Finding]) -> Value {
    let mut rules = Rules::default();
    let mut results = Vec::new();
    for (finding, decision) in scan.findings.iter().zip(&scan.evaluation.decisions) {
        let index = rules.vulnerability(finding);
        results.push(vulnerability_result(
            finding, *decision, index, scan, config,
        ));
    }
    for notice in notices {
        let index = rules.code(notice);
        results.push(finding_result(notice, index));
    }
    log(&rules.into_values(), &results)
}

/// The SARIF log of `verify` findings: one rule per finding code.
pub fn findings(findings: &[Finding]) -> Value {
    let mut rules = Rules::default();
    let results = findings
        .iter()
        .map(|f| {
            let index = rules.code(f);
            finding_result(f, index)
        })
        .collect::<Vec<_>>();
    log(&rules.into_values(), &results)
}

fn log(rules: &[Value], results: &[Value]) -> Value {
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "aisupply",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/aisupply/aisupply",
                    "rules": rules,
                }
            },
            "columnKind": "utf16CodeUnits",
            "results": results,
        }]
    })
}

/// Rules in the order first used, each with its index.
#[derive(Default)]
struct Rules {
    index: BTreeMap<String, usize>,
    rules: Vec<Value>,
}

impl Rules {
    fn vulnerability(&mut self, finding: &VulnFinding) -> usize {
        if let Some(&i) = self.index.get(&finding.id) {
            // A later finding of the same id may be more severe: the rule takes the highest.
            let rule = &mut self.rules[i];
            let current = rule["properties"]["aisupply-severity"]
                .as_str()
                .unwrap_or("");
            if current
                .parse::<Severity>()
                .is_ok_and(|s| s < finding.severity)
            {
                rule["properties"] = rule_properties(finding.severity);
            }
            return i;
        }
        let title = finding.title.clone().unwrap_or_else(|| finding.id.clone());
        let mut rule = json!({
            "id": finding.id,
            "name": "Vulnerability",
            "shortDescription": { "text": title },
            "fullDescription": { "text": format!("{}: {title}", finding.id) },
            "help": {
                "text": format!(
                    "Upgrade the affected package, or accept the finding with a `[[scan.allow]]` \
                     entry for `{}` in aisupply.toml, with a reason and an expiry date.",
                    finding.id
                )
            },
            "properties": rule_properties(finding.severity),
        });
        if let Some(url) = &finding.url {
            rule["helpUri"] = json!(url);
        }
        self.push(&finding.id, rule)
    }

    fn code(&mut self, finding: &Finding) -> usize {
        let id = finding.code.as_str();
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let rule = json!({
            "id": id,
            "name": id,
            "shortDescription": { "text": id.replace('-', " ") },
            "defaultConfiguration": { "level": level(finding.severity) },
        });
        self.push(id, rule)
    }

    fn push(&mut self, id: &str, rule: Value) -> usize {
        self.index.insert(id.to_owned(), self.rules.len());
        self.rules.push(rule);
        self.rules.len() - 1
    }

    fn into_values(self) -> Vec<Value> {
        self.rules
    }
}

fn rule_properties(severity: Severity) -> Value {
    json!({
        "security-severity": severity.score(),
        "aisupply-severity": severity.as_str(),
        "tags": ["security", "vulnerability", severity.as_str()],
        "precision": "very-high",
    })
}

fn level(severity: FindingSeverity) -> &'static str {
    match severity {
        FindingSeverity::Error => "error",
        FindingSeverity::Warning => "warning",
        FindingSeverity::Note => "note",
    }
}

fn vulnerability_result(
    finding: &VulnFinding,
    decision: Decision,
    rule_index: usize,
    scan: &Scan,
    config: &Config,
) -> Value {
    let level = match decision {
        Decision::Fail => "error",
        Decision::BelowThreshold if finding.severity >= Severity::Medium => "warning",
        _ => "note",
    };
    let package = &finding.package;
    let ratings: Vec<String> = finding
        .ratings
        .iter()
        .map(|r| format!("{}: {}", r.tool, r.raw))
        .collect();
    let text = format!(
        "{} {} in {} {} of image `{}`{} ({}); policy: {}",
        finding.severity,
        finding.id,
        package.name,
        package.version,
        finding.image,
        fixed_in(finding),
        ratings.join(", "),
        decision.as_str()
    );
    let line = config.image(&finding.image).map_or(1, |i| i.line);
    let mut result = json!({
        "ruleId": finding.id,
        "ruleIndex": rule_index,
        "level": level,
        "message": { "text": text },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri(&config.path) },
                "region": { "startLine": line },
            },
            "logicalLocations": [{
                "name": format!("{}@{}", package.name, package.version),
                "fullyQualifiedName": format!("{}/{}@{}", finding.image, package.name, package.version),
                "kind": "package",
            }],
        }],
        "partialFingerprints": {
            "aisupplyFinding/v1": format!(
                "{}/{}/{}@{}", finding.image, finding.id, package.name, package.version
            ),
        },
        "properties": {
            "image": finding.image,
            "digests": finding.digests,
            "package": package,
            "fixState": finding.fix_state,
            "fixedVersions": finding.fixed_versions,
            "aliases": finding.aliases,
            "ratings": finding.ratings,
        },
    });
    let justification = match decision {
        Decision::Allowed { entry } => scan.policy.allow.get(entry).map(|e| e.reason.clone()),
        Decision::IgnoredFixState => Some(format!(
            "fix state `{}` is ignored by the [scan] policy",
            finding.fix_state
        )),
        Decision::Fail | Decision::BelowThreshold => None,
    };
    if let Some(justification) = justification {
        result["suppressions"] = json!([{ "kind": "external", "justification": justification }]);
    }
    result
}

fn finding_result(finding: &Finding, rule_index: usize) -> Value {
    let mut result = json!({
        "ruleId": finding.code.as_str(),
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": { "text": match &finding.hint {
            Some(hint) => format!("{}\nhint: {hint}", finding.message),
            None => finding.message.clone(),
        } },
    });
    if let Some(location) = &finding.location {
        result["locations"] = json!([{
            "physicalLocation": {
                "artifactLocation": { "uri": uri(&location.file) },
                "region": { "startLine": location.line.unwrap_or(1) },
            }
        }]);
    }
    result
}
