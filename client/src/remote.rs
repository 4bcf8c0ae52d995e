//! [`RemoteClock`]: a tsod site's bounded clock, asked over QUIC
//! `tsod-client/1` (SPEC.md §4.1, §4.7–§4.9), for hosts without a local
//! daemon.
//!
//! # Widening by the round trip
//!
//! A `now-response` carries the server's interval `[e, l]`, which contains
//! true time at the instant `s` the server sent it. The client reads its
//! reader clock (`CLOCK_MONOTONIC_RAW`) at `c1`, before the request can
//! leave, and at `c4`, after the whole response has arrived. The server
//! cannot answer a request it has not received, so `c1 ≤ s ≤ c4`, and
//! `rtt_c = c4 − c1` reader-clock nanoseconds separate `c1` from `c4`. If
//! the client's clock runs within ρ_c of true time (no frequency correction,
//! f_c = 0), the true time that elapsed from `s` to `c4` lies in
//! `[0, rtt_c · (1 + ρ_c)]`, hence
//!
//! ```text
//! T(c4) ∈ [ e ,  l + ⌈rtt_c · (10⁹ + ρ_c) / 10⁹⌉ ]        (ρ_c in ppb)
//! ```
//!
//! The lower end needs no widening: time only moves forward from `s`. The
//! product is computed in 128-bit integers and rounded up; a result past the
//! end of the timestamp range is [`RemoteError::OutOfRange`], never a
//! clamped or wrapped bound. The server's own `drift-bound` is informational
//! and never replaces ρ_c. QUIC retransmissions can only lengthen `rtt_c`,
//! so they widen the result and never falsify it.
//!
//! **Invariant**: every interval [`RemoteClock::now`] returns contains true
//! time at the client's reader instant `c4` (returned by
//! [`RemoteClock::now_at`]), provided the server's interval contained true
//! time when it was sent and the client's reader clock drifted within ρ_c
//! ([`RemoteOptions::drift_bound`]) during the round trip.
//!
//! # Errors and connections
//!
//! Per SPEC.md §6 the client returns an error, never an interval, when the
//! status is not bounded, the timescale is not the expected one, the request
//! id does not match, the round trip exceeds [`RemoteOptions::max_round_trip`],
//! or the server answers with an error. One QUIC connection is shared by all
//! calls, each request on its own stream; it is dialled lazily: when it has
//! closed, or a request on it failed with a lost connection or timed out, the
//! next call dials again. A failed request is never retried internally — a
//! retry must read its own `c1`.
//!
//! # Which server it trusts
//!
//! Only a certificate from the cluster CA ([`RemoteOptions::ca_path`]) that
//! names the site as the caller gave it ([`RemoteOptions::server_name`]).
//! The caller always says which site it means: the site's name as its
//! certificate carries it, a DNS name such as `bj-a`. Site certificates also
//! carry the site's IP addresses, but the client never falls back to the
//! address it dials: an IP address is verified only when the caller passes
//! one as the server name, and then against the certificate's IP SANs.
//!
//! ```no_run
//! # async fn site_clock() -> Result<(), tsod_client::RemoteError> {
//! use std::path::Path;
//! use tsod_client::RemoteClock;
//!
//! let addr = "10.1.0.10:4460".parse().expect("an IP:PORT");
//! let clock = RemoteClock::connect(addr, "bj-a", Path::new("cluster/ca.crt")).await?;
//! let interval = clock.now().await?;
//! # let _ = interval;
//! # Ok(())
//! # }
//! ```
//!
//! # Several sites, and losing one
//!
//! [`RemoteClock::connect_sites`] (or [`RemoteClock::connect_cluster`] with
//! a cluster file) takes every site of the cluster. Each site's name is the
//! server name its certificate must carry. It dials them all at once, asks
//! each for the time three times, and uses the nearest: the shortest round
//! trip of those that answered within 20 ms plus twice the first answer's
//! time. The connection is kept alive by QUIC keep-alives, so a site that
//! dies or is cut off is noticed within [`RemoteOptions::dead_after`] (or
//! three QUIC probe timeouts, on a slow path) even between requests. A
//! request that fails for want of its site (no handshake, connection lost,
//! timeout) marks that site failed, and the next request races every other
//! site (a handshake and one request each) and uses the first to answer.
//! [`RemoteClock::now`] does that within the same call, until its request
//! timeout: each attempt reads its own `c1`, so the widening stays sound.
//! Every ten seconds the client measures the sites that may be nearer than
//! the one it uses (those measured nearer, or never measured; two seconds
//! after connecting and once a minute, all) in the background, and moves to the nearest that answered
//! if it is clearly nearer (by a fifth, and at least 0.5 ms). A site's
//! round trip is the shortest of its last four measurements (the latest
//! lowered by every request answered since), so one measured while the host
//! was busy does not rank a near site far. Every site's
//! interval contains true time, so switching sites never makes an answer
//! untrue; [`Tso`](crate::tso::Tso) gets the same failover, and its own
//! check that no timestamp is below one it returned spans every site.
//!
//! The sans-IO checks and the widening live in `response.rs`, the TLS setup
//! in `tls.rs`, the error type in `error.rs`, one site's connection in
//! `link.rs`, the choice of site in `choice.rs`.

mod choice;
mod error;
mod link;
mod response;
mod socket;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant as TokioInstant;
use tsod_proto::wire::{Message, Request};
use tsod_proto::{ClockStatus, DriftModel, MonoInstant, Ppb, TimeInterval, Timescale};

pub use error::RemoteError;
pub use response::{SiteStatus, SourceStatus};
pub use socket::ClientSocket;
pub use tls::REORDERING_PACKETS;

use crate::cluster::{ClusterFile, Site};
use choice::Choice;
pub(crate) use link::Exchange;
use link::Link;

/// How a [`RemoteClock`] connects and what it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOptions {
    /// PEM file of the cluster CA (`ca.crt` from `tsod cluster init`): the
    /// only certificate authority the client trusts.
    pub ca_path: PathBuf,
    /// The name the server's certificate must carry: the site's name as its
    /// certificate carries it, a DNS name such as `bj-a`. An IP address
    /// string (`10.1.0.10`, `::1`) is accepted too, only because the caller
    /// gave it, and is then matched against the certificate's IP SANs; the
    /// address dialled is never used in its place. Empty or unparsable, it
    /// is [`RemoteError::InvalidOptions`].
    pub server_name: String,
    /// Certificate chain and private key (PEM files) for mutual TLS, for
    /// servers that require a client certificate from the cluster CA. With
    /// TLS 1.3 the server checks it after the client's side of the handshake
    /// is done, so a refusal shows as [`RemoteError::ConnectionLost`] on
    /// the first request (with several sites, one of those `connect_sites`
    /// sends to rank them) rather than as [`RemoteError::Handshake`].
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// ρ_c: bound on this host's reader-clock rate error, 0 … 10⁶ ppb. Every
    /// interval is widened by the round trip at this rate.
    pub drift_bound: Ppb,
    /// Longest round trip `c4 − c1` accepted; a slower answer is an error
    /// rather than a wide interval.
    pub max_round_trip: Duration,
    /// Longest a call may take, dialling included, before it fails with
    /// [`RemoteError::Timeout`].
    pub request_timeout: Duration,
    /// Silence after which a site's connection is taken as dead: the client
    /// sends QUIC keep-alives every third of it, and a connection that hears
    /// nothing for this long (or for three QUIC probe timeouts, if longer:
    /// about three round trips on a slow path) closes, so a dead or cut-off
    /// site shows within it and a site list moves on. At least 10 ms.
    ///
    /// Each idle connection costs the site a keep-alive every third of it:
    /// at the default, about 12 packets a second per client. A fleet of
    /// thousands of clients on one site should set a few seconds: on a
    /// 2-core test host, 5 000 clients calling once a second cost the site a
    /// third of a core at 3 s, and at 250 ms 12 % of them failed to connect
    /// (BENCHMARKS.md, clients per site).
    pub dead_after: Duration,
    /// The local IP address the client's UDP sockets (one per site) are
    /// bound to, on a port the system picks; `None` (the default): the
    /// unspecified address of each site's family, so the routing table
    /// picks the source address. For hosts with several addresses, and for
    /// load tests that spread clients over many source addresses (the
    /// server counts its connections per /24 or /64, SPEC.md §4.12). An
    /// address of another family than a site's is
    /// [`RemoteError::InvalidOptions`]; one that is not this host's fails
    /// with [`RemoteError::Bind`].
    pub local_address: Option<IpAddr>,
    /// A UDP socket shared with other clients of this process, in place of
    /// one of its own per site (see [`ClientSocket`]); `None` (the
    /// default): its own. Every site must be of the socket's address
    /// family, and [`RemoteOptions::local_address`] must be `None` (the
    /// socket is bound already); otherwise [`RemoteError::InvalidOptions`].
    pub socket: Option<ClientSocket>,
}

impl RemoteOptions {
    /// Default ρ_c: 100 ppm, what an ordinary crystal oscillator guarantees.
    pub const DEFAULT_DRIFT_BOUND: Ppb = Ppb::from_ppm(100);
    /// Default [`RemoteOptions::max_round_trip`]: 1 s.
    pub const DEFAULT_MAX_ROUND_TRIP: Duration = Duration::from_secs(1);
    /// Default [`RemoteOptions::request_timeout`]: 2 s.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default [`RemoteOptions::dead_after`]: 250 ms, below the TSO's
    /// failover time at a 25 ms round trip (0.29 s, BENCHMARKS.md), so a
    /// client that loses its site is on another before a new leader issues.
    pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_millis(250);

    /// Options trusting the CA in `ca_path` for the site whose certificate
    /// names `server_name` (its DNS name, e.g. `bj-a`), with every other
    /// field at its default.
    pub fn new(ca_path: impl Into<PathBuf>, server_name: impl Into<String>) -> Self {
        Self {
            ca_path: ca_path.into(),
            server_name: server_name.into(),
            client_identity: None,
            drift_bound: Self::DEFAULT_DRIFT_BOUND,
            max_round_trip: Self::DEFAULT_MAX_ROUND_TRIP,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            dead_after: Self::DEFAULT_DEAD_AFTER,
            local_address: None,
            socket: None,
        }
    }
}

/// One answer of [`RemoteClock::now_at`]: the widened interval and the
/// reader-clock instant it is true at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteNow {
    /// Contains true time at [`RemoteNow::at`] (see the module doc).
    pub interval: TimeInterval,
    /// `c4`: this host's `CLOCK_MONOTONIC_RAW` when the response had arrived.
    pub at: MonoInstant,
    /// The server's status (always a bounded one).
    pub status: ClockStatus,
    /// The measured round trip `c4 − c1`.
    pub round_trip: Duration,
    /// The server's drift bound (informational only; never used in place of ρ_c).
    pub server_drift_bound: Ppb,
    drift: DriftModel,
}

impl RemoteNow {
    /// The interval carried along this host's reader clock to instant `to`
    /// at the client's ρ_c (SPEC.md §5.4 with reference `c4`), or `None` past
    /// the timestamp range. Valid as long as the clock kept within ρ_c; the
    /// interval grows by ρ_c per unit of time, so ask again rather than
    /// extrapolate for long. Never across a suspend of this host: the reader
    /// clock stands still through one, so ask again after a resume.
    pub fn interval_at(&self, to: MonoInstant) -> Option<TimeInterval> {
        self.drift.extrapolate(self.interval, self.at, to)
    }
}

/// A remote tsod site's bounded clock over QUIC `tsod-client/1`, from one
/// site or the nearest of several (see the module doc).
///
/// Share it between tasks (`&self` everywhere): calls run concurrently,
/// each on its own stream of one connection. Use it inside the tokio runtime
/// that created it, with IO and time enabled (quinn drives its socket on
/// that runtime; timeouts use tokio's timer).
#[derive(Debug)]
pub struct RemoteClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    links: Vec<Link>,
    choice: StdMutex<Choice>,
    /// Held while racing handshakes after a failure: one race at a time,
    /// the other callers wait for its winner.
    switching: Mutex<()>,
    drift: DriftModel,
    max_round_trip: Duration,
    request_timeout: Duration,
    next_request_id: AtomicU64,
}

/// The timescale of version 1, the only one this client expects.
const TIMESCALE: Timescale = Timescale::UtcSmear24h;

/// After the first site of a list answers, how long the others get to
/// answer (at least; plus twice the first one's time) before the nearest
/// of those that did is chosen.
const RANKING_GRACE: Duration = Duration::from_millis(20);

/// How a [`Inner::race`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Race {
    /// At the first site to answer (a failover: any site will do, now).
    First,
    /// When every site answered, or a grace period after the first (to rank them).
    All,
    /// A handshake only (one site: nothing to rank), ending when it does.
    Dial,
}

impl Race {
    /// Requests sent to each site to measure its round trip (the shortest
    /// counts): one when any site will do, three to rank them, so that one
    /// answer delayed by a busy host does not rank a near site far.
    fn samples(self) -> usize {
        match self {
            Self::Dial => 0,
            Self::First => 1,
            Self::All => 3,
        }
    }
}

impl RemoteClock {
    /// Connects to the site at `addr` whose certificate names `server_name`
    /// (its DNS name, e.g. `bj-a`; see [`RemoteOptions::server_name`]),
    /// trusting only the CA in the PEM file `ca`, with default
    /// [`RemoteOptions`].
    pub async fn connect(addr: SocketAddr, server_name: &str, ca: &Path) -> Result<Self, RemoteError> {
        Self::connect_with(addr, RemoteOptions::new(ca, server_name)).await
    }

    /// Connects to the site at `addr` with `options`. The first connection
    /// is dialled here, so a wrong address, CA or certificate shows at once.
    pub async fn connect_with(addr: SocketAddr, options: RemoteOptions) -> Result<Self, RemoteError> {
        let site = Site::new(options.server_name.clone(), addr);
        Self::connect_sites(vec![site], options).await
    }

    /// Connects to the sites of the cluster file `cluster` (see
    /// [`crate::cluster`]) with its CA, and `options` otherwise
    /// (`options.ca_path` and `options.server_name` are not used).
    pub async fn connect_cluster(cluster: &ClusterFile, options: RemoteOptions) -> Result<Self, RemoteError> {
        let sites = cluster.resolve().await.map_err(|e| RemoteError::InvalidOptions(e.to_string()))?;
        Self::connect_sites(sites, RemoteOptions { ca_path: cluster.ca.clone(), ..options }).await
    }

    /// Connects to the nearest of `sites`, each verified by its own name
    /// (`options.server_name` is not used), trusting `options.ca_path`.
    /// Every site is dialled at once; the nearest of those that answer
    /// (within 20 ms plus twice the first answer's time) by handshake round
    /// trip is asked first. An empty list is
    /// [`RemoteError::InvalidOptions`]; when no site answers within the
    /// request timeout, the error is the listed-first site's
    /// ([`RemoteError::NoSiteAnswered`] with each site's reason, for a list
    /// of more than one).
    pub async fn connect_sites(sites: Vec<Site>, options: RemoteOptions) -> Result<Self, RemoteError> {
        let drift = DriftModel::symmetric(options.drift_bound)
            .map_err(|e| RemoteError::InvalidOptions(format!("drift_bound: {e}")))?;
        if options.max_round_trip.is_zero() || options.request_timeout.is_zero() {
            return Err(RemoteError::InvalidOptions("max_round_trip and request_timeout must be positive".to_owned()));
        }
        if options.dead_after < Duration::from_millis(10) {
            return Err(RemoteError::InvalidOptions("dead_after must be at least 10 ms".to_owned()));
        }
        if sites.is_empty() {
            return Err(RemoteError::InvalidOptions("the site list is empty; give at least one site".to_owned()));
        }
        if let (Some(socket), Some(local)) = (&options.socket, options.local_address) {
            return Err(RemoteError::InvalidOptions(format!(
                "local_address {local} with a shared socket (bound to {}): give one or the other",
                socket.local_addr()
            )));
        }
        let config = tls::quic_client_config(&options)?;
        let local = options.local_address.or_else(|| options.socket.as_ref().map(|s| s.local_addr().ip()));
        let mut links = Vec::with_capacity(sites.len());
        for (i, site) in sites.into_iter().enumerate() {
            tls::check_server_name(&site.name)?;
            if let Some(local) = local
                && local.is_ipv4() != site.addr.is_ipv4()
            {
                let what = if options.socket.is_some() { "the shared socket's address" } else { "local_address" };
                return Err(RemoteError::InvalidOptions(format!(
                    "{what} {local} and site {} at {} are of different address families",
                    site.name, site.addr
                )));
            }
            if links.iter().take(i).any(|l: &Link| l.site.name == site.name) {
                return Err(RemoteError::InvalidOptions(format!("site {} is listed twice", site.name)));
            }
            links.push(Link::new(site, config.clone(), options.local_address, options.socket.as_ref())?);
        }
        let count = links.len();
        let clock = Self {
            inner: Arc::new(Inner {
                links,
                choice: StdMutex::new(Choice::new(count, 0)),
                switching: Mutex::new(()),
                drift,
                max_round_trip: options.max_round_trip,
                request_timeout: options.request_timeout,
                next_request_id: AtomicU64::new(1),
            }),
        };
        let deadline = clock.inner.deadline()?;
        let all: Vec<usize> = (0..count).collect();
        let race = if count == 1 { Race::Dial } else { Race::All };
        let (answered, mut failures) = Inner::race(&clock.inner, &all, deadline, race).await;
        match choice::nearest(&clock.inner.round_trips()).or_else(|| answered.first().copied()) {
            Some(nearest) if !answered.is_empty() => {
                {
                    let mut choice = clock.inner.choice();
                    choice.choose(nearest, Instant::now());
                    choice.remeasure_soon(Instant::now());
                }
                for &i in &answered {
                    clock.inner.release_unless_current(i).await;
                }
                Ok(clock)
            }
            _ if count == 1 => Err(failures.pop().map_or_else(|| clock.inner.timeout(0), |(_, e)| e)),
            _ => Err(RemoteError::NoSiteAnswered { tried: describe(&clock.inner.links, failures) }),
        }
    }

    /// An interval that contains true time now (at the reader instant the
    /// response arrived), or why there is none.
    pub async fn now(&self) -> Result<TimeInterval, RemoteError> {
        self.now_at().await.map(|n| n.interval)
    }

    /// Like [`RemoteClock::now`], with the reader instant `c4` the interval
    /// holds at, so the caller can extrapolate it ([`RemoteNow::interval_at`]).
    /// With several sites, a site that fails the request is left for the
    /// next one within the request timeout (each attempt measures its own
    /// round trip).
    pub async fn now_at(&self) -> Result<RemoteNow, RemoteError> {
        let deadline = self.inner.deadline()?;
        let mut attempts = self.inner.links.len();
        loop {
            let request_id = self.inner.request_id();
            match self.inner.request_until(Message::NowRequest(Request { request_id }), deadline).await {
                Ok(exchange) => return self.inner.widen(&exchange, request_id),
                Err(error) if attempts > 1 && is_site_failure(&error) && TokioInstant::now() < deadline => {
                    attempts -= 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The server's status (of its published interval), as
    /// [`LocalClock::status`](crate::LocalClock::status) gives the local one.
    /// An unbounded status is a value here, not an error.
    pub async fn status(&self) -> Result<ClockStatus, RemoteError> {
        self.site_report().await.map(|r| r.status)
    }

    /// The server's site report: its status, half-width and sources.
    pub async fn site_report(&self) -> Result<SiteStatus, RemoteError> {
        let request_id = self.inner.request_id();
        let exchange = self.request(Message::StatusRequest(Request { request_id })).await?;
        response::check_status_response(&exchange.response, request_id, TIMESCALE)
    }

    /// The address of the site asked now.
    pub fn addr(&self) -> SocketAddr {
        self.site().addr
    }

    /// The name the certificate of the site asked now must carry.
    pub fn server_name(&self) -> &str {
        &self.inner.current_link().site.name
    }

    /// The site asked now.
    pub fn site(&self) -> Site {
        self.inner.current_link().site.clone()
    }

    /// Every site, in the given order, with its round trip: the shortest
    /// of its last four measurements and the requests since (`None` before
    /// one answered).
    pub fn sites(&self) -> Vec<(Site, Option<Duration>)> {
        self.inner.links.iter().map(|l| (l.site.clone(), l.round_trip())).collect()
    }

    /// How many times the client moved to another site.
    pub fn site_switches(&self) -> u64 {
        self.inner.choice().switches()
    }

    /// The timescale of every interval this clock returns.
    pub fn timescale(&self) -> Timescale {
        TIMESCALE
    }

    /// The client's drift model (ρ_c, no frequency correction).
    pub fn drift_model(&self) -> DriftModel {
        self.inner.drift
    }

    /// Sends `request` to the current site on a new stream and reads the
    /// answer, within the request timeout. One attempt: a site that fails
    /// it is marked, and the next request goes elsewhere.
    pub(crate) async fn request(&self, request: Message<'_>) -> Result<Exchange, RemoteError> {
        let deadline = self.inner.deadline()?;
        self.inner.request_until(request, deadline).await
    }
}

impl Inner {
    fn choice(&self) -> MutexGuard<'_, Choice> {
        // A panic while holding it cannot leave the choice inconsistent
        // (every update is one assignment), so a poisoned lock is used as is.
        self.choice.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current_link(&self) -> &Link {
        // `connect_sites` refuses an empty list, and the choice is always
        // one of the sites.
        let current = self.choice().current().min(self.links.len().saturating_sub(1));
        &self.links[current]
    }

    fn round_trips(&self) -> Vec<Option<Duration>> {
        self.links.iter().map(Link::round_trip).collect()
    }

    /// A fresh request id; never 0, which error responses use for "unknown".
    fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed).max(1)
    }

    /// When a call starting now times out.
    fn deadline(&self) -> Result<TokioInstant, RemoteError> {
        TokioInstant::now().checked_add(self.request_timeout).ok_or_else(|| self.timeout(0))
    }

    fn timeout(&self, site: usize) -> RemoteError {
        let addr = self.links.get(site).map_or_else(|| self.current_link().addr(), Link::addr);
        RemoteError::Timeout { addr, after: self.request_timeout }
    }

    /// One attempt at `request` on the current site (chosen anew if it
    /// failed), by `deadline`.
    async fn request_until(
        self: &Arc<Self>,
        request: Message<'_>,
        deadline: TokioInstant,
    ) -> Result<Exchange, RemoteError> {
        let bytes = request.to_vec()?;
        let site = self.usable_site(deadline).await?;
        let link = self.links.get(site).ok_or_else(|| self.timeout(site))?;
        let result = match tokio::time::timeout_at(deadline, link.connection()).await {
            Err(_) => Err(self.timeout(site)),
            Ok(Err(error)) => Err(error),
            Ok(Ok(connection)) => {
                match tokio::time::timeout_at(deadline, link::exchange(&connection, &bytes, link.addr())).await {
                    Ok(Ok(exchange)) => Ok(exchange),
                    Ok(Err(error)) => {
                        if matches!(error, RemoteError::ConnectionLost { .. }) {
                            link.forget(&connection).await;
                        }
                        Err(error)
                    }
                    Err(_) => {
                        link.forget(&connection).await;
                        Err(self.timeout(site))
                    }
                }
            }
        };
        match result {
            Err(error) if is_site_failure(&error) => {
                self.choice().fail(site, Instant::now());
                Err(error)
            }
            Ok(exchange) => {
                link.observe(&exchange);
                self.maybe_probe();
                Ok(exchange)
            }
            other => other,
        }
    }

    /// The site to ask: the current one unless it failed; then the first
    /// other site to answer a handshake (one race at a time; callers that
    /// arrive meanwhile wait for its winner).
    async fn usable_site(self: &Arc<Self>, deadline: TokioInstant) -> Result<usize, RemoteError> {
        {
            let choice = self.choice();
            if choice.current_usable() || self.links.len() == 1 {
                return Ok(choice.current());
            }
        }
        let _one_race = tokio::time::timeout_at(deadline, self.switching.lock())
            .await
            .map_err(|_| self.timeout(self.choice().current()))?;
        let candidates = {
            let choice = self.choice();
            if choice.current_usable() {
                return Ok(choice.current());
            }
            choice.candidates(&self.round_trips(), Instant::now())
        };
        let (answered, failures) = Self::race(self, &candidates, deadline, Race::First).await;
        match answered.first() {
            Some(&winner) => {
                self.move_to(winner, "its site failed: moved to the first other site to answer").await;
                Ok(winner)
            }
            None => {
                let now = Instant::now();
                for &(i, _) in &failures {
                    self.choice().fail(i, now);
                }
                Err(RemoteError::NoSiteAnswered { tried: describe(&self.links, failures) })
            }
        }
    }

    /// Dials `sites` at once and asks each for the time ([`Race::samples`]
    /// times, to measure its round trip), until `deadline`. Returns the
    /// sites that answered, in the order they did, and each failure. With
    /// [`Race::First`] or [`Race::Dial`] it stops at the first answer; with [`Race::All`] it waits for the others
    /// for [`RANKING_GRACE`] plus twice the first answer's time. Sites still
    /// dialling then finish in the background, and their connections are
    /// let go unless one became the current site.
    async fn race(
        self: &Arc<Self>,
        sites: &[usize],
        deadline: TokioInstant,
        race: Race,
    ) -> (Vec<usize>, Vec<(usize, RemoteError)>) {
        let started = TokioInstant::now();
        let mut dials: JoinSet<(usize, Result<(), RemoteError>)> = JoinSet::new();
        for &i in sites {
            let inner = Arc::clone(self);
            dials.spawn(async move {
                let measure = async {
                    let link = inner.links.get(i).ok_or_else(|| inner.timeout(i))?;
                    let connection = link.connection().await?;
                    let mut shortest = u64::MAX;
                    if race.samples() == 0 {
                        return Ok(());
                    }
                    for _ in 0..race.samples() {
                        let request_id = inner.request_id();
                        let bytes = Message::NowRequest(Request { request_id }).to_vec()?;
                        let exchange = link::exchange(&connection, &bytes, link.addr()).await?;
                        shortest = shortest.min(link::round_trip(&exchange).unwrap_or(u64::MAX));
                    }
                    link.measured(shortest);
                    Ok(())
                };
                let result = tokio::time::timeout_at(deadline, measure).await.unwrap_or_else(|_| Err(inner.timeout(i)));
                (i, result)
            });
        }
        let mut answered = Vec::new();
        let mut failures = Vec::new();
        let mut until = deadline;
        loop {
            match tokio::time::timeout_at(until, dials.join_next()).await {
                Ok(Some(Ok((i, Ok(()))))) => {
                    if answered.is_empty() {
                        until = until.min(TokioInstant::now() + RANKING_GRACE + 2 * started.elapsed());
                    }
                    answered.push(i);
                    if race != Race::All {
                        break;
                    }
                }
                Ok(Some(Ok((i, Err(error))))) => failures.push((i, error)),
                // A dial task cannot panic; one cancelled by a runtime
                // shutting down has nothing to report.
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    if answered.is_empty() {
                        let reported: Vec<usize> = failures.iter().map(|&(i, _)| i).collect();
                        for &i in sites.iter().filter(|i| !reported.contains(i)) {
                            failures.push((i, self.timeout(i)));
                        }
                    }
                    break;
                }
            }
        }
        if !dials.is_empty() {
            // Not cancelled: an abandoned handshake is a refusal in the
            // server's log. Each ends by `deadline`.
            let inner = Arc::clone(self);
            tokio::spawn(async move {
                while let Some(joined) = dials.join_next().await {
                    if let Ok((i, Ok(()))) = joined {
                        inner.release_unless_current(i).await;
                    }
                }
            });
        }
        (answered, failures)
    }

    /// Lets go of site `site`'s connection unless it is the current site.
    async fn release_unless_current(&self, site: usize) {
        if self.choice().current() != site
            && let Some(link) = self.links.get(site)
        {
            link.release().await;
        }
    }

    /// Moves to `site` (if not there already) and lets go of the previous
    /// site's connection.
    async fn move_to(&self, site: usize, why: &str) {
        let previous = {
            let mut choice = self.choice();
            let previous = choice.current();
            choice.choose(site, Instant::now());
            previous
        };
        if previous != site {
            tracing::info!(
                from = %self.links.get(previous).map_or("?", |l| l.site.name.as_str()),
                to = %self.links.get(site).map_or("?", |l| l.site.name.as_str()),
                "tsod client: {why}"
            );
            self.release_unless_current(previous).await;
        }
    }

    /// While away from the nearest site: every so often, measure the sites
    /// that may be nearer (or were never measured) in the background, and
    /// move to the nearest that answered if it is clearly nearer.
    fn maybe_probe(self: &Arc<Self>) {
        if self.links.len() < 2 {
            return;
        }
        let worth = self.choice().probe(&self.round_trips(), Instant::now());
        if worth.is_empty() {
            return;
        }
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let Ok(deadline) = inner.deadline() else { return };
            let (answered, _) = Self::race(&inner, &worth, deadline, Race::All).await;
            let round_trips = inner.round_trips();
            let best = answered.iter().copied().min_by_key(|&i| round_trips.get(i).copied().flatten());
            let nearer = best.filter(|&i| inner.choice().clearly_nearer(&round_trips, i));
            match nearer {
                Some(site) => inner.move_to(site, "a nearer site answers: moved to it").await,
                None => {
                    for i in answered {
                        inner.release_unless_current(i).await;
                    }
                }
            }
        });
    }

    /// The interval of a `now-response`, widened by its round trip.
    fn widen(&self, exchange: &Exchange, request_id: u64) -> Result<RemoteNow, RemoteError> {
        let response = response::check_now_response(&exchange.response, request_id, TIMESCALE)?;
        let round_trip_nanos = exchange
            .received_at
            .as_nanos()
            .checked_sub(exchange.sent_at.as_nanos())
            .ok_or_else(|| RemoteError::Clock(std::io::Error::other("CLOCK_MONOTONIC_RAW went backwards")))?;
        let round_trip = Duration::from_nanos(round_trip_nanos);
        // A suspend between c1 and c4 stops the reader clock, so rtt would
        // understate the true round trip (SPEC.md §5.6's 1 ms + |Δ|/8 test).
        if crate::slept_between(
            (exchange.sent_at, exchange.boot_at_send),
            (exchange.received_at, exchange.boot_at_receive),
        ) {
            return Err(RemoteError::Suspended);
        }
        if round_trip > self.max_round_trip {
            return Err(RemoteError::RoundTripTooLong { round_trip, limit: self.max_round_trip });
        }
        let interval = response::widen_for_round_trip(response.interval, round_trip_nanos, self.drift.bound())
            .ok_or(RemoteError::OutOfRange)?;
        Ok(RemoteNow {
            interval,
            at: exchange.received_at,
            status: response.status,
            round_trip,
            server_drift_bound: response.drift_bound,
            drift: self.drift,
        })
    }
}

/// Whether `error` says the site could not be reached or did not answer
/// (as opposed to an answer: a refusal, a status, a bad response).
pub(crate) fn is_site_failure(error: &RemoteError) -> bool {
    matches!(
        error,
        RemoteError::Connect { .. }
            | RemoteError::Handshake { .. }
            | RemoteError::ConnectionLost { .. }
            | RemoteError::Timeout { .. }
            | RemoteError::NoSiteAnswered { .. }
    )
}

/// `name (addr): reason; …` for [`RemoteError::NoSiteAnswered`].
fn describe(links: &[Link], failures: Vec<(usize, RemoteError)>) -> String {
    let each: Vec<String> = failures
        .into_iter()
        .map(|(i, error)| match links.get(i) {
            Some(link) => format!("{} ({}): {error}", link.site.name, link.addr()),
            None => error.to_string(),
        })
        .collect();
    each.join("; ")
}
