//! The sans-IO core of the TSO client: which calls go into which
//! `tso-request`, how a granted range is split among them, the
//! real-time-order check, and when to retry or give up. No sockets, no
//! tokio: every method takes the time as an argument, and the reply handle
//! `W` is whatever the shell uses (a shared slot its callers wait on; plain
//! numbers in tests).
//!
//! # Entries
//!
//! The unit the batcher queues, sends, splits and retries is an *entry*:
//! one or more calls that [`Batcher::join`]ed it while it waited to be
//! sent, each at its own offset, together asking for at most `max_batch`
//! timestamps (a single call may ask for more and then stands alone). A
//! call costs the caller one `join` (an addition) and the batcher nothing
//! more: sending, splitting and retrying are per entry, so the work behind
//! a busy client's calls does not grow with the number of calls. An entry
//! gets one reply, a range its calls share by offset, or one error they
//! all get.
//!
//! # Invariants
//!
//! * Entries are served in the order they were started (requeued ones go
//!   back to the front); a call joins only the youngest entry, and only one
//!   never sent, so calls are served in the order they joined. A batch
//!   takes whole entries, at least one, and asks for at most `max_batch`
//!   timestamps unless its single entry asks for more.
//! * At most `max_in_flight` batches are sent and unanswered. Up to
//!   `max(2, answer time / STAGGER)` of them leave at once (the answer time
//!   is the smoothed time successful requests took); beyond that a new one
//!   leaves only [`STAGGER`] after the youngest. So near the leader, where
//!   answers take less than a stagger, calls gather into few large
//!   requests; far from it a call that missed a request neither waits a
//!   round trip nor a timer tick. Either way the request rate stays
//!   bounded by the stagger, not by the callers: `k ≤ A / STAGGER` requests
//!   in flight that each take `A` are at most `1 / STAGGER` a second, and
//!   the staggered ones beyond them at most as many again (besides the
//!   first two, which a fast leader answers at once).
//! * `floor`: when a batch is sent it records the largest timestamp accepted
//!   so far. Its response must start above it, or no caller gets any of it
//!   ([`TsoError::WentBackwards`]). Responses to batches in flight at the
//!   same time may arrive in any order: each is checked only against its
//!   own floor.
//! * A caller gets a consecutive sub-range of exactly the count it asked
//!   for, or one error; never both, never twice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tsod_proto::HybridTimestamp;
use tsod_proto::wire::DecodeError;

use super::{TsoError, TsoRange};

/// The first backoff after an error without `retry-after` advice; it
/// doubles with every attempt, up to `max_retry_after`.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Requests that may be in flight whatever their age.
const BASE_IN_FLIGHT: usize = 2;
/// Beyond [`BASE_IN_FLIGHT`], another request leaves only once the youngest
/// in flight is this old: near the leader answers come back first and calls
/// gather into few large requests; far from it (answers take a WAN round
/// trip) a call that missed a request waits at most this long, not a whole
/// round trip, for the next.
const STAGGER: Duration = Duration::from_micros(500);

/// What the batcher needs from [`TsoOptions`](super::TsoOptions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchConfig {
    /// Batches sent and not yet answered, at most (≥ 1).
    pub(crate) max_in_flight: usize,
    /// Timestamps one request asks for, at most (1 … 65 536).
    pub(crate) max_batch: u32,
    /// How long the oldest pending call may wait for others to join it.
    pub(crate) batch_wait: Duration,
    /// How long after it was pushed a call may still be retried.
    pub(crate) deadline: Duration,
    /// Cap on one wait before a retry (advice or backoff).
    pub(crate) max_retry_after: Duration,
}

/// One entry: the calls waiting for `count` timestamps in all.
#[derive(Debug)]
struct Waiter<W> {
    reply: W,
    count: u32,
    /// Calls that joined it.
    calls: u32,
    /// When its first call joined: the entry's deadline runs from here (so
    /// a call's deadline may start up to one batching window early).
    since: Instant,
    /// Requests sent for it so far.
    attempts: u32,
    /// Why the last one failed (for a requeued call).
    last_error: Option<TsoError>,
}

impl<W> Waiter<W> {
    fn deadline(&self, config: &BatchConfig) -> Instant {
        self.since.checked_add(config.deadline).unwrap_or(self.since)
    }

    fn expire(self, config: &BatchConfig, error: TsoError) -> (W, Result<TsoRange, TsoError>) {
        let error =
            TsoError::DeadlineExceeded { deadline: config.deadline, attempts: self.attempts, last: Box::new(error) };
        (self.reply, Err(error))
    }
}

/// A batch sent and not yet answered.
#[derive(Debug)]
struct InFlight<W> {
    request_id: u64,
    count: u32,
    floor: Option<HybridTimestamp>,
    waiters: Vec<Waiter<W>>,
    /// When it was sent.
    sent: Instant,
}

/// A request the shell must send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// Its id; the answer goes back to [`Batcher::complete`] with it.
    pub(crate) request_id: u64,
    /// Timestamps asked for (the sum of the batch's calls).
    pub(crate) count: u32,
    /// When every call in the batch has passed its deadline: cut the
    /// attempt there (if it is still ahead).
    pub(crate) cut_at: Instant,
    /// Whether it carries a call that was tried before.
    pub(crate) retry: bool,
    /// Calls it carries that were never sent before.
    pub(crate) new_calls: u32,
}

/// Where [`Batcher::join`] put a call.
#[derive(Debug)]
pub(crate) struct Joined<W> {
    /// The entry's reply handle (a clone).
    pub(crate) reply: W,
    /// The call's first timestamp is the entry's first plus this.
    pub(crate) offset: u32,
    /// The call started a new entry (the shell wakes its sender then).
    pub(crate) started: bool,
}

/// What one answer (or failed attempt) did.
#[derive(Debug)]
pub(crate) struct Completion<W> {
    /// Answers to hand to the entries now, in batch order.
    pub(crate) replies: Vec<(W, Result<TsoRange, TsoError>)>,
    /// Timestamps accepted from the response.
    pub(crate) granted: u64,
    /// The response started at or below its floor.
    pub(crate) went_backwards: bool,
    /// Calls that gave up at their deadline.
    pub(crate) expired: usize,
    /// Calls put back to be sent again.
    pub(crate) requeued: usize,
}

impl<W> Completion<W> {
    fn empty() -> Self {
        Self { replies: Vec::new(), granted: 0, went_backwards: false, expired: 0, requeued: 0 }
    }
}

/// The batching, splitting, ordering and retry state of one TSO client.
#[derive(Debug)]
pub(crate) struct Batcher<W> {
    config: BatchConfig,
    pending: VecDeque<Waiter<W>>,
    /// Sum of the pending entries' counts.
    pending_count: u64,
    /// Calls pending or in flight.
    outstanding: usize,
    in_flight: Vec<InFlight<W>>,
    /// No request leaves before this (the last error's retry advice or
    /// backoff); cleared by any success.
    hold_until: Option<Instant>,
    /// The largest timestamp accepted so far.
    max_received: Option<HybridTimestamp>,
    next_request_id: u64,
    /// Smoothed time successful requests took to be answered (1/8 weight
    /// per sample, as TCP's SRTT); `None` before the first.
    answer_time: Option<Duration>,
}

impl<W> Batcher<W> {
    pub(crate) fn new(config: BatchConfig) -> Self {
        Self {
            config,
            pending: VecDeque::new(),
            pending_count: 0,
            outstanding: 0,
            in_flight: Vec::new(),
            hold_until: None,
            max_received: None,
            next_request_id: 1,
            answer_time: None,
        }
    }

    /// Takes up a call for `count` timestamps (1 … 65 536, checked by the
    /// caller): it joins the youngest pending entry if that was never sent
    /// and still has room for `count` within `max_batch`; otherwise it
    /// starts a new entry, with the reply handle `make` gives and the time
    /// `now` gives (neither is called for a join).
    pub(crate) fn join(&mut self, count: u32, now: impl FnOnce() -> Instant, make: impl FnOnce() -> W) -> Joined<W>
    where
        W: Clone,
    {
        let max_batch = self.config.max_batch;
        self.pending_count += u64::from(count);
        self.outstanding += 1;
        match self.pending.back_mut() {
            Some(entry)
                if entry.attempts == 0 && entry.count.checked_add(count).is_some_and(|sum| sum <= max_batch) =>
            {
                let offset = entry.count;
                entry.count += count;
                entry.calls += 1;
                Joined { reply: entry.reply.clone(), offset, started: false }
            }
            _ => {
                let reply = make();
                let waiter =
                    Waiter { reply: reply.clone(), count, calls: 1, since: now(), attempts: 0, last_error: None };
                self.pending.push_back(waiter);
                Joined { reply, offset: 0, started: true }
            }
        }
    }

    /// Takes up a call for `count` timestamps as an entry of its own.
    #[cfg(test)]
    pub(crate) fn push(&mut self, reply: W, count: u32, now: Instant) {
        self.pending_count += u64::from(count);
        self.outstanding += 1;
        self.pending.push_back(Waiter { reply, count, calls: 1, since: now, attempts: 0, last_error: None });
    }

    /// Calls pending or in flight.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Empties the batcher: the reply handles of every entry pending or in
    /// flight, to be failed by the shell (which is stopping).
    pub(crate) fn drain(&mut self) -> Vec<W> {
        self.pending_count = 0;
        self.outstanding = 0;
        let in_flight = self.in_flight.drain(..).flat_map(|b| b.waiters);
        self.pending.drain(..).chain(in_flight).map(|w| w.reply).collect()
    }

    /// The largest timestamp accepted so far.
    #[cfg(test)]
    pub(crate) fn max_received(&self) -> Option<HybridTimestamp> {
        self.max_received
    }

    /// Requeued calls whose deadline has passed while they waited to be
    /// sent again: they fail now with the error that requeued them.
    pub(crate) fn expire(&mut self, now: Instant) -> Completion<W> {
        let mut expired = Completion::empty();
        let mut i = 0;
        // Requeued entries sit at the front (push_front), fresh ones behind.
        while i < self.pending.len() {
            let due = match self.pending.get(i) {
                Some(w) if w.attempts > 0 => w.deadline(&self.config) <= now,
                _ => break,
            };
            if !due {
                i += 1;
                continue;
            }
            if let Some(mut waiter) = self.pending.remove(i) {
                self.pending_count -= u64::from(waiter.count);
                self.outstanding -= calls(&waiter);
                expired.expired += calls(&waiter);
                let last = waiter.last_error.take().unwrap_or(TsoError::Stopped);
                expired.replies.push(waiter.expire(&self.config, last));
            }
        }
        expired
    }

    /// The next request to send, if one may leave now: a slot is free, no
    /// retry hold is on, and the pending calls have waited `batch_wait` (or
    /// fill a request).
    pub(crate) fn poll_send(&mut self, now: Instant) -> Option<Outgoing> {
        if self.pending.is_empty() {
            return None;
        }
        match self.slot_free_at() {
            None => return None,
            Some(Some(at)) if now < at => return None,
            Some(_) => {}
        }
        if self.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        if let Some(ready) = self.batch_ready_at() {
            if now < ready {
                return None;
            }
        }
        let mut waiters = Vec::new();
        let mut count: u32 = 0;
        let mut retry = false;
        let mut new_calls: u32 = 0;
        let mut cut_at = now;
        while let Some(next) = self.pending.front() {
            let fits = count.checked_add(next.count).is_some_and(|sum| sum <= self.config.max_batch);
            if !fits && !waiters.is_empty() {
                break;
            }
            let Some(mut waiter) = self.pending.pop_front() else { break };
            self.pending_count -= u64::from(waiter.count);
            count = count.saturating_add(waiter.count);
            retry |= waiter.attempts > 0;
            if waiter.attempts == 0 {
                new_calls = new_calls.saturating_add(waiter.calls);
            }
            waiter.attempts = waiter.attempts.saturating_add(1);
            cut_at = cut_at.max(waiter.deadline(&self.config));
            waiters.push(waiter);
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        self.in_flight.push(InFlight { request_id, count, floor: self.max_received, waiters, sent: now });
        Some(Outgoing { request_id, count, cut_at, retry, new_calls })
    }

    /// When [`Batcher::poll_send`] or [`Batcher::expire`] may have something
    /// to do without a new call or answer arriving; `None`: nothing until one does.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let expiry = self.pending.iter().take_while(|w| w.attempts > 0).map(|w| w.deadline(&self.config)).min();
        let send = match self.slot_free_at() {
            Some(slot) if !self.pending.is_empty() => {
                [self.hold_until, self.batch_ready_at(), slot].into_iter().flatten().max()
            }
            _ => None,
        };
        match (expiry, send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When a request may leave as far as the in-flight limit goes: `None`
    /// no slot until an answer; `Some(None)` now; `Some(Some(t))` from `t`
    /// (the [`STAGGER`] after the youngest request in flight).
    fn slot_free_at(&self) -> Option<Option<Instant>> {
        let n = self.in_flight.len();
        if n >= self.config.max_in_flight {
            return None;
        }
        if n < self.immediate_in_flight() {
            return Some(None);
        }
        Some(self.in_flight.iter().map(|b| b.sent).max().and_then(|t| t.checked_add(STAGGER)))
    }

    /// Requests that may be in flight without a stagger: two, or as many
    /// staggers as an answer takes.
    fn immediate_in_flight(&self) -> usize {
        let answer = self.answer_time.map_or(0, |a| a.as_nanos() / STAGGER.as_nanos());
        BASE_IN_FLIGHT.max(usize::try_from(answer).unwrap_or(usize::MAX))
    }

    /// When the pending calls have waited long enough for others to join
    /// them; `None` when they need not wait.
    fn batch_ready_at(&self) -> Option<Instant> {
        if self.config.batch_wait.is_zero() || self.pending_count >= u64::from(self.config.max_batch) {
            return None;
        }
        let oldest = self.pending.front()?;
        if oldest.attempts > 0 {
            return None;
        }
        oldest.since.checked_add(self.config.batch_wait)
    }

    /// Request `request_id` ended at `now`: granted from `result`'s first
    /// timestamp (already checked against the request's id and count), or
    /// failed. Splits the range among the batch's calls, or fails them, or
    /// puts them back for a retry.
    pub(crate) fn complete(
        &mut self,
        request_id: u64,
        result: Result<HybridTimestamp, TsoError>,
        now: Instant,
    ) -> Completion<W> {
        let Some(at) = self.in_flight.iter().position(|b| b.request_id == request_id) else {
            return Completion::empty();
        };
        let batch = self.in_flight.swap_remove(at);
        self.outstanding -= batch.waiters.iter().map(calls).sum::<usize>();
        match result {
            Ok(first) => {
                let took = now.saturating_duration_since(batch.sent);
                self.answer_time = Some(self.answer_time.map_or(took, |a| (a * 7 + took) / 8));
                self.grant(batch, first)
            }
            Err(error) if error.is_retryable() => self.requeue(batch, error, now),
            Err(error) => fail(batch.waiters, &error),
        }
    }

    fn grant(&mut self, batch: InFlight<W>, first: HybridTimestamp) -> Completion<W> {
        if let Some(floor) = batch.floor {
            if first <= floor {
                let mut completion = fail(batch.waiters, &TsoError::WentBackwards { floor, first });
                completion.went_backwards = true;
                return completion;
            }
        }
        let counts: Vec<u32> = batch.waiters.iter().map(|w| w.count).collect();
        let Some(ranges) = TsoRange::split(first, &counts) else {
            // The decoder refuses a range past HybridTimestamp::MAX, so this
            // only happens if the batch's count disagrees with the response.
            let error = TsoError::Decode(DecodeError::InvalidField { offset: 24, field: "count" });
            return fail(batch.waiters, &error);
        };
        if let Some(last) = ranges.last() {
            self.max_received = Some(self.max_received.map_or(last.last(), |m| m.max(last.last())));
        }
        self.hold_until = None;
        let mut completion = Completion::empty();
        completion.granted = u64::from(batch.count);
        completion.replies = batch.waiters.into_iter().zip(ranges).map(|(w, r)| (w.reply, Ok(r))).collect();
        completion
    }

    /// A retryable failure: calls whose deadline comes before the retry
    /// give up with `error` as the last one; the others go back to the
    /// front of the queue, in order, and no request leaves before the retry
    /// time.
    fn requeue(&mut self, batch: InFlight<W>, error: TsoError, now: Instant) -> Completion<W> {
        let attempts = batch.waiters.iter().map(|w| w.attempts).max().unwrap_or(1);
        let retry_at = now.checked_add(self.retry_delay(&error, attempts)).unwrap_or(now);
        let mut completion = Completion::empty();
        for mut waiter in batch.waiters.into_iter().rev() {
            if waiter.deadline(&self.config) <= retry_at {
                completion.expired += calls(&waiter);
                completion.replies.push(waiter.expire(&self.config, error.clone()));
            } else {
                completion.requeued += calls(&waiter);
                self.outstanding += calls(&waiter);
                self.pending_count += u64::from(waiter.count);
                waiter.last_error = Some(error.clone());
                self.pending.push_front(waiter);
            }
        }
        completion.replies.reverse();
        if completion.requeued > 0 {
            self.hold_until = Some(self.hold_until.map_or(retry_at, |t| t.max(retry_at)));
        }
        completion
    }

    /// The server's advice, capped; without advice, a backoff doubling from
    /// [`FIRST_BACKOFF`] with each attempt, capped the same way.
    fn retry_delay(&self, error: &TsoError, attempts: u32) -> Duration {
        let cap = self.config.max_retry_after;
        match error.retry_after() {
            Some(advice) => advice.min(cap),
            None => FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(cap),
        }
    }
}

/// The calls an entry holds.
fn calls<W>(waiter: &Waiter<W>) -> usize {
    usize::try_from(waiter.calls).unwrap_or(usize::MAX)
}

/// Every call of a batch gets `error`.
fn fail<W>(waiters: Vec<Waiter<W>>, error: &TsoError) -> Completion<W> {
    let mut completion = Completion::empty();
    completion.replies = waiters.into_iter().map(|w| (w.reply, Err(error.clone()))).collect();
    completion
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::RemoteError;

    fn h(raw: u64) -> HybridTimestamp {
        HybridTimestamp::from_raw(raw)
    }

    fn config() -> BatchConfig {
        BatchConfig {
            max_in_flight: 2,
            max_batch: 100,
            batch_wait: Duration::ZERO,
            deadline: Duration::from_secs(1),
            max_retry_after: Duration::from_millis(200),
        }
    }

    fn unavailable(ms: u64) -> TsoError {
        TsoError::Unavailable { retry_after: Some(Duration::from_millis(ms)), message: String::new() }
    }

    fn lost() -> TsoError {
        let addr = ([127, 0, 0, 1], 1).into();
        TsoError::Transport(Arc::new(RemoteError::ConnectionLost { addr, source: quinn::ConnectionError::TimedOut }))
    }

    /// (caller, first raw) for every reply; panics on an error.
    fn granted(completion: Completion<u32>) -> Vec<(u32, u64)> {
        completion.replies.into_iter().map(|(w, r)| (w, r.unwrap().first().raw())).collect()
    }

    #[test]
    fn split_gives_consecutive_ranges_in_order_and_refuses_overflow() {
        let ranges = TsoRange::split(h(4090), &[1, 5, 2]).unwrap();
        let bounds: Vec<(u64, u64)> = ranges.iter().map(|r| (r.first().raw(), r.last().raw())).collect();
        assert_eq!(bounds, [(4090, 4090), (4091, 4095), (4096, 4097)]);
        assert_eq!(TsoRange::split(h(0), &[]).unwrap(), []);
        assert_eq!(TsoRange::split(h(u64::MAX - 2), &[2, 1]).unwrap().len(), 2);
        assert_eq!(TsoRange::split(h(u64::MAX - 2), &[2, 2]), None);
        assert_eq!(TsoRange::split(h(u64::MAX), &[1, 1]), None);
        assert_eq!(TsoRange::split(h(0), &[1, 0]), None);
    }

    #[test]
    fn pending_calls_go_out_as_one_request_and_the_range_is_split_in_order() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        for (caller, count) in [(1, 1), (2, 3), (3, 1)] {
            b.push(caller, count, now);
        }
        let send = b.poll_send(now).unwrap();
        assert_eq!((send.count, send.retry, send.cut_at), (5, false, now + Duration::from_secs(1)));
        assert_eq!(b.poll_send(now), None, "nothing left to send");
        let done = b.complete(send.request_id, Ok(h(1000)), now);
        assert_eq!(done.granted, 5);
        let ranges: Vec<(u32, u64, u32)> =
            done.replies.into_iter().map(|(w, r)| r.map(|r| (w, r.first().raw(), r.count())).unwrap()).collect();
        assert_eq!(ranges, [(1, 1000, 1), (2, 1001, 3), (3, 1004, 1)]);
        assert_eq!(b.max_received(), Some(h(1004)));
        assert_eq!(b.outstanding(), 0);
        // An answer for an unknown (or already answered) request does nothing.
        assert!(b.complete(send.request_id, Ok(h(2000)), now).replies.is_empty());
    }

    #[test]
    fn requests_hold_whole_calls_up_to_max_batch_and_respect_the_in_flight_limit() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        for (caller, count) in [(1, 60), (2, 30), (3, 20), (4, 100), (5, 1)] {
            b.push(caller, count, now);
        }
        let first = b.poll_send(now).unwrap();
        let second = b.poll_send(now).unwrap();
        assert_eq!((first.count, second.count), (90, 20), "whole calls, at most max_batch");
        assert_eq!(b.poll_send(now), None, "two requests in flight at most");
        assert_eq!(b.next_wake(), None, "nothing to do until an answer arrives");
        // Out of order answers: each is checked against its own floor only.
        assert_eq!(granted(b.complete(second.request_id, Ok(h(500)), now)), [(3, 500)]);
        let third = b.poll_send(now).unwrap();
        assert_eq!(third.count, 100);
        assert_eq!(granted(b.complete(first.request_id, Ok(h(400)), now)), [(1, 400), (2, 460)]);
        let fourth = b.poll_send(now).unwrap();
        assert_eq!(fourth.count, 1);
        assert_eq!(b.max_received(), Some(h(519)));
        // The third request was sent after 519 had been received.
        let done = b.complete(third.request_id, Ok(h(519)), now);
        assert!(done.went_backwards);
        assert!(matches!(
            done.replies[..],
            [(4, Err(TsoError::WentBackwards { floor, first }))] if floor == h(519) && first == h(519)
        ));
        assert_eq!(b.max_received(), Some(h(519)), "a refused range is never recorded");
        assert_eq!(granted(b.complete(fourth.request_id, Ok(h(520)), now)), [(5, 520)]);
    }

    #[test]
    fn a_single_call_larger_than_max_batch_still_goes_alone() {
        let now = Instant::now();
        let mut b = Batcher::new(BatchConfig { max_batch: 10, ..config() });
        b.push(1, 1, now);
        b.push(2, 50, now);
        b.push(3, 1, now);
        let counts: Vec<u32> = std::iter::from_fn(|| b.poll_send(now)).map(|s| s.count).collect();
        assert_eq!(counts, [1, 50]);
    }

    #[test]
    fn batch_wait_holds_a_lone_call_until_it_expires_or_the_request_is_full() {
        let now = Instant::now();
        let wait = Duration::from_millis(5);
        let mut b = Batcher::new(BatchConfig { batch_wait: wait, max_batch: 10, ..config() });
        b.push(1, 4, now);
        assert_eq!(b.poll_send(now), None);
        assert_eq!(b.next_wake(), Some(now + wait));
        b.push(2, 4, now + Duration::from_millis(1));
        assert_eq!(b.poll_send(now + Duration::from_millis(4)), None);
        assert_eq!(b.poll_send(now + wait).unwrap().count, 8);
        b.push(3, 6, now + wait);
        b.push(4, 4, now + wait);
        assert_eq!(b.poll_send(now + wait).unwrap().count, 10, "a full request leaves at once");
    }

    #[test]
    fn retryable_errors_requeue_in_order_and_hold_requests_for_the_advice() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        b.push(1, 2, now);
        b.push(2, 3, now);
        let send = b.poll_send(now).unwrap();
        b.push(3, 1, now);
        let later = now + Duration::from_millis(10);
        let done = b.complete(send.request_id, Err(unavailable(50)), later);
        assert_eq!((done.requeued, done.expired, done.replies.len()), (2, 0, 0));
        assert_eq!(b.poll_send(later), None, "retry-after is honoured");
        assert_eq!(b.next_wake(), Some(later + Duration::from_millis(50)));
        let retry = b.poll_send(later + Duration::from_millis(50)).unwrap();
        assert_eq!((retry.count, retry.retry), (6, true), "the retry carries the new call too");
        let done = b.complete(retry.request_id, Ok(h(10)), later);
        assert_eq!(granted(done), [(1, 10), (2, 12), (3, 15)]);

        // Advice is capped; no advice means a doubling backoff, also capped.
        b.push(4, 1, later);
        let send = b.poll_send(later).unwrap();
        b.complete(send.request_id, Err(unavailable(60_000)), later);
        assert_eq!(b.next_wake(), Some(later + Duration::from_millis(200)));
        let at = later + Duration::from_millis(200);
        let send = b.poll_send(at).unwrap();
        b.complete(send.request_id, Err(lost()), at);
        assert_eq!(b.next_wake(), Some(at + FIRST_BACKOFF * 2), "second attempt: 2 × the first backoff");
        let at = at + FIRST_BACKOFF * 2;
        let send = b.poll_send(at).unwrap();
        let done = b.complete(send.request_id, Ok(h(100)), at);
        assert_eq!(granted(done), [(4, 100)]);
        assert_eq!(b.hold_until, None, "a success lifts the hold");
    }

    #[test]
    fn other_errors_fail_every_call_of_the_batch_at_once() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        b.push(1, 1, now);
        b.push(2, 1, now);
        let send = b.poll_send(now).unwrap();
        let done = b.complete(send.request_id, Err(TsoError::CountMismatch { asked: 2, granted: 3 }), now);
        assert_eq!(done.replies.len(), 2);
        assert!(done.replies.iter().all(|(_, r)| matches!(r, Err(TsoError::CountMismatch { .. }))));
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn calls_give_up_at_their_deadline_with_the_last_error() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        b.push(1, 1, now);
        let mut at = now;
        let mut attempts = 0;
        let last = loop {
            let send = b.poll_send(at).unwrap();
            attempts += 1;
            let mut done = b.complete(send.request_id, Err(unavailable(150)), at);
            if let Some((_, result)) = done.replies.pop() {
                assert_eq!(done.expired, 1);
                break result.unwrap_err();
            }
            at = b.next_wake().unwrap();
        };
        // Attempts at 0, 150, …, 750 ms; a retry at 900 ms would be fine but
        // one at 1050 ms would not.
        assert_eq!(attempts, 7);
        match last {
            TsoError::DeadlineExceeded { deadline, attempts: n, last } => {
                assert_eq!((deadline, n), (Duration::from_secs(1), 7));
                assert!(matches!(*last, TsoError::Unavailable { .. }), "{last:?}");
            }
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn beyond_two_in_flight_requests_leave_a_stagger_apart() {
        let now = Instant::now();
        let mut b = Batcher::new(BatchConfig { max_in_flight: 16, ..config() });
        b.push(1, 1, now);
        assert!(b.poll_send(now).is_some());
        b.push(2, 1, now);
        assert!(b.poll_send(now).is_some(), "two may be in flight at once");
        b.push(3, 1, now);
        assert!(b.poll_send(now).is_none(), "a third waits for the stagger");
        assert_eq!(b.next_wake(), Some(now + STAGGER));
        assert!(b.poll_send(now + STAGGER).is_some());
        b.push(4, 1, now + STAGGER);
        assert!(b.poll_send(now + STAGGER).is_none());
        assert!(b.poll_send(now + STAGGER * 2).is_some());
    }

    #[test]
    fn far_from_the_leader_as_many_requests_leave_at_once_as_staggers_fit_in_an_answer() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(BatchConfig { max_in_flight: 64, ..config() });
        // One answer that took 26 ms (a WAN round trip).
        b.push(0, 1, start);
        let first = b.poll_send(start).unwrap();
        let now = start + ms(26);
        assert!(b.complete(first.request_id, Ok(HybridTimestamp::from_raw(10)), now).replies.len() == 1);
        // 26 ms / 0.5 ms = 52 leave at once, one call each; the 53rd waits
        // for the stagger.
        for call in 1..=52 {
            b.push(call, 1, now);
            assert!(b.poll_send(now).is_some(), "request {call} of 52 held back");
        }
        b.push(53, 1, now);
        assert!(b.poll_send(now).is_none(), "beyond answer time / stagger the stagger applies");
        assert_eq!(b.next_wake(), Some(now + STAGGER));
    }

    #[test]
    fn near_the_leader_fast_answers_keep_two_at_once() {
        let start = Instant::now();
        let mut b = Batcher::new(BatchConfig { max_in_flight: 64, ..config() });
        let mut now = start;
        // Answers in 0.2 ms: less than a stagger.
        for i in 0..20 {
            b.push(i, 1, now);
            let out = b.poll_send(now).unwrap();
            now += Duration::from_micros(200);
            b.complete(out.request_id, Ok(HybridTimestamp::from_raw(100 + i)), now);
        }
        for call in 0..2 {
            b.push(call, 1, now);
            assert!(b.poll_send(now).is_some());
        }
        b.push(3, 1, now);
        assert!(b.poll_send(now).is_none(), "a third waits for the stagger");
    }

    #[test]
    fn a_call_is_retried_only_while_its_own_deadline_allows() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(BatchConfig { max_in_flight: 1, ..config() });
        b.push(1, 1, now);
        let first = b.poll_send(now).unwrap();
        b.push(2, 1, now + ms(900));
        // A 10 ms backoff: the retry at 960 ms is within call 1's deadline.
        let done = b.complete(first.request_id, Err(lost()), now + ms(950));
        assert_eq!((done.expired, done.requeued), (0, 1));
        let second = b.poll_send(now + ms(960)).unwrap();
        assert_eq!((second.count, second.retry), (2, true));
        assert_eq!(second.cut_at, now + ms(1900), "the attempt runs until the youngest call's deadline");
        // A 20 ms backoff: a retry at 1015 ms is too late for call 1, not for call 2.
        let done = b.complete(second.request_id, Err(lost()), now + ms(995));
        assert_eq!((done.expired, done.requeued), (1, 1));
        match &done.replies[..] {
            [(1, Err(TsoError::DeadlineExceeded { attempts: 2, last, .. }))] => {
                assert!(matches!(**last, TsoError::Transport(_)), "{last:?}");
            }
            other => panic!("expected call 1 to give up, got {other:?}"),
        }
        let third = b.poll_send(now + ms(1015)).unwrap();
        assert_eq!((third.count, third.retry, third.cut_at), (1, true, now + ms(1900)));
    }

    #[test]
    fn a_requeued_call_held_past_its_deadline_by_another_error_expires_on_its_own() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(config());
        b.push(1, 1, now);
        let a = b.poll_send(now).unwrap();
        b.push(2, 1, now + ms(500));
        let c = b.poll_send(now + ms(500)).unwrap();
        assert_eq!(b.complete(a.request_id, Err(lost()), now + ms(950)).requeued, 1);
        // The other request's advice holds everything until 1155 ms.
        assert_eq!(b.complete(c.request_id, Err(unavailable(200)), now + ms(955)).requeued, 1);
        assert_eq!(b.poll_send(now + ms(999)), None);
        assert_eq!(b.next_wake(), Some(now + ms(1000)), "call 1's deadline comes first");
        assert!(b.expire(now + ms(999)).replies.is_empty());
        let expired = b.expire(now + ms(1000));
        assert_eq!(expired.expired, 1);
        match &expired.replies[..] {
            [(1, Err(TsoError::DeadlineExceeded { attempts: 1, last, .. }))] => {
                assert!(matches!(**last, TsoError::Transport(_)), "{last:?}");
            }
            other => panic!("expected call 1 to give up, got {other:?}"),
        }
        assert_eq!(b.next_wake(), Some(now + ms(1155)));
        let retry = b.poll_send(now + ms(1155)).unwrap();
        assert_eq!((retry.count, retry.retry), (1, true));
        assert_eq!(b.outstanding(), 1);
    }

    #[test]
    fn calls_join_the_waiting_entry_up_to_max_batch_and_share_its_range_by_offset() {
        let now = Instant::now();
        let mut b = Batcher::new(BatchConfig { max_batch: 10, ..config() });
        let mut made = 0;
        let mut join = |b: &mut Batcher<u32>, count| {
            let j = b.join(
                count,
                || now,
                || {
                    made += 1;
                    made
                },
            );
            (j.reply, j.offset, j.started)
        };
        assert_eq!(join(&mut b, 1), (1, 0, true), "the first call starts an entry");
        assert_eq!(join(&mut b, 4), (1, 1, false));
        assert_eq!(join(&mut b, 5), (1, 5, false), "exactly max_batch fits");
        assert_eq!(join(&mut b, 1), (2, 0, true), "a full entry takes no more");
        assert_eq!(join(&mut b, 12), (3, 0, true), "a call above max_batch stands alone");
        assert_eq!(join(&mut b, 1), (4, 0, true));
        assert_eq!(b.outstanding(), 6);
        let first = b.poll_send(now).unwrap();
        assert_eq!((first.count, first.new_calls), (10, 3));
        // A call joins the youngest entry still waiting, never one sent.
        assert_eq!(join(&mut b, 2), (4, 1, false));
        let second = b.poll_send(now).unwrap();
        assert_eq!((second.count, second.new_calls), (1, 1), "entry 2; entry 3 does not fit beside it");
        let done = b.complete(first.request_id, Ok(h(100)), now);
        let replies: Vec<(u32, u64, u32)> =
            done.replies.into_iter().map(|(w, r)| r.map(|r| (w, r.first().raw(), r.count())).unwrap()).collect();
        assert_eq!(replies, [(1, 100, 10)], "one answer per entry, not per call");
        assert_eq!(b.outstanding(), 4, "entry 1's three calls are done");
    }

    #[test]
    fn a_call_never_joins_a_requeued_entry_and_a_requeued_entry_keeps_its_calls() {
        let now = Instant::now();
        let mut b = Batcher::new(config());
        let joined = |b: &mut Batcher<u32>, count, id| b.join(count, || now, || id).reply;
        assert_eq!(joined(&mut b, 1, 1), 1);
        assert_eq!(joined(&mut b, 1, 99), 1);
        let send = b.poll_send(now).unwrap();
        let done = b.complete(send.request_id, Err(unavailable(5)), now);
        assert_eq!((done.requeued, done.expired), (2, 0), "counted in calls");
        assert_eq!(joined(&mut b, 1, 2), 2, "a new entry behind the requeued one");
        assert_eq!(b.outstanding(), 3);
        let retry = b.poll_send(now + Duration::from_millis(5)).unwrap();
        assert_eq!((retry.count, retry.retry, retry.new_calls), (3, true, 1));
        assert_eq!(granted(b.complete(retry.request_id, Ok(h(7)), now)), [(1, 7), (2, 9)]);
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn drain_hands_back_every_entry_pending_or_in_flight() {
        let now = Instant::now();
        let mut b = Batcher::new(BatchConfig { max_batch: 2, ..config() });
        for id in 1..=3 {
            b.join(2, || now, || id);
        }
        assert!(b.poll_send(now).is_some());
        let mut left = b.drain();
        left.sort_unstable();
        assert_eq!(left, [1, 2, 3]);
        assert_eq!(b.outstanding(), 0);
        assert_eq!(b.poll_send(now), None);
    }
}
