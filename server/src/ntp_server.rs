//! # NTP server (`[ntp-server]`, SPEC.md §2.7)
//!
//! Serves the site's published bound to NTP clients (RFC 5905 client /
//! server mode), so hosts that run chrony, ntpd or systemd-timesyncd can
//! follow tsod. A reply's time is the **midpoint** of the published
//! interval and its **root dispersion the half-width**, so that a client's
//! root distance covers everything tsod knows about its own error.
//!
//! * [`request`]: what is answered (mode 3, version 1 … 4); [`judge`]
//!   adds the rate limit ([`limit`]).
//! * [`reply`]: time replies in two steps (receipt, sending), the
//!   unsynchronized reply, the `RATE` kiss-o'-death.
//! * [`identity`]: stratum and reference ID from the sources selection
//!   kept ([`refid`]: an upstream's address as a reference ID).
//! * the shell: [`start`] binds each `listen` address and runs one thread
//!   per socket (`task`, `socket`).
//!
//! ## Why a reply is a bound
//!
//! Let the published anchor give interval `I(m)` at reader-clock instant
//! `m` (SPEC.md §5.4); while the status is bounded, true time at `m` lies
//! in `I(m)`. A request arrives (e2), the server reads the reader clock at
//! `m₂` after it, and at `m₃` before sending the reply (e3 after `m₃`).
//! With `a` ≥ 0 the true time that surely passed between the kernel's
//! arrival timestamp and `m₂` (SPEC.md §2.2's credit `a`, zero without a
//! timestamp), the reply carries
//!
//! ```text
//! T2 = mid(I(m₂)) − a        T3 = mid(I(m₃))        R = root dispersion ≥ max(hw(I(m₂)), hw(I(m₃))) + 1 ns
//! ```
//!
//! (`mid` rounded down, `hw` up, the timestamps rounded down to 2⁻³² s
//! (the 1 ns), R up to 2⁻¹⁶ s; root delay 0). Then
//!
//! * θ(e3) ≥ θ(m₃) ≥ earliest(I(m₃)) ≥ T3 − R: the server's time at
//!   sending less its root distance is not after the truth;
//! * θ(e2) ≤ θ(m₂) − a ≤ latest(I(m₂)) − a ≤ T2 + R: its time at receipt
//!   plus its root distance is not before the truth.
//!
//! These are the two facts an NTP client's own bound rests on (SPEC.md
//! §2.2's derivation: the earliest end from T3, the latest from T2 plus
//! the round trip), so a client that adds our root distance to its own
//! keeps true time inside, whatever the paths. No residence-rate
//! assumption is needed: T2 itself is bounded. And T2 ≤ T3, since both
//! come from one anchor, `m₂ ≤ m₃`, and a midpoint never runs backwards
//! along one anchor.
//!
//! The timescale is the service timescale, `utc-smear-24h` (SPEC.md §2):
//! around a leap second tsod serves the smear, as Google's public NTP does,
//! and so its leap indicator is 0, never 1 or 2, and 3 whenever there is
//! no valid bound (§2.7).
//!
//! ## Who can reach it
//!
//! Anyone on the network. Replies are never longer than the request
//! (48 bytes; extension fields and MACs are not answered), control and
//! private queries are never answered, each client address has a token
//! bucket in a table of fixed size ([`limit`]), and a flood costs the
//! socket's thread, not the daemon's runtime: the main loop, which
//! publishes the bound, runs on its own.

pub mod identity;
pub mod limit;
pub mod refid;
pub mod reply;
pub mod request;
mod socket;
mod task;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::watch;
use tracing::{info, warn};
use tsod_proto::observe::NtpServerStatus;
use tsod_proto::shm::PublishedState;
use tsod_proto::{ClockStatus, MonoInstant, Ppb, Timestamp};

use self::identity::{Identity, Judged, UNSYNCHRONIZED_STRATUM, Upstream, identity};
use self::limit::{Admission, Limits, RateLimiter};
use self::reply::ServerView;
use self::request::{Malformed, Request};
use crate::clock::Clock;
use crate::config::NtpServerConfig;
use crate::site::SiteView;
use crate::sources::ntp::packet::NtpPacket;

pub use self::identity::Upstreams;

/// What to do with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a request we answer: drop it (counted).
    Malformed(Malformed),
    /// Over the rate limit: drop it, or for a fraction send this `RATE`
    /// kiss-o'-death.
    Limited(Option<NtpPacket>),
    /// Answer with the time.
    Serve(Request),
}

/// Judges a datagram `bytes` from `client` arriving at `now`: malformed
/// first (a malformed flood costs no table slot), then the rate limit
/// (`None`: no limit).
pub fn judge(
    bytes: &[u8],
    client: IpAddr,
    now: MonoInstant,
    limiter: Option<&mut RateLimiter>,
    precision: i8,
) -> Verdict {
    let request = match request::parse(bytes) {
        Ok(request) => request,
        Err(malformed) => return Verdict::Malformed(malformed),
    };
    let Some(limiter) = limiter else { return Verdict::Serve(request) };
    match limiter.admit(client, now) {
        Admission::Serve => Verdict::Serve(request),
        Admission::Kiss => Verdict::Limited(Some(reply::kiss(&request, limiter.min_poll(), precision))),
        Admission::Drop => Verdict::Limited(None),
    }
}

/// What the server serves, kept from one published tick to the next: the
/// last identity (so holdover keeps it) and when the bound last rested
/// on agreeing sources (the reference timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracker {
    identity: Option<Identity>,
    reference_time: Option<Timestamp>,
    precision: i8,
}

impl Tracker {
    /// Nothing seen yet; replies carry `precision`.
    pub const fn new(precision: i8) -> Self {
        Self { identity: None, reference_time: None, precision }
    }

    /// The view to serve from `published`, with the sources as selection
    /// judged them and their upstreams (same order).
    pub fn update(
        &mut self,
        published: &PublishedState,
        sources: &[Judged],
        upstreams: &[Option<Upstream>],
    ) -> ServerView {
        let anchor = published.anchor;
        let agreed = matches!(anchor.status, ClockStatus::Synchronized | ClockStatus::Degraded);
        if agreed {
            if let Some(found) = identity(sources, upstreams) {
                self.identity = Some(found);
            }
            self.reference_time = Some(anchor.interval.midpoint());
        }
        ServerView {
            published: *published,
            identity: self.identity.unwrap_or_else(Identity::unknown),
            reference_time: self.reference_time.unwrap_or_else(|| anchor.interval.midpoint()),
            precision: self.precision,
        }
    }
}

/// The server's counters, shared by its threads.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    replies: AtomicU64,
    unsynchronized: AtomicU64,
    malformed: AtomicU64,
    rate_limited: AtomicU64,
    kisses: AtomicU64,
    send_errors: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the threads share with the handle.
#[derive(Debug, Default)]
struct Shared {
    counters: Counters,
    /// The identity served at the last tick, and whether time is served.
    serving: Mutex<Option<(Identity, bool)>>,
}

/// What the server needs from the daemon.
pub struct Inputs {
    /// The daemon's clock (its reader clock and suspend check).
    pub clock: Arc<dyn Clock>,
    /// The site's view after every tick.
    pub view: watch::Receiver<SiteView>,
    /// What each source rests on.
    pub upstreams: Arc<Upstreams>,
    /// The reader clock's rate bound (`clock.max-drift-ppm`).
    pub max_drift: Ppb,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum NtpServerError {
    /// A listen address could not be bound.
    #[error("binding the NTP server to {address}: {source} (is another NTP server such as chronyd or ntpd on it?)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Its thread could not start.
    #[error("starting an NTP server thread: {0}")]
    Thread(#[source] std::io::Error),
    /// No randomness for the rate limiter's hash key.
    #[error("no randomness from the OS for the rate limiter")]
    Randomness,
}

/// How long a socket's thread waits for a datagram before it looks
/// whether the daemon is stopping.
const RECV_TIMEOUT: Duration = Duration::from_millis(250);

/// A running NTP server: one thread per listen address, until the
/// daemon's view channel closes.
#[derive(Debug)]
pub struct NtpServer {
    listen: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

/// Binds every address of `config` and starts serving.
pub fn start(config: &NtpServerConfig, inputs: &Inputs) -> Result<NtpServer, NtpServerError> {
    let resolution = task::clock_resolution();
    let precision = reply::precision_of(resolution);
    let shared = Arc::new(Shared::default());
    let mut listen = Vec::new();
    let mut sockets = Vec::new();
    for address in &config.listen {
        let socket = socket::ServerSocket::bind(*address, RECV_TIMEOUT)
            .map_err(|source| NtpServerError::Bind { address: *address, source })?;
        let bound = socket.local_addr().unwrap_or(*address);
        if !socket.stamping() {
            warn!(%bound, "the kernel gives the NTP server no receive timestamps: replies carry the wake-up");
        }
        listen.push(bound);
        sockets.push((bound, socket));
    }
    let random = SystemRandom::new();
    for (bound, socket) in sockets {
        let limit = &config.rate_limit;
        let limiter = if limit.enabled {
            let mut seed = [0u8; 24];
            random.fill(&mut seed).map_err(|_| NtpServerError::Randomness)?;
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(seed.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
                u64::from_ne_bytes(w)
            };
            let limits = Limits {
                interval: limit.interval(),
                burst: limit.burst,
                kiss_one_in: limit.kod_one_in,
                clients: limit.clients,
            };
            Some(RateLimiter::new(limits, [word(0), word(1), word(2)]))
        } else {
            None
        };
        let worker = task::Worker {
            socket,
            clock: Arc::clone(&inputs.clock),
            view: inputs.view.clone(),
            upstreams: Arc::clone(&inputs.upstreams),
            shared: Arc::clone(&shared),
            limiter,
            tracker: Tracker::new(precision),
            max_drift: inputs.max_drift,
            resolution,
        };
        std::thread::Builder::new()
            .name(format!("ntp-server-{bound}"))
            .spawn(move || worker.run())
            .map_err(NtpServerError::Thread)?;
    }
    info!(?listen, precision, "serving NTP");
    Ok(NtpServer { listen, shared })
}

impl NtpServer {
    /// The addresses bound (with the ports the kernel chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// What `tsod status` shows.
    pub fn status(&self) -> NtpServerStatus {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let serving = *self.shared.serving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (stratum, reference_id) = match serving {
            Some((id, true)) if id.stratum < UNSYNCHRONIZED_STRATUM => (Some(id.stratum), Some(id.reference_name())),
            _ => (None, None),
        };
        NtpServerStatus {
            listen: self.listen.iter().map(ToString::to_string).collect(),
            stratum,
            reference_id,
            requests: load(&c.requests),
            replies: load(&c.replies),
            unsynchronized_replies: load(&c.unsynchronized),
            dropped_malformed: load(&c.malformed),
            rate_limited: load(&c.rate_limited),
            kod_sent: load(&c.kisses),
            send_errors: load(&c.send_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::sources::ntp::packet::{LeapIndicator, NtpTimestamp};
    use crate::sources::ntp::{KissCode, ReferenceId};
    use tsod_proto::shm::Anchor;
    use tsod_proto::wire::SourceKind;
    use tsod_proto::{DriftModel, TimeInterval};

    fn published(status: ClockStatus, midpoint: u64) -> PublishedState {
        PublishedState {
            anchor: Anchor {
                reference: MonoInstant::from_nanos(5_000_000_000),
                interval: TimeInterval::around(Timestamp::from_nanos(midpoint), Duration::from_micros(3)),
                rates: DriftModel::symmetric(Ppb::from_ppm(10)).unwrap().rates(),
                status,
                valid_until: MonoInstant::from_nanos(6_000_000_000),
            },
            disruption_count: 0,
            reference_boottime: MonoInstant::from_nanos(5_000_000_000),
            writer_instance: 9,
        }
    }

    fn request_bytes(lvm: u8) -> [u8; 48] {
        let mut bytes = NtpPacket::client_request(77, 0).encode();
        bytes[0] = lvm;
        bytes
    }

    #[test]
    fn malformed_datagrams_are_dropped_before_the_limit_sees_them() {
        let limits = Limits { interval: Duration::from_secs(1), burst: 1, kiss_one_in: 2, clients: 64 };
        let mut limiter = RateLimiter::new(limits, [1, 2, 3]);
        let client: IpAddr = "192.0.2.9".parse().unwrap();
        let now = MonoInstant::from_nanos(1);
        for bad in [&request_bytes(0x26)[..], &request_bytes(0x27)[..], &request_bytes(0x03)[..], &[0x23; 47][..]] {
            assert!(matches!(judge(bad, client, now, Some(&mut limiter), -29), Verdict::Malformed(_)));
        }
        // The client's one-reply burst is still there.
        assert!(matches!(judge(&request_bytes(0x23), client, now, Some(&mut limiter), -29), Verdict::Serve(_)));
        let mut kissed = 0;
        for _ in 0..100 {
            match judge(&request_bytes(0x23), client, now, Some(&mut limiter), -29) {
                Verdict::Limited(Some(kiss)) => {
                    kissed += 1;
                    assert_eq!((kiss.stratum, kiss.reference_id.kiss_code()), (0, KissCode::RATE));
                    assert_eq!(kiss.poll, 0, "a 1 s limit is poll 0");
                    assert_eq!(kiss.encode().len(), 48, "never larger than the request");
                }
                Verdict::Limited(None) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!((25..75).contains(&kissed), "{kissed}");
        // No limiter: everything well-formed is served.
        assert!(matches!(judge(&request_bytes(0x1B), client, now, None, -29), Verdict::Serve(_)));
    }

    #[test]
    fn the_tracker_keeps_the_identity_through_holdover_and_dates_the_last_agreement() {
        let mut tracker = Tracker::new(-29);
        let gps = [Judged { kind: SourceKind::Gpsd, usable: true, falseticker: false }];
        let upstreams = [Some(Upstream::gps(true))];
        // A bound adopted from a previous daemon, before any source: unknown upstream.
        let view = tracker.update(&published(ClockStatus::FreeRunning, 1_000), &[], &[]);
        assert_eq!(view.identity.stratum, 10);
        let view = tracker.update(&published(ClockStatus::Synchronized, 2_000_000), &gps, &upstreams);
        assert_eq!((view.identity.stratum, view.reference_time), (1, Timestamp::from_nanos(2_000_000)));
        // Holdover: no source usable; stratum and reference time stay.
        let lost = [Judged { usable: false, ..gps[0] }];
        let view = tracker.update(&published(ClockStatus::FreeRunning, 3_000_000), &lost, &upstreams);
        assert_eq!(
            (view.identity.reference_id, view.reference_time),
            (ReferenceId(*b"PPS\0"), Timestamp::from_nanos(2_000_000))
        );
        // Unsynchronized: the reply says so, whatever is remembered.
        let view = tracker.update(&published(ClockStatus::Unsynchronized, 0), &lost, &upstreams);
        let req = request::parse(&request_bytes(0x23)).unwrap();
        let now = view.published.anchor.reference;
        let receipt =
            reply::Receipt { at: now, credit: Duration::ZERO, local_clock: Timestamp::from_nanos(7), suspended: false };
        let reply = reply::prepare(&req, &view, &receipt).finish(now, || Timestamp::from_nanos(8));
        assert_eq!(reply.leap, LeapIndicator::Unsynchronized);
        assert_eq!(reply.origin, NtpTimestamp::from_bits(77));
    }
}
