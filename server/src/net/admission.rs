//! Who may hold a connection slot (sans-IO): decided before the handshake
//! from the remote address alone, then again once the handshake says what
//! the connection is.
//!
//! * Configured peers' addresses have their own slots
//!   ([`Limits::per_peer_address`]): no number of other connections can
//!   keep a site's peers out, which would partition the cluster.
//! * Everyone else shares [`Limits::handshakes`] handshake slots (a
//!   handshake also has a timeout, in the endpoint) and, once it turns out
//!   to be a client, [`Limits::clients`] client slots.
//! * Handshakes and clients together are limited per network prefix, a
//!   /24 for IPv4 and a /64 for IPv6 (what one host or one customer of a
//!   provider usually holds): [`Limits::per_prefix`].
//!
//! The three shared limits are `[clients]` `max-handshakes`,
//! `max-connections` and `max-connections-per-prefix` (defaults 256,
//! 1 024 and 64; `config/clients.rs`).
//!
//! Every [`Slot`] is released when dropped; the counts are in one mutex,
//! taken for a few instructions per connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Handshakes in progress at once from addresses that are not a
    /// configured peer's.
    pub handshakes: usize,
    /// Client connections open at once.
    pub clients: usize,
    /// Handshakes and client connections at once from one /24 or /64.
    pub per_prefix: usize,
    /// Connections (handshaking or open) at once from one configured
    /// peer's address.
    pub per_peer_address: usize,
}

impl Limits {
    /// Connections one configured peer's address may hold at once (not
    /// configurable: a peer needs two, the rest is room for redials).
    pub const PER_PEER_ADDRESS: usize = 8;
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// All handshake slots are taken.
    #[error("too many handshakes in progress")]
    Handshakes,
    /// All client slots are taken.
    #[error("too many client connections")]
    Clients,
    /// The remote's /24 or /64 holds its share.
    #[error("too many connections from this network prefix")]
    Prefix,
    /// A configured peer's address holds its share.
    #[error("too many connections from this peer's address")]
    PeerAddress,
}

#[derive(Debug, Default)]
struct Counts {
    handshakes: usize,
    clients: usize,
    per_prefix: HashMap<IpAddr, usize>,
    per_peer: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Shared {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// The endpoint's slots.
#[derive(Debug)]
pub struct Admission {
    peers: Vec<IpAddr>,
    shared: Arc<Shared>,
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// A configured peer's address: its own count only.
    Peer,
    /// Someone else, handshaking.
    Handshake,
    /// Someone else, an open client connection.
    Client,
    /// Someone else, open and not a client (a peer that dialled from
    /// another address than its configured one): the prefix share only.
    Other,
    /// Nothing any more (a client from a peer's address that was refused).
    Gone,
}

/// One connection's slot, released on drop.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
    held: Held,
}

/// The network prefix `ip` is counted under: its /24 (IPv4) or /64 (IPv6),
/// IPv4-mapped IPv6 addresses as IPv4.
pub fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => prefix(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl Admission {
    /// Slots under `limits`, with `peers` (the configured peers' IP
    /// addresses) in their own.
    pub fn new(limits: Limits, peers: impl IntoIterator<Item = IpAddr>) -> Self {
        Self { peers: peers.into_iter().collect(), shared: Arc::new(Shared { limits, counts: Mutex::default() }) }
    }

    /// Handshakes and client connections held now (the load that decides
    /// when unvalidated addresses get a QUIC Retry first).
    pub fn load(&self) -> usize {
        self.shared.counts.lock().map_or(usize::MAX, |c| c.handshakes.saturating_add(c.clients))
    }

    /// A slot for a handshake from `ip`, or why not.
    pub fn handshake(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let limits = self.shared.limits;
        let mut counts = self.shared.counts.lock().map_err(|_| Refusal::Handshakes)?;
        if self.peers.contains(&ip) {
            let n = counts.per_peer.entry(ip).or_insert(0);
            if *n >= limits.per_peer_address {
                return Err(Refusal::PeerAddress);
            }
            *n = n.saturating_add(1);
            return Ok(Slot { shared: Arc::clone(&self.shared), ip, held: Held::Peer });
        }
        if counts.handshakes >= limits.handshakes {
            return Err(Refusal::Handshakes);
        }
        let n = counts.per_prefix.entry(prefix(ip)).or_insert(0);
        if *n >= limits.per_prefix {
            return Err(Refusal::Prefix);
        }
        *n = n.saturating_add(1);
        counts.handshakes = counts.handshakes.saturating_add(1);
        Ok(Slot { shared: Arc::clone(&self.shared), ip, held: Held::Handshake })
    }
}

impl Slot {
    /// The handshake is done and the connection is a client's: it moves to
    /// a client slot, or is refused when they are all taken (the slot then
    /// keeps only its prefix share until dropped). A client that dialled
    /// from a configured peer's address (an application on that site's
    /// host) gives the peer's slot back and is counted as any client, in
    /// its prefix too: clients never hold the slots a peer needs.
    pub fn into_client(mut self) -> Result<Self, (Refusal, Self)> {
        if self.held == Held::Peer {
            let limits = self.shared.limits;
            let refusal = match self.shared.counts.lock() {
                Ok(mut counts) => {
                    if let Some(n) = counts.per_peer.get_mut(&self.ip) {
                        *n = n.saturating_sub(1);
                    }
                    let key = prefix(self.ip);
                    let in_prefix = counts.per_prefix.get(&key).copied().unwrap_or(0);
                    if in_prefix >= limits.per_prefix {
                        Some(Refusal::Prefix)
                    } else if counts.clients >= limits.clients {
                        Some(Refusal::Clients)
                    } else {
                        counts.per_prefix.insert(key, in_prefix.saturating_add(1));
                        counts.clients = counts.clients.saturating_add(1);
                        None
                    }
                }
                Err(_) => Some(Refusal::Clients),
            };
            return match refusal {
                None => {
                    self.held = Held::Client;
                    Ok(self)
                }
                Some(why) => {
                    self.held = Held::Gone;
                    Err((why, self))
                }
            };
        }
        if self.held != Held::Handshake {
            return Ok(self);
        }
        let limit = self.shared.limits.clients;
        let admitted = match self.shared.counts.lock() {
            Ok(mut counts) => {
                counts.handshakes = counts.handshakes.saturating_sub(1);
                let room = counts.clients < limit;
                if room {
                    counts.clients = counts.clients.saturating_add(1);
                }
                room
            }
            Err(_) => false,
        };
        if admitted {
            self.held = Held::Client;
            Ok(self)
        } else {
            self.held = Held::Other;
            Err((Refusal::Clients, self))
        }
    }

    /// The handshake is done and the connection is not a client's (a
    /// peer's): it gives up its handshake slot and keeps its prefix share.
    pub fn into_other(mut self) -> Self {
        if self.held == Held::Handshake {
            if let Ok(mut counts) = self.shared.counts.lock() {
                counts.handshakes = counts.handshakes.saturating_sub(1);
            }
            self.held = Held::Other;
        }
        self
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut counts) = self.shared.counts.lock() else { return };
        match self.held {
            Held::Peer => {
                if let Some(n) = counts.per_peer.get_mut(&self.ip) {
                    *n = n.saturating_sub(1);
                }
                return;
            }
            Held::Handshake => counts.handshakes = counts.handshakes.saturating_sub(1),
            Held::Client => counts.clients = counts.clients.saturating_sub(1),
            Held::Other => {}
            Held::Gone => return,
        }
        let key = prefix(self.ip);
        if let Some(n) = counts.per_prefix.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_prefix.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    const LIMITS: Limits = Limits { handshakes: 4, clients: 3, per_prefix: 2, per_peer_address: 2 };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_are_a_slash_24_and_a_slash_64() {
        assert_eq!(prefix(ip("10.1.2.3")), ip("10.1.2.0"));
        assert_eq!(prefix(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(prefix(ip("::ffff:10.1.2.3")), ip("10.1.2.0"));
    }

    #[test]
    fn a_flood_from_other_addresses_never_takes_the_peers_slots() {
        let a = Admission::new(LIMITS, [ip("127.0.0.1")]);
        // Two per prefix; the handshake pool (4) fills from two prefixes.
        let held: Vec<Slot> =
            ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"].into_iter().map(|s| a.handshake(ip(s)).unwrap()).collect();
        assert_eq!(a.handshake(ip("10.0.0.3")).err(), Some(Refusal::Handshakes));
        assert_eq!(a.load(), 4);
        // The peer's address still gets its own two.
        let p1 = a.handshake(ip("127.0.0.1")).unwrap();
        let _p2 = a.handshake(ip("127.0.0.1")).unwrap();
        assert_eq!(a.handshake(ip("127.0.0.1")).err(), Some(Refusal::PeerAddress));
        drop(p1);
        assert!(a.handshake(ip("127.0.0.1")).is_ok());
        drop(held);
        assert_eq!(a.load(), 0);
    }

    #[test]
    fn clients_on_a_peers_host_give_the_peers_slots_back() {
        let a = Admission::new(LIMITS, [ip("10.9.0.1")]);
        // Applications on the peer's host, once they are known to be
        // clients, count as clients of its prefix (2), not as the peer (2).
        let c1 = a.handshake(ip("10.9.0.1")).unwrap().into_client().unwrap();
        let c2 = a.handshake(ip("10.9.0.1")).unwrap().into_client().unwrap();
        assert_eq!(a.load(), 2);
        let (why, refused) = a.handshake(ip("10.9.0.1")).unwrap().into_client().err().unwrap();
        assert_eq!(why, Refusal::Prefix);
        drop(refused);
        // The peer itself still gets both of its slots.
        let p1 = a.handshake(ip("10.9.0.1")).unwrap();
        let p2 = a.handshake(ip("10.9.0.1")).unwrap();
        assert_eq!(a.handshake(ip("10.9.0.1")).err(), Some(Refusal::PeerAddress));
        drop((c1, c2, p1, p2));
        assert_eq!(a.load(), 0);
        assert!(a.handshake(ip("10.9.0.7")).is_ok(), "the prefix share was given back");
    }

    #[test]
    fn one_prefix_holds_only_its_share_and_clients_have_their_own_cap() {
        let a = Admission::new(LIMITS, []);
        let x = a.handshake(ip("192.0.2.1")).unwrap();
        let _y = a.handshake(ip("192.0.2.200")).unwrap();
        assert_eq!(a.handshake(ip("192.0.2.7")).err(), Some(Refusal::Prefix));
        // A client connection keeps its prefix share, not a handshake slot.
        let x = x.into_client().unwrap();
        assert_eq!(a.handshake(ip("192.0.2.7")).err(), Some(Refusal::Prefix));
        drop(x);
        let _z = a.handshake(ip("192.0.2.7")).unwrap();
        // Three client slots in all.
        let clients: Vec<Slot> = ["198.51.100.1", "203.0.113.1"]
            .into_iter()
            .map(|s| a.handshake(ip(s)).unwrap().into_client().unwrap())
            .collect();
        let third = a.handshake(ip("198.18.0.1")).unwrap().into_client().unwrap();
        let (why, refused) = a.handshake(ip("198.18.1.1")).unwrap().into_client().err().unwrap();
        assert_eq!(why, Refusal::Clients);
        drop(refused);
        drop((clients, third));
        // A peer's connection from another address gives its handshake slot back.
        let other = a.handshake(ip("198.18.2.1")).unwrap().into_other();
        assert_eq!(a.load(), 2, "the two held above: _y's handshake and _z's");
        drop(other);
    }
}
