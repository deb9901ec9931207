//! `include` and `exclude`: which files of a repository a `[[model]]` entry locks.
//!
//! The globs mean what they mean to `hf download --include`: they match the whole path, `*`
//! also matches `/` (so `*.json` selects `1_Pooling/config.json` too), and a glob ending in `/`
//! selects everything below that folder.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::HubError;

/// A compiled `include`/`exclude` pair.
#[derive(Clone, Debug)]
pub struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Selection {
    /// Compile the globs of model `repo`; an empty `include` selects every file.
    pub fn new(repo: &str, include: &[String], exclude: &[String]) -> Result<Self, HubError> {
        let include = if include.is_empty() {
            None
        } else {
            Some(compile(repo, include)?)
        };
        Ok(Self {
            include,
            exclude: compile(repo, exclude)?,
        })
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(path)) && !self.exclude.is_match(path)
    }
}

fn compile(repo: &str, globs: &[String]) -> Result<GlobSet, HubError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let pattern = if glob.ends_with('/') {
            format!("{glob}*")
        } else {
            glob.clone()
        };
        let compiled = Glob::new(&pattern).map_err(|source| HubError::BadGlob {
            repo: repo.to_owned(),
            glob: glob.clone(),
            source,
        })?;
        builder.add(compiled);
    }
    builder.build().map_err(|source| HubError::BadGlob {
        repo: repo.to_owned(),
        glob: globs.join(", "),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(include: &[&str], exclude: &[&str]) -> Selection {
        let owned = |globs: &[&str]| globs.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>();
        Selection::new("r", &owned(include), &owned(exclude)).unwrap()
    }

    #[test]
    fn empty_include_selects_everything_but_the_excluded() {
        let s = selection(&[], &["original/*"]);
        assert!(s.matches("config.json"));
        assert!(!s.matches("original/consolidated.pth"));
    }

    #[test]
    fn star_crosses_folders_like_hf_download() {
        let s = selection(&["*.json", "tokenizer*"], &[]);
        assert!(s.matches("1_Pooling/config.json"));
        assert!(s.matches("tokenizer.json"));
        assert!(!s.matches("model.safetensors"));
    }

    #[test]
    fn trailing_slash_selects_a_folder() {
        let s = selection(&["onnx/"], &[]);
        assert!(s.matches("onnx/model.onnx"));
        assert!(!s.matches("model.onnx"));
    }

    #[test]
    fn bad_glob_names_the_glob() {
        let err = Selection::new("r", &["a[".to_owned()], &[]).unwrap_err();
        assert!(err.to_string().contains("`a[`"), "{err}");
    }
}
