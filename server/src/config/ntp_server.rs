//! `[ntp-server]`: serving the published bound to NTP clients (RFC 5905
//! server mode, [`crate::ntp_server`]). Off unless the section is present.
//!
//! ```toml
//! [ntp-server]
//! listen = ["0.0.0.0:123", "[::]:123"]
//!
//! [ntp-server.rate-limit]      # per client address (IPv6: per /64); these are the defaults
//! interval-ms = 62.5           # average spacing of the replies one client gets
//! burst = 8                    # replies it may take back to back
//! kod-one-in = 4               # of the requests over the limit, one in 4 gets a RATE kiss-o'-death
//! clients = 65536              # clients remembered per listen address (fixed memory)
//! ```
//!
//! Anyone who can reach the port can send to it: the limits are per
//! client address, the table of clients has a fixed size, and no reply is
//! ever larger than its request (SPEC.md §2.7).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[ntp-server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NtpServerConfig {
    /// UDP addresses to serve on (`"0.0.0.0:123"`, `"[::]:123"`); an IPv6
    /// address serves IPv6 only, so both families may listen on one port.
    pub listen: Vec<SocketAddr>,
    /// The per-client rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

/// `[ntp-server.rate-limit]`: a token bucket per client address, as
/// chrony's `ratelimit` (`interval`, `burst`, `leak`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RateLimitConfig {
    /// Limit at all (default true). Off, every well-formed request is answered.
    pub enabled: bool,
    /// Average spacing of the replies one client gets (ms).
    pub interval_ms: f64,
    /// Replies one client may take back to back after a quiet spell.
    pub burst: u32,
    /// Of the requests over the limit, one in this many (at random) is
    /// answered with a `RATE` kiss-o'-death, the rest dropped; 0: drop all.
    pub kod_one_in: u32,
    /// Clients remembered per listen address (the table's fixed size,
    /// rounded up to a power of two); the least recently heard go first.
    pub clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 62.5, burst: 8, kod_one_in: 4, clients: 65_536 }
    }
}

/// The shortest `interval-ms`: 1 µs (chrony's is 2⁻¹⁹ s).
const MIN_INTERVAL_MS: f64 = 0.001;
/// The longest `interval-ms`: 4096 s (chrony's 2¹² s).
const MAX_INTERVAL_MS: f64 = 4_096_000.0;
/// The largest `burst` (chrony's).
const MAX_BURST: u32 = 255;
/// The largest `kod-one-in`.
const MAX_KOD_ONE_IN: u32 = 1_024;
/// The smallest and largest client table.
const CLIENTS_RANGE: std::ops::RangeInclusive<usize> = 64..=1_048_576;

/// An `[ntp-server]` section that cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NtpServerConfigError {
    /// `listen = []`.
    #[error("ntp-server.listen is empty: give at least one address such as \"0.0.0.0:123\", or remove [ntp-server]")]
    NoListen,
    /// An address given twice.
    #[error("ntp-server.listen names {0} twice")]
    DuplicateListen(SocketAddr),
    /// Port 0 would bind a random port no client knows.
    #[error("ntp-server.listen {0}: port 0 picks a random port no client knows; use 123 or another fixed port")]
    PortZero(SocketAddr),
    /// `interval-ms` outside its range (or not a number).
    #[error(
        "ntp-server.rate-limit.interval-ms = {0} must be within {MIN_INTERVAL_MS} … {MAX_INTERVAL_MS} \
         (or set enabled = false)"
    )]
    Interval(f64),
    /// `burst` outside 1 … 255.
    #[error("ntp-server.rate-limit.burst = {0} must be within 1 … {MAX_BURST}")]
    Burst(u32),
    /// `kod-one-in` of 1 (a kiss-o'-death for every request over the limit) or too large.
    #[error(
        "ntp-server.rate-limit.kod-one-in = {0} must be 0 (never) or within 2 … {MAX_KOD_ONE_IN}: \
         1 would answer every request over the limit, which is no limit on what goes out"
    )]
    KodOneIn(u32),
    /// `clients` outside its range.
    #[error("ntp-server.rate-limit.clients = {0} must be within 64 … 1048576")]
    Clients(usize),
}

impl NtpServerConfig {
    /// Checks every value (`tsod check-config`).
    pub fn validate(&self) -> Result<(), NtpServerConfigError> {
        if self.listen.is_empty() {
            return Err(NtpServerConfigError::NoListen);
        }
        let mut seen = HashSet::new();
        for address in &self.listen {
            if address.port() == 0 {
                return Err(NtpServerConfigError::PortZero(*address));
            }
            if !seen.insert(address) {
                return Err(NtpServerConfigError::DuplicateListen(*address));
            }
        }
        self.rate_limit.validate()
    }
}

impl RateLimitConfig {
    fn validate(&self) -> Result<(), NtpServerConfigError> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(NtpServerConfigError::Interval(self.interval_ms));
        }
        if !(1..=MAX_BURST).contains(&self.burst) {
            return Err(NtpServerConfigError::Burst(self.burst));
        }
        if self.kod_one_in == 1 || self.kod_one_in > MAX_KOD_ONE_IN {
            return Err(NtpServerConfigError::KodOneIn(self.kod_one_in));
        }
        if !CLIENTS_RANGE.contains(&self.clients) {
            return Err(NtpServerConfigError::Clients(self.clients));
        }
        Ok(())
    }

    /// `interval-ms` as a duration (nanosecond precision).
    pub fn interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.interval_ms / 1_000.0).unwrap_or(Duration::from_millis(62))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn parse(text: &str) -> Result<NtpServerConfig, String> {
        let config: NtpServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn listen_alone_gets_the_default_limits() {
        let c = parse("listen = [\"0.0.0.0:123\", \"[::]:123\"]").unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.rate_limit, RateLimitConfig::default());
        assert_eq!(c.rate_limit.interval(), Duration::from_micros(62_500));
    }

    #[test]
    fn every_impossible_value_is_named() {
        for (text, what) in [
            ("listen = []", "listen is empty"),
            ("listen = [\"127.0.0.1:0\"]", "port 0"),
            ("listen = [\"127.0.0.1:123\", \"127.0.0.1:123\"]", "twice"),
            ("listen = [\"ntp.example:123\"]", "invalid socket address"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { interval-ms = 0 }", "interval-ms = 0"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { interval-ms = nan }", "interval-ms = NaN"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { burst = 0 }", "burst = 0"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { burst = 256 }", "burst = 256"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { kod-one-in = 1 }", "kod-one-in = 1"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { clients = 10 }", "clients = 10"),
            ("listen = [\"127.0.0.1:123\"]\nrate-limit = { burts = 3 }", "unknown field"),
            ("listen = [\"127.0.0.1:123\"]\nport = 123", "unknown field"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(what), "{text}: {err}");
        }
        let off = parse("listen = [\"127.0.0.1:123\"]\nrate-limit = { enabled = false, kod-one-in = 0 }").unwrap();
        assert!(!off.rate_limit.enabled);
    }
}
