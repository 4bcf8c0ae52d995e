//! From the kernel's packet timestamps to [`WireTimes`] (sans-IO).
//!
//! The kernel timestamps a datagram as it leaves (`SOF_TIMESTAMPING_TX_SOFTWARE`,
//! in the driver's transmit routine) and as it arrives
//! (`SOF_TIMESTAMPING_RX_SOFTWARE`, before the socket queue), both on
//! `CLOCK_REALTIME`. The bound is kept on the reader clock, so the shell
//! brackets them with readings of its own (all on the host's clocks):
//!
//! ```text
//! t1 = raw read ≤ s = realtime read → send ... departed (kernel) ... arrived (kernel)
//!   → recv returns → p = raw read ≤ r = realtime read ≤ t4 = raw read
//! ```
//!
//! Realtime's rate against true time is within `1 ± σ` (σ the realtime
//! rate bound, [`crate::clock::realtime_rate_bound`]), so a realtime span
//! R ≥ 0 took between ⌊R/(1 + σ)⌋ and ⌈R/(1 − σ)⌉ of true time, and a
//! reader span m at most ⌈m(1 + ρ)⌉. Each reading may be off the instant it
//! names by its resolution `res`, so realtime spans are shrunk or grown by
//! two of them:
//!
//! * `before_departure` = true_min(departed − s − 2res): θ(e_out) − θ(t1) ≥
//!   θ(e_out) − θ(s);
//! * `after_arrival` = true_min(r − arrived − 2res): θ(t4) − θ(e_in) ≥ θ(r) − θ(e_in);
//! * `departure_to_t4` = true_max(r − departed + 2res) + ⌈(t4 − p + 2res)(1 + ρ)⌉:
//!   θ(t4) − θ(e_out) = (θ(r) − θ(e_out)) + (θ(t4) − θ(r)), and θ(t4) − θ(r) ≤
//!   θ(t4) − θ(p).
//!
//! The mapping's own error is therefore σ times the two short spans (the
//! send path, and arrival to wake-up) plus σ times the wire time in
//! `departure_to_t4`; the bound takes the better of that and the reader
//! clock's own span (`ntp.rs`, "Kernel timestamps").
//!
//! Timestamps are refused, and the exchange bounded by t1 and t4 alone,
//! when they are out of order (s ≤ departed ≤ arrived ≤ r), or when the
//! realtime span from s to r is longer than the reader span from t1 to t4
//! allows: realtime was stepped, or a timestamp is not this exchange's.

use core::time::Duration;

use tsod_proto::{MonoInstant, Ppb, Timestamp};

use super::WireTimes;

const BILLION: u128 = 1_000_000_000;

/// The host's readings and the kernel's timestamps around one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelStamps {
    /// t1: the reader clock read before sending.
    pub t1: MonoInstant,
    /// s: realtime read after t1, before sending.
    pub sent_realtime: Timestamp,
    /// The kernel's transmit timestamp of the request, if it gave one.
    pub departed: Option<Timestamp>,
    /// The kernel's receive timestamp of the reply, if it gave one.
    pub arrived: Option<Timestamp>,
    /// p: the reader clock read after the reply was received.
    pub received_raw: MonoInstant,
    /// r: realtime read after p.
    pub received_realtime: Timestamp,
    /// t4: the reader clock read after r.
    pub t4: MonoInstant,
}

/// How the readings and timestamps are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StampModel {
    /// σ: realtime's rate against true time is within 1 ± σ (below 100 %).
    pub realtime_rate: Ppb,
    /// ρ: the reader clock's rate against true time is within 1 ± ρ.
    pub reader_drift: Ppb,
    /// How far a realtime or reader reading, or a kernel timestamp, may be
    /// from the instant it names.
    pub resolution: Duration,
}

/// Why an exchange's kernel timestamps were not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StampRefusal {
    /// The readings and timestamps are not in the order the exchange
    /// happened in.
    #[error("kernel timestamps out of order with the exchange: realtime stepped, or not this exchange's")]
    OutOfOrder,
    /// More realtime passed than the reader clock allows.
    #[error("realtime ran further than the reader clock allows: realtime was stepped")]
    RealtimeJumped,
    /// The readings are not in order on the reader clock.
    #[error("reader clock readings out of order")]
    ReaderOutOfOrder,
    /// σ of 100 % or more bounds nothing.
    #[error("a realtime rate bound of 100 % or more bounds nothing")]
    UnboundedRate,
}

/// What `stamps` add to the exchange under `model`; see the module doc.
pub fn wire_times(stamps: &KernelStamps, model: &StampModel) -> Result<WireTimes, StampRefusal> {
    let sigma = u128::try_from(model.realtime_rate.get()).map_err(|_| StampRefusal::UnboundedRate)?;
    if sigma >= BILLION {
        return Err(StampRefusal::UnboundedRate);
    }
    let rho = u128::try_from(model.reader_drift.get()).unwrap_or(BILLION);
    let res = model.resolution.as_nanos();
    let (t1, p, t4) = (stamps.t1.as_nanos(), stamps.received_raw.as_nanos(), stamps.t4.as_nanos());
    if !(t1 <= p && p <= t4) {
        return Err(StampRefusal::ReaderOutOfOrder);
    }
    let (s, r) = (u128::from(stamps.sent_realtime.as_nanos()), u128::from(stamps.received_realtime.as_nanos()));
    let departed = stamps.departed.map(|t| u128::from(t.as_nanos()));
    let arrived = stamps.arrived.map(|t| u128::from(t.as_nanos()));
    let in_order = [Some(s), departed, arrived, Some(r)]
        .into_iter()
        .flatten()
        .try_fold(0u128, |last, t| (t >= last).then_some(t))
        .is_some();
    if !in_order {
        return Err(StampRefusal::OutOfOrder);
    }
    // The realtime span s → r lies within the reader span t1 → t4, so it
    // can be no longer than that span's true time at realtime's fastest.
    let reader_true_max = ceil_mul(u128::from(t4 - t1) + 2 * res, BILLION + rho, BILLION);
    if r - s > ceil_mul(reader_true_max, BILLION + sigma, BILLION) + 2 * res {
        return Err(StampRefusal::RealtimeJumped);
    }
    let true_min = |span: u128| floor_mul(span.saturating_sub(2 * res), BILLION, BILLION + sigma);
    let true_max = |span: u128| ceil_mul(span + 2 * res, BILLION, BILLION - sigma);
    let before_departure = departed.map_or(0, |d| true_min(d - s));
    let after_arrival = arrived.map_or(0, |a| true_min(r - a));
    let departure_to_t4 = departed.map(|d| {
        let tail = ceil_mul(u128::from(t4 - p) + 2 * res, BILLION + rho, BILLION);
        duration(true_max(r - d) + tail)
    });
    Ok(WireTimes {
        before_departure: duration(before_departure),
        after_arrival: duration(after_arrival),
        departure_to_t4,
    })
}

/// ⌊x·num/den⌋ (saturating; den > 0).
fn floor_mul(x: u128, num: u128, den: u128) -> u128 {
    x.saturating_mul(num) / den
}

/// ⌈x·num/den⌉ (saturating; den > 0).
fn ceil_mul(x: u128, num: u128, den: u128) -> u128 {
    x.saturating_mul(num).div_ceil(den)
}

fn duration(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const US: u64 = 1_000;

    fn model() -> StampModel {
        StampModel {
            realtime_rate: crate::sources::gpsd::MAX_REALTIME_SLEW,
            reader_drift: Ppb::from_ppm(100),
            resolution: Duration::from_nanos(1),
        }
    }

    /// An exchange on perfect clocks: realtime = 10⁹ s + raw, every span in µs.
    fn stamps(send_path: u64, wire: u64, wake: u64) -> KernelStamps {
        let rt = |raw: u64| Timestamp::from_nanos(1_000_000_000 * 1_000_000_000 + raw);
        let t1 = 5_000 * US;
        let departed = t1 + 100 + send_path * US;
        let arrived = departed + wire * US;
        let p = arrived + wake * US;
        KernelStamps {
            t1: MonoInstant::from_nanos(t1),
            sent_realtime: rt(t1 + 40),
            departed: Some(rt(departed)),
            arrived: Some(rt(arrived)),
            received_raw: MonoInstant::from_nanos(p),
            received_realtime: rt(p + 40),
            t4: MonoInstant::from_nanos(p + 80),
        }
    }

    #[test]
    fn kernel_timestamps_take_the_send_path_and_the_wake_up_out() {
        let w = wire_times(&stamps(14, 9, 7), &model()).unwrap();
        // 14 µs of send path (less the 40 ns before s) at realtime's
        // fastest, 10.2 % fast: at least 12.67 µs of true time.
        assert!(w.before_departure > Duration::from_nanos(12_600), "{w:?}");
        assert!(w.before_departure < Duration::from_micros(14), "{w:?}");
        assert!(w.after_arrival > Duration::from_nanos(6_300) && w.after_arrival < Duration::from_micros(7), "{w:?}");
        // Departure to t4: 16.1 µs of realtime at its slowest, plus 80 ns.
        let d = w.departure_to_t4.unwrap();
        assert!(d > Duration::from_micros(16) && d < Duration::from_nanos(18_100), "{w:?}");
    }

    #[test]
    fn missing_timestamps_give_no_credit() {
        let mut s = stamps(14, 9, 7);
        s.departed = None;
        let w = wire_times(&s, &model()).unwrap();
        assert_eq!((w.before_departure, w.departure_to_t4), (Duration::ZERO, None));
        assert!(w.after_arrival > Duration::ZERO);
        s.arrived = None;
        assert_eq!(wire_times(&s, &model()).unwrap(), WireTimes::NONE);
    }

    #[test]
    fn timestamps_out_of_order_or_a_stepped_realtime_are_refused() {
        let base = stamps(14, 9, 7);
        // A transmit timestamp from before this request (a stale one).
        let stale = KernelStamps { departed: Some(Timestamp::from_nanos(base.sent_realtime.as_nanos() - 1)), ..base };
        assert_eq!(wire_times(&stale, &model()), Err(StampRefusal::OutOfOrder));
        // The reply "arrived" after realtime was read.
        let late = KernelStamps { arrived: Some(Timestamp::from_nanos(base.received_realtime.as_nanos() + 1)), ..base };
        assert_eq!(wire_times(&late, &model()), Err(StampRefusal::OutOfOrder));
        // Realtime stepped forward by 1 ms during a 30 µs exchange.
        let stepped = KernelStamps {
            arrived: Some(Timestamp::from_nanos(base.arrived.unwrap().as_nanos() + 1_000 * US)),
            received_realtime: Timestamp::from_nanos(base.received_realtime.as_nanos() + 1_000 * US),
            ..base
        };
        assert_eq!(wire_times(&stepped, &model()), Err(StampRefusal::RealtimeJumped));
        let backwards = KernelStamps { t4: base.t1, ..base };
        assert_eq!(wire_times(&backwards, &model()), Err(StampRefusal::ReaderOutOfOrder));
        let unbounded = StampModel { realtime_rate: Ppb::new(1_000_000_000), ..model() };
        assert_eq!(wire_times(&base, &unbounded), Err(StampRefusal::UnboundedRate));
    }

    proptest! {
        /// Whatever realtime's rate within ±σ (a different one on each
        /// span) and the reader's within ±ρ, each credit is true time that
        /// passed and `departure_to_t4` covers the true time that did.
        #[test]
        fn credits_are_true_time(
            send_path in 0u64..200_000, wire in 0u64..2_000_000, wake in 0u64..200_000, tail in 0u64..10_000,
            rates in proptest::array::uniform3(-101_999_000i64..101_999_000),
            reader_rate in -99_000i64..99_000,
        ) {
            // True spans in ns; realtime and raw spans derived from them.
            let rt_span = |true_ns: u64, ppb: i64| {
                u64::try_from(i128::from(true_ns) * (1_000_000_000 + i128::from(ppb)) / 1_000_000_000).unwrap()
            };
            let raw_span = |true_ns: u64| {
                u64::try_from(i128::from(true_ns) * 1_000_000_000 / (1_000_000_000 + i128::from(reader_rate))).unwrap()
            };
            let (lead, gap) = (40u64, 40u64);
            let t1 = 1_000_000u64;
            let s = 1_700_000_000_000_000_000u64;
            let departed = s + rt_span(send_path, rates[0]);
            let arrived = departed + rt_span(wire, rates[1]);
            let r = arrived + rt_span(wake + gap, rates[2]);
            let p = t1 + raw_span(lead + send_path + wire + wake);
            let t4 = p + raw_span(gap + tail);
            let stamps = KernelStamps {
                t1: MonoInstant::from_nanos(t1),
                sent_realtime: Timestamp::from_nanos(s),
                departed: Some(Timestamp::from_nanos(departed)),
                arrived: Some(Timestamp::from_nanos(arrived)),
                received_raw: MonoInstant::from_nanos(p),
                received_realtime: Timestamp::from_nanos(r),
                t4: MonoInstant::from_nanos(t4),
            };
            let w = wire_times(&stamps, &model()).unwrap();
            // True time: t1 at 0, s at lead, departure at lead + send_path,
            // arrival after the wire, r after wake + gap, t4 after the tail.
            prop_assert!(w.before_departure.as_nanos() <= u128::from(send_path));
            prop_assert!(w.after_arrival.as_nanos() <= u128::from(wake + gap + tail));
            let d = w.departure_to_t4.unwrap().as_nanos();
            prop_assert!(d >= u128::from(wire + wake + gap + tail), "{d} < {}", wire + wake + gap + tail);
        }
    }
}
