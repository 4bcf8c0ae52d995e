//! Three real `tsod` daemons on loopback, one per site, each on its own
//! wrong simulated clock and fed by its own simulated GPS receiver (the
//! testbed's gpsd simulator, through tsod's real gpsd code path), with a
//! cluster PKI: what the peer and TSO tests start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tsod::daemon::status_file::{self, StatusSnapshot};
use tsod::pki::{self, SiteSpec};
use tsod_testbed::sim::gpsd::GpsdSim;

use super::{Running, free_udp_port, tsod_with};

/// The sites, in order.
pub(crate) const SITES: [&str; 3] = ["bj-a", "bj-b", "xa"];
/// Each site's simulated clock: offset (ns) and frequency error (ppb).
pub(crate) const CLOCKS: [(i64, i64); 3] = [(3_000_000_000, 40_000), (-2_500_000, -25_000), (7_000_000, 0)];

/// A cluster CA and a certificate for each of `sites` (on 127.0.0.1) in `dir`.
pub(crate) fn make_pki(dir: &Path, sites: &[&str]) -> PathBuf {
    let specs: Vec<SiteSpec> = sites.iter().map(|s| SiteSpec::parse(&format!("{s}=127.0.0.1")).unwrap()).collect();
    pki::init(dir, &pki::ca_dir(dir), &specs, 30).unwrap();
    dir.to_path_buf()
}

/// One running site.
pub(crate) struct ClusterSite {
    pub(crate) name: &'static str,
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) config: PathBuf,
    pub(crate) segment: PathBuf,
    pub(crate) daemon: Option<Running>,
    pub(crate) gps: GpsdSim,
}

impl ClusterSite {
    /// Its status file, if it has written one.
    pub(crate) fn status(&self) -> Option<StatusSnapshot> {
        status_file::read(&status_file::status_path(&self.segment)).ok()
    }

    /// Its QUIC address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// What differs between the tests' clusters.
pub(crate) struct Setup<'a> {
    /// The cluster PKI ([`make_pki`]).
    pub(crate) certs: &'a Path,
    /// Added before every site's `[site]` section (e.g. `[clock]`, `[clients]`).
    pub(crate) extra: &'a str,
    /// Added to site `i`'s `[tso]` section.
    pub(crate) tso: [&'a str; 3],
}

/// Starts the three sites under `dir`, without waiting for them. Site `i`
/// reaches site `j` at `route(j, address of j)` (the address itself, or a
/// WAN relay in front of it).
pub(crate) fn start_sites(
    dir: &Path,
    setup: &Setup<'_>,
    mut route: impl FnMut(usize, SocketAddr) -> SocketAddr,
) -> Vec<ClusterSite> {
    let ports: Vec<u16> = SITES.iter().map(|_| free_udp_port()).collect();
    let mut sites = Vec::new();
    for (i, name) in SITES.iter().enumerate() {
        let site_dir = dir.join(name);
        std::fs::create_dir_all(&site_dir).unwrap();
        // A new cluster: every site's empty TSO store is marked as part of
        // it (what `tsod cluster bootstrap` writes).
        std::fs::create_dir_all(site_dir.join("tso")).unwrap();
        std::fs::write(site_dir.join("tso").join(tsod::tso::node::NEW_CLUSTER_MARKER), "test\n").unwrap();
        let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let (offset, frequency) = CLOCKS[i];
        let mut peers = String::new();
        for (j, peer) in SITES.iter().enumerate() {
            if j != i {
                let address = route(j, SocketAddr::from(([127, 0, 0, 1], ports[j])));
                peers.push_str(&format!("\n[[peer]]\nname = \"{peer}\"\naddress = \"{address}\"\n"));
            }
        }
        let config = format!(
            "{}\n[site]\nname = \"{name}\"\nlisten = \"127.0.0.1:{}\"\ncluster-dir = \"{}\"\n\
             probe-interval-ms = 250\ngossip-interval-ms = 250\n\
             [tso]\nstate-dir = \"{}\"\n{}\n\
             [testing.simulated-clock]\noffset-ns = {offset}\nfrequency-ppb = {frequency}\n",
            setup.extra,
            ports[i],
            setup.certs.display(),
            site_dir.join("tso").display(),
            setup.tso[i]
        );
        let sources = format!(
            "\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n{peers}",
            gps.local_addr()
        );
        let (daemon, segment) = tsod_with(&site_dir, &config, &sources);
        sites.push(ClusterSite {
            name,
            config: site_dir.join("tsod.toml"),
            dir: site_dir,
            port: ports[i],
            segment,
            daemon: Some(daemon),
            gps,
        });
    }
    sites
}
