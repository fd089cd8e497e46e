//! The crate's one error type: every stage crate's error, with its context, and the run's own.

use std::path::PathBuf;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A recipe or record file (names the file and the key).
    #[error(transparent)]
    Recipe(#[from] syne_recipe::RecipeError),
    /// Corpus I/O, preparation, shards.
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
    /// Loading or running a model.
    #[error(transparent)]
    Model(#[from] syne_model::ModelError),
    /// Training.
    #[error(transparent)]
    Train(#[from] syne_train::TrainError),
    /// Evaluation.
    #[error(transparent)]
    Eval(#[from] syne_eval::EvalError),
    /// Planning and the mixture.
    #[error(transparent)]
    Mix(#[from] syne_mix::MixError),
    /// Synthesis.
    #[error(transparent)]
    Synth(#[from] syne_synth::SynthError),
    /// The report.
    #[error(transparent)]
    Report(#[from] syne_report::ReportError),
    /// The run's own files or settings do not fit together (`path`: the recipe, run folder or
    /// file at fault).
    #[error("{}: {detail}", path.display())]
    Run {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A line of an input file is malformed.
    #[error("{}:{line}: {detail}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A request that cannot be carried out as given (conflicting or missing inputs).
    #[error("{0}")]
    Request(String),
}

/// `Result` with [`PipelineError`].
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// A [`PipelineError::Run`].
pub(crate) fn run_err(path: impl Into<PathBuf>, detail: impl Into<String>) -> PipelineError {
    PipelineError::Run { path: path.into(), detail: detail.into() }
}
