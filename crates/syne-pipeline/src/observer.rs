//! How a run reports what it does: lines ([`RunObserver::say`]) and progress of long tasks
//! ([`RunObserver::progress`]). The library never draws anything itself; the CLI implements the
//! observer with indicatif bars, tests with [`Quiet`].

use syne_train::trainer::{StepMetrics, TrainObserver};
use syne_train::validation::ValidationReport;

/// The progress of one long task. Shared with worker threads, so every method takes `&self`.
pub trait Progress: Send + Sync {
    /// Units done so far.
    fn set_position(&self, done: u64);
    /// `n` more units done.
    fn inc(&self, n: u64);
    /// A short status after the bar (loss, counts ...).
    fn set_message(&self, message: String);
    /// A line printed above the bar.
    fn println(&self, line: String);
    /// The task is over (the bar goes away).
    fn finish(&self);
}

/// What a task counts, for the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Corpus documents.
    Documents,
    /// Training tokens.
    Tokens,
    /// Requests to a generator.
    Requests,
    /// Benchmark questions.
    Questions,
    /// Packed training sequences.
    Sequences,
}

impl Unit {
    /// The plural noun.
    pub fn noun(self) -> &'static str {
        match self {
            Unit::Documents => "documents",
            Unit::Tokens => "tokens",
            Unit::Requests => "requests",
            Unit::Questions => "questions",
            Unit::Sequences => "sequences",
        }
    }
}

/// Receives a run's lines and starts its progress displays.
pub trait RunObserver {
    /// A line about what a step did or found (counts of skipped records, files written ...).
    fn say(&mut self, line: &str);
    /// A long task begins: `total` units (`None`: unknown), described by `what`.
    fn progress(&mut self, what: &str, total: Option<u64>, unit: Unit) -> Box<dyn Progress>;
}

/// An observer that discards everything (tests, scripts).
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn set_position(&self, _: u64) {}
    fn inc(&self, _: u64) {}
    fn set_message(&self, _: String) {}
    fn println(&self, _: String) {}
    fn finish(&self) {}
}

impl RunObserver for Quiet {
    fn say(&mut self, _: &str) {}
    fn progress(&mut self, _: &str, _: Option<u64>, _: Unit) -> Box<dyn Progress> {
        Box::new(Quiet)
    }
}

/// The trainer's observer over a [`Progress`]: tokens as the position, loss, learning rate and
/// throughput as the message, each validation as a line (shared by `syne train` and `syne run`).
pub struct TrainProgress(pub Box<dyn Progress>);

impl TrainObserver for TrainProgress {
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.set_position(m.tokens);
        self.0.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", m.loss, m.lr, m.tokens_per_s));
    }

    fn on_validation(&mut self, v: &ValidationReport) {
        let parts: Vec<String> =
            v.domains.iter().map(|d| format!("{} loss {:.4} ppl {:.2} bpc {:.3}", d.name, d.loss, d.perplexity, d.bits_per_char)).collect();
        self.0.println(format!("validation at {} tokens: {}", v.tokens, parts.join("; ")));
    }
}
