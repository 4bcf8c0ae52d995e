//! A running cluster: one real `tsod` process per site, each with its own
//! simulated GPS receiver and NTP server ([`crate::sim`]) and its own wrong
//! local clock (`[testing.simulated-clock]`), and a WAN relay
//! ([`crate::wan`]) for every ordered pair of sites, so that site X's
//! connection to site Y (its probes and gossip) crosses the emulated link
//! X → Y.
//!
//! Everything lives in one scratch directory (certificates, configs,
//! segments, status files, logs, the `leap-seconds.list` every daemon
//! reads: [`crate::leap_list`]) that is removed, with every process,
//! simulator and relay, when the [`Cluster`] is dropped.
//!
//! The whole cluster tells time the way its plan's
//! [`TrueTime`](crate::truth::TrueTime) says: shifted by whole seconds for
//! a scenario's leap second, which every site's simulated clock (its
//! offset), NTP server and gpsd apply. A site's scripted clock steps and
//! slews count from the plan's `origin` on the host's realtime, so a
//! restarted daemon, given the same configuration, sees its clock where
//! it was; the kernel's leap step (an announced leap) fires when the
//! site's own realtime reaches the end of the day.
//! [`Cluster::description`] says where each site can be reached (what
//! `tsod-testbed up` writes to `cluster.json` for other tools), and
//! [`Cluster::write_links_file`] what the relays carried (`links.json`).
//!
//! A site's daemon can be killed and restarted, or paused (SIGSTOP) and
//! resumed (SIGCONT) — a process that stops running without losing its
//! sockets or state, as a long GC pause, a swapped-out host or a VM freeze
//! would. The signals are sent with the `kill` command (the workspace
//! forbids `unsafe`, so no `libc::kill`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use tsod_proto::{Offset, Ppb, Timestamp};

use crate::description::{ClusterDescription, SiteDescription};
use crate::links_file::{self, LinkCounts, LinksSnapshot};
use crate::sim::gpsd::{GpsFault, GpsdSim, RealtimeSlew};
use crate::sim::host_realtime;
use crate::sim::ntp::{NtpFault, NtpSim, NtpSimConfig};
use crate::spec::Topology;
use crate::truth::{LeapKind, TrueTime};
use crate::wan::{LinkShape, WanRelay};

/// The file every site's daemon reads its leap-second schedule from, in
/// the cluster's directory.
pub const LEAP_LIST_FILE: &str = "leap-seconds.list";

/// A scripted change of a site's clock: a step, or a slew (`over` > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockChange {
    /// When, after the plan's origin.
    pub after: Duration,
    /// How far the clock moves in all (positive: ahead).
    pub by: Offset,
    /// Zero for a step; else how long the slew takes.
    pub over: Duration,
}

/// One site as the cluster starts it.
#[derive(Clone, Debug, PartialEq)]
pub struct SitePlan {
    /// Site name (a DNS label).
    pub name: String,
    /// Offset of the site's simulated clock from true time (the shift of
    /// the plan's [`TrueTime`] comes on top).
    pub clock_offset: Offset,
    /// Its frequency error.
    pub clock_drift: Ppb,
    /// Steps and slews of its clock.
    pub clock_changes: Vec<ClockChange>,
    /// It has a simulated GPS receiver.
    pub gps: bool,
    /// It has a simulated NTP server.
    pub ntp: bool,
    /// Its `[tso] leader-priority`, if any.
    pub leader_priority: Option<u32>,
}

/// The whole cluster to start.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    /// The sites.
    pub sites: Vec<SitePlan>,
    /// The link from site `.0` to site `.1` (indices into `sites`): forward
    /// is `.0` → `.1`. Every ordered pair needs one.
    pub links: Vec<(usize, usize, LinkShape)>,
    /// How the cluster tells time (shifted for a leap second, or not).
    pub time: TrueTime,
    /// The host realtime the sites' clock changes count from.
    pub origin: Timestamp,
}

impl ClusterPlan {
    /// The plan for `topology`: each site with its clock and inputs (no
    /// scripted clock changes), for each ordered pair of sites the link's
    /// shape seen from the dialler; the host's own time, counted from now.
    pub fn from_topology(topology: &Topology) -> Self {
        let sites: Vec<SitePlan> = topology
            .sites()
            .iter()
            .map(|s| SitePlan {
                name: s.name().to_owned(),
                clock_offset: s.clock_offset(),
                clock_drift: s.clock_drift(),
                clock_changes: Vec::new(),
                gps: s.gps(),
                ntp: s.ntp(),
                leader_priority: s.leader_priority(),
            })
            .collect();
        let mut links = Vec::new();
        for (from, a) in sites.iter().enumerate() {
            for (to, b) in sites.iter().enumerate() {
                let shape = topology.link(&a.name, &b.name).and_then(|l| l.shape_from(&a.name));
                if let (true, Some(shape)) = (from != to, shape) {
                    links.push((from, to, shape));
                }
            }
        }
        Self { sites, links, time: TrueTime::default(), origin: host_realtime() }
    }
}

/// Why the cluster could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file or process could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `tsod cluster init` failed.
    #[error("tsod cluster init failed: {0}")]
    Certificates(String),
    /// The plan is inconsistent.
    #[error("{0}")]
    Plan(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// A site while the cluster runs.
#[derive(Debug)]
pub struct Site {
    /// Its plan.
    pub plan: SitePlan,
    /// Its QUIC endpoint.
    pub addr: SocketAddr,
    /// Its metrics endpoint (`http://…/metrics`).
    pub metrics: SocketAddr,
    /// Its shared-memory segment (what the checker reads, like an application).
    pub segment: PathBuf,
    /// Its status file.
    pub status: PathBuf,
    /// Its simulated GPS receiver.
    pub gps: Option<GpsdSim>,
    /// Its simulated NTP server.
    pub ntp: Option<NtpSim>,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    partitioned: bool,
    /// When its daemon last started, resumed, or had its links restored.
    back_at: SystemTime,
}

impl Site {
    /// Its daemon's process exists (running, or paused).
    pub fn is_up(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id the testbed started for it (its daemon, or a
    /// `--tsod` wrapper), which leads the site's process group.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its daemon is paused (SIGSTOP, not yet resumed).
    pub fn is_paused(&self) -> bool {
        self.paused && self.child.is_some()
    }

    /// Its links are cut ([`Cluster::partition`]).
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Whether its status file was written since its daemon last started,
    /// resumed or had its links restored: what the file says is what the
    /// daemon thinks now, not before a pause or a restart (a file is
    /// rewritten every second).
    pub fn status_is_fresh(&self) -> bool {
        std::fs::metadata(&self.status).and_then(|m| m.modified()).is_ok_and(|written| written >= self.back_at)
    }
}

/// A running cluster; dropping it stops everything and removes its files.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    tsod: PathBuf,
    time: TrueTime,
    origin: Timestamp,
    sites: Vec<Site>,
    /// (from, to) → the relay `from` dials `to` through.
    relays: HashMap<(usize, usize), WanRelay>,
}

fn free_udp_port() -> Result<u16, ClusterError> {
    crate::ports::free_udp_port().map_err(io("finding a free UDP port"))
}

impl Cluster {
    /// Starts `plan` with the `tsod` binary at `tsod`, in a new scratch
    /// directory under `work` (removed on drop).
    pub fn start(plan: &ClusterPlan, tsod: &Path, work: &Path) -> Result<Self, ClusterError> {
        let n = plan.sites.len();
        for from in 0..n {
            for to in 0..n {
                if from != to && !plan.links.iter().any(|l| l.0 == from && l.1 == to) {
                    return Err(ClusterError::Plan(format!("no link from site #{from} to site #{to}")));
                }
            }
        }
        let dir = work.join(format!("tsod-testbed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut cluster = Self {
            dir,
            tsod: tsod.to_path_buf(),
            time: plan.time,
            origin: plan.origin,
            sites: Vec::new(),
            relays: HashMap::new(),
        };
        cluster.certificates(plan)?;
        let list = cluster.dir.join(LEAP_LIST_FILE);
        let text = crate::leap_list::for_run(&plan.time, host_realtime()).render();
        std::fs::write(&list, text).map_err(io(format!("writing {}", list.display())))?;
        let ports = (0..n).map(|_| free_udp_port()).collect::<Result<Vec<_>, _>>()?;
        for &(from, to, shape) in &plan.links {
            let target = SocketAddr::from(([127, 0, 0, 1], *ports.get(to).unwrap_or(&0)));
            let relay = WanRelay::start(SocketAddr::from(([127, 0, 0, 1], 0)), target, shape)
                .map_err(io(format!("starting the relay {from} → {to}")))?;
            cluster.relays.insert((from, to), relay);
        }
        for (index, site) in plan.sites.iter().enumerate() {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let gps = if site.gps {
                Some(GpsdSim::start_with(loopback, plan.time).map_err(io("starting a GPS simulator"))?)
            } else {
                None
            };
            let ntp = if site.ntp {
                let config = NtpSimConfig { time: plan.time, ..NtpSimConfig::default() };
                Some(NtpSim::start_with(loopback, config).map_err(io("starting an NTP simulator"))?)
            } else {
                None
            };
            let site_dir = cluster.dir.join(&site.name);
            std::fs::create_dir_all(&site_dir).map_err(io("creating a site directory"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], *ports.get(index).unwrap_or(&0)));
            let segment = site_dir.join("segment");
            let mut status_name = segment.as_os_str().to_os_string();
            status_name.push(".status.json");
            let metrics_port = crate::ports::free_tcp_port().map_err(io("finding a metrics port"))?;
            cluster.sites.push(Site {
                plan: site.clone(),
                addr,
                metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
                segment,
                status: PathBuf::from(status_name),
                gps,
                ntp,
                config: site_dir.join("tsod.toml"),
                log: site_dir.join("tsod.log"),
                child: None,
                paused: false,
                partitioned: false,
                back_at: SystemTime::now(),
            });
        }
        // Every site must exist before any configuration names its peers.
        for index in 0..n {
            let config = cluster.config_for(index);
            let path = cluster.sites.get(index).map(|s| s.config.clone()).unwrap_or_default();
            std::fs::write(&path, config).map_err(io(format!("writing {}", path.display())))?;
            // A new cluster: each site's empty TSO store is marked as part of
            // it, as an operator does (`tsod cluster bootstrap`).
            let out = Command::new(&cluster.tsod)
                .args(["cluster", "bootstrap", "--config"])
                .arg(&path)
                .output()
                .map_err(io("running tsod cluster bootstrap"))?;
            if !out.status.success() {
                return Err(ClusterError::Plan(format!(
                    "tsod cluster bootstrap --config {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        for index in 0..n {
            cluster.start_site(index)?;
        }
        Ok(cluster)
    }

    fn certificates(&self, plan: &ClusterPlan) -> Result<(), ClusterError> {
        let mut command = Command::new(&self.tsod);
        command.args(["cluster", "init", "--out"]).arg(self.dir.join("certs"));
        for site in &plan.sites {
            command.arg("--site").arg(format!("{}=127.0.0.1", site.name));
        }
        let out = command.output().map_err(io(format!("running {}", self.tsod.display())))?;
        if !out.status.success() {
            return Err(ClusterError::Certificates(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(())
    }

    /// The configuration of site `index`: its simulated sources, every other
    /// site as a peer through the relay `index` → peer, the cluster's leap
    /// list, its wrong clock (shifted with the cluster's time, its steps
    /// and slews from the origin, the kernel's step of an announced leap).
    fn config_for(&self, index: usize) -> String {
        let Some(site) = self.sites.get(index) else { return String::new() };
        let plan = &site.plan;
        let mut c = String::new();
        let local = usize::from(plan.gps) + usize::from(plan.ntp);
        let peers = self.sites.len().saturating_sub(1);
        // One liar among three or more sources is out-voted; all but one
        // agreeing is `synchronized`. Two sources cannot out-vote a liar: a
        // site with two is left to the daemon's own rule for them (their
        // hull), which a topology with too few sources exists to exercise.
        let _ = writeln!(c, "[clock]");
        if local + peers >= 3 {
            let _ = writeln!(c, "max-faulty = 1");
        }
        let _ = writeln!(
            c,
            "min-agreeing = {}\nleap-seconds-list = \"{}\"\n",
            (local + peers).saturating_sub(1).max(1),
            self.dir.join(LEAP_LIST_FILE).display()
        );
        let _ = writeln!(c, "[publish]\npath = \"{}\"\n", site.segment.display());
        let _ = writeln!(
            c,
            "[site]\nname = \"{}\"\nlisten = \"{}\"\ncluster-dir = \"{}\"\n",
            plan.name,
            site.addr,
            self.dir.join("certs").display()
        );
        let _ = writeln!(c, "[clients]\nallow-anonymous = true\nmax-requests-per-second = 1000000\n");
        let _ = writeln!(c, "[metrics]\nlisten = \"{}\"\n", site.metrics);
        // The TSO's Raft state survives a site's restart, as in production.
        // No timing: the daemon derives it from the round trips it measures.
        let _ = writeln!(c, "[tso]\nstate-dir = \"{}\"", self.dir.join(&plan.name).join("tso").display());
        if let Some(priority) = plan.leader_priority {
            let _ = writeln!(c, "leader-priority = {priority}");
        }
        let _ = writeln!(c);
        if let Some(gps) = &site.gps {
            let _ = writeln!(
                c,
                "[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n",
                gps.local_addr()
            );
        }
        if let Some(ntp) = &site.ntp {
            let _ = writeln!(
                c,
                "[[source]]\nkind = \"ntp\"\nname = \"ntp\"\naddress = \"{}\"\ntimescale = \"utc\"\npoll-interval-ms = 500\n",
                ntp.local_addr()
            );
        }
        for (peer_index, peer) in self.sites.iter().enumerate() {
            if let (true, Some(relay)) = (peer_index != index, self.relays.get(&(index, peer_index))) {
                let _ = writeln!(c, "[[peer]]\nname = \"{}\"\naddress = \"{}\"\n", peer.plan.name, relay.local_addr());
            }
        }
        let offset = i128::from(plan.clock_offset.as_nanos()) + i128::from(self.time.shift_s()) * 1_000_000_000;
        let _ = writeln!(
            c,
            "[testing.simulated-clock]\noffset-ns = {offset}\nfrequency-ppb = {}\norigin-unix-ns = {}",
            plan.clock_drift.get(),
            self.origin.as_nanos()
        );
        let mut steps: Vec<String> = plan
            .clock_changes
            .iter()
            .map(|change| {
                let over = match change.over.as_millis() {
                    0 => String::new(),
                    ms => format!(", over-ms = {ms}"),
                };
                format!("{{ after-ms = {}, by-ns = {}{over} }}", change.after.as_millis(), change.by.as_nanos())
            })
            .collect();
        if let Some(leap) = self.time.leap().filter(|l| l.announced) {
            // The kernel ends the day at its own 00:00:00 (an insert: back
            // to 23:59:59) or 23:59:59 (a delete: on to 00:00:00).
            let (at, by) = match leap.kind {
                LeapKind::Insert => (leap.boundary_s, -1_000_000_000_i64),
                LeapKind::Delete => (leap.boundary_s.saturating_sub(1), 1_000_000_000),
            };
            steps.push(format!("{{ at-realtime-ns = {}, by-ns = {by} }}", at.saturating_mul(1_000_000_000)));
        }
        let _ = writeln!(c, "steps = [{}]", steps.join(", "));
        c
    }

    fn start_site(&mut self, index: usize) -> Result<(), ClusterError> {
        let tsod = self.tsod.clone();
        let site = self.sites.get_mut(index).ok_or_else(|| ClusterError::Plan(format!("no site #{index}")))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&site.log)
            .map_err(io(format!("opening {}", site.log.display())))?;
        let child = Command::new(&tsod)
            .args(["run", "--config"])
            .arg(&site.config)
            .env("TSOD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: signals reach what a wrapper forked,
            // and a Ctrl-C at the terminal reaches only the testbed, which
            // stops every site itself.
            .process_group(0)
            .spawn()
            .map_err(io(format!("starting {} for site {}", tsod.display(), site.plan.name)))?;
        site.child = Some(child);
        site.paused = false;
        site.back_at = SystemTime::now();
        Ok(())
    }

    /// The sites.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The sites, to poll or change their simulators.
    pub fn sites_mut(&mut self) -> &mut [Site] {
        &mut self.sites
    }

    /// The index of the site named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.plan.name == name)
    }

    /// Kills site `index`'s daemon (SIGKILL: no goodbye to its peers; a
    /// paused one dies too), with its process group: whatever a `--tsod`
    /// wrapper started.
    pub fn kill(&mut self, index: usize) {
        if let Some(site) = self.sites.get_mut(index) {
            site.paused = false;
            if let Some(mut child) = site.child.take() {
                if let Some(group) = group_of(&child) {
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Pauses site `index`'s daemon (SIGSTOP): it keeps its sockets and
    /// state but runs no more until [`Cluster::resume`].
    pub fn pause(&mut self, index: usize) -> Result<(), ClusterError> {
        self.signal(index, nix::sys::signal::Signal::SIGSTOP)?;
        if let Some(site) = self.sites.get_mut(index) {
            site.paused = true;
        }
        Ok(())
    }

    /// Resumes site `index`'s paused daemon (SIGCONT).
    pub fn resume(&mut self, index: usize) -> Result<(), ClusterError> {
        self.signal(index, nix::sys::signal::Signal::SIGCONT)?;
        if let Some(site) = self.sites.get_mut(index) {
            site.paused = false;
            site.back_at = SystemTime::now();
        }
        Ok(())
    }

    /// Sends `signal` to site `index`'s daemon and its process group.
    fn signal(&self, index: usize, signal: nix::sys::signal::Signal) -> Result<(), ClusterError> {
        let site = self.sites.get(index).ok_or_else(|| ClusterError::Plan(format!("no site #{index}")))?;
        let child = site
            .child
            .as_ref()
            .ok_or_else(|| ClusterError::Plan(format!("site {}: its daemon is not running", site.plan.name)))?;
        let what = format!("sending {signal} to site {}'s tsod (process group {})", site.plan.name, child.id());
        let group = group_of(child).ok_or_else(|| ClusterError::Plan(what.clone()))?;
        nix::sys::signal::killpg(group, signal)
            .map_err(|errno| ClusterError::Io { what, source: std::io::Error::from(errno) })
    }

    /// Restarts site `index`'s daemon (killing it first if it runs), with
    /// its configuration rewritten the same: its clock's steps and slews
    /// count from the plan's origin, so the new daemon finds the clock where
    /// the old one left it (but for the frequency error, which counts from
    /// each daemon's start).
    pub fn restart(&mut self, index: usize) -> Result<(), ClusterError> {
        self.kill(index);
        let config = self.config_for(index);
        if let Some(site) = self.sites.get(index) {
            std::fs::write(&site.config, config).map_err(io(format!("writing {}", site.config.display())))?;
        }
        self.start_site(index)
    }

    /// Every site as a client in site `home`'s region reaches it: `home`
    /// directly, each other site through the WAN link from `home` (its
    /// delay, loss and partitions), each with its name.
    pub fn client_sites(&self, home: usize) -> Vec<tsod_client::Site> {
        self.sites
            .iter()
            .enumerate()
            .map(|(i, site)| {
                let addr = match self.relays.get(&(home, i)) {
                    Some(relay) if i != home => relay.local_addr(),
                    _ => site.addr,
                };
                tsod_client::Site::new(site.plan.name.clone(), addr)
            })
            .collect()
    }

    /// Cuts (or restores) every link to and from site `index`.
    pub fn partition(&mut self, index: usize, partitioned: bool) {
        if let Some(site) = self.sites.get_mut(index) {
            site.partitioned = partitioned;
            if !partitioned {
                site.back_at = SystemTime::now();
            }
        }
        for ((from, to), relay) in &self.relays {
            if *from == index || *to == index {
                relay.set_partitioned(partitioned);
            }
        }
    }

    /// Reshapes the link `from` → `to` (and `to` → `from` with the
    /// directions swapped): both connections of the pair cross the same WAN.
    pub fn set_link(&mut self, from: usize, to: usize, shape: LinkShape) {
        if let Some(r) = self.relays.get(&(from, to)) {
            r.set_shape(shape);
        }
        if let Some(r) = self.relays.get(&(to, from)) {
            r.set_shape(LinkShape { forward: shape.reverse, reverse: shape.forward });
        }
    }

    /// Sets site `index`'s GPS fault.
    pub fn gps_fault(&mut self, index: usize, fault: GpsFault) {
        if let Some(gps) = self.sites.get(index).and_then(|s| s.gps.as_ref()) {
            gps.set_fault(fault);
        }
    }

    /// Sets site `index`'s NTP fault.
    pub fn ntp_fault(&mut self, index: usize, fault: NtpFault) {
        if let Some(ntp) = self.sites.get(index).and_then(|s| s.ntp.as_ref()) {
            ntp.set_fault(fault);
        }
    }

    /// Has site `index`'s gpsd report PPS edges as a realtime slewing as
    /// `slew` says would stamp them (`None`: as the host's does).
    pub fn realtime_slew(&mut self, index: usize, slew: Option<RealtimeSlew>) {
        if let Some(gps) = self.sites.get(index).and_then(|s| s.gps.as_ref()) {
            gps.set_realtime_slew(slew);
        }
    }

    /// How the cluster tells time: what the truth checker must compare with.
    pub fn time(&self) -> TrueTime {
        self.time
    }

    /// The scratch directory (logs are at `<dir>/<site>/tsod.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA's certificate (PEM), which clients trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("certs").join("ca.crt")
    }

    /// Every relay's counters, by the names of the sites it links, from
    /// site 0's links on (each site's in the topology's order).
    pub fn link_counts(&self) -> Vec<LinkCounts> {
        let mut links: Vec<(&(usize, usize), &WanRelay)> = self.relays.iter().collect();
        links.sort_by_key(|(pair, _)| **pair);
        let name = |i: usize| self.sites.get(i).map(|s| s.plan.name.clone()).unwrap_or_else(|| format!("#{i}"));
        links
            .into_iter()
            .map(|(&(from, to), relay)| LinkCounts { from: name(from), to: name(to), stats: relay.stats() })
            .collect()
    }

    /// Rewrites `links.json` in the scratch directory with the relays'
    /// counters now ([`crate::links_file`]); its path.
    pub fn write_links_file(&self) -> Result<PathBuf, ClusterError> {
        let at = host_realtime().as_nanos() / 1_000_000;
        let snapshot = LinksSnapshot { at_unix_ms: at, links: self.link_counts() };
        snapshot.write_to(&self.dir).map_err(io(format!("writing {}", self.dir.join(links_file::FILE_NAME).display())))
    }

    /// Where each site can be reached.
    pub fn description(&self) -> ClusterDescription {
        ClusterDescription {
            dir: self.dir.clone(),
            ca: self.ca_path(),
            sites: self
                .sites
                .iter()
                .map(|s| SiteDescription {
                    name: s.plan.name.clone(),
                    address: s.addr,
                    segment: s.segment.clone(),
                    status: s.status.clone(),
                })
                .collect(),
        }
    }
}

/// The process group `child` leads (started with `process_group(0)`).
fn group_of(child: &Child) -> Option<nix::unistd::Pid> {
    i32::try_from(child.id()).ok().filter(|&id| id > 0).map(nix::unistd::Pid::from_raw)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.sites.len() {
            self.kill(index);
        }
        self.sites.clear();
        self.relays.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
