//! Finding the sites of a running `tsod-testbed up`, and telling when they
//! are ready to measure, from the files it writes in its scratch directory
//! (`<work>/tsod-testbed-<pid>`):
//!
//! * `cluster.json`, when the testbed writes it: `ca`, and per site `name`,
//!   `address`, `segment`, `status` (kebab-case; other fields ignored);
//! * otherwise each `<site>/tsod.toml` (`[site] name`, `[site] listen`,
//!   `[publish] path`) and `certs/ca.crt`;
//! * each site's status file, `<segment>.status.json` (what `tsod status
//!   --json` prints: `status`, `half_width_ns`, `tso.role`, `tso.leader`,
//!   `tso.lease_end_ns`, `peers[].name`, `peers[].last_round_trip_ns`).
//!
//! Only reads files; [`readiness`] and [`far_site`] are pure.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A failure to find a testbed's sites; each says which file to look at.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what the testbed writes.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No site was found.
    #[error("no site found in {0}: neither cluster.json nor any <site>/tsod.toml (is the testbed still starting?)")]
    NoSites(PathBuf),
}

/// One site of a testbed cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TestbedSite {
    /// Its name, also the server name its certificate carries.
    pub name: String,
    /// Its client address, `IP:PORT`.
    pub address: String,
    /// Its shared-memory segment.
    pub segment: PathBuf,
    /// Its status file.
    pub status: PathBuf,
}

/// A testbed cluster's sites and CA.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TestbedCluster {
    /// PEM file of the cluster CA.
    pub ca: PathBuf,
    /// Every site, in the testbed's order (`cluster.json`) or by name.
    pub sites: Vec<TestbedSite>,
}

/// The scratch directory `tsod-testbed` (process `pid`) makes under `work`.
pub fn scratch_dir(work: &Path, pid: u32) -> PathBuf {
    work.join(format!("tsod-testbed-{pid}"))
}

/// The sites of the testbed whose scratch directory is `scratch`: from
/// `cluster.json` if present, else from every `<site>/tsod.toml`.
pub fn discover(scratch: &Path) -> Result<TestbedCluster, DiscoveryError> {
    let description = scratch.join("cluster.json");
    if description.is_file() {
        let text = read(&description)?;
        let cluster: TestbedCluster = serde_json::from_str(&text)
            .map_err(|e| DiscoveryError::Parse { path: description.clone(), message: e.to_string() })?;
        if cluster.sites.is_empty() {
            return Err(DiscoveryError::NoSites(scratch.to_path_buf()));
        }
        return Ok(cluster);
    }
    let entries =
        fs::read_dir(scratch).map_err(|source| DiscoveryError::Read { path: scratch.to_path_buf(), source })?;
    let mut sites = Vec::new();
    for entry in entries.flatten() {
        let config = entry.path().join("tsod.toml");
        if config.is_file() {
            sites.push(site_from_config(&config, &entry.file_name().to_string_lossy())?);
        }
    }
    if sites.is_empty() {
        return Err(DiscoveryError::NoSites(scratch.to_path_buf()));
    }
    sites.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TestbedCluster { ca: scratch.join("certs").join("ca.crt"), sites })
}

fn read(path: &Path) -> Result<String, DiscoveryError> {
    fs::read_to_string(path).map_err(|source| DiscoveryError::Read { path: path.to_path_buf(), source })
}

/// A site from its `tsod.toml`; `dir_name` names it if `[site] name` does not.
fn site_from_config(config: &Path, dir_name: &str) -> Result<TestbedSite, DiscoveryError> {
    let parse_error = |message: String| DiscoveryError::Parse { path: config.to_path_buf(), message };
    let table: toml::Table = read(config)?.parse().map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
    let text =
        |section: &str, key: &str| -> Option<String> { table.get(section)?.get(key)?.as_str().map(str::to_owned) };
    let address = text("site", "listen").ok_or_else(|| parse_error("no `listen` in [site]".to_owned()))?;
    let segment = text("publish", "path").ok_or_else(|| parse_error("no `path` in [publish]".to_owned()))?;
    let mut status = std::ffi::OsString::from(&segment);
    status.push(".status.json");
    Ok(TestbedSite {
        name: text("site", "name").unwrap_or_else(|| dir_name.to_owned()),
        address,
        segment: PathBuf::from(segment),
        status: PathBuf::from(status),
    })
}

/// The parts of a site's status file that readiness depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SiteStatus {
    /// `synchronized`, `degraded`, `free-running`, `unsynchronized` or `disrupted`.
    pub status: String,
    /// Half-width of the published interval, ns.
    #[serde(default)]
    pub half_width_ns: Option<u64>,
    /// The site's TSO, if it runs one.
    #[serde(default)]
    pub tso: Option<TsoState>,
    /// The other sites.
    #[serde(default)]
    pub peers: Vec<PeerState>,
}

/// A site's TSO, from its status file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TsoState {
    /// `leader`, `leader-without-quorum` (restored or cut off; it issues
    /// nothing), `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// The site this one believes leads.
    #[serde(default)]
    pub leader: Option<String>,
    /// Its own committed lease end when it leads, ns.
    #[serde(default)]
    pub lease_end_ns: Option<u64>,
}

/// A peer, from a site's status file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PeerState {
    /// The peer's name.
    pub name: String,
    /// The last probe round trip to it, ns.
    #[serde(default)]
    pub last_round_trip_ns: Option<u64>,
}

/// Reads and parses a status file.
pub fn read_status(path: &Path) -> Result<SiteStatus, DiscoveryError> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| DiscoveryError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Whether a cluster may be measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Every site synchronized, and this site's TSO leads with a lease.
    Ready {
        /// The leader's site.
        leader: String,
    },
    /// Not yet, and why (for the progress line).
    Waiting(String),
}

/// Ready once every site's status is `synchronized` and one site's TSO is
/// `leader` with a committed lease; `statuses` pairs each site's name with
/// its status file, if it could be read.
pub fn readiness(statuses: &[(String, Option<SiteStatus>)]) -> Readiness {
    let mut waiting = Vec::new();
    for (name, status) in statuses {
        match status {
            None => waiting.push(format!("{name}: no status yet")),
            Some(s) if s.status != "synchronized" => waiting.push(format!("{name}: {}", s.status)),
            Some(_) => {}
        }
    }
    let leader = statuses.iter().find_map(|(name, status)| {
        let tso = status.as_ref()?.tso.as_ref()?;
        (tso.role == "leader" && tso.lease_end_ns.is_some_and(|end| end > 0)).then(|| name.clone())
    });
    match leader {
        None => waiting.push("no TSO leader with a lease".to_owned()),
        Some(leader) if waiting.is_empty() => return Readiness::Ready { leader },
        Some(_) => {}
    }
    if statuses.is_empty() {
        waiting.push("no sites".to_owned());
    }
    Readiness::Waiting(waiting.join("; "))
}

/// The site farthest from `leader`, and its round trip if known: the peer
/// with the longest probe round trip in the leader's status; without round
/// trips, `xa` (the far data centre of `dr`) unless it leads, else the last
/// other site. `None` if `leader` is the only site.
pub fn far_site(leader: &str, statuses: &[(String, Option<SiteStatus>)]) -> Option<(String, Option<u64>)> {
    let others: Vec<&str> = statuses.iter().map(|(name, _)| name.as_str()).filter(|name| *name != leader).collect();
    let measured = statuses
        .iter()
        .find(|(name, _)| name == leader)
        .and_then(|(_, status)| status.as_ref())
        .into_iter()
        .flat_map(|status| &status.peers)
        .filter(|peer| others.contains(&peer.name.as_str()))
        .filter_map(|peer| Some((peer.name.clone(), peer.last_round_trip_ns?)))
        .max_by_key(|(_, rtt)| *rtt);
    if let Some((name, rtt)) = measured {
        return Some((name, Some(rtt)));
    }
    let fallback = if others.contains(&"xa") { Some("xa") } else { others.last().copied() };
    fallback.map(|name| (name.to_owned(), None))
}
