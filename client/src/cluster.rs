//! Cluster files: which sites a client may use, and the CA that vouches for
//! them, in one JSON file that `tsod cluster init` writes next to the
//! certificates and `tsod-testbed up` writes for a running testbed
//! (`cluster.json`; SPEC.md §4.16):
//!
//! ```json
//! {
//!   "ca": "ca.crt",
//!   "sites": [
//!     { "name": "bj-a", "address": "10.1.0.10:4460" },
//!     { "name": "bj-b", "address": "bj-b.example.net:4460" }
//!   ]
//! }
//! ```
//!
//! `name` is the site's name as its certificate carries it (the server name
//! a client verifies); `address` is its client address (`tsod-client/1`),
//! `IP:PORT` or `HOST:PORT`. A relative `ca` is relative to the file's
//! directory. Other keys (the testbed adds `dir`, `segment`, `status`) are
//! ignored, so the two files are one format.
//!
//! [`RemoteClock::connect_cluster`](crate::RemoteClock::connect_cluster) and
//! [`Tso::connect_cluster`](crate::tso::Tso::connect_cluster) take a loaded
//! [`ClusterFile`]; [`Site`] lists for
//! [`RemoteClock::connect_sites`](crate::RemoteClock::connect_sites) come
//! from [`ClusterFile::resolve`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RemoteOptions;
use crate::tso::TsoOptions;

/// Largest cluster file read: far more than any cluster's site list.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;

/// A site a client may ask: its certificate name and its client address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Site {
    /// The name its certificate must carry (see [`RemoteOptions::server_name`]).
    pub name: String,
    /// Its client address (QUIC, `tsod-client/1`).
    pub addr: SocketAddr,
}

impl Site {
    /// The site `name` at `addr`.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Self { name: name.into(), addr }
    }
}

/// One site as a cluster file gives it: the address may be a host name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteEntry {
    /// The name its certificate carries.
    pub name: String,
    /// `IP:PORT` or `HOST:PORT`.
    pub address: String,
}

/// A loaded cluster file (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// The cluster CA's PEM file (made absolute by [`ClusterFile::load`]).
    pub ca: PathBuf,
    /// Every site, in the file's order.
    pub sites: Vec<SiteEntry>,
}

/// Why a cluster file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// The file could not be read.
    #[error("cannot read the cluster file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_LEN`].
    #[error("the cluster file {path} is larger than {MAX_FILE_LEN} bytes: not a cluster file")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not the JSON described in the module doc.
    #[error(
        "the cluster file {path} does not parse: {why}; expected {{\"ca\": ..., \"sites\": [{{\"name\", \"address\"}}]}}"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde_json's message (with line and column).
        why: String,
    },
    /// The file lists no site.
    #[error("the cluster file {path} lists no site")]
    NoSites {
        /// The file.
        path: PathBuf,
    },
    /// A site's name or address is unusable.
    #[error("the cluster file {path}: site {site:?}: {why}")]
    BadSite {
        /// The file.
        path: PathBuf,
        /// The site's name as written.
        site: String,
        /// What is wrong.
        why: String,
    },
    /// No address of a site's host could be found.
    #[error("site {site}: cannot resolve {address}: {why}")]
    Resolve {
        /// The site's name.
        site: String,
        /// The address as written.
        address: String,
        /// Why.
        why: String,
    },
}

impl ClusterFile {
    /// Reads and checks the cluster file at `path`: at least one site,
    /// names unique and non-empty, every address `HOST:PORT` with a port.
    /// A relative `ca` is taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ClusterFileError> {
        use std::io::Read as _;
        let read = |source| ClusterFileError::Read { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_FILE_LEN + 1).read_to_string(&mut text).map_err(read)?;
        if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_FILE_LEN {
            return Err(ClusterFileError::TooLarge { path: path.to_path_buf() });
        }
        let mut file = Self::parse(&text, path)?;
        if file.ca.is_relative() {
            let dir = path.parent().unwrap_or(Path::new("."));
            file.ca = dir.join(&file.ca);
        }
        Ok(file)
    }

    /// Parses and checks a cluster file's text (`path` names it in errors);
    /// a relative `ca` is left as it is.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ClusterFileError> {
        let file: Self = serde_json::from_str(text)
            .map_err(|e| ClusterFileError::Parse { path: path.to_path_buf(), why: e.to_string() })?;
        if file.sites.is_empty() {
            return Err(ClusterFileError::NoSites { path: path.to_path_buf() });
        }
        for (i, site) in file.sites.iter().enumerate() {
            let bad = |why: &str| ClusterFileError::BadSite {
                path: path.to_path_buf(),
                site: site.name.clone(),
                why: why.to_owned(),
            };
            if site.name.is_empty() {
                return Err(bad("empty name"));
            }
            if file.sites.iter().take(i).any(|s| s.name == site.name) {
                return Err(bad("listed twice"));
            }
            if split_port(&site.address).is_none() {
                return Err(bad("address must be IP:PORT or HOST:PORT with a port 1-65535"));
            }
        }
        Ok(file)
    }

    /// Every site with an address to dial: an `IP:PORT` as it is, a
    /// `HOST:PORT` by the system resolver (its first address).
    pub async fn resolve(&self) -> Result<Vec<Site>, ClusterFileError> {
        let mut sites = Vec::with_capacity(self.sites.len());
        for entry in &self.sites {
            let fail = |why: String| ClusterFileError::Resolve {
                site: entry.name.clone(),
                address: entry.address.clone(),
                why,
            };
            let addr = match entry.address.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => tokio::net::lookup_host(entry.address.as_str())
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .next()
                    .ok_or_else(|| fail("no address".to_owned()))?,
            };
            sites.push(Site::new(entry.name.clone(), addr));
        }
        Ok(sites)
    }

    /// [`RemoteOptions`] trusting this file's CA, every other field at its
    /// default (the server name is each site's own; see
    /// [`RemoteClock::connect_sites`](crate::RemoteClock::connect_sites)).
    pub fn remote_options(&self) -> RemoteOptions {
        let first = self.sites.first().map_or_else(String::new, |s| s.name.clone());
        RemoteOptions::new(self.ca.clone(), first)
    }

    /// [`TsoOptions`] trusting this file's CA, every other field at its default.
    pub fn tso_options(&self) -> TsoOptions {
        TsoOptions::from(self.remote_options())
    }
}

/// `(host, port)` of `HOST:PORT`, `IP:PORT` or `[IPv6]:PORT`, with a port
/// 1 … 65 535 and a non-empty host.
fn split_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterFile, ClusterFileError> {
        ClusterFile::parse(text, Path::new("c.json"))
    }

    #[test]
    fn reads_the_testbed_file_and_ignores_its_extra_keys() {
        let text = r#"{ "dir": "/tmp/x", "ca": "/tmp/x/certs/ca.crt",
            "sites": [ { "name": "bj-a", "address": "127.0.0.1:40123", "segment": "/s", "status": "/t" },
                       { "name": "xa", "address": "[::1]:4460" } ] }"#;
        let file = parse(text).unwrap();
        assert_eq!(file.ca, PathBuf::from("/tmp/x/certs/ca.crt"));
        assert_eq!(file.sites.len(), 2);
        assert_eq!(file.sites[1].address, "[::1]:4460");
    }

    #[test]
    fn refuses_files_it_cannot_use() {
        for (text, needle) in [
            ("not json", "does not parse"),
            (r#"{ "ca": "ca.crt", "sites": [] }"#, "lists no site"),
            (r#"{ "sites": [ { "name": "a", "address": "127.0.0.1:1" } ] }"#, "does not parse"),
            (r#"{ "ca": "c", "sites": [ { "name": "", "address": "127.0.0.1:1" } ] }"#, "empty name"),
            (r#"{ "ca": "c", "sites": [ { "name": "a", "address": "127.0.0.1" } ] }"#, "with a port"),
            (r#"{ "ca": "c", "sites": [ { "name": "a", "address": "h:0" } ] }"#, "with a port"),
            (r#"{ "ca": "c", "sites": [ { "name": "a", "address": ":4460" } ] }"#, "with a port"),
            (
                r#"{ "ca": "c", "sites": [ { "name": "a", "address": "h:1" }, { "name": "a", "address": "g:1" } ] }"#,
                "listed twice",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn a_relative_ca_is_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("tsod-cluster-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.json");
        std::fs::write(&path, r#"{ "ca": "ca.crt", "sites": [ { "name": "a", "address": "127.0.0.1:9" } ] }"#).unwrap();
        let file = ClusterFile::load(&path).unwrap();
        assert_eq!(file.ca, dir.join("ca.crt"));
        assert_eq!(file.remote_options().ca_path, dir.join("ca.crt"));
        std::fs::write(&path, vec![b' '; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(ClusterFile::load(&path), Err(ClusterFileError::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(ClusterFile::load(&path), Err(ClusterFileError::Read { .. })));
    }

    #[tokio::test]
    async fn resolves_ips_and_host_names() {
        let file = parse(
            r#"{ "ca": "c", "sites": [ { "name": "a", "address": "127.0.0.3:9" },
                                                   { "name": "b", "address": "localhost:7" } ] }"#,
        )
        .unwrap();
        let sites = file.resolve().await.unwrap();
        assert_eq!(sites[0], Site::new("a", "127.0.0.3:9".parse().unwrap()));
        assert_eq!(sites[1].addr.port(), 7);
        assert!(sites[1].addr.ip().is_loopback());
        let bad = parse(r#"{ "ca": "c", "sites": [ { "name": "a", "address": "no-such-host.invalid:9" } ] }"#).unwrap();
        assert!(matches!(bad.resolve().await, Err(ClusterFileError::Resolve { .. })));
    }
}
