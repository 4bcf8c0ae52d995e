//! Free loopback UDP ports for daemons that are started a moment later.
//!
//! A port found by binding port 0 is one the kernel hands out as
//! *ephemeral*: until the daemon binds it, any socket bound to port 0 — a
//! client's QUIC endpoint, a relay's upstream socket, another test's
//! cluster — may be given the same one, and the daemon then fails with
//! `AddrInUse` (seen: one in ~100 three-daemon test clusters, with tests in
//! parallel). So ports are picked at random *below* the ephemeral range,
//! where port-0 sockets never land, and checked by binding them; parallel
//! pickers meet only if they draw the same port in the same instant.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lowest port picked.
const LOW: u16 = 10_000;
/// Draws before falling back to an ephemeral port.
const DRAWS: u32 = 200;

/// A loopback UDP port nothing is bound to now, below the ephemeral range
/// when the range leaves room (else an ephemeral one, as a last resort).
pub fn free_udp_port() -> io::Result<u16> {
    let high = ephemeral_start().unwrap_or(32_768);
    if high > LOW {
        for _ in 0..DRAWS {
            let port = LOW + u16::try_from(random() % u64::from(high - LOW)).unwrap_or(0);
            if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback TCP port nothing listens on now, drawn as [`free_udp_port`]
/// does (for a site's metrics endpoint).
pub fn free_tcp_port() -> io::Result<u16> {
    let high = ephemeral_start().unwrap_or(32_768);
    if high > LOW {
        for _ in 0..DRAWS {
            let port = LOW + u16::try_from(random() % u64::from(high - LOW)).unwrap_or(0);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first port of the kernel's ephemeral range (Linux).
fn ephemeral_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// A random number: std's per-process random hash keys over a counter.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_and_below_the_ephemeral_range() {
        let start = ephemeral_start().unwrap_or(32_768);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let port = free_udp_port().unwrap();
            if start > LOW {
                assert!((LOW..start).contains(&port), "{port} not in {LOW}..{start}");
            }
            // Nothing holds it: it can be bound at once.
            drop(UdpSocket::bind(("127.0.0.1", port)).unwrap());
            seen.insert(port);
        }
        assert!(seen.len() > 40, "not spread: {} distinct of 50", seen.len());
    }
}
