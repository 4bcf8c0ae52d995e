//! The subcommands of the `tsod` binary. Library code lives in the crate;
//! these modules only parse, wire up, print and add context to errors.

pub(crate) mod check_config;
pub(crate) mod cluster;
pub(crate) mod decode;
pub(crate) mod init_config;
pub(crate) mod now;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod tso;
pub(crate) mod wait_sync;

use std::io::{ErrorKind, Write};

use anyhow::Context;

/// Prints one line to standard output; a closed pipe (`tsod … | head`) is
/// the reader's choice, not an error.
pub(crate) fn print_line(text: &str) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("writing to standard output"),
        _ => Ok(()),
    }
}
