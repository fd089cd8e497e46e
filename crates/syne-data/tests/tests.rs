//! syne-data's integration tests, gathered into one test binary (each test binary links the
//! whole dependency graph, libtorch included, so one binary per crate keeps CI's link time down).

mod common;
mod dedup_planted;
mod prepare_pipeline;
mod tokenizer_golden;
