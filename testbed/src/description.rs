//! `cluster.json`: where a running cluster's sites can be reached, for
//! other tools (`tsbench`, `tsod-client` programs). `tsod-testbed up`
//! writes it to `<scratch dir>/cluster.json` (the scratch directory is
//! `<--work>/tsod-testbed-<pid>`, removed when `up` ends) and prints its
//! path; `tsbench compare` reads it back with the same type.
//!
//! ```json
//! {
//!   "dir": "/tmp/tsod-testbed-4242",
//!   "ca": "/tmp/tsod-testbed-4242/certs/ca.crt",
//!   "sites": [
//!     { "name": "bj-a", "address": "127.0.0.1:40123",
//!       "segment": "/tmp/tsod-testbed-4242/bj-a/segment",
//!       "status": "/tmp/tsod-testbed-4242/bj-a/segment.status.json" }
//!   ]
//! }
//! ```
//!
//! `address` is the site's client address (QUIC, ALPN `tsod-client/1`:
//! now, status, TSO); anonymous clients are allowed, the server name to
//! verify is the site's `name`, the CA is `ca`. `segment` is the site's
//! shared-memory segment (a local client on "that site" opens it), `status`
//! its status file (`tsod_proto::observe::StatusSnapshot`). For example
//! `tsbench tso --site "$(jq -r '.sites[0].address' cluster.json)" --server-name "$(jq -r '.sites[0].name' cluster.json)" --ca "$(jq -r .ca cluster.json)"`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The file's name in the scratch directory.
pub const FILE_NAME: &str = "cluster.json";

/// Where a running cluster's sites can be reached (kebab-case keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterDescription {
    /// The scratch directory (removed when the testbed stops).
    pub dir: PathBuf,
    /// PEM file of the cluster CA, for clients' `--ca`.
    pub ca: PathBuf,
    /// Every site, in the topology's order.
    pub sites: Vec<SiteDescription>,
}

/// One site in a [`ClusterDescription`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteDescription {
    /// Its name, which is also the server name its certificate carries.
    pub name: String,
    /// Its client address (QUIC, ALPN `tsod-client/1`: now, status, TSO);
    /// anonymous clients are allowed.
    pub address: SocketAddr,
    /// Its shared-memory segment.
    pub segment: PathBuf,
    /// Its status file (JSON).
    pub status: PathBuf,
}

impl ClusterDescription {
    /// The file's contents: pretty-printed JSON and a newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Parses the file's contents.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_documented_keys() {
        let description = ClusterDescription {
            dir: PathBuf::from("/tmp/tsod-testbed-4242"),
            ca: PathBuf::from("/tmp/tsod-testbed-4242/certs/ca.crt"),
            sites: vec![SiteDescription {
                name: "bj-a".to_owned(),
                address: "127.0.0.1:40123".parse().unwrap(),
                segment: PathBuf::from("/tmp/tsod-testbed-4242/bj-a/segment"),
                status: PathBuf::from("/tmp/tsod-testbed-4242/bj-a/segment.status.json"),
            }],
        };
        let json = description.to_json().unwrap();
        assert!(json.ends_with("}\n"));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["sites"][0]["address"], "127.0.0.1:40123");
        assert_eq!(value["ca"], "/tmp/tsod-testbed-4242/certs/ca.crt");
        assert_eq!(ClusterDescription::from_json(&json).unwrap(), description);
    }
}
