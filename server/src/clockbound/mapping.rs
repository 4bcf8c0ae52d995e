//! The pure half of the ClockBound segment: from tsod's published state and
//! one reading of the host's clocks to ClockBound's record, and the check
//! that the previous record held. No I/O; the clocks are arguments. The
//! derivation is in the parent module's doc and SPEC.md §5.8.

use std::time::Duration;

use tsod_proto::bound::RateBounds;
use tsod_proto::shm::Anchor;
use tsod_proto::{ClockStatus, MonoInstant, Ppb, Timestamp};
use tsod_shm::{ClockBoundRecord, ClockBoundStatus};

/// The bound published with an unbounded status: one hour, so that a
/// consumer that ignores the status cannot mistake it for a useful bound,
/// and no reader's arithmetic comes near overflow.
pub const UNBOUNDED: Duration = Duration::from_secs(3_600);
/// The shortest span over which `CLOCK_MONOTONIC`'s rate is measured.
pub const MIN_RATE_WINDOW: Duration = Duration::from_millis(50);
/// ClockBound's readers scale the drift in `f64` and truncate: at most
/// 1 ns lost, plus the conversion's rounding.
const READER_ROUNDING_NS: i128 = 2;
/// Slack of [`missed_by`] for the nanosecond roundings of the
/// extrapolations compared (the read gaps are added to it).
const CHECK_ROUNDING_NS: i128 = 16;
/// ClockBound's readers trust a record's status this long after its
/// `as_of`, whatever its `void_after` (their grace for a restarting daemon).
pub const READER_GRACE: Duration = Duration::from_secs(5);
const PPB: i128 = 1_000_000_000;
const Q32: i128 = 1 << 32;

/// The host's clocks read together, in this order, for one record:
/// `CLOCK_MONOTONIC_COARSE`, `CLOCK_MONOTONIC_RAW`, `CLOCK_MONOTONIC`,
/// `CLOCK_REALTIME`, `CLOCK_MONOTONIC_RAW` again. The two raw reads
/// bracket the other two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostReading {
    /// `CLOCK_MONOTONIC_COARSE`, read first: at most `CLOCK_MONOTONIC` at
    /// the realtime read.
    pub coarse: MonoInstant,
    /// `CLOCK_MONOTONIC_RAW` before.
    pub raw_before: MonoInstant,
    /// `CLOCK_MONOTONIC`.
    pub monotonic: MonoInstant,
    /// `CLOCK_REALTIME`.
    pub realtime: Timestamp,
    /// `CLOCK_MONOTONIC_RAW` after.
    pub raw_after: MonoInstant,
}

impl HostReading {
    /// The raw span the reading took, ns.
    pub fn gap(&self) -> u64 {
        self.raw_after.as_nanos().saturating_sub(self.raw_before.as_nanos())
    }
}

/// `CLOCK_MONOTONIC`'s rate against `CLOCK_MONOTONIC_RAW` between two
/// readings, as bounds `[low, high]` in parts per billion of one
/// (10⁹: the same rate). The difference is the discipline's adjustment of
/// the kernel's clock (frequency, tick, slew), which `CLOCK_REALTIME`
/// shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonotonicRate {
    low: i128,
    high: i128,
}

impl MonotonicRate {
    /// The rate between `earlier` and `later`, or `None` if the readings are
    /// less than [`MIN_RATE_WINDOW`] apart or out of order.
    pub fn between(earlier: &HostReading, later: &HostReading) -> Option<Self> {
        let monotonic = later.monotonic.signed_nanos_since(earlier.monotonic);
        let raw_min = later.raw_before.signed_nanos_since(earlier.raw_after);
        let raw_max = later.raw_after.signed_nanos_since(earlier.raw_before);
        if raw_min < i128::try_from(MIN_RATE_WINDOW.as_nanos()).ok()? || monotonic <= 0 {
            return None;
        }
        let low = monotonic * PPB / raw_max;
        let high = ceil_div(monotonic * PPB, raw_min);
        Some(Self { low, high })
    }

    /// Exactly `ppb` parts per billion of one (for tests and derivations).
    pub fn exactly(ppb: i64) -> Self {
        Self { low: i128::from(ppb), high: i128::from(ppb) }
    }
}

/// What the mapping needs besides the state and the reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How far `CLOCK_MONOTONIC`'s rate may move from the measured one
    /// before the next record (`[clockbound] slew-allowance-ppm`).
    pub slew_allowance: Ppb,
    /// How far `CLOCK_MONOTONIC_COARSE` may lag `CLOCK_MONOTONIC` (twice
    /// the kernel's tick).
    pub coarse_lag: Duration,
}

/// ClockBound's status for tsod's.
pub fn status(status: ClockStatus) -> ClockBoundStatus {
    match status {
        ClockStatus::Synchronized | ClockStatus::Degraded => ClockBoundStatus::Synchronized,
        ClockStatus::FreeRunning => ClockBoundStatus::FreeRunning,
        ClockStatus::Unsynchronized => ClockBoundStatus::Unknown,
        ClockStatus::Disrupted => ClockBoundStatus::Disrupted,
    }
}

/// Why a record carries no bound, though tsod's status may be bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unbounded {
    /// tsod has no bound (`unsynchronized` or `disrupted`).
    Status(ClockBoundStatus),
    /// `CLOCK_MONOTONIC`'s rate is not measured yet.
    NoRate,
    /// tsod's state is past its `valid_until`, or too close to it.
    Stale,
    /// The numbers do not fit ClockBound's fields (a drift of 100 % or more).
    OutOfRange,
}

/// The record for tsod's `anchor` at `now`: the bound around
/// `CLOCK_REALTIME` covering both ends of tsod's interval, the drift of
/// [`drift`], and a `void_after` no later than tsod's own `valid_until`;
/// or, with [`Unbounded`], a record readers cannot use.
pub fn record(
    anchor: &Anchor,
    disruption_marker: u64,
    now: &HostReading,
    rate: Option<MonotonicRate>,
    settings: &Settings,
) -> (ClockBoundRecord, Option<Unbounded>) {
    match bounded(anchor, now, rate, settings) {
        Ok((bound, max_drift, void_after)) => {
            let record = ClockBoundRecord {
                as_of: now.coarse,
                void_after,
                bound,
                disruption_marker,
                max_drift,
                status: status(anchor.status),
                disruption_support: false,
            };
            (record, None)
        }
        Err(why) => {
            let status = match why {
                Unbounded::Status(s) => s,
                Unbounded::NoRate | Unbounded::Stale | Unbounded::OutOfRange => ClockBoundStatus::Unknown,
            };
            let record = ClockBoundRecord {
                as_of: now.coarse,
                void_after: now.coarse,
                bound: UNBOUNDED,
                disruption_marker,
                max_drift: Ppb::ZERO,
                status,
                disruption_support: false,
            };
            (record, Some(why))
        }
    }
}

fn bounded(
    anchor: &Anchor,
    now: &HostReading,
    rate: Option<MonotonicRate>,
    settings: &Settings,
) -> Result<(Duration, Ppb, MonoInstant), Unbounded> {
    if !anchor.status.is_bounded() {
        return Err(Unbounded::Status(status(anchor.status)));
    }
    let rate = rate.ok_or(Unbounded::NoRate)?;
    if now.raw_after > anchor.valid_until {
        return Err(Unbounded::Stale);
    }
    let drift = drift(anchor.rates, rate, settings.slew_allowance).ok_or(Unbounded::OutOfRange)?;
    let lag = i128::try_from(settings.coarse_lag.as_nanos()).map_err(|_| Unbounded::OutOfRange)?;
    let bound = realtime_error(anchor, now).ok_or(Unbounded::Stale)?
        + ceil_div(i128::from(drift.get()) * lag, PPB)
        + READER_ROUNDING_NS;
    // tsod's own validity, carried onto CLOCK_MONOTONIC at its slowest
    // admissible rate, less the coarse clock's lag.
    let slowest = rate.low - i128::from(settings.slew_allowance.get());
    let raw_left = anchor.valid_until.signed_nanos_since(now.raw_after);
    let void_in = raw_left * slowest / PPB - lag;
    if void_in <= 0 {
        return Err(Unbounded::Stale);
    }
    let void_after = u64::try_from(i128::from(now.coarse.as_nanos()) + void_in).map_err(|_| Unbounded::OutOfRange)?;
    let bound = u64::try_from(bound).map_err(|_| Unbounded::OutOfRange)?;
    Ok((Duration::from_nanos(bound), drift, MonoInstant::from_nanos(void_after)))
}

/// The most `CLOCK_REALTIME`, as read in `now`, can be from true time at
/// that read: the larger distance from the realtime read to either end of
/// tsod's interval (the earliest end taken at the raw read before, the
/// latest at the raw read after), in ns. `None` if the anchor does not
/// extrapolate that far.
fn realtime_error(anchor: &Anchor, now: &HostReading) -> Option<i128> {
    let before = anchor.rates.extrapolate(anchor.interval, anchor.reference, now.raw_before)?;
    let after = anchor.rates.extrapolate(anchor.interval, anchor.reference, now.raw_after)?;
    let real = i128::from(now.realtime.as_nanos());
    let early_side = real - i128::from(before.earliest().as_nanos());
    let late_side = i128::from(after.latest().as_nanos()) - real;
    Some(early_side.max(late_side).max(0))
}

/// The published drift, ppb per `CLOCK_MONOTONIC` ns: how fast
/// `|CLOCK_REALTIME − true time|` may grow while the monotonic clock's
/// rate against the raw clock stays within `allowance` of `rate`, given
/// that true time runs at `rates` against the raw clock. With the monotonic
/// rate `q` (per raw ns) and true time's `r ∈ [r_low, r_high]`, the error
/// changes by `1 − r/q` per monotonic ns, so the drift is
/// `max(r_high/q_low − 1, 1 − r_low/q_high)`, rounded up. `None` if that
/// is 100 % or more (readers refuse it).
pub fn drift(rates: RateBounds, rate: MonotonicRate, allowance: Ppb) -> Option<Ppb> {
    let r_high = ceil_div(i128::from(rates.high_q32()) * PPB, Q32);
    let r_low = i128::from(rates.low_q32()) * PPB / Q32;
    let q_low = rate.low - i128::from(allowance.get());
    let q_high = rate.high + i128::from(allowance.get());
    if q_low <= 0 {
        return None;
    }
    let fast = ceil_div((r_high - q_low) * PPB, q_low);
    let slow = ceil_div((q_high - r_low) * PPB, q_high);
    let drift = fast.max(slow).max(0);
    (drift < PPB).then(|| Ppb::new(i64::try_from(drift).unwrap_or(i64::MAX)))
}

/// Whether the previous `record`, published from tsod's `anchor`, still
/// holds at `now`: the interval the earliest-reading ClockBound reader
/// would compute now (its coarse clock no further behind than
/// `settings.coarse_lag`) must contain tsod's interval now, carried from
/// that same anchor. Returns by how much it misses (ns) if it does not: a
/// step of `CLOCK_REALTIME`, or a discipline that changed the clock's rate
/// by more than the allowance, moved the system clock further than the
/// record allowed, and readers may have been given an interval without true
/// time since. Records without a bound, and records readers no longer
/// trust (past both `void_after` and [`READER_GRACE`]), hold trivially.
pub fn missed_by(
    record: &ClockBoundRecord,
    anchor: &Anchor,
    published: &HostReading,
    now: &HostReading,
    settings: &Settings,
) -> Option<u64> {
    let trusted_until = record.void_after.max(record.as_of.checked_add(READER_GRACE)?);
    if !matches!(record.status, ClockBoundStatus::Synchronized | ClockBoundStatus::FreeRunning)
        || now.coarse >= trusted_until
    {
        return None;
    }
    let lag = i128::try_from(settings.coarse_lag.as_nanos()).ok()?;
    let elapsed = (now.monotonic.signed_nanos_since(record.as_of) - lag).max(0);
    let width = i128::try_from(record.bound.as_nanos()).ok()? + elapsed * i128::from(record.max_drift.get()) / PPB;
    let before = anchor.rates.extrapolate(anchor.interval, anchor.reference, now.raw_before)?;
    let after = anchor.rates.extrapolate(anchor.interval, anchor.reference, now.raw_after)?;
    let real = i128::from(now.realtime.as_nanos());
    let slack = 2 * i128::from(published.gap().saturating_add(now.gap())) + CHECK_ROUNDING_NS;
    let early = real - width - i128::from(before.earliest().as_nanos());
    let late = i128::from(after.latest().as_nanos()) - (real + width);
    let miss = early.max(late) - slack;
    (miss > 0).then(|| u64::try_from(miss).unwrap_or(u64::MAX))
}

/// ⌈n / d⌉ for d > 0.
fn ceil_div(n: i128, d: i128) -> i128 {
    if n > 0 { (n + d - 1) / d } else { n / d }
}

#[cfg(test)]
mod tests {
    use tsod_proto::{DriftModel, TimeInterval};

    use super::*;

    const T0: u64 = 1_795_462_647_000_000_000;
    const RAW0: u64 = 3_600_000_000_000;
    const MONO0: u64 = 3_500_000_000_000;

    fn settings(allowance_ppm: i32) -> Settings {
        Settings { slew_allowance: Ppb::from_ppm(allowance_ppm), coarse_lag: Duration::from_millis(8) }
    }

    /// tsod's anchor at RAW0: [T0 − early, T0 + late], drift (f, ρ) in ppb.
    fn anchor(early: u64, late: u64, f: i64, rho: i64, status: ClockStatus) -> Anchor {
        Anchor {
            reference: MonoInstant::from_nanos(RAW0),
            interval: TimeInterval::new(Timestamp::from_nanos(T0 - early), Timestamp::from_nanos(T0 + late)).unwrap(),
            rates: DriftModel::new(Ppb::new(f), Ppb::new(rho)).unwrap().rates(),
            status,
            valid_until: MonoInstant::from_nanos(RAW0 + 1_000_000_000),
        }
    }

    /// A reading `after` raw ns past RAW0, with the monotonic clock having
    /// run `mono_ppb` (parts of 10⁹) per raw ns and realtime `real_off` ns
    /// off T0 + elapsed true time `true_ppb`; a 100 ns read gap.
    fn reading(after: u64, mono_ppb: i128, true_ppb: i128, real_off: i64) -> HostReading {
        let raw = RAW0 + after;
        let mono = MONO0 + u64::try_from(i128::from(after) * mono_ppb / PPB).unwrap();
        let truth = T0 + u64::try_from(i128::from(after) * true_ppb / PPB).unwrap();
        HostReading {
            coarse: MonoInstant::from_nanos(mono - 3_000_000),
            raw_before: MonoInstant::from_nanos(raw),
            monotonic: MonoInstant::from_nanos(mono),
            realtime: Timestamp::from_nanos(truth.checked_add_signed(real_off).unwrap()),
            raw_after: MonoInstant::from_nanos(raw + 100),
        }
    }

    #[test]
    fn the_status_maps_bounded_onto_trusted_and_the_rest_onto_untrusted() {
        assert_eq!(status(ClockStatus::Synchronized), ClockBoundStatus::Synchronized);
        assert_eq!(status(ClockStatus::Degraded), ClockBoundStatus::Synchronized);
        assert_eq!(status(ClockStatus::FreeRunning), ClockBoundStatus::FreeRunning);
        assert_eq!(status(ClockStatus::Unsynchronized), ClockBoundStatus::Unknown);
        assert_eq!(status(ClockStatus::Disrupted), ClockBoundStatus::Disrupted);
    }

    /// tsod's interval is asymmetric around realtime: the bound reaches the
    /// farther end, whichever side it is on.
    #[test]
    fn an_asymmetric_interval_is_covered_on_both_sides() {
        let s = settings(0);
        let rate = Some(MonotonicRate::exactly(1_000_000_000));
        // The farther end (the latest end taken at the raw read after the
        // realtime read: 100 ns later), the drift over the coarse lag (zero
        // here) and the readers' rounding (2 ns).
        for (early, late, real_off, farther) in
            [(10_000, 50_000, 0, 50_100), (50_000, 10_000, 0, 50_000), (10_000, 10_000, 30_000, 40_000)]
        {
            let a = anchor(early, late, 0, 0, ClockStatus::Synchronized);
            let now = reading(0, PPB, PPB, real_off);
            let (r, why) = record(&a, 7, &now, rate, &s);
            assert_eq!(why, None);
            assert_eq!(r.bound, Duration::from_nanos(farther + 2), "{early} {late} {real_off}");
            let real = i128::from(now.realtime.as_nanos());
            let b = i128::try_from(r.bound.as_nanos()).unwrap();
            assert!(real - b <= i128::from(T0 - early) && real + b >= i128::from(T0 + late));
            assert_eq!((r.status, r.disruption_marker, r.as_of), (ClockBoundStatus::Synchronized, 7, now.coarse));
        }
        // Realtime outside tsod's interval altogether: still covered.
        let a = anchor(1_000, 1_000, 0, 0, ClockStatus::Synchronized);
        let (r, _) = record(&a, 0, &reading(0, PPB, PPB, -5_000), rate, &s);
        assert_eq!(r.bound, Duration::from_nanos(6_000 + 100 + 2));
    }

    #[test]
    fn the_drift_covers_tsods_widening_and_the_discipline_with_its_allowance() {
        let exact = MonotonicRate::exactly(1_000_000_000);
        let rates = |f: i64, rho: i64| DriftModel::new(Ppb::new(f), Ppb::new(rho)).unwrap().rates();
        // A perfect clock everywhere: only the Q32.32 rounding (1 ppb).
        assert!(drift(rates(0, 0), exact, Ppb::ZERO).unwrap().get() <= 1);
        // tsod's ρ alone.
        let d = drift(rates(0, 5_000), exact, Ppb::ZERO).unwrap().get();
        assert!((5_000..=5_002).contains(&d), "{d}");
        // The raw clock runs 20 ppm slow of true time and the discipline
        // keeps CLOCK_MONOTONIC on true time: realtime tracks truth, the
        // drift is only ρ.
        let d = drift(rates(20_000, 1_000), MonotonicRate::exactly(1_000_020_000), Ppb::ZERO).unwrap().get();
        assert!((1_000..=1_002).contains(&d), "{d}");
        // No discipline on that host: realtime loses 20 ppm on truth.
        let d = drift(rates(20_000, 1_000), exact, Ppb::ZERO).unwrap().get();
        assert!((21_000..=21_002).contains(&d), "{d}");
        // The allowance adds on.
        let d = drift(rates(0, 1_000), exact, Ppb::from_ppm(500)).unwrap().get();
        assert!((501_000..=501_300).contains(&d), "{d}");
        // A drift of 100 % cannot be published.
        assert_eq!(drift(rates(0, 0), MonotonicRate::exactly(400_000_000), Ppb::from_ppm(500_000)), None);
    }

    #[test]
    fn the_rate_is_measured_over_at_least_the_window_and_bracketed_by_the_read_gaps() {
        let a = reading(0, PPB, PPB, 0);
        assert_eq!(MonotonicRate::between(&a, &reading(10_000_000, PPB, PPB, 0)), None, "10 ms is too short");
        assert_eq!(MonotonicRate::between(&reading(100_000_000, PPB, PPB, 0), &a), None, "out of order");
        let b = reading(100_000_000, 1_000_300_000, PPB, 0);
        let rate = MonotonicRate::between(&a, &b).unwrap();
        // 300 ppm fast, ± the 2 × 100 ns read gaps over 100 ms (2 ppm).
        assert!(rate.low <= 1_000_300_000 && rate.high >= 1_000_300_000, "{rate:?}");
        assert!(rate.low >= 1_000_297_000 && rate.high <= 1_000_303_000, "{rate:?}");
    }

    #[test]
    fn void_after_falls_before_tsods_own_valid_until_and_without_a_rate_or_bound_nothing_is_trusted() {
        let s = settings(500);
        let rate = Some(MonotonicRate::exactly(1_000_000_000));
        let a = anchor(10_000, 10_000, 0, 1_000, ClockStatus::FreeRunning);
        let now = reading(200_000_000, PPB, PPB, 0);
        let (r, why) = record(&a, 0, &now, rate, &s);
        assert_eq!((why, r.status), (None, ClockBoundStatus::FreeRunning));
        // 800 ms of tsod's horizon left on the raw clock, at the slowest
        // admissible monotonic rate (1 − 500 ppm), less the coarse lag.
        let left = 800_000_000 - 100;
        let expected = now.coarse.as_nanos() + left * 999_500 / 1_000_000 - 8_000_000;
        assert_eq!(r.void_after, MonoInstant::from_nanos(expected));
        assert!(r.void_after.as_nanos() - r.as_of.as_nanos() < 800_000_000);
        // The drift over the coarse lag is in the bound.
        assert!(r.bound >= Duration::from_nanos(10_100 + 501_000 * 8_000_000 / 1_000_000_000));

        for (anchor, rate, now, why, status) in [
            (a, None, now, Unbounded::NoRate, ClockBoundStatus::Unknown),
            (a, rate, reading(1_100_000_000, PPB, PPB, 0), Unbounded::Stale, ClockBoundStatus::Unknown),
            (a, rate, reading(995_000_000, PPB, PPB, 0), Unbounded::Stale, ClockBoundStatus::Unknown),
            (
                Anchor { status: ClockStatus::Unsynchronized, ..a },
                rate,
                now,
                Unbounded::Status(ClockBoundStatus::Unknown),
                ClockBoundStatus::Unknown,
            ),
            (
                Anchor { status: ClockStatus::Disrupted, ..a },
                rate,
                now,
                Unbounded::Status(ClockBoundStatus::Disrupted),
                ClockBoundStatus::Disrupted,
            ),
        ] {
            let (r, got) = record(&anchor, 3, &now, rate, &s);
            assert_eq!(got, Some(why));
            assert_eq!((r.status, r.bound, r.max_drift, r.void_after), (status, UNBOUNDED, Ppb::ZERO, r.as_of));
            assert_eq!(r.disruption_marker, 3);
        }
    }

    /// What a ClockBound reader computes from `r` at `now` (its coarse
    /// clock at `now.coarse`), as `clock-bound-shm` 2.0 does.
    fn reader_interval(r: &ClockBoundRecord, now: &HostReading) -> (i128, i128) {
        let elapsed = now.coarse.signed_nanos_since(r.as_of).max(0);
        let grown = i128::try_from(r.bound.as_nanos()).unwrap() + elapsed * i128::from(r.max_drift.get()) / PPB;
        let real = i128::from(now.realtime.as_nanos());
        (real - grown, real + grown)
    }

    /// Realtime runs off true time as the discipline slews: within the
    /// allowance every reader's interval holds true time and the check
    /// finds nothing; beyond it, the check says by how much it missed.
    #[test]
    fn a_record_holds_while_the_discipline_stays_within_the_allowance_and_the_check_catches_it_when_not() {
        let s = settings(100);
        // The raw clock is 10 ppm fast of true time; tsod knows it (f = −10 ppm, ρ = 1 ppm).
        let a = anchor(20_000, 30_000, -10_000, 1_000, ClockStatus::Synchronized);
        let truth = 999_990_000;
        // The discipline had CLOCK_MONOTONIC at 50 ppm fast of raw.
        let start = reading(0, 1_000_050_000, truth, 0);
        let earlier = HostReading {
            raw_before: MonoInstant::from_nanos(RAW0 - 100_000_000),
            raw_after: MonoInstant::from_nanos(RAW0 - 100_000_000 + 100),
            monotonic: MonoInstant::from_nanos(MONO0 - 100_005_000),
            ..start
        };
        let rate = MonotonicRate::between(&earlier, &start);
        let (r, why) = record(&a, 0, &start, rate, &s);
        assert_eq!(why, None);
        // It now slews at 50 + 90 ppm (within the 100 ppm allowance) for 500 ms.
        let mono_ppb: i128 = 1_000_140_000;
        for ms in [1u64, 10, 100, 500] {
            let after = ms * 1_000_000;
            let mono_elapsed = i128::from(after) * mono_ppb / PPB;
            let true_elapsed = i128::from(after) * truth / PPB;
            let now = HostReading {
                coarse: MonoInstant::from_nanos(start.coarse.as_nanos() + u64::try_from(mono_elapsed).unwrap()),
                raw_before: MonoInstant::from_nanos(RAW0 + after),
                monotonic: MonoInstant::from_nanos(MONO0 + u64::try_from(mono_elapsed).unwrap()),
                // Realtime moves with CLOCK_MONOTONIC, started on true time.
                realtime: Timestamp::from_nanos(T0 + u64::try_from(mono_elapsed).unwrap()),
                raw_after: MonoInstant::from_nanos(RAW0 + after + 100),
            };
            let t = i128::from(T0) + true_elapsed;
            let (lo, hi) = reader_interval(&r, &now);
            assert!(lo <= t && t <= hi, "{ms} ms: [{lo}, {hi}] without {t}");
            assert_eq!(missed_by(&r, &a, &start, &now, &s), None, "{ms} ms");
        }
        // A step of realtime by 200 µs: the check says the record missed.
        let later = reading(50_000_000, mono_ppb, truth, 200_000);
        let miss = missed_by(&r, &a, &start, &later, &s).unwrap();
        assert!((100_000..200_000).contains(&miss), "{miss}");
        // So does a slew of 2 000 ppm kept up for 200 ms (400 µs).
        let later = HostReading {
            realtime: Timestamp::from_nanos(T0 + 200_000_000 + 400_000),
            ..reading(200_000_000, 1_002_000_000, truth, 0)
        };
        assert!(missed_by(&r, &a, &start, &later, &s).is_some());
        // Readers trust the record's status for 5 s after as_of, past its
        // void_after (about 1 s here): a 5 ms step 3 s on is still a miss,
        // one 6 s on concerns no reader.
        assert!(r.void_after < reading(1_000_000_000, mono_ppb, truth, 0).coarse);
        assert!(missed_by(&r, &a, &start, &reading(3_000_000_000, mono_ppb, truth, 5_000_000), &s).is_some());
        assert_eq!(missed_by(&r, &a, &start, &reading(6_000_000_000, mono_ppb, truth, 5_000_000), &s), None);
        // A record without a bound holds whatever happens.
        let (unbounded, _) = record(&a, 0, &start, None, &s);
        assert_eq!(missed_by(&unbounded, &a, &start, &later, &s), None);
    }
}
