//! The `aisupply` command line: argument parsing, rendering and exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
