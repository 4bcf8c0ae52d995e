//! `links.json`: what the WAN relays between the sites have carried so far,
//! for scripts that measure the traffic between sites
//! (`testbed/measure-sites.sh`, `testbed/soak.sh`). `tsod-testbed up` and
//! `run` rewrite it about once a second in the cluster's scratch directory
//! (beside `cluster.json`; removed when the testbed stops), atomically: a
//! reader sees the last whole snapshot, never a half-written one.
//!
//! ```json
//! {
//!   "at-unix-ms": 1796457428250,
//!   "links": [
//!     { "from": "bj-a", "to": "xa",
//!       "forward": { "arrived": 120, "arrived-bytes": 9000, "forwarded": 118, "lost": 0,
//!                    "partitioned": 2, "overflowed": 0, "send-failed": 0, "in-flight": 0 },
//!       "reverse": { "arrived": 118, "arrived-bytes": 8100, "forwarded": 118, "lost": 0,
//!                    "partitioned": 0, "overflowed": 0, "send-failed": 0, "in-flight": 0 },
//!       "clients": 1, "over-client-limit": 0 }
//!   ]
//! }
//! ```
//!
//! `at-unix-ms` is the host's realtime when the counters were read, so that
//! rates can be taken between two snapshots. Every ordered pair of sites
//! has its relay ([`crate::cluster`]): `from` dials `to` through it, so
//! `forward` is what `from` sent on the connection it dialled and `reverse`
//! what `to` sent back on it. What a site sends is the `forward` of the
//! links from it plus the `reverse` of the links to it. The counters are
//! the relay's [`RelayStats`]: `arrived` counts every datagram that reached
//! the relay (lost and partitioned ones too: the site sent them).
//!
//! The relays see QUIC packets, so these counts are of every kind of
//! traffic between sites together: probes and their replies (datagrams),
//! gossip, Raft RPCs and forwarded TSO batches (streams), and QUIC's own
//! acknowledgements, handshakes and keep-alives. The daemon's metrics count
//! some kinds on their own (`tsod_peer_probes_sent_total`,
//! `tsod_tso_forwarded_batches_total`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::wan::RelayStats;

/// The file's name in the scratch directory.
pub const FILE_NAME: &str = "links.json";

/// Every relay's counters at one moment (kebab-case keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinksSnapshot {
    /// The host's realtime when the counters were read, ms since the epoch.
    pub at_unix_ms: u64,
    /// One per ordered pair of sites, in the topology's order.
    pub links: Vec<LinkCounts>,
}

/// One relay's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinkCounts {
    /// The site that dials through it.
    pub from: String,
    /// The site it reaches.
    pub to: String,
    /// `forward` (`from` → `to`), `reverse`, and its clients.
    #[serde(flatten)]
    pub stats: RelayStats,
}

impl LinksSnapshot {
    /// The file's contents: JSON and a newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        Ok(serde_json::to_string(self)? + "\n")
    }

    /// Parses the file's contents.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// Writes it to `dir`/[`FILE_NAME`] through a temporary file renamed
    /// over it; the path written.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(FILE_NAME);
        let temporary = dir.join(format!(".{FILE_NAME}.tmp"));
        std::fs::write(&temporary, self.to_json()?)?;
        std::fs::rename(&temporary, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::wan::{LinkShape, WanRelay};

    /// Sends `count` datagrams of `len` bytes through a relay to a socket
    /// that answers none, and returns the relay's counters once all arrived
    /// (or after 2 s).
    fn relay_after(count: usize, len: usize) -> RelayStats {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let target = UdpSocket::bind(loopback).unwrap();
        let relay = WanRelay::start(loopback, target.local_addr().unwrap(), LinkShape::IDEAL).unwrap();
        let client = UdpSocket::bind(loopback).unwrap();
        for _ in 0..count {
            client.send_to(&vec![7u8; len], relay.local_addr()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let stats = relay.stats();
            if stats.forward.forwarded == u64::try_from(count).unwrap() || Instant::now() > deadline {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_relays_counters_round_trip_through_the_file_with_the_documented_keys() {
        let stats = relay_after(5, 40);
        let snapshot = LinksSnapshot {
            at_unix_ms: 1_796_457_428_250,
            links: vec![LinkCounts { from: "bj-a".to_owned(), to: "xa".to_owned(), stats }],
        };
        let dir = std::env::temp_dir().join(format!("tsod-testbed-links-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = snapshot.write_to(&dir).unwrap();
        assert_eq!(path, dir.join("links.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["at-unix-ms"], 1_796_457_428_250_u64);
        let link = &value["links"][0];
        assert_eq!((link["from"].as_str(), link["to"].as_str()), (Some("bj-a"), Some("xa")));
        assert_eq!(link["forward"]["arrived"], 5);
        assert_eq!(link["forward"]["arrived-bytes"], 200);
        assert_eq!(link["forward"]["forwarded"], 5);
        assert_eq!(link["forward"]["in-flight"], 0);
        assert_eq!(link["reverse"]["arrived"], 0);
        assert_eq!((link["clients"].as_u64(), link["over-client-limit"].as_u64()), (Some(1), Some(0)));
        assert_eq!(LinksSnapshot::from_json(&text).unwrap(), snapshot);
        // Rewriting replaces it, and leaves no temporary file behind.
        let later = LinksSnapshot { at_unix_ms: snapshot.at_unix_ms + 1_000, links: Vec::new() };
        later.write_to(&dir).unwrap();
        assert_eq!(LinksSnapshot::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap(), later);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["links.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
