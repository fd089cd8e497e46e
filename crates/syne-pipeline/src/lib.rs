//! `syne-pipeline`: the whole continual pre-training run as a library.
//!
//! [`Pipeline`] runs a typed [`syne_recipe::Recipe`] step by step — synthesise → prepare → plan
//! → annotate (topics, perplexity, held-out sets) → train on the mixture → evaluate before and
//! after → manifest — each step skipped when its output is complete, so a killed run continues
//! where it stopped. Progress and messages go through a [`RunObserver`] (the `syne` binary draws
//! indicatif bars; [`Quiet`] discards them). The other whole-command operations of the binary
//! live here too, one module each: [`check`] (`syne plan --check`, run before every run), [`eval`] (`syne eval`), [`synth`] (`syne synth`), [`topics`]
//! (classifier training, MMLU seeds, LLM labelling, the topic export of a finished run),
//! [`demo`] (scaling the demo recipe), [`sweep`] (surrogate ablations sharing their common work), [`inspect`], [`megatron`] (the ordered export for
//! Megatron-LM).
//!
//! # Example
//!
//! ```no_run
//! use syne_pipeline::{Pipeline, PipelineOptions, Quiet};
//! use syne_recipe::Recipe;
//!
//! let recipe = Recipe::load(std::path::Path::new("recipes/demo.toml"))?;
//! let manifest = Pipeline::new(recipe, PipelineOptions { threads: 2, cpu: true, progress: false }).run(&mut Quiet)?;
//! println!("{} tokens in {} steps", manifest.train.tokens, manifest.train.steps);
//! # Ok::<(), syne_pipeline::PipelineError>(())
//! ```

#![warn(missing_docs)]

pub mod annotate;
pub mod cache;
pub mod check;
pub mod demo;
pub mod device;
pub mod error;
pub mod eval;
mod generator;
pub mod inspect;
pub mod megatron;
pub mod observer;
pub mod run;
pub mod sweep;
pub mod synth;
pub mod tools;
pub mod topics;

pub use device::torch_device;
pub use error::{PipelineError, Result};
pub use generator::LocalGenerator;
pub use observer::{Progress, Quiet, RunObserver, TrainProgress, Unit};
pub use run::{Pipeline, PipelineOptions};
