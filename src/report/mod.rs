//! Outputs of a run. Each reads the finished [`crate::engine::RunReport`] (built from
//! the one aggregate), never raw samples.

pub mod junit;
pub mod suite;
pub mod summary;
