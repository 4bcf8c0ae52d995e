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

/// A step of the simulated realtime clock: at raw instant `at`, add `by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedStep {
    /// When, on the host's raw clock, relative to the clock's creation.
    pub after: Duration,
    /// How much the simulated realtime jumps (may be negative).
    pub by: Offset,
}

/// A wrong local clock for simulations: realtime = host realtime + offset +
/// frequency error × elapsed + the steps taken so far.
#[derive(Debug)]
pub struct SimulatedClock {
    offset: Offset,
    frequency: Ppb,
    steps: Vec<ScriptedStep>,
    origin: Mutex<Option<MonoInstant>>,
}

impl SimulatedClock {
    /// A clock `offset` off the host's, running `frequency` fast (negative:
    /// slow), stepping as `steps` say.
    pub fn new(offset: Offset, frequency: Ppb, mut steps: Vec<ScriptedStep>) -> Self {
        steps.sort_by_key(|s| s.after);
        Self { offset, frequency, steps, origin: Mutex::new(None) }
    }

    /// The simulated realtime for a host reading, `elapsed` after creation.
    fn transform(&self, host_realtime: Timestamp, elapsed: Duration) -> Timestamp {
        let elapsed_ns = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX);
        let drift = elapsed_ns.saturating_mul(i128::from(self.frequency.get())) / 1_000_000_000;
        let stepped: i128 = self.steps.iter().filter(|s| s.after <= elapsed).map(|s| i128::from(s.by.as_nanos())).sum();
        let total = i128::from(self.offset.as_nanos()).saturating_add(drift).saturating_add(stepped);
        let t = i128::from(host_realtime.as_nanos()).saturating_add(total);
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

#[cfg(test)]
mod tests {
    use super::*;

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
                ScriptedStep { after: Duration::from_secs(20), by: Offset::from_nanos(-1_000_000) },
                ScriptedStep { after: Duration::from_secs(10), by: Offset::from_nanos(3_000) },
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
    fn simulated_clock_keeps_the_host_reader_clock() {
        let c = SimulatedClock::new(Offset::from_nanos(-7_000_000_000), Ppb::ZERO, Vec::new());
        let before = SystemClock.read().unwrap();
        let sim = c.read().unwrap();
        let after = SystemClock.read().unwrap();
        assert!(before.raw <= sim.raw && sim.raw <= after.raw);
        assert!(sim.realtime.as_nanos() + 6_000_000_000 < before.realtime.as_nanos());
    }
}
