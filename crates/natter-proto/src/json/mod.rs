//! The JSON tools the dialects share: a typed field reader over a parsed object (`fields`), a
//! strict scanner for the shapes decoded once per message (`scan`), and a writer for the
//! objects encoded once per message (`writer`).

pub mod fields;
pub(crate) mod scan;
pub mod writer;

pub use writer::Writer;
