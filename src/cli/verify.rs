//! `aisupply verify`: the CI gate.

use std::fmt::Write as _;

use clap::Args;

use aisupply::config::Config;
use aisupply::finding::{self, Finding, any_errors};
use aisupply::lock::LockFile;
use aisupply::scan::{Date, Scan};
use aisupply::verify::{self, RegistryCheck};

use super::{Format, Global, Outcome, print_result, registry_client, render};

/// Arguments of `aisupply verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Do not contact registries: check only the lock against the config
    #[arg(long)]
    offline: bool,
    /// Fail (exit 1) when a locked tag now points at another digest
    #[arg(long)]
    fail_on_drift: bool,
    /// Fail (exit 1) when a locked model file is not on disk
    #[arg(long)]
    require_models: bool,
    /// Where `pull --local-dir` put a model: DIR for the only locked model, else REPO=DIR
    #[arg(long, value_name = "[REPO=]DIR")]
    local_dir: Vec<String>,
    /// Trivy or Grype reports (JSON or SARIF) of the locked images that must pass the `[scan]`
    /// policy
    #[arg(long = "report", value_name = "FILE", num_args = 1..)]
    reports: Vec<std::path::PathBuf>,
    /// The locked image the `--report` files are about, for reports that name no image digest
    #[arg(long, value_name = "NAME", requires = "reports")]
    target: Option<String>,
    /// Accept references to the images mirrored to this registry (`HOST[:PORT]/PREFIX`, as
    /// given to `mirror --to` and `pin --mirror`) as references to the locked images
    #[arg(long, value_name = "HOST/PREFIX")]
    mirror: Option<String>,
}

pub async fn run(args: VerifyArgs, global: &Global) -> anyhow::Result<Outcome> {
    let config = global.load_config()?;
    let lock_path = global.lockfile_path();
    let lock = LockFile::load(&lock_path)?;

    // Check 1: the lock matches the config.
    let mut findings = verify::consistency(&config, &lock, &lock_path);

    // Check 2: the references in the `[sources]` files are pinned to the locked digests.
    let sources = super::pin::discover(global, config.sources.as_ref(), &[])?;
    if global.format == Format::Text {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            super::pin::skipped_notes(global, &sources).as_bytes(),
        );
    }
    let mirror = super::pin::mirror_target(args.mirror.as_deref())?;
    findings.extend(aisupply::pin::check::check(
        &sources,
        &lock,
        mirror.as_ref(),
    ));

    // Check 3: the locked digests still resolve, and the tags have not moved.
    if !args.offline {
        let client = registry_client(&config)?;
        let options = RegistryCheck {
            fail_on_drift: args.fail_on_drift,
        };
        let bars = global.progress();
        match verify::registry(&lock, &lock_path, &client, options, &bars).await {
            Ok(found) => findings.extend(found),
            Err(e) => {
                // The offline findings are still worth seeing when a registry fails us.
                if global.format == Format::Text && !findings.is_empty() {
                    print_result(&render::findings_text(&findings));
                }
                return Err(e.into());
            }
        }
    }

    // Check 4: model files on disk hash to their locked SHA-256 (offline).
    if !lock.models.is_empty() {
        let bars = global.progress();
        let require = args.require_models;
        findings.extend(super::pull::check_models(
            &lock,
            &args.local_dir,
            require,
            &bars,
        )?);
    }

    // Check 5: scan reports are about the locked digests and pass the `[scan]` policy.
    let mut scan = None;
    if !args.reports.is_empty() {
        let reports = super::scan::read_reports(&args.reports, args.target.as_deref())?;
        let assembled = Scan::assemble(reports, &config, &lock, Date::today())?;
        findings.extend(assembled.verify_findings(&config, &lock_path));
        scan = Some(assembled);
    }

    // Point findings about lock entries at their lines.
    if let Ok(text) = std::fs::read_to_string(&lock_path) {
        finding::attach_lines(
            &mut findings,
            &lock_path,
            &aisupply::lock::image_lines(&text),
        );
    }

    let scan = scan.as_ref().map(|s| (s, &config));
    print_report(global, &lock, args.offline, &findings, scan);
    Ok(if !sources.problems.is_empty() {
        Outcome::Invalid
    } else if any_errors(&findings) {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

/// Print the findings; SARIF and GitHub annotations render `scan`'s vulnerabilities as
/// `aisupply scan` does.
fn print_report(
    global: &Global,
    lock: &LockFile,
    offline: bool,
    findings: &[Finding],
    scan: Option<(&Scan, &Config)>,
) {
    let passed = !any_errors(findings);
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "passed": passed,
            "offline": offline,
            "images": lock.images.len(),
            "models": lock.models.len(),
            "findings": findings,
        });
        print_result(&format!("{doc:#}\n"));
        return;
    }
    if global.format == Format::Sarif {
        print_result(&format!(
            "{:#}\n",
            aisupply::report::sarif::verify(findings, scan)
        ));
        return;
    }
    let mut out = if global.format == Format::Github {
        aisupply::report::github::verify(findings, scan)
    } else {
        render::findings_text(findings)
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut checked = plural(lock.images.len(), "image");
    if !lock.models.is_empty() {
        checked = format!("{checked} and {}", plural(lock.models.len(), "model"));
    }
    let _ = writeln!(
        out,
        "verify {}: {checked} checked{}, {}",
        if passed { "passed" } else { "failed" },
        if offline { " offline" } else { "" },
        render::counts(findings)
    );
    print_result(&out);
}
