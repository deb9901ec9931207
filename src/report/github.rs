//! GitHub Actions workflow commands (`::error file=…,line=…,title=…::message`), which the
//! runner turns into annotations on the pull request.

use std::fmt::Write as _;

use super::uri;
use crate::config::Config;
use crate::finding::{Code, Finding, Severity as FindingSeverity};
use crate::scan::{Decision, Scan, Severity, fixed_in};

/// One annotation per vulnerability that fails or is worth a look (medium and up), then one
/// per notice. Allowed, ignored and minor findings are left to the summary, because GitHub
/// shows only the first few annotations of each kind per step.
pub fn scan(scan: &Scan, config: &Config, notices: &[Finding]) -> String {
    let mut out = String::new();
    let file = uri(&config.path);
    for (finding, decision) in scan.findings.iter().zip(&scan.evaluation.decisions) {
        let command = match decision {
            Decision::Fail => "error",
            Decision::BelowThreshold if finding.severity >= Severity::Medium => "warning",
            _ => continue,
        };
        let line = config.image(&finding.image).map_or(1, |i| i.line);
        let title = format!(
            "{} {} in {} {}",
            finding.severity, finding.id, finding.package.name, finding.package.version
        );
        let ratings: Vec<String> = finding
            .ratings
            .iter()
            .map(|r| format!("{}: {}", r.tool, r.raw))
            .collect();
        let message = format!(
            "{title} (image {}){}; reported by {}",
            finding.image,
            fixed_in(finding),
            ratings.join(", ")
        );
        annotate(&mut out, command, &file, Some(line), &title, &message);
    }
    out.push_str(&findings(notices));
    out
}

/// `verify` with `--report`: the scan's vulnerabilities annotated as [`scan`] does them, and
/// every other finding under its code.
pub fn verify(all: &[Finding], scan: Option<(&Scan, &Config)>) -> String {
    let Some((scan, config)) = scan else {
        return findings(all);
    };
    let others: Vec<Finding> = all
        .iter()
        .filter(|f| f.code != Code::Vulnerability)
        .cloned()
        .collect();
    self::scan(scan, config, &others)
}

/// One annotation per `verify` finding.
pub fn findings(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match f.severity {
            FindingSeverity::Error => "error",
            FindingSeverity::Warning => "warning",
            FindingSeverity::Note => "notice",
        };
        let (file, line) = match &f.location {
            Some(l) => (uri(&l.file), l.line),
            None => (String::new(), None),
        };
        let message = match &f.hint {
            Some(hint) => format!("{}\nhint: {hint}", f.message),
            None => f.message.clone(),
        };
        annotate(&mut out, command, &file, line, f.code.as_str(), &message);
    }
    out
}

/// An error that stopped the command (exit 2), as one `::error` annotation.
pub fn error(message: &str) -> String {
    let mut out = String::new();
    annotate(&mut out, "error", "", None, "aisupply", message);
    out
}

fn annotate(
    out: &mut String,
    command: &str,
    file: &str,
    line: Option<usize>,
    title: &str,
    message: &str,
) {
    let mut properties = Vec::new();
    if !file.is_empty() {
        properties.push(format!("file={}", escape_property(file)));
    }
    if let Some(line) = line {
        properties.push(format!("line={line}"));
    }
    properties.push(format!("title={}", escape_property(title)));
    let _ = writeln!(
        out,
        "::{command} {}::{}",
        properties.join(","),
        escape_data(message)
    );
}

/// Workflow command data: `%`, CR and LF are escaped.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command properties: also `:` and `,`, which delimit them.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_are_escaped_so_they_cannot_end_the_command() {
        assert_eq!(escape_data("50% a\nb\r"), "50%25 a%0Ab%0D");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
        let mut out = String::new();
        annotate(&mut out, "error", "x.toml", Some(3), "t,1", "line1\nline2");
        assert_eq!(
            out,
            "::error file=x.toml,line=3,title=t%2C1::line1%0Aline2\n"
        );
    }
}
