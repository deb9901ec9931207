//! Image references in compose files: `services.<name>.image`.
//!
//! `${VAR}`, `${VAR:-default}` and the other compose forms are substituted from the `.env` file
//! beside the compose file and from the environment, which wins. A service that builds its
//! image is skipped: its `image` names what the build produces, not what is pulled.

use std::path::Path;

use super::yaml::{self, Node};
use super::{Environment, Found, Image, SourceError, yaml_reference};

/// Find the image references of the compose file `text`, read from `path`.
pub fn scan(path: &Path, text: &str, variables: &Environment) -> Result<Vec<Found>, SourceError> {
    let lookup = |name: &str| variables.get(name).cloned();
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for document in yaml::parse(path, text)? {
        let Some(Node::Mapping(services)) = document.get("services") else {
            continue;
        };
        for (name, service) in services {
            if service.get("build").is_some() {
                continue;
            }
            let Some(Node::Scalar(image)) = service.get("image") else {
                continue;
            };
            let context = format!("service {}", name.as_str().unwrap_or("?"));
            let reference = yaml_reference(path, image, &context, Some(&lookup))?;

            // An alias repeats its anchor's bytes: the reference is written, and found, once.
            if let Image::Literal { span, .. } = &reference.image
                && !seen.insert(span.start)
            {
                continue;
            }
            found.push(reference);
        }
    }
    Ok(found)
}

/// The variables a compose file in `dir` sees: its `.env` file, overridden by `env`.
pub fn variables(dir: &Path, env: &Environment) -> Environment {
    let mut variables = match std::fs::read_to_string(dir.join(".env")) {
        Ok(text) => parse_env_file(&text),
        Err(_) => Environment::new(),
    };
    variables.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    variables
}

/// `KEY=value` lines, with `export`, comments and single or double quotes.
fn parse_env_file(text: &str) -> Environment {
    let mut variables = Environment::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(" #").next().unwrap_or("").trim_end(),
        };
        variables.insert(key.trim().to_owned(), value.to_owned());
    }
    variables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_follow_compose_quoting() {
        let vars = parse_env_file(
            "# comment\nexport A=1\nB=\"two words\" # c\nC='x#y'\nD=plain # trailing\n\nbroken\n",
        );
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x#y");
        assert_eq!(vars["D"], "plain");
        assert_eq!(vars.len(), 4);
    }
}
