//! `syne-synth`: synthetic scientific and code QA for stage II of the recipe, in one crash-safe,
//! resumable run (`syne synth CONFIG`).
//!
//! - [`seeds`]: scientific pages assigned to the paper's nine disciplines (keyword rules),
//!   cut into snippets; programming problems as code seeds.
//! - prompts: the paper's templates (`prompts/science.txt`, `prompts/code.txt`, overridable).
//! - [`client`]: any OpenAI-compatible server, several endpoints, a concurrency limit, retries
//!   with exponential backoff and jitter on 429/5xx/timeouts/dropped connections/malformed JSON.
//! - [`journal`]: content-addressed requests, one appended line per finished request; a restarted
//!   run neither loses nor repeats one.
//! - [`quality`]: `[Problem]`/`[Solution]` parsing, truncation and malformed-output rejection,
//!   length and language filters, MinHash near-dedup, n-gram decontamination against benchmark
//!   test items — all counted by reason.
//! - [`run`]: the whole run, output in seed order with provenance, and its summary.
//!
//! ```
//! use syne_synth::quality::{parse, Decontaminator, Reject};
//! let answer = "A ball is dropped from 20 m. How long does it fall?\n\n[Solution]\nUse h = g t^2 / 2, so t = 2.0 s.";
//! let pair = parse(answer, Some("stop")).unwrap();
//! assert!(pair.text().starts_with("[Problem]\nA ball"));
//! assert_eq!(parse(answer, Some("length")), Err(Reject::Truncated));
//! let benchmark = Decontaminator::new(["a ball is dropped from 20 m how long does it fall before it hits the ground"], 8);
//! assert!(benchmark.contaminated(&pair.text()));
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod journal;
pub mod quality;
pub mod run;
pub mod seeds;

pub use error::{Result, SynthError};
