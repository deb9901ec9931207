//! `aisupply init`: write a starter `aisupply.toml` from the image references the repository's
//! Dockerfiles, compose and Kubernetes files use.

use std::fmt::Write as _;

use clap::Args;

use aisupply::config::Config;
use aisupply::lock::write_atomically;
use aisupply::pin::SourceGlobs;
use aisupply::pin::check::unreadable;
use aisupply::pin::starter::{self, Starter};

use super::{Format, Global, Outcome, print_result};

/// Arguments of `aisupply init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing config
    #[arg(long)]
    force: bool,
    /// Print the config instead of writing it
    #[arg(long)]
    stdout: bool,
}

/// The config exists and `--force` was not given.
#[derive(Debug, thiserror::Error)]
#[error("`{}` already exists; nothing was written", .0.display())]
pub struct ConfigExists(std::path::PathBuf);

impl ConfigExists {
    /// How to go ahead anyway.
    pub fn hint() -> String {
        "pass `--force` to replace it, or `--stdout` to print the proposal instead".to_owned()
    }
}

pub fn run(args: &InitArgs, global: &Global) -> anyhow::Result<Outcome> {
    let path = &global.config;
    let exists = path.exists();
    if exists && !args.force && !args.stdout {
        return Err(ConfigExists(path.clone()).into());
    }

    // An existing config's `[sources]` are kept; otherwise the defaults are used and written.
    let sources = exists
        .then(|| Config::load(path).ok().and_then(|c| c.sources))
        .flatten();
    let discovery = super::pin::discover(global, sources.as_ref(), &[])?;
    super::pin::print_problems(global, &discovery);
    let starter = starter::propose(&discovery);
    let text = starter::render(&starter, &SourceGlobs::new(sources.as_ref())?);

    // A file that cannot be read could hide references: write nothing rather than too little.
    let invalid = !discovery.problems.is_empty();
    let write = !args.stdout && !invalid;
    if write {
        anyhow::Context::with_context(write_atomically(path, text.as_bytes()), || {
            format!("cannot write `{}`", path.display())
        })?;
    }

    match global.format {
        Format::Json => {
            let problems: Vec<_> = discovery.problems.iter().map(unreadable).collect();
            let doc = serde_json::json!({
                "config": path,
                "written": write,
                "images": starter.images,
                "unresolved": starter.unresolved,
                "problems": problems,
                "skipped_files": discovery.skipped,
            });
            print_result(&format!("{doc:#}\n"));
        }
        _ if args.stdout => print_result(&text),
        _ => print_summary(global, &starter, write),
    }
    Ok(if invalid {
        Outcome::Invalid
    } else {
        Outcome::Success
    })
}

fn print_summary(global: &Global, starter: &Starter, written: bool) {
    let path = global.config.display();
    let mut out = String::new();
    if !written {
        let _ = writeln!(
            out,
            "nothing was written to {path}: fix the files above (or leave them out with \
             `exclude` under `[sources]`) first"
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
        return;
    }
    for image in &starter.images {
        let _ = writeln!(out, "+ {} {}", image.name, image.reference);
    }
    let _ = writeln!(
        out,
        "{path}: {} image{}, {} unresolved reference{} left as comments",
        starter.images.len(),
        if starter.images.len() == 1 { "" } else { "s" },
        starter.unresolved.len(),
        if starter.unresolved.len() == 1 {
            ""
        } else {
            "s"
        },
    );
    if !global.quiet {
        let _ = writeln!(
            out,
            "next: run `aisupply lock`, then `aisupply pin --write`"
        );
    }
    print_result(&out);
}
