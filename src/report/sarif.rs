//! SARIF 2.1.0, as GitHub code scanning and other SARIF consumers read it.
//!
//! An image has no source file of its own, so each vulnerability result points at the line of
//! `aisupply.toml` that declares the image: the place where a reviewer would act on it. Rules
//! are one per vulnerability id, with `security-severity` set from the highest severity any
//! finding of that id has, so that code scanning ranks them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap as _, Serializer};
use serde_json::{Value, json};

use super::uri;
use crate::config::Config;
use crate::finding::{Code, Finding, Severity as FindingSeverity};
use crate::scan::{Decision, Scan, Severity, VulnFinding, fixed_in};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// GitHub code scanning rejects a run with more results than this.
pub const MAX_RESULTS: usize = 25_000;

/// The SARIF log of a scan: the vulnerabilities the policy fails or sets aside (allowed,
/// ignored fix states), and its `notices` (digest binding, allow entries).
///
/// Findings below the `fail-on` threshold are left out, and so is whatever exceeds
/// [`MAX_RESULTS`]; the run's `properties` and a tool notification say how many were cut.
pub fn scan<'a>(scan: &'a Scan, config: &'a Config, notices: &'a [Finding]) -> Log<'a> {
    Log::new(Some((scan, config)), notices.iter().collect())
}

/// The SARIF log of `verify` findings: one rule per finding code.
pub fn findings(findings: &[Finding]) -> Log<'_> {
    Log::new(None, findings.iter().collect())
}

/// The SARIF log of `verify` with `--report`: the scan's vulnerabilities as [`scan`] writes
/// them (a rule per vulnerability, `security-severity`, fingerprints), and every other finding
/// under its code.
pub fn verify<'a>(findings: &'a [Finding], scan: Option<(&'a Scan, &'a Config)>) -> Log<'a> {
    let others = findings
        .iter()
        .filter(|f| scan.is_none() || f.code != Code::Vulnerability)
        .collect();
    Log::new(scan, others)
}

/// A SARIF log, serialized one result at a time so that a scan of tens of thousands of
/// findings never holds all of its results as JSON values at once. It displays as pretty JSON.
pub struct Log<'a> {
    scan: Option<(&'a Scan, &'a Config)>,
    rules: Vec<Rule<'a>>,
    /// Index into the scan's findings, and the rule of each.
    vulnerabilities: Vec<(usize, usize)>,
    others: Vec<(&'a Finding, usize)>,
    omitted: Omitted,
}

/// The findings a log leaves out.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Omitted {
    below_threshold: usize,
    over_limit: usize,
}

impl<'a> Log<'a> {
    fn new(scan: Option<(&'a Scan, &'a Config)>, mut others: Vec<&'a Finding>) -> Self {
        let mut rules = Rules::default();
        let mut omitted = Omitted::default();
        if others.len() > MAX_RESULTS {
            omitted.over_limit += others.len() - MAX_RESULTS;
            others.truncate(MAX_RESULTS);
        }
        let mut room = MAX_RESULTS - others.len();

        // Failing findings first, so that a cut drops the set-aside ones before them.
        let mut vulnerabilities = Vec::new();
        if let Some((scan, _)) = scan {
            let decided = || {
                scan.findings
                    .iter()
                    .zip(&scan.evaluation.decisions)
                    .enumerate()
            };
            omitted.below_threshold = scan.evaluation.count(Decision::BelowThreshold);
            let failing = decided().filter(|(_, (_, d))| **d == Decision::Fail);
            let set_aside = decided()
                .filter(|(_, (_, d))| !matches!(d, Decision::Fail | Decision::BelowThreshold));
            for (i, (finding, _)) in failing.chain(set_aside) {
                if room == 0 {
                    omitted.over_limit += 1;
                    continue;
                }
                room -= 1;
                vulnerabilities.push((i, rules.vulnerability(finding)));
            }
        }
        let others = others.into_iter().map(|f| (f, rules.code(f))).collect();
        Self {
            scan,
            rules: rules.into_values(),
            vulnerabilities,
            others,
            omitted,
        }
    }

    /// How many results the log holds.
    pub fn len(&self) -> usize {
        self.vulnerabilities.len() + self.others.len()
    }

    /// Whether the log holds no result.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cut(&self) -> Option<String> {
        let Omitted {
            below_threshold,
            over_limit,
        } = self.omitted;
        let mut parts = Vec::new();
        if below_threshold > 0 {
            let fail_on = self.scan.map_or("", |(s, _)| s.policy.fail_on.as_str());
            parts.push(format!("{below_threshold} below `fail-on = \"{fail_on}\"`"));
        }
        if over_limit > 0 {
            parts.push(format!(
                "{over_limit} over the limit of {MAX_RESULTS} results per run"
            ));
        }
        let n = below_threshold + over_limit;
        (n > 0).then(|| {
            format!(
                "{n} {} not included ({}); `aisupply scan --format json` lists every finding",
                if n == 1 { "finding is" } else { "findings are" },
                parts.join(", ")
            )
        })
    }
}

impl fmt::Display for Log<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        serde_json::to_writer_pretty(FmtWriter(f), self).map_err(|_| fmt::Error)
    }
}

/// Writes serde_json's output straight into a formatter, without a string in between.
struct FmtWriter<'f, 'b>(&'f mut fmt::Formatter<'b>);

impl std::io::Write for FmtWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // serde_json writes whole UTF-8 sequences: it splits its output only at ASCII.
        let text = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.write_str(text).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Serialize for Log<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("$schema", SCHEMA)?;
        map.serialize_entry("version", "2.1.0")?;
        map.serialize_entry("runs", &[Run(self)])?;
        map.end()
    }
}

struct Run<'l, 'a>(&'l Log<'a>);

impl Serialize for Run<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let log = self.0;
        let mut map = serializer.serialize_map(None)?;
        let driver = Driver { rules: &log.rules };
        map.serialize_entry("tool", &BTreeMap::from([("driver", driver)]))?;
        if let Some(cut) = log.cut() {
            map.serialize_entry(
                "invocations",
                &json!([{
                    "executionSuccessful": true,
                    "toolExecutionNotifications": [{
                        "level": "note",
                        "message": { "text": cut },
                    }],
                }]),
            )?;
        }
        if log.scan.is_some() {
            map.serialize_entry("properties", &json!({ "aisupply-omitted": log.omitted }))?;
        }
        map.serialize_entry("columnKind", "utf16CodeUnits")?;
        map.serialize_entry("results", &Results(log))?;
        map.end()
    }
}

/// `tool.driver`; each rule becomes JSON only as it is written.
struct Driver<'l, 'a> {
    rules: &'l [Rule<'a>],
}

impl Serialize for Driver<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("name", "aisupply")?;
        map.serialize_entry("version", env!("CARGO_PKG_VERSION"))?;
        map.serialize_entry("informationUri", "https://github.com/aisupply/aisupply")?;
        map.serialize_entry("rules", &Lazy(|| self.rules.iter().map(Rule::to_json)))?;
        map.end()
    }
}

/// A sequence serialized from an iterator, one element at a time.
struct Lazy<F>(F);

impl<F, I> Serialize for Lazy<F>
where
    F: Fn() -> I,
    I: Iterator<Item = Value>,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

struct Results<'l, 'a>(&'l Log<'a>);

impl Serialize for Results<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let log = self.0;
        let vulnerabilities = log.scan.into_iter().flat_map(|(scan, config)| {
            log.vulnerabilities.iter().map(move |&(i, rule)| {
                let decision = scan.evaluation.decisions[i];
                vulnerability_result(&scan.findings[i], decision, rule, scan, config)
            })
        });
        let others = log.others.iter().map(|&(f, rule)| finding_result(f, rule));
        serializer.collect_seq(vulnerabilities.chain(others))
    }
}

/// Rules in the order first used, each with its index. A rule is kept as the finding it
/// describes and turned into JSON only as it is written.
#[derive(Default)]
struct Rules<'a> {
    index: BTreeMap<&'a str, usize>,
    rules: Vec<Rule<'a>>,
}

enum Rule<'a> {
    /// A vulnerability, at the highest severity any finding of its id has.
    Vulnerability(&'a VulnFinding, Severity),
    /// A `verify` finding code.
    Code(&'a Finding),
}

impl<'a> Rules<'a> {
    fn vulnerability(&mut self, finding: &'a VulnFinding) -> usize {
        if let Some(&i) = self.index.get(finding.id.as_str()) {
            // A later finding of the same id may be more severe: the rule takes the highest.
            if let Rule::Vulnerability(_, severity) = &mut self.rules[i] {
                *severity = (*severity).max(finding.severity);
            }
            return i;
        }
        self.push(&finding.id, Rule::Vulnerability(finding, finding.severity))
    }

    fn code(&mut self, finding: &'a Finding) -> usize {
        let id = finding.code.as_str();
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        self.push(id, Rule::Code(finding))
    }

    fn push(&mut self, id: &'a str, rule: Rule<'a>) -> usize {
        self.index.insert(id, self.rules.len());
        self.rules.push(rule);
        self.rules.len() - 1
    }

    fn into_values(self) -> Vec<Rule<'a>> {
        self.rules
    }
}

impl Rule<'_> {
    fn to_json(&self) -> Value {
        match *self {
            Rule::Vulnerability(finding, severity) => {
                let title = finding.title.clone().unwrap_or_else(|| finding.id.clone());
                let mut rule = json!({
                    "id": finding.id,
                    "name": "Vulnerability",
                    "shortDescription": { "text": title },
                    "fullDescription": { "text": format!("{}: {title}", finding.id) },
                    "help": {
                        "text": format!(
                            "Upgrade the affected package, or accept the finding with a \
                             `[[scan.allow]]` entry for `{}` in aisupply.toml, with a reason \
                             and an expiry date.",
                            finding.id
                        )
                    },
                    "properties": rule_properties(severity),
                });
                if let Some(url) = &finding.url {
                    rule["helpUri"] = json!(url);
                }
                rule
            }
            Rule::Code(finding) => {
                let id = finding.code.as_str();
                json!({
                    "id": id,
                    "name": id,
                    "shortDescription": { "text": id.replace('-', " ") },
                    "defaultConfiguration": { "level": level(finding.severity) },
                })
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_keeps_within_githubs_results_limit_and_says_what_it_cut() {
        let many: Vec<Finding> = (0..=MAX_RESULTS)
            .map(|i| {
                Finding::new(
                    Code::ScanDigestUnverified,
                    FindingSeverity::Warning,
                    "app",
                    format!("n{i}"),
                )
            })
            .collect();
        let log = findings(&many);
        assert_eq!(log.len(), MAX_RESULTS);
        assert_eq!(log.omitted.over_limit, 1);
        let doc: Value = serde_json::from_str(&log.to_string()).unwrap();
        let run = &doc["runs"][0];
        assert_eq!(run["results"].as_array().unwrap().len(), MAX_RESULTS);
        let note = &run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"];
        assert!(
            note.as_str()
                .unwrap()
                .starts_with("1 finding is not included"),
            "{note}"
        );
    }
}
