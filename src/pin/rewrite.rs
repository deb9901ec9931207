//! `aisupply pin`: rewrite each reference to `name:tag@sha256:<locked digest>`.
//!
//! Only the bytes of each reference change: the name and tag stay as written, a digest already
//! there is replaced, and comments, quoting, indentation and line endings are untouched.
//! Pinning a pinned file changes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::{Discovery, Found, Image, SourceFile};
use crate::digest::Digest;
use crate::lock::{LockFile, LockedImage};
use crate::mirror::Target;
use crate::reference::Reference;

/// One reference rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: usize,
    /// The reference as it was written.
    pub from: String,
    /// The reference as it is written now.
    pub to: String,
}

/// A file whose references change.
#[derive(Clone, Debug)]
pub struct PinnedFile {
    /// The file, as shown to the user.
    pub path: PathBuf,
    /// Where the file is on disk.
    pub disk_path: PathBuf,
    /// The file as it was.
    pub original: String,
    /// The file with every reference pinned.
    pub pinned: String,
    /// What changed, in file order.
    pub changes: Vec<Change>,
}

/// A reference `pin` leaves alone, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The reference.
    pub found: Found,
    /// Why it cannot be pinned in place.
    pub reason: String,
}

/// What `pin` would do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The files that change, sorted by path.
    pub files: Vec<PinnedFile>,
    /// References no lock entry pins: `pin` refuses to run until they are locked.
    pub unlocked: Vec<Found>,
    /// References that cannot be rewritten in place.
    pub skipped: Vec<Skipped>,
    /// How many references were already pinned to the locked digest.
    pub unchanged: usize,
}

/// Plan the rewrite of every file of `discovery` to the digests of `lock`; with `mirror`, to
/// the mirrored references `aisupply mirror --to` that registry creates.
pub fn plan(discovery: &Discovery, lock: &LockFile, mirror: Option<&Target>) -> Plan {
    let mut plan = Plan::default();
    for file in &discovery.files {
        let pinned = pin_file(file, lock, mirror, &mut plan);
        if !pinned.changes.is_empty() {
            plan.files.push(pinned);
        }
    }
    plan
}

/// The lock entry `reference` names: the same repository and tag or, for a reference with a
/// digest and no tag, the same repository and digest.
pub fn locked_for<'a>(lock: &'a LockFile, reference: &Reference) -> Option<&'a LockedImage> {
    locked_via(lock, reference, None)
}

/// [`locked_for`], also recognizing the references of the images mirrored to `mirror`.
pub fn locked_via<'a>(
    lock: &'a LockFile,
    reference: &Reference,
    mirror: Option<&Target>,
) -> Option<&'a LockedImage> {
    let same_name = |l: &&LockedImage| {
        l.reference.name() == reference.name()
            || mirror.is_some_and(|m| m.place(&l.reference).name() == reference.name())
    };
    match reference.tag() {
        Some(tag) => lock
            .images
            .iter()
            .filter(same_name)
            .find(|l| l.reference.tag() == Some(tag)),
        None => lock
            .images
            .iter()
            .filter(same_name)
            .find(|l| Some(&l.digest) == reference.digest()),
    }
}

fn pin_file(
    file: &SourceFile,
    lock: &LockFile,
    mirror: Option<&Target>,
    plan: &mut Plan,
) -> PinnedFile {
    let mut edits = Vec::new();
    let mut seen = BTreeSet::new();
    for found in &file.references {
        let Some(reference) = found.reference() else {
            plan.skipped
                .push(skip(found, "it holds a variable that has no value here"));
            continue;
        };
        let Some(locked) = locked_via(lock, reference, mirror) else {
            plan.unlocked.push(found.clone());
            continue;
        };
        match &found.image {
            Image::Literal { span, .. } => {
                // One `ARG` default can serve several `FROM`s; it is rewritten once.
                if !seen.insert(span.start) {
                    continue;
                }
                let current = &file.text[span.clone()];
                let pinned = match mirror {
                    None => pinned_text(current, &locked.digest),
                    Some(mirror) => mirrored_text(mirror, locked),
                };
                if pinned == current {
                    plan.unchanged += 1;
                } else {
                    edits.push((span.clone(), found.line, pinned));
                }
            }
            Image::Substituted { .. } if reference.digest() == Some(&locked.digest) => {
                plan.unchanged += 1;
            }
            _ => plan.skipped.push(skip(found, cannot_rewrite(found))),
        }
    }
    apply(file, edits)
}

/// Why a reference that is not written literally cannot be rewritten in place.
fn cannot_rewrite(found: &Found) -> &'static str {
    if found.written.contains('$') {
        "it is built from variables; pin it where the variables are set"
    } else {
        "its text is not written as is (an escape, or a scalar over several lines); write it \
         as `name:tag` on one line"
    }
}

fn skip(found: &Found, reason: &str) -> Skipped {
    Skipped {
        found: found.clone(),
        reason: reason.to_owned(),
    }
}

/// Where `mirror` holds `locked`: `host/prefix/<registry>/<repository>:tag@digest`.
pub fn mirrored_text(mirror: &Target, locked: &LockedImage) -> String {
    let name = mirror.place(&locked.reference).name();
    match locked.reference.tag() {
        Some(tag) => format!("{name}:{tag}@{}", locked.digest),
        None => format!("{name}@{}", locked.digest),
    }
}

/// `name:tag` (and any old digest) as written, pinned to `digest`.
pub fn pinned_text(written: &str, digest: &Digest) -> String {
    let name = written.split_once('@').map_or(written, |(name, _)| name);
    format!("{name}@{digest}")
}

fn apply(file: &SourceFile, mut edits: Vec<(std::ops::Range<usize>, usize, String)>) -> PinnedFile {
    edits.sort_by_key(|(span, _, _)| span.start);
    let mut pinned = String::with_capacity(file.text.len() + edits.len() * 72);
    let mut changes = Vec::with_capacity(edits.len());
    let mut at = 0;
    for (span, line, text) in edits {
        pinned.push_str(&file.text[at..span.start]);
        pinned.push_str(&text);
        changes.push(Change {
            file: file.path.clone(),
            line,
            from: file.text[span.clone()].to_owned(),
            to: text,
        });
        at = span.end;
    }
    pinned.push_str(&file.text[at..]);
    PinnedFile {
        path: file.path.clone(),
        disk_path: file.disk_path.clone(),
        original: file.text.clone(),
        pinned,
        changes,
    }
}

/// A unified diff of the change, with `a/` and `b/` paths as `git diff` writes them.
pub fn unified_diff(file: &PinnedFile) -> String {
    let path = file.path.display();
    similar::TextDiff::from_lines(&file.original, &file.pinned)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::lock::LockedImage;
    use crate::pin::{SourceKind, check, compose, dockerfile};

    const IMAGES: &[&str] = &[
        "python:3.12",
        "ghcr.io/org/app:1.0",
        "busybox:1.36",
        "localhost:5000/x/y:2",
    ];

    fn digest_of(seed: &str) -> Digest {
        Digest::sha256(seed.as_bytes())
    }

    fn lock() -> LockFile {
        let images = IMAGES
            .iter()
            .map(|image| LockedImage {
                name: (*image).to_owned(),
                reference: Reference::parse(image).unwrap(),
                digest: digest_of(image),
                media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                platforms: None,
                manifests: Vec::new(),
            })
            .collect();
        LockFile {
            version: 1,
            images,
            models: Vec::new(),
        }
    }

    fn discovery(kind: SourceKind, text: &str) -> Discovery {
        let path = Path::new("f");
        let references = match kind {
            SourceKind::Dockerfile => dockerfile::scan(path, text).unwrap(),
            SourceKind::Kubernetes => crate::pin::kubernetes::scan(path, text).unwrap(),
            SourceKind::Compose => {
                compose::scan(path, text, &crate::pin::Environment::default()).unwrap()
            }
        };
        let file = SourceFile {
            path: path.to_owned(),
            disk_path: path.to_owned(),
            kind,
            text: text.to_owned(),
            references,
        };
        Discovery {
            files: vec![file],
            ..Discovery::default()
        }
    }

    fn pin(kind: SourceKind, text: &str) -> String {
        let plan = plan(&discovery(kind, text), &lock(), None);
        assert!(plan.unlocked.is_empty());
        plan.files
            .first()
            .map_or_else(|| text.to_owned(), |f| f.pinned.clone())
    }

    /// The text with every `@sha256:<hex>` removed.
    fn without_digests(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("@sha256:") {
            out.push_str(&rest[..at]);
            rest = &rest[at + 8 + 64..];
        }
        out + rest
    }

    /// A reference as a file might hold it: bare, or pinned to some digest.
    fn written() -> impl Strategy<Value = String> {
        (prop::sample::select(IMAGES), any::<Option<u8>>()).prop_map(|(image, pinned)| match pinned
        {
            Some(seed) => format!("{image}@{}", digest_of(&seed.to_string())),
            None => image.to_owned(),
        })
    }

    fn dockerfile_line() -> impl Strategy<Value = String> {
        prop_oneof![
            written().prop_map(|r| format!("FROM {r}")),
            written().prop_map(|r| format!("from   {r}   AS s")),
            written().prop_map(|r| format!("COPY --from={r} /a /b")),
            written().prop_map(|r| format!("FROM \\\n  {r}")),
            Just("# FROM not:an-image".to_owned()),
            Just(String::new()),
            Just("RUN echo python:3.12".to_owned()),
        ]
    }

    fn compose_service() -> impl Strategy<Value = String> {
        (written(), 0..3_usize, any::<bool>()).prop_map(|(r, quote, comment)| {
            let value = match quote {
                0 => r,
                1 => format!("'{r}'"),
                _ => format!("\"{r}\""),
            };
            let comment = if comment { " # keep me" } else { "" };
            format!("  s{}:\n    image: {value}{comment}", value.len())
        })
    }

    fn joined(lines: Vec<String>, crlf: bool) -> String {
        let eol = if crlf { "\r\n" } else { "\n" };
        lines
            .into_iter()
            .map(|l| l.replace('\n', eol) + eol)
            .collect()
    }

    proptest! {
        #[test]
        fn pinning_twice_equals_pinning_once(
            lines in prop::collection::vec(dockerfile_line(), 0..12),
            crlf: bool,
        ) {
            let text = joined(lines, crlf);
            let once = pin(SourceKind::Dockerfile, &text);
            prop_assert_eq!(pin(SourceKind::Dockerfile, &once), once);
        }

        #[test]
        fn only_reference_bytes_change_in_dockerfiles(
            lines in prop::collection::vec(dockerfile_line(), 0..12),
            crlf: bool,
        ) {
            let text = joined(lines, crlf);
            let pinned = pin(SourceKind::Dockerfile, &text);
            prop_assert_eq!(without_digests(&pinned), without_digests(&text));
            let found = check::check(&discovery(SourceKind::Dockerfile, &pinned), &lock(), None);
            prop_assert!(found.is_empty());
        }

        #[test]
        fn only_reference_bytes_change_in_compose_files(
            services in prop::collection::btree_set(compose_service(), 0..8),
            crlf: bool,
        ) {
            let mut lines = vec!["services:".to_owned()];
            lines.extend(services);
            let text = joined(lines, crlf);
            let pinned = pin(SourceKind::Compose, &text);
            prop_assert_eq!(without_digests(&pinned), without_digests(&text));
            prop_assert_eq!(pin(SourceKind::Compose, &pinned), pinned.clone());
            let found = check::check(&discovery(SourceKind::Compose, &pinned), &lock(), None);
            prop_assert!(found.is_empty());
        }
    }

    #[test]
    fn one_arg_default_serving_two_stages_is_rewritten_once() {
        let text = "ARG BASE=python:3.12\nFROM ${BASE} AS a\nFROM $BASE\n";
        let pinned = pin(SourceKind::Dockerfile, text);
        assert_eq!(
            pinned,
            format!(
                "ARG BASE=python:3.12@{}\nFROM ${{BASE}} AS a\nFROM $BASE\n",
                digest_of("python:3.12")
            )
        );
    }

    #[test]
    fn references_missing_from_the_lock_are_listed_not_pinned() {
        let plan = plan(
            &discovery(
                SourceKind::Dockerfile,
                "FROM alpine:3.20\nFROM python:3.12\n",
            ),
            &lock(),
            None,
        );
        assert_eq!(plan.unlocked.len(), 1);
        assert_eq!(plan.unlocked[0].written, "alpine:3.20");
    }

    #[test]
    fn an_anchored_image_is_pinned_once_at_its_anchor() {
        let text = "services:\n  a:\n    image: &busy busybox:1.36  # anchor\n  \
                    b:\n    image: *busy\n";
        let found = discovery(SourceKind::Compose, text);
        assert_eq!(found.files[0].references.len(), 1);
        let plan = plan(&found, &lock(), None);
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
        let digest = digest_of("busybox:1.36");
        assert_eq!(
            plan.files[0].pinned,
            text.replace("busybox:1.36", &format!("busybox:1.36@{digest}"))
        );

        let manifest = "kind: Pod\nspec:\n  containers:\n  - image: &busy busybox:1.36\n  \
                        initContainers:\n  - image: *busy\n";
        let found = discovery(SourceKind::Kubernetes, manifest);
        assert_eq!(found.files[0].references.len(), 1);
        assert_eq!(plan_of(&found).files[0].changes.len(), 1);
    }

    fn plan_of(found: &Discovery) -> Plan {
        plan(found, &lock(), None)
    }

    #[test]
    fn a_one_line_folded_or_block_scalar_is_pinned_in_place() {
        let digest = digest_of("busybox:1.36");
        for text in [
            "kind: Pod\nspec:\n  containers:\n  - image: >-\n      busybox:1.36\n",
            "kind: Pod\nspec:\n  containers:\n  - image: |\n      busybox:1.36\n    name: x\n",
        ] {
            let plan = plan_of(&discovery(SourceKind::Kubernetes, text));
            assert!(plan.skipped.is_empty(), "{text:?}: {:?}", plan.skipped);
            assert_eq!(plan.files[0].changes[0].line, 5, "{text:?}");
            assert_eq!(
                plan.files[0].pinned,
                text.replace("busybox:1.36", &format!("busybox:1.36@{digest}"))
            );
        }
    }

    #[test]
    fn a_reference_split_by_yaml_is_skipped_for_that_reason_not_for_variables() {
        let text = "kind: Pod\nspec:\n  containers:\n  - image: \"busybox:1.3\\x36\"\n";
        let plan = plan_of(&discovery(SourceKind::Kubernetes, text));
        assert_eq!(plan.skipped.len(), 1);
        assert!(
            !plan.skipped[0].reason.contains("variables"),
            "{}",
            plan.skipped[0].reason
        );
    }
}
