//! Renderers for CI systems: SARIF 2.1.0 for code scanning and GitHub workflow annotations.
//!
//! They return text or JSON values and never print; the CLI decides where output goes. Both
//! accept the findings of `verify` and the richer vulnerability findings of `scan`.

pub mod github;
pub mod sarif;

use std::path::Path;

/// A path as a forward-slash URI reference, relative when it was given relative, as GitHub
/// code scanning expects of locations in the repository.
fn uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.strip_prefix("./").unwrap_or(&text).to_owned()
}
