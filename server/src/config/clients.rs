//! `[clients]`: remote clients on `tsod-client/1` (with `[site]`), what
//! they may ask and how many may be connected at once.
//!
//! ```toml
//! [clients]                                  # these are the defaults
//! enabled = true
//! allow-anonymous = false
//! max-requests-per-second = 10000            # per connection
//! max-timestamps-per-second-per-client = 4000000
//! max-timestamps-per-second = 16000000       # all clients together
//! max-connections = 1024                     # client connections open at once
//! max-connections-per-prefix = 64            # handshakes and clients from one /24 or /64
//! max-handshakes = 256                       # handshakes in progress (not counting peers)
//! ```
//!
//! The connection limits are the endpoint's admission
//! (`net::admission`, SPEC.md §4.12): configured peers have slots of their
//! own, so no setting here can keep a site's peers out. Each client
//! connection costs the daemon memory (66 – 70 KiB measured at 1 000 to
//! 10 000 clients, BENCHMARKS.md "clients per site") and one keep-alive exchange per second or so:
//! raise `max-connections` for a site that serves a fleet, with the host's
//! memory in mind.

use serde::Deserialize;

/// The default `max-connections`.
pub(super) const DEFAULT_MAX_CONNECTIONS: usize = 1_024;
/// The default `max-connections-per-prefix`.
pub(super) const DEFAULT_MAX_CONNECTIONS_PER_PREFIX: usize = 64;
/// The default `max-handshakes`.
pub(super) const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// The largest `max-connections` and `max-connections-per-prefix`: far
/// beyond what one QUIC endpoint on one UDP port serves (tens of GB of
/// connection state), so a larger value is a typo.
pub(super) const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// The largest `max-handshakes`: a handshake costs a few ms of CPU, so
/// more at once only lengthens each one past its 5 s timeout.
pub(super) const MAX_HANDSHAKES_LIMIT: usize = 65_536;

/// `[clients]`: remote clients on `tsod-client/1`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ClientsConfig {
    /// Serve remote clients at all.
    pub enabled: bool,
    /// Accept clients without a certificate from the cluster CA.
    pub allow_anonymous: bool,
    /// Requests per second one connection may make (a burst of as many is allowed).
    pub max_requests_per_second: u32,
    /// Timestamps per second one client may take over all its connections
    /// (a TSO request counts the timestamps it asks for, a now or status
    /// request one). A client is its certificate; an anonymous one, its /24
    /// or /64.
    pub max_timestamps_per_second_per_client: u32,
    /// Timestamps per second all clients of this site may take together.
    pub max_timestamps_per_second: u32,
    /// Client connections open at once (1 … 1 000 000).
    pub max_connections: usize,
    /// Handshakes and client connections at once from one /24 (IPv4) or
    /// /64 (IPv6) (1 … 1 000 000).
    pub max_connections_per_prefix: usize,
    /// Handshakes in progress at once from addresses that are not a
    /// configured peer's (1 … 65 536).
    pub max_handshakes: usize,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_anonymous: false,
            max_requests_per_second: 10_000,
            max_timestamps_per_second_per_client: 4_000_000,
            max_timestamps_per_second: 16_000_000,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_prefix: DEFAULT_MAX_CONNECTIONS_PER_PREFIX,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        }
    }
}

/// A `[clients]` section that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientsConfigError {
    /// `max-requests-per-second = 0`.
    #[error("clients.max-requests-per-second must be at least 1")]
    RequestsPerSecond,
    /// `max-timestamps-per-second` or `…-per-client` is 0.
    #[error("clients.max-timestamps-per-second and …-per-client must be at least 1")]
    TimestampsPerSecond,
    /// `max-connections` outside 1 … 1 000 000.
    #[error(
        "clients.max-connections = {0} must be within 1 … {MAX_CONNECTIONS_LIMIT} (to serve no remote clients, \
         set enabled = false)"
    )]
    Connections(usize),
    /// `max-connections-per-prefix` outside 1 … 1 000 000.
    #[error("clients.max-connections-per-prefix = {0} must be within 1 … {MAX_CONNECTIONS_LIMIT}")]
    ConnectionsPerPrefix(usize),
    /// `max-handshakes` outside 1 … 65 536.
    #[error("clients.max-handshakes = {0} must be within 1 … {MAX_HANDSHAKES_LIMIT}")]
    Handshakes(usize),
}

impl ClientsConfig {
    /// Checks every value (`tsod check-config`).
    pub fn validate(&self) -> Result<(), ClientsConfigError> {
        if self.max_requests_per_second == 0 {
            return Err(ClientsConfigError::RequestsPerSecond);
        }
        if self.max_timestamps_per_second_per_client == 0 || self.max_timestamps_per_second == 0 {
            return Err(ClientsConfigError::TimestampsPerSecond);
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(ClientsConfigError::Connections(self.max_connections));
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections_per_prefix) {
            return Err(ClientsConfigError::ConnectionsPerPrefix(self.max_connections_per_prefix));
        }
        if !(1..=MAX_HANDSHAKES_LIMIT).contains(&self.max_handshakes) {
            return Err(ClientsConfigError::Handshakes(self.max_handshakes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failed unwrap is a failed test")]

    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    const SITE: &str = r#"
[site]
name = "bj-a"
listen = "127.0.0.1:4460"
cluster-dir = "/etc/tsod/cluster"

[[peer]]
name = "bj-b"
address = "127.0.0.2:4460"
"#;

    fn parse(clients: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{SITE}\n[clients]\n{clients}"), Path::new("t.toml"))
    }

    #[test]
    fn connection_limits_default_to_the_admission_defaults_and_can_be_raised() {
        let c = parse("").unwrap().clients;
        assert_eq!((c.max_connections, c.max_connections_per_prefix, c.max_handshakes), (1_024, 64, 256));
        let c =
            parse("max-connections = 12000\nmax-connections-per-prefix = 100\nmax-handshakes = 512\n").unwrap().clients;
        assert_eq!((c.max_connections, c.max_connections_per_prefix, c.max_handshakes), (12_000, 100, 512));
        let at_the_limits = "max-connections = 1000000\nmax-connections-per-prefix = 1000000\nmax-handshakes = 65536\n";
        assert!(parse(at_the_limits).is_ok());
    }

    #[test]
    fn zero_and_absurd_connection_limits_are_typed_errors() {
        let cases = [
            ("max-connections = 0\n", ClientsConfigError::Connections(0)),
            ("max-connections = 1000001\n", ClientsConfigError::Connections(1_000_001)),
            ("max-connections-per-prefix = 0\n", ClientsConfigError::ConnectionsPerPrefix(0)),
            ("max-connections-per-prefix = 5000000\n", ClientsConfigError::ConnectionsPerPrefix(5_000_000)),
            ("max-handshakes = 0\n", ClientsConfigError::Handshakes(0)),
            ("max-handshakes = 65537\n", ClientsConfigError::Handshakes(65_537)),
            ("max-requests-per-second = 0\n", ClientsConfigError::RequestsPerSecond),
            ("max-timestamps-per-second = 0\n", ClientsConfigError::TimestampsPerSecond),
        ];
        for (text, want) in cases {
            match parse(text) {
                Err(ConfigError::Clients { what, .. }) => assert_eq!(what, want, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let message = parse("max-connections = 0\n").unwrap_err().to_string();
        assert!(message.contains("t.toml") && message.contains("clients.max-connections = 0"), "{message}");
        // Negative numbers and strings do not even parse.
        assert!(matches!(parse("max-connections = -1\n"), Err(ConfigError::Parse { .. })));
        assert!(matches!(parse("max-handshakes = \"many\"\n"), Err(ConfigError::Parse { .. })));
        assert!(matches!(parse("max-connection = 10\n"), Err(ConfigError::Parse { .. })), "a misspelt key");
    }
}
