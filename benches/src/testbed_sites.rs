//! Finding the sites of a running `tsod-testbed up`, and telling when they
//! are ready to measure, from the files it writes in its scratch directory
//! (`<work>/tsod-testbed-<pid>`):
//!
//! * `cluster.json`, when the testbed writes it: the testbed's own
//!   [`ClusterDescription`] (`tsod_testbed::description`);
//! * otherwise each `<site>/tsod.toml` (`[site] name`, `[site] listen`,
//!   `[publish] path`) and `certs/ca.crt`;
//! * each site's status file, `<segment>.status.json`: the daemon's
//!   [`StatusSnapshot`] (`tsod_proto::observe`), as `tsod status --json`
//!   prints it.
//!
//! Only reads files; [`readiness`] and [`far_site`] are pure.

use std::fs;
use std::path::{Path, PathBuf};

use tsod_proto::ClockStatus;
use tsod_proto::observe::{StatusSnapshot, status_path};
use tsod_testbed::description::{ClusterDescription, SiteDescription};

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

/// The scratch directory `tsod-testbed` (process `pid`) makes under `work`.
pub fn scratch_dir(work: &Path, pid: u32) -> PathBuf {
    work.join(format!("tsod-testbed-{pid}"))
}

/// The sites of the testbed whose scratch directory is `scratch`: from
/// `cluster.json` if present, else from every `<site>/tsod.toml`.
pub fn discover(scratch: &Path) -> Result<ClusterDescription, DiscoveryError> {
    let description = scratch.join(tsod_testbed::description::FILE_NAME);
    if description.is_file() {
        let text = read(&description)?;
        let cluster = ClusterDescription::from_json(&text)
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
    Ok(ClusterDescription { dir: scratch.to_path_buf(), ca: scratch.join("certs").join("ca.crt"), sites })
}

fn read(path: &Path) -> Result<String, DiscoveryError> {
    fs::read_to_string(path).map_err(|source| DiscoveryError::Read { path: path.to_path_buf(), source })
}

/// A site from its `tsod.toml`; `dir_name` names it if `[site] name` does not.
fn site_from_config(config: &Path, dir_name: &str) -> Result<SiteDescription, DiscoveryError> {
    let parse_error = |message: String| DiscoveryError::Parse { path: config.to_path_buf(), message };
    let table: toml::Table = read(config)?.parse().map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
    let text =
        |section: &str, key: &str| -> Option<String> { table.get(section)?.get(key)?.as_str().map(str::to_owned) };
    let listen = text("site", "listen").ok_or_else(|| parse_error("no `listen` in [site]".to_owned()))?;
    let address =
        listen.parse().map_err(|e| parse_error(format!("`listen` in [site] is not an IP:PORT ({listen:?}: {e})")))?;
    let segment =
        PathBuf::from(text("publish", "path").ok_or_else(|| parse_error("no `path` in [publish]".to_owned()))?);
    Ok(SiteDescription {
        name: text("site", "name").unwrap_or_else(|| dir_name.to_owned()),
        address,
        status: status_path(&segment),
        segment,
    })
}

/// Reads and parses a status file.
pub fn read_status(path: &Path) -> Result<StatusSnapshot, DiscoveryError> {
    StatusSnapshot::from_json(read(path)?.as_bytes())
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
pub fn readiness(statuses: &[(String, Option<StatusSnapshot>)]) -> Readiness {
    let mut waiting = Vec::new();
    for (name, status) in statuses {
        match status {
            None => waiting.push(format!("{name}: no status yet")),
            Some(s) if s.status != ClockStatus::Synchronized => waiting.push(format!("{name}: {}", s.status)),
            Some(_) => {}
        }
    }
    let leader =
        statuses.iter().find_map(|(name, status)| status.as_ref()?.tso.as_ref()?.issuing().then(|| name.clone()));
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
pub fn far_site(leader: &str, statuses: &[(String, Option<StatusSnapshot>)]) -> Option<(String, Option<u64>)> {
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
