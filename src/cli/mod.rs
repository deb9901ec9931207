//! The command line: argument parsing, output, error rendering and exit codes.
//!
//! Exit codes are the same for every command: 0 success, 1 verification failed, 2 the command
//! could not do its job. Results go to stdout; messages, errors and progress go to stderr.

mod init;
mod lock;
mod mirror;
mod models_mirror;
mod pin;
mod progress;
mod pull;
mod render;
mod scan;
mod verify;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use aisupply::config::{self, Config};
use aisupply::registry::auth::CredentialStore;
use aisupply::registry::{Client, ClientOptions};

/// Pin, verify and mirror the container images and model weights of AI deployments.
#[derive(Debug, Parser)]
#[command(name = "aisupply", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
struct Global {
    /// The config file
    #[arg(long, global = true, value_name = "PATH", default_value = config::FILE_NAME)]
    config: PathBuf,
    /// The lockfile [default: aisupply.lock beside the config]
    #[arg(long, global = true, value_name = "PATH")]
    lockfile: Option<PathBuf>,
    /// How to print the result
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print only the result and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Explain what happens; repeat for more detail
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Never draw progress bars
    #[arg(long, global = true)]
    no_progress: bool,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable text
    Text,
    /// One JSON document on stdout
    Json,
    /// SARIF 2.1.0, for code scanning (`scan` and `verify`; other commands print text)
    Sarif,
    /// GitHub workflow annotations (`scan` and `verify`; other commands print text)
    Github,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter aisupply.toml from the image references of the repository
    Init(init::InitArgs),
    /// Resolve every entry of aisupply.toml and write aisupply.lock
    Lock(lock::LockArgs),
    /// Check that the lock matches the config and still resolves (the CI gate)
    Verify(verify::VerifyArgs),
    /// Copy every locked image into a registry or an OCI layout, digests unchanged
    Mirror(mirror::MirrorArgs),
    /// Download locked model files, verified, into the Hugging Face cache or a directory
    Pull(pull::PullArgs),
    /// Judge Trivy and Grype reports of the locked images by the `[scan]` policy
    Scan(scan::ScanArgs),
    /// Rewrite image references in Dockerfiles, compose and Kubernetes files to locked digests
    Pin(pin::PinArgs),
}

/// What a command that ran to the end concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Exit code 0.
    Success,
    /// Exit code 1: verification failed.
    Failed,
    /// Exit code 2: bad input, already reported with the rest of the result.
    Invalid,
}

/// Whether the raw arguments ask for JSON output, for errors found before they are parsed.
fn wants_json() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .any(|pair| pair[0] == "--format" && pair[1] == "json")
        || args.iter().any(|a| a == "--format=json")
}

/// Run the command line and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--format json` promises JSON on stdout, even when the arguments are wrong.
            if e.use_stderr() && wants_json() {
                let doc = serde_json::json!({
                    "error": {
                        "message": e.kind().to_string(),
                        "causes": [e.to_string().trim()],
                        "hint": "run `aisupply --help` for the commands and flags",
                    }
                });
                print_result(&format!("{doc:#}\n"));
            }
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(&cli.global);

    // Commands that read local files need no worker threads; sparing them keeps short runs
    // (a CI gate on a scan report) as small as the tools they replace.
    let mut builder = match cli.command {
        Command::Scan(_) | Command::Pin(_) | Command::Init(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report_error(&cli.global, &anyhow::Error::new(e)),
    };
    let result = runtime.block_on(run(cli.command, &cli.global));
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Invalid) => ExitCode::from(2),
        Err(e) => report_error(&cli.global, &e),
    }
}

async fn run(command: Command, global: &Global) -> anyhow::Result<Outcome> {
    match command {
        Command::Init(args) => init::run(&args, global),
        Command::Lock(args) => lock::run(args, global).await,
        Command::Verify(args) => verify::run(args, global).await,
        Command::Mirror(args) => mirror::run(args, global).await,
        Command::Pull(args) => pull::run(args, global).await,
        Command::Scan(args) => scan::run(&args, global),
        Command::Pin(args) => pin::run(&args, global),
    }
}

impl Global {
    /// The lockfile path: `--lockfile`, else `aisupply.lock` beside the config.
    fn lockfile_path(&self) -> PathBuf {
        self.lockfile.clone().unwrap_or_else(|| {
            let dir = self.config.parent().unwrap_or(Path::new(""));
            dir.join(aisupply::lock::FILE_NAME)
        })
    }

    fn load_config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }

    fn progress(&self) -> progress::Bars {
        progress::Bars::new(!self.quiet && !self.no_progress)
    }
}

/// A registry client configured from the config and the user's Docker credentials.
fn registry_client(config: &Config) -> anyhow::Result<Client> {
    Ok(Client::new(ClientOptions {
        registries: config.registries.clone(),
        credentials: CredentialStore::from_env()?,
        retry: aisupply::registry::retry::RetryPolicy::default(),
        timeout: http_timeout()?,
    })?)
}

/// A registry client for commands that work from the lock alone (`mirror`, `pull --from`):
/// registry settings come from the config at `config_path` when there is one.
fn registry_client_for_lock(config_path: &Path) -> anyhow::Result<Client> {
    match Config::load(config_path) {
        Ok(config) => registry_client(&config),
        Err(aisupply::config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let empty = Config::parse(Path::new(""), "").expect("an empty config is valid");
            registry_client(&empty)
        }
        Err(e) => Err(e.into()),
    }
}

/// `AISUPPLY_HTTP_TIMEOUT`: seconds one registry request may take.
fn http_timeout() -> anyhow::Result<Option<std::time::Duration>> {
    let Some(value) = std::env::var_os("AISUPPLY_HTTP_TIMEOUT") else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    match value.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(std::time::Duration::from_secs(seconds))),
        _ => anyhow::bail!(
            "`AISUPPLY_HTTP_TIMEOUT={value}` is not a number of seconds; set it to a whole \
             number such as `30`, or unset it for the default of 20"
        ),
    }
}

/// Write the result on stdout; a closed pipe (`| head`) is not an error.
fn print_result(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Log lines on stderr: warnings by default; with `-v`, aisupply's own steps; with `-vv`, the
/// HTTP stack's as well. Colour only on a terminal, and never with `NO_COLOR`.
fn init_tracing(global: &Global) {
    use std::io::IsTerminal as _;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt as _;

    let (ours, others) = match global.verbose {
        0 if global.quiet => (LevelFilter::ERROR, LevelFilter::ERROR),
        0 => (LevelFilter::WARN, LevelFilter::WARN),
        1 => (LevelFilter::DEBUG, LevelFilter::WARN),
        _ => (LevelFilter::TRACE, LevelFilter::DEBUG),
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(others)
        .with_target("aisupply", ours);
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(ansi)
        .finish()
        .with(targets);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Print `error:`, the `caused by:` chain and a `hint:`, and exit with 2.
fn report_error(global: &Global, error: &anyhow::Error) -> ExitCode {
    let hint = render::hint_for(error);
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "error": {
                "message": error.to_string(),
                "causes": causes,
                "hint": hint,
            }
        });
        print_result(&format!("{doc:#}\n"));
    }
    if global.format == Format::Github {
        let message = match &hint {
            Some(hint) => format!("{error}\nhint: {hint}"),
            None => error.to_string(),
        };
        print_result(&aisupply::report::github::error(&message));
    }
    let mut text = format!("error: {error}\n");
    for cause in &causes {
        for (i, line) in cause.lines().enumerate() {
            let lead = if i == 0 { "  caused by: " } else { "    " };
            let _ = writeln!(text, "{lead}{line}");
        }
    }
    if let Some(hint) = hint {
        let _ = writeln!(text, "  hint: {hint}");
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    ExitCode::from(2)
}
