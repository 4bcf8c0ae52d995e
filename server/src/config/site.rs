//! `[site]` and `[[peer]]`: this daemon as one site of a cluster
//! (`[clients]` is `clients.rs`). Without `[site]` the daemon serves only its host (shared
//! memory); with it, it opens one QUIC endpoint for its peers
//! (`tsod-peer/1`) and, unless disabled, remote clients (`tsod-client/1`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::tso::timing::{self, Overrides, RoundTrips};

/// `[site]`: who this daemon is in the cluster and how it talks to peers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteConfig {
    /// The site's name: its certificate from `tsod cluster init` names it.
    pub name: String,
    /// UDP address of the QUIC endpoint (peers and remote clients).
    pub listen: SocketAddr,
    /// The cluster directory: `ca.crt`, `<name>.crt`, `<name>.key`.
    pub cluster_dir: PathBuf,
    /// Time between probes to each peer (ms).
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// A probe unanswered this long is forgotten (ms).
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
    /// A probe whose round trip exceeds this is not used (ms).
    #[serde(default = "default_max_round_trip_ms")]
    pub max_round_trip_ms: u64,
    /// A peer silent this long is declared dead and redialled (ms).
    #[serde(default = "default_dead_after_ms")]
    pub dead_after_ms: u64,
    /// Time between gossip reports to each peer (ms).
    #[serde(default = "default_gossip_interval_ms")]
    pub gossip_interval_ms: u64,
    /// Receive buffer asked for the QUIC socket (KiB): room for the
    /// packets that arrive while the daemon waits for the CPU. Granted up
    /// to `net.core.rmem_max`, or past it with `CAP_NET_ADMIN`.
    #[serde(default = "default_receive_buffer_kib")]
    pub receive_buffer_kib: u32,
}

fn default_probe_interval_ms() -> u64 {
    1_000
}
fn default_probe_timeout_ms() -> u64 {
    2_000
}
fn default_max_round_trip_ms() -> u64 {
    1_000
}
fn default_dead_after_ms() -> u64 {
    3_000
}
fn default_gossip_interval_ms() -> u64 {
    1_000
}
fn default_receive_buffer_kib() -> u32 {
    SiteConfig::DEFAULT_RECEIVE_BUFFER_KIB
}

/// `[[peer]]`: another site, used as a time source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PeerConfig {
    /// The peer's site name (its certificate must name it).
    pub name: String,
    /// Its QUIC endpoint.
    pub address: SocketAddr,
}

/// `[tso]`: the replicated timestamp oracle (with `[site]`).
///
/// The timing (heartbeat, election timeout, lease) is derived from the
/// round trips the site measures to its peers (SPEC.md §4.14,
/// [`crate::tso::timing`]); each may be set explicitly instead, and a
/// setting that cannot work at the declared or measured round trip is
/// refused with the minimum that would.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TsoConfig {
    /// Serve TSO at all (every site of a cluster should, or the group
    /// cannot reach a majority).
    pub enabled: bool,
    /// Where the Raft log, vote and snapshot live (`raft.redb`).
    pub state_dir: PathBuf,
    /// How long a committed lease lets the leader issue (ms); derived when
    /// unset. After losing the leader, TSO is unavailable for at most about
    /// this long plus an election.
    pub lease_ms: Option<u64>,
    /// Raft heartbeat interval (ms); derived when unset.
    pub heartbeat_ms: Option<u64>,
    /// Least time without a leader before a site campaigns (ms); derived
    /// when unset.
    pub election_timeout_ms: Option<u64>,
    /// The largest round trip to a peer this site expects (ms): explicit
    /// settings are checked against it, and the timing starts from it until
    /// round trips are measured.
    pub round_trip_ms: Option<u64>,
    /// Preference for leading the group: among the sites that can lead,
    /// the highest priority leads, and leadership moves back to it once it
    /// is healthy again. Sites without one rank below those with one; among
    /// equals, the site with the smallest total round trip to the others.
    pub leader_priority: Option<u32>,
    /// The widest half-width (ms) at which this site proposes leases as
    /// leader, and the skew it allows another leader's lease ends beyond
    /// its own clock (twice this, plus the longest lease). Default 500.
    pub max_half_width_ms: u64,
}

impl Default for TsoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_dir: PathBuf::from("/var/lib/tsod"),
            lease_ms: None,
            heartbeat_ms: None,
            election_timeout_ms: None,
            round_trip_ms: None,
            leader_priority: None,
            max_half_width_ms: 500,
        }
    }
}

impl TsoConfig {
    /// What the TSO node needs of this section.
    pub fn node_settings(&self) -> crate::tso::node::Settings {
        crate::tso::node::Settings {
            state_dir: self.state_dir.clone(),
            overrides: self.overrides(),
            declared_round_trip: self.declared_round_trip(),
            leader_priority: self.leader_priority,
            max_half_width: Duration::from_millis(self.max_half_width_ms),
        }
    }

    /// The explicit timing settings.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            heartbeat: self.heartbeat_ms.map(Duration::from_millis),
            election: self.election_timeout_ms.map(Duration::from_millis),
            lease: self.lease_ms.map(Duration::from_millis),
        }
    }

    /// `round-trip-ms`, if declared.
    pub fn declared_round_trip(&self) -> Option<Duration> {
        self.round_trip_ms.map(Duration::from_millis)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if let Some(lease) = self.lease_ms {
            if !(100..=60_000).contains(&lease) {
                return Err(format!("tso.lease-ms = {lease} must be within 100 … 60000"));
            }
        }
        if !(1..=60_000).contains(&self.max_half_width_ms) {
            return Err(format!("tso.max-half-width-ms = {} must be within 1 … 60000", self.max_half_width_ms));
        }
        if self.heartbeat_ms == Some(0) {
            return Err("tso.heartbeat-ms must be above 0".into());
        }
        if let Some(election) = self.election_timeout_ms {
            if election > 10_000 {
                return Err(format!("tso.election-timeout-ms = {election} must be at most 10000"));
            }
        }
        if let Some(rtt) = self.round_trip_ms {
            if !(1..=5_000).contains(&rtt) {
                return Err(format!("tso.round-trip-ms = {rtt} must be within 1 … 5000"));
            }
        }
        // Against the declared round trip, or none at all (0 ms) so that
        // settings which cannot work anywhere are caught too.
        let (rtt, what) = match self.declared_round_trip() {
            Some(d) => (d, "tso.round-trip-ms"),
            None => (Duration::ZERO, "any round trip"),
        };
        timing::check(self.overrides(), RoundTrips::uniform(rtt), what).map_err(|e| e.to_string())
    }
}

impl SiteConfig {
    /// Default `receive-buffer-kib`: 4 MiB, about 3 000 full-size packets
    /// (BENCHMARKS.md, clients per site: at the system's 208 KiB a site
    /// ramping to thousands of clients dropped handshake packets).
    pub const DEFAULT_RECEIVE_BUFFER_KIB: u32 = 4_096;

    /// `receive-buffer-kib` in bytes.
    pub fn receive_buffer(&self) -> usize {
        usize::try_from(self.receive_buffer_kib).unwrap_or(usize::MAX).saturating_mul(1024)
    }
    /// `probe-interval-ms`.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }
    /// `probe-timeout-ms`.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
    /// `max-round-trip-ms`.
    pub fn max_round_trip(&self) -> Duration {
        Duration::from_millis(self.max_round_trip_ms)
    }
    /// `dead-after-ms`.
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }
    /// `gossip-interval-ms`.
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }
}

/// Checks `[site]` and `[[peer]]` together; `source_names` are the local
/// sources' names (a peer may not reuse one).
pub(super) fn validate(
    site: Option<&SiteConfig>,
    peers: &[PeerConfig],
    source_names: &HashSet<&str>,
) -> Result<(), String> {
    let Some(site) = site else {
        if peers.is_empty() {
            return Ok(());
        }
        return Err("[[peer]] needs a [site] section (name, listen, cluster-dir)".into());
    };
    check_name(&site.name).map_err(|e| format!("site.name: {e}"))?;
    if !(100..=3_600_000).contains(&site.probe_interval_ms) {
        return Err(format!("site.probe-interval-ms = {} must be within 100 … 3600000", site.probe_interval_ms));
    }
    if site.max_round_trip_ms == 0 || site.probe_timeout_ms < site.max_round_trip_ms {
        return Err(format!(
            "site: need 0 < max-round-trip-ms ({}) <= probe-timeout-ms ({})",
            site.max_round_trip_ms, site.probe_timeout_ms
        ));
    }
    if !(500..=600_000).contains(&site.dead_after_ms) {
        return Err(format!("site.dead-after-ms = {} must be within 500 … 600000", site.dead_after_ms));
    }
    if !(100..=3_600_000).contains(&site.gossip_interval_ms) {
        return Err(format!("site.gossip-interval-ms = {} must be within 100 … 3600000", site.gossip_interval_ms));
    }
    if !(64..=1_048_576).contains(&site.receive_buffer_kib) {
        return Err(format!("site.receive-buffer-kib = {} must be within 64 … 1048576", site.receive_buffer_kib));
    }
    let mut names = HashSet::new();
    for (i, p) in peers.iter().enumerate() {
        let at = format!("peer #{} ({:?})", i.saturating_add(1), p.name);
        check_name(&p.name).map_err(|e| format!("{at}: {e}"))?;
        if p.name == site.name {
            return Err(format!("{at}: is this site itself"));
        }
        if source_names.contains(p.name.as_str()) || !names.insert(p.name.as_str()) {
            return Err(format!("{at}: name is used by another source or peer"));
        }
        if p.address.port() == 0 {
            return Err(format!("{at}: address needs a port"));
        }
    }
    Ok(())
}

/// Site names are lowercase DNS labels, as `tsod cluster init` requires:
/// certificates name sites as DNS SANs, and a name that looked like an IP
/// address could match a certificate's IP SAN instead.
fn check_name(name: &str) -> Result<(), &'static str> {
    match crate::pki::SiteSpec::parse(name) {
        Ok(spec) if spec.addresses.is_empty() && spec.name == name => Ok(()),
        _ => Err("must be a lowercase DNS label (a-z, 0-9, '-'; 1 … 63 bytes), as in `tsod cluster init`"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const SITE: &str = r#"
[site]
name = "bj-a"
listen = "127.0.0.1:4460"
cluster-dir = "/etc/tsod/cluster"

[[peer]]
name = "bj-b"
address = "127.0.0.2:4460"

[[peer]]
name = "xa"
address = "127.0.0.3:4460"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn peers_alone_are_enough_and_count_as_sources() {
        let c = parse(SITE).unwrap();
        assert_eq!(c.site.as_ref().unwrap().dead_after(), std::time::Duration::from_secs(3));
        assert_eq!(c.site.as_ref().unwrap().receive_buffer(), 4 * 1024 * 1024);
        let small = parse(&SITE.replace("cluster-dir", "receive-buffer-kib = 256\ncluster-dir")).unwrap();
        assert_eq!(small.site.unwrap().receive_buffer(), 256 * 1024);
        assert_eq!((c.sources.len(), c.peers.len(), c.source_count()), (0, 2, 2));
        assert!(c.clients.enabled && !c.clients.allow_anonymous);
        assert!(parse(&format!("[clock]\nmin-agreeing = 2\n{SITE}")).is_ok());
        assert!(parse(&format!("[clock]\nmin-agreeing = 3\n{SITE}")).unwrap_err().contains("min-agreeing"));
    }

    #[test]
    fn broken_site_and_peer_settings_are_named() {
        let peer_only = "[[peer]]\nname = \"x\"\naddress = \"127.0.0.1:1\"\n";
        assert!(parse(peer_only).unwrap_err().contains("[site]"));
        let cases = [
            (SITE.replace("bj-b", "bj-a"), "itself"),
            (SITE.replace("name = \"xa\"", "name = \"bj-b\""), "used by another"),
            (SITE.replace("127.0.0.3:4460", "127.0.0.3:0"), "port"),
            (SITE.replace("cluster-dir", "probe-interval-ms = 10\ncluster-dir"), "probe-interval-ms"),
            (SITE.replace("cluster-dir", "probe-timeout-ms = 10\ncluster-dir"), "max-round-trip-ms"),
            (SITE.replace("cluster-dir", "dead-after-ms = 1\ncluster-dir"), "dead-after-ms"),
            (SITE.replace("cluster-dir", "receive-buffer-kib = 8\ncluster-dir"), "receive-buffer-kib"),
            (SITE.replace("cluster-dir", "receive-buffer-kib = 2000000\ncluster-dir"), "receive-buffer-kib"),
            (format!("{SITE}\n[clients]\nmax-requests-per-second = 0\n"), "max-requests-per-second"),
            (SITE.replace("listen = \"127.0.0.1:4460\"", "listen = \"nowhere\""), "listen"),
            (SITE.replace("cluster-dir", "colour = 1\ncluster-dir"), "colour"),
            (SITE.replace("name = \"xa\"", "name = \"127.0.0.3\""), "DNS label"),
            (SITE.replace("name = \"bj-a\"", "name = \"BJ A\""), "DNS label"),
        ];
        for (text, key) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
