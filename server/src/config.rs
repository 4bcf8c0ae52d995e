//! The daemon's configuration file (TOML), and its validation.
//!
//! Keys are kebab-case, unknown keys are errors (`deny_unknown_fields`),
//! sources are a tagged list (`[[source]] kind = "ntp" | "gpsd" | "kernel"`),
//! and every unit is in the key's name (`-ms`, `-ppm`). Parsing errors point
//! at the line and column (from the `toml` crate); validation errors name
//! the source and key. `tsod check-config FILE` runs both.
//!
//! Every source must say which timescale it serves (`timescale = "utc"` or
//! `"utc-smear-24h"`, no default), so mixing smeared and unsmeared sources is
//! impossible by configuration (SPEC.md §2).

pub use crate::timescale::SourceTimescale;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tsod_proto::shm::SHM_DEFAULT_PATH;
use tsod_proto::{Offset, Ppb};

use crate::clock::{ScriptedStep, StepTrigger};
use crate::frequency::FrequencyConfig;

mod clients;
mod clockbound;
mod metrics;
mod ntp_server;
mod site;

pub use clients::{ClientsConfig, ClientsConfigError};
pub use clockbound::ClockBoundConfig;
pub use metrics::MetricsConfig;
pub use ntp_server::{NtpServerConfig, NtpServerConfigError, RateLimitConfig};
pub use site::{PeerConfig, SiteConfig, TsoConfig};

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// How the bound is modelled and selected.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Where it is published.
    #[serde(default)]
    pub publish: PublishConfig,
    /// The local time sources (at least one, unless peers are configured).
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
    /// This daemon as a site of a cluster (optional).
    #[serde(default)]
    pub site: Option<SiteConfig>,
    /// The other sites, used as sources.
    #[serde(rename = "peer", default)]
    pub peers: Vec<PeerConfig>,
    /// Remote clients (with `[site]`).
    #[serde(default)]
    pub clients: ClientsConfig,
    /// The replicated TSO (with `[site]`).
    #[serde(default)]
    pub tso: TsoConfig,
    /// Serving NTP clients (`[ntp-server]`; absent: off).
    #[serde(default)]
    pub ntp_server: Option<NtpServerConfig>,
    /// The OpenMetrics/Prometheus endpoint (off without the section).
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The ClockBound-compatible segment (`[clockbound]`; absent: off).
    #[serde(default)]
    pub clockbound: Option<ClockBoundConfig>,
    /// Test-only settings; never set in production.
    #[serde(default)]
    pub testing: TestingConfig,
}

/// One member of an expanded `pool-size` source: member `slot` (0-based)
/// of `slots`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolMember {
    /// This member.
    pub slot: usize,
    /// How many members the pool has.
    pub slots: usize,
}

/// Most members one pool source may have.
pub const MAX_POOL_SIZE: u8 = 16;

/// Each `pool-size = N` source as its N members (named `NAME-1` …), the
/// other sources as they are.
fn expand_pools(sources: Vec<SourceConfig>) -> Result<Vec<SourceConfig>, String> {
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        match source {
            SourceConfig::Ntp {
                name, address, timescale, poll_interval_ms, interleaved, pool_size: Some(n), ..
            } => {
                if !(1..=MAX_POOL_SIZE).contains(&n) {
                    return Err(format!("source {name}: pool-size = {n} must be within 1 … {MAX_POOL_SIZE}"));
                }
                let slots = usize::from(n);
                for slot in 0..slots {
                    out.push(SourceConfig::Ntp {
                        name: format!("{name}-{}", slot + 1),
                        address: address.clone(),
                        timescale,
                        poll_interval_ms,
                        interleaved,
                        pool_size: Some(n),
                        pool_member: Some(PoolMember { slot, slots }),
                    });
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `[clock]`: the bound model.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ClockConfig {
    /// Bound on the reader clock's rate error before it is measured (ppm).
    pub max_drift_ppm: u32,
    /// Bound on the reader clock's rate wander around its measured average (ppm).
    pub wander_ppm: u32,
    /// Sources that may be wrong at once (default ⌊(n−1)/2⌋).
    pub max_faulty: Option<usize>,
    /// Agreeing sources needed for `synchronized` rather than `degraded`
    /// (default: all configured sources).
    pub min_agreeing: Option<usize>,
    /// Longest time between two publications (ms).
    pub update_interval_ms: u64,
    /// How long past its reference a published bound may be used (ms).
    pub horizon_ms: u64,
    /// A sample older than this is no longer used (ms).
    pub max_sample_age_ms: u64,
    /// How long the last bound is carried forward with no usable source (ms).
    pub holdover_ms: u64,
    /// The hypervisor's VMClock device, watched for migrations and snapshot
    /// restores when present (default `/dev/vmclock0`; `""` to not watch).
    #[serde(deserialize_with = "optional_path")]
    pub vmclock: Option<PathBuf>,
    /// The leap-second schedule (IERS `leap-seconds.list` as tzdata ships
    /// it; default `/usr/share/zoneinfo/leap-seconds.list`; `""`: none, so
    /// every month end is a possible leap of either sign).
    #[serde(deserialize_with = "optional_path")]
    pub leap_seconds_list: Option<PathBuf>,
}

/// A path where `""` means none.
fn optional_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s = String::deserialize(d)?;
    Ok((!s.is_empty()).then(|| PathBuf::from(s)))
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            max_drift_ppm: 100,
            wander_ppm: 5,
            max_faulty: None,
            min_agreeing: None,
            update_interval_ms: 100,
            horizon_ms: 1_000,
            max_sample_age_ms: 64_000,
            holdover_ms: 3_600_000,
            vmclock: Some(PathBuf::from(tsod_shm::VmClock::DEFAULT_PATH)),
            leap_seconds_list: Some(PathBuf::from(crate::leap_list::SYSTEM_PATH)),
        }
    }
}

/// `[publish]`: the shared-memory segment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PublishConfig {
    /// Path of the segment (SPEC.md §5.1).
    pub path: PathBuf,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self { path: PathBuf::from(SHM_DEFAULT_PATH) }
    }
}

/// `[[source]]`: one time source.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// An NTP server.
    Ntp {
        /// Unique name, shown in status.
        name: String,
        /// `host:port` of the server.
        address: String,
        /// What the server serves.
        timescale: SourceTimescale,
        /// Time between polls (ms), 15.625 (1/64 s, for a server that
        /// allows it) … 1 024 000.
        #[serde(default = "default_poll_ms", rename = "poll-interval-ms")]
        poll_interval_ms: f64,
        /// Ask for interleaved replies (RFC 9769), which report when the
        /// server's reply really left: only for a server that takes that
        /// timestamp in the kernel or the NIC, such as chrony on Linux
        /// (SPEC.md §2.2). Default false.
        #[serde(default)]
        interleaved: bool,
        /// The address names a pool (several servers behind one name, such
        /// as `2.debian.pool.ntp.org`): this many of its addresses are
        /// polled at once, as the sources `NAME-1` … `NAME-N`, each
        /// replaced by another address of the pool when it stays
        /// unreachable or a falseticker (1 … 16).
        #[serde(default, rename = "pool-size")]
        pool_size: Option<u8>,
        /// Set when a pool is expanded: this source is one member of it.
        #[serde(skip)]
        pool_member: Option<PoolMember>,
    },
    /// A GPS receiver through gpsd.
    Gpsd {
        /// Unique name, shown in status.
        name: String,
        /// `host:port` of gpsd (normally 127.0.0.1:2947).
        address: String,
        /// What the receiver's time is converted to (gpsd reports UTC).
        timescale: SourceTimescale,
        /// Error bound of PPS-disciplined time (µs).
        #[serde(default = "default_pps_error_us", rename = "pps-error-us")]
        pps_error_us: u64,
        /// Error bound of NMEA-only time, without PPS (µs).
        #[serde(default = "default_nmea_error_us", rename = "nmea-error-us")]
        nmea_error_us: u64,
    },
    /// The kernel's own estimate (`adjtimex` `maxerror`).
    Kernel {
        /// Unique name, shown in status.
        name: String,
        /// What the system clock serves (its discipline's timescale).
        timescale: SourceTimescale,
        /// Time between readings (ms), 15.625 … 1 024 000.
        #[serde(default = "default_poll_ms", rename = "poll-interval-ms")]
        poll_interval_ms: f64,
    },
}

/// The `pps-error-us` below which a gpsd without kernel PPS is warned
/// about ([`Config::pps_warnings`]): 1 ms.
pub const PLAIN_PPS_ERROR_US: u64 = 1_000;

/// Whether this host has a kernel PPS device (`/dev/pps*`).
pub fn kernel_pps_present() -> bool {
    std::fs::read_dir("/dev")
        .map(|dir| dir.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("pps"))))
        .unwrap_or(false)
}

/// Whether `address` (`host:port`) names this host's loopback.
fn is_loopback(address: &str) -> bool {
    address
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .is_some_and(|host| host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

fn default_poll_ms() -> f64 {
    1_000.0
}

/// A checked `poll-interval-ms` as a duration (nanosecond precision).
pub fn poll_interval(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1_000.0).unwrap_or(Duration::from_secs(1))
}

fn default_pps_error_us() -> u64 {
    1
}

fn default_nmea_error_us() -> u64 {
    500_000
}

impl SourceConfig {
    /// The source's configured name.
    pub fn name(&self) -> &str {
        match self {
            Self::Ntp { name, .. } | Self::Gpsd { name, .. } | Self::Kernel { name, .. } => name,
        }
    }

    /// The timescale the source serves.
    pub fn timescale(&self) -> SourceTimescale {
        match self {
            Self::Ntp { timescale, .. } | Self::Gpsd { timescale, .. } | Self::Kernel { timescale, .. } => *timescale,
        }
    }
}

/// `[testing]`: only for tests and the testbed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestingConfig {
    /// Run on a simulated wrong clock instead of the host's.
    pub simulated_clock: Option<SimulatedClockConfig>,
}

/// `[testing.simulated-clock]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SimulatedClockConfig {
    /// Offset of the simulated realtime from the host's (ns).
    pub offset_ns: i64,
    /// Frequency error of the simulated realtime (ppb, positive = fast),
    /// counted from the clock's first reading.
    pub frequency_ppb: i64,
    /// The host realtime (ns since the Unix epoch) that every step's
    /// `after-ms` counts from; without it, `after-ms` counts from the
    /// clock's first reading. With it, a restarted daemon given the same
    /// configuration sees the same steps at the same true instants (the
    /// testbed's scenarios).
    pub origin_unix_ns: Option<u64>,
    /// Steps and slews of the simulated realtime.
    pub steps: Vec<StepConfig>,
}

/// One scripted step or slew: `{ after-ms, by-ns }` steps by `by-ns`
/// `after-ms` after the origin; `over-ms` > 0 makes it a slew that adds
/// `by-ns` evenly over that long (its rate, `by-ns / over-ms`, below 1 in
/// size: realtime never stops or runs back); `{ at-realtime-ns, by-ns }`
/// steps once the simulated realtime itself reaches that instant, as the
/// kernel applies a leap second at its own 00:00:00.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StepFile")]
pub struct StepConfig {
    /// When, after the origin (ms); `None` with `at_realtime_ns`.
    pub after_ms: Option<u64>,
    /// When the simulated realtime reaches this (ns since the Unix epoch).
    pub at_realtime_ns: Option<u64>,
    /// By how much in all (ns, may be negative).
    pub by_ns: i64,
    /// Zero for a step; else the slew's length (ms).
    pub over_ms: u64,
}

/// A step as written, checked into a [`StepConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StepFile {
    after_ms: Option<u64>,
    at_realtime_ns: Option<u64>,
    by_ns: i64,
    #[serde(default)]
    over_ms: u64,
}

impl TryFrom<StepFile> for StepConfig {
    type Error = String;

    fn try_from(f: StepFile) -> Result<Self, String> {
        match (f.after_ms, f.at_realtime_ns, f.over_ms) {
            (Some(_), Some(_), _) | (None, None, _) => {
                return Err("a step needs exactly one of after-ms and at-realtime-ns".to_owned());
            }
            (None, Some(_), 1..) => return Err("at-realtime-ns is for steps only (no over-ms)".to_owned()),
            (Some(_), None, 1..) if u128::from(f.by_ns.unsigned_abs()) >= u128::from(f.over_ms) * 1_000_000 => {
                return Err(format!(
                    "a slew of by-ns = {} over-ms = {} runs realtime at a rate of 1 or more the other way \
                     (|by-ns| must be below over-ms x 10^6)",
                    f.by_ns, f.over_ms
                ));
            }
            _ => {}
        }
        Ok(Self { after_ms: f.after_ms, at_realtime_ns: f.at_realtime_ns, by_ns: f.by_ns, over_ms: f.over_ms })
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a wrong type (the message has line and column).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        source: Box<toml::de::Error>,
    },
    /// Parsed, but a value is impossible.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which key and why.
        what: String,
    },
    /// `[ntp-server]` cannot run.
    #[error("{path}: {what}")]
    NtpServer {
        /// The file.
        path: PathBuf,
        /// Which key and why (printed here, not as a cause: once is enough).
        what: NtpServerConfigError,
    },
    /// `[clients]` cannot run.
    #[error("{path}: {what}")]
    Clients {
        /// The file.
        path: PathBuf,
        /// Which key and why.
        what: ClientsConfigError,
    },
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text` (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(source) })?;
        config.sources = expand_pools(std::mem::take(&mut config.sources))
            .map_err(|what| ConfigError::Invalid { path: path.to_path_buf(), what })?;
        config.validate().map_err(|what| ConfigError::Invalid { path: path.to_path_buf(), what })?;
        config.clients.validate().map_err(|what| ConfigError::Clients { path: path.to_path_buf(), what })?;
        if let Some(ntp_server) = &config.ntp_server {
            ntp_server.validate().map_err(|what| ConfigError::NtpServer { path: path.to_path_buf(), what })?;
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let c = &self.clock;
        if self.sources.is_empty() && self.peers.is_empty() {
            return Err("no [[source]] and no [[peer]]: configure at least one time source".into());
        }
        if !(1..=1_000).contains(&c.max_drift_ppm) {
            return Err(format!("clock.max-drift-ppm = {} must be within 1 … 1000", c.max_drift_ppm));
        }
        if c.wander_ppm > 1_000 {
            return Err(format!("clock.wander-ppm = {} must be at most 1000", c.wander_ppm));
        }
        if !(10..=1_000).contains(&c.update_interval_ms) {
            return Err(format!("clock.update-interval-ms = {} must be within 10 … 1000", c.update_interval_ms));
        }
        if c.horizon_ms < c.update_interval_ms.saturating_mul(2) || c.horizon_ms > 3_600_000 {
            return Err(format!(
                "clock.horizon-ms = {} must be at least twice update-interval-ms ({}) and at most 3600000",
                c.horizon_ms, c.update_interval_ms
            ));
        }
        let n = self.source_count();
        if let Some(f) = c.max_faulty {
            if f >= n {
                return Err(format!("clock.max-faulty = {f} must be below the number of sources and peers ({n})"));
            }
            if f == 0 && n >= 2 {
                return Err(format!(
                    "clock.max-faulty = 0 with {n} sources and peers would intersect their intervals, letting any \
                     one of them narrow the bound below what the others back; use at least 1 (the default)"
                ));
            }
        }
        if let Some(m) = c.min_agreeing {
            if m == 0 || m > n {
                return Err(format!(
                    "clock.min-agreeing = {m} must be within 1 … {n} (the number of sources and peers)"
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let name = s.name();
            let at = format!("source #{} ({name:?})", i.saturating_add(1));
            if name.is_empty() || name.len() > tsod_proto::wire::MAX_NAME_LEN || name.chars().any(char::is_control) {
                return Err(format!("{at}: name must be 1 … 63 bytes without control characters"));
            }
            if !names.insert(name) {
                return Err(format!("{at}: name is used by another source"));
            }
            match s {
                SourceConfig::Ntp { address, poll_interval_ms, .. } => {
                    check_address(address).map_err(|e| format!("{at}: address {address:?}: {e}"))?;
                    check_poll(*poll_interval_ms).map_err(|e| format!("{at}: {e}"))?;
                }
                SourceConfig::Gpsd { address, pps_error_us, nmea_error_us, timescale, .. } => {
                    check_address(address).map_err(|e| format!("{at}: address {address:?}: {e}"))?;
                    if *timescale != SourceTimescale::Utc {
                        return Err(format!(
                            "{at}: gpsd serves UTC derived from GPS time (no receiver smears leap seconds): \
                             timescale must be \"utc\""
                        ));
                    }
                    if *pps_error_us == 0 || *nmea_error_us < *pps_error_us {
                        return Err(format!("{at}: need 0 < pps-error-us <= nmea-error-us"));
                    }
                }
                SourceConfig::Kernel { poll_interval_ms, .. } => {
                    check_poll(*poll_interval_ms).map_err(|e| format!("{at}: {e}"))?;
                }
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.validate()?;
        }
        if let Some(clockbound) = &self.clockbound {
            clockbound.validate(&self.publish.path)?;
        }
        self.tso.validate()?;
        site::validate(self.site.as_ref(), &self.peers, &names)
    }

    /// Local sources plus peers: what selection counts.
    pub fn source_count(&self) -> usize {
        self.sources.len().saturating_add(self.peers.len())
    }

    /// The sources that may lie at once: `clock.max-faulty`, or the default
    /// of [`crate::selection::default_max_faulty`].
    pub fn max_faulty(&self) -> usize {
        self.clock.max_faulty.unwrap_or_else(|| crate::selection::default_max_faulty(self.source_count()))
    }

    /// What this configuration cannot do against lying sources (SPEC.md
    /// §2.1, the voting rule): `tsod check-config` prints these, the daemon
    /// logs them at start. Empty when one liar is out-voted.
    pub fn voting_warnings(&self) -> Vec<String> {
        let n = self.source_count();
        let f = self.max_faulty();
        let mut out = Vec::new();
        match n {
            0 => {}
            1 => out.push(
                "one source: it is trusted alone, so a lying or broken source is published as the bound; \
                 configure at least three sources and peers to out-vote one liar"
                    .to_owned(),
            ),
            2 => out.push(
                "two sources and peers cannot out-vote one liar: the bound is the hull of both (a liar widens it \
                 but is never believed alone), and with one of them silent the site holds over, then gives up; \
                 configure at least three"
                    .to_owned(),
            ),
            _ if n.saturating_sub(f).saturating_mul(2) <= n => out.push(format!(
                "clock.max-faulty = {f} of {n}: {m} agreeing sources are no majority, so two camps can each \
                 carry the vote and the bound spans both",
                m = n.saturating_sub(f)
            )),
            _ => {}
        }
        out
    }

    /// Warnings about `gpsd` sources whose `pps-error-us` is too small for
    /// how gpsd can timestamp PPS on this host: without a kernel PPS
    /// device (`kernel_pps` false; Linux's RFC 2783 API is `/dev/ppsN`),
    /// a gpsd on this host stamps each edge in user space after its
    /// thread wakes (plain serial PPS), and that wake-up, tens of µs to
    /// ms, is error the bound must carry. Sites on a simulated clock (the
    /// testbed's simulated receivers stamp the edge exactly) get none.
    pub fn pps_warnings(&self, kernel_pps: bool) -> Vec<String> {
        if kernel_pps || self.testing.simulated_clock.is_some() {
            return Vec::new();
        }
        self.sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::Gpsd { name, address, pps_error_us, .. }
                    if *pps_error_us < PLAIN_PPS_ERROR_US && is_loopback(address) =>
                {
                    Some(format!(
                        "gpsd source {name}: this host has no kernel PPS device (/dev/ppsN), so gpsd can only \
                         timestamp PPS in user space after its thread wakes; pps-error-us = {pps_error_us} does not \
                         cover that wake-up: give gpsd a kernel PPS device or raise pps-error-us to at least \
                         {PLAIN_PPS_ERROR_US}"
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// The frequency measurement's parameters.
    pub fn frequency(&self) -> FrequencyConfig {
        FrequencyConfig {
            max_drift: Ppb::from_ppm(i32::try_from(self.clock.max_drift_ppm).unwrap_or(1_000)),
            wander: Ppb::from_ppm(i32::try_from(self.clock.wander_ppm).unwrap_or(1_000)),
            ..FrequencyConfig::default()
        }
    }
}

impl ClockConfig {
    /// `update-interval-ms` as a duration.
    pub fn update_interval(&self) -> Duration {
        Duration::from_millis(self.update_interval_ms)
    }

    /// `horizon-ms` as a duration.
    pub fn horizon(&self) -> Duration {
        Duration::from_millis(self.horizon_ms)
    }

    /// `max-sample-age-ms` as a duration.
    pub fn max_sample_age(&self) -> Duration {
        Duration::from_millis(self.max_sample_age_ms)
    }

    /// `holdover-ms` as a duration.
    pub fn holdover(&self) -> Duration {
        Duration::from_millis(self.holdover_ms)
    }
}

impl SimulatedClockConfig {
    /// The scripted steps and slews, timed from `origin-unix-ns` on the
    /// host's realtime when it is given.
    pub fn steps(&self) -> Vec<ScriptedStep> {
        self.steps
            .iter()
            .map(|s| {
                let after = Duration::from_millis(s.after_ms.unwrap_or(0));
                let when = match (s.at_realtime_ns, self.origin_unix_ns) {
                    (Some(at), _) => StepTrigger::AtRealtime(tsod_proto::Timestamp::from_nanos(at)),
                    (None, Some(origin)) => StepTrigger::AtHostRealtime(tsod_proto::Timestamp::from_nanos(
                        origin.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)),
                    )),
                    (None, None) => StepTrigger::After(after),
                };
                ScriptedStep { when, by: Offset::from_nanos(s.by_ns), over: Duration::from_millis(s.over_ms) }
            })
            .collect()
    }
}

fn check_address(address: &str) -> Result<(), &'static str> {
    let (host, port) = address.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() {
        return Err("empty host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("port must be 1 … 65535"),
    }
}

fn check_poll(ms: f64) -> Result<(), String> {
    if (15.625..=1_024_000.0).contains(&ms) {
        Ok(())
    } else {
        Err(format!("poll-interval-ms = {ms} must be within 15.625 (1/64 s) … 1024000"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const MINIMAL: &str = r#"
[[source]]
kind = "ntp"
name = "local"
address = "127.0.0.1:123"
timescale = "utc"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.clock, ClockConfig::default());
        assert_eq!(c.publish.path, PathBuf::from("/run/tsod/segment"));
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].timescale(), SourceTimescale::Utc);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line_number() {
        // Inside a [[source]] table the span is the table's header (serde
        // buffers tagged enums); the message still names the key.
        let err = parse(&format!("{MINIMAL}poll-intervall-ms = 5\n")).unwrap_err().to_string();
        assert!(err.contains("poll-intervall-ms") && err.contains("line 2"), "{err}");
        let err = parse("[clock]\nmax-drift = 3\n").unwrap_err().to_string();
        assert!(err.contains("max-drift") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn timescale_is_required_for_every_source() {
        let err = parse("[[source]]\nkind = \"kernel\"\nname = \"k\"\n").unwrap_err().to_string();
        assert!(err.contains("timescale"), "{err}");
        let err = parse("[[source]]\nkind = \"kernel\"\nname = \"k\"\ntimescale = \"tai\"\n").unwrap_err().to_string();
        assert!(err.contains("tai"), "{err}");
    }

    #[test]
    fn a_gpsd_without_kernel_pps_is_warned_about() {
        let gpsd = |pps: &str| {
            format!(
                "[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"127.0.0.1:2947\"\ntimescale = \"utc\"\n{pps}"
            )
        };
        let c = parse(&gpsd("")).unwrap();
        let w = c.pps_warnings(false);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("gpsd source gps") && w[0].contains("pps-error-us = 1 "), "{w:?}");
        assert_eq!(c.pps_warnings(true), Vec::<String>::new(), "a kernel PPS device: gpsd can use it");
        assert_eq!(parse(&gpsd("pps-error-us = 1000\n")).unwrap().pps_warnings(false), Vec::<String>::new());
        let remote = gpsd("").replace("127.0.0.1", "192.0.2.7");
        assert_eq!(
            parse(&remote).unwrap().pps_warnings(false),
            Vec::<String>::new(),
            "another host's devices are unknown"
        );
        assert!(is_loopback("[::1]:2947") && is_loopback("localhost:2947") && !is_loopback("gps.example:2947"));
    }

    #[test]
    fn impossible_values_are_named() {
        let cases = [
            ("[clock]\nmax-drift-ppm = 0\n", "max-drift-ppm"),
            ("[clock]\nhorizon-ms = 150\n", "horizon-ms"),
            ("[clock]\nmax-faulty = 1\n", "max-faulty"),
            ("[clock]\nmin-agreeing = 2\n", "min-agreeing"),
        ];
        for (prefix, key) in cases {
            let err = parse(&format!("{prefix}{MINIMAL}")).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let dup = format!("{MINIMAL}{MINIMAL}");
        assert!(parse(&dup).unwrap_err().to_string().contains("used by another source"));
        let bad_addr = MINIMAL.replace("127.0.0.1:123", "127.0.0.1");
        assert!(parse(&bad_addr).unwrap_err().to_string().contains("host:port"));
        let bad_poll = format!("{MINIMAL}poll-interval-ms = 10\n");
        assert!(parse(&bad_poll).unwrap_err().to_string().contains("poll-interval-ms"));
        for bad in ["15", "nan", "inf", "-1000"] {
            let text = format!("{MINIMAL}poll-interval-ms = {bad}\n");
            assert!(parse(&text).unwrap_err().to_string().contains("poll-interval-ms"), "{bad}");
        }
        let interleaved = parse(&format!("{MINIMAL}interleaved = true\n")).unwrap();
        assert!(matches!(interleaved.sources.first(), Some(SourceConfig::Ntp { interleaved: true, .. })));
        assert!(matches!(parse(MINIMAL).unwrap().sources.first(), Some(SourceConfig::Ntp { interleaved: false, .. })));
        assert!(parse(&format!("{MINIMAL}interleaved = \"yes\"\n")).is_err());
    }

    #[test]
    fn a_pool_source_is_its_members() {
        let pool = parse(&format!("{MINIMAL}pool-size = 3\n")).unwrap();
        let members: Vec<(&str, Option<PoolMember>)> = pool
            .sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::Ntp { name, pool_member, .. } => Some((name.as_str(), *pool_member)),
                _ => None,
            })
            .collect();
        assert_eq!(members.len(), 3);
        assert_eq!(members[2].1, Some(PoolMember { slot: 2, slots: 3 }));
        assert!(members[0].0.ends_with("-1") && members[2].0.ends_with("-3"));
        assert!(parse(&format!("{MINIMAL}pool-size = 0\n")).is_err());
        assert!(parse(&format!("{MINIMAL}pool-size = 17\n")).is_err());
        assert!(parse(&format!("{MINIMAL}pool_member = 1\n")).is_err());
        let fastest = parse(&format!("{MINIMAL}poll-interval-ms = 15.625\n")).unwrap();
        assert!(matches!(fastest.sources.first(), Some(SourceConfig::Ntp { poll_interval_ms, .. })
            if poll_interval(*poll_interval_ms) == Duration::from_micros(15_625)));
        assert!(parse("").unwrap_err().to_string().contains("source"));
    }

    fn ntp_sources(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "[[source]]\nkind = \"ntp\"\nname = \"s{i}\"\naddress = \"127.0.0.1:{}\"\ntimescale = \"utc\"\n",
                    123 + i
                )
            })
            .collect()
    }

    /// Issue 15, path 4: no configuration lets one source narrow the bound
    /// below what the others back.
    #[test]
    fn max_faulty_zero_is_refused_with_two_or_more_sources() {
        let err = parse(&format!("[clock]\nmax-faulty = 0\n{}", ntp_sources(2))).unwrap_err().to_string();
        assert!(err.contains("max-faulty = 0") && err.contains("narrow"), "{err}");
        let one = parse(&format!("[clock]\nmax-faulty = 0\n{}", ntp_sources(1))).unwrap();
        assert_eq!(one.max_faulty(), 0);
        assert_eq!(parse(&ntp_sources(2)).unwrap().max_faulty(), 1, "two sources: the hull");
    }

    /// Issue 15, path 1: a gpsd source declared smeared would pass GPS's
    /// UTC off as service time, up to 0.5 s off around a leap.
    #[test]
    fn a_smeared_gpsd_source_is_refused() {
        let text =
            "[[source]]\nkind = \"gpsd\"\nname = \"g\"\naddress = \"127.0.0.1:2947\"\ntimescale = \"utc-smear-24h\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("gpsd serves UTC"), "{err}");
        assert!(parse(&text.replace("utc-smear-24h", "utc")).is_ok());
    }

    #[test]
    fn configurations_that_cannot_outvote_one_liar_are_warned_about() {
        for n in [1, 2] {
            let w = parse(&ntp_sources(n)).unwrap().voting_warnings();
            assert_eq!(w.len(), 1, "{n}: {w:?}");
            assert!(w[0].contains("liar"), "{w:?}");
        }
        for n in [3, 4, 5] {
            assert_eq!(parse(&ntp_sources(n)).unwrap().voting_warnings(), Vec::<String>::new(), "{n}");
        }
        let w = parse(&format!("[clock]\nmax-faulty = 2\n{}", ntp_sources(4))).unwrap().voting_warnings();
        assert!(w.len() == 1 && w[0].contains("no majority"), "{w:?}");
    }

    #[test]
    fn the_ntp_server_is_off_unless_configured_and_its_errors_are_typed() {
        assert_eq!(parse(MINIMAL).unwrap().ntp_server, None);
        let on = parse(&format!("{MINIMAL}\n[ntp-server]\nlisten = [\"0.0.0.0:123\", \"[::]:123\"]\n")).unwrap();
        let server = on.ntp_server.unwrap();
        assert_eq!(server.listen.len(), 2);
        assert_eq!(server.rate_limit, RateLimitConfig::default());
        let err = parse(&format!("{MINIMAL}\n[ntp-server]\nlisten = []\n")).unwrap_err();
        assert!(matches!(err, ConfigError::NtpServer { what: NtpServerConfigError::NoListen, .. }), "{err}");
        assert!(err.to_string().contains("test.toml") && err.to_string().contains("listen is empty"), "{err}");
        let text =
            format!("{MINIMAL}\n[ntp-server]\nlisten = [\"127.0.0.1:123\"]\n[ntp-server.rate-limit]\nburst = 0\n");
        assert!(matches!(parse(&text), Err(ConfigError::NtpServer { what: NtpServerConfigError::Burst(0), .. })));
    }

    #[test]
    fn all_source_kinds_and_testing_section_parse() {
        let text = r#"
[clock]
max-faulty = 1
min-agreeing = 2

[[source]]
kind = "ntp"
name = "a"
address = "ntp.example:123"
timescale = "utc-smear-24h"
poll-interval-ms = 500

[[source]]
kind = "gpsd"
name = "gps"
address = "127.0.0.1:2947"
timescale = "utc"

[[source]]
kind = "kernel"
name = "kernel"
timescale = "utc"

[testing.simulated-clock]
offset-ns = 5000000
frequency-ppb = -20000
steps = [{ after-ms = 10000, by-ns = -3000000 }]
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.sources.len(), 3);
        let sim = c.testing.simulated_clock.unwrap();
        assert_eq!(sim.steps(), vec![ScriptedStep::after(Duration::from_secs(10), Offset::from_nanos(-3_000_000))]);
    }

    #[test]
    fn simulated_clock_steps_slews_origin_and_leap_steps() {
        let sim = |body: &str| {
            parse(&format!("{}\n[testing.simulated-clock]\n{body}\n", ntp_sources(1)))
                .map(|c| c.testing.simulated_clock.unwrap())
        };
        let c = sim(
            "origin-unix-ns = 1800000000000000000\nsteps = [{ after-ms = 60000, by-ns = 2500000000, over-ms = 30000 }, \
                     { at-realtime-ns = 1814400000000000000, by-ns = -1000000000 }]",
        )
        .unwrap();
        assert_eq!(
            c.steps(),
            vec![
                ScriptedStep {
                    when: StepTrigger::AtHostRealtime(tsod_proto::Timestamp::from_nanos(1_800_000_060_000_000_000)),
                    by: Offset::from_nanos(2_500_000_000),
                    over: Duration::from_secs(30),
                },
                ScriptedStep {
                    when: StepTrigger::AtRealtime(tsod_proto::Timestamp::from_nanos(1_814_400_000_000_000_000)),
                    by: Offset::from_nanos(-1_000_000_000),
                    over: Duration::ZERO,
                },
            ]
        );
        for (steps, why) in [
            ("{ by-ns = 1 }", "exactly one of after-ms and at-realtime-ns"),
            ("{ after-ms = 1, at-realtime-ns = 1, by-ns = 1 }", "exactly one of"),
            ("{ at-realtime-ns = 1, by-ns = 1, over-ms = 5 }", "for steps only"),
            ("{ after-ms = 1, by-ns = -5000000, over-ms = 5 }", "rate of 1 or more"),
            ("{ after-ms = 1, by-ns = 1, over = 5 }", "unknown field"),
        ] {
            let err = sim(&format!("steps = [{steps}]")).unwrap_err().to_string();
            assert!(err.contains(why), "{steps}: {err}");
        }
        assert!(sim("steps = [{ after-ms = 1, by-ns = -4999999, over-ms = 5 }]").is_ok());
    }
}
