//! One listen socket of the NTP server: UDP, with the kernel's software
//! receive timestamp of each datagram (`SO_TIMESTAMPING`, on the host's
//! `CLOCK_REALTIME`, as the NTP client's socket, `daemon::ntp_socket`)
//! and, on a wildcard address, the address each request was sent to
//! (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), so the reply leaves from it: a
//! client that connected its socket to that address drops anything else.
//! An IPv6 socket is IPv6-only, so `0.0.0.0:123` and `[::]:123` can both
//! be listened on.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage,
    TimestampingFlag, Timestamps, recvmsg, sendmsg, setsockopt, socket, sockopt,
};
use tsod_proto::Timestamp;

/// The local end a request arrived at, to send the reply from.
#[derive(Clone, Copy)]
pub(super) enum LocalEnd {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

/// A datagram received.
pub(super) struct Datagram {
    pub(super) len: usize,
    pub(super) from: SocketAddr,
    /// The kernel's arrival timestamp, on the host's realtime.
    pub(super) arrived: Option<Timestamp>,
    /// Where it was sent to (wildcard sockets only).
    pub(super) local: Option<LocalEnd>,
}

/// One bound listen socket.
pub(super) struct ServerSocket {
    socket: UdpSocket,
    /// The kernel timestamps arrivals.
    stamping: bool,
}

impl ServerSocket {
    /// Binds `address` (IPv6: IPv6 only) and asks for arrival timestamps
    /// and, on a wildcard address, the destination of each datagram.
    /// `timeout` bounds each wait in [`ServerSocket::recv`].
    pub(super) fn bind(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let family = if address.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
        if address.is_ipv6() {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io::Error::from)?;
        }
        nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(address)).map_err(io::Error::from)?;
        if address.ip().is_unspecified() {
            let info = if address.is_ipv4() {
                setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)
            } else {
                setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
            };
            info.map_err(io::Error::from)?;
        }
        let flags = TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE | TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE;
        let stamping = setsockopt(&fd, sockopt::Timestamping, &flags).is_ok();
        let socket = UdpSocket::from(fd);
        socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        Ok(Self { socket, stamping })
    }

    /// The address bound.
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether the kernel timestamps arrivals.
    pub(super) const fn stamping(&self) -> bool {
        self.stamping
    }

    /// Waits (up to the timeout given at bind) for a datagram.
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        let mut control = nix::cmsg_space!(Timestamps, libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let message =
            recvmsg::<SockaddrStorage>(self.socket.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::empty())
                .map_err(io::Error::from)?;
        let from =
            message.address.and_then(|a| socket_addr(&a)).ok_or_else(|| io::Error::other("no source address"))?;
        let (mut arrived, mut local) = (None, None);
        if let Ok(cmsgs) = message.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::ScmTimestampsns(t) => arrived = crate::clock::kernel_timestamp(t.system),
                    ControlMessageOwned::Ipv4PacketInfo(info) => local = Some(LocalEnd::V4(info)),
                    ControlMessageOwned::Ipv6PacketInfo(info) => local = Some(LocalEnd::V6(info)),
                    _ => {}
                }
            }
        }
        Ok(Datagram { len: message.bytes, from, arrived, local })
    }

    /// Sends `bytes` to `to`, from the local address the request came to.
    pub(super) fn send(&self, bytes: &[u8], to: SocketAddr, local: Option<LocalEnd>) -> io::Result<()> {
        let iov = [IoSlice::new(bytes)];
        let to = SockaddrStorage::from(to);
        // Reply from the address the request was sent to, out of whichever
        // interface routing picks.
        let (v4, v6) = match local {
            Some(LocalEnd::V4(info)) => (
                Some(libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: info.ipi_addr,
                    ipi_addr: libc::in_addr { s_addr: 0 },
                }),
                None,
            ),
            Some(LocalEnd::V6(info)) => (None, Some(libc::in6_pktinfo { ipi6_ifindex: 0, ..info })),
            None => (None, None),
        };
        let control: Vec<ControlMessage<'_>> = v4
            .as_ref()
            .map(ControlMessage::Ipv4PacketInfo)
            .into_iter()
            .chain(v6.as_ref().map(ControlMessage::Ipv6PacketInfo))
            .collect();
        sendmsg(self.socket.as_raw_fd(), &iov, &control, MsgFlags::empty(), Some(&to)).map_err(io::Error::from)?;
        Ok(())
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn a_wildcard_socket_stamps_arrivals_and_answers_from_the_address_asked() {
        let server = ServerSocket::bind("0.0.0.0:0".parse().unwrap(), Duration::from_secs(5)).unwrap();
        assert!(server.stamping());
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(("127.0.0.2", port)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        // Linux turns receive timestamping on host-wide through deferred
        // work when the first socket asks: the first datagrams may come
        // without one (a reply then uses the daemon's own reading). Warm up.
        for warm in 1.. {
            client.send(b"warm").unwrap();
            if server.recv(&mut buf).unwrap().arrived.is_some() {
                break;
            }
            assert!(warm < 100, "no receive timestamp after {warm} datagrams");
            std::thread::sleep(Duration::from_millis(10));
        }
        let before = tsod_client::sys::realtime_now().unwrap();
        client.send(b"ping").unwrap();
        let got = server.recv(&mut buf).unwrap();
        let after = tsod_client::sys::realtime_now().unwrap();
        assert_eq!((got.len, got.from), (4, client.local_addr().unwrap()));
        let arrived = got.arrived.unwrap();
        assert!(before <= arrived && arrived <= after);
        assert!(got.local.is_some());
        // The client connected to 127.0.0.2: the reply must come from there.
        server.send(b"pong", got.from, got.local).unwrap();
        assert_eq!(client.recv(&mut buf).unwrap(), 4);
    }

    #[test]
    fn ipv4_and_ipv6_wildcards_share_a_port() {
        let v4 = ServerSocket::bind("0.0.0.0:0".parse().unwrap(), Duration::from_millis(50)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let Ok(v6) = ServerSocket::bind(SocketAddr::new("::".parse().unwrap(), port), Duration::from_millis(50)) else {
            return; // no IPv6 on this host
        };
        assert_eq!(v6.local_addr().unwrap().port(), port);
        let mut buf = [0u8; 8];
        let err = v6.recv(&mut buf).err().unwrap();
        assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
    }
}
