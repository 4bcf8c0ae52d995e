//! One site's QUIC connection for a [`RemoteClock`](super::RemoteClock):
//! dialled lazily, shared by every request (each on its own stream), and
//! forgotten when it dies so the next use dials again; and the exchange of
//! one request with the reader clock read around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint, ReadError, ReadToEndError, WriteError};
use tokio::sync::Mutex;
use tsod_proto::MonoInstant;
use tsod_proto::wire::MAX_MESSAGE_LEN;

use super::{ClientSocket, RemoteError};
use crate::cluster::Site;
use crate::sys;

/// A request's bytes on the wire and the reader clock around them.
pub(crate) struct Exchange {
    pub(crate) response: Vec<u8>,
    /// `c1`: before the request could leave.
    pub(crate) sent_at: MonoInstant,
    /// `c4`: after the whole response had arrived.
    pub(crate) received_at: MonoInstant,
    /// `CLOCK_BOOTTIME` at `c1` and `c4`: a suspend in between shows as
    /// BOOTTIME running ahead of the reader clock.
    pub(crate) boot_at_send: MonoInstant,
    pub(crate) boot_at_receive: MonoInstant,
}

/// Round trip not measured yet.
const UNKNOWN: u64 = u64::MAX;

/// A site's round trip is the shortest of this many measurements, the
/// latest (lowered by the requests answered since) and the ones before it.
/// One measurement on a busy host, where every round trip carries the
/// scheduler's delay, then ranks a near site far only if every one kept
/// did; a path that really grew longer is ranked by it once this many
/// measurements have seen it.
pub(crate) const KEPT_MEASUREMENTS: usize = 4;

/// One site: its endpoint (its own, or a shared [`ClientSocket`]'s), the
/// connection options, its cached connection, the shortest round trip a
/// request to it took.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) site: Site,
    endpoint: Endpoint,
    config: quinn::ClientConfig,
    connection: Mutex<Option<Connection>>,
    /// Its round trip.
    rtt: RoundTrip,
}

impl Link {
    /// A link to `site` on `socket`, or else on its own UDP socket, bound
    /// to `local` (any port) or else to the unspecified address of the
    /// site's family; dials nothing yet.
    pub(crate) fn new(
        site: Site,
        config: quinn::ClientConfig,
        local: Option<IpAddr>,
        socket: Option<&ClientSocket>,
    ) -> Result<Self, RemoteError> {
        let endpoint = match (socket, local) {
            (Some(socket), _) => socket.endpoint().clone(),
            (None, Some(ip)) => {
                let bind = SocketAddr::new(ip, 0);
                Endpoint::client(bind).map_err(|source| RemoteError::Bind { addr: bind, source })?
            }
            (None, None) => {
                let bind: SocketAddr = match site.addr {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                Endpoint::client(bind).map_err(RemoteError::Socket)?
            }
        };
        Ok(Self { site, endpoint, config, connection: Mutex::new(None), rtt: RoundTrip::default() })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.site.addr
    }

    /// The shortest round trip of a request to it over the last
    /// [`KEPT_MEASUREMENTS`] measurements, if one was answered.
    pub(crate) fn round_trip(&self) -> Option<Duration> {
        self.rtt.get()
    }

    /// A request to it took `exchange`'s round trip.
    pub(crate) fn observe(&self, exchange: &Exchange) {
        if let Some(nanos) = round_trip(exchange) {
            self.rtt.observe(nanos);
        }
    }

    /// A measurement found `shortest` (ns) the shortest round trip.
    pub(crate) fn measured(&self, shortest: u64) {
        self.rtt.measured(shortest);
    }

    /// The open connection, dialling if there is none or it has closed.
    pub(crate) async fn connection(&self) -> Result<Connection, RemoteError> {
        let mut slot = self.connection.lock().await;
        match slot.as_ref() {
            Some(connection) if connection.close_reason().is_none() => return Ok(connection.clone()),
            _ => *slot = None,
        }
        let addr = self.site.addr;
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, &self.site.name)
            .map_err(|source| RemoteError::Connect { addr, source })?;
        let connection = connecting.await.map_err(|source| RemoteError::Handshake {
            addr,
            server_name: self.site.name.clone(),
            source,
        })?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops `connection` from the cache if it is still the cached one;
    /// requests still running on it finish or fail on their own.
    pub(crate) async fn forget(&self, connection: &Connection) {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| c.stable_id() == connection.stable_id()) {
            *slot = None;
        }
    }

    /// Drops the cached connection, if any: quinn closes it once the
    /// requests still running on it have let go of it.
    pub(crate) async fn release(&self) {
        self.connection.lock().await.take();
    }
}

/// A site's round trip, ns: the shortest `c4 − c1` of each of the last
/// [`KEPT_MEASUREMENTS`] measurements (a few requests in a row each), the
/// latest lowered by any request answered since (the path's base round
/// trip: queueing and the server's work only add to it).
#[derive(Debug)]
pub(crate) struct RoundTrip {
    latest: AtomicU64,
    /// The measurements before the latest, newest first.
    earlier: [AtomicU64; KEPT_MEASUREMENTS - 1],
    /// Serialises measurements' shifts of `earlier`. Readers do not wait:
    /// mid-shift they see a measurement twice or miss one, and the
    /// shortest of real measurements is still a real round trip.
    shifting: std::sync::Mutex<()>,
}

impl Default for RoundTrip {
    fn default() -> Self {
        Self {
            latest: AtomicU64::new(UNKNOWN),
            earlier: std::array::from_fn(|_| AtomicU64::new(UNKNOWN)),
            shifting: std::sync::Mutex::new(()),
        }
    }
}

impl RoundTrip {
    /// The shortest kept, if any was measured.
    pub(crate) fn get(&self) -> Option<Duration> {
        let nanos =
            self.earlier.iter().fold(self.latest.load(Ordering::Relaxed), |m, e| m.min(e.load(Ordering::Relaxed)));
        (nanos != UNKNOWN).then(|| Duration::from_nanos(nanos))
    }

    /// A request took `nanos`: it lowers the latest measurement.
    pub(crate) fn observe(&self, nanos: u64) {
        self.latest.fetch_min(nanos.min(UNKNOWN - 1), Ordering::Relaxed);
    }

    /// A measurement's shortest was `nanos`: it becomes the latest, and
    /// the oldest kept is let go.
    pub(crate) fn measured(&self, nanos: u64) {
        let _one_shift = self.shifting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for i in (1..self.earlier.len()).rev() {
            self.earlier[i].store(self.earlier[i - 1].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if let Some(newest) = self.earlier.first() {
            newest.store(self.latest.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.latest.store(nanos.min(UNKNOWN - 1), Ordering::Relaxed);
    }
}

/// `c4 − c1` of `exchange`, ns.
pub(crate) fn round_trip(exchange: &Exchange) -> Option<u64> {
    exchange.received_at.as_nanos().checked_sub(exchange.sent_at.as_nanos()).map(|n| n.min(UNKNOWN - 1))
}

/// One request on a new bidirectional stream: write, finish, read the whole
/// answer (at most one message's worth), with `c1` and `c4` around it.
pub(crate) async fn exchange(
    connection: &Connection,
    request: &[u8],
    addr: SocketAddr,
) -> Result<Exchange, RemoteError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sites_round_trip_is_the_shortest_of_its_last_few_measurements() {
        let rtt = RoundTrip::default();
        assert_eq!(rtt.get(), None);
        rtt.measured(300_000);
        rtt.observe(250_000);
        rtt.observe(900_000);
        assert_eq!(rtt.get(), Some(Duration::from_micros(250)), "requests lower the latest");
        // A busy host's measurements do not rank the site far...
        for _ in 1..KEPT_MEASUREMENTS {
            rtt.measured(9_000_000);
            assert_eq!(rtt.get(), Some(Duration::from_micros(250)));
        }
        // ...until every kept one says so: then the path did grow longer.
        rtt.measured(8_000_000);
        assert_eq!(rtt.get(), Some(Duration::from_millis(8)));
        rtt.measured(20_000_000);
        assert_eq!(rtt.get(), Some(Duration::from_millis(8)));
        rtt.measured(1_000);
        assert_eq!(rtt.get(), Some(Duration::from_micros(1)), "a shorter one counts at once");
    }
}
