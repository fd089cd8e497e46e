//! The library's observer drawn with indicatif: lines on stderr prefixed by the command, one
//! bar per long task (hidden with `--no-progress`).

use indicatif::{ProgressBar, ProgressStyle};
use syne_pipeline::{Progress, RunObserver, Unit};

/// Draws bars and prints lines for one command (`prefix`: `syne run`, `syne demo` ...).
pub struct Bars {
    prefix: &'static str,
    draw: bool,
}

impl Bars {
    /// An observer for `prefix`; `draw = false` prints the lines only.
    pub fn new(prefix: &'static str, draw: bool) -> Bars {
        Bars { prefix, draw }
    }
}

/// An indicatif bar as the library's [`Progress`].
struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_position(&self, done: u64) {
        self.0.set_position(done);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_message(&self, message: String) {
        self.0.set_message(message);
    }
    fn println(&self, line: String) {
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl RunObserver for Bars {
    fn say(&mut self, line: &str) {
        if self.prefix.is_empty() {
            eprintln!("{line}");
        } else {
            eprintln!("[{}] {line}", self.prefix);
        }
    }

    fn progress(&mut self, what: &str, total: Option<u64>, unit: Unit) -> Box<dyn Progress> {
        let bar = match (self.draw, total) {
            (false, _) => ProgressBar::hidden(),
            (true, Some(n)) => ProgressBar::new(n),
            (true, None) => ProgressBar::new_spinner(),
        };
        let noun = unit.noun();
        let template = match total {
            Some(_) => format!("{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {noun}, eta {{eta}} {{msg}}"),
            None => format!("{{spinner}} {{prefix}} {{pos}} {noun} [{{elapsed_precise}}] {{per_sec}} {{msg}}"),
        };
        bar.set_style(ProgressStyle::with_template(&template).expect("a valid progress template"));
        bar.set_prefix(what.to_string());
        Box::new(Bar(bar))
    }
}
