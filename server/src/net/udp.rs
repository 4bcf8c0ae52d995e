//! The QUIC endpoint's UDP socket, with a receive buffer sized for a site
//! with thousands of clients.
//!
//! Linux gives a UDP socket `net.core.rmem_default` (208 KiB) of receive
//! buffer: about a hundred full-size QUIC packets, since the kernel counts
//! its own bookkeeping per packet too. A site that thousands of clients
//! dial (1 200-byte Initials, certificate flights) and keep alive fills that
//! whenever its process waits a few milliseconds for the CPU, and the
//! kernel drops what does not fit: a dropped Initial costs its client a
//! second (QUIC's first retransmission timer), a dropped keep-alive or
//! request more. Asking for more is capped by `net.core.rmem_max` unless
//! the daemon may override it (`CAP_NET_ADMIN`, e.g. as root); the buffer
//! actually granted is read back and logged, with the sysctl to raise
//! when it is short.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt};

/// The socket, the receive buffer asked for and the one granted.
#[derive(Debug)]
pub struct BoundSocket {
    /// The bound socket, blocking mode as bound (quinn sets what it needs).
    pub socket: UdpSocket,
    /// Bytes asked for.
    pub asked: usize,
    /// Bytes granted, comparable with `asked`: half what
    /// `getsockopt(SO_RCVBUF)` reports, since the kernel doubles every
    /// grant for its own bookkeeping.
    pub granted: usize,
}

impl BoundSocket {
    /// Whether the grant is below the ask (`net.core.rmem_max` capped it).
    pub fn short(&self) -> bool {
        self.granted < self.asked
    }
}

/// Binds `addr` and asks for `receive_buffer` bytes of receive buffer:
/// within `net.core.rmem_max`, then past it if the process may
/// (`SO_RCVBUFFORCE`). Only the bind can fail; a buffer the kernel will
/// not grant leaves the socket with what it has.
pub fn bind(addr: SocketAddr, receive_buffer: usize) -> std::io::Result<BoundSocket> {
    let socket = UdpSocket::bind(addr)?;
    let granted = || nix::sys::socket::getsockopt(&socket.as_fd(), sockopt::RcvBuf).unwrap_or(0) / 2;
    // Errors here only mean a smaller buffer: the grant is read back.
    let _ = setsockopt(&socket.as_fd(), sockopt::RcvBuf, &receive_buffer);
    if granted() < receive_buffer {
        let _ = setsockopt(&socket.as_fd(), sockopt::RcvBufForce, &receive_buffer);
    }
    let granted = granted();
    Ok(BoundSocket { socket, asked: receive_buffer, granted })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `net.core.rmem_max`, if readable.
    fn rmem_max() -> Option<usize> {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
    }

    #[test]
    fn asks_for_the_buffer_and_reports_the_grant() {
        let asked = 2 * 1024 * 1024;
        let bound = bind(([127, 0, 0, 1], 0).into(), asked).expect("loopback binds");
        let reported = nix::sys::socket::getsockopt(&bound.socket.as_fd(), sockopt::RcvBuf).expect("getsockopt");
        assert_eq!(bound.granted, reported / 2);
        // At least what rmem_max allows; more with CAP_NET_ADMIN (root, in CI).
        let allowed = rmem_max().map_or(0, |m| m.min(asked));
        assert!(bound.granted >= allowed, "granted {} of {asked} (allowed {allowed})", bound.granted);
        assert_eq!(bound.short(), bound.granted < asked);
    }

    #[test]
    fn a_small_ask_is_granted_and_not_short() {
        let bound = bind(([127, 0, 0, 1], 0).into(), 64 * 1024).expect("loopback binds");
        assert!(!bound.short(), "{bound:?}");
    }

    #[test]
    fn an_address_in_use_is_the_bind_error() {
        let first = bind(([127, 0, 0, 1], 0).into(), 64 * 1024).expect("loopback binds");
        let taken = first.socket.local_addr().expect("bound");
        let err = bind(taken, 64 * 1024).expect_err("in use");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}
