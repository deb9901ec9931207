//! Streaming one file into its partial file, hashing every byte in order as it is written.
//!
//! Bytes arrive on the async side and are handed over a bounded channel to a blocking thread
//! that appends them to the partial file and feeds the hasher, so network, disk and SHA-256 run
//! side by side and the file is never read a second time. A large file is fetched as parallel
//! Range requests of fixed-size chunks; chunks that arrive early wait in memory for the ones
//! before them, and a window of permits bounds how many can wait, so memory stays bounded
//! whatever the file size. The partial file only ever holds a contiguous prefix, which is what
//! makes a killed pull resumable: the next run re-hashes that prefix and asks for the rest.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::future::try_join_all;
use reqwest::{Response, StatusCode, Url};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::client::{Ask, Client, header};
use super::env::redact;
use super::{HubError, io_error};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::registry::retry::is_transient_error;

/// How many received pieces may queue for the writer thread.
const CHANNEL: usize = 64;

/// The read buffer for hashing files on disk.
const READ_BUFFER: usize = 1024 * 1024;

/// A partial download: a file holding a verified-length prefix, and the hash of that prefix.
pub(crate) struct Part {
    path: PathBuf,
    file: File,
    hasher: Hasher,
    len: u64,
}

impl Part {
    /// Open the partial file at `path` for a file of `size` bytes. What a previous run left is
    /// re-hashed, not re-downloaded; a leftover longer than `size` cannot be a prefix and is
    /// dropped. Blocking.
    pub(crate) fn open(path: &Path, size: u64) -> Result<Self, HubError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error("open", path))?;
        let mut len = file.metadata().map_err(io_error("inspect", path))?.len();
        if len > size {
            file.set_len(0).map_err(io_error("truncate", path))?;
            len = 0;
        }
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut buffer = vec![0; READ_BUFFER];
        let mut prefix = 0;
        while prefix < len {
            let n = file.read(&mut buffer).map_err(io_error("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            prefix += n as u64;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            hasher,
            len: prefix,
        })
    }

    /// The bytes already there.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flush the file to disk and return its path and digest. Blocking.
    pub(crate) fn finish(self) -> Result<(PathBuf, Digest), HubError> {
        self.file.sync_all().map_err(io_error("sync", &self.path))?;
        Ok((self.path, self.hasher.finish()))
    }
}

/// One file to fetch from where it is served.
pub(crate) struct Job<'a> {
    pub client: &'a Client,
    pub ask: Ask<'a>,
    pub url: &'a Url,
    /// The locked size: never more bytes than this are accepted.
    pub size: u64,
    /// Parallel Range requests for a large file; 1 streams it in one request.
    pub connections: usize,
    /// The size of one Range request.
    pub chunk: u64,
    /// Called with the number of bytes received.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// How a piece of the file travels to the writer.
struct Piece {
    offset: u64,
    bytes: Vec<Bytes>,
    /// Held until the piece is written, to bound how many chunks wait in memory.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why parallel Range requests stopped.
enum Stop {
    /// The server answered a ranged request with the whole file.
    RangeIgnored,
    Failed(HubError),
}

/// Fetch the rest of `job`'s file into `part`, from `part.len()` to the locked size.
pub(crate) async fn fetch(job: &Job<'_>, mut part: Part) -> Result<Part, HubError> {
    let remaining = job.size - part.len;
    if job.connections > 1 && remaining >= 2 * job.chunk {
        let start = part.len;
        let (back, outcome) = with_writer(part, |tx| parallel(job, start, tx)).await?;
        part = back;
        match outcome {
            Ok(()) if part.len == job.size => return Ok(part),
            Ok(()) => {}
            Err(Stop::RangeIgnored) => {
                tracing::debug!(url = %redact(job.url), "the server ignores Range; one stream instead");
            }
            Err(Stop::Failed(e)) => return Err(e),
        }
    }
    let start = part.len;
    let (part, outcome) = with_writer(part, |tx| sequential(job, start, tx)).await?;
    outcome?;
    Ok(part)
}

/// Run `produce` with a channel whose pieces a blocking thread writes to `part` in order.
async fn with_writer<F, Fut, R>(part: Part, produce: F) -> Result<(Part, R), HubError>
where
    F: FnOnce(mpsc::Sender<Piece>) -> Fut,
    Fut: Future<Output = R>,
{
    let (tx, rx) = mpsc::channel(CHANNEL);
    let path = part.path.clone();
    let writer = tokio::task::spawn_blocking(move || write_in_order(part, rx));
    let outcome = produce(tx).await;
    let part = writer
        .await
        .expect("the writer thread panicked")
        .map_err(io_error("write", &path))?;
    Ok((part, outcome))
}

fn write_in_order(mut part: Part, mut rx: mpsc::Receiver<Piece>) -> io::Result<Part> {
    let mut waiting: BTreeMap<u64, Piece> = BTreeMap::new();
    while let Some(piece) = rx.blocking_recv() {
        waiting.insert(piece.offset, piece);
        while let Some(piece) = waiting.remove(&part.len) {
            for bytes in &piece.bytes {
                part.append(bytes)?;
            }
        }
    }
    Ok(part)
}

fn writer_gone() -> HubError {
    HubError::Io {
        action: "write",
        path: PathBuf::from("(partial file)"),
        source: io::Error::new(io::ErrorKind::BrokenPipe, "the writer stopped"),
    }
}

fn too_long(job: &Job<'_>) -> HubError {
    HubError::BadResponse {
        url: redact(job.url),
        message: format!("it serves more than the locked {} bytes", job.size),
    }
}

/// One request for the rest of the file, resumed with `Range` where a body breaks off.
async fn sequential(job: &Job<'_>, start: u64, tx: mpsc::Sender<Piece>) -> Result<(), HubError> {
    let policy = job.client.retry();
    let mut offset = start;
    let mut failures = 0;
    while offset < job.size {
        let range = (offset > 0).then_some((offset, None));
        let mut response = job.client.get(job.ask, job.url, range).await?;
        // A 200 to a ranged request is the whole file again: skip what we already have.
        let mut skip = if response.status() == StatusCode::PARTIAL_CONTENT {
            check_content_range(job, &response, offset)?;
            0
        } else {
            offset
        };

        let before = offset;
        loop {
            match response.chunk().await {
                Ok(Some(mut bytes)) => {
                    if skip > 0 {
                        let n = skip.min(bytes.len() as u64);
                        bytes = bytes.slice(usize::try_from(n).unwrap_or(usize::MAX)..);
                        skip -= n;
                    }
                    let len = bytes.len() as u64;
                    if len == 0 {
                        continue;
                    }
                    if offset + len > job.size {
                        return Err(too_long(job));
                    }
                    let piece = Piece {
                        offset,
                        bytes: vec![bytes],
                        _permit: None,
                    };
                    tx.send(piece).await.map_err(|_| writer_gone())?;
                    offset += len;
                    (job.progress)(len);
                }
                Ok(None) => break,
                Err(error) if is_transient_error(&error) => {
                    tracing::debug!(url = %redact(job.url), offset, %error, "the body broke off");
                    break;
                }
                Err(source) => {
                    return Err(HubError::Transport {
                        url: redact(job.url),
                        source: source.without_url(),
                    });
                }
            }
        }

        if offset >= job.size {
            break;
        }
        failures = if offset > before { 0 } else { failures + 1 };
        if failures >= policy.attempts {
            return Err(incomplete(job, policy.attempts));
        }
        tokio::time::sleep(policy.delay(failures, None)).await;
    }
    Ok(())
}

fn incomplete(job: &Job<'_>, attempts: u32) -> HubError {
    HubError::Incomplete {
        repo: job.ask.repo.to_owned(),
        path: job.ask.path.unwrap_or_default().to_owned(),
        attempts,
    }
}

/// Chunks from `start` to the end, `connections` at a time, written in order.
async fn parallel(job: &Job<'_>, start: u64, tx: mpsc::Sender<Piece>) -> Result<(), Stop> {
    let mut chunks = Vec::new();
    let mut a = start;
    while a < job.size {
        let b = (a + job.chunk).min(job.size);
        chunks.push((a, b));
        a = b;
    }
    // Permits are taken before a chunk index is, so the lowest unwritten chunk always holds
    // one: the window can fill up but never deadlock. One chunk in flight per connection, and
    // one more ready to write while the writer is busy, bound the memory to that many chunks.
    let window = Arc::new(Semaphore::new(job.connections + 1));
    let next = AtomicUsize::new(0);
    let worker = || async {
        loop {
            let permit = Arc::clone(&window)
                .acquire_owned()
                .await
                .expect("the window is never closed");
            let Some(&(a, b)) = chunks.get(next.fetch_add(1, Ordering::SeqCst)) else {
                return Ok(());
            };
            let bytes = fetch_range(job, a, b).await?;
            let piece = Piece {
                offset: a,
                bytes,
                _permit: Some(permit),
            };
            tx.send(piece)
                .await
                .map_err(|_| Stop::Failed(writer_gone()))?;
        }
    };
    let workers = (0..job.connections.min(chunks.len())).map(|_| worker());
    try_join_all(workers).await.map(|_| ())
}

/// Bytes `a..b` of the file, retried until complete.
async fn fetch_range(job: &Job<'_>, a: u64, b: u64) -> Result<Vec<Bytes>, Stop> {
    let policy = job.client.retry();
    let mut failures = 0;
    loop {
        let mut response = job
            .client
            .get(job.ask, job.url, Some((a, Some(b - 1))))
            .await
            .map_err(Stop::Failed)?;
        if response.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Stop::RangeIgnored);
        }
        check_content_range(job, &response, a).map_err(Stop::Failed)?;

        let mut got = Vec::new();
        let mut len = 0;
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    len += bytes.len() as u64;
                    if len > b - a {
                        return Err(Stop::Failed(too_long(job)));
                    }
                    got.push(bytes);
                }
                Ok(None) => break,
                Err(error) if is_transient_error(&error) => break,
                Err(source) => {
                    return Err(Stop::Failed(HubError::Transport {
                        url: redact(job.url),
                        source: source.without_url(),
                    }));
                }
            }
        }
        if len == b - a {
            (job.progress)(len);
            return Ok(got);
        }
        failures += 1;
        if failures >= policy.attempts {
            return Err(Stop::Failed(incomplete(job, policy.attempts)));
        }
        tokio::time::sleep(policy.delay(failures, None)).await;
    }
}

/// A 206 must start where we asked.
fn check_content_range(job: &Job<'_>, response: &Response, start: u64) -> Result<(), HubError> {
    let served = header(response.headers(), "content-range").and_then(|v| {
        let range = v.strip_prefix("bytes ")?;
        range.split(['-', '/']).next()?.trim().parse::<u64>().ok()
    });
    if served == Some(start) {
        Ok(())
    } else {
        Err(HubError::BadResponse {
            url: redact(job.url),
            message: format!(
                "asked for bytes from {start}, it sent a range starting at {served:?}"
            ),
        })
    }
}

/// An exclusive lock on one partial file, held from the first byte written to the rename of the
/// verified file. Two pulls into one cache would otherwise append to the same partial file, each
/// hashing only its own stream, and place interleaved bytes as verified.
pub(crate) struct PartLock {
    _file: File,
}

/// Lock the partial file at `path`, creating it, and wait while another pull holds it. The
/// holder may rename the file (placed) or remove it (mismatch) before letting go; the lock is
/// then on a file no longer at `path`, so it is taken again on what is there now. Blocking.
pub(crate) fn lock_part(path: &Path) -> Result<PartLock, HubError> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error("open", path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::info!(
                    path = %path.display(),
                    "another pull is downloading this file; waiting for it to finish"
                );
                file.lock().map_err(io_error("lock", path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", path)(e)),
        }
        if is_same_file(&file, path) {
            return Ok(PartLock { _file: file });
        }
    }
}

fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The SHA-256 of the file at `path`, calling `progress` with each block hashed. Blocking.
pub(crate) fn hash_file(path: &Path, progress: &dyn Fn(u64)) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
        progress(n as u64);
    }
}

/// Remove a partial file, ignoring one that is already gone.
pub(crate) fn discard(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial download");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_is_rehashed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        fs::write(&path, b"hello ").unwrap();

        let mut part = Part::open(&path, 11).unwrap();
        assert_eq!(part.len(), 6);
        part.append(b"world").unwrap();
        let (_, digest) = part.finish().unwrap();

        assert_eq!(digest, Digest::sha256(b"hello world"));
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
    }

    #[test]
    fn a_partial_file_longer_than_the_file_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        fs::write(&path, b"far too long").unwrap();
        let part = Part::open(&path, 3).unwrap();
        assert_eq!(part.len(), 0);
    }

    #[test]
    fn a_locked_partial_file_cannot_be_locked_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let held = lock_part(&path).unwrap();
        let other = File::open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    #[test]
    fn pieces_are_written_in_offset_order() {
        let dir = tempfile::tempdir().unwrap();
        let part = Part::open(&dir.path().join("part"), 6).unwrap();
        let (tx, rx) = mpsc::channel(8);
        for (offset, text) in [(4, "ef"), (0, "ab"), (2, "cd")] {
            let piece = Piece {
                offset,
                bytes: vec![Bytes::from(text)],
                _permit: None,
            };
            tx.try_send(piece).ok().unwrap();
        }
        drop(tx);
        let part = write_in_order(part, rx).unwrap();
        let (_, digest) = part.finish().unwrap();
        assert_eq!(digest, Digest::sha256(b"abcdef"));
    }
}
