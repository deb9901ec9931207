//! Image references in Kubernetes manifests: every `image:` field of every document.
//!
//! Containers, init containers and ephemeral containers of Pods and of every workload kind
//! (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, the Job template of a CronJob) all
//! hold their reference in an `image:` field, and so do custom resources and most rendered Helm
//! output. So every `image:` whose value is a string is a reference, wherever it is nested.

use std::path::Path;

use super::yaml::{self, Node};
use super::{Found, SourceError, yaml_reference};

/// Find the image references of the manifests `text`, read from `path`.
pub fn scan(path: &Path, text: &str) -> Result<Vec<Found>, SourceError> {
    let mut found = Vec::new();
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
        };
        walker.node(&document, &mut Vec::new())?;
    }
    Ok(found)
}

struct Walker<'a> {
    path: &'a Path,
    owner: String,
    found: &'a mut Vec<Found>,
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
                            let found = yaml_reference(self.path, s, &context, None)?;
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
