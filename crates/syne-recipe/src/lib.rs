//! `syne-recipe`: the typed schema everything in syne shares, at the bottom of the workspace
//! (serde only, no libtorch).
//!
//! - What a user writes: [`Recipe`], one TOML file with typed sections — [`prepare`]
//!   (`[prepare]`), [`SourceSpec`] (`[sources.NAME]`: one spec for `syne prepare` and the
//!   mixture), stages and mixture, topics and curriculum ([`recipe`]), [`train`] (`[train]`: LR
//!   schedule and AdamW as plain data), [`eval`] (`[eval]`, also the `syne eval` flags) and
//!   [`synth`] (`[synth]`). Defaults are written once, in these types; [`Recipe::resolve`]
//!   anchors every relative path at the recipe's folder once; validation names the key at
//!   fault (`stages[1].groups.syn`).
//! - A sweep of runs ([`sweep`]): a base recipe, a surrogate budget, seeds and variants
//!   (named overrides of dotted recipe keys, listed or as axes), each variant parsed and
//!   validated as a recipe.
//! - What a run records: [`records`] — the run manifest, the mixture's events and state, the
//!   trainer's step metrics and validation reports, evaluation results.
//!
//! The stage crates take these types (syne-data the prepare settings, syne-train the train
//! settings, ...); none of them writes a configuration to disk to read it back.
//!
//! # Example
//!
//! ```
//! use syne_recipe::{CurriculumOrder, Recipe};
//!
//! let text = r#"
//! [run]
//! name = "tiny"
//! output = "runs/tiny"
//!
//! [sources.web-cn]
//! paths = ["data/web-cn.jsonl"]
//! language = "zh"
//! curriculum = true
//!
//! [sources.web-en]
//! paths = ["data/web-en.jsonl"]
//! language = "en"
//!
//! [[stages]]
//! name = "one"
//! tokens = 1_000_000
//! groups = { zh = 0.2, en = 0.8 }
//!
//! [mixture.zh]
//! web-cn = 1.0
//!
//! [mixture.en]
//! web-en = 1.0
//!
//! [curriculum]
//! order = "ascending"
//! buckets = 4
//! "#;
//! let recipe = Recipe::from_str_at(text, std::path::Path::new("/work/recipes/tiny.toml"))?;
//! assert_eq!(recipe.run.output, std::path::Path::new("/work/recipes/runs/tiny"));
//! assert_eq!(recipe.curriculum.as_ref().map(|c| c.order), Some(CurriculumOrder::Ascending));
//! assert_eq!(recipe.sources["web-cn"].group(), Some("zh"));
//!
//! // A bad value is refused with the key that holds it.
//! let bad = text.replace("zh = 0.2, en = 0.8", "zh = 0.3, en = 0.8");
//! let err = Recipe::from_str_at(&bad, std::path::Path::new("tiny.toml")).unwrap_err();
//! assert!(err.to_string().contains("stages[0].groups"), "{err}");
//! # Ok::<(), syne_recipe::RecipeError>(())
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod eval;
pub mod prepare;
pub mod recipe;
pub mod records;
pub mod sweep;
pub mod synth;
pub mod train;

pub use error::{RecipeError, Result};
pub use eval::{EvalSettings, PplTask};
pub use prepare::{clean_path, PrepareSettings, SourceLanguage};
pub use recipe::{
    AdoConfig, CurriculumOrder, CurriculumSettings, OdmConfig, Recipe, SourceMixing, SourceSpec, Stage, Taxonomy, TopicMixer, TopicSettings, DEFAULT_TAXONOMY,
};
pub use synth::SynthSettings;
pub use train::{LrSchedule, TrainSettings};
