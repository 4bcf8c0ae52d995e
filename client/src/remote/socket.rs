//! [`ClientSocket`]: one UDP socket that many clients' QUIC connections
//! share, for processes that hold hundreds of connections (a connection
//! pool, a load generator).

use std::net::SocketAddr;

use quinn::Endpoint;

use super::RemoteError;

/// A bound UDP socket with its QUIC endpoint, shared by every
/// [`RemoteClock`](super::RemoteClock) and [`Tso`](crate::tso::Tso) given it
/// in [`RemoteOptions::socket`](super::RemoteOptions::socket).
///
/// Without one, each client opens its own socket per site: one descriptor,
/// one receive loop and one set of timers each. A process with thousands of
/// connections spends its CPU on those; on one shared socket the packets of
/// all its connections are received by one loop. Each connection still has
/// its own TLS session and keeps its own options (CA, client certificate,
/// keep-alive, timeouts); only the socket is shared.
///
/// Clones are handles to the same socket, which closes when the last handle
/// and the last connection on it are gone. Two handles are equal when they
/// are the same socket. Create and use it inside a tokio runtime with IO
/// and time enabled.
#[derive(Clone, Debug)]
pub struct ClientSocket {
    endpoint: Endpoint,
    local: SocketAddr,
}

impl ClientSocket {
    /// A socket bound to `local` (port 0: one the system picks). An address
    /// that is not this host's fails with [`RemoteError::Bind`]; outside a
    /// tokio runtime, with [`RemoteError::Socket`].
    pub fn bind(local: SocketAddr) -> Result<Self, RemoteError> {
        // quinn opens the socket on the current runtime: say so rather than
        // blame the address when there is none.
        tokio::runtime::Handle::try_current().map_err(|e| RemoteError::Socket(std::io::Error::other(e)))?;
        let endpoint = Endpoint::client(local).map_err(|source| RemoteError::Bind { addr: local, source })?;
        let local = endpoint.local_addr().map_err(RemoteError::Socket)?;
        Ok(Self { endpoint, local })
    }

    /// The address and port it is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl PartialEq for ClientSocket {
    fn eq(&self, other: &Self) -> bool {
        // A bound UDP address and port is one socket on this host.
        self.local == other.local
    }
}

impl Eq for ClientSocket {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_to_a_port_the_system_picks() {
        let socket = ClientSocket::bind(([127, 0, 0, 1], 0).into()).expect("loopback binds");
        assert_eq!(socket.local_addr().ip(), std::net::IpAddr::from([127, 0, 0, 1]));
        assert_ne!(socket.local_addr().port(), 0);
        let other = ClientSocket::bind(([127, 0, 0, 1], 0).into()).expect("loopback binds");
        assert_eq!(socket.clone(), socket);
        assert_ne!(socket, other);
    }

    #[tokio::test]
    async fn an_address_not_of_this_host_is_a_bind_error() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned to a host.
        let err = ClientSocket::bind(([192, 0, 2, 1], 0).into()).expect_err("not this host's address");
        assert!(matches!(err, RemoteError::Bind { .. }), "{err:?}");
    }

    #[test]
    fn outside_a_runtime_is_a_socket_error() {
        let err = ClientSocket::bind(([127, 0, 0, 1], 0).into()).expect_err("no runtime");
        assert!(matches!(err, RemoteError::Socket(_)), "{err:?}");
    }
}
