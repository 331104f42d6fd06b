//! Outputs of a run. Each reads the finished [`crate::engine::RunReport`] (built from
//! the one aggregate), never raw samples.

pub mod summary;
