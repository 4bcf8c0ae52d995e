//! Probes between sites (SPEC.md §4.4–4.5), sans-IO.
//!
//! The requester side is a [`Prober`] per peer connection: it hands out
//! probe requests (the caller supplies the nonce from a CSPRNG and the
//! reader-clock instant t1), remembers each outstanding one for at most
//! `timeout`, and turns a matching reply into a [`Sample`] at the reader
//! instant t4 the reply arrived. The responder side is [`answer`]: the
//! responder's *local basis* (its own sources only — the no-echo rule)
//! carried to t2 and t3.
//!
//! # The sample (SPEC.md §4.5)
//!
//! Causality gives T(t1) ≤ T(t2) ≤ T(t3) ≤ T(t4), and the reply's `at-send`
//! contains T(t3). So at t4:
//!
//! * lower end: T(t4) ≥ T(t3) ≥ `at-send.earliest`;
//! * upper end: T(t4) − T(t3) ≤ (T(t4) − T(t1)) − (T(t3) − T(t2)) ≤ U − P,
//!   where U = ⌈rtt · fastest local rate⌉ bounds the true time of the whole
//!   round trip and P = ⌊processing · (1 − ρ_r)⌋ bounds from below the true
//!   time the responder held the request.
//!
//! `[at-send.earliest, at-send.latest + U − P]` — no assumption that the two
//! directions take equal time, so an asymmetric WAN path widens the sample
//! but cannot falsify it. A retransmission cannot pollute the measurement
//! either: probes are unreliable datagrams, and a lost one simply expires.
//!
//! Invariant: a sample returned by [`Prober::on_reply`] contains true time at
//! t4, provided the responder's `at-send` did, the responder's reader clock
//! ran within `processing · (1 ± ρ_r)`, and the local reader clock ran within
//! the [`DriftModel`] given.
//!
//! Memory is bounded: at most [`MAX_OUTSTANDING`] probes are remembered per
//! peer (the oldest is forgotten first), and [`BestOf`] keeps at most its
//! capacity of samples.

use std::collections::VecDeque;
use std::time::Duration;

use tsod_client::suspended_since;
use tsod_proto::bound::RateBounds;
use tsod_proto::shm::PublishedState;
use tsod_proto::wire::{ProbeReply, ProbeRequest};
use tsod_proto::{ClockStatus, DriftModel, MonoInstant, Ppb, TimeInterval, Timescale};

use crate::clock::ClockReading;
use crate::sample::Sample;

/// Probes remembered per peer; a newer one pushes out the oldest.
pub const MAX_OUTSTANDING: usize = 16;

const BILLION: u128 = 1_000_000_000;

/// Why a probe reply was not turned into a sample (each is counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeReject {
    /// No outstanding probe has this nonce: never sent, already answered
    /// (a replay or duplicate), or expired.
    #[error("reply to an unknown, answered or expired probe")]
    UnknownNonce,
    /// The nonce matched but the echoed t1 did not.
    #[error("reply echoes a different send instant than the probe had")]
    WrongEcho,
    /// The reply arrived before its request left on the local reader clock.
    #[error("reply arrived before its request was sent")]
    BeforeSend,
    /// The responder did not mark its intervals as its local basis.
    #[error("reply not from the responder's local basis (no-echo rule)")]
    NotLocalBasis,
    /// The responder's local basis has no bound.
    #[error("responder's local basis is {0}")]
    Unbounded(ClockStatus),
    /// The responder runs another timescale.
    #[error("responder runs another timescale")]
    TimescaleMismatch,
    /// `at-receive.earliest > at-send.latest`: the responder contradicts itself.
    #[error("responder's intervals contradict each other")]
    Inconsistent,
    /// The responder's processing time exceeds the whole round trip.
    #[error("processing time longer than the round trip")]
    ProcessingExceedsRoundTrip,
    /// The round trip exceeds the configured limit.
    #[error("round trip longer than the limit")]
    RoundTripTooLong,
    /// The interval would leave the representable range.
    #[error("interval out of range")]
    OutOfRange,
}

/// The requester's side of probing one peer.
#[derive(Clone, Debug)]
pub struct Prober {
    outstanding: VecDeque<(u64, MonoInstant)>,
    timeout: Duration,
    timescale: Timescale,
}

impl Prober {
    /// A prober whose probes expire `timeout` after they were sent.
    pub fn new(timeout: Duration, timescale: Timescale) -> Self {
        Self { outstanding: VecDeque::with_capacity(MAX_OUTSTANDING), timeout, timescale }
    }

    /// A probe with `nonce` (from a CSPRNG) sent at reader instant `t1`.
    pub fn request(&mut self, nonce: u64, t1: MonoInstant) -> ProbeRequest {
        self.expire(t1);
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((nonce, t1));
        ProbeRequest { nonce, requester_send: t1 }
    }

    /// Probes still outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Forgets every outstanding probe (the connection was lost).
    pub fn clear(&mut self) {
        self.outstanding.clear();
    }

    fn expire(&mut self, now: MonoInstant) {
        let timeout = self.timeout;
        self.outstanding.retain(|(_, t1)| {
            now.as_nanos().checked_sub(t1.as_nanos()).is_none_or(|age| Duration::from_nanos(age) <= timeout)
        });
    }

    /// Matches `reply`, received at reader instant `t4`, and turns it into a
    /// sample at `t4` with the local drift model `local`. The probe is
    /// retired by its first matching reply, whether the sample is usable or not.
    pub fn on_reply(
        &mut self,
        reply: &ProbeReply,
        t4: MonoInstant,
        local: DriftModel,
        max_round_trip: Duration,
    ) -> Result<Sample, ProbeReject> {
        self.expire(t4);
        let position = self.outstanding.iter().position(|(nonce, _)| *nonce == reply.nonce);
        let Some(position) = position else {
            return Err(ProbeReject::UnknownNonce);
        };
        let Some((_, t1)) = self.outstanding.remove(position) else {
            return Err(ProbeReject::UnknownNonce);
        };
        if reply.requester_send != t1 {
            return Err(ProbeReject::WrongEcho);
        }
        sample_from_reply(reply, t1, t4, local, self.timescale, max_round_trip)
    }
}

/// SPEC.md §4.5: true time at `t4` from a matched reply to a probe sent at `t1`.
pub fn sample_from_reply(
    reply: &ProbeReply,
    t1: MonoInstant,
    t4: MonoInstant,
    local: DriftModel,
    timescale: Timescale,
    max_round_trip: Duration,
) -> Result<Sample, ProbeReject> {
    if !reply.local_basis {
        return Err(ProbeReject::NotLocalBasis);
    }
    if !reply.status.is_bounded() {
        return Err(ProbeReject::Unbounded(reply.status));
    }
    if reply.timescale != timescale {
        return Err(ProbeReject::TimescaleMismatch);
    }
    if reply.at_receive.earliest() > reply.at_send.latest() {
        return Err(ProbeReject::Inconsistent);
    }
    let rtt = t4.as_nanos().checked_sub(t1.as_nanos()).ok_or(ProbeReject::BeforeSend)?;
    if u128::from(rtt) > max_round_trip.as_nanos() {
        return Err(ProbeReject::RoundTripTooLong);
    }
    let fastest = local.rates().high_q32();
    let upper = u64::try_from((u128::from(rtt) * u128::from(fastest)).div_ceil(1 << 32))
        .map_err(|_| ProbeReject::OutOfRange)?;
    let rho_r = u128::try_from(reply.drift_bound.get()).map_err(|_| ProbeReject::OutOfRange)?;
    let processing = reply.processing.as_nanos();
    let held = u64::try_from(processing.saturating_mul(BILLION.saturating_sub(rho_r)) / BILLION)
        .map_err(|_| ProbeReject::OutOfRange)?;
    let extra = upper.checked_sub(held).ok_or(ProbeReject::ProcessingExceedsRoundTrip)?;
    let latest = reply.at_send.latest().checked_add(Duration::from_nanos(extra)).ok_or(ProbeReject::OutOfRange)?;
    let interval = TimeInterval::new(reply.at_send.earliest(), latest).map_err(|_| ProbeReject::OutOfRange)?;
    Ok(Sample { at: t4, interval })
}

/// The responder's reply to `request`, received at `t2` and answered at
/// `t3` (full clock readings), from `basis`, the latest state of its local
/// basis (selection over its own sources only).
///
/// Unbounded replies (a status requesters never use, point intervals) go out
/// when the basis is unbounded or stale, or when `CLOCK_BOOTTIME` shows a
/// suspend since the basis was computed (SPEC.md §5.6): the reader clock
/// stood still through it, so carrying the basis along it would be early by
/// the whole suspend. When the basis's rate spread exceeds what a reply's
/// `drift-bound` can say (10⁶ ppb), `processing` is sent as 0, the always
/// valid plain form (SPEC.md §4.5), rather than an understated ρ_r.
pub fn answer(
    request: &ProbeRequest,
    basis: &PublishedState,
    t2: &ClockReading,
    t3: &ClockReading,
    timescale: Timescale,
) -> ProbeReply {
    let suspended = suspended_since(basis, t2.raw, t2.boottime) || suspended_since(basis, t3.raw, t3.boottime);
    let anchor = &basis.anchor;
    let carried = (!suspended).then(|| anchor.interval_at(t2.raw).ok().zip(anchor.interval_at(t3.raw).ok())).flatten();
    let spread = rate_spread_ppb(anchor.rates);
    let drift_bound = Ppb::new(i64::try_from(spread).unwrap_or(i64::MAX).min(DriftModel::MAX_RATE.get()));
    let processing = if spread > u128::from(DriftModel::MAX_RATE.get().unsigned_abs()) {
        Duration::ZERO
    } else {
        Duration::from_nanos(t3.raw.as_nanos().saturating_sub(t2.raw.as_nanos()))
    };
    let (status, at_receive, at_send) = match carried {
        Some((r, s)) => (anchor.status, r, s),
        None => {
            let status = if suspended {
                ClockStatus::Disrupted
            } else if anchor.status.is_bounded() {
                ClockStatus::Unsynchronized
            } else {
                anchor.status
            };
            let point = TimeInterval::point(tsod_proto::Timestamp::EPOCH);
            (status, point, point)
        }
    };
    ProbeReply {
        nonce: request.nonce,
        requester_send: request.requester_send,
        at_receive,
        at_send,
        processing,
        drift_bound,
        status,
        timescale,
        local_basis: true,
    }
}

/// max(1 − low, high − 1) of the rate bounds, in ppb, rounded up.
fn rate_spread_ppb(rates: RateBounds) -> u128 {
    let one: u128 = 1 << 32;
    let low = u128::from(rates.low_q32());
    let high = u128::from(rates.high_q32());
    let spread = one.saturating_sub(low).max(high.saturating_sub(one));
    (spread * BILLION).div_ceil(one)
}

/// The ρ (ppb, rounded up, at most 10⁶) such that true time over a raw span
/// `d` lies in `d · (1 ± ρ)` given these rate bounds, as far as a message's
/// `drift-bound` field can say it (informational in now-responses).
pub fn drift_bound_of(rates: RateBounds) -> Ppb {
    Ppb::new(i64::try_from(rate_spread_ppb(rates)).unwrap_or(i64::MAX).min(DriftModel::MAX_RATE.get()))
}

/// The best of a peer's recent samples: each is a valid bound at its own
/// instant, so the one whose projection to the newest instant is narrowest
/// wins (usually the shortest round trip); ties go to the newest. The
/// winner is returned as measured, at its own instant, so the engine's
/// age and disruption checks apply to the real measurement. Clear it on a
/// clock disruption: samples cannot be carried across one. A new sample
/// disjoint from a kept one (carried to its instant) evicts it: that is how
/// a VM pause, which no clock reading shows, looks from here.
#[derive(Clone, Debug)]
pub struct BestOf {
    samples: VecDeque<Sample>,
    capacity: usize,
    max_age: Duration,
}

impl BestOf {
    /// Keeps at most `capacity` (≥ 1) samples, none older than `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        let capacity = capacity.max(1);
        Self { samples: VecDeque::with_capacity(capacity), capacity, max_age }
    }

    /// Adds `sample` and returns the best sample as of its instant under `model`.
    pub fn push(&mut self, sample: Sample, model: DriftModel) -> Sample {
        let now = sample.at;
        let max_age = self.max_age;
        self.samples.retain(|s| {
            now.as_nanos().checked_sub(s.at.as_nanos()).is_some_and(|age| Duration::from_nanos(age) <= max_age)
        });
        // A kept sample that, carried to now, misses the new one entirely is
        // from before a disruption no reading showed (a VM pause: every
        // guest clock froze) or is the liar; either way the newest decides.
        self.samples.retain(|s| {
            model
                .extrapolate(s.interval, s.at, now)
                .is_none_or(|c| !(c.latest() < sample.interval.earliest() || sample.interval.latest() < c.earliest()))
        });
        if self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        let mut best = sample;
        let mut best_width = sample.interval.width();
        for s in self.samples.iter().rev() {
            if let Some(interval) = model.extrapolate(s.interval, s.at, now) {
                if interval.width() < best_width {
                    best = *s;
                    best_width = interval.width();
                }
            }
        }
        best
    }

    /// Forgets everything (the peer's connection was lost or the clock disrupted).
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests;
