//! Image references such as `ghcr.io/org/app:1.2@sha256:…`: parsing, validation and Docker's
//! normalization.
//!
//! The grammar is the one registries and container runtimes share (the distribution
//! `reference` grammar). Normalization follows the Docker CLI: `ubuntu` means
//! `docker.io/library/ubuntu:latest`. A [`Reference`] is always normalized, and both its
//! [`Display`](fmt::Display) form and its [`Reference::familiar`] form parse back to it.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// The registry of names written without one.
const DOCKER_HUB: &str = "docker.io";
/// An older name of Docker Hub, which Docker rewrites to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The Docker Hub namespace of official images: `ubuntu` is `library/ubuntu`.
const OFFICIAL_NAMESPACE: &str = "library/";
/// The tag of a reference written with neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// The longest tag the grammar allows.
const MAX_TAG_LEN: usize = 128;
/// The longest name (registry, `/` and repository) the grammar allows.
const MAX_NAME_LEN: usize = 255;

/// A normalized image reference: registry, repository, and a tag, a digest or both.
///
/// Parsing never yields a reference with neither tag nor digest: `latest` is added then.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Nothing was given.
    #[error("image reference is empty; give one such as `ubuntu:22.04` or `ghcr.io/org/app:1.0`")]
    Empty,

    /// The input contains spaces, tabs or newlines.
    #[error("image reference `{0}` contains whitespace; remove the spaces, tabs or newlines")]
    Whitespace(String),

    /// The input is a URL rather than a reference.
    #[error(
        "image reference `{input}` starts with a URL scheme; drop `{scheme}://` and write \
         `{suggestion}`"
    )]
    Scheme {
        /// The input as given.
        input: String,
        /// The scheme, such as `https`.
        scheme: String,
        /// The input without its scheme.
        suggestion: String,
    },

    /// The input is 64 hex characters, which Docker reads as an image ID.
    #[error(
        "image reference `{0}` is 64 hex characters, which Docker reads as an image ID; give a \
         repository name and pin it with `name@sha256:<hex>`"
    )]
    ImageId(String),

    /// The input ends with `@`.
    #[error(
        "image reference `{0}` ends with `@` but has no digest; add one such as \
         `@sha256:<64 hex characters>` or remove the `@`"
    )]
    MissingDigest(String),

    /// The part after `@` is not a valid digest.
    #[error(
        "image reference `{input}` has invalid digest `{digest}`; write `@sha256:` followed by 64 \
         lowercase hex characters"
    )]
    InvalidDigest {
        /// The input as given.
        input: String,
        /// The digest as written.
        digest: String,
        /// What is wrong with the digest.
        #[source]
        source: DigestError,
    },

    /// A `:` is followed by no tag.
    #[error(
        "image reference `{0}` has `:` but no tag after it; add a tag such as `:latest` or \
         remove the `:`"
    )]
    MissingTag(String),

    /// The tag has characters the grammar does not allow.
    #[error(
        "image reference `{input}` has invalid tag `{tag}`; a tag uses letters, digits, `_`, `.` \
         and `-`, and starts with a letter, a digit or `_`"
    )]
    InvalidTag {
        /// The input as given.
        input: String,
        /// The tag as written.
        tag: String,
    },

    /// The tag is longer than 128 characters.
    #[error("image reference `{input}` has a tag of {len} characters; shorten it to at most 128")]
    TagTooLong {
        /// The input as given.
        input: String,
        /// The length of the tag.
        len: usize,
    },

    /// No repository precedes the tag or digest.
    #[error(
        "image reference `{0}` names no repository; write one such as `ubuntu` or `org/app` \
         before the tag or digest"
    )]
    MissingRepository(String),

    /// The registry is not a host name, IPv4 address or bracketed IPv6 address.
    #[error(
        "image reference `{input}` has invalid registry `{registry}`; write a host name such as \
         `ghcr.io`, optionally with a port as in `localhost:5000`, or an IPv6 address in \
         brackets such as `[::1]:5000`"
    )]
    InvalidRegistry {
        /// The input as given.
        input: String,
        /// The registry as written.
        registry: String,
    },

    /// The registry's port is not a number.
    #[error(
        "image reference `{input}` has registry `{registry}` whose port is not a number; write \
         the port as digits, as in `localhost:5000`"
    )]
    InvalidPort {
        /// The input as given.
        input: String,
        /// The registry as written.
        registry: String,
    },

    /// The registry's bracketed host is not an IPv6 address.
    #[error(
        "image reference `{input}` has registry `{registry}` whose bracketed host is not an IPv6 \
         address; write one such as `[::1]` or `[2001:db8::1]:5000`"
    )]
    InvalidIpv6 {
        /// The input as given.
        input: String,
        /// The registry as written.
        registry: String,
    },

    /// The repository has uppercase letters.
    #[error(
        "image reference `{input}` has uppercase letters in repository `{repository}`; \
         repository names must be lowercase, as in `{suggestion}`"
    )]
    Uppercase {
        /// The input as given.
        input: String,
        /// The repository as written.
        repository: String,
        /// The input with its repository lowercased.
        suggestion: String,
    },

    /// The repository has an empty path component (a leading, trailing or doubled `/`).
    #[error(
        "image reference `{input}` has an empty path component in repository `{repository}`; \
         remove the leading, trailing or doubled `/`"
    )]
    EmptyComponent {
        /// The input as given.
        input: String,
        /// The repository as written.
        repository: String,
    },

    /// A path component has characters or separators the grammar does not allow.
    #[error(
        "image reference `{input}` has invalid path component `{component}`; use lowercase \
         letters and digits joined by `.`, `_`, `__` or `-`, starting and ending with a letter \
         or digit"
    )]
    InvalidComponent {
        /// The input as given.
        input: String,
        /// The path component as written.
        component: String,
    },

    /// The normalized name is longer than 255 characters.
    #[error(
        "image reference `{input}` has a name of {len} characters once normalized to \
         `registry/repository`; shorten it to at most 255"
    )]
    NameTooLong {
        /// The input as given.
        input: String,
        /// The length of the normalized name.
        len: usize,
    },
}

impl Reference {
    /// Parse and normalize a reference such as `ubuntu`, `myorg/app:1` or
    /// `ghcr.io/org/app@sha256:…`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        check_text(input)?;
        let parts = Parts::split(input)?;

        // Validate left to right, so the first problem reported is the first one written.
        let registry = normalize_registry(input, parts.domain)?;
        let repository = parts.normalize_repository(&registry)?;
        check_name_len(input, &registry, &repository)?;
        let tag = parts.tag.map(|tag| validate_tag(input, tag)).transpose()?;
        let digest = parts
            .digest
            .map(|digest| parse_digest(input, digest))
            .transpose()?;

        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as written, except that `index.docker.io` becomes `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository, such as `library/ubuntu` or `myorg/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The registry and repository, such as `docker.io/library/ubuntu`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host (and port) to connect to: Docker Hub's API host for `docker.io`, else the
    /// registry.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The same reference pinned to `digest`, keeping its tag.
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference with its tag replaced, keeping its digest.
    ///
    /// `tag` is trusted to be valid, as the tags a registry lists are; use
    /// [`Reference::try_with_tag`] for text a user wrote.
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        }
    }

    /// The same reference with its tag replaced, after checking that `tag` is valid.
    pub fn try_with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        let input = format!("{}:{tag}", self.name());
        validate_tag(&input, tag).map(|tag| self.with_tag(&tag))
    }

    /// The same reference without its digest; it gets the tag `latest` if it had no tag.
    #[must_use]
    pub fn without_digest(&self) -> Self {
        Self {
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned())),
            digest: None,
            ..self.clone()
        }
    }

    /// The shortest form that parses back to this reference, as Docker users write it:
    /// `ubuntu`, `ubuntu:22.04`, `myorg/app:1`, `ghcr.io/x/y@sha256:…`.
    pub fn familiar(&self) -> String {
        let name = self.familiar_name();
        let tag_is_implied =
            self.digest.is_none() && self.tag() == Some(DEFAULT_TAG) && !is_image_id(&name);
        let tag = self.tag.as_ref().filter(|_| !tag_is_implied);
        with_suffix(name, tag, self.digest.as_ref())
    }

    /// The reference a registry API call uses: the digest when present, else the tag
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The name part of [`Reference::familiar`].
    fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        let path = match self.repository.strip_prefix(OFFICIAL_NAMESPACE) {
            Some(short) if !short.contains('/') => short,
            _ => &self.repository,
        };

        // `docker.io/foo.com/bar` must keep its registry, or `foo.com` would be read as one.
        match path.split_once('/') {
            Some((first, _)) if looks_like_domain(first) => self.name(),
            _ => path.to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = with_suffix(self.name(), self.tag.as_ref(), self.digest.as_ref());
        f.write_str(&full)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The parts of a reference as written, split but not yet validated.
struct Parts<'a> {
    input: &'a str,
    domain: Option<&'a str>,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    /// Split `input` into `[domain/]path[:tag][@digest]`.
    fn split(input: &'a str) -> Result<Self, ReferenceError> {
        let (rest, digest) = split_digest(input)?;
        let (domain, rest) = split_domain(rest);
        let (path, tag) = split_tag(input, rest)?;
        if path.is_empty() {
            return Err(ReferenceError::MissingRepository(input.to_owned()));
        }
        Ok(Self {
            input,
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Validate the path and add Docker Hub's `library/` namespace where Docker does.
    fn normalize_repository(&self, registry: &str) -> Result<String, ReferenceError> {
        if self.path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: self.input.to_owned(),
                repository: self.path.to_owned(),
                suggestion: self.rewritten(&self.path.to_ascii_lowercase()),
            });
        }
        validate_path(self.input, self.path)?;
        if registry == DOCKER_HUB && !self.path.contains('/') {
            Ok(format!("{OFFICIAL_NAMESPACE}{}", self.path))
        } else {
            Ok(self.path.to_owned())
        }
    }

    /// The input as written, with its path replaced by `path`.
    fn rewritten(&self, path: &str) -> String {
        let mut out = self
            .domain
            .map(|domain| format!("{domain}/"))
            .unwrap_or_default();
        out.push_str(path);
        for (mark, part) in [(':', self.tag), ('@', self.digest)] {
            if let Some(part) = part {
                out.push(mark);
                out.push_str(part);
            }
        }
        out
    }
}

/// Reject inputs that are not references at all: empty, spaced, URLs and image IDs.
fn check_text(input: &str) -> Result<(), ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if input.chars().any(char::is_whitespace) {
        return Err(ReferenceError::Whitespace(input.to_owned()));
    }
    if let Some((scheme, rest)) = input.split_once("://") {
        return Err(ReferenceError::Scheme {
            input: input.to_owned(),
            scheme: scheme.to_owned(),
            suggestion: rest.trim_end_matches('/').to_owned(),
        });
    }
    if is_image_id(input) {
        return Err(ReferenceError::ImageId(input.to_owned()));
    }
    Ok(())
}

/// Split off the digest after the first `@`; the name and tag never contain one.
fn split_digest(input: &str) -> Result<(&str, Option<&str>), ReferenceError> {
    match input.split_once('@') {
        None => Ok((input, None)),
        Some((_, "")) => Err(ReferenceError::MissingDigest(input.to_owned())),
        Some((rest, digest)) => Ok((rest, Some(digest))),
    }
}

/// Split off the registry, which is the first path component only when Docker reads it as a
/// host (see [`looks_like_domain`]).
fn split_domain(rest: &str) -> (Option<&str>, &str) {
    match rest.split_once('/') {
        Some((first, path)) if looks_like_domain(first) => (Some(first), path),
        _ => (None, rest),
    }
}

/// Split off the tag; with the registry (and its port) gone, any `:` starts the tag.
fn split_tag<'a>(input: &str, rest: &'a str) -> Result<(&'a str, Option<&'a str>), ReferenceError> {
    match rest.split_once(':') {
        None => Ok((rest, None)),
        Some((_, "")) => Err(ReferenceError::MissingTag(input.to_owned())),
        Some((path, tag)) => Ok((path, Some(tag))),
    }
}

/// Docker's rule: a first component is a registry if it has a `.` or `:`, is `localhost`, or
/// is not all lowercase.
fn looks_like_domain(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.chars().any(char::is_uppercase)
}

/// Validate a written registry and map `index.docker.io` to `docker.io`; none means Docker Hub.
fn normalize_registry(input: &str, domain: Option<&str>) -> Result<String, ReferenceError> {
    let Some(domain) = domain else {
        return Ok(DOCKER_HUB.to_owned());
    };
    validate_registry(input, domain)?;
    if domain == DOCKER_HUB_LEGACY {
        Ok(DOCKER_HUB.to_owned())
    } else {
        Ok(domain.to_owned())
    }
}

/// Check `host[:port]`, where the host is a domain name, an IPv4 address or a bracketed IPv6
/// address.
fn validate_registry(input: &str, registry: &str) -> Result<(), ReferenceError> {
    let port = match registry.strip_prefix('[') {
        Some(bracketed) => validate_ipv6_host(input, registry, bracketed)?,
        None => validate_name_host(input, registry)?,
    };
    if port.is_some_and(|port| port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit())) {
        return Err(ReferenceError::InvalidPort {
            input: input.to_owned(),
            registry: registry.to_owned(),
        });
    }
    Ok(())
}

/// Check a registry written as `[ipv6]` or `[ipv6]:port`, given the text after `[`, and
/// return its port.
fn validate_ipv6_host<'a>(
    input: &str,
    registry: &str,
    bracketed: &'a str,
) -> Result<Option<&'a str>, ReferenceError> {
    let invalid = |registry: &str| ReferenceError::InvalidIpv6 {
        input: input.to_owned(),
        registry: registry.to_owned(),
    };
    let (address, after) = bracketed.split_once(']').ok_or_else(|| invalid(registry))?;

    // The grammar allows only hex digits and colons, so `[::ffff:1.2.3.4]` is refused even
    // though Rust parses it.
    let grammatical = address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    if !grammatical || address.parse::<Ipv6Addr>().is_err() {
        return Err(invalid(registry));
    }
    match after {
        "" => Ok(None),
        _ => after
            .strip_prefix(':')
            .map(Some)
            .ok_or_else(|| ReferenceError::InvalidRegistry {
                input: input.to_owned(),
                registry: registry.to_owned(),
            }),
    }
}

/// Check a registry written as `domain.name` or `domain.name:port`, and return its port.
fn validate_name_host<'a>(
    input: &str,
    registry: &'a str,
) -> Result<Option<&'a str>, ReferenceError> {
    let (host, port) = match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if !host.split('.').all(is_domain_component) {
        return Err(ReferenceError::InvalidRegistry {
            input: input.to_owned(),
            registry: registry.to_owned(),
        });
    }
    Ok(port)
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Check every `/`-separated component of a lowercase repository path.
fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyComponent {
                input: input.to_owned(),
                repository: path.to_owned(),
            });
        }
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidComponent {
                input: input.to_owned(),
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let is_alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };

    // With both ends alphanumeric, every run between alphanumerics must be one separator.
    is_alphanumeric(first)
        && is_alphanumeric(last)
        && bytes
            .split(is_alphanumeric)
            .filter(|run| !run.is_empty())
            .all(|run| matches!(run, b"." | b"_" | b"__") || run.iter().all(|b| *b == b'-'))
}

/// Check a tag against `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(input: &str, tag: &str) -> Result<String, ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag
        .bytes()
        .enumerate()
        .all(|(i, b)| word(b) || (i > 0 && matches!(b, b'.' | b'-')));
    if tag.is_empty() || !valid {
        return Err(ReferenceError::InvalidTag {
            input: input.to_owned(),
            tag: tag.to_owned(),
        });
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(ReferenceError::TagTooLong {
            input: input.to_owned(),
            len: tag.len(),
        });
    }
    Ok(tag.to_owned())
}

/// Parse the text after `@`.
fn parse_digest(input: &str, digest: &str) -> Result<Digest, ReferenceError> {
    digest
        .parse()
        .map_err(|source| ReferenceError::InvalidDigest {
            input: input.to_owned(),
            digest: digest.to_owned(),
            source,
        })
}

/// Check the length of the normalized name, as Docker does.
fn check_name_len(input: &str, registry: &str, repository: &str) -> Result<(), ReferenceError> {
    let len = registry.len() + 1 + repository.len();
    if len > MAX_NAME_LEN {
        return Err(ReferenceError::NameTooLong {
            input: input.to_owned(),
            len,
        });
    }
    Ok(())
}

/// 64 lowercase hex characters: what Docker takes for an image ID rather than a name.
fn is_image_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `name`, then `:tag` and `@digest` when present.
fn with_suffix(mut name: String, tag: Option<&String>, digest: Option<&Digest>) -> String {
    if let Some(tag) = tag {
        name.push(':');
        name.push_str(tag);
    }
    if let Some(digest) = digest {
        name.push('@');
        name.push_str(&digest.to_string());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(input: &str) -> Reference {
        Reference::parse(input).unwrap()
    }

    fn error(input: &str) -> ReferenceError {
        Reference::parse(input).unwrap_err()
    }

    fn sha(hex: &str) -> String {
        format!("sha256:{hex}")
    }

    #[test]
    fn official_image_gets_docker_hub_library_and_latest() {
        let r = parse("ubuntu");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/ubuntu");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:latest");
        assert_eq!(r.name(), "docker.io/library/ubuntu");
    }

    #[test]
    fn only_index_docker_io_maps_to_docker_io() {
        assert_eq!(
            parse("index.docker.io/x").to_string(),
            "docker.io/library/x:latest"
        );
        let r = parse("registry-1.docker.io/x");
        assert_eq!(r.registry(), "registry-1.docker.io");
        assert_eq!(r.repository(), "x");
    }

    #[test]
    fn docker_io_single_component_gets_library() {
        assert_eq!(
            parse("docker.io/ubuntu").to_string(),
            "docker.io/library/ubuntu:latest"
        );
        assert_eq!(parse("docker.io/a/b").repository(), "a/b");
    }

    #[test]
    fn user_image_on_docker_hub_has_no_library() {
        assert_eq!(parse("myorg/app").to_string(), "docker.io/myorg/app:latest");
    }

    #[test]
    fn first_component_is_a_registry_only_when_docker_reads_it_as_a_host() {
        assert_eq!(parse("ghcr.io/x/y").registry(), "ghcr.io");
        assert_eq!(parse("localhost/a").registry(), "localhost");
        assert_eq!(parse("host:5000/a").registry(), "host:5000");
        assert_eq!(parse("Foo/bar").registry(), "Foo");
        assert_eq!(parse("Foo.com/bar").registry(), "Foo.com");
        assert_eq!(parse("a/b").registry(), "docker.io");
        assert_eq!(parse("a/b").repository(), "a/b");
    }

    #[test]
    fn port_after_registry_is_not_a_tag() {
        let r = parse("localhost:5000/a/b:1");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn without_a_slash_a_port_is_a_tag() {
        assert_eq!(
            parse("test.com:5000").to_string(),
            "docker.io/library/test.com:5000"
        );
        assert_eq!(
            parse("localhost").to_string(),
            "docker.io/library/localhost:latest"
        );
        assert_eq!(
            parse("localhost:5000").to_string(),
            "docker.io/library/localhost:5000"
        );
    }

    #[test]
    fn tag_and_digest_are_both_kept() {
        let r = parse(&format!("ubuntu:22.04@{}", sha(HEX)));
        assert_eq!(r.tag(), Some("22.04"));
        assert_eq!(r.digest().map(ToString::to_string), Some(sha(HEX)));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/ubuntu:22.04@{}", sha(HEX))
        );
    }

    #[test]
    fn digest_alone_gets_no_default_tag() {
        let r = parse(&format!("ubuntu@{}", sha(HEX)));
        assert_eq!(r.tag(), None);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/ubuntu@{}", sha(HEX))
        );
    }

    #[test]
    fn sha512_digests_are_accepted() {
        let hex = "a".repeat(128);
        assert_eq!(
            parse(&format!("a@sha512:{hex}")).digest().unwrap().hex(),
            hex
        );
    }

    #[test]
    fn path_separators_follow_the_grammar() {
        assert_eq!(
            parse("x/a.b_c__d-e---f/g0").repository(),
            "x/a.b_c__d-e---f/g0"
        );
        // Docker reads a first component with a `.` as a registry.
        assert_eq!(parse("a.b/c").registry(), "a.b");
        for bad in [
            "a..b", "a___b", "a_.b", "-a", "a-", "x/_b", "x/b.", "x/é", "x/a+b",
        ] {
            assert!(
                matches!(error(bad), ReferenceError::InvalidComponent { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_path_components_are_refused() {
        for bad in ["a//b", "a/", "/a", "ghcr.io//a", "ghcr.io/a/"] {
            assert!(
                matches!(error(bad), ReferenceError::EmptyComponent { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn uppercase_repository_suggests_the_lowercase_form() {
        let ReferenceError::Uppercase { suggestion, .. } = error("ghcr.io/Org/App:V1") else {
            panic!("expected an uppercase error");
        };
        assert_eq!(suggestion, "ghcr.io/org/app:V1");
        let message = error("Ubuntu").to_string();
        assert!(
            message.contains("must be lowercase, as in `ubuntu`"),
            "{message}"
        );
    }

    #[test]
    fn registry_hosts_follow_the_grammar_and_keep_their_case() {
        assert_eq!(
            parse("My-Registry.example.com:443/a").registry(),
            "My-Registry.example.com:443"
        );
        assert_eq!(parse("10.0.0.1:5000/a").registry(), "10.0.0.1:5000");
        for bad in [
            "-bad.com/a",
            "bad-.com/a",
            "a..com/a",
            "a_b.com/a",
            "::1/a",
            ".com/a",
        ] {
            assert!(
                matches!(error(bad), ReferenceError::InvalidRegistry { .. }),
                "{bad}"
            );
        }
        for bad in ["localhost:abc/a", "localhost:/a", "host.com:5000:1/a"] {
            assert!(
                matches!(error(bad), ReferenceError::InvalidPort { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn ipv6_registries_are_bracketed() {
        let r = parse("[::1]:5000/a");
        assert_eq!((r.registry(), r.repository()), ("[::1]:5000", "a"));
        let r = parse("[2001:db8::1]/a:tag");
        assert_eq!((r.registry(), r.tag()), ("[2001:db8::1]", Some("tag")));
        for bad in [
            "[::g]/a",
            "[1.2.3.4]/a",
            "[::1/a",
            "[]:5000/a",
            "[::ffff:1.2.3.4]/a",
            "[1:2]/a",
        ] {
            assert!(
                matches!(error(bad), ReferenceError::InvalidIpv6 { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            error("[::1]x/a"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            error("[::1]:/a"),
            ReferenceError::InvalidPort { .. }
        ));
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert_eq!(parse("a:_x.Y-1").tag(), Some("_x.Y-1"));
        for bad in ["a:.x", "a:-x", "a:x+y", "a:x:y"] {
            assert!(
                matches!(error(bad), ReferenceError::InvalidTag { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_longer_than_128_characters_are_refused() {
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        let err = error(&format!("a:{}", "t".repeat(129)));
        assert!(
            matches!(err, ReferenceError::TagTooLong { len: 129, .. }),
            "{err}"
        );
    }

    #[test]
    fn names_longer_than_255_characters_are_refused() {
        // `example.com/` is 12 characters.
        assert!(Reference::parse(&format!("example.com/{}", "a".repeat(243))).is_ok());
        let err = error(&format!("example.com/{}", "a".repeat(244)));
        assert!(
            matches!(err, ReferenceError::NameTooLong { len: 256, .. }),
            "{err}"
        );

        // The limit applies after normalization, so `library/` counts.
        let err = error(&"a".repeat(240));
        assert!(
            matches!(err, ReferenceError::NameTooLong { len: 258, .. }),
            "{err}"
        );
    }

    #[test]
    fn invalid_digests_carry_the_digest_error_as_source() {
        let err = error("ubuntu@sha256:abc");
        let ReferenceError::InvalidDigest { source, .. } = &err else {
            panic!("expected an invalid digest, got {err}");
        };
        assert!(matches!(source, DigestError::BadEncoding { .. }));
        assert!(std::error::Error::source(&err).is_some());
        assert!(matches!(
            error("ubuntu@md5:d41d8cd98f00b204e9800998ecf8427e"),
            ReferenceError::InvalidDigest {
                source: DigestError::UnsupportedAlgorithm(_),
                ..
            }
        ));
        assert!(matches!(
            error(&format!("a@b@{}", sha(HEX))),
            ReferenceError::InvalidDigest { .. }
        ));
    }

    #[test]
    fn malformed_text_gets_a_clear_error() {
        assert_eq!(error(""), ReferenceError::Empty);
        for bad in [" ubuntu", "ubu ntu", "ubuntu\n", "ubuntu\t:1"] {
            assert!(
                matches!(error(bad), ReferenceError::Whitespace(_)),
                "{bad:?}"
            );
        }
        assert!(matches!(error("ubuntu:"), ReferenceError::MissingTag(_)));
        assert!(matches!(
            error("localhost:5000/a:"),
            ReferenceError::MissingTag(_)
        ));
        assert!(matches!(error("ubuntu@"), ReferenceError::MissingDigest(_)));
        assert!(matches!(error(HEX), ReferenceError::ImageId(_)));
        for bad in [":1", "ghcr.io/", "ghcr.io/:1", &format!("@{}", sha(HEX))] {
            assert!(
                matches!(error(bad), ReferenceError::MissingRepository(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn url_schemes_suggest_dropping_the_scheme() {
        let err = error("https://ghcr.io/x/y:1/");
        let ReferenceError::Scheme { suggestion, .. } = &err else {
            panic!("expected a scheme error, got {err}");
        };
        assert_eq!(suggestion, "ghcr.io/x/y:1");
        assert!(err.to_string().contains("drop `https://`"), "{err}");
    }

    #[test]
    fn error_messages_name_the_input_and_end_without_a_period() {
        let long_tag = format!("a:{}", "t".repeat(129));
        let inputs = [
            "x y",
            "http://a",
            HEX,
            "a@",
            "a@sha256:1",
            "a:",
            "a:.",
            ":1",
            "-a.com/b",
            "a:b/c",
            "[::g]/a",
            "A",
            "a//b",
            "a+b",
            &long_tag,
        ];
        for input in inputs {
            let message = error(input).to_string();
            assert!(message.contains(&format!("`{input}`")), "{message}");
            assert!(!message.ends_with('.'), "{message}");
            assert!(message.starts_with("image reference"), "{message}");
        }
    }

    #[test]
    fn api_host_is_docker_hubs_api_host_for_docker_io() {
        assert_eq!(parse("ubuntu").api_host(), "registry-1.docker.io");
        assert_eq!(parse("[::1]:5000/a").api_host(), "[::1]:5000");
        assert_eq!(parse("ghcr.io/a/b").api_host(), "ghcr.io");
    }

    #[test]
    fn api_reference_prefers_the_digest() {
        assert_eq!(parse("ubuntu:22.04").api_reference(), "22.04");
        assert_eq!(
            parse(&format!("ubuntu:22.04@{}", sha(HEX))).api_reference(),
            sha(HEX)
        );
    }

    #[test]
    fn with_and_without_change_only_their_part() {
        let digest: Digest = sha(HEX).parse().unwrap();
        let pinned = parse("ghcr.io/a/b:1").with_digest(digest.clone());
        assert_eq!(pinned.to_string(), format!("ghcr.io/a/b:1@{digest}"));
        assert_eq!(
            pinned.with_tag("2").to_string(),
            format!("ghcr.io/a/b:2@{digest}")
        );
        assert_eq!(pinned.without_digest().to_string(), "ghcr.io/a/b:1");
        let digest_only = parse(&format!("ghcr.io/a/b@{digest}")).without_digest();
        assert_eq!(digest_only.to_string(), "ghcr.io/a/b:latest");
        assert!(matches!(
            parse("a").try_with_tag("-x"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert_eq!(parse("a").try_with_tag("x").unwrap().tag(), Some("x"));
    }

    #[test]
    fn familiar_is_the_shortest_form() {
        let pinned = format!("ghcr.io/x/y@{}", sha(HEX));
        let cases = [
            ("docker.io/library/ubuntu:22.04", "ubuntu:22.04".to_owned()),
            ("docker.io/library/ubuntu:latest", "ubuntu".to_owned()),
            ("docker.io/myorg/app:1", "myorg/app:1".to_owned()),
            ("docker.io/library/a/b:1", "library/a/b:1".to_owned()),
            (
                "docker.io/foo.com/bar:1",
                "docker.io/foo.com/bar:1".to_owned(),
            ),
            (
                "docker.io/localhost/bar:1",
                "docker.io/localhost/bar:1".to_owned(),
            ),
            ("ghcr.io/x/y:latest", "ghcr.io/x/y".to_owned()),
            (
                &format!("ubuntu:latest@{}", sha(HEX)),
                format!("ubuntu:latest@{}", sha(HEX)),
            ),
            (&pinned, pinned.clone()),
            (&format!("docker.io/library/{HEX}"), format!("{HEX}:latest")),
        ];
        for (input, familiar) in cases {
            let r = parse(input);
            assert_eq!(r.familiar(), familiar);
            assert_eq!(parse(&familiar), r);
        }
    }

    #[test]
    fn equal_references_compare_and_hash_equal() {
        use std::collections::HashSet;
        let set: HashSet<_> = [
            "ubuntu",
            "docker.io/ubuntu:latest",
            "index.docker.io/library/ubuntu",
        ]
        .into_iter()
        .map(parse)
        .collect();
        assert_eq!(set.len(), 1);
        assert!(parse("a:1") < parse("a:2"));
    }

    #[test]
    fn serde_uses_the_normalized_string() {
        let json = serde_json::to_string(&parse("ubuntu")).unwrap();
        assert_eq!(json, r#""docker.io/library/ubuntu:latest""#);
        let back: Reference = serde_json::from_str(r#""ubuntu""#).unwrap();
        assert_eq!(back, parse("ubuntu"));
        assert!(serde_json::from_str::<Reference>(r#""Ubuntu""#).is_err());
    }

    /// A registry written so that Docker reads it as one.
    fn registry() -> impl Strategy<Value = String> {
        let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?";
        let name = prop::collection::vec(label, 1..4).prop_map(|labels| labels.join("."));
        let ipv6 = prop_oneof![
            Just("[::1]".to_owned()),
            prop::array::uniform8(any::<u16>()).prop_map(|groups| {
                let groups: Vec<String> = groups.iter().map(|g| format!("{g:x}")).collect();
                format!("[{}]", groups.join(":"))
            }),
            any::<u16>().prop_map(|g| format!("[fe80::{g:X}]")),
        ];
        let host = prop_oneof![name, Just("localhost".to_owned()), ipv6];
        (host, prop::option::of(any::<u16>()))
            .prop_map(|(host, port)| match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
            .prop_filter("must read as a registry", |r| looks_like_domain(r))
    }

    fn path() -> impl Strategy<Value = String> {
        let separator = prop_oneof![
            Just(".".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            "-{1,3}"
        ];
        let component = (
            "[a-z0-9]{1,6}",
            prop::collection::vec((separator, "[a-z0-9]{1,6}"), 0..3),
        )
            .prop_map(|(head, tail)| {
                tail.into_iter()
                    .fold(head, |acc, (sep, run)| format!("{acc}{sep}{run}"))
            });
        prop::collection::vec(component, 1..4).prop_map(|components| components.join("/"))
    }

    fn digest() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|h| sha(&h)),
            "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}"))
        ]
    }

    /// References written by the grammar, with or without each optional part.
    fn written_reference() -> impl Strategy<Value = String> {
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        (
            prop::option::of(registry()),
            path(),
            prop::option::of(tag),
            prop::option::of(digest()),
        )
            .prop_map(|(registry, path, tag, digest)| {
                // `a.b/c` would name registry `a.b`: write Docker Hub explicitly then.
                let registry = match registry {
                    None if split_domain(&path).0.is_some() => Some(DOCKER_HUB.to_owned()),
                    registry => registry,
                };
                let mut out = registry.map(|r| format!("{r}/")).unwrap_or_default();
                out.push_str(&path);
                if let Some(tag) = tag {
                    out.push(':');
                    out.push_str(&tag);
                }
                if let Some(digest) = digest {
                    out.push('@');
                    out.push_str(&digest);
                }
                out
            })
    }

    fn assert_round_trips(r: &Reference) {
        let shown = r.to_string();
        let reparsed = Reference::parse(&shown).unwrap();
        assert_eq!(&reparsed, r);
        assert_eq!(reparsed.to_string(), shown);
        assert_eq!(
            &Reference::parse(&r.familiar()).unwrap(),
            r,
            "familiar {}",
            r.familiar()
        );
    }

    proptest! {
        #[test]
        fn grammatical_references_parse_and_round_trip(input in written_reference()) {
            let r = Reference::parse(&input);
            prop_assert!(r.is_ok(), "{input}: {:?}", r);
            if let Ok(r) = r {
                assert_round_trips(&r);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(input in "\\PC{0,80}") {
            if let Ok(r) = Reference::parse(&input) {
                assert_round_trips(&r);
            }
        }

        #[test]
        fn reference_like_text_never_panics(input in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,60}") {
            if let Ok(r) = Reference::parse(&input) {
                assert_round_trips(&r);
            }
        }
    }
}
