//! One listen socket's thread: receive, judge, prepare, read the clock,
//! finish, send. A thread blocked in `recvmsg` rather than an async task:
//! it wakes sooner (the NTP client's threads, `daemon::ntp_task`, measured
//! why), and a flood on the socket keeps this thread busy, never the
//! runtime's two workers that the main loop publishes the bound on.
//!
//! Readings around each receive (all host clocks): the reader clock `m₀`
//! and realtime `r₀` before waiting; after `recvmsg` returns, the reader
//! clock `p`, realtime `r`, then the full reading `m₂`. With the kernel's
//! arrival timestamp between `r₀` and `r`, `sources::ntp::wire` turns
//! `r − arrived` into true time that surely passed (checking realtime did
//! not step against the reader clock meanwhile); a datagram that was
//! already queued when the thread looked (arrived before `r₀`) gets no
//! credit.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};
use tsod_client::sys;
use tsod_proto::Ppb;

use super::identity::{Judged, Upstreams};
use super::limit::RateLimiter;
use super::reply::{self, Receipt, ServerView};
use super::socket::ServerSocket;
use super::{Counters, Shared, Tracker, Verdict, judge};
use crate::clock::{Clock, realtime_rate_bound};
use crate::site::SiteView;
use crate::sources::ntp::packet::LeapIndicator;
use crate::sources::ntp::wire::{KernelStamps, StampModel, wire_times};

/// Largest datagram read whole; a longer one is read truncated (only the
/// header matters).
const BUFFER: usize = 1_024;

/// One socket's thread and everything it owns.
pub(super) struct Worker {
    pub(super) socket: ServerSocket,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) view: watch::Receiver<SiteView>,
    pub(super) upstreams: Arc<Upstreams>,
    pub(super) shared: Arc<Shared>,
    pub(super) limiter: Option<RateLimiter>,
    pub(super) tracker: Tracker,
    pub(super) max_drift: Ppb,
    pub(super) resolution: Duration,
}

impl Worker {
    /// Serves until the daemon's view channel closes.
    pub(super) fn run(mut self) {
        let mut buf = [0u8; BUFFER];
        let (mut current, mut sigma) = (self.refresh(), Sigma::new());
        sigma.refresh();
        loop {
            match self.view.has_changed() {
                Err(_) => return, // the daemon stopped
                Ok(true) => {
                    current = self.refresh();
                    sigma.refresh();
                }
                Ok(false) => {}
            }
            let Ok((m0, r0)) = sys::reader_clock_now().and_then(|m| Ok((m, sys::realtime_now()?))) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let datagram = match self.socket.recv(&mut buf) {
                Ok(d) => d,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(e) => {
                    debug!(error = %e, "NTP server receive");
                    continue;
                }
            };
            Counters::bump(&self.shared.counters.requests);
            let readings = sys::reader_clock_now().and_then(|p| Ok((p, sys::realtime_now()?, self.clock.read()?)));
            let Ok((p, r, received)) = readings else { continue };
            let bytes = buf.get(..datagram.len).unwrap_or_default();
            let precision = current.precision;
            let request = match judge(bytes, datagram.from.ip(), received.raw, self.limiter.as_mut(), precision) {
                Verdict::Malformed(why) => {
                    debug!(from = %datagram.from, %why, "NTP request dropped");
                    Counters::bump(&self.shared.counters.malformed);
                    continue;
                }
                Verdict::Limited(kiss) => {
                    Counters::bump(&self.shared.counters.rate_limited);
                    if let Some(kiss) = kiss {
                        self.send(&kiss.encode(), &datagram, &self.shared.counters.kisses);
                    }
                    continue;
                }
                Verdict::Serve(request) => request,
            };
            let stamps = KernelStamps {
                t1: m0,
                sent_realtime: r0,
                departed: None,
                arrived: datagram.arrived,
                received_raw: p,
                received_realtime: r,
                t4: received.raw,
            };
            let model =
                StampModel { realtime_rate: sigma.bound, reader_drift: self.max_drift, resolution: self.resolution };
            let credit = wire_times(&stamps, &model).map(|w| w.after_arrival).unwrap_or(Duration::ZERO);
            let receipt = Receipt {
                at: received.raw,
                credit,
                local_clock: received.realtime,
                suspended: tsod_client::suspended_since(&current.published, received.raw, received.boottime),
            };
            let prepared = reply::prepare(&request, &current, &receipt);
            // The transmit timestamp: as late as possible before sending.
            let Ok(transmit_at) = sys::reader_clock_now() else { continue };
            let clock = &self.clock;
            let packet = prepared.finish(transmit_at, || clock.read().map_or(received.realtime, |r| r.realtime));
            if packet.leap == LeapIndicator::Unsynchronized {
                Counters::bump(&self.shared.counters.unsynchronized);
            }
            self.send(&packet.encode(), &datagram, &self.shared.counters.replies);
        }
    }

    /// Sends `bytes` back to the datagram's sender; counts it in `sent`.
    fn send(&self, bytes: &[u8], to: &super::socket::Datagram, sent: &AtomicU64) {
        match self.socket.send(bytes, to.from, to.local) {
            Ok(()) => Counters::bump(sent),
            Err(e) => {
                debug!(to = %to.from, error = %e, "NTP reply not sent");
                Counters::bump(&self.shared.counters.send_errors);
            }
        }
    }

    /// The view to serve after a published tick.
    fn refresh(&mut self) -> ServerView {
        let (published, sources, upstreams) = {
            let view = self.view.borrow_and_update();
            let upstreams = self.upstreams.of(view.report.sources.iter().map(|s| s.name.as_str()));
            let sources: Vec<Judged> = view
                .report
                .sources
                .iter()
                .map(|s| Judged { kind: s.kind, usable: s.usable, falseticker: s.falseticker })
                .collect();
            (view.published, sources, upstreams)
        };
        let current = self.tracker.update(&published, &sources, &upstreams);
        let serving = published.anchor.status.is_bounded();
        *self.shared.serving.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((current.identity, serving));
        current
    }
}

/// Realtime's rate bound for the kernel-timestamp credit: the wider of the
/// kernel's discipline state at the last two ticks (`realtime_rate_bound`
/// says what that assumes).
struct Sigma {
    last: Option<Ppb>,
    bound: Ppb,
}

impl Sigma {
    const fn new() -> Self {
        Self { last: None, bound: Ppb::ZERO }
    }

    fn refresh(&mut self) {
        let now = realtime_rate_bound(tsod_shm::kernel_clock_state().ok().as_ref());
        self.bound = self.last.map_or(now, |last| last.max(now));
        self.last = Some(now);
    }
}

/// The coarser of the host's realtime and reader clock resolutions
/// (`clock_getres`), at least 1 ns; 1 µs if the kernel does not say.
pub(super) fn clock_resolution() -> Duration {
    use nix::time::{ClockId, clock_getres};
    let of = |id| clock_getres(id).ok().map(Duration::from);
    match (of(ClockId::CLOCK_REALTIME), of(ClockId::CLOCK_MONOTONIC_RAW)) {
        (Some(a), Some(b)) => a.max(b).max(Duration::from_nanos(1)),
        _ => {
            warn!("clock_getres gave nothing: assuming 1 µs readings");
            Duration::from_micros(1)
        }
    }
}
