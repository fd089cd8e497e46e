//! syne-model's integration tests, gathered into one test binary (each test binary links the
//! whole dependency graph, libtorch included, so one binary per crate keeps CI's link time down).

mod common;
mod dequant_reference;
mod forward_variants;
mod native;
mod ppl_resume;
mod reference_numerics;
