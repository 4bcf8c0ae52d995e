//! `tsod wait-sync [--segment PATH] [--max-half-width D] [--timeout D]
//! [--degraded-ok]`: blocks until the local bound is synchronized (within a
//! half-width, if given), as `chronyc waitsync` does for chronyd, so that a
//! database's unit can order itself `After=` a oneshot that runs it.
//!
//! Exit status: 0 once the bound is good; 1 when the timeout passed first
//! (the last state is printed); 2 when it cannot be judged at all: bad
//! arguments, or a segment that is refused as untrusted (another user's
//! file, a symbolic link, a directory others can write), which waiting will
//! not fix.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tsod_client::{ClockError, LocalClock};
use tsod_proto::ClockStatus;

/// How often the segment is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// What `wait-sync` waits for.
pub(crate) struct WaitSync {
    pub(crate) segment: Option<PathBuf>,
    pub(crate) max_half_width: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) degraded_ok: bool,
}

/// Why the bound is not good (yet).
enum NotYet {
    /// Worth waiting for (no segment yet, unsynchronized, too wide).
    Wait(String),
    /// Waiting will not help.
    Fatal(String),
}

/// Runs it; returns the process exit status.
pub(crate) fn run(args: &WaitSync) -> u8 {
    let started = Instant::now();
    let mut clock: Option<LocalClock> = None;
    let mut last;
    loop {
        let verdict = check(args, &mut clock);
        match verdict {
            Ok(line) => {
                let _ = super::print_line(&line);
                return 0;
            }
            Err(NotYet::Fatal(why)) => {
                eprintln!("tsod wait-sync: {why}");
                return 2;
            }
            Err(NotYet::Wait(why)) => last = why,
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            eprintln!("tsod wait-sync: not synchronized after {:?}: {last}", started.elapsed());
            return 1;
        }
        std::thread::sleep(POLL);
    }
}

fn check(args: &WaitSync, clock: &mut Option<LocalClock>) -> Result<String, NotYet> {
    let clock = match clock {
        Some(c) => c,
        None => {
            let opened = match &args.segment {
                Some(path) => LocalClock::open_path(path),
                None => LocalClock::open(),
            };
            clock.insert(opened.map_err(classify)?)
        }
    };
    let status = clock.status().map_err(classify)?;
    let interval = clock.now().map_err(classify)?;
    let good = status == ClockStatus::Synchronized || (args.degraded_ok && status == ClockStatus::Degraded);
    if !good {
        return Err(NotYet::Wait(format!("status {status}, ±{:?}", interval.half_width())));
    }
    if let Some(max) = args.max_half_width {
        if interval.half_width() > max {
            return Err(NotYet::Wait(format!("±{:?}, wider than {max:?} ({status})", interval.half_width())));
        }
    }
    Ok(format!("{status}: {interval} ±{:?}", interval.half_width()))
}

/// Errors that waiting may cure (no segment yet, no bound yet) and those it
/// will not (a segment refused as untrusted).
fn classify(e: ClockError) -> NotYet {
    match e {
        ClockError::Insecure { .. }
        | ClockError::Symlink { .. }
        | ClockError::NotRegularFile { .. }
        | ClockError::ForeignOwner { .. }
        | ClockError::ForeignDirectory { .. }
        | ClockError::WritableDirectory { .. } => NotYet::Fatal(e.to_string()),
        other => NotYet::Wait(other.to_string()),
    }
}
