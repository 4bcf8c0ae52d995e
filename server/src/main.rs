//! The `tsod` command line.

use std::io::{ErrorKind, Read, Write};

use anyhow::Context;
use clap::{Parser, Subcommand};

/// tsod: a time service with bounded error for replicated databases.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode one protocol message given as hex (SPEC.md §4) and print it as JSON.
    Decode {
        /// The message bytes in hex; `-` reads them from standard input.
        hex: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Decode { hex } => {
            let input = if hex == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading hex from standard input")?;
                s
            } else {
                hex
            };
            let json = tsod::inspect::decode_hex_to_json(&input)?;
            print_line(&json)?;
        }
    }
    Ok(())
}

/// Prints one line to standard output; a closed pipe (`tsod … | head`) is
/// the reader's choice, not an error.
fn print_line(text: &str) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).context("writing to standard output"),
        _ => Ok(()),
    }
}
