//! Emulated WAN links: [`WanRelay`], a UDP relay on loopback that sits
//! between two QUIC endpoints and makes the path between them behave like a
//! long-distance link. A site is told that its peer lives at the relay's
//! listening address; the relay forwards to the peer's real address.
//!
//! ```text
//!            listen                                   upstream (one per client)
//! client ──► [ socket ] ── forward: delay, jitter, loss ──► [ socket ] ──► target
//! client ◄── [ socket ] ◄── reverse: delay, jitter, loss ── [ socket ] ◄── target
//! ```
//!
//! Every distinct client address gets its own ephemeral upstream socket,
//! connected to the target, so the target sees one distinct source per
//! client and its replies to that source come back to the right client.
//!
//! # What it emulates
//!
//! Per direction ([`DirectionShape`]), independently for every datagram:
//!
//! * a one-way **delay** (the two directions may differ);
//! * **jitter**: an extra delay drawn uniformly from `[0, jitter]`. Datagrams
//!   whose release times cross are delivered in release order, so jitter
//!   reorders datagrams sent less than `jitter` apart, as a multi-path WAN may;
//! * random **loss** with probability `loss` (Bernoulli, no bursts).
//!
//! A datagram arriving at time `a` is released at `a + delay + U[0, jitter]`
//! (capped at [`MAX_DELAY`]), with the shape in force when it arrived: a new
//! shape ([`LinkHandle::set_shape`]) applies from the next datagram. A
//! **partition** ([`LinkHandle::set_partitioned`]) drops everything both
//! ways, including datagrams already in flight when they come due.
//!
//! # What it does not emulate
//!
//! No bandwidth limit and no queueing delay under load (a datagram's delay
//! does not depend on the others), no MTU change or fragmentation, no
//! duplication or corruption, no correlated (bursty) loss, and no NAT-like
//! expiry of client addresses: a client keeps its upstream socket until the
//! relay stops.
//!
//! # Timing
//!
//! The receiving threads read the arrival time as soon as a datagram is
//! received; one delivery thread sleeps on a condition variable until the
//! earliest release (woken early when a datagram with an earlier release is
//! queued) and sends what is due. On an idle host the delay it adds to the
//! configured one is the thread wake-up latency, tens of microseconds; the
//! target is within 1 ms for delays from 0.5 to 200 ms.
//!
//! # Bounds, threads and lifetime
//!
//! * At most [`MAX_CLIENTS`] client addresses; datagrams from further ones
//!   are dropped and counted ([`RelayStats::over_client_limit`]).
//! * At most [`QUEUE_CAPACITY`] datagrams in flight per direction; more are
//!   dropped and counted ([`DirectionStats::overflowed`]).
//! * One thread receives from clients, one per client receives from the
//!   target, one delivers. They bind loopback only, wait at most [`POLL`]
//!   before looking at their stop flag, and never spin: dropping the relay
//!   (or [`WanRelay::shutdown`]) stops and joins them all, discards what is
//!   still in flight and closes every socket.
//!
//! # Counters
//!
//! [`WanRelay::stats`] counts, per direction, the datagrams that arrived
//! and their bytes, and what became of them (forwarded, lost, partitioned,
//! overflowed, failed, or still in flight). A running cluster writes every
//! relay's counters to `links.json` ([`crate::links_file`]).

mod queue;
mod rng;
#[cfg(test)]
mod tests;
mod threads;

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sim::{POLL, require_loopback};
use queue::{DelayQueue, Route, Way};
use rng::Rng;
use threads::{deliver, receive_from_clients, spawn};

/// Most distinct client addresses a relay serves.
pub const MAX_CLIENTS: usize = 64;

/// Most datagrams in flight per direction; beyond, arrivals are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// Longest a datagram is held (delay plus jitter), whatever the shape says.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Largest UDP payload (IPv6 jumbograms aside); longer datagrams are truncated.
const MAX_DATAGRAM: usize = 65_535;

/// How one direction of a link treats each datagram. The default is an
/// ideal direction: no delay, no jitter, no loss.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionShape {
    /// Fixed one-way delay added to every datagram.
    pub delay: Duration,
    /// Upper bound of the extra delay drawn uniformly from `[0, jitter]`.
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a datagram is lost (`≤ 0` or NaN: never,
    /// `≥ 1`: always).
    pub loss: f64,
}

impl DirectionShape {
    /// No delay, no jitter, no loss.
    pub const IDEAL: Self = Self { delay: Duration::ZERO, jitter: Duration::ZERO, loss: 0.0 };

    /// A fixed `delay`, without jitter or loss.
    pub const fn with_delay(delay: Duration) -> Self {
        Self { delay, jitter: Duration::ZERO, loss: 0.0 }
    }
}

/// How a link treats datagrams each way. "Forward" is from the relay's
/// clients to its target, "reverse" from the target back to the clients.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkShape {
    /// Client → target.
    pub forward: DirectionShape,
    /// Target → client.
    pub reverse: DirectionShape,
}

impl LinkShape {
    /// A link that forwards at once and loses nothing.
    pub const IDEAL: Self = Self { forward: DirectionShape::IDEAL, reverse: DirectionShape::IDEAL };

    /// The same shape both ways.
    pub const fn symmetric(shape: DirectionShape) -> Self {
        Self { forward: shape, reverse: shape }
    }

    fn direction(&self, way: Way) -> DirectionShape {
        match way {
            Way::Forward => self.forward,
            Way::Reverse => self.reverse,
        }
    }
}

/// What happened to the datagrams of one direction so far (kebab-case keys
/// in JSON: [`crate::links_file`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DirectionStats {
    /// Arrived from a served client (forward) or from the target (reverse):
    /// each is then forwarded, lost, partitioned, overflowed, failed, or
    /// still in flight.
    pub arrived: u64,
    /// Their payload bytes (UDP payloads: QUIC packets, headers included).
    pub arrived_bytes: u64,
    /// Delivered to the other side.
    pub forwarded: u64,
    /// Dropped by the random loss.
    pub lost: u64,
    /// Dropped by a partition, on arrival or when they came due.
    pub partitioned: u64,
    /// Dropped because [`QUEUE_CAPACITY`] datagrams were already in flight.
    pub overflowed: u64,
    /// Dropped because a send failed (or, forward, because the client's
    /// upstream socket could not be set up).
    pub send_failed: u64,
    /// Queued now, waiting for their release time.
    pub in_flight: usize,
}

/// A snapshot of a relay's counters (kebab-case keys in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RelayStats {
    /// Client → target.
    pub forward: DirectionStats,
    /// Target → client.
    pub reverse: DirectionStats,
    /// Distinct client addresses with an upstream socket.
    pub clients: usize,
    /// Datagrams dropped because they came from a new client address when
    /// [`MAX_CLIENTS`] were already served.
    pub over_client_limit: u64,
}

#[derive(Debug, Default)]
struct DirectionCounters {
    arrived: AtomicU64,
    arrived_bytes: AtomicU64,
    forwarded: AtomicU64,
    lost: AtomicU64,
    partitioned: AtomicU64,
    overflowed: AtomicU64,
    send_failed: AtomicU64,
}

impl DirectionCounters {
    fn snapshot(&self, in_flight: usize) -> DirectionStats {
        DirectionStats {
            arrived: self.arrived.load(Ordering::Relaxed),
            arrived_bytes: self.arrived_bytes.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            partitioned: self.partitioned.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            send_failed: self.send_failed.load(Ordering::Relaxed),
            in_flight,
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Everything the relay's threads and handles share.
#[derive(Debug)]
struct Shared {
    shape: Mutex<LinkShape>,
    partitioned: AtomicBool,
    forward: DirectionCounters,
    reverse: DirectionCounters,
    clients: AtomicUsize,
    over_client_limit: AtomicU64,
    queue: Mutex<DelayQueue>,
    /// Signalled when the queue gets a new first datagram, and on stop.
    queue_changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn counters(&self, way: Way) -> &DirectionCounters {
        match way {
            Way::Forward => &self.forward,
            Way::Reverse => &self.reverse,
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, DelayQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Applies the partition, loss and delay of `way` to a datagram that
    /// arrived at `arrival`, and queues it if it survives.
    fn admit(&self, way: Way, arrival: Instant, route: Route, payload: &[u8], rng: &mut Rng) {
        let counters = self.counters(way);
        bump(&counters.arrived);
        let bytes = u64::try_from(payload.len()).unwrap_or(u64::MAX);
        counters.arrived_bytes.fetch_add(bytes, Ordering::Relaxed);
        if self.partitioned.load(Ordering::Relaxed) {
            bump(&counters.partitioned);
            return;
        }
        let shape = self.shape.lock().unwrap_or_else(PoisonError::into_inner).direction(way);
        if rng.chance(shape.loss) {
            bump(&counters.lost);
            return;
        }
        let hold = shape.delay.saturating_add(rng.up_to(shape.jitter)).min(MAX_DELAY);
        let release = arrival.checked_add(hold).unwrap_or(arrival);
        match self.lock_queue().push(release, way, route, payload.to_vec()) {
            Ok(true) => self.queue_changed.notify_one(),
            Ok(false) => {}
            Err(queue::Full) => bump(&counters.overflowed),
        }
    }
}

/// Changes a running relay's shape and partition, and reads its counters.
/// Cloning is cheap (an `Arc`); every clone controls the same relay. A
/// handle outlives its relay harmlessly: changes then have no effect.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    shared: Arc<Shared>,
}

impl LinkHandle {
    /// Replaces the shape; it applies to datagrams arriving from now on
    /// (those in flight keep their release time).
    pub fn set_shape(&self, shape: LinkShape) {
        *self.shared.shape.lock().unwrap_or_else(PoisonError::into_inner) = shape;
    }

    /// The current shape.
    pub fn shape(&self) -> LinkShape {
        *self.shared.shape.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cuts the link both ways (`true`), dropping every datagram that arrives
    /// or comes due, or restores it (`false`).
    pub fn set_partitioned(&self, partitioned: bool) {
        self.shared.partitioned.store(partitioned, Ordering::Relaxed);
    }

    /// Whether the link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.shared.partitioned.load(Ordering::Relaxed)
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        let shared = &self.shared;
        let (forward_in_flight, reverse_in_flight) = {
            let queue = shared.lock_queue();
            (queue.in_flight(Way::Forward), queue.in_flight(Way::Reverse))
        };
        RelayStats {
            forward: shared.forward.snapshot(forward_in_flight),
            reverse: shared.reverse.snapshot(reverse_in_flight),
            clients: shared.clients.load(Ordering::Relaxed),
            over_client_limit: shared.over_client_limit.load(Ordering::Relaxed),
        }
    }
}

/// A running emulated WAN link between its clients and one target. Dropping
/// it (or [`WanRelay::shutdown`]) stops and joins its threads, discards the
/// datagrams in flight and closes its sockets.
#[derive(Debug)]
pub struct WanRelay {
    local_addr: SocketAddr,
    target: SocketAddr,
    handle: LinkHandle,
    threads: Vec<JoinHandle<()>>,
}

impl WanRelay {
    /// Listens on `listen` (loopback; port 0 picks a free port) and relays
    /// to `target` (loopback, with a port) through a link of `shape`.
    pub fn start(listen: SocketAddr, target: SocketAddr, shape: LinkShape) -> io::Result<Self> {
        require_loopback(listen)?;
        require_loopback(target)?;
        if target.port() == 0 {
            return Err(io::Error::new(ErrorKind::InvalidInput, format!("relay target {target} has no port")));
        }
        let socket = UdpSocket::bind(listen)?;
        socket.set_read_timeout(Some(POLL))?;
        let local_addr = socket.local_addr()?;
        let listen_socket = Arc::new(socket);
        let shared = Arc::new(Shared {
            shape: Mutex::new(shape),
            partitioned: AtomicBool::new(false),
            forward: DirectionCounters::default(),
            reverse: DirectionCounters::default(),
            clients: AtomicUsize::new(0),
            over_client_limit: AtomicU64::new(0),
            queue: Mutex::new(DelayQueue::default()),
            queue_changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        // Built before spawning, so that a failed spawn stops what already runs.
        let mut relay =
            Self { local_addr, target, handle: LinkHandle { shared: Arc::clone(&shared) }, threads: Vec::new() };
        let (socket, state) = (Arc::clone(&listen_socket), Arc::clone(&shared));
        relay.threads.push(spawn("wan-relay-out", move || deliver(&socket, &state))?);
        relay.threads.push(spawn("wan-relay-in", move || receive_from_clients(&listen_socket, target, &shared))?);
        Ok(relay)
    }

    /// The address clients send to (with the port actually bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address datagrams are relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// A handle that changes this link from elsewhere.
    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    /// Replaces the shape ([`LinkHandle::set_shape`]).
    pub fn set_shape(&self, shape: LinkShape) {
        self.handle.set_shape(shape);
    }

    /// The current shape.
    pub fn shape(&self) -> LinkShape {
        self.handle.shape()
    }

    /// Cuts or restores the link ([`LinkHandle::set_partitioned`]).
    pub fn set_partitioned(&self, partitioned: bool) {
        self.handle.set_partitioned(partitioned);
    }

    /// Whether the link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.handle.is_partitioned()
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        self.handle.stats()
    }

    /// Stops the relay and waits for its threads (about [`POLL`]).
    pub fn shutdown(self) {}
}

impl Drop for WanRelay {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        shared.stop.store(true, Ordering::Relaxed);
        // Taking the lock orders the store before the delivery thread's next
        // look at the flag, so the notification cannot be missed.
        drop(shared.lock_queue());
        shared.queue_changed.notify_all();
        for thread in self.threads.drain(..) {
            // A panicked relay thread has nothing left to clean up.
            let _ = thread.join();
        }
        // Normally done by the delivery thread already; this drops the
        // upstream sockets still referenced by queued datagrams in any case.
        shared.lock_queue().clear();
    }
}
