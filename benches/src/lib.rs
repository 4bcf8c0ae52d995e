//! The pure core of `tsbench compare`, as a library so that its
//! integration tests (`tests/compare.rs`) call it directly rather than
//! through a running testbed: the figures a comparison holds, with their
//! Markdown table and JSON (`comparison`), and how the sites of a running
//! `tsod-testbed` are found and when they are ready (`testbed_sites`); and
//! how numbers read for people (`text`), which the binary's reports share.
//!
//! Everything else of tsbench lives in the binary (`main.rs`), which uses
//! these modules; they do no measuring and start no process.

pub mod comparison;
pub mod testbed_sites;
pub mod text;
