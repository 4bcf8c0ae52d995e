//! The TSO load: clients asking every site's daemon for timestamps the way
//! applications do, while a scenario runs (or `up` shows the cluster), and
//! recording every answer for [`crate::tso::check`].
//!
//! A [`TsoLoad`] owns a tokio runtime of its own (two workers) beside the
//! testbed's synchronous main loop. Each site gets
//! [`LoadOptions::tasks_per_site`] tasks, each with its own
//! [`Tso`] client (own QUIC connection to the site's client address,
//! `tsod-client/1`, anonymous, trusting the cluster CA, the site's name as
//! server name). Each task calls [`Tso::next`] at most once per
//! `tasks_per_site / calls_per_second` seconds, so a site sees at most
//! [`LoadOptions::calls_per_second`] calls a second (fewer while calls
//! wait: a call blocks its task). A site's tasks call on schedules evenly
//! staggered over one period, and keep to them (a call that overruns its
//! period, or a failed connection, skips the ticks it missed rather than
//! shifting the schedule), so that where calls are quick (at the leader, or
//! a site near it) a success comes about every `1 / calls_per_second`
//! (5 ms by default) and a stall that long shows as a gap
//! ([`crate::tso::check::SitePhase::longest_gap_s`]). Where a call takes
//! longer than the period (a far site: a round trip to the leader) each
//! task calls again at its first tick after the call returned, so the gaps
//! there are up to about that round trip. A [`TsoTarget`] may also be a
//! group of failover clients, given several sites: its tasks share one
//! [`Tso`] client (so the group's gaps are that client's), recorded under
//! the group's name like a site. A task that cannot connect (the
//! daemon is down or paused) records a [`FailureKind::Connect`] and tries
//! again 100 ms later; once connected, the client redials by itself.
//!
//! For each call the host `CLOCK_REALTIME` is read just before the call and
//! just after it returns, as true time on the cluster's timescale
//! ([`LoadOptions::time`]: shifted and smeared around a scenario's leap),
//! for the order and honesty checks, and the monotonic clock for its
//! latency. Calls still in flight when the load
//! stops are dropped unrecorded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tsod_client::Site;
use tsod_client::tso::{Tso, TsoError, TsoOptions};

use crate::checker::host_now;
use crate::truth::TrueTime;
use crate::tso::check::{Failure, FailureKind, Success};

/// How long a task waits for a connection before it counts a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a task waits after a failed connection.
const CONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// One group of callers to record under one name: a site's own clients
/// (one site), or failover clients given several sites
/// ([`Tso::connect_sites`]: they ask the nearest and move on when it is lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsoTarget {
    /// The name its calls are recorded under: the site's name, or the
    /// failover clients' (`clients@<home>`).
    pub name: String,
    /// The sites its clients are given, each with its name (the server name
    /// its certificate carries) and the address they reach it at.
    pub sites: Vec<Site>,
}

impl TsoTarget {
    /// A site's own clients: the site `name` at `addr`.
    pub fn site(name: &str, addr: SocketAddr) -> Self {
        Self { name: name.to_owned(), sites: vec![Site::new(name, addr)] }
    }
}

/// How hard to load each site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadOptions {
    /// Concurrent callers per site, each with its own client.
    pub tasks_per_site: usize,
    /// Calls a second per site, at most (all its tasks together).
    pub calls_per_second: f64,
    /// How the cluster tells time: the true time a call is judged against.
    pub time: TrueTime,
}

impl Default for LoadOptions {
    /// Four callers per site, 200 calls a second per site at most, the
    /// host's own time.
    fn default() -> Self {
        Self { tasks_per_site: 4, calls_per_second: 200.0, time: TrueTime::default() }
    }
}

/// Successes and errors of one site so far (for the live view).
#[derive(Debug, Default)]
struct SiteCounters {
    successes: AtomicU64,
    errors: AtomicU64,
}

/// Everything the load recorded.
#[derive(Clone, Debug, Default)]
pub struct TsoRecord {
    /// The sites, in the cluster's order.
    pub names: Vec<String>,
    /// Every successful call.
    pub successes: Vec<Success>,
    /// Every failed call.
    pub failures: Vec<Failure>,
}

/// What the tasks write into.
#[derive(Debug, Default)]
struct Recorded {
    successes: Vec<Success>,
    failures: Vec<Failure>,
}

/// The running load; [`TsoLoad::finish`] stops it and hands over the
/// record (dropping it stops it too, discarding the record).
#[derive(Debug)]
pub struct TsoLoad {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    recorded: Arc<Mutex<Recorded>>,
    counters: Arc<[SiteCounters]>,
    names: Vec<String>,
}

/// Seconds from `zero` to `now`, negative before it.
fn seconds_since(zero: Instant, now: Instant) -> f64 {
    match now.checked_duration_since(zero) {
        Some(after) => after.as_secs_f64(),
        None => -zero.duration_since(now).as_secs_f64(),
    }
}

/// True time now in ns since the Unix epoch: the host realtime on the
/// cluster's timescale, rounded down (`ceil`: up).
fn true_ns(time: &TrueTime, ceil: bool) -> u64 {
    let host = host_now();
    if ceil { time.truth_ceil(host).as_nanos() } else { time.truth(host).as_nanos() }
}

/// When each of `tasks` tasks makes its first call: evenly spread over one
/// `period` from `start`.
fn stagger(start: tokio::time::Instant, period: Duration, tasks: usize) -> Vec<tokio::time::Instant> {
    let n = u32::try_from(tasks).unwrap_or(u32::MAX);
    (0..n).map(|k| start + period / n * k).collect()
}

/// The kind a failed call counts under.
fn kind_of(error: &TsoError) -> FailureKind {
    match error {
        TsoError::Unavailable { .. } => FailureKind::Unavailable,
        TsoError::RateLimited { .. } => FailureKind::RateLimited,
        TsoError::Overloaded { .. } => FailureKind::Overloaded,
        TsoError::Transport(_) => FailureKind::Transport,
        TsoError::Refused { .. } => FailureKind::Refused,
        TsoError::RequestIdMismatch { .. }
        | TsoError::CountMismatch { .. }
        | TsoError::UnexpectedKind { .. }
        | TsoError::Decode(_)
        | TsoError::InvalidCount(_)
        | TsoError::InvalidOptions(_) => FailureKind::Mismatch,
        TsoError::WentBackwards { .. } => FailureKind::WentBackwards,
        TsoError::DeadlineExceeded { .. } => FailureKind::DeadlineExceeded,
        TsoError::Stopped => FailureKind::Stopped,
    }
}

/// The one client a group of failover clients' tasks share (so that its
/// gaps are one client's: a site's own tasks each have their own).
type SharedClient = Arc<tokio::sync::Mutex<Option<Tso>>>;

/// What one task needs.
struct Task {
    site: usize,
    target: TsoTarget,
    ca: PathBuf,
    period: Duration,
    zero: Instant,
    time: TrueTime,
    /// When its first call is due (its share of the stagger).
    first: tokio::time::Instant,
    /// For a failover group: the client its tasks share.
    shared: Option<SharedClient>,
    stop: watch::Receiver<bool>,
    recorded: Arc<Mutex<Recorded>>,
    counters: Arc<[SiteCounters]>,
}

impl Task {
    fn record(&self, outcome: Result<Success, Failure>) {
        let counters = self.counters.get(self.site);
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(success) => {
                recorded.successes.push(success);
                if let Some(c) = counters {
                    c.successes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(failure) => {
                recorded.failures.push(failure);
                if let Some(c) = counters {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn failure(&self, kind: FailureKind) -> Failure {
        Failure { site: self.site, at_s: seconds_since(self.zero, Instant::now()), kind }
    }

    async fn connect(&self) -> Option<Tso> {
        let Some(shared) = &self.shared else { return self.dial().await };
        let mut slot = shared.lock().await;
        if slot.is_none() {
            *slot = self.dial().await;
        }
        slot.clone()
    }

    async fn dial(&self) -> Option<Tso> {
        let name = self.target.sites.first().map_or("", |s| s.name.as_str());
        let options = TsoOptions::new(&self.ca, name);
        match tokio::time::timeout(CONNECT_TIMEOUT, Tso::connect_sites(self.target.sites.clone(), options)).await {
            Ok(Ok(tso)) => Some(tso),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Calls until the load stops.
    async fn run(self) {
        let mut tso: Option<Tso> = None;
        let mut ticks = tokio::time::interval_at(self.first, self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let client = match &tso {
                Some(client) => client.clone(),
                None => {
                    let connected = tokio::select! {
                        connected = self.connect() => connected,
                        _ = stop.changed() => return,
                    };
                    match connected {
                        Some(client) => {
                            tso = Some(client.clone());
                            client
                        }
                        None => {
                            self.record(Err(self.failure(FailureKind::Connect)));
                            tokio::select! {
                                () = tokio::time::sleep(CONNECT_BACKOFF) => {}
                                _ = stop.changed() => return,
                            }
                            continue;
                        }
                    }
                }
            };
            let started = Instant::now();
            let sent_ns = true_ns(&self.time, false);
            let result = tokio::select! {
                result = client.next() => result,
                _ = stop.changed() => return,
            };
            let received_ns = true_ns(&self.time, true);
            let returned = Instant::now();
            match result {
                Ok(timestamp) => self.record(Ok(Success {
                    site: self.site,
                    sent_ns,
                    received_ns,
                    at_s: seconds_since(self.zero, returned),
                    latency: returned.duration_since(started),
                    timestamp,
                })),
                Err(error) => {
                    if matches!(error, TsoError::Stopped) {
                        tso = None;
                    }
                    self.record(Err(self.failure(kind_of(&error))));
                }
            }
        }
    }
}

impl TsoLoad {
    /// Starts loading `targets` (in the cluster's order), trusting the CA
    /// at `ca`; times are recorded relative to `zero` (the timeline's t = 0).
    pub fn start(targets: &[TsoTarget], ca: &Path, zero: Instant, options: LoadOptions) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tso-load")
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let counters: Arc<[SiteCounters]> = targets.iter().map(|_| SiteCounters::default()).collect();
        let tasks = options.tasks_per_site.max(1);
        let rate = if options.calls_per_second.is_finite() { options.calls_per_second.max(0.1) } else { 200.0 };
        let period = Duration::from_secs_f64(tasks as f64 / rate);
        let start = tokio::time::Instant::now();
        for (site, target) in targets.iter().enumerate() {
            let shared: Option<SharedClient> = (target.sites.len() > 1).then(SharedClient::default);
            for first in stagger(start, period, tasks) {
                let task = Task {
                    site,
                    target: target.clone(),
                    ca: ca.to_path_buf(),
                    period,
                    first,
                    shared: shared.clone(),
                    zero,
                    time: options.time,
                    stop: stopped.clone(),
                    recorded: Arc::clone(&recorded),
                    counters: Arc::clone(&counters),
                };
                runtime.spawn(task.run());
            }
        }
        Ok(Self {
            runtime: Some(runtime),
            stop,
            recorded,
            counters,
            names: targets.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// Per site, in order: (successful calls, failed calls) so far.
    pub fn totals(&self) -> Vec<(u64, u64)> {
        self.counters.iter().map(|c| (c.successes.load(Ordering::Relaxed), c.errors.load(Ordering::Relaxed))).collect()
    }

    /// Stops every task and returns what they recorded.
    pub fn finish(mut self) -> TsoRecord {
        self.shut_down();
        let recorded = std::mem::take(&mut *self.recorded.lock().unwrap_or_else(PoisonError::into_inner));
        TsoRecord { names: std::mem::take(&mut self.names), successes: recorded.successes, failures: recorded.failures }
    }

    fn shut_down(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for TsoLoad {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_zero_are_negative() {
        let zero = Instant::now() + Duration::from_secs(2);
        let s = seconds_since(zero, zero - Duration::from_millis(1_500));
        assert!((s + 1.5).abs() < 1e-9, "{s}");
        assert!((seconds_since(zero, zero + Duration::from_millis(250)) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn tasks_start_staggered_over_one_period() {
        let start = tokio::time::Instant::now();
        let firsts = stagger(start, Duration::from_millis(20), 4);
        let offsets: Vec<Duration> = firsts.iter().map(|f| f.duration_since(start)).collect();
        assert_eq!(offsets, [0, 5, 10, 15].map(Duration::from_millis));
        assert_eq!(stagger(start, Duration::from_millis(20), 1), [start]);
        assert!(stagger(start, Duration::from_millis(20), 0).is_empty());
    }

    #[test]
    fn a_site_it_cannot_connect_to_records_connect_failures_and_stops_promptly() {
        // A UDP port nobody serves QUIC on, and a CA file that does not
        // exist: every connection attempt fails.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = TsoTarget::site("xa", silent.local_addr().unwrap());
        let dir = std::env::temp_dir().join(format!("tsod-testbed-tso-load-{}", std::process::id()));
        let load = TsoLoad::start(
            &[target],
            &dir.join("no-ca.crt"),
            Instant::now(),
            LoadOptions { tasks_per_site: 2, calls_per_second: 100.0, ..LoadOptions::default() },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let stopping = Instant::now();
        let record = load.finish();
        assert!(stopping.elapsed() < Duration::from_secs(2), "{:?}", stopping.elapsed());
        assert!(record.successes.is_empty());
        assert!(!record.failures.is_empty());
        assert!(record.failures.iter().all(|f| f.site == 0 && f.kind == FailureKind::Connect), "{:?}", record.failures);
        assert_eq!(record.names, ["xa"]);
    }
}
