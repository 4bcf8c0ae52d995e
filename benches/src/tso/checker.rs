//! The checking thread of `tsbench tso`: every successful call's range and
//! latency go here in chunks, off the callers' path, and are checked and
//! recorded on a thread of their own, so the callers' loop costs a clock
//! read, an order check and a push per call (what it costs is measured,
//! `calibrate`). Nothing is sampled: every range is checked for
//! duplicates (`uniqueness.rs`) and every latency recorded.
//!
//! A caller's chunk waits in a bounded queue: a checker that falls behind
//! slows the callers down (they wait to hand over a chunk) instead of
//! buffering without bound. The thread's own CPU time is reported.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use super::uniqueness::{GrantedSet, TaskOrder};
use crate::report::Series;

/// Records a caller buffers before handing them over.
pub(crate) const CHUNK: usize = 256;
/// Chunks waiting for the checker, at most.
const QUEUE: usize = 1024;
/// Records the checker sorts and merges in one go, at least and at most:
/// two chunks from every caller, so that the callers' interleaved ranges
/// meet and coalesce into few intervals before they reach the set.
const MERGE: (usize, usize) = (64 * CHUNK, 1 << 22);

/// One successful call: its range (raw, inclusive) and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) latency_ns: u64,
}

/// What the checker found once every sender is gone.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Every recorded latency.
    pub(crate) latency: Series,
    /// Every range received.
    pub(crate) granted: GrantedSet,
    /// The checker thread's CPU time (user + system), if the OS tells it.
    pub(crate) cpu: Option<Duration>,
}

/// The running checker: a sender for the callers, and the thread.
#[derive(Debug)]
pub(crate) struct Checker {
    thread: std::thread::JoinHandle<Checked>,
}

impl Checker {
    /// Starts the thread for `callers` callers; latencies above
    /// `max_latency_ns` are recorded as that. Returns it with the sender
    /// the callers share.
    pub(crate) fn start(max_latency_ns: u64, callers: usize) -> anyhow::Result<(Self, mpsc::Sender<Vec<Record>>)> {
        let latency = Series::new(max_latency_ns, 1)?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let merge = callers.saturating_mul(2 * CHUNK).clamp(MERGE.0, MERGE.1);
        let thread = std::thread::Builder::new()
            .name("tso-checker".to_owned())
            .spawn(move || check(receiver, latency, merge))
            .context("cannot start the checking thread")?;
        Ok((Self { thread }, sender))
    }

    /// Waits (off the runtime's workers) until every sender is gone and
    /// the last chunk is checked.
    pub(crate) async fn finish(self) -> anyhow::Result<Checked> {
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("the checking thread's waiter failed")?
            .map_err(|_| anyhow::anyhow!("the checking thread panicked"))
    }
}

/// The thread: takes up chunks until the channel closes, checking their
/// ranges `merge` at a time.
fn check(mut receiver: mpsc::Receiver<Vec<Record>>, mut latency: Series, merge: usize) -> Checked {
    let mut granted = GrantedSet::default();
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(merge + CHUNK);
    while let Some(chunk) = receiver.blocking_recv() {
        take(&chunk, &mut latency, &mut ranges);
        if ranges.len() >= merge {
            granted.insert_all(&mut ranges);
            ranges.clear();
        }
    }
    granted.insert_all(&mut ranges);
    Checked { latency, granted, cpu: thread_cpu_time() }
}

fn take(chunk: &[Record], latency: &mut Series, ranges: &mut Vec<(u64, u64)>) {
    for record in chunk {
        latency.record(record.latency_ns);
        ranges.push((record.first, record.last));
    }
}

/// This thread's CPU time so far (Linux: `/proc/thread-self/stat`).
fn thread_cpu_time() -> Option<Duration> {
    cpu_time_of("/proc/thread-self/stat")
}

/// This process's CPU time so far, every thread (Linux: `/proc/self/stat`).
pub(crate) fn process_cpu_time() -> Option<Duration> {
    cpu_time_of("/proc/self/stat")
}

/// utime + stime of a `stat` file, in clock ticks of 1/100 s (USER_HZ,
/// fixed at 100 on Linux whatever the kernel's HZ).
fn cpu_time_of(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&text)
}

/// utime + stime from the text of a `stat` file: fields 14 and 15, counted
/// after the command name's closing parenthesis (the name may hold spaces).
fn parse_stat_cpu(text: &str) -> Option<Duration> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(user.checked_add(system)?.checked_mul(10)?))
}

/// What the callers' own per-call bookkeeping costs, in nanoseconds per
/// call: two clock reads, the order check and a push to a chunk, timed
/// over `calls` synthetic calls on this thread (the median of 5 rounds).
pub(crate) fn calibrate(calls: u64) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let mut order = TaskOrder::default();
            let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
            let started = Instant::now();
            for i in 0..calls {
                let start = Instant::now();
                let end = Instant::now();
                let first = black_box(i * 2);
                order.observe(first, first);
                chunk.push(Record {
                    first,
                    last: first,
                    latency_ns: u64::try_from(end.duration_since(start).as_nanos()).unwrap_or(u64::MAX),
                });
                if chunk.len() == CHUNK {
                    black_box(&chunk);
                    chunk = Vec::with_capacity(CHUNK);
                }
            }
            black_box(&order);
            started.elapsed().as_nanos() as f64 / calls.max(1) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds.get(2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_record_is_checked_and_a_duplicate_across_chunks_is_found() {
        let (checker, sender) = Checker::start(1_000_000, 2).unwrap();
        let mut senders = Vec::new();
        // Two callers sharing one counter, and one range handed out twice.
        for task in 0..2u64 {
            let sender = sender.clone();
            senders.push(tokio::spawn(async move {
                for round in 0..4u64 {
                    let chunk: Vec<Record> = (0..CHUNK as u64)
                        .map(|i| {
                            let n = (round * CHUNK as u64 + i) * 2 + task;
                            Record { first: n, last: n, latency_ns: 1_000 + task }
                        })
                        .collect();
                    sender.send(chunk).await.unwrap();
                }
            }));
        }
        for task in senders {
            task.await.unwrap();
        }
        sender.send(vec![Record { first: 10, last: 12, latency_ns: 5_000 }]).await.unwrap();
        drop(sender);
        let checked = checker.finish().await.unwrap();
        assert_eq!(checked.latency.samples(), 2 * 4 * CHUNK as u64 + 1);
        let violations = checked.granted.violations(0);
        // 10..=12 met 10, 11 and 12: which counts as the duplicate range
        // depends on the order they are merged in; the timestamps do not.
        assert_eq!(violations.duplicate_timestamps, 3);
        assert!((1..=3).contains(&violations.duplicate_ranges), "{violations:?}");
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "1234 (tso checker) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(2_810)));
        assert_eq!(parse_stat_cpu("1234 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu("no parenthesis"), None);
        assert!(process_cpu_time().is_some(), "this test runs on Linux");
    }

    #[test]
    fn calibration_gives_a_positive_cost() {
        let ns = calibrate(10_000);
        assert!(ns > 0.0 && ns < 100_000.0, "{ns} ns per call");
    }
}
