//! Writing reports to standard output. A reader that stops early
//! (`tsbench now --json | head -c1`) closes the pipe; the write then fails
//! with `BrokenPipe`, which ends tsbench cleanly, with success, rather than
//! with the panic `println!` raises. Every report goes through
//! [`write_stdout`]; `main` turns [`StdoutClosed`] into a successful exit.

use std::fmt;
use std::io::{self, Write};

/// Standard output was closed by its reader: nothing more can be shown,
/// and the measurement itself did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to standard output and flushes it; a closed pipe is
/// [`StdoutClosed`], any other failure an error that says so.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    write_all_to(&mut io::stdout().lock(), text)
}

/// Whether `error` only says that standard output was closed.
pub(crate) fn is_stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<StdoutClosed>())
}

fn write_all_to(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write the report to standard output")),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    /// A writer whose reader has gone, or that fails otherwise.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_is_a_clean_stop_and_other_failures_are_errors() {
        let closed = write_all_to(&mut Failing(io::ErrorKind::BrokenPipe), "report\n").err();
        assert!(closed.as_ref().is_some_and(is_stdout_closed), "{closed:?}");
        let wrapped = closed.map(|e| e.context("while printing"));
        assert!(wrapped.as_ref().is_some_and(is_stdout_closed), "found through context");
        let full = write_all_to(&mut Failing(io::ErrorKind::StorageFull), "report\n").err();
        assert!(full.as_ref().is_some_and(|e| !is_stdout_closed(e)), "{full:?}");
        let other: anyhow::Result<()> = Err(io::Error::other("x")).context("y");
        assert!(other.err().is_some_and(|e| !is_stdout_closed(&e)));
        let mut sink = Vec::new();
        assert!(write_all_to(&mut sink, "ok\n").is_ok());
        assert_eq!(sink, b"ok\n");
    }
}
