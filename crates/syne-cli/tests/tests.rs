//! syne-cli's integration tests, gathered into one test binary (each test binary links the
//! whole dependency graph, libtorch included, so one binary per crate keeps CI's link time down).

mod common;
// The fault-injection OpenAI-compatible server of syne-synth's tests.
mod cli;
mod demo;
mod prepare_resume;
mod run_recipe;
#[path = "../../syne-synth/tests/common/mod.rs"]
mod server;
mod sweep;
mod synth;
mod train_resume;
