//! Image references in Kubernetes manifests: every `image:` field of every document.
//!
//! Containers, init containers and ephemeral containers of Pods and of every workload kind
//! (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, the Job template of a CronJob) all
//! hold their reference in an `image:` field, and so do custom resources and most rendered Helm
//! output. So every `image:` whose value is a string is a reference, wherever it is nested.
//! Only a container's `image:` must be a valid reference: elsewhere (a ConfigMap's data, a
//! custom field) a value that is not one is some other kind of text and is ignored.
//!
//! Helm chart templates are not manifests until `helm template` renders them; they are skipped.

use std::collections::HashSet;

use std::path::Path;

use super::yaml::{self, Node};
use super::{Found, Image, SourceError, yaml_reference};

/// Why a Helm template is skipped.
pub const TEMPLATE: &str =
    "it is a Helm template; pin the rendered output (`helm template`) instead";

/// Whether `text` holds Go template actions (`{{ ... }}`), as Helm chart templates do.
pub fn is_template(text: &str) -> bool {
    text.lines().any(|line| {
        line.find("{{")
            .is_some_and(|open| line[open..].contains("}}"))
    })
}

/// Find the image references of the manifests `text`, read from `path`.
pub fn scan(path: &Path, text: &str) -> Result<Vec<Found>, SourceError> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for document in yaml::parse(path, text)? {
        let kind = document
            .get("kind")
            .and_then(Node::as_str)
            .unwrap_or("document");
        let name = document
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Node::as_str)
            .unwrap_or("?");
        let mut walker = Walker {
            path,
            owner: format!("{kind}/{name}"),
            found: &mut found,
            seen: &mut seen,
        };
        walker.node(&document, &mut Vec::new())?;
    }
    Ok(found)
}

struct Walker<'a> {
    path: &'a Path,
    owner: String,
    found: &'a mut Vec<Found>,
    /// The start of each literal already found: an alias repeats its anchor's bytes.
    seen: &'a mut HashSet<usize>,
}

impl Walker<'_> {
    /// Visit `node`, found at the field path `at`.
    fn node(&mut self, node: &Node, at: &mut Vec<String>) -> Result<(), SourceError> {
        match node {
            Node::Scalar(_) => {}
            Node::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(format!("[{i}]"));
                    self.node(item, at)?;
                    at.pop();
                }
            }
            Node::Mapping(entries) => {
                for (key, value) in entries {
                    let key = key.as_str().unwrap_or("?");
                    match value {
                        Node::Scalar(s) if key == "image" && is_string(s) => {
                            let context = format!("{} {}", self.owner, field_path(at));
                            let found = match yaml_reference(self.path, s, &context, None) {
                                Ok(found) => found,
                                Err(_) if !in_container(at) => continue,
                                Err(e) => return Err(e),
                            };
                            if let Image::Literal { span, .. } = &found.image
                                && !self.seen.insert(span.start)
                            {
                                continue;
                            }
                            self.found.push(found);
                        }
                        _ => {
                            at.push(key.to_owned());
                            self.node(value, at)?;
                            at.pop();
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether the field path `at` is a container of a Pod spec, whose `image:` must be valid.
fn in_container(at: &[String]) -> bool {
    let [.., list, index] = at else {
        return false;
    };
    let containers = matches!(
        list.as_str(),
        "containers" | "initContainers" | "ephemeralContainers"
    );
    containers && index.starts_with('[')
}

/// Whether a scalar is a non-empty string rather than `null`, `~` or empty.
fn is_string(scalar: &yaml::Scalar) -> bool {
    let value = scalar.value.trim();
    let null = scalar.plain && matches!(value, "null" | "Null" | "NULL" | "~");
    !value.is_empty() && !null
}

/// `spec.template.spec.containers[0]` from its parts.
fn field_path(parts: &[String]) -> String {
    let mut path = String::new();
    for part in parts {
        if !path.is_empty() && !part.starts_with('[') {
            path.push('.');
        }
        path.push_str(part);
    }
    if path.is_empty() {
        "image".to_owned()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_containers_image_must_be_a_valid_reference() {
        let text = "kind: ConfigMap\ndata: {image: \"My Base Image\"}\n---\nkind: Widget\n\
                    spec: {image: not a reference}\n---\nkind: Pod\nspec:\n  containers:\n  \
                    - image: busybox:1.36\n";
        let found = scan(Path::new("k.yaml"), text).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].written, "busybox:1.36");

        let bad = "kind: Pod\nspec:\n  ephemeralContainers:\n  - image: \"My Image\"\n";
        assert!(matches!(
            scan(Path::new("k.yaml"), bad),
            Err(SourceError::InvalidReference { line: 4, .. })
        ));
    }

    #[test]
    fn go_template_actions_mark_a_helm_template() {
        assert!(is_template("spec:\n  {{- with .Values.x }}\n"));
        assert!(is_template("image: \"{{ .Values.image }}\"\n"));
        assert!(!is_template("data: {a: {b: 1}}\n"));
    }
}
