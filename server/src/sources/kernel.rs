//! The kernel source: the error bound the kernel keeps for the system clock.
//!
//! An NTP daemon (chronyd, ntpd) disciplining the host tells the kernel its
//! current maximum error through `adjtimex`; the kernel adds 500 ppm of it
//! per second (`MAXFREQ`) until the next update and sets `STA_UNSYNC` when it
//! exceeds 16 s or the daemon stops. So while `STA_UNSYNC` is clear,
//! `CLOCK_REALTIME` is within `maxerror` µs of true time: a usable source on
//! any host that runs a disciplining daemon, with nothing to configure.
//!
//! The sample: `adjtimex(modes = 0)` returns the realtime `t`, `maxerror`
//! and the offset the discipline is still slewing out (`offset`, which
//! `maxerror` does not include: chronyd sets `maxerror` to its root distance
//! while a start-up correction may still be in progress) atomically. The
//! reader clock is read just before (`r₀`) and just after (`r₁`) the call;
//! `t` was taken somewhere between, so at `r₁`
//!
//! ```text
//! true time ∈ [ t − maxerror − |offset| ,  t + maxerror + |offset| + 2·(r₁ − r₀) ]
//! ```
//!
//! (the elapsed reader time, doubled to cover any rate error; the call takes
//! a microsecond). Samples are refused when `STA_UNSYNC` is set, the call
//! reports `TIME_ERROR`, `maxerror` exceeds 16 s, or `maxerror` is zero:
//! systemd-timesyncd clears `STA_UNSYNC` with `maxerror = 0` while the
//! clock may still be hundreds of milliseconds off, so a zero is a claim no
//! real discipline can back. This source is meant for hosts disciplined by
//! chronyd or ntpd; it is one vote among the site's sources.

use std::time::Duration;

use tsod_proto::{MonoInstant, TimeInterval, Timestamp};

use crate::sample::Sample;
use crate::timescale::LeapAnnouncement;

/// What one `adjtimex(modes = 0)` call returned, plus the reader clock around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelReading {
    /// The call's return value: the clock state (`TIME_OK`, `TIME_INS`, …).
    pub state: i32,
    /// `timex.status` flags.
    pub status: i32,
    /// `timex.maxerror`, µs.
    pub maxerror_us: i64,
    /// `timex.offset`: what the discipline still has to slew out, ns.
    pub offset_ns: i64,
    /// `timex.time`, the system clock (ns resolution with `STA_NANO`).
    pub time: Timestamp,
    /// Reader clock just before the call.
    pub raw_before: MonoInstant,
    /// Reader clock just after the call.
    pub raw_after: MonoInstant,
}

/// Why a kernel reading gives no sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelReject {
    /// No daemon disciplines the clock (`STA_UNSYNC`).
    #[error("kernel clock is not synchronized (STA_UNSYNC); is chronyd or ntpd running?")]
    Unsynchronized,
    /// The kernel reports `TIME_ERROR`.
    #[error("kernel reports TIME_ERROR")]
    ClockError,
    /// `maxerror` is zero, beyond 16 s, or negative.
    #[error("kernel maxerror {0} µs is out of range (0 means the discipline makes no claim)")]
    MaxErrorOutOfRange(i64),
    /// The reader clock went backwards around the call (impossible unless broken).
    #[error("reader clock went backwards around adjtimex")]
    ReaderClockBackwards,
}

impl KernelReject {
    /// Short name for counters.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Unsynchronized => "unsynchronized",
            Self::ClockError => "time-error",
            Self::MaxErrorOutOfRange(_) => "maxerror-out-of-range",
            Self::ReaderClockBackwards => "reader-clock-backwards",
        }
    }
}

const STA_UNSYNC: i32 = 0x0040;
const TIME_INS: i32 = 1;
const TIME_DEL: i32 = 2;
const TIME_ERROR: i32 = 5;
/// `NTP_PHASE_LIMIT`-scale ceiling: the kernel itself gives up at 16 s.
const MAX_ERROR_US: i64 = 16_000_000;

/// The sample a kernel reading supports, with the leap announcement it carries.
pub fn kernel_sample(k: &KernelReading) -> Result<(Sample, LeapAnnouncement), KernelReject> {
    if k.status & STA_UNSYNC != 0 {
        return Err(KernelReject::Unsynchronized);
    }
    if k.state == TIME_ERROR {
        return Err(KernelReject::ClockError);
    }
    if !(1..=MAX_ERROR_US).contains(&k.maxerror_us) {
        return Err(KernelReject::MaxErrorOutOfRange(k.maxerror_us));
    }
    let call = k.raw_after.as_nanos().checked_sub(k.raw_before.as_nanos()).ok_or(KernelReject::ReaderClockBackwards)?;
    let maxerror = Duration::from_micros(k.maxerror_us.unsigned_abs())
        .saturating_add(Duration::from_nanos(k.offset_ns.unsigned_abs()));
    let earliest = k.time.saturating_sub(maxerror);
    let latest = k.time.saturating_add(maxerror).saturating_add(Duration::from_nanos(call.saturating_mul(2)));
    let interval = TimeInterval::new(earliest, latest).map_err(|_| KernelReject::MaxErrorOutOfRange(k.maxerror_us))?;
    let leap = match k.state {
        TIME_INS => LeapAnnouncement::Insert,
        TIME_DEL => LeapAnnouncement::Delete,
        _ => LeapAnnouncement::None,
    };
    Ok((Sample { at: k.raw_after, interval }, leap))
}

/// Reads the kernel's clock state (`adjtimex` with `modes = 0`: read only),
/// bracketed by two reads of the reader clock.
pub fn read_kernel() -> std::io::Result<KernelReading> {
    let raw_before = tsod_shm::reader_clock_now()?;
    let kernel = tsod_shm::kernel_clock_state();
    let raw_after = tsod_shm::reader_clock_now()?;
    let k = kernel?;
    Ok(KernelReading {
        state: k.state,
        status: k.status,
        maxerror_us: k.maxerror_us,
        offset_ns: k.offset.as_nanos(),
        time: k.time,
        raw_before,
        raw_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(status: i32, state: i32, maxerror_us: i64) -> KernelReading {
        KernelReading {
            state,
            status,
            maxerror_us,
            offset_ns: 0,
            time: Timestamp::from_nanos(1_795_462_647_000_000_000),
            raw_before: MonoInstant::from_nanos(10_000),
            raw_after: MonoInstant::from_nanos(11_000),
        }
    }

    #[test]
    fn synchronized_kernel_gives_maxerror_wide_sample() {
        let (s, leap) = kernel_sample(&reading(0, 0, 250)).unwrap();
        assert_eq!(s.at, MonoInstant::from_nanos(11_000));
        assert_eq!(s.interval.earliest().as_nanos(), 1_795_462_647_000_000_000 - 250_000);
        assert_eq!(s.interval.latest().as_nanos(), 1_795_462_647_000_000_000 + 250_000 + 2_000);
        assert_eq!(leap, LeapAnnouncement::None);
        // An offset still being slewed out widens both sides.
        let mut slewing = reading(0, 0, 250);
        slewing.offset_ns = -3_000_000;
        let (s, _) = kernel_sample(&slewing).unwrap();
        assert_eq!(s.interval.earliest().as_nanos(), 1_795_462_647_000_000_000 - 250_000 - 3_000_000);
        assert_eq!(kernel_sample(&reading(0, TIME_INS, 1)).unwrap().1, LeapAnnouncement::Insert);
        assert_eq!(kernel_sample(&reading(0, TIME_DEL, 1)).unwrap().1, LeapAnnouncement::Delete);
    }

    #[test]
    fn refusals() {
        assert_eq!(kernel_sample(&reading(STA_UNSYNC, 0, 1)), Err(KernelReject::Unsynchronized));
        assert_eq!(kernel_sample(&reading(0, TIME_ERROR, 1)), Err(KernelReject::ClockError));
        assert_eq!(kernel_sample(&reading(0, 0, 16_000_001)), Err(KernelReject::MaxErrorOutOfRange(16_000_001)));
        assert_eq!(kernel_sample(&reading(0, 0, -1)), Err(KernelReject::MaxErrorOutOfRange(-1)));
        assert_eq!(kernel_sample(&reading(0, 0, 0)), Err(KernelReject::MaxErrorOutOfRange(0)), "timesyncd's zero");
        let mut r = reading(0, 0, 1);
        r.raw_after = MonoInstant::from_nanos(1);
        assert_eq!(kernel_sample(&r), Err(KernelReject::ReaderClockBackwards));
    }

    #[test]
    fn reading_this_host_never_fails() {
        let k = read_kernel().unwrap();
        assert!(k.raw_after >= k.raw_before);
        let realtime = tsod_shm::realtime_now().unwrap();
        let gap = realtime.as_nanos().abs_diff(k.time.as_nanos());
        assert!(gap < 1_000_000_000, "adjtimex time is the system clock: {gap} ns apart");
        // Whether this host is synchronized depends on the machine; print it.
        println!("kernel source on this host: {:?}", kernel_sample(&k).map(|(s, _)| s.interval.half_width()));
    }
}
