//! The Hub stand-in of the tests (`tests/common/hub.rs`) as a program, for
//! `scripts/bench-pull.sh`: it serves the real all-MiniLM-L6-v2 and, for each
//! `--lfs REPO=PATH`, a repository holding PATH as its LFS `model.safetensors`. It prints
//! `HF_ENDPOINT=<url>` and serves until its standard input closes.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program that talks to a script

#[path = "../tests/common/hub.rs"]
#[allow(dead_code)]
mod hub;

use std::io::{Read as _, Write as _};
use std::path::Path;

fn main() {
    let mut repos = vec![hub::minilm_repo()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        let Some((repo, path)) = value.split_once('=').filter(|_| arg == "--lfs") else {
            eprintln!("usage: hub_standin [--lfs ORG/NAME=PATH]...");
            std::process::exit(2);
        };
        let weights = hub::HubFile::disk("model.safetensors", Path::new(path));
        repos.push(hub::HubRepo::new(repo, vec![weights]));
    }

    let server = hub::HubStandIn::start(repos);
    println!("HF_ENDPOINT={}", server.url());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
