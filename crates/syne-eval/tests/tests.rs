//! syne-eval's integration tests, gathered into one test binary (each test binary links the
//! whole dependency graph, libtorch included, so one binary per crate keeps CI's link time down).

mod custom_tasks;
mod eval_real;
mod external;
mod generation_real;
mod openai_backend;
mod sandbox;
