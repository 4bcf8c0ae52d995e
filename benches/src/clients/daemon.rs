//! What `tsbench clients` watches of the site under load, phase by phase
//! (before the clients, while they connect, while they are held):
//!
//! * the daemon's memory (`VmRSS` of `/proc/PID/status`), CPU time (the
//!   `utime` and `stime` of `/proc/PID/stat`) and open file descriptors
//!   (`/proc/PID/fd`), with `--daemon-pid`;
//! * the half-width it publishes, read from its segment as an application
//!   reads it (`LocalClock::now()`), with `--segment`.
//!
//! A [`Watcher`] thread samples both (half-width every 100 ms, memory every
//! 500 ms) into the current [`Phase`]; CPU time is read at the phase
//! boundaries by the caller ([`Daemon::snapshot`]). The thread only reads
//! files and the segment, so a busy runtime cannot delay its samples.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::report::{Series, Summary};
use crate::site::open_local;

/// Time between two half-width samples.
const HALF_WIDTH_EVERY: Duration = Duration::from_millis(100);
/// Time between two memory samples.
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// Largest half-width recorded: 1 hour (larger ones count as that).
const MAX_HALF_WIDTH_NS: u64 = 3_600_000_000_000;
/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, 1/100 s on Linux
/// whatever the kernel's HZ (the ABI fixes it).
const NANOS_PER_TICK: u64 = 10_000_000;

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before any client connects.
    Before = 0,
    /// While the clients connect.
    Ramp = 1,
    /// While every client is held, calling.
    Held = 2,
    /// After: nothing is sampled.
    Done = 3,
}

/// The daemon's process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Daemon {
    pid: u32,
}

/// The daemon at one instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    /// When it was read.
    pub(crate) at: Instant,
    /// Resident memory, KiB.
    pub(crate) rss_kib: u64,
    /// CPU time used since it started (user + system).
    pub(crate) cpu: Duration,
    /// Open file descriptors, if they could be counted.
    pub(crate) fds: Option<u64>,
}

impl Daemon {
    /// The process `pid`, checked readable now.
    pub(crate) fn new(pid: u32) -> anyhow::Result<Self> {
        let daemon = Self { pid };
        daemon.snapshot().with_context(|| format!("cannot watch the daemon, process {pid}"))?;
        Ok(daemon)
    }

    /// Reads its memory, CPU time and descriptors.
    pub(crate) fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let at = Instant::now();
        let dir = PathBuf::from(format!("/proc/{}", self.pid));
        let status = std::fs::read_to_string(dir.join("status")).context("reading /proc/PID/status")?;
        let rss_kib = parse_vm_rss(&status).context("no VmRSS in /proc/PID/status")?;
        let stat = std::fs::read_to_string(dir.join("stat")).context("reading /proc/PID/stat")?;
        let cpu = parse_stat_cpu(&stat).context("no utime and stime in /proc/PID/stat")?;
        let fds = std::fs::read_dir(dir.join("fd")).ok().map(|entries| entries.count() as u64);
        Ok(Snapshot { at, rss_kib, cpu, fds })
    }

    /// The resident memory alone, KiB.
    fn rss_kib(&self) -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok().as_deref().and_then(parse_vm_rss)
    }
}

/// The share of one core the daemon used from `from` to `to` (1.0: one
/// core all the time), or `None` over no time.
pub(crate) fn cpu_share(from: &Snapshot, to: &Snapshot) -> Option<f64> {
    let wall = to.at.checked_duration_since(from.at)?.as_secs_f64();
    let cpu = to.cpu.checked_sub(from.cpu)?.as_secs_f64();
    (wall > 0.0).then(|| cpu / wall)
}

/// `VmRSS` (KiB) from the text of `/proc/PID/status`.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// utime + stime from the text of a `stat` file: fields 14 and 15,
/// counted after the command name's closing parenthesis (the name may hold
/// spaces and parentheses).
pub(crate) fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let after_name = stat.get(stat.rfind(')')?.checked_add(1)?..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_nanos(user.checked_add(system)?.checked_mul(NANOS_PER_TICK)?))
}

/// The soft and hard limits of open files from the text of
/// `/proc/self/limits` (`None` for a hard limit of `unlimited`).
pub(crate) fn parse_open_files_limit(limits: &str) -> Option<(u64, Option<u64>)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut words = line.trim_start_matches("Max open files").split_whitespace();
    let soft: u64 = words.next()?.parse().ok()?;
    let hard = match words.next()? {
        "unlimited" => None,
        n => Some(n.parse().ok()?),
    };
    Some((soft, hard))
}

/// What was sampled in one phase.
#[derive(Clone, Debug)]
pub(crate) struct PhaseSamples {
    /// The published half-width.
    pub(crate) half_width: Series,
    /// Half-width reads that failed (an unsynchronized site, a stale segment).
    pub(crate) half_width_failures: u64,
    /// Resident memory samples, KiB, in order.
    pub(crate) rss_kib: Vec<u64>,
}

impl PhaseSamples {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { half_width: Series::new(MAX_HALF_WIDTH_NS, 1)?, half_width_failures: 0, rss_kib: Vec::new() })
    }

    /// The half-width's percentiles, if any was read.
    pub(crate) fn half_width_summary(&self) -> Option<Summary> {
        (self.half_width.samples() > 0).then(|| self.half_width.summary())
    }
}

/// The sampling thread.
#[derive(Debug)]
pub(crate) struct Watcher {
    phase: Arc<AtomicU8>,
    thread: JoinHandle<anyhow::Result<Vec<PhaseSamples>>>,
}

impl Watcher {
    /// Starts sampling `daemon`'s memory and the half-width published in
    /// `segment` (either may be absent), in [`Phase::Before`].
    pub(crate) fn start(daemon: Option<Daemon>, segment: Option<&Path>) -> anyhow::Result<Self> {
        let clock = segment.map(open_local).transpose()?;
        let phase = Arc::new(AtomicU8::new(Phase::Before as u8));
        let mut phases = vec![PhaseSamples::new()?, PhaseSamples::new()?, PhaseSamples::new()?];
        let shared = Arc::clone(&phase);
        let thread = std::thread::Builder::new()
            .name("tsbench-watch".to_owned())
            .spawn(move || {
                let mut next_memory = Instant::now();
                loop {
                    let now = Instant::now();
                    let Some(samples) = phases.get_mut(usize::from(shared.load(Ordering::Acquire))) else { break };
                    if let Some(clock) = &clock {
                        match clock.now() {
                            Ok(interval) => samples.half_width.record_duration(interval.half_width()),
                            Err(_) => samples.half_width_failures = samples.half_width_failures.saturating_add(1),
                        }
                    }
                    if now >= next_memory {
                        if let Some(rss) = daemon.and_then(|d| d.rss_kib()) {
                            samples.rss_kib.push(rss);
                        }
                        next_memory = now + MEMORY_EVERY;
                    }
                    std::thread::sleep(HALF_WIDTH_EVERY);
                }
                Ok(phases)
            })
            .context("cannot start the sampling thread")?;
        Ok(Self { phase, thread })
    }

    /// Samples from now on belong to `phase`.
    pub(crate) fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Stops sampling (within one sample period) and returns each phase's
    /// samples: [`Phase::Before`], [`Phase::Ramp`], [`Phase::Held`].
    pub(crate) fn finish(self) -> anyhow::Result<Vec<PhaseSamples>> {
        self.enter(Phase::Done);
        self.thread.join().map_err(|_| anyhow::anyhow!("the sampling thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn rss_cpu_and_limits_parse_from_proc_texts() {
        let status = "Name:\ttsod\nVmPeak:\t  100000 kB\nVmRSS:\t   17408 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(17_408));
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None, "only kB is what the kernel writes");
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        // A command name with spaces and a parenthesis: fields count after the last ')'.
        let stat = "4242 (tsod (x) y) S 1 4242 4242 0 -1 4194560 2104 0 0 0 250 31 0 0 20 0 5 0 1000 1 2 3";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(2_810)));
        assert_eq!(parse_stat_cpu("4242 (tsod) S 1 2"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some((1_024, Some(20_000))));
        let unlimited = limits.replace("20000", "unlimited");
        assert_eq!(parse_open_files_limit(&unlimited), Some((1_024, None)));
        assert_eq!(parse_open_files_limit("Max cpu time 1 1 seconds\n"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let me = Daemon::new(std::process::id()).unwrap();
        let first = me.snapshot().unwrap();
        assert!(first.rss_kib > 0 && first.fds.is_some_and(|n| n >= 1), "{first:?}");
        // Burn some CPU: the share over it is positive and at most a core per thread.
        let mut x = 0u64;
        while first.at.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let second = me.snapshot().unwrap();
        let share = cpu_share(&first, &second).unwrap();
        assert!(share > 0.0 && share <= 2.0, "{share}");
        assert!(Daemon::new(u32::MAX).is_err(), "no such process");
    }

    #[test]
    fn the_watcher_files_memory_samples_under_the_current_phase() {
        let watcher = Watcher::start(Some(Daemon::new(std::process::id()).unwrap()), None).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        watcher.enter(Phase::Held);
        std::thread::sleep(Duration::from_millis(650));
        let phases = watcher.finish().unwrap();
        assert_eq!(phases.len(), 3);
        assert!(!phases[0].rss_kib.is_empty(), "one sample at the start");
        assert!(phases[1].rss_kib.is_empty(), "no time was spent ramping");
        assert!(!phases[2].rss_kib.is_empty());
        assert!(phases.iter().all(|p| p.half_width_summary().is_none()), "no segment given");
    }
}
