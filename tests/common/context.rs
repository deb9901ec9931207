//! [`TestContext`]: one test's working directory, home, servers and runs of the binary.

use std::cell::OnceCell;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::Registry;

/// How long one run of the binary may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Variables of the developer's environment that could change what the binary does.
const SCRUBBED_ENV: &[&str] = &[
    "HF_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "RUST_LOG",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// One test's world: a temp working directory, a temp home (holding `DOCKER_CONFIG`), the
/// servers it started, and runs of the built binary inside them. Dropping it stops the servers
/// and removes the directories.
pub struct TestContext {
    // Fields drop in order: servers stop before their directories go.
    registry: OnceCell<Registry>,
    work: TempDir,
    home: TempDir,
    filters: Vec<(String, String)>,
}

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `128 + N` when killed by signal `N`.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TestContext {
    pub fn new() -> Self {
        let work = temp_dir("aisupply-work-");
        let home = temp_dir("aisupply-home-");
        std::fs::create_dir_all(home.path().join(".docker")).expect("create the test's .docker");
        let filters = filters_for(work.path(), home.path());
        Self {
            registry: OnceCell::new(),
            work,
            home,
            filters,
        }
    }

    /// The working directory the binary runs in.
    pub fn path(&self) -> &Path {
        self.work.path()
    }

    /// `HOME` for the binary.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `DOCKER_CONFIG` for the binary: write a `config.json` here to give it credentials.
    pub fn docker_config(&self) -> PathBuf {
        self.home.path().join(".docker")
    }

    /// A real registry owned by this context, started on first use.
    pub fn registry(&self) -> &Registry {
        self.registry.get_or_init(Registry::start)
    }

    /// Writes `contents` to `path` under the working directory, creating parent directories.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&full, contents)
            .unwrap_or_else(|err| panic!("write `{}`: {err}", full.display()));
    }

    /// Reads `path` under the working directory as UTF-8.
    pub fn read(&self, path: &str) -> String {
        let full = self.path().join(path);
        std::fs::read_to_string(&full)
            .unwrap_or_else(|err| panic!("read `{}`: {err}", full.display()))
    }

    /// Runs `aisupply ARGS...` in the working directory.
    pub fn run(&self, args: &[&str]) -> Output {
        run_to_end(self.command(args))
    }

    /// Runs `aisupply ARGS...` with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        run_to_end(command)
    }

    /// The command [`run`](Self::run) uses, for tests that need to adjust it further.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aisupply"));
        command.args(args).current_dir(self.path());
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        command
            .env("HOME", self.home())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("HF_HOME", self.home().join(".cache/huggingface"))
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env("NO_COLOR", "1");
        command
    }

    /// insta filters that hide what changes between runs: temp paths, ports and durations.
    /// Use as `insta::with_settings!({ filters => ctx.filters() }, { ... })`.
    pub fn filters(&self) -> Vec<(&str, &str)> {
        self.filters
            .iter()
            .map(|(regex, to)| (regex.as_str(), to.as_str()))
            .collect()
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Output {
    /// The form snapshots take: exit code, then stdout, then stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "----- stdout -----\n{}", self.stdout)?;
        write!(f, "----- stderr -----\n{}", self.stderr)
    }
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temp dir")
}

fn filters_for(work: &Path, home: &Path) -> Vec<(String, String)> {
    let mut filters = Vec::new();
    for (dir, name) in [(work, "[TEMP]"), (home, "[HOME]")] {
        let canonical = dir.canonicalize().expect("canonicalize a temp dir");
        filters.push((escape_regex(&canonical.to_string_lossy()), name.to_owned()));
        if canonical != dir {
            filters.push((escape_regex(&dir.to_string_lossy()), name.to_owned()));
        }
    }
    filters.push((
        r"127\.0\.0\.1:\d+".to_owned(),
        "127.0.0.1:[PORT]".to_owned(),
    ));
    filters.push((r"\b\d+(\.\d+)?(ms|s)\b".to_owned(), "[TIME]".to_owned()));
    filters
}

fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Runs `command` with its output captured, killing it after [`RUN_TIMEOUT`].
fn run_to_end(mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {command:?}: {err}"));
    let stdout = Capture::start(child.stdout.take().expect("piped stdout"));
    let stderr = Capture::start(child.stderr.take().expect("piped stderr"));

    let Some(status) = wait_with_timeout(&mut child, RUN_TIMEOUT) else {
        panic!(
            "{command:?} did not finish within {RUN_TIMEOUT:?} and was killed\n\
             ----- stdout -----\n{}\n----- stderr -----\n{}",
            stdout.so_far(),
            stderr.so_far(),
        );
    };
    Output {
        code: exit_code(status),
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// Waits for `child`, or kills it and returns `None` once `timeout` has passed.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A pipe read to its end on a thread, readable so far at any moment.
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .expect("capture lock")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader }
    }

    fn so_far(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().expect("capture lock")).into_owned()
    }

    fn finish(self) -> String {
        self.reader
            .join()
            .expect("the output reader thread panicked");
        String::from_utf8_lossy(&self.bytes.lock().expect("capture lock")).into_owned()
    }
}
