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
//! The sans-IO checks and the widening live in `response.rs`, the TLS setup
//! in `tls.rs`, the error type in `error.rs`.

mod error;
mod response;
mod tls;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint, ReadError, ReadToEndError, WriteError};
use tokio::sync::Mutex;
use tokio::time::Instant as TokioInstant;
use tsod_proto::wire::{MAX_MESSAGE_LEN, Message, Request};
use tsod_proto::{ClockStatus, DriftModel, MonoInstant, Ppb, TimeInterval, Timescale};

pub use error::RemoteError;
pub use response::{SiteStatus, SourceStatus};
pub use tls::REORDERING_PACKETS;

use crate::sys;

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
    /// is done, so a refusal may show on the first request
    /// ([`RemoteError::ConnectionLost`]) rather than in `connect`.
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
}

impl RemoteOptions {
    /// Default ρ_c: 100 ppm, what an ordinary crystal oscillator guarantees.
    pub const DEFAULT_DRIFT_BOUND: Ppb = Ppb::from_ppm(100);
    /// Default [`RemoteOptions::max_round_trip`]: 1 s.
    pub const DEFAULT_MAX_ROUND_TRIP: Duration = Duration::from_secs(1);
    /// Default [`RemoteOptions::request_timeout`]: 2 s.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A remote tsod site's bounded clock over QUIC `tsod-client/1`.
///
/// Share it between tasks (`&self` everywhere): calls run concurrently,
/// each on its own stream of one connection. Use it inside the tokio runtime
/// that created it, with IO and time enabled (quinn drives its socket on
/// that runtime; timeouts use tokio's timer).
#[derive(Debug)]
pub struct RemoteClock {
    addr: SocketAddr,
    server_name: String,
    endpoint: Endpoint,
    drift: DriftModel,
    max_round_trip: Duration,
    request_timeout: Duration,
    connection: Mutex<Option<Connection>>,
    next_request_id: AtomicU64,
}

/// A request's bytes on the wire and the reader clock around them.
pub(crate) struct Exchange {
    pub(crate) response: Vec<u8>,
    /// `c1`: before the request could leave.
    sent_at: MonoInstant,
    /// `c4`: after the whole response had arrived.
    received_at: MonoInstant,
    /// `CLOCK_BOOTTIME` at `c1` and `c4`: a suspend in between shows as
    /// BOOTTIME running ahead of the reader clock.
    boot_at_send: MonoInstant,
    boot_at_receive: MonoInstant,
}

/// The timescale of version 1, the only one this client expects.
const TIMESCALE: Timescale = Timescale::UtcSmear24h;

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
        let drift = DriftModel::symmetric(options.drift_bound)
            .map_err(|e| RemoteError::InvalidOptions(format!("drift_bound: {e}")))?;
        if options.max_round_trip.is_zero() || options.request_timeout.is_zero() {
            return Err(RemoteError::InvalidOptions("max_round_trip and request_timeout must be positive".to_owned()));
        }
        let server_name = tls::check_server_name(&options.server_name)?;
        let config = tls::quic_client_config(&options)?;
        let bind: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = Endpoint::client(bind).map_err(RemoteError::Socket)?;
        endpoint.set_default_client_config(config);
        let clock = Self {
            addr,
            server_name,
            endpoint,
            drift,
            max_round_trip: options.max_round_trip,
            request_timeout: options.request_timeout,
            connection: Mutex::new(None),
            next_request_id: AtomicU64::new(1),
        };
        let deadline = clock.deadline()?;
        tokio::time::timeout_at(deadline, clock.connection()).await.map_err(|_| clock.timeout())??;
        Ok(clock)
    }

    /// An interval that contains true time now (at the reader instant the
    /// response arrived), or why there is none.
    pub async fn now(&self) -> Result<TimeInterval, RemoteError> {
        self.now_at().await.map(|n| n.interval)
    }

    /// Like [`RemoteClock::now`], with the reader instant `c4` the interval
    /// holds at, so the caller can extrapolate it ([`RemoteNow::interval_at`]).
    pub async fn now_at(&self) -> Result<RemoteNow, RemoteError> {
        let request_id = self.request_id();
        let exchange = self.request(Message::NowRequest(Request { request_id })).await?;
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

    /// The server's status (of its published interval), as
    /// [`LocalClock::status`](crate::LocalClock::status) gives the local one.
    /// An unbounded status is a value here, not an error.
    pub async fn status(&self) -> Result<ClockStatus, RemoteError> {
        self.site_report().await.map(|r| r.status)
    }

    /// The server's site report: its status, half-width and sources.
    pub async fn site_report(&self) -> Result<SiteStatus, RemoteError> {
        let request_id = self.request_id();
        let exchange = self.request(Message::StatusRequest(Request { request_id })).await?;
        response::check_status_response(&exchange.response, request_id, TIMESCALE)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The timescale of every interval this clock returns.
    pub fn timescale(&self) -> Timescale {
        TIMESCALE
    }

    /// The client's drift model (ρ_c, no frequency correction).
    pub fn drift_model(&self) -> DriftModel {
        self.drift
    }

    /// A fresh request id; never 0, which error responses use for "unknown".
    fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed).max(1)
    }

    /// When a call starting now times out.
    fn deadline(&self) -> Result<TokioInstant, RemoteError> {
        TokioInstant::now().checked_add(self.request_timeout).ok_or_else(|| self.timeout())
    }

    fn timeout(&self) -> RemoteError {
        RemoteError::Timeout { addr: self.addr, after: self.request_timeout }
    }

    /// Sends `request` on a new stream and reads the answer, within the
    /// request timeout. A connection that timed out or died is forgotten,
    /// so the next call dials again.
    pub(crate) async fn request(&self, request: Message<'_>) -> Result<Exchange, RemoteError> {
        let bytes = request.to_vec()?;
        let deadline = self.deadline()?;
        let connection = tokio::time::timeout_at(deadline, self.connection()).await.map_err(|_| self.timeout())??;
        match tokio::time::timeout_at(deadline, exchange(&connection, &bytes, self.addr)).await {
            Ok(Ok(exchange)) => Ok(exchange),
            Ok(Err(error)) => {
                if matches!(error, RemoteError::ConnectionLost { .. }) {
                    self.forget(&connection).await;
                }
                Err(error)
            }
            Err(_) => {
                self.forget(&connection).await;
                Err(self.timeout())
            }
        }
    }

    /// The open connection, dialling if there is none or it has closed.
    async fn connection(&self) -> Result<Connection, RemoteError> {
        let mut slot = self.connection.lock().await;
        match slot.as_ref() {
            Some(connection) if connection.close_reason().is_none() => return Ok(connection.clone()),
            _ => *slot = None,
        }
        let connecting = self
            .endpoint
            .connect(self.addr, &self.server_name)
            .map_err(|source| RemoteError::Connect { addr: self.addr, source })?;
        let connection = connecting.await.map_err(|source| RemoteError::Handshake {
            addr: self.addr,
            server_name: self.server_name.clone(),
            source,
        })?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops `connection` from the cache if it is still the cached one;
    /// requests still running on it finish or fail on their own.
    async fn forget(&self, connection: &Connection) {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| c.stable_id() == connection.stable_id()) {
            *slot = None;
        }
    }
}

/// One request on a new bidirectional stream: write, finish, read the whole
/// answer (at most one message's worth), with `c1` and `c4` around it.
async fn exchange(connection: &Connection, request: &[u8], addr: SocketAddr) -> Result<Exchange, RemoteError> {
    let lost = |source: ConnectionError| RemoteError::ConnectionLost { addr, source };
    let aborted = |why: String| RemoteError::StreamAborted { addr, why };
    let (mut send, mut recv) = connection.open_bi().await.map_err(lost)?;
    // Opening a stream sends nothing, so this is still before the request
    // can leave: c1 ≤ the server's send instant.
    let sent_at = sys::reader_clock_now().map_err(RemoteError::Clock)?;
    let boot_at_send = sys::boottime_now().map_err(RemoteError::Clock)?;
    send.write_all(request).await.map_err(|e| match e {
        WriteError::ConnectionLost(source) => lost(source),
        other => aborted(other.to_string()),
    })?;
    send.finish().map_err(|e| aborted(e.to_string()))?;
    let response = recv.read_to_end(MAX_MESSAGE_LEN).await.map_err(|e| match e {
        ReadToEndError::TooLong => RemoteError::ResponseTooLong,
        ReadToEndError::Read(ReadError::ConnectionLost(source)) => lost(source),
        ReadToEndError::Read(other) => aborted(other.to_string()),
    })?;
    let boot_at_receive = sys::boottime_now().map_err(RemoteError::Clock)?;
    let received_at = sys::reader_clock_now().map_err(RemoteError::Clock)?;
    Ok(Exchange { response, sent_at, received_at, boot_at_send, boot_at_receive })
}
