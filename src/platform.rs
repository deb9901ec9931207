//! Platforms (`os/architecture[/variant]`) as written in configs and image indexes, with the
//! normalization users expect: `aarch64` is `arm64`, `x86_64` is `amd64`, and the default
//! variant of an architecture (`arm64/v8`, `arm/v7`) matches the bare architecture.

use std::fmt;
use std::str::FromStr;

/// An `os/architecture[/variant]` platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, such as `linux`.
    pub os: String,
    /// CPU architecture, such as `amd64`.
    pub architecture: String,
    /// CPU variant, such as `v8`.
    pub variant: Option<String>,
}

/// Why a platform string is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("platform `{0}` is not of the form `os/architecture[/variant]`, such as `linux/amd64`")]
pub struct PlatformError(pub String);

impl Platform {
    /// A platform from its parts, as found in an image index.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
        }
    }

    /// The canonical form used for comparisons: lowercase, architecture aliases resolved and
    /// the default variant of an architecture dropped.
    #[must_use]
    pub fn normalized(&self) -> Self {
        let os = self.os.to_ascii_lowercase();
        let architecture = match self.architecture.to_ascii_lowercase().as_str() {
            "aarch64" => "arm64".to_owned(),
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "i386" | "i686" => "386".to_owned(),
            other => other.to_owned(),
        };
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let variant = match (architecture.as_str(), variant.as_deref()) {
            ("arm64", Some("v8")) | ("arm", Some("v7")) | ("amd64", Some("v1")) => None,
            _ => variant,
        };
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// Whether two platforms name the same target once normalized.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }

    /// Whether this is the `unknown/unknown` placeholder of attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(PlatformError(s.to_owned()));
        }
        Ok(Self::new(parts[0], parts[1], parts.get(2).copied()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn architecture_aliases_normalize() {
        assert!(p("linux/aarch64").matches(&p("linux/arm64")));
        assert!(p("linux/x86_64").matches(&p("linux/amd64")));
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/aarch64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
    }

    #[test]
    fn different_variants_do_not_match() {
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("windows/amd64").matches(&p("linux/amd64")));
    }

    #[test]
    fn display_keeps_what_was_written() {
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
    }

    #[test]
    fn malformed_platforms_are_rejected() {
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux amd64",
            "",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_unknown_is_recognized() {
        assert!(p("unknown/unknown").is_unknown());
        assert!(!p("linux/amd64").is_unknown());
    }
}
