//! One module per subcommand.

pub mod api;
pub mod dataflow;
pub mod demo;
pub mod gallery;
pub mod ingest;
pub mod replay;
pub mod sample;
pub mod stream;
