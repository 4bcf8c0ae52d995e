//! Topologies: which sites a testbed cluster has, how wrong each site's own
//! clock is, which simulated time sources it has, and how the emulated WAN
//! links between the sites behave.
//!
//! A topology is a TOML file (keys in kebab-case, unknown keys are errors,
//! every unit in the key's name):
//!
//! ```toml
//! name = "dr"
//! description = "two regions, three data centres"
//!
//! [[site]]
//! name = "bj-a"            # a lowercase DNS label, as `tsod cluster init` wants
//! clock-offset-ms = 3.0    # the site's simulated clock runs this far ahead (default 0)
//! clock-drift-ppm = 20.0   # and gains this fast (default 0, at most ±500)
//! gps = true               # a simulated gpsd with PPS (default true)
//! ntp = true               # a simulated NTP server (default true)
//! leader-priority = 5      # the site's `[tso] leader-priority` (default: none)
//!
//! [[link]]
//! between = ["bj-a", "bj-b"]
//! one-way-ms = 0.5         # both ways; or forward-ms and reverse-ms
//! jitter-ms = 0.05         # default 0
//! loss = 0.0               # default 0
//! ```
//!
//! # Invariants of a [`Topology`]
//!
//! * 2 … [`MAX_SITES`] sites with unique names, each a lowercase DNS label
//!   (`a-z`, `0-9`, `-`, 1 … 63 bytes, no `-` at either end);
//! * a **full mesh**: every pair of distinct sites has exactly one link, so a
//!   site's peers are all the other sites;
//! * delays and jitter within 0 … [`MAX_DELAY_MS`] ms, loss within 0 … 1,
//!   clock offsets within ±[`MAX_CLOCK_OFFSET_MS`] ms, drifts within
//!   ±[`MAX_CLOCK_DRIFT_PPM`] ppm;
//! * a `leader-priority`, when given, is a `u32` (what `tsod` accepts).
//!
//! # The TSO leader
//!
//! Without priorities the daemons prefer to let the site with the smallest
//! total round trip to the others lead the TSO (`global`: frankfurt); a
//! site's `leader-priority` goes into its generated configuration as
//! `[tso] leader-priority`, and the highest one leads while it can
//! (`global-priority`: virginia). The testbed writes no TSO timing: each
//! daemon derives it from the round trips it measures.
//!
//! # Directions
//!
//! A link's *forward* direction is from the first site of `between` to the
//! second, *reverse* the other way ([`Link::shape`]). That is also how a
//! [`WanRelay`](crate::wan::WanRelay) sees it when the first site is its
//! client and the second its target.
//!
//! Parsing errors carry the line and column (from the `toml` crate);
//! validation errors name the site or link and the key.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tsod_proto::{Offset, Ppb};

use super::builtin::Builtins;
use super::error::{SpecError, SpecKind};
use super::fields::{LEADER, check_label, check_range, millis, offset_from_ms, ppb_from_ppm};
use crate::wan::{DirectionShape, LinkShape};

/// Most sites a topology may have.
pub const MAX_SITES: usize = 9;

/// Largest one-way delay or jitter of a link (ms).
pub const MAX_DELAY_MS: f64 = 1_000.0;

/// Largest offset of a site's simulated clock from true time, either way (ms): one hour.
pub const MAX_CLOCK_OFFSET_MS: f64 = 3_600_000.0;

/// Largest frequency error of a site's simulated clock, either way (ppm).
pub const MAX_CLOCK_DRIFT_PPM: f64 = 500.0;

/// The topology used when none is named.
pub const DEFAULT_TOPOLOGY: &str = "dr";

/// The built-in topologies.
const BUILTINS: Builtins = Builtins::new(
    SpecKind::Topology,
    &[
        ("dr", include_str!("../../topologies/dr.toml")),
        ("global", include_str!("../../topologies/global.toml")),
        ("global-priority", include_str!("../../topologies/global-priority.toml")),
        ("two-regions-five", include_str!("../../topologies/two-regions-five.toml")),
        ("three-regions-seven", include_str!("../../topologies/three-regions-seven.toml")),
        ("pair", include_str!("../../topologies/pair.toml")),
    ],
);

/// A validated topology (see the module doc for its invariants).
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    name: String,
    description: String,
    sites: Vec<Site>,
    links: Vec<Link>,
}

/// `[[site]]`: one site and its simulated clock and sources.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    name: String,
    clock_offset: Offset,
    clock_drift: Ppb,
    gps: bool,
    ntp: bool,
    leader_priority: Option<u32>,
}

/// `[[link]]`: the emulated WAN link between two sites.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    between: [String; 2],
    forward: Duration,
    reverse: Duration,
    jitter: Duration,
    loss: f64,
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TopologyFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "site", default)]
    sites: Vec<SiteFile>,
    #[serde(rename = "link", default)]
    links: Vec<LinkSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SiteFile {
    name: String,
    #[serde(default)]
    clock_offset_ms: f64,
    #[serde(default)]
    clock_drift_ppm: f64,
    #[serde(default = "yes")]
    gps: bool,
    #[serde(default = "yes")]
    ntp: bool,
    leader_priority: Option<u32>,
}

fn yes() -> bool {
    true
}

/// A link as written, in a topology's `[[link]]` or a scenario's `link`
/// event: `between`, then `one-way-ms` or both `forward-ms` and `reverse-ms`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LinkSpec {
    between: [String; 2],
    one_way_ms: Option<f64>,
    forward_ms: Option<f64>,
    reverse_ms: Option<f64>,
    #[serde(default)]
    jitter_ms: f64,
    #[serde(default)]
    loss: f64,
}

impl LinkSpec {
    /// `"a – b"`, for error messages.
    pub(super) fn label(&self) -> String {
        format!("{} – {}", self.between[0], self.between[1])
    }

    /// The link it describes, its values checked (but not its sites).
    pub(super) fn resolve(&self) -> Result<Link, String> {
        let (forward_ms, reverse_ms) = match (self.one_way_ms, self.forward_ms, self.reverse_ms) {
            (Some(both), None, None) => (both, both),
            (None, Some(forward), Some(reverse)) => (forward, reverse),
            _ => return Err("give either one-way-ms, or both forward-ms and reverse-ms".into()),
        };
        let delay = |key: &str, ms: f64| check_range(key, ms, 0.0, MAX_DELAY_MS).and_then(|()| millis(key, ms));
        let forward = delay(if self.one_way_ms.is_some() { "one-way-ms" } else { "forward-ms" }, forward_ms)?;
        let reverse = delay(if self.one_way_ms.is_some() { "one-way-ms" } else { "reverse-ms" }, reverse_ms)?;
        let jitter = delay("jitter-ms", self.jitter_ms)?;
        check_range("loss", self.loss, 0.0, 1.0)?;
        Ok(Link { between: self.between.clone(), forward, reverse, jitter, loss: self.loss })
    }
}

impl Topology {
    /// Parses and validates `text`; `origin` (a path, or "built-in topology
    /// dr") only names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        let file: TopologyFile = toml::from_str(text).map_err(|source| SpecError::parse(origin, source))?;
        Self::validate(file).map_err(|what| SpecError::invalid(origin, what))
    }

    /// A built-in topology by name (one of [`Topology::builtin_names`]), or
    /// else the topology file at that path.
    pub fn load(name_or_path: &str) -> Result<Self, SpecError> {
        if BUILTINS.contains(name_or_path) {
            return Self::builtin(name_or_path);
        }
        Self::parse(&BUILTINS.read(Path::new(name_or_path))?, name_or_path)
    }

    /// The built-in topology `name`.
    pub fn builtin(name: &str) -> Result<Self, SpecError> {
        let (text, origin) = BUILTINS.text(name)?;
        Self::parse(text, &origin)
    }

    /// The names of the built-in topologies ([`DEFAULT_TOPOLOGY`] first).
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTINS.names()
    }

    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it models (free text, may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The sites, in file order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The site called `name`.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The links, in file order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link between `a` and `b`, in either order (`None` if `a == b` or
    /// either is not a site).
    pub fn link(&self, a: &str, b: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.connects(a, b))
    }

    /// The longest round trip any link may take (both delays plus both
    /// jitters): a bound for the sites' `max-round-trip-ms`.
    pub fn max_round_trip(&self) -> Duration {
        self.links.iter().map(Link::max_round_trip).max().unwrap_or_default()
    }

    fn validate(file: TopologyFile) -> Result<Self, String> {
        check_label("name", &file.name)?;
        if !(2..=MAX_SITES).contains(&file.sites.len()) {
            return Err(format!("{} [[site]] given: a topology has 2 … {MAX_SITES} sites", file.sites.len()));
        }
        let mut sites: Vec<Site> = Vec::with_capacity(file.sites.len());
        for (i, s) in file.sites.into_iter().enumerate() {
            let at = format!("site #{} ({:?})", i.saturating_add(1), s.name);
            let site = Site::validate(s).map_err(|e| format!("{at}: {e}"))?;
            if sites.iter().any(|other| other.name == site.name) {
                return Err(format!("{at}: another site has the same name"));
            }
            sites.push(site);
        }
        let known = |name: &str| sites.iter().any(|s| s.name == name);
        let mut links: Vec<Link> = Vec::with_capacity(file.links.len());
        for (i, spec) in file.links.iter().enumerate() {
            let at = format!("link #{} ({})", i.saturating_add(1), spec.label());
            let link = spec.resolve().map_err(|e| format!("{at}: {e}"))?;
            let [a, b] = &link.between;
            if let Some(unknown) = [a, b].into_iter().find(|name| !known(name)) {
                return Err(format!("{at}: between: no site is called {unknown:?}"));
            }
            if a == b {
                return Err(format!("{at}: between: a link joins two different sites"));
            }
            if links.iter().any(|other| other.connects(a, b)) {
                return Err(format!("{at}: another link already joins these sites (one link per pair)"));
            }
            links.push(link);
        }
        for (i, a) in sites.iter().enumerate() {
            for b in sites.iter().skip(i.saturating_add(1)) {
                if !links.iter().any(|l| l.connects(&a.name, &b.name)) {
                    return Err(format!(
                        "no [[link]] between {:?} and {:?}: every pair of sites needs exactly one link \
                         (the topology must be a full mesh)",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(Self { name: file.name, description: file.description, sites, links })
    }
}

impl Site {
    /// The site's name (a lowercase DNS label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How far the site's simulated clock is ahead of true time at start
    /// (negative: behind).
    pub fn clock_offset(&self) -> Offset {
        self.clock_offset
    }

    /// How fast the site's simulated clock gains on true time (negative: loses).
    pub fn clock_drift(&self) -> Ppb {
        self.clock_drift
    }

    /// Whether the site has a simulated gpsd (with PPS).
    pub fn gps(&self) -> bool {
        self.gps
    }

    /// Whether the site has a simulated NTP server.
    pub fn ntp(&self) -> bool {
        self.ntp
    }

    /// Its `[tso] leader-priority`, if the topology gives one (higher
    /// leads; a site without one ranks below every site with one).
    pub fn leader_priority(&self) -> Option<u32> {
        self.leader_priority
    }

    fn validate(file: SiteFile) -> Result<Self, String> {
        check_label("name", &file.name)?;
        if file.name == LEADER {
            return Err(format!(
                "name = {:?} is reserved: scenarios write site = {LEADER:?} for whichever site leads the TSO",
                file.name
            ));
        }
        check_range("clock-offset-ms", file.clock_offset_ms, -MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS)?;
        check_range("clock-drift-ppm", file.clock_drift_ppm, -MAX_CLOCK_DRIFT_PPM, MAX_CLOCK_DRIFT_PPM)?;
        Ok(Self {
            name: file.name,
            clock_offset: offset_from_ms(file.clock_offset_ms),
            clock_drift: ppb_from_ppm(file.clock_drift_ppm),
            gps: file.gps,
            ntp: file.ntp,
            leader_priority: file.leader_priority,
        })
    }
}

impl Link {
    /// The two sites, in the order written: forward is first → second.
    pub fn between(&self) -> (&str, &str) {
        (&self.between[0], &self.between[1])
    }

    /// Whether the link joins `a` and `b` (in either order).
    pub fn connects(&self, a: &str, b: &str) -> bool {
        let (x, y) = self.between();
        a != b && ((x, y) == (a, b) || (x, y) == (b, a))
    }

    /// Fixed delay from the first site to the second.
    pub fn forward_delay(&self) -> Duration {
        self.forward
    }

    /// Fixed delay from the second site to the first.
    pub fn reverse_delay(&self) -> Duration {
        self.reverse
    }

    /// Upper bound of the extra random delay, each way.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// Probability that a datagram is lost, each way.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Both fixed delays: the round trip without jitter.
    pub fn round_trip(&self) -> Duration {
        self.forward.saturating_add(self.reverse)
    }

    /// The longest round trip: both delays plus both jitters.
    pub fn max_round_trip(&self) -> Duration {
        self.round_trip().saturating_add(self.jitter.saturating_mul(2))
    }

    /// `(from, to, shape)`: the relay shape for a [`WanRelay`](crate::wan::WanRelay)
    /// whose client is `from` (the first site) and whose target is `to`
    /// (the second). `shape.forward` is `from → to`, `shape.reverse` `to → from`.
    pub fn shape(&self) -> (&str, &str, LinkShape) {
        let (from, to) = self.between();
        (from, to, LinkShape { forward: self.direction(self.forward), reverse: self.direction(self.reverse) })
    }

    /// The shape seen from `from`: forward is `from →` the other site. `None`
    /// if `from` is not one of the link's sites.
    pub fn shape_from(&self, from: &str) -> Option<LinkShape> {
        let (first, second, shape) = self.shape();
        if from == first {
            Some(shape)
        } else if from == second {
            Some(LinkShape { forward: shape.reverse, reverse: shape.forward })
        } else {
            None
        }
    }

    fn direction(&self, delay: Duration) -> DirectionShape {
        DirectionShape { delay, jitter: self.jitter, loss: self.loss }
    }
}

#[cfg(test)]
mod tests;
