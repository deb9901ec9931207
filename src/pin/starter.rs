//! The `aisupply.toml` that `aisupply init` writes: one `[[image]]` per distinct reference
//! found, the references it could not resolve as comments, and the `[sources]` it read.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Discovery, Found, Image, SourceGlobs};
use crate::reference::Reference;

/// One proposed `[[image]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proposed {
    /// The entry's name, unique in the config.
    pub name: String,
    /// The reference as a user writes it, such as `python:3.12`; without the digest the file
    /// pins, unless the reference has no tag.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Where the reference is used: `file:line`, in file order.
    pub found_at: Vec<String>,
}

/// What `init` proposes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Starter {
    /// The image entries, sorted by name.
    pub images: Vec<Proposed>,
    /// References that hold a variable with no value, as `file:line: written`.
    pub unresolved: Vec<String>,
}

/// Propose one entry per distinct reference of `discovery`.
pub fn propose(discovery: &Discovery) -> Starter {
    let mut by_reference: BTreeMap<Reference, Vec<String>> = BTreeMap::new();
    let mut unresolved = Vec::new();
    for found in discovery.references() {
        let place = format!("{}:{}", found.file.display(), found.line);
        match found.reference() {
            Some(reference) => by_reference
                .entry(lockable(reference))
                .or_default()
                .push(place),
            None => unresolved.push(unresolved_line(found, &place)),
        }
    }

    let names = unique_names(by_reference.keys());
    let mut images: Vec<Proposed> = by_reference
        .into_iter()
        .zip(names)
        .map(|((reference, found_at), name)| Proposed {
            name,
            reference: reference.familiar(),
            found_at,
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Starter { images, unresolved }
}

/// What the config asks `lock` to resolve: the tag, whatever digest the file pins now (`pin`
/// rewrites a stale one); a reference with only a digest keeps it.
fn lockable(reference: &Reference) -> Reference {
    if reference.tag().is_some() {
        reference.without_digest()
    } else {
        reference.clone()
    }
}

fn unresolved_line(found: &Found, place: &str) -> String {
    let Image::Unresolved { variable } = &found.image else {
        return place.to_owned();
    };
    format!(
        "{place}: {} `{}` (`{variable}` has no value)",
        found.context, found.written
    )
}

/// The repository path, without Docker Hub's `library/`; suffixed with the tag (or digest)
/// where two references share a repository, and with a number if that is not enough.
fn unique_names<'a>(references: impl Iterator<Item = &'a Reference>) -> Vec<String> {
    let references: Vec<&Reference> = references.collect();
    let bases: Vec<String> = references.iter().map(|r| base_name(r)).collect();
    let mut names: Vec<String> = Vec::with_capacity(bases.len());
    for (i, reference) in references.iter().enumerate() {
        let shared = bases.iter().filter(|b| **b == bases[i]).count() > 1;
        let mut name = if shared {
            qualified(&bases[i], reference)
        } else {
            bases[i].clone()
        };
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{}-{n}", qualified(&bases[i], reference));
            n += 1;
        }
        names.push(name);
    }
    names
}

fn base_name(reference: &Reference) -> String {
    let repository = reference.repository();
    match repository.strip_prefix("library/") {
        Some(short) if reference.registry() == "docker.io" => short.to_owned(),
        _ => repository.to_owned(),
    }
}

/// `base-tag`, `base-tag-<digest prefix>` or `base-<digest prefix>`.
fn qualified(base: &str, reference: &Reference) -> String {
    let mut name = base.to_owned();
    if let Some(tag) = reference.tag() {
        name = format!("{name}-{tag}");
    }
    if let Some(digest) = reference.digest() {
        name = format!("{name}-{}", &digest.hex()[..12]);
    }
    name
}

/// The config text.
pub fn render(starter: &Starter, globs: &SourceGlobs) -> String {
    let mut out = String::from(
        "# The images this repository uses, found by `aisupply init` in the files under\n\
         # [sources]. Next: `aisupply lock` pins them, `aisupply pin --write` writes the digests\n\
         # into those files, and `aisupply verify` keeps them there.\n",
    );
    for image in &starter.images {
        let _ = write!(
            out,
            "\n[[image]]\nname = {}\nref = {}\n",
            quoted(&image.name),
            quoted(&image.reference)
        );
        let _ = writeln!(out, "# used at {}", image.found_at.join(", "));
    }
    if !starter.unresolved.is_empty() {
        out.push_str(
            "\n# Not added: these references hold a variable with no value here. Give the\n\
             # variable a default, or pin the reference by hand:\n",
        );
        for line in &starter.unresolved {
            let _ = writeln!(out, "#   {line}");
        }
    }
    out.push_str("\n[sources]\n");
    for (kind, list) in &globs.written {
        let items: Vec<String> = list.iter().map(|g| quoted(g)).collect();
        let _ = writeln!(out, "{} = [{}]", kind_key(*kind), items.join(", "));
    }
    out
}

fn kind_key(kind: super::SourceKind) -> &'static str {
    match kind {
        super::SourceKind::Dockerfile => "dockerfiles",
        super::SourceKind::Compose => "compose",
        super::SourceKind::Kubernetes => "kubernetes",
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
