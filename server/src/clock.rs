//! The daemon's view of the local clocks, behind a trait so that tests and
//! the testbed can run the real code on a simulated clock (docs/STYLE.md §2).
//!
//! A [`ClockReading`] takes the four Linux clocks the daemon needs at (as
//! nearly as possible) one instant:
//!
//! * `raw` — `CLOCK_MONOTONIC_RAW`, the reader clock every sample and every
//!   published anchor refers to (SPEC.md §5.2);
//! * `monotonic` and `boottime` — their difference grows only across a
//!   suspend, which is how the daemon notices one;
//! * `realtime` — `CLOCK_REALTIME`, which only the kernel source and gpsd's
//!   timestamps are expressed in;
//! * `hypervisor_epoch` — how many disruptions the hypervisor has announced
//!   through its VMClock page (live migration, snapshot restore) since the
//!   daemon started watching ([`VmClockWatched`]); 0 without a VMClock. A
//!   VM pause and a migration freeze all four clocks together, so nothing
//!   else in a reading shows them.
//!
//! [`SimulatedClock`] gives a site a wrong clock for the testbed: its
//! realtime runs with an offset, a frequency error and scripted steps. Its
//! `raw` stays the host's real `CLOCK_MONOTONIC_RAW`, because that is the
//! clock applications on the host read and the segment is defined on
//! (SPEC.md §5.2): the site's errors must show up in what tsod measures and
//! publishes, never in the clock its clients extrapolate with.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tsod_client::sys;
use tsod_proto::{MonoInstant, Offset, Ppb, Timestamp};

/// The local clocks read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    /// `CLOCK_MONOTONIC_RAW`.
    pub raw: MonoInstant,
    /// `CLOCK_MONOTONIC`.
    pub monotonic: MonoInstant,
    /// `CLOCK_BOOTTIME`.
    pub boottime: MonoInstant,
    /// `CLOCK_REALTIME`, on the local (possibly wrong) system clock.
    pub realtime: Timestamp,
    /// Hypervisor-announced disruptions so far (0 without a VMClock device).
    pub hypervisor_epoch: u64,
}

/// Something that reads the local clocks.
pub trait Clock: Send + Sync {
    /// Reads all four clocks.
    fn read(&self) -> io::Result<ClockReading>;
}

/// How much faster or slower than true time `CLOCK_REALTIME` may run while
/// the kernel is in `state` (`None`: not known), as a rate error: the
/// σ with which a realtime span R took between R/(1 + σ) and R/(1 − σ) of
/// true time.
///
/// [`crate::sources::gpsd::MAX_REALTIME_SLEW`] (102 000 ppm) covers the
/// tick, the frequency, `adjtime` and the oscillator. The kernel's PLL
/// (`STA_PLL`, as ntpd and systemd-timesyncd run it) slews a phase offset
/// of up to `MAXPHASE` (0.5 s) by a quarter of it per second at time
/// constant 0 (`SHIFT_PLL` = 2): 125 000 ppm more; with a kernel PPS
/// consumer (`STA_PPSTIME`) it takes the whole offset in one second:
/// 500 000 ppm more. A leftover offset keeps being slewed after `STA_PLL`
/// is cleared, so a non-zero `offset` counts as the PLL. The bound assumes
/// the discipline does not switch the kernel PLL on and off between two
/// readings of `state` (both ends of one exchange or event are read).
pub fn realtime_rate_bound(state: Option<&tsod_shm::KernelClockState>) -> Ppb {
    const PLL: i64 = 125_000_000;
    const PPS_PLL: i64 = 500_000_000;
    let base = crate::sources::gpsd::MAX_REALTIME_SLEW.get();
    let extra = match state {
        None => PPS_PLL,
        Some(k) if k.status & libc::STA_PPSTIME != 0 && (k.status & libc::STA_PLL != 0 || k.offset.as_nanos() != 0) => {
            PPS_PLL
        }
        Some(k) if k.status & libc::STA_PLL != 0 || k.offset.as_nanos() != 0 => PLL,
        Some(_) => 0,
    };
    Ppb::new(base.saturating_add(extra))
}

/// The host's own clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// Longest gap between the first and last raw read of one [`ClockReading`]:
/// a reading that took longer was preempted between its clock reads, and
/// its clocks would disagree by the preemption (which would look like a
/// suspend or a step), so it is taken again.
const READING_MAX_SPAN: u64 = 50_000;
/// Attempts before giving up on an unpreempted reading.
const READING_ATTEMPTS: usize = 20;

impl Clock for SystemClock {
    fn read(&self) -> io::Result<ClockReading> {
        for _ in 0..READING_ATTEMPTS {
            let raw = sys::reader_clock_now()?;
            let monotonic = sys::monotonic_now()?;
            let boottime = sys::boottime_now()?;
            let realtime = sys::realtime_now()?;
            let raw_after = sys::reader_clock_now()?;
            if raw_after.as_nanos().saturating_sub(raw.as_nanos()) <= READING_MAX_SPAN {
                return Ok(ClockReading { raw, monotonic, boottime, realtime, hypervisor_epoch: 0 });
            }
        }
        Err(io::Error::other("clock reads keep being preempted; no consistent reading"))
    }
}

/// A clock whose readings also carry the hypervisor's disruption signal:
/// the VMClock page's `disruption_marker` and VM generation counter
/// (`tsod_shm::VmClock`), read with every reading. Each change of either
/// since the previous reading adds one to `hypervisor_epoch`, which
/// [`crate::engine::detect_disruption`] turns into a disruption in every
/// task that compares two readings. A page that cannot be read (busy
/// beyond the seqlock's retries) counts as a disruption too: the signal
/// cannot be trusted to be unchanged.
pub struct VmClockWatched<C> {
    inner: C,
    vmclock: tsod_shm::VmClock,
    watch: Mutex<(tsod_shm::DisruptionWatch, u64)>,
}

impl<C> std::fmt::Debug for VmClockWatched<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmClockWatched").finish_non_exhaustive()
    }
}

impl<C: Clock> VmClockWatched<C> {
    /// Watches `vmclock` alongside `inner`; the first reading sets the baseline.
    pub fn new(inner: C, vmclock: tsod_shm::VmClock) -> Self {
        Self { inner, vmclock, watch: Mutex::new((tsod_shm::DisruptionWatch::new(), 0)) }
    }
}

impl<C: Clock> Clock for VmClockWatched<C> {
    fn read(&self) -> io::Result<ClockReading> {
        let reading = self.inner.read()?;
        let snapshot = self.vmclock.read();
        let mut guard = self.watch.lock().map_err(|_| io::Error::other("vmclock watch lock poisoned"))?;
        let (watch, epoch) = &mut *guard;
        let disrupted = match &snapshot {
            Ok(s) => watch.observe(s).is_some(),
            Err(_) => true,
        };
        if disrupted {
            *epoch = epoch.saturating_add(1);
        }
        Ok(ClockReading { hypervisor_epoch: *epoch, ..reading })
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn read(&self) -> io::Result<ClockReading> {
        (**self).read()
    }
}

/// When a scripted change of the simulated realtime begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTrigger {
    /// This long after the clock's first reading, on the host's raw clock.
    After(Duration),
    /// Once the host's realtime reaches this instant (the testbed's true
    /// time, so that every site and simulator agrees on when).
    AtHostRealtime(Timestamp),
    /// Once the simulated realtime itself, before this change, reaches this
    /// instant: how the kernel applies a leap second, at 00:00:00 of its own
    /// clock. Only for steps (a slew's `over` is ignored).
    AtRealtime(Timestamp),
}

/// A scripted change of the simulated realtime: a step of `by` when
/// `when` says, or, with a non-zero `over`, a slew that adds `by` evenly
/// over `over` from then on (realtime runs at `1 + by/over`, as chronyd's
/// slew runs it at up to 1 + 83 333 ppm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedStep {
    /// When it begins.
    pub when: StepTrigger,
    /// How much the simulated realtime moves in all (may be negative).
    pub by: Offset,
    /// Zero for a step; else how long the slew takes.
    pub over: Duration,
}

impl ScriptedStep {
    /// A step of `by`, `after` the clock's first reading.
    pub fn after(after: Duration, by: Offset) -> Self {
        Self { when: StepTrigger::After(after), by, over: Duration::ZERO }
    }

    /// How much of it has happened `progress` ns after it began (negative:
    /// not yet).
    fn share(&self, progress: i128) -> i128 {
        let by = i128::from(self.by.as_nanos());
        let over = i128::try_from(self.over.as_nanos()).unwrap_or(i128::MAX);
        if progress < 0 {
            0
        } else if progress >= over {
            by
        } else {
            by.saturating_mul(progress) / over
        }
    }
}

/// A wrong local clock for simulations: realtime = host realtime + offset +
/// frequency error × elapsed + the steps and slews so far.
///
/// Steps and slews timed by [`StepTrigger::After`] or
/// [`StepTrigger::AtHostRealtime`] add up in any order; each
/// [`StepTrigger::AtRealtime`] step then compares, in the order given, the
/// clock with all of those and the earlier `AtRealtime` steps applied. For
/// it to stay taken, that value must not fall back below its instant
/// afterwards (a leap step: no other step backwards after it).
#[derive(Debug)]
pub struct SimulatedClock {
    offset: Offset,
    frequency: Ppb,
    steps: Vec<ScriptedStep>,
    origin: Mutex<Option<MonoInstant>>,
}

impl SimulatedClock {
    /// A clock `offset` off the host's, running `frequency` fast (negative:
    /// slow, counted from its first reading), stepping and slewing as
    /// `steps` say.
    pub fn new(offset: Offset, frequency: Ppb, steps: Vec<ScriptedStep>) -> Self {
        Self { offset, frequency, steps, origin: Mutex::new(None) }
    }

    /// The simulated realtime for a host reading, `elapsed` after creation.
    fn transform(&self, host_realtime: Timestamp, elapsed: Duration) -> Timestamp {
        let host = i128::from(host_realtime.as_nanos());
        let elapsed_ns = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX);
        let drift = elapsed_ns.saturating_mul(i128::from(self.frequency.get())) / 1_000_000_000;
        let mut total = i128::from(self.offset.as_nanos()).saturating_add(drift);
        for step in &self.steps {
            let progress = match step.when {
                StepTrigger::After(after) => {
                    elapsed_ns.saturating_sub(i128::try_from(after.as_nanos()).unwrap_or(i128::MAX))
                }
                StepTrigger::AtHostRealtime(at) => host.saturating_sub(i128::from(at.as_nanos())),
                StepTrigger::AtRealtime(_) => continue,
            };
            total = total.saturating_add(step.share(progress));
        }
        for step in &self.steps {
            if let StepTrigger::AtRealtime(at) = step.when {
                if host.saturating_add(total) >= i128::from(at.as_nanos()) {
                    total = total.saturating_add(i128::from(step.by.as_nanos()));
                }
            }
        }
        let t = host.saturating_add(total);
        Timestamp::from_nanos(u64::try_from(t.max(0)).unwrap_or(u64::MAX))
    }
}

impl Clock for SimulatedClock {
    fn read(&self) -> io::Result<ClockReading> {
        let host = SystemClock.read()?;
        let origin = {
            let mut origin = self.origin.lock().map_err(|_| io::Error::other("simulated clock lock poisoned"))?;
            *origin.get_or_insert(host.raw)
        };
        let elapsed = Duration::from_nanos(host.raw.as_nanos().saturating_sub(origin.as_nanos()));
        Ok(ClockReading { realtime: self.transform(host.realtime, elapsed), ..host })
    }
}

/// A kernel timespec (a packet timestamp, `SO_TIMESTAMPING`) as a
/// [`Timestamp`]; zero (no timestamp) and pre-1970 values are `None`.
pub(crate) fn kernel_timestamp(t: nix::sys::time::TimeSpec) -> Option<Timestamp> {
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u64::try_from(t.tv_nsec()).ok().filter(|n| *n < 1_000_000_000)?;
    let total = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    (total > 0).then(|| Timestamp::from_nanos(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_pll_widens_the_realtime_rate_bound() {
        let k = |status: i32, offset: i64| tsod_shm::KernelClockState {
            state: 0,
            status,
            maxerror_us: 0,
            offset: Offset::from_nanos(offset),
            time: Timestamp::from_nanos(1),
        };
        let chronyd = k(libc::STA_NANO, 0);
        assert_eq!(realtime_rate_bound(Some(&chronyd)), crate::sources::gpsd::MAX_REALTIME_SLEW);
        let pll = k(libc::STA_NANO | libc::STA_PLL, 3_000);
        assert_eq!(realtime_rate_bound(Some(&pll)), Ppb::from_ppm(227_000));
        let leftover = k(libc::STA_NANO, -400_000_000);
        assert_eq!(realtime_rate_bound(Some(&leftover)), Ppb::from_ppm(227_000));
        let pps = k(libc::STA_NANO | libc::STA_PLL | libc::STA_PPSTIME, 0);
        assert_eq!(realtime_rate_bound(Some(&pps)), Ppb::from_ppm(602_000));
        assert_eq!(realtime_rate_bound(None), Ppb::from_ppm(602_000), "unknown is the worst");
        // This host's own state gives a bound below 100 %.
        let host = tsod_shm::kernel_clock_state().ok();
        assert!(realtime_rate_bound(host.as_ref()) < Ppb::new(1_000_000_000));
    }

    #[test]
    fn system_clock_readings_are_consistent() {
        let a = SystemClock.read().unwrap();
        let b = SystemClock.read().unwrap();
        assert!(b.raw >= a.raw && b.monotonic >= a.monotonic && b.boottime >= a.boottime);
        assert!(a.boottime >= a.monotonic, "boottime includes everything monotonic does");
    }

    #[test]
    fn simulated_realtime_applies_offset_frequency_and_steps() {
        let c = SimulatedClock::new(
            Offset::from_nanos(5_000_000),
            Ppb::from_ppm(100),
            vec![
                ScriptedStep::after(Duration::from_secs(20), Offset::from_nanos(-1_000_000)),
                ScriptedStep::after(Duration::from_secs(10), Offset::from_nanos(3_000)),
            ],
        );
        let host = Timestamp::from_nanos(1_000_000_000_000);
        let at = |secs| c.transform(host, Duration::from_secs(secs)).as_nanos() - host.as_nanos();
        assert_eq!(at(0), 5_000_000);
        assert_eq!(at(5), 5_000_000 + 500_000);
        assert_eq!(at(10), 5_000_000 + 1_000_000 + 3_000);
        assert_eq!(at(30), 5_000_000 + 3_000_000 + 3_000 - 1_000_000);
    }

    #[test]
    fn a_slew_spreads_its_step_and_host_realtime_can_time_it() {
        const S: i128 = 1_000_000_000;
        let origin: u64 = 1_800_000_000_000_000_000;
        // chronyd's fastest slew, backwards: -83 333 ppm for 12 s = -999.996 ms.
        let slew = ScriptedStep {
            when: StepTrigger::AtHostRealtime(Timestamp::from_nanos(origin + 10 * 1_000_000_000)),
            by: Offset::from_nanos(-999_996_000),
            over: Duration::from_secs(12),
        };
        let c = SimulatedClock::new(Offset::from_nanos(7), Ppb::ZERO, vec![slew]);
        // Elapsed since the first reading plays no part in a host-timed change.
        let at = |ns: i128| {
            let host = Timestamp::from_nanos(u64::try_from(i128::from(origin) + ns).unwrap());
            i128::from(c.transform(host, Duration::from_secs(999)).as_nanos()) - i128::from(host.as_nanos())
        };
        assert_eq!(at(10 * S - 1), 7);
        assert_eq!(at(10 * S), 7);
        assert_eq!(at(16 * S), 7 - 499_998_000, "half-way");
        assert_eq!(at(22 * S), 7 - 999_996_000);
        assert_eq!(at(100 * S), 7 - 999_996_000, "then it stays");
        // Realtime ran at 1 - 83 333 ppm during it.
        let rate = (at(13 * S) - at(12 * S)) as f64 / 1e9;
        assert!((rate + 0.083_333).abs() < 1e-6, "{rate}");
    }

    #[test]
    fn a_leap_step_fires_when_the_clock_itself_reaches_its_instant() {
        const S: u64 = 1_000_000_000;
        let leap = 1_814_400_000 * S; // an arbitrary whole second
        // The kernel inserts: at its own 00:00:00 it goes back to 23:59:59.
        let insert = ScriptedStep {
            when: StepTrigger::AtRealtime(Timestamp::from_nanos(leap)),
            by: Offset::from_nanos(-1_000_000_000),
            over: Duration::ZERO,
        };
        // 40 ms ahead of the host, and stepped 2 ms further at 5 s.
        let c = SimulatedClock::new(
            Offset::from_nanos(40_000_000),
            Ppb::ZERO,
            vec![insert, ScriptedStep::after(Duration::from_secs(5), Offset::from_nanos(2_000_000))],
        );
        let read = |host: u64, elapsed: u64| c.transform(Timestamp::from_nanos(host), Duration::from_secs(elapsed));
        // Before 5 s: 40 ms ahead, so it reaches the leap 40 ms before the host.
        assert_eq!(read(leap - 40_000_001, 1).as_nanos(), leap - 1);
        assert_eq!(read(leap - 40_000_000, 1).as_nanos(), leap - S);
        // After 5 s, the 2 ms step counts before the leap's comparison.
        assert_eq!(read(leap - 42_000_001, 6).as_nanos(), leap - 1);
        assert_eq!(read(leap - 42_000_000, 6).as_nanos(), leap - S);
        // It stays taken: the second [leap - 1 s, leap) repeats, then on.
        assert_eq!(read(leap - 42_000_000 + S, 7).as_nanos(), leap);
        assert_eq!(read(leap + 100 * S, 200).as_nanos(), leap + 100 * S + 42_000_000 - S);
        // A deleted second: at 23:59:59 it jumps to 00:00:00.
        let delete = ScriptedStep {
            when: StepTrigger::AtRealtime(Timestamp::from_nanos(leap - S)),
            by: Offset::from_nanos(1_000_000_000),
            over: Duration::ZERO,
        };
        let c = SimulatedClock::new(Offset::default(), Ppb::ZERO, vec![delete]);
        let read = |host: u64| c.transform(Timestamp::from_nanos(host), Duration::ZERO).as_nanos();
        assert_eq!(read(leap - S - 1), leap - S - 1);
        assert_eq!(read(leap - S), leap);
    }

    #[test]
    fn simulated_clock_keeps_the_host_reader_clock() {
        let c = SimulatedClock::new(Offset::from_nanos(-7_000_000_000), Ppb::ZERO, Vec::new());
        let before = SystemClock.read().unwrap();
        let sim = c.read().unwrap();
        let after = SystemClock.read().unwrap();
        assert!(before.raw <= sim.raw && sim.raw <= after.raw);
        assert!(sim.realtime.as_nanos() + 6_000_000_000 < before.realtime.as_nanos());
    }
}
