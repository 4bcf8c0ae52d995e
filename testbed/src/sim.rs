//! Simulated time sources: a gpsd ([`gpsd::GpsdSim`]) and an NTP server
//! ([`ntp::NtpSim`]) that speak the real protocols on loopback, so that
//! `tsod`'s real source code paths (socket, parser, bound) are exercised.
//!
//! # Where truth comes from
//!
//! On the testbed machine the host's `CLOCK_REALTIME` is true time by
//! definition (docs/ARCHITECTURE.md, "The testbed's truth"). A simulator reads it
//! ([`host_realtime`]) at each event it reports, tells it as POSIX UTC the
//! way its cluster's [`TrueTime`](crate::truth::TrueTime) says (shifted,
//! and repeating or skipping a second at a scenario's leap; the host's own
//! time by default), and adds the error its current fault asks for:
//!
//! ```text
//! lie(t) = offset + drift · max(0, t − set_at)
//! ```
//!
//! where `t` is the true time of the event and `set_at` the host realtime at
//! which the fault was last set ([`FaultHandle::set`]): a constant lie
//! ("spoofed or jumped source") plus one that grows slowly from the moment
//! of the fault ("slow spoofing"). With the default fault (all zero) a
//! simulator tells the truth up to its reading precision.
//!
//! # Threads and lifetime
//!
//! Each simulator runs on one std thread of its own (no async runtime is
//! needed by the caller, so plain `#[test]` functions can use them), binds
//! only loopback addresses, and polls a stop flag at least every
//! [`POLL`]: dropping the simulator (or calling its `shutdown`) stops the
//! thread, joins it and closes its sockets.

pub mod gpsd;
pub mod ntp;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tsod_proto::{Offset, Ppb, Timestamp};

/// Longest a simulator thread waits before looking at its stop flag (and,
/// for gpsd, at new connections and commands).
pub const POLL: Duration = Duration::from_millis(10);

pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The host's `CLOCK_REALTIME`: true time on the testbed machine. The epoch
/// if the host clock reads before 1970 (it never does on a working host).
pub fn host_realtime() -> Timestamp {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .map_or(Timestamp::EPOCH, Timestamp::from_nanos)
}

/// A fault and the host realtime at which it was set, shared between a
/// simulator's thread and whoever changes the fault. Cloning is cheap (an
/// `Arc`); every clone controls the same simulator.
#[derive(Debug)]
pub struct FaultHandle<F> {
    state: Arc<Mutex<(F, Timestamp)>>,
}

impl<F> Clone for FaultHandle<F> {
    fn clone(&self) -> Self {
        Self { state: Arc::clone(&self.state) }
    }
}

impl<F: Copy> FaultHandle<F> {
    pub(crate) fn new(fault: F) -> Self {
        Self { state: Arc::new(Mutex::new((fault, host_realtime()))) }
    }

    /// Replaces the fault; a drift in it starts growing from now.
    pub fn set(&self, fault: F) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = (fault, host_realtime());
    }

    /// The current fault.
    pub fn get(&self) -> F {
        self.snapshot().0
    }

    /// The host realtime at which the current fault was set.
    pub fn set_at(&self) -> Timestamp {
        self.snapshot().1
    }

    /// The fault and when it was set, read together.
    pub(crate) fn snapshot(&self) -> (F, Timestamp) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `lie(t)` of the module doc, in nanoseconds (i128: no overflow for any
/// offset, drift and time).
pub(crate) fn lie_nanos(offset: Offset, drift: Ppb, set_at: Timestamp, t: Timestamp) -> i128 {
    let elapsed = i128::from(t.as_nanos().saturating_sub(set_at.as_nanos()));
    i128::from(offset.as_nanos()) + i128::from(drift.get()) * elapsed / i128::from(NANOS_PER_SEC)
}

/// Refuses addresses other than loopback: the simulators must not be
/// reachable from the network.
pub(crate) fn require_loopback(addr: SocketAddr) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("simulators bind loopback only, not {addr}")))
    }
}

/// A simulator's thread and its stop flag; dropping it stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Spawns `body` on a thread named `name`; `body` must return soon after
    /// the flag it is given turns true.
    pub(crate) fn spawn(name: &str, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || body(flag))?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panicked simulator thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// Waits up to 5 s for `condition`, which a simulator's own thread makes
/// true some time after the event a test saw (its counters are bumped after
/// the reply leaves, and a loaded host may schedule that thread late).
#[cfg(test)]
pub(crate) fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_795_462_647_000_000_000;

    #[test]
    fn lie_is_offset_plus_drift_since_set() {
        let set_at = Timestamp::from_nanos(T);
        let at = |secs: u64| Timestamp::from_nanos(T + secs * NANOS_PER_SEC);
        let offset = Offset::from_nanos(-250_000_000);
        assert_eq!(lie_nanos(offset, Ppb::ZERO, set_at, at(100)), -250_000_000);
        // 1 ppm for 10 s: 10 µs, on top of the offset.
        assert_eq!(lie_nanos(offset, Ppb::from_ppm(1), set_at, at(10)), -250_000_000 + 10_000);
        assert_eq!(lie_nanos(Offset::default(), Ppb::from_ppm(-1), set_at, at(10)), -10_000);
        // Before the fault was set, the drift has not started.
        assert_eq!(lie_nanos(offset, Ppb::from_ppm(1), set_at, Timestamp::from_nanos(T - 5)), -250_000_000);
    }

    #[test]
    fn fault_handle_records_when_set() {
        let handle = FaultHandle::new(1u8);
        let clone = handle.clone();
        let before = host_realtime();
        clone.set(2);
        assert_eq!(handle.get(), 2);
        assert!(handle.set_at() >= before && handle.set_at() <= host_realtime());
    }

    #[test]
    fn only_loopback_is_allowed() {
        assert!(require_loopback(SocketAddr::from(([127, 0, 0, 1], 0))).is_ok());
        assert!(require_loopback(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0))).is_ok());
        assert!(require_loopback(SocketAddr::from(([0, 0, 0, 0], 0))).is_err());
        assert!(require_loopback(SocketAddr::from(([192, 0, 2, 1], 123))).is_err());
    }
}
