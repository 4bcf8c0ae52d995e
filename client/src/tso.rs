//! [`Tso`]: the client of tsod's timestamp oracle (SPEC.md §4.8), over QUIC
//! `tsod-client/1` to the local daemon or a remote site (the same protocol).
//!
//! # What a caller gets
//!
//! [`Tso::next`] returns one timestamp, [`Tso::reserve`] a [`TsoRange`] of
//! consecutive ones. Every timestamp is one the service granted, each
//! granted timestamp goes to one caller only, and each is above every
//! timestamp this client had received when its request was formed, so
//! timestamps obtained one after the other (by one task, or by tasks that
//! synchronize) increase.
//! A response that breaks that rule means the service went backwards: its
//! callers get [`TsoError::WentBackwards`], never a smaller value, and
//! [`TsoStats`] counts it. Responses to requests in flight at the same time
//! may legitimately arrive in any order and are not flagged.
//!
//! # Batching (as TiDB's PD client does, without a per-call hop)
//!
//! A call does not go through a queue to a background task: it joins the
//! batch entry waiting to be sent under one short lock (an addition: its
//! offset in the entry), then waits on the entry's shared slot. One
//! background task sends one `tso-request` per entry (several entries per
//! request only when retried ones meet), up to [`TsoOptions::max_batch`]
//! timestamps each (a call is never split), and sets the slot's answer
//! once; each caller takes its part at its offset. So the work done for
//! each call is the join and one wake-up, in the caller's own task, and
//! what the background task does per request does not grow with the calls
//! in it: no serial step runs once per call, and throughput grows with the
//! threads the callers run on. Up to [`TsoOptions::max_in_flight`] requests
//! may be unanswered at once, so throughput is not one batch per round
//! trip; [`TsoOptions::batch_wait`] (default 0) lets a lone call wait for
//! company. Each request runs on its own QUIC stream of one shared
//! connection, dialled and redialled by the same machinery as
//! [`RemoteClock`].
//!
//! # Retries and the deadline
//!
//! `tso-unavailable`, `rate-limited` and `overloaded` (SPEC.md §4.9: "retry
//! after retry-after"), a lost connection (redialled on the next attempt),
//! an abandoned stream, a failed handshake (a restarting server) and a
//! timeout are retried: the calls go back to the front of the queue, and no
//! request leaves before the server's `retry-after` (capped by
//! [`TsoOptions::max_retry_after`]) or, without advice, a backoff doubling
//! from 10 ms. A call is retried as long as the retry starts before its
//! deadline, [`TsoOptions::deadline`] after the first call of its entry
//! joined (at most one batching window before the call itself); then it
//! fails with [`TsoError::DeadlineExceeded`], which carries the last error.
//! Every call is sent at least once; an attempt is cut when every call in it
//! has passed its deadline, and always by
//! [`RemoteOptions::request_timeout`]. Every other error fails the calls of
//! its request at once.
//!
//! # Connecting
//!
//! As for [`RemoteClock`], the caller names the site whose certificate it
//! trusts (its DNS name, see [`RemoteOptions::server_name`]):
//!
//! ```no_run
//! # async fn timestamp() -> Result<(), tsod_client::tso::TsoError> {
//! use tsod_client::tso::{Tso, TsoOptions};
//!
//! let options = TsoOptions::new("cluster/ca.crt", "bj-a");
//! let tso = Tso::connect("10.1.0.10:4460".parse().expect("an IP:PORT"), options).await?;
//! let t = tso.next().await?;
//! # let _ = t;
//! # Ok(())
//! # }
//! ```
//!
//! The batching, splitting, ordering check and retry decisions are a sans-IO
//! state machine (`batch.rs`), tested without a runtime; this file is the
//! async shell around it. `response.rs` checks a response against its
//! request, `range.rs` is [`TsoRange`], `error.rs` is [`TsoError`].

mod batch;
mod error;
mod range;
mod response;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant as TokioInstant;
use tsod_proto::HybridTimestamp;
use tsod_proto::wire::{MAX_TSO_COUNT, Message, TsoRequest};

pub use error::TsoError;
pub use range::{TsoRange, TsoRangeIter};

use crate::cluster::{ClusterFile, Site};
use crate::{RemoteClock, RemoteError, RemoteOptions};
use batch::{BatchConfig, Batcher, Completion, Outgoing};
use error::ErrorKind;

/// How a [`Tso`] connects, batches and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsoOptions {
    /// The connection: CA, client certificate, server name, and the timeout
    /// of one request ([`RemoteOptions::request_timeout`]). Its drift and
    /// round-trip fields do not matter for TSO.
    pub remote: RemoteOptions,
    /// Requests sent and not yet answered, at most: 1 sends one batch per
    /// round trip; more lets batches overlap.
    pub max_in_flight: usize,
    /// Timestamps one request asks for, at most, 1 … 65 536. Pending calls
    /// beyond it go in further requests (a call is never split).
    pub max_batch: u32,
    /// How long a pending call waits for others to join its request before
    /// it is sent anyway (0: send what is pending at once). A full request
    /// leaves at once.
    pub batch_wait: Duration,
    /// How long after the call a retry may still start; then the call fails
    /// with [`TsoError::DeadlineExceeded`].
    pub deadline: Duration,
    /// Longest wait before a retry, whatever `retry-after` the server
    /// advises (at least 1 ms).
    pub max_retry_after: Duration,
    /// Calls pending or in flight, at most (at least 1). Beyond it
    /// [`Tso::reserve`] waits for room: a server that stops answering
    /// holds the callers back instead of the queue growing without bound.
    pub max_queued: usize,
}

impl TsoOptions {
    /// Default [`TsoOptions::max_in_flight`]: 64. Two requests may be in
    /// flight at any time; each further one leaves only 0.5 ms after the
    /// youngest. Near the leader answers return first, so calls gather into
    /// few large requests; at a site a WAN round trip from the leader a call
    /// that missed a request waits at most 0.5 ms for the next instead of a
    /// whole round trip (64 busy callers 25 ms away: p99 ≈ one round trip
    /// + 2 ms instead of two round trips).
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
    /// Default [`TsoOptions::deadline`]: 3 s.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);
    /// Default [`TsoOptions::max_retry_after`]: 1 s.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(1);
    /// Default [`TsoOptions::max_queued`]: 65 536 calls.
    pub const DEFAULT_MAX_QUEUED: usize = 65_536;

    /// Options trusting the CA in `ca_path` for the site whose certificate
    /// names `server_name` (its DNS name, e.g. `bj-a`; see
    /// [`RemoteOptions::server_name`]), with every other field at its default.
    pub fn new(ca_path: impl Into<PathBuf>, server_name: impl Into<String>) -> Self {
        Self::from(RemoteOptions::new(ca_path, server_name))
    }

    fn batch_config(&self) -> Result<BatchConfig, TsoError> {
        let invalid = |why: &str| Err(TsoError::InvalidOptions(why.to_owned()));
        if self.max_in_flight == 0 {
            return invalid("max_in_flight must be at least 1");
        }
        if !(1..=MAX_TSO_COUNT).contains(&self.max_batch) {
            return invalid("max_batch must be 1 to 65536");
        }
        if self.deadline.is_zero() {
            return invalid("deadline must be positive");
        }
        if self.max_retry_after < Duration::from_millis(1) {
            return invalid("max_retry_after must be at least 1 ms");
        }
        if self.max_queued == 0 {
            return invalid("max_queued must be at least 1");
        }
        Ok(BatchConfig {
            max_in_flight: self.max_in_flight,
            max_batch: self.max_batch,
            batch_wait: self.batch_wait,
            deadline: self.deadline,
            max_retry_after: self.max_retry_after,
        })
    }
}

impl From<RemoteOptions> for TsoOptions {
    /// These connection options, with TSO defaults.
    fn from(remote: RemoteOptions) -> Self {
        Self {
            remote,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            max_batch: MAX_TSO_COUNT,
            batch_wait: Duration::ZERO,
            deadline: Self::DEFAULT_DEADLINE,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
            max_queued: Self::DEFAULT_MAX_QUEUED,
        }
    }
}

/// What a [`Tso`] has done since it connected (for tsbench and status pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoStats {
    /// [`Tso::next`] and [`Tso::reserve`] calls sent (counted at their first request).
    pub calls: u64,
    /// `tso-request`s sent, retries included.
    pub requests_sent: u64,
    /// Timestamps granted and handed to callers.
    pub timestamps_received: u64,
    /// Requests that carried a call tried before.
    pub retries: u64,
    /// Failed requests (and calls given up), by why.
    pub errors: TsoErrorCounts,
}

/// Failed requests by kind: each failed request counts once, under its
/// error; calls that gave up count under `deadline-exceeded`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoErrorCounts {
    /// `tso-unavailable` answers.
    pub unavailable: u64,
    /// `rate-limited` answers.
    pub rate_limited: u64,
    /// `overloaded` answers.
    pub overloaded: u64,
    /// Connections lost or refused, streams abandoned, handshakes failed.
    pub connection: u64,
    /// Requests unanswered within the request timeout (or cut at the deadline).
    pub timeout: u64,
    /// Answers that did not decode or did not match the request (id, count, kind).
    pub mismatch: u64,
    /// Other error answers (`unauthorized`, `internal`, …).
    pub refused: u64,
    /// Responses that went backwards ([`TsoError::WentBackwards`]).
    pub went_backwards: u64,
    /// Calls that gave up at their deadline.
    pub deadline_exceeded: u64,
}

/// The counters behind [`TsoStats`], written by the background task only.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    requests_sent: AtomicU64,
    timestamps_received: AtomicU64,
    retries: AtomicU64,
    errors: [AtomicU64; 9],
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn error(&self, kind: ErrorKind, n: u64) {
        let index = match kind {
            ErrorKind::Unavailable => 0,
            ErrorKind::RateLimited => 1,
            ErrorKind::Overloaded => 2,
            ErrorKind::Connection => 3,
            ErrorKind::Timeout => 4,
            ErrorKind::Mismatch => 5,
            ErrorKind::Refused => 6,
            ErrorKind::WentBackwards => 7,
            ErrorKind::DeadlineExceeded => 8,
        };
        if let Some(counter) = self.errors.get(index) {
            Self::add(counter, n);
        }
    }

    fn snapshot(&self) -> TsoStats {
        let [unavailable, rate_limited, overloaded, connection, timeout, mismatch, refused, went_backwards, deadline] =
            self.errors.each_ref().map(|c| c.load(Ordering::Relaxed));
        TsoStats {
            calls: self.calls.load(Ordering::Relaxed),
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            timestamps_received: self.timestamps_received.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            errors: TsoErrorCounts {
                unavailable,
                rate_limited,
                overloaded,
                connection,
                timeout,
                mismatch,
                refused,
                went_backwards,
                deadline_exceeded: deadline,
            },
        }
    }
}

/// The reply handle of one batch entry (see `batch.rs`): the callers that
/// joined it wait here for its one answer, each taking its part by offset.
#[derive(Debug, Default)]
struct Slot {
    answer: OnceLock<Result<TsoRange, TsoError>>,
    /// The wakers of callers still waiting; taken (and woken) once the
    /// answer is set.
    wakers: Mutex<Vec<Waker>>,
}

impl Slot {
    /// Sets the answer (the first one stays) and wakes every waiting caller.
    fn finish(&self, answer: Result<TsoRange, TsoError>) {
        let _ = self.answer.set(answer);
        let wakers = std::mem::take(&mut *lock(&self.wakers));
        for waker in wakers {
            waker.wake();
        }
    }
}

/// A caller's wait for its part of a slot's answer.
struct SlotWait {
    slot: Arc<Slot>,
    offset: u32,
    count: u32,
    /// Where this caller's waker sits in the slot's list, once registered.
    registered: Option<usize>,
}

impl SlotWait {
    fn part(&self, answer: &Result<TsoRange, TsoError>) -> Result<TsoRange, TsoError> {
        let entry = answer.as_ref().map_err(Clone::clone)?;
        // The entry's range covers every call's part (offset + count ≤ its
        // count), so this only fails if that bookkeeping were wrong.
        entry
            .first()
            .checked_add_ticks(u64::from(self.offset))
            .and_then(|first| TsoRange::new(first, self.count))
            .filter(|part| part.last() <= entry.last())
            .ok_or(TsoError::CountMismatch { asked: self.offset.saturating_add(self.count), granted: entry.count() })
    }
}

impl Future for SlotWait {
    type Output = Result<TsoRange, TsoError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(answer) = self.slot.answer.get() {
            return Poll::Ready(self.part(answer));
        }
        let slot = Arc::clone(&self.slot);
        let mut wakers = lock(&slot.wakers);
        // Set before the wakers are taken: seen here, or this waker is woken.
        if let Some(answer) = slot.answer.get() {
            drop(wakers);
            return Poll::Ready(self.part(answer));
        }
        match self.registered.and_then(|at| wakers.get_mut(at)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                self.registered = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

/// Locks a mutex, whether or not a holder panicked (every critical section
/// here leaves its data consistent at each step).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A client of tsod's TSO (see the module doc). Cheap to clone: clones share
/// one background task, one connection and one set of counters. Use it
/// inside the tokio runtime that connected it (with IO and time enabled);
/// the background task ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Tso {
    handle: Arc<Handle>,
}

/// What every clone holds; dropping the last one stops the background task.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.core).closed = true;
        self.shared.wake_sender.notify_one();
    }
}

/// What the callers and the background task share.
#[derive(Debug)]
struct Shared {
    core: Mutex<Core>,
    /// Wakes the background task: a call started an entry, or the last
    /// clone is gone.
    wake_sender: Notify,
    /// Wakes callers waiting for room under [`TsoOptions::max_queued`].
    room: Notify,
    max_queued: usize,
    counters: Arc<Counters>,
    clock: Arc<RemoteClock>,
}

/// The state behind the lock.
#[derive(Debug)]
struct Core {
    batcher: Batcher<Arc<Slot>>,
    /// Every clone is gone: the background task ends.
    closed: bool,
    /// The background task has ended: calls fail with [`TsoError::Stopped`].
    stopped: bool,
}

impl Tso {
    /// Connects to the tsod site (or local daemon) at `addr`. The first
    /// connection is dialled here, so a wrong address, CA or certificate
    /// shows at once (as [`TsoError::Transport`]); later ones are redialled
    /// as needed.
    pub async fn connect(addr: SocketAddr, options: TsoOptions) -> Result<Self, TsoError> {
        let site = Site::new(options.remote.server_name.clone(), addr);
        Self::connect_sites(vec![site], options).await
    }

    /// Connects to the sites of the cluster file `cluster` (see
    /// [`crate::cluster`]) with its CA and `options` otherwise
    /// (`options.remote.ca_path` and `server_name` are not used).
    pub async fn connect_cluster(cluster: &ClusterFile, options: TsoOptions) -> Result<Self, TsoError> {
        let sites = cluster.resolve().await.map_err(|e| TsoError::InvalidOptions(e.to_string()))?;
        let remote = RemoteOptions { ca_path: cluster.ca.clone(), ..options.remote.clone() };
        Self::connect_sites(sites, TsoOptions { remote, ..options }).await
    }

    /// Connects to the nearest of `sites` and moves to another when it is
    /// lost ([`RemoteClock::connect_sites`]): requests that failed for want
    /// of their site are retried on the next one within their deadline,
    /// and the check that no timestamp is below one already returned spans
    /// every site.
    pub async fn connect_sites(sites: Vec<Site>, options: TsoOptions) -> Result<Self, TsoError> {
        let config = options.batch_config()?;
        let clock = Arc::new(RemoteClock::connect_sites(sites, options.remote).await?);
        let shared = Arc::new(Shared {
            core: Mutex::new(Core { batcher: Batcher::new(config), closed: false, stopped: false }),
            wake_sender: Notify::new(),
            room: Notify::new(),
            max_queued: options.max_queued,
            counters: Arc::new(Counters::default()),
            clock,
        });
        tokio::spawn(drive(Arc::clone(&shared)));
        Ok(Self { handle: Arc::new(Handle { shared }) })
    }

    /// One TSO timestamp.
    pub async fn next(&self) -> Result<HybridTimestamp, TsoError> {
        self.reserve(1).await.map(|range| range.first())
    }

    /// `count` consecutive TSO timestamps, 1 … 65 536
    /// ([`TsoError::InvalidCount`] otherwise).
    pub async fn reserve(&self, count: u32) -> Result<TsoRange, TsoError> {
        if !(1..=MAX_TSO_COUNT).contains(&count) {
            return Err(TsoError::InvalidCount(count));
        }
        let shared = &self.handle.shared;
        let joined = loop {
            let room = {
                let mut core = lock(&shared.core);
                if core.stopped {
                    return Err(TsoError::Stopped);
                }
                if core.batcher.outstanding() < shared.max_queued {
                    break core.batcher.join(count, Instant::now, Arc::default);
                }
                // Registered before the lock is released: an answer that
                // frees room after this point wakes it.
                let mut notified = Box::pin(shared.room.notified());
                notified.as_mut().enable();
                notified
            };
            room.await;
        };
        if joined.started {
            shared.wake_sender.notify_one();
        }
        SlotWait { slot: joined.reply, offset: joined.offset, count, registered: None }.await
    }

    /// The counters so far.
    pub fn stats(&self) -> TsoStats {
        self.handle.shared.counters.snapshot()
    }

    /// The address of the site asked now.
    pub fn addr(&self) -> SocketAddr {
        self.handle.shared.clock.addr()
    }

    /// The site asked now.
    pub fn site(&self) -> Site {
        self.handle.shared.clock.site()
    }

    /// How many times the client moved to another site.
    pub fn site_switches(&self) -> u64 {
        self.handle.shared.clock.site_switches()
    }

    /// Every site, in the given order, with its measured round trip
    /// ([`RemoteClock::sites`]).
    pub fn sites(&self) -> Vec<(Site, Option<Duration>)> {
        self.handle.shared.clock.sites()
    }
}

/// The background task: sends what the batcher says, hands answers to
/// the slots. Ends when every [`Tso`] clone is gone; whatever it leaves
/// unanswered (then, or if the runtime cancels it) fails with
/// [`TsoError::Stopped`].
async fn drive(shared: Arc<Shared>) {
    let stop = StopOnDrop(Arc::clone(&shared));
    let counters = &shared.counters;
    let mut attempts: JoinSet<(u64, Result<HybridTimestamp, TsoError>)> = JoinSet::new();
    // Which request each attempt task carries, to answer it even if the
    // task itself is lost (it never panics; a shutting-down runtime cancels it).
    let mut requests: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut outgoing = Vec::new();
    loop {
        let (expired, wake) = {
            let mut core = lock(&shared.core);
            if core.closed {
                break;
            }
            let now = Instant::now();
            let expired = core.batcher.expire(now);
            while let Some(send) = core.batcher.poll_send(now) {
                outgoing.push(send);
            }
            (expired, core.batcher.next_wake())
        };
        deliver(expired, &shared);
        for send in outgoing.drain(..) {
            Counters::add(&counters.calls, u64::from(send.new_calls));
            Counters::add(&counters.requests_sent, 1);
            if send.retry {
                Counters::add(&counters.retries, 1);
            }
            let handle = attempts.spawn(attempt(Arc::clone(&shared.clock), send));
            requests.insert(handle.id(), send.request_id);
        }
        tokio::select! {
            biased;
            joined = attempts.join_next_with_id(), if !attempts.is_empty() => {
                let (request_id, result) = match joined {
                    Some(Ok((id, answer))) => {
                        requests.remove(&id);
                        answer
                    }
                    Some(Err(lost)) => match requests.remove(&lost.id()) {
                        Some(request_id) => (request_id, Err(TsoError::Stopped)),
                        None => continue,
                    },
                    None => continue,
                };
                if let Err(error) = &result {
                    counters.error(error.kind(), 1);
                }
                let completion = lock(&shared.core).batcher.complete(request_id, result, Instant::now());
                deliver(completion, &shared);
            }
            () = shared.wake_sender.notified() => {}
            () = tokio::time::sleep_until(TokioInstant::from_std(wake.unwrap_or_else(Instant::now))), if wake.is_some() => {}
        }
    }
    drop(stop);
}

/// Ends the background task's work however it ends: no call is taken up
/// after, and every entry pending or in flight fails with
/// [`TsoError::Stopped`], so no caller waits for an answer that cannot come.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let slots = {
            let mut core = lock(&self.0.core);
            core.stopped = true;
            core.batcher.drain()
        };
        for slot in slots {
            slot.finish(Err(TsoError::Stopped));
        }
        self.0.room.notify_waiters();
    }
}

/// Hands a completion's answers to their slots (waking their callers) and
/// counts it.
fn deliver(completion: Completion<Arc<Slot>>, shared: &Shared) {
    let counters = &shared.counters;
    Counters::add(&counters.timestamps_received, completion.granted);
    if completion.went_backwards {
        counters.error(ErrorKind::WentBackwards, 1);
    }
    counters.error(ErrorKind::DeadlineExceeded, u64::try_from(completion.expired).unwrap_or(u64::MAX));
    if completion.replies.is_empty() {
        return;
    }
    for (slot, answer) in completion.replies {
        slot.finish(answer);
    }
    // Calls left the queue: callers waiting for room may go on.
    shared.room.notify_waiters();
}

/// One `tso-request` on its own stream, checked against what was asked.
async fn attempt(clock: Arc<RemoteClock>, outgoing: Outgoing) -> (u64, Result<HybridTimestamp, TsoError>) {
    let Outgoing { request_id, count, cut_at, .. } = outgoing;
    let started = TokioInstant::now();
    let request = Message::TsoRequest(TsoRequest { request_id, count });
    let cut_at = TokioInstant::from_std(cut_at);
    let exchange = if cut_at > started {
        tokio::time::timeout_at(cut_at, clock.request(request)).await
    } else {
        Ok(clock.request(request).await)
    };
    let result = match exchange {
        Ok(Ok(exchange)) => response::check_tso_response(&exchange.response, request_id, count),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(RemoteError::Timeout { addr: clock.addr(), after: started.elapsed() }.into()),
    };
    (request_id, result)
}
