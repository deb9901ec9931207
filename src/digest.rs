//! Content digests (`sha256:<hex>`): parsing, streaming computation and comparison.
//!
//! Every manifest, blob and file aisupply receives is hashed here and compared with the digest
//! that names it. A digest is never taken from a server on trust when there are bytes to hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A hash algorithm allowed in a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm of every registry and of the Hugging Face Hub.
    Sha256,
    /// SHA-512, registered by the OCI image specification.
    Sha512,
}

impl Algorithm {
    /// The name used before the colon.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The number of lowercase hex characters of an encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// A validated content digest such as `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a valid digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest `{0}` has no algorithm prefix; expected `sha256:<64 hex characters>`")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256 or sha512.
    #[error("digest `{0}` uses an unsupported algorithm; expected `sha256` or `sha512`")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length or characters.
    #[error("digest `{digest}` must have {expected} lowercase hex characters after `{algorithm}:`")]
    BadEncoding {
        /// The digest as given.
        digest: String,
        /// The algorithm name.
        algorithm: &'static str,
        /// The required number of hex characters.
        expected: usize,
    },
}

impl Digest {
    /// The digest of `bytes` with SHA-256.
    pub fn sha256(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The digest of `bytes` with this digest's algorithm.
    #[must_use]
    pub fn compute_like(&self, bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(self.algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Build a digest from an algorithm and its lowercase hex encoding.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        format!("{}:{hex}", algorithm.name()).parse()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Check that `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), Mismatch> {
        let computed = self.compute_like(bytes);
        if computed == *self {
            Ok(())
        } else {
            Err(Mismatch {
                expected: self.clone(),
                computed,
            })
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_owned()));
        };
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::UnsupportedAlgorithm(s.to_owned())),
        };
        let well_formed = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(DigestError::BadEncoding {
                digest: s.to_owned(),
                algorithm: algorithm.name(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bytes that did not hash to the digest that names them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("content does not match its digest\n  expected: {expected}\n  computed: {computed}")]
pub struct Mismatch {
    /// The digest the content was supposed to have.
    pub expected: Digest,
    /// The digest of the bytes actually received.
    pub computed: Digest,
}

/// A streaming hasher for either algorithm.
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        Self(match algorithm {
            Algorithm::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Inner::Sha512(sha2::Sha512::new()),
        })
    }

    /// Feed more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Inner::Sha256(h) => h.update(bytes),
            Inner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.0 {
            Inner::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Inner::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// Pass `inner` through while hashing it, and compare with `expected` before the last byte is
/// let go: when `size` is known, the chunk that completes it is held until the digest is
/// checked (a consumer that stops reading at `size` bytes, as an HTTP body with a
/// `Content-Length` does, must never get the whole of a tampered blob); otherwise when `inner`
/// ends. On a mismatch, or a body longer or shorter than `size`, the stream ends with an
/// `InvalidData` error instead of the chunk, and a mismatch is also stored in `mismatch`, so
/// that the consumer can report it after its own failure.
pub fn verify_stream<S>(
    inner: S,
    expected: Digest,
    size: Option<u64>,
    mismatch: std::sync::Arc<std::sync::Mutex<Option<Mismatch>>>,
    mut on_bytes: impl FnMut(u64) + Send + 'static,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    use futures_util::StreamExt as _;
    let state = (inner, Some(Hasher::new(expected.algorithm())), 0u64);
    futures_util::stream::unfold(state, move |(mut inner, hasher, seen)| {
        let expected = expected.clone();
        let mismatch = std::sync::Arc::clone(&mismatch);
        async move {
            let mut hasher = hasher?;
            let invalid =
                |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
            let check = |hasher: Hasher| {
                let computed = hasher.finish();
                if computed == expected {
                    return Ok(());
                }
                let found = Mismatch {
                    expected: expected.clone(),
                    computed,
                };
                *mismatch.lock().expect("mismatch slot") = Some(found.clone());
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, found))
            };
            match inner.next().await {
                Some(Ok(bytes)) => {
                    let seen = seen + bytes.len() as u64;
                    if size.is_some_and(|size| seen > size) {
                        let error = invalid(format!("`{expected}` is longer than its size"));
                        return Some((Err(error), (inner, None, seen)));
                    }
                    hasher.update(&bytes);
                    if size == Some(seen) {
                        return match check(hasher) {
                            Ok(()) => Some((Ok(bytes), (inner, None, seen))),
                            Err(e) => Some((Err(e), (inner, None, seen))),
                        };
                    }
                    Some((Ok(bytes), (inner, Some(hasher), seen)))
                }
                Some(Err(e)) => Some((Err(e), (inner, None, seen))),
                None => match (size, check(hasher)) {
                    (_, Err(e)) => Some((Err(e), (inner, None, seen))),
                    (Some(size), Ok(())) if seen != size => {
                        let error = invalid(format!("`{expected}` is shorter than its size"));
                        Some((Err(error), (inner, None, seen)))
                    }
                    _ => None,
                },
            }
        }
    })
    .inspect(move |item| {
        if let Ok(bytes) = item {
            on_bytes(bytes.len() as u64);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY);
    }

    #[test]
    fn parse_and_display_round_trip() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
    }

    #[test]
    fn rejects_wrong_length_uppercase_and_unknown_algorithms() {
        assert!(matches!(
            "sha256:abc".parse::<Digest>(),
            Err(DigestError::BadEncoding { .. })
        ));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert!(matches!(
            upper.parse::<Digest>(),
            Err(DigestError::BadEncoding { .. })
        ));
        assert!(matches!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "e3b0c442".parse::<Digest>(),
            Err(DigestError::MissingAlgorithm(_))
        ));
    }

    #[test]
    fn verify_reports_expected_and_computed() {
        let d: Digest = EMPTY.parse().unwrap();
        assert!(d.verify(b"").is_ok());
        let err = d.verify(b"x").unwrap_err();
        assert_eq!(err.expected, d);
        assert_eq!(err.computed, Digest::sha256(b"x"));
    }

    fn chunks(
        data: &'static [u8],
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin {
        futures_util::stream::iter(data.chunks(4).map(|c| Ok(bytes::Bytes::from_static(c))))
    }

    #[tokio::test]
    async fn verify_stream_passes_matching_bytes_through() {
        use futures_util::StreamExt as _;
        let slot = std::sync::Arc::default();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&seen);
        let out: Vec<_> = verify_stream(
            chunks(b"hello streaming world"),
            Digest::sha256(b"hello streaming world"),
            None,
            std::sync::Arc::clone(&slot),
            move |n| {
                counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
        )
        .collect()
        .await;
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 21);
        assert!(slot.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn verify_stream_ends_with_an_error_on_a_mismatch() {
        use futures_util::StreamExt as _;
        let slot = std::sync::Arc::default();
        let out: Vec<_> = verify_stream(
            chunks(b"tampered bytes"),
            Digest::sha256(b"original bytes"),
            None,
            std::sync::Arc::clone(&slot),
            |_| {},
        )
        .collect()
        .await;
        let last = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), std::io::ErrorKind::InvalidData);
        let found = slot.lock().unwrap().clone().unwrap();
        assert_eq!(found.computed, Digest::sha256(b"tampered bytes"));
    }

    /// Regression: an HTTP body with a Content-Length stops reading at the last byte, so the
    /// check at the end of the stream never ran and a tampered blob went out whole.
    #[tokio::test]
    async fn verify_stream_withholds_the_last_chunk_of_a_tampered_sized_body() {
        use futures_util::StreamExt as _;
        let slot = std::sync::Arc::default();
        let data = b"tampered bytes";
        let mut stream = Box::pin(verify_stream(
            chunks(data),
            Digest::sha256(b"original bytes"),
            Some(data.len() as u64),
            std::sync::Arc::clone(&slot),
            |_| {},
        ));
        let mut passed = 0;
        // Read exactly `size` bytes' worth of items, as a sized consumer does.
        while passed < data.len() {
            match stream.next().await.unwrap() {
                Ok(bytes) => passed += bytes.len(),
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                    break;
                }
            }
        }
        assert!(passed < data.len(), "the last chunk was withheld");
        assert!(slot.lock().unwrap().is_some());
    }

    #[tokio::test]
    async fn verify_stream_rejects_bodies_of_the_wrong_size() {
        use futures_util::StreamExt as _;
        for (data, size) in [(&b"abcdefgh"[..], 4u64), (&b"abcd"[..], 8)] {
            let data: &'static [u8] = data;
            let out: Vec<_> = verify_stream(
                chunks(data),
                Digest::sha256(data),
                Some(size),
                std::sync::Arc::default(),
                |_| {},
            )
            .collect()
            .await;
            assert!(out.last().unwrap().is_err(), "size {size}");
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256(b"hello world"));
    }
}
