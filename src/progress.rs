//! Progress reporting from the library to whoever draws it.
//!
//! The library never draws progress bars itself: it calls a [`Reporter`], and the CLI decides
//! whether that becomes an indicatif bar (on a terminal) or nothing at all.

/// Receives progress of long-running work.
///
/// Tasks are identified by the id returned from [`Reporter::start`]; implementations must be
/// cheap, because transfers call [`Reporter::advance`] for every chunk.
pub trait Reporter: Send + Sync {
    /// A task named `label` starts; `total` is its size in `unit`s, when known.
    fn start(&self, label: &str, total: Option<u64>, unit: Unit) -> usize;
    /// `amount` more units of task `id` are done.
    fn advance(&self, id: usize, amount: u64);
    /// Task `id` is over.
    fn finish(&self, id: usize);
}

/// What a task counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes transferred or hashed.
    Bytes,
    /// Items, such as images resolved.
    Items,
}

/// A reporter that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn start(&self, _label: &str, _total: Option<u64>, _unit: Unit) -> usize {
        0
    }
    fn advance(&self, _id: usize, _amount: u64) {}
    fn finish(&self, _id: usize) {}
}
