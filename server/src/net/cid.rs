//! The connection IDs the daemon's QUIC endpoint hands out.
//!
//! quinn's default generator makes 8-byte IDs of which only 3 bytes are
//! random (the rest is a keyed check), so one endpoint has 2^24 possible
//! IDs. It avoids duplicates for the IDs of established connections, but
//! not for the ID a QUIC Retry gives a new client: when that one equals an
//! ID some connection already holds (each connection holds several), the
//! client's next Initial is routed to that connection and dropped there,
//! and the client times out. With thousands of connections held and every
//! new client sent a Retry (`endpoint::RETRY_FROM`), that cost about one
//! client in 1 500 its connection (BENCHMARKS.md, "Clients per site";
//! quinn-proto 0.11.19, its issue #2883 for the small space).
//!
//! [`Cids`] makes 12-byte IDs: 8 random bytes and a 4-byte keyed check, so
//! a collision among even a million IDs held is about one in 10^7 million,
//! and packets whose ID this endpoint never made are still told apart
//! cheaply (dropped, not answered with a stateless reset).

use std::hash::BuildHasher;
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in an ID.
const NONCE: usize = 8;
/// Check bytes after them.
const CHECK: usize = 4;

/// Generates connection IDs of 8 random bytes and a 4-byte check keyed
/// per endpoint (SipHash with a random key).
pub struct Cids {
    key: std::collections::hash_map::RandomState,
    random: SystemRandom,
    /// IDs made so far (the fallback nonce's input).
    made: u64,
}

impl Cids {
    /// A generator with a fresh random key.
    pub fn new() -> Self {
        Self { key: std::collections::hash_map::RandomState::new(), random: SystemRandom::new(), made: 0 }
    }

    fn check(&self, nonce: &[u8]) -> [u8; CHECK] {
        let hash = self.key.hash_one(nonce).to_le_bytes();
        let mut check = [0; CHECK];
        check.copy_from_slice(&hash[..CHECK]);
        check
    }
}

impl Default for Cids {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionIdGenerator for Cids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; NONCE + CHECK];
        // The system's random source does not fail on Linux once booted;
        // should it, the keyed hash of a count still differs from ID to ID
        // and cannot be guessed without the key, which is all an ID needs.
        if self.random.fill(&mut bytes[..NONCE]).is_err() {
            bytes[..NONCE].copy_from_slice(&self.key.hash_one(("nonce", self.made)).to_le_bytes());
        }
        self.made = self.made.wrapping_add(1);
        let check = self.check(&bytes[..NONCE]);
        bytes[NONCE..].copy_from_slice(&check);
        ConnectionId::new(&bytes)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if cid.len() != NONCE + CHECK {
            return Err(quinn_proto::InvalidCid);
        }
        let (nonce, check) = cid.split_at(NONCE);
        if self.check(nonce)[..] == check[..] { Ok(()) } else { Err(quinn_proto::InvalidCid) }
    }

    fn cid_len(&self) -> usize {
        NONCE + CHECK
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_twelve_bytes_and_validate_only_with_their_own_key() {
        let mut cids = Cids::new();
        let other = Cids::new();
        let id = cids.generate_cid();
        assert_eq!(id.len(), 12);
        assert_eq!(cids.cid_len(), 12);
        assert!(cids.validate(&id).is_ok());
        assert!(other.validate(&id).is_err(), "another endpoint's key accepted the ID");
        let mut tampered = id.to_vec();
        tampered[0] ^= 1;
        assert!(cids.validate(&ConnectionId::new(&tampered)).is_err());
        assert!(cids.validate(&ConnectionId::new(&id[..8])).is_err(), "a short ID passed");
        assert!(cids.validate(&ConnectionId::new(&[])).is_err());
    }

    /// quinn's default (3 random bytes) repeats ~300 times in 100 000 IDs;
    /// these must not repeat at all.
    #[test]
    fn a_hundred_thousand_ids_do_not_repeat() {
        let mut cids = Cids::new();
        let ids: HashSet<Vec<u8>> = (0..100_000).map(|_| cids.generate_cid().to_vec()).collect();
        assert_eq!(ids.len(), 100_000);
        // And the default does repeat, which is why this exists.
        let mut default = quinn_proto::HashedConnectionIdGenerator::new();
        let ids: HashSet<Vec<u8>> = (0..100_000).map(|_| default.generate_cid().to_vec()).collect();
        assert!(ids.len() < 100_000, "quinn's default generator no longer repeats: reconsider this module");
    }
}
