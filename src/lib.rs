//! aisupply secures the supply chain of AI deployments: it pins container images and model
//! weights to content digests, proves in CI that nothing drifted, and copies what is pinned into
//! a site's own registry.
//!
//! This crate is the library core. It never prints and never exits: every operation returns
//! typed results, and long transfers report progress through [`progress::Reporter`]. The
//! `aisupply` binary (`src/main.rs`, `src/cli/`) owns argument parsing and rendering.

pub mod config;
pub mod digest;
pub mod finding;
pub mod hub;
pub mod lock;
pub mod mirror;
pub mod pin;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod scan;
pub mod verify;
