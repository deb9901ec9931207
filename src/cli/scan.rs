//! `aisupply scan`: ingest Trivy and Grype reports (or run the tools), bind them to the locked
//! digests, merge them and apply the `[scan]` policy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use aisupply::config::Config;
use aisupply::finding::Finding;
use aisupply::lock::LockFile;
use aisupply::progress::{Reporter as _, Unit};
use aisupply::report;
use aisupply::scan::{
    self, BindingStatus, Date, Decision, Report, ReportSummary, Scan, Severity, Tool, run,
};

use super::{Format, Global, Outcome, print_result, render};

/// Arguments of `aisupply scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Trivy or Grype JSON reports, or SARIF from either, to ingest
    #[arg(long = "report", value_name = "FILE", num_args = 1.., required_unless_present = "run")]
    reports: Vec<PathBuf>,
    /// Run scanners from PATH on every locked image, by digest; with no TOOL, every one installed
    #[arg(long, value_name = "TOOL", num_args = 0.., value_delimiter = ',')]
    run: Option<Vec<ToolArg>>,
    /// The locked image the reports are about, for reports that name no image digest (such as
    /// filesystem scans)
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
}

/// The scanners `--run` can invoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ToolArg {
    /// Aqua Security's Trivy
    Trivy,
    /// Anchore's Grype
    Grype,
}

impl From<ToolArg> for Tool {
    fn from(arg: ToolArg) -> Self {
        match arg {
            ToolArg::Trivy => Tool::Trivy,
            ToolArg::Grype => Tool::Grype,
        }
    }
}

pub fn run(args: &ScanArgs, global: &Global) -> anyhow::Result<Outcome> {
    let config = global.load_config()?;
    let lock_path = global.lockfile_path();
    let lock = LockFile::load(&lock_path)?;

    // Every report is read before anything is judged, so a bad file fails the whole command.
    let mut reports = read_reports(&args.reports, args.target.as_deref())?;

    // `--run`: the tools scan each locked digest; their reports are bound to that image.
    if let Some(tools) = &args.run {
        let tools: Vec<Tool> = tools.iter().map(|&t| t.into()).collect();
        reports.extend(run_tools(&tools, &config, &lock, global)?);
    }

    let scan = Scan::assemble(reports, &config, &lock, Date::today())?;
    let notices = scan.notices(&config, &lock_path);
    print_result(&render_scan(global.format, &scan, &config, &notices));
    Ok(if scan.passed() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// Read each report file; `target` is kept with each, for the reports that name no digest.
pub fn read_reports(
    paths: &[PathBuf],
    target: Option<&str>,
) -> anyhow::Result<Vec<(Report, Option<String>)>> {
    let mut reports = Vec::with_capacity(paths.len());
    for path in paths {
        let report = scan::format::read(path)?;
        tracing::debug!(path = %path.display(), format = %report.format, entries = report.entries.len(), "read report");
        reports.push((report, target.map(str::to_owned)));
    }
    Ok(reports)
}

fn run_tools(
    tools: &[Tool],
    config: &Config,
    lock: &LockFile,
    global: &Global,
) -> anyhow::Result<Vec<(Report, Option<String>)>> {
    let tools = run::find_tools(tools)?;
    let targets = run::targets(lock);
    let dir = tempfile::Builder::new()
        .prefix("aisupply-scan-")
        .tempdir()?;
    let bars = global.progress();
    let task = bars.start(
        "Scanning",
        Some((targets.len() * tools.len()) as u64),
        Unit::Items,
    );
    let mut reports = Vec::new();
    for target in &targets {
        let insecure = run::insecure(config, target.image.reference.registry());
        for (tool, exe) in &tools {
            let report = run::scan(*tool, exe, target, insecure, dir.path())?;
            reports.push((report, Some(target.image.name.clone())));
            bars.advance(task, 1);
        }
    }
    bars.finish(task);
    Ok(reports)
}

/// The scan in the requested format.
pub fn render_scan(format: Format, scan: &Scan, config: &Config, notices: &[Finding]) -> String {
    match format {
        Format::Text => text(scan, notices),
        Format::Json => format!("{:#}\n", json(scan, notices)),
        Format::Sarif => format!("{:#}\n", report::sarif::scan(scan, config, notices)),
        Format::Github => {
            let mut out = report::github::scan(scan, config, notices);
            out.push_str(&summary(scan));
            out.push('\n');
            out
        }
    }
}

fn json(scan: &Scan, notices: &[Finding]) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = scan
        .findings
        .iter()
        .zip(&scan.evaluation.decisions)
        .map(|(finding, decision)| {
            let mut value = serde_json::json!(finding);
            value["decision"] = serde_json::json!(decision.as_str());
            if let Decision::Allowed { entry } = decision {
                value["allowed-by"] = serde_json::json!(scan.policy.allow.get(*entry));
            }
            value
        })
        .collect();
    let reports: Vec<serde_json::Value> = scan
        .reports
        .iter()
        .map(|r| {
            let mut value = serde_json::json!(r);
            value["empty"] = serde_json::json!(r.entries == 0);
            value
        })
        .collect();
    serde_json::json!({
        "passed": scan.passed(),
        "policy": {
            "fail-on": scan.policy.fail_on,
            "ignore-fix-states": scan.policy.ignore_fix_states,
        },
        "reports": reports,
        "counts": counts(scan),
        "findings": findings,
        "notices": notices,
    })
}

fn counts(scan: &Scan) -> serde_json::Value {
    let evaluation = &scan.evaluation;
    let mut by_severity = serde_json::Map::new();
    for severity in Severity::ALL.into_iter().rev() {
        let n = scan
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count();
        by_severity.insert(severity.as_str().to_owned(), n.into());
    }
    serde_json::json!({
        "findings": scan.findings.len(),
        "fail": evaluation.count(Decision::Fail),
        "allowed": evaluation.count(Decision::Allowed { entry: 0 }),
        "ignored": evaluation.count(Decision::IgnoredFixState),
        "below-threshold": evaluation.count(Decision::BelowThreshold),
        "by-severity": by_severity,
    })
}

/// Text: per image, its reports and its findings most severe first; then notices and the
/// decision.
fn text(scan: &Scan, notices: &[Finding]) -> String {
    let mut out = String::new();
    let mut images: BTreeMap<&str, Vec<&ReportSummary>> = BTreeMap::new();
    for report in &scan.reports {
        images
            .entry(&report.binding.image)
            .or_default()
            .push(report);
    }
    for (image, reports) in images {
        let _ = writeln!(out, "image `{image}`");
        for report in reports {
            let _ = writeln!(out, "  report {}", report_line(report));
        }
        image_findings(&mut out, scan, image);
        out.push('\n');
    }
    out.push_str(&render::findings_text(notices));
    out.push_str(&summary(scan));
    out.push('\n');
    out
}

fn report_line(report: &ReportSummary) -> String {
    let version = report
        .tool_version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let binding = &report.binding;
    let digest = match (&binding.status, &binding.digest) {
        (BindingStatus::Verified, Some(d)) => match &binding.platform {
            Some(p) => format!("digest {} ({p}) verified", short(&d.to_string())),
            None => format!("digest {} verified", short(&d.to_string())),
        },
        (BindingStatus::Mismatch { found }, _) => {
            let found: Vec<String> = found.iter().map(|d| short(&d.to_string())).collect();
            format!("digest {} is NOT locked", found.join(", "))
        }
        _ => "no digest, bound by --target".to_owned(),
    };
    let contents = match report.entries {
        0 => "empty: no vulnerabilities".to_owned(),
        1 => "1 vulnerability entry".to_owned(),
        n => format!("{n} vulnerability entries"),
    };
    format!(
        "{} ({}{version}): {digest}, {contents}",
        report.path.display(),
        report.format
    )
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_owned(),
    }
}

fn image_findings(out: &mut String, scan: &Scan, image: &str) {
    let rows: Vec<_> = scan
        .findings
        .iter()
        .zip(&scan.evaluation.decisions)
        .filter(|(f, _)| f.image == image)
        .collect();
    let id_width = rows.iter().map(|(f, _)| f.id.len()).max().unwrap_or(0);
    for (finding, decision) in &rows {
        let package = format!(
            "{} {}{}",
            finding.package.name,
            finding.package.version,
            scan::fixed_in(finding)
        );
        let mut notes = Vec::new();
        if finding.disputed() || finding.ratings.len() > 1 {
            let ratings: Vec<String> = finding
                .ratings
                .iter()
                .map(|r| format!("{}: {}", r.tool, r.raw))
                .collect();
            notes.push(ratings.join(", "));
        }
        match decision {
            Decision::Allowed { entry } => {
                if let Some(e) = scan.policy.allow.get(*entry) {
                    notes.push(format!("allowed: {}", e.reason));
                }
            }
            Decision::IgnoredFixState => notes.push(format!("fix state {}", finding.fix_state)),
            Decision::Fail | Decision::BelowThreshold => {}
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join("; "))
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<10}  {:<id_width$}  {package}{notes}",
            decision.as_str(),
            finding.severity.as_str(),
            finding.id,
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            severity_counts(rows.iter().map(|(f, _)| f.severity))
        );
    }
}

fn severity_counts(severities: impl Iterator<Item = Severity>) -> String {
    let severities: Vec<Severity> = severities.collect();
    let parts: Vec<String> = Severity::ALL
        .into_iter()
        .rev()
        .filter_map(|s| {
            let n = severities.iter().filter(|&&x| x == s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    format!(
        "{} ({})",
        plural(severities.len(), "finding"),
        parts.join(", ")
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The last line: the decision, with what the policy did with every finding.
fn summary(scan: &Scan) -> String {
    let evaluation = &scan.evaluation;
    let verdict = if scan.passed() { "passed" } else { "failed" };
    let reports = plural(scan.reports.len(), "report");
    if scan.findings.is_empty() {
        let empty = if scan.reports.iter().all(|r| r.entries == 0) {
            if scan.reports.len() == 1 {
                ", which was empty"
            } else {
                ", all empty"
            }
        } else {
            ""
        };
        return format!("scan {verdict}: no vulnerabilities in {reports}{empty}");
    }
    let mut policy = format!("fail-on {}", scan.policy.fail_on);
    if !scan.policy.ignore_fix_states.is_empty() {
        let states: Vec<&str> = scan
            .policy
            .ignore_fix_states
            .iter()
            .map(|s| s.as_str())
            .collect();
        let _ = write!(policy, ", ignoring {}", states.join(", "));
    }
    let mismatched = scan
        .reports
        .iter()
        .filter(|r| r.binding.is_mismatch())
        .count();
    let failing = evaluation.count(Decision::Fail);
    let mut line = format!(
        "scan {verdict}: {failing} of {} {} the policy ({policy}); {} allowed, {} ignored, {} \
         below `{}`; {reports}",
        plural(scan.findings.len(), "finding"),
        if failing == 1 { "fails" } else { "fail" },
        evaluation.count(Decision::Allowed { entry: 0 }),
        evaluation.count(Decision::IgnoredFixState),
        evaluation.count(Decision::BelowThreshold),
        scan.policy.fail_on,
    );
    if mismatched > 0 {
        let _ = write!(line, "; {} of another digest", plural(mismatched, "report"));
    }
    line
}
