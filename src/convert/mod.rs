//! Converters from recordings to scenario scripts (`volley convert`). No CLI here: the
//! converters take text and return a script or a typed error.

pub mod har;
pub mod rhai_text;
