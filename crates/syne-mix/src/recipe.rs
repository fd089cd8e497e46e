//! The recipe the mixture plans from: syne-recipe's typed schema (see [`syne_recipe::recipe`]),
//! re-exported here under the names the planner and the stream use.

pub use syne_recipe::recipe::{CurriculumSettings, Recipe, RunSettings, SourceSpec as Source, Stage, TopicSettings};
