//! `[clockbound]`: tsod's bound, also published in AWS ClockBound 2.x's
//! shared-memory layout (layout version 2), so that ClockBound's readers
//! (libclockbound, the `clock-bound-client` crate, YugabyteDB's
//! `time_source=clockbound`) run unchanged on tsod. SPEC.md §5.8 is the
//! normative account; this is the derivation.
//!
//! # What a ClockBound reader computes
//!
//! It reads `CLOCK_REALTIME` (`real`), then `CLOCK_MONOTONIC_COARSE`
//! (`mono`), and returns `real ± (bound + (mono − as_of) · max_drift)`,
//! with the published status for 5 s after `as_of`, then `free-running`
//! while `mono < void_after`, then `unknown`. So the record must make
//! `|real − true time| ≤ bound + (mono − as_of) · drift` at every read
//! until the later of `void_after` and `as_of + 5 s`.
//!
//! # Why it stays true
//!
//! * **At `as_of`.** tsod's interval `[E, L]` is not centred on the system
//!   clock. Each record reads the host's clocks together ([`HostReading`]:
//!   coarse, raw, monotonic, realtime, raw), takes tsod's earliest end at
//!   the raw read before the realtime read and its latest end at the raw
//!   read after, and publishes `bound₀ = max(real − E, L − real)`: true time
//!   at the realtime read is in `[real − bound₀, real + bound₀]`.
//! * **After it.** `CLOCK_REALTIME` and `CLOCK_MONOTONIC` are one kernel
//!   clock (the same NTP-adjusted multiplier) apart from an offset that only
//!   changes when the clock is *stepped* (`settimeofday`, `clock_settime`,
//!   `ADJ_SETOFFSET`, the kernel's leap-second step, resume from suspend):
//!   between steps their rates are identical, whatever the discipline does
//!   (`adjtime`'s 500 ppm slew, the frequency up to ±500 ppm, the tick up to
//!   ±10 %, the PLL). So the error `real − true` changes, per monotonic ns,
//!   by `1 − r/q`: `q` the monotonic clock's rate per raw ns (the
//!   discipline's adjustment), `r` true time's per raw ns (tsod's measured
//!   `f ± ρ`, the segment's rate bounds). The daemon measures `q` over the
//!   last 50–150 ms ([`MonotonicRate`]), widens it by the
//!   `slew-allowance-ppm` (500 ppm by default: the discipline may change its
//!   rate that much before the next record), and publishes
//!   `max_drift = max(r_high/q_low − 1, 1 − r_low/q_high)`, rounded up
//!   ([`drift`]).
//! * **The coarse clock.** Readers measure `mono − as_of` on
//!   `CLOCK_MONOTONIC_COARSE`, which lags `CLOCK_MONOTONIC` by up to a
//!   kernel tick. `as_of` is a coarse reading taken *before* the realtime
//!   read (so it is no later than it), and `bound = bound₀ + max_drift ·
//!   2 ticks + 2 ns` (the reader's own coarse read may be behind by a tick;
//!   its `f64` scaling truncates).
//! * **`void_after`.** tsod's own `valid_until`, carried onto the monotonic
//!   clock at its slowest admissible rate, less two ticks. But ClockBound's
//!   readers trust a record's status for 5 s after `as_of` whatever
//!   `void_after` says (their grace for a restarting daemon): a stopped
//!   daemon leaves them `unknown` within max(5 s, `clock.horizon-ms`). The
//!   drift keeps the bound growing, and true, over that span, as tsod's own
//!   holdover would.
//!
//! # What it does not cover, and how that is caught
//!
//! A step of `CLOCK_REALTIME`, or a discipline changing the clock's rate by
//! more than the allowance, moves the system clock further than the current
//! record allows until the next one (every tick of the main loop, at most
//! `clock.update-interval-ms`), which re-reads the clock and so is right
//! again. ClockBound itself has the same exposure between its updates. Each
//! record checks the previous one against the fresh reading
//! ([`missed_by`]); a miss is logged, adds one to the disruption
//! marker, and restarts the rate measurement, so readers get `unknown`
//! until a fresh rate is measured. tsod's own step detection (SPEC.md §2.6)
//! turns steps over 1 ms into `disrupted`, which maps onto ClockBound's
//! `disrupted`.
//!
//! # Status
//!
//! `synchronized` and `degraded` → `synchronized`; `free-running`
//! (holdover) → `free-running`; `unsynchronized` → `unknown`; `disrupted`
//! → `disrupted`. The disruption marker is tsod's `disruption_count` plus
//! the misses above. `clock_disruption_support_enabled` is false: tsod
//! watches the hypervisor's VMClock itself (`[clock] vmclock`) and publishes
//! `disrupted`, so readers need not open `/dev/vmclock0`.
//!
//! The host's clocks are read directly, never through the daemon's
//! [`crate::clock::Clock`]: ClockBound's readers read the host's
//! `CLOCK_REALTIME`, so that is the clock the bound must be around, even
//! when the daemon runs on a simulated clock in tests.

mod mapping;
mod segment;

use std::collections::VecDeque;
use std::io;

use tracing::{debug, error, info, warn};
use tsod_proto::Ppb;
use tsod_proto::shm::{Anchor, PublishedState};
use tsod_shm::{ClockBoundRecord, coarse_monotonic_now, coarse_monotonic_resolution};

pub use self::mapping::{
    HostReading, MIN_RATE_WINDOW, MonotonicRate, READER_GRACE, Settings, UNBOUNDED, Unbounded, drift, missed_by,
    record, status,
};
pub use self::segment::{ClockBoundError, Segment};
use crate::config::ClockBoundConfig;

/// Most readings kept for the rate measurement.
const MAX_READINGS: usize = 1_024;
/// A reading whose raw reads are further apart than this is taken again.
const READING_GOOD_GAP_NS: u64 = 2_000;
/// Attempts at a reading; the one with the smallest gap is kept.
const READING_ATTEMPTS: usize = 8;

/// The daemon's ClockBound publisher: one record per tick of the main loop.
#[derive(Debug)]
pub struct ClockBoundPublisher {
    segment: Segment,
    settings: Settings,
    /// Recent readings, oldest first: the rate is measured from the newest
    /// one at least [`MIN_RATE_WINDOW`] old.
    readings: VecDeque<HostReading>,
    /// The last record with bound, the anchor and the reading it came from.
    last: Option<(ClockBoundRecord, Anchor, HostReading)>,
    /// Records found to have missed ([`missed_by`]).
    misses: u64,
    /// Set once another process wrote the segment: nothing more is written.
    stopped: bool,
}

impl ClockBoundPublisher {
    /// Sets up the segment of `config` (SPEC.md §5.8): refuses a path tsod
    /// did not create, reuses its own, or creates one that says `unknown`.
    pub fn open(config: &ClockBoundConfig) -> Result<Self, ClockBoundError> {
        let tick = coarse_monotonic_resolution().map_err(ClockBoundError::Clock)?;
        let settings = Settings {
            slew_allowance: Ppb::from_ppm(i32::try_from(config.slew_allowance_ppm).unwrap_or(i32::MAX)),
            coarse_lag: tick.saturating_mul(2),
        };
        let now = coarse_monotonic_now().map_err(ClockBoundError::Clock)?;
        let first = ClockBoundRecord {
            as_of: now,
            void_after: now,
            bound: UNBOUNDED,
            disruption_marker: 0,
            max_drift: Ppb::ZERO,
            status: tsod_shm::ClockBoundStatus::Unknown,
            disruption_support: false,
        };
        let (segment, reused) = Segment::open(&config.path, &first)?;
        info!(
            path = %config.path.display(),
            reused,
            slew_allowance_ppm = config.slew_allowance_ppm,
            coarse_tick = ?tick,
            "publishing a ClockBound-compatible segment"
        );
        Ok(Self { segment, settings, readings: VecDeque::new(), last: None, misses: 0, stopped: false })
    }

    /// Publishes the record for tsod's `state` at this instant.
    pub fn publish(&mut self, state: &PublishedState) {
        if self.stopped {
            return;
        }
        if !self.segment.still_ours() {
            error!(
                path = %self.segment.path().display(),
                "another process is writing the ClockBound segment (ClockBound's own daemon on the same path?); \
                 tsod stops writing it"
            );
            self.stopped = true;
            return;
        }
        let now = match read_host_clocks() {
            Ok(now) => now,
            Err(e) => {
                warn!(error = %e, "cannot read the host's clocks; the ClockBound segment is not updated");
                return;
            }
        };
        if let Some((previous, anchor, reading)) = &self.last {
            if let Some(miss) = missed_by(previous, anchor, reading, &now, &self.settings) {
                self.misses = self.misses.saturating_add(1);
                let offset = |r: &HostReading| i128::from(r.realtime.as_nanos()) - i128::from(r.monotonic.as_nanos());
                let step = i64::try_from(offset(&now) - offset(reading)).unwrap_or(i64::MAX);
                warn!(
                    missed_by_ns = miss,
                    realtime_moved_against_monotonic_ns = step,
                    "CLOCK_REALTIME moved further than the last ClockBound record allowed (a step, or the \
                     discipline changed its rate by more than clockbound.slew-allowance-ppm); readers may have \
                     had an interval without true time since it. Measuring the clock's rate afresh"
                );
                self.readings.clear();
            }
        }
        let rate = self.rate_at(&now);
        let marker = state.disruption_count.saturating_add(self.misses);
        let (record, unbounded) = record(&state.anchor, marker, &now, rate, &self.settings);
        if let Some(why) = unbounded {
            debug!(?why, "ClockBound record without a bound");
        }
        self.segment.write(&record);
        self.last = unbounded.is_none().then_some((record, state.anchor, now));
    }

    /// `CLOCK_MONOTONIC`'s rate from the newest kept reading at least
    /// [`MIN_RATE_WINDOW`] before `now`; keeps `now`.
    fn rate_at(&mut self, now: &HostReading) -> Option<MonotonicRate> {
        let base = self.readings.iter().rposition(|r| MonotonicRate::between(r, now).is_some());
        if let Some(base) = base {
            self.readings.drain(..base);
        }
        let rate = self.readings.front().and_then(|r| MonotonicRate::between(r, now));
        if self.readings.len() >= MAX_READINGS {
            self.readings.pop_front();
        }
        self.readings.push_back(*now);
        rate
    }
}

/// Reads the host's clocks for one record ([`HostReading`]'s order), again
/// while the raw reads are more than 2 µs apart (preempted), keeping the
/// tightest of a few attempts.
fn read_host_clocks() -> io::Result<HostReading> {
    let mut best: Option<HostReading> = None;
    for _ in 0..READING_ATTEMPTS {
        let coarse = coarse_monotonic_now()?;
        let raw_before = tsod_shm::reader_clock_now()?;
        let monotonic = tsod_shm::monotonic_now()?;
        let realtime = tsod_shm::realtime_now()?;
        let raw_after = tsod_shm::reader_clock_now()?;
        let reading = HostReading { coarse, raw_before, monotonic, realtime, raw_after };
        if best.is_none_or(|b| reading.gap() < b.gap()) {
            best = Some(reading);
        }
        if reading.gap() <= READING_GOOD_GAP_NS {
            break;
        }
    }
    best.ok_or_else(|| io::Error::other("no clock reading"))
}
