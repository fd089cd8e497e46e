//! The one error type of `syne-mix`: messages name the recipe file and the key at fault.

use std::path::PathBuf;

/// What can go wrong planning or streaming a mixture.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// The recipe cannot be read, parsed or validated (syne-recipe's error, with file and key).
    #[error(transparent)]
    Recipe(#[from] syne_recipe::RecipeError),
    /// A recipe key has an invalid value for the mixture: `key` is its dotted path.
    #[error("{}: `{key}`: {detail}", path.display())]
    Key {
        /// The recipe.
        path: PathBuf,
        /// The dotted key (`stages[1].groups.syn`).
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A topic model file is damaged or not a topic model.
    #[error("{}: {detail}", path.display())]
    TopicModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The corpora cannot supply what the plan asks for (one line per short source).
    #[error("{0}")]
    Plan(String),
    /// From the data.
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

/// `Result` with [`MixError`].
pub type Result<T, E = MixError> = std::result::Result<T, E>;
