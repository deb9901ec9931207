//! A real CNCF distribution registry on a loopback port, and skopeo as an independent reader.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `docker-registry serve` process with filesystem storage and deletes enabled, listening on
/// `127.0.0.1` only. It is killed and reaped on drop.
pub struct Registry {
    child: Child,
    host: String,
    dir: TempDir,
    tls: bool,
}

impl Registry {
    /// Starts a registry and waits until it answers `GET /v2/`.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a registry that speaks only HTTPS, with a self-signed certificate made by
    /// `openssl`, and waits until it answers.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("aisupply-registry-")
            .tempdir()
            .expect("temp dir");
        if tls {
            make_certificate(dir.path());
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, config_yaml(dir.path(), tls)).expect("write the registry config");
        let child = spawn(&config, &dir.path().join("registry.log"));

        let mut registry = Self {
            child,
            host: String::new(),
            dir,
            tls,
        };
        registry.host = registry.wait_until_ready();
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where the registry keeps blob `digest` (`sha256:<hex>`) on disk, so that a test can
    /// tamper with it behind the registry's back.
    pub fn blob_file(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The last lines the registry logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits for the registry to log its port and answer on it; returns its host.
    fn wait_until_ready(&mut self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll docker-registry") {
                panic!(
                    "docker-registry exited with {status} while starting:\n{}",
                    self.log_tail()
                );
            }
            let tls = self.tls;
            if let Some(host) = self.logged_host().filter(|host| answers_v2(host, tls)) {
                return host;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Unwinding drops `self`, which kills the process.
        panic!(
            "docker-registry did not answer `GET /v2/` within {START_TIMEOUT:?}:\n{}",
            self.log_tail()
        );
    }

    /// The registry binds port 0 itself and logs the port it got, so no other process can
    /// take the port between our choosing it and the registry binding it.
    fn logged_host(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).ok()?;
        let rest = &log[log.find("listening on 127.0.0.1:")? + "listening on ".len()..];
        let end = rest.find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())?;
        Some(rest[..end].to_owned())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yaml(dir: &Path, tls: bool) -> String {
    let tls = if tls {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        )
    } else {
        String::new()
    };
    format!(
        "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: aisupply-test-secret
{tls}",
        dir.join("data").display()
    )
}

/// A self-signed certificate for 127.0.0.1 in `dir/cert.pem` and `dir/key.pem`.
fn make_certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|err| panic!("start `openssl` (apt-get install openssl): {err}"));
    assert!(
        status.success(),
        "openssl could not make a test certificate"
    );
}

fn spawn(config: &Path, log: &Path) -> Child {
    let log = File::create(log).expect("create the registry log");
    Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| {
            panic!("start `docker-registry` (apt-get install docker-registry): {err}")
        })
}

/// Whether `GET http://HOST/v2/` answers 200; for a TLS registry, whether it answers the plain
/// request with the 400 that Go's HTTPS servers give to plain HTTP.
fn answers_v2(host: &str, tls: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && (response.starts_with("HTTP/1.1 200") || (tls && response.contains(" 400 ")))
}

/// `sha256:` of the exact bytes `skopeo inspect --raw` prints for `HOST/REFERENCE`, where
/// `reference` is `repo:tag` or `repo@sha256:...`.
pub fn skopeo_raw_digest(host: &str, reference: &str) -> String {
    let image = format!("docker://{host}/{reference}");
    let output = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &image,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("start `skopeo` (apt-get install skopeo): {err}"));
    assert!(
        output.status.success(),
        "skopeo inspect --raw {image} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    super::sha256_digest(&output.stdout)
}
