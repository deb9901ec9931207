//! Progress bars on stderr, drawn only on a terminal.

use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use aisupply::progress::{Reporter, Unit};

/// indicatif bars behind the library's [`Reporter`] trait.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<ProgressBar>>,
}

impl Bars {
    /// Bars that draw when `enabled` and stderr is a terminal (indicatif checks the latter).
    pub fn new(enabled: bool) -> Self {
        let multi = enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self, id: usize) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(id).cloned()
    }
}

impl Reporter for Bars {
    fn start(&self, label: &str, total: Option<u64>, unit: Unit) -> usize {
        let bar = match &self.multi {
            Some(multi) => multi.add(ProgressBar::new(total.unwrap_or(0))),
            None => ProgressBar::hidden(),
        };
        let template = match unit {
            Unit::Items => "{msg:20} {bar:30} {pos}/{len} ({elapsed})",
            Unit::Bytes => "{msg:20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(label.to_owned());
        let mut bars = self.bars.lock().expect("progress bar list lock");
        bars.push(bar);
        bars.len() - 1
    }

    fn advance(&self, id: usize, amount: u64) {
        if let Some(bar) = self.bar(id) {
            bar.inc(amount);
        }
    }

    fn finish(&self, id: usize) {
        if let Some(bar) = self.bar(id) {
            bar.finish_and_clear();
        }
    }
}
