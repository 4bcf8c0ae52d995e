//! One NTP server's UDP socket, with the kernel's software packet
//! timestamps (`SO_TIMESTAMPING`): the reply's arrival comes with each
//! datagram, the request's departure through the socket's error queue,
//! matched to its request by the kernel's per-socket counter
//! (`SOF_TIMESTAMPING_OPT_ID`). Both are on the host's `CLOCK_REALTIME`;
//! `sources::ntp::wire` maps them onto the reader clock.
//!
//! Who can reach it: the socket is connected to the server, so the kernel
//! drops datagrams from any other address; what does arrive is judged by
//! the NTP core (cookie, header). The error queue holds only what the
//! kernel puts there for this socket's own sends.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, TimestampingFlag, Timestamps, recvmsg, setsockopt, sockopt,
};
use tsod_proto::Timestamp;

/// `SCM_TSTAMP_SND`: `ee_info` of a transmit timestamp taken as the
/// driver sends (linux/errqueue.h).
const SCM_TSTAMP_SND: u32 = 0;
/// `SO_EE_ORIGIN_TIMESTAMPING` (linux/errqueue.h).
const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;
/// At most this many error-queue messages are read per look, so a socket
/// whose queue keeps filling cannot hold the thread.
const ERRQUEUE_BATCH: usize = 16;

/// A connected UDP socket to one NTP server.
pub(super) struct NtpSocket {
    socket: UdpSocket,
    /// Whether the kernel accepted `SO_TIMESTAMPING`.
    stamping: bool,
    /// The kernel's `OPT_ID` of the next datagram sent.
    next_id: u32,
    /// The departure of the last request sent, once the kernel reported it.
    departure: Option<(u32, Timestamp)>,
}

/// A datagram received, with the kernel's arrival timestamp if it gave one.
pub(super) struct Received {
    pub(super) len: usize,
    pub(super) arrived: Option<Timestamp>,
}

impl NtpSocket {
    /// Binds an ephemeral port, connects to `server`, and asks for kernel
    /// timestamps. A kernel that refuses them leaves a working socket
    /// without them (`stamping()` says so).
    pub(super) fn connect(server: SocketAddr) -> io::Result<Self> {
        let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(server)?;
        let flags = TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_ID
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_TSONLY;
        let stamping = setsockopt(&socket, sockopt::Timestamping, &flags).is_ok();
        Ok(Self { socket, stamping, next_id: 0, departure: None })
    }

    /// The server this socket is connected to.
    pub(super) fn server(&self) -> Option<SocketAddr> {
        self.socket.peer_addr().ok()
    }

    /// Whether the kernel timestamps this socket's datagrams.
    pub(super) const fn stamping(&self) -> bool {
        self.stamping
    }

    /// Sends one request; returns the kernel's id for its departure.
    pub(super) fn send(&mut self, bytes: &[u8]) -> io::Result<u32> {
        self.socket.send(bytes)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.departure = None;
        Ok(id)
    }

    /// Waits up to `timeout` (at least 1 µs) for a datagram from the server.
    pub(super) fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Received> {
        self.socket.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        let mut control = nix::cmsg_space!(Timestamps);
        let mut iov = [IoSliceMut::new(buf)];
        let message =
            recvmsg::<SockaddrStorage>(self.socket.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::empty())
                .map_err(io::Error::from)?;
        let arrived = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampsns(t) => timestamp(t.system),
                _ => None,
            })
        });
        Ok(Received { len: message.bytes, arrived })
    }

    /// The kernel's departure timestamp of the datagram `id`, reading what
    /// the error queue holds (without waiting); `None` if it has not come.
    pub(super) fn departure(&mut self, id: u32) -> Option<Timestamp> {
        if !self.stamping {
            return None;
        }
        for _ in 0..ERRQUEUE_BATCH {
            match self.read_error_queue() {
                Ok(Some(found)) => self.departure = Some(found),
                Ok(None) => {}
                Err(_) => break, // EAGAIN: the queue is empty
            }
        }
        self.departure.filter(|(got, _)| *got == id).map(|(_, t)| t)
    }

    /// One error-queue message: `Some((id, departure))` if it is a
    /// transmit timestamp, `None` for anything else.
    fn read_error_queue(&self) -> Result<Option<(u32, Timestamp)>, Errno> {
        let mut control = nix::cmsg_space!(Timestamps, libc::sock_extended_err, libc::sockaddr_in6);
        let mut data = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut data)];
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let message = recvmsg::<SockaddrStorage>(self.socket.as_raw_fd(), &mut iov, Some(&mut control), flags)?;
        let (mut when, mut id) = (None, None);
        for c in message.cmsgs()? {
            match c {
                ControlMessageOwned::ScmTimestampsns(t) => when = timestamp(t.system),
                ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _)
                    if e.ee_origin == SO_EE_ORIGIN_TIMESTAMPING && e.ee_info == SCM_TSTAMP_SND =>
                {
                    id = Some(e.ee_data);
                }
                _ => {}
            }
        }
        Ok(id.zip(when))
    }
}

use crate::clock::kernel_timestamp as timestamp;

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback "server" that echoes each datagram.
    fn echo() -> (UdpSocket, SocketAddr) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        (server, addr)
    }

    #[test]
    fn the_kernel_timestamps_departure_and_arrival_in_order() {
        let (server, addr) = echo();
        let mut socket = NtpSocket::connect(addr).unwrap();
        assert!(socket.stamping(), "Linux offers software timestamps on every socket");
        let mut buf = [0u8; 64];
        // Linux switches receive timestamping on for the whole host through
        // deferred work when the first socket asks for it: on a host where
        // no other socket has it on, the first datagrams may arrive without
        // one (the daemon then falls back to its own readings). Warm up.
        let mut warm = 0u32;
        loop {
            let _ = socket.send(b"warm-up").unwrap();
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(buf.get(..n).unwrap(), from).unwrap();
            warm += 1;
            if socket.recv(&mut buf, Duration::from_secs(5)).unwrap().arrived.is_some() {
                break;
            }
            assert!(warm < 100, "no receive timestamp after {warm} datagrams");
            std::thread::sleep(Duration::from_millis(10));
        }
        for round in 0..3u32 {
            let before = tsod_client::sys::realtime_now().unwrap();
            let id = socket.send(b"request").unwrap();
            assert_eq!(id, warm + round);
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(buf.get(..n).unwrap(), from).unwrap();
            let got = socket.recv(&mut buf, Duration::from_secs(5)).unwrap();
            let after = tsod_client::sys::realtime_now().unwrap();
            assert_eq!(got.len, 7);
            let departed = socket.departure(id).expect("a transmit timestamp on loopback");
            let arrived = got.arrived.expect("a receive timestamp");
            assert!(
                before <= departed && departed <= arrived && arrived <= after,
                "{before:?} {departed:?} {arrived:?} {after:?}"
            );
            // Asked again, the same departure; asked for another id, none.
            assert_eq!(socket.departure(id), Some(departed));
            assert_eq!(socket.departure(id.wrapping_add(1)), None);
        }
    }

    #[test]
    fn datagrams_from_other_addresses_never_arrive() {
        let (server, addr) = echo();
        let mut socket = NtpSocket::connect(addr).unwrap();
        let local = socket.socket.local_addr().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"forged", local).unwrap();
        let mut buf = [0u8; 64];
        let err = socket.recv(&mut buf, Duration::from_millis(200)).err().expect("nothing from the stranger");
        assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
        // The server's own datagram still arrives.
        let _ = socket.send(b"x").unwrap();
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(buf.get(..n).unwrap(), from).unwrap();
        assert_eq!(socket.recv(&mut buf, Duration::from_secs(5)).unwrap().len, 1);
    }

    #[test]
    fn zero_and_negative_kernel_times_are_no_timestamp() {
        assert_eq!(timestamp(nix::sys::time::TimeSpec::new(0, 0)), None);
        assert_eq!(timestamp(nix::sys::time::TimeSpec::new(-1, 0)), None);
        assert_eq!(timestamp(nix::sys::time::TimeSpec::new(1, 5)), Some(Timestamp::from_nanos(1_000_000_005)));
    }
}
