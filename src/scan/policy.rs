//! The `[scan]` policy: which findings fail, which are accepted, and which allow entries no
//! longer earn their place.

use std::path::Path;

use serde::Serialize;

use super::date::Date;
use super::model::{FixState, VulnFinding};
use crate::config::{AllowEntry, ScanPolicy};
use crate::finding::{Code, Finding, Severity};

/// The policy's verdict on one finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "decision")]
pub enum Decision {
    /// At or above `fail-on`, not ignored and not allowed: the gate fails.
    Fail,
    /// Below `fail-on`.
    BelowThreshold,
    /// Its fix state is one the policy ignores.
    IgnoredFixState,
    /// Accepted by the `[[scan.allow]]` entry at this index.
    Allowed {
        /// The index of the entry in `[scan].allow`.
        entry: usize,
    },
}

impl Decision {
    /// A one-word label for output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::BelowThreshold => "pass",
            Self::IgnoredFixState => "ignored",
            Self::Allowed { .. } => "allowed",
        }
    }
}

/// Something about an allow entry that the user should act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Notice {
    /// The entry's `expires` date has passed: it no longer applies.
    Expired {
        /// The entry.
        entry: AllowEntry,
    },
    /// The entry matched no finding of a scanned image.
    Stale {
        /// The entry.
        entry: AllowEntry,
    },
}

impl Notice {
    /// The notice as a finding pointing at the entry's line.
    pub fn finding(&self, config_path: &Path) -> Finding {
        match self {
            Self::Expired { entry } => Finding::new(
                Code::AllowExpired,
                Severity::Warning,
                &entry.id,
                format!(
                    "the allow entry for `{}` expired on {} and no longer applies",
                    entry.id,
                    entry.expires.map(|d| d.to_string()).unwrap_or_default()
                ),
            )
            .at(config_path, Some(entry.line))
            .hint(
                "fix the vulnerability and remove the entry, or review it and move `expires` later",
            ),
            Self::Stale { entry } => Finding::new(
                Code::AllowStale,
                Severity::Note,
                &entry.id,
                format!(
                    "the allow entry for `{}` matched no finding; the vulnerability may be fixed",
                    entry.id
                ),
            )
            .at(config_path, Some(entry.line))
            .hint("remove the entry from aisupply.toml"),
        }
    }
}

/// The policy's verdicts on a set of findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// One decision per finding, in the same order.
    pub decisions: Vec<Decision>,
    /// Expired and stale allow entries.
    pub notices: Vec<Notice>,
}

impl Evaluation {
    /// Whether any finding fails the policy.
    pub fn failed(&self) -> bool {
        self.decisions.contains(&Decision::Fail)
    }

    /// How many findings got `decision`, comparing allow decisions by kind only.
    pub fn count(&self, decision: Decision) -> usize {
        let kind = std::mem::discriminant(&decision);
        self.decisions
            .iter()
            .filter(|d| std::mem::discriminant(*d) == kind)
            .count()
    }
}

/// Judge `findings` by `policy` as of `today`. `images` are the images whose reports were
/// given: an allow entry scoped to another image is not stale merely because it was not
/// scanned this time.
pub fn evaluate(
    findings: &[VulnFinding],
    policy: &ScanPolicy,
    today: Date,
    images: &[&str],
) -> Evaluation {
    let expired = |entry: &AllowEntry| entry.expires.is_some_and(|d| today > d);
    let mut used = vec![false; policy.allow.len()];

    let decisions = findings
        .iter()
        .map(|finding| {
            let allowed = policy
                .allow
                .iter()
                .enumerate()
                .find(|(_, entry)| !expired(entry) && allows(entry, finding));
            if let Some((i, _)) = allowed {
                used[i] = true;
                Decision::Allowed { entry: i }
            } else if ignores(&policy.ignore_fix_states, finding.fix_state) {
                Decision::IgnoredFixState
            } else if finding.severity < policy.fail_on {
                Decision::BelowThreshold
            } else {
                Decision::Fail
            }
        })
        .collect();

    let mut notices = Vec::new();
    for (i, entry) in policy.allow.iter().enumerate() {
        let in_scope = entry
            .image
            .as_ref()
            .is_none_or(|name| images.contains(&name.as_str()));
        if expired(entry) {
            notices.push(Notice::Expired {
                entry: entry.clone(),
            });
        } else if !used[i] && in_scope && !images.is_empty() {
            notices.push(Notice::Stale {
                entry: entry.clone(),
            });
        }
    }
    Evaluation { decisions, notices }
}

fn ignores(states: &[FixState], state: FixState) -> bool {
    states.contains(&state)
}

/// Whether `entry` covers `finding`: the id (or an alias), and the image and package when the
/// entry is scoped. The package scope also matches the source package (`openssl` covers
/// `libssl3`).
fn allows(entry: &AllowEntry, finding: &VulnFinding) -> bool {
    let image_ok = entry.image.as_ref().is_none_or(|i| *i == finding.image);
    let package_ok = entry.package.as_ref().is_none_or(|p| {
        finding.package.name.eq_ignore_ascii_case(p)
            || finding
                .package
                .source
                .as_ref()
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
    });
    image_ok && package_ok && finding.is_known_as(&entry.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::model::{Package, Rating, Severity as Vuln, Tool};

    fn finding(id: &str, package: &str, severity: Vuln, fix_state: FixState) -> VulnFinding {
        VulnFinding {
            id: id.to_owned(),
            aliases: vec!["GHSA-aaaa-bbbb-cccc".to_owned()],
            package: Package {
                name: package.to_owned(),
                version: "1".to_owned(),
                source: Some("openssl".to_owned()),
                ..Package::default()
            },
            fixed_versions: Vec::new(),
            fix_state,
            severity,
            ratings: vec![Rating {
                tool: Tool::Grype,
                severity,
                raw: severity.to_string(),
            }],
            image: "app".to_owned(),
            digests: Vec::new(),
            title: None,
            url: None,
        }
    }

    fn allow(id: &str) -> AllowEntry {
        AllowEntry {
            id: id.to_owned(),
            reason: "accepted".to_owned(),
            expires: None,
            image: None,
            package: None,
            line: 7,
        }
    }

    fn today() -> Date {
        "2026-06-15".parse().unwrap()
    }

    fn decide(policy: &ScanPolicy, f: &VulnFinding) -> Decision {
        evaluate(std::slice::from_ref(f), policy, today(), &["app"]).decisions[0]
    }

    #[test]
    fn findings_at_or_above_fail_on_fail() {
        let policy = ScanPolicy::default();
        assert_eq!(policy.fail_on, Vuln::High);
        assert_eq!(
            decide(&policy, &finding("CVE-1", "a", Vuln::High, FixState::Fixed)),
            Decision::Fail
        );
        assert_eq!(
            decide(
                &policy,
                &finding("CVE-1", "a", Vuln::Medium, FixState::Fixed)
            ),
            Decision::BelowThreshold
        );
    }

    #[test]
    fn ignored_fix_states_do_not_fail() {
        let policy = ScanPolicy {
            ignore_fix_states: FixState::UNFIXED.to_vec(),
            ..ScanPolicy::default()
        };
        for state in FixState::UNFIXED {
            let f = finding("CVE-1", "a", Vuln::Critical, state);
            assert_eq!(decide(&policy, &f), Decision::IgnoredFixState, "{state}");
        }
        let fixed = finding("CVE-1", "a", Vuln::Critical, FixState::Fixed);
        assert_eq!(decide(&policy, &fixed), Decision::Fail);
    }

    #[test]
    fn allow_entries_match_by_id_or_alias_and_scope() {
        let f = finding("CVE-1", "libssl3", Vuln::Critical, FixState::Fixed);
        let decide_with = |entry: AllowEntry| {
            let policy = ScanPolicy {
                allow: vec![entry],
                ..ScanPolicy::default()
            };
            decide(&policy, &f)
        };
        let allowed = Decision::Allowed { entry: 0 };
        assert_eq!(decide_with(allow("cve-1")), allowed);
        assert_eq!(decide_with(allow("GHSA-aaaa-bbbb-cccc")), allowed);
        assert_eq!(
            decide_with(AllowEntry {
                package: Some("openssl".into()),
                ..allow("CVE-1")
            }),
            allowed
        );
        assert_eq!(
            decide_with(AllowEntry {
                package: Some("libssl3".into()),
                ..allow("CVE-1")
            }),
            allowed
        );
        assert_eq!(
            decide_with(AllowEntry {
                package: Some("zlib".into()),
                ..allow("CVE-1")
            }),
            Decision::Fail
        );
        assert_eq!(
            decide_with(AllowEntry {
                image: Some("other".into()),
                ..allow("CVE-1")
            }),
            Decision::Fail
        );
        assert_eq!(decide_with(allow("CVE-2")), Decision::Fail);
    }

    #[test]
    fn an_expired_entry_no_longer_applies_and_is_reported() {
        let policy = ScanPolicy {
            allow: vec![AllowEntry {
                expires: Some("2026-06-14".parse().unwrap()),
                ..allow("CVE-1")
            }],
            ..ScanPolicy::default()
        };
        let f = finding("CVE-1", "a", Vuln::Critical, FixState::Fixed);
        let evaluation = evaluate(std::slice::from_ref(&f), &policy, today(), &["app"]);
        assert_eq!(evaluation.decisions, [Decision::Fail]);
        assert!(matches!(evaluation.notices[..], [Notice::Expired { .. }]));
    }

    #[test]
    fn an_entry_applies_through_its_expiry_date() {
        let policy = ScanPolicy {
            allow: vec![AllowEntry {
                expires: Some(today()),
                ..allow("CVE-1")
            }],
            ..ScanPolicy::default()
        };
        let f = finding("CVE-1", "a", Vuln::Critical, FixState::Fixed);
        assert_eq!(decide(&policy, &f), Decision::Allowed { entry: 0 });
    }

    #[test]
    fn an_entry_that_matched_nothing_is_stale_unless_its_image_was_not_scanned() {
        let policy = ScanPolicy {
            allow: vec![
                allow("CVE-9"),
                AllowEntry {
                    image: Some("other".into()),
                    ..allow("CVE-9")
                },
            ],
            ..ScanPolicy::default()
        };
        let f = finding("CVE-1", "a", Vuln::Low, FixState::Fixed);
        let evaluation = evaluate(std::slice::from_ref(&f), &policy, today(), &["app"]);
        assert_eq!(evaluation.notices.len(), 1);
        assert!(matches!(&evaluation.notices[0], Notice::Stale { entry } if entry.image.is_none()));
    }

    #[test]
    fn an_entry_matching_a_finding_below_the_threshold_is_not_stale() {
        let policy = ScanPolicy {
            allow: vec![allow("CVE-1")],
            ..ScanPolicy::default()
        };
        let f = finding("CVE-1", "a", Vuln::Low, FixState::Fixed);
        let evaluation = evaluate(std::slice::from_ref(&f), &policy, today(), &["app"]);
        assert!(evaluation.notices.is_empty());
    }
}
