//! `[metrics]`: the OpenMetrics/Prometheus endpoint ([`crate::metrics`]).
//!
//! Off unless the section is present; `[metrics]` alone serves on
//! [`MetricsConfig::DEFAULT_LISTEN`]. The endpoint has no authentication and no TLS:
//! anyone who can reach the port can read everything `tsod status` shows
//! (sources, peers, the TSO's role and counters). So `listen` must be a
//! loopback address unless `allow-non-loopback = true` says the operator
//! has put a firewall or an authenticating proxy in front of it.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// `[metrics]`: serve `GET /metrics` over HTTP/1.1.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// TCP address of the HTTP endpoint (default [`Self::DEFAULT_LISTEN`]).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Accept a `listen` address that is not loopback (default false): the
    /// endpoint has no authentication, so only with a firewall or an
    /// authenticating proxy in front of it.
    #[serde(default)]
    pub allow_non_loopback: bool,
}

fn default_listen() -> SocketAddr {
    MetricsConfig::DEFAULT_LISTEN
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: Self::DEFAULT_LISTEN, allow_non_loopback: false }
    }
}

impl MetricsConfig {
    /// Where `[metrics]` serves when `listen` is not given: `127.0.0.1:9465`.
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9465);

    /// Whether `listen` is a loopback address (an IPv4-mapped IPv6
    /// loopback counts).
    pub fn is_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }

    /// Checks the section; the error names the key and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.port() == 0 {
            return Err(format!(
                "metrics.listen = \"{}\": port 0 picks a random port that Prometheus cannot know; give a fixed \
                 port (default {})",
                self.listen,
                Self::DEFAULT_LISTEN
            ));
        }
        if !self.is_loopback() && !self.allow_non_loopback {
            return Err(format!(
                "metrics.listen = \"{}\" is not a loopback address: the metrics endpoint has no authentication, so \
                 anyone who can reach it reads this site's sources, peers and TSO state; listen on 127.0.0.1 or \
                 [::1] (and scrape through a proxy), or set metrics.allow-non-loopback = true if a firewall or an \
                 authenticating proxy guards the port",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section as it would sit in a configuration file.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        metrics: Option<MetricsConfig>,
    }

    fn parse(text: &str) -> Result<Option<MetricsConfig>, String> {
        toml::from_str::<File>(text).map(|f| f.metrics).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_off_and_an_empty_section_serves_on_the_default_loopback_port() {
        assert_eq!(parse("").unwrap(), None);
        let on = parse("[metrics]").unwrap().unwrap();
        assert_eq!(on.listen, MetricsConfig::DEFAULT_LISTEN);
        assert_eq!(on, MetricsConfig::default());
        assert!(on.is_loopback());
        on.validate().unwrap();
    }

    #[test]
    fn loopback_addresses_pass() {
        for listen in ["127.0.0.1:9465", "127.0.0.2:19465", "[::1]:9465", "[::ffff:127.0.0.1]:9465"] {
            let config = parse(&format!("[metrics]\nlisten = \"{listen}\"")).unwrap().unwrap();
            assert!(config.is_loopback(), "{listen}");
            config.validate().unwrap();
        }
    }

    #[test]
    fn other_addresses_are_refused_unless_allowed_and_the_error_says_why() {
        for listen in ["0.0.0.0:9465", "192.0.2.7:9465", "[::]:9465", "[2001:db8::1]:9465"] {
            let config = parse(&format!("[metrics]\nlisten = \"{listen}\"")).unwrap().unwrap();
            let error = config.validate().unwrap_err();
            assert!(error.contains("no authentication"), "{error}");
            assert!(error.contains("allow-non-loopback"), "{error}");
            assert!(error.contains(listen), "{error}");
            let allowed =
                parse(&format!("[metrics]\nlisten = \"{listen}\"\nallow-non-loopback = true")).unwrap().unwrap();
            allowed.validate().unwrap();
        }
    }

    #[test]
    fn port_zero_bad_addresses_and_unknown_keys_are_errors() {
        let zero = parse("[metrics]\nlisten = \"127.0.0.1:0\"").unwrap().unwrap();
        assert!(zero.validate().unwrap_err().contains("port 0"));
        assert!(parse("[metrics]\nlisten = \"localhost:9465\"").is_err());
        assert!(parse("[metrics]\nlisten = \"127.0.0.1\"").is_err());
        assert!(parse("[metrics]\nport = 9465").unwrap_err().contains("unknown field"));
    }
}
