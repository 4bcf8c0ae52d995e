//! Reloading the configuration (SIGHUP, `systemctl reload`): the
//! `[[source]]` list may change while the daemon runs; nothing else may.
//!
//! [`plan`] compares the running configuration with the file as read again
//! and is pure: a source whose name is new is added, one whose name is gone
//! is removed, one whose settings changed is restarted. Pools are compared
//! as their members (`NAME-1` …), as `Config::parse` expands them. Any other
//! difference refuses the whole reload, naming it, and the running
//! configuration stays in place: the clock model, the segment, the site and
//! its peers (the TSO group and the QUIC endpoint's admission, the same on
//! every site), clients, the TSO, the NTP server, metrics and test settings
//! are set up once at start.
//!
//! [`LocalSources`] carries a plan out. Invariants:
//! * A source keeps its [`SourceId`] while its name and kind stay, so the
//!   engines keep its samples and counters; an added source, or one whose
//!   kind changed, gets an id never used before (above every local and peer
//!   id), so a late sample of a stopped task can only carry an id the
//!   engines no longer have, which they ignore.
//! * New tasks start before old ones stop, and a task that cannot start
//!   stops the ones just started and refuses the reload: the running set is
//!   either the old one or the new one.
//! * The engines are reconfigured, never replaced: the published bound, the
//!   drift measurement and the TSO carry on.

use std::fmt;
use std::path::Path;

use tsod_proto::wire::SourceKind;

use super::sources::{self, SourceTask, SpawnContext};
use crate::config::{Config, ConfigError, SourceConfig};
use crate::engine::{Engine, SourceId};

/// What a reload does to one source of the new list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Same settings: its task runs on.
    Kept,
    /// A new name: a new task and engine slot.
    Added,
    /// Same name, other settings: its task is restarted; its engine slot
    /// (samples, counters) is kept if the kind stayed.
    Restarted {
        /// The kind is the same as before.
        same_kind: bool,
    },
}

/// The sources of a reload: the new list in order, and the names removed.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Plan {
    /// Every source of the new configuration, with what happens to it.
    pub(super) sources: Vec<(SourceConfig, Change)>,
    /// The names of the running sources the new configuration drops.
    pub(super) removed: Vec<String>,
}

impl Plan {
    /// Nothing changes.
    pub(super) fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.sources.iter().all(|(_, c)| *c == Change::Kept)
    }

    fn names(&self, pick: impl Fn(Change) -> bool) -> Vec<&str> {
        self.sources.iter().filter(|(_, c)| pick(*c)).map(|(s, _)| s.name()).collect()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let added = self.names(|c| c == Change::Added);
        let restarted = self.names(|c| matches!(c, Change::Restarted { .. }));
        let removed: Vec<&str> = self.removed.iter().map(String::as_str).collect();
        let parts: Vec<String> = [("added", added), ("removed", removed), ("restarted", restarted)]
            .into_iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(what, names)| format!("{what} {}", names.join(", ")))
            .collect();
        if parts.is_empty() { f.write_str("no source changed") } else { f.write_str(&parts.join("; ")) }
    }
}

/// Why a reload was refused; the running configuration stays in place.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    /// The file cannot be read, parsed or validated.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// It changes more than the sources.
    #[error("{0}")]
    Refused(String),
    /// A new source's task could not start.
    #[error("starting a source: {0}")]
    Start(#[source] std::io::Error),
}

/// What reloading `new` over `running` does, or why it cannot be done
/// without a restart.
pub(super) fn plan(running: &Config, new: &Config) -> Result<Plan, ReloadError> {
    let restart = |what: &str| Err(ReloadError::Refused(format!("{what} changed: restart tsod to apply it")));
    if new.peers != running.peers || new.site != running.site {
        return Err(ReloadError::Refused(
            "[site] or [[peer]] changed: the peers are the TSO group and the QUIC endpoint's admission, so \
             changing them needs a restart of tsod on every site"
                .to_owned(),
        ));
    }
    let sections: [(&str, bool); 8] = [
        ("[clock]", new.clock == running.clock),
        ("[publish]", new.publish == running.publish),
        ("[clients]", new.clients == running.clients),
        ("[tso]", new.tso == running.tso),
        ("[ntp-server]", new.ntp_server == running.ntp_server),
        ("[metrics]", new.metrics == running.metrics),
        ("[clockbound]", new.clockbound == running.clockbound),
        ("[testing]", new.testing == running.testing),
    ];
    if let Some((what, _)) = sections.iter().find(|(_, same)| !same) {
        return restart(what);
    }
    if new.sources.is_empty() != running.sources.is_empty() {
        return restart("whether this site has local sources (its local basis)");
    }
    let sources = new
        .sources
        .iter()
        .map(|source| {
            let change = match running.sources.iter().find(|r| r.name() == source.name()) {
                None => Change::Added,
                Some(old) if old == source => Change::Kept,
                Some(old) => Change::Restarted { same_kind: sources::kind_of(old) == sources::kind_of(source) },
            };
            (source.clone(), change)
        })
        .collect();
    let removed = running
        .sources
        .iter()
        .filter(|r| !new.sources.iter().any(|s| s.name() == r.name()))
        .map(|r| r.name().to_owned())
        .collect();
    Ok(Plan { sources, removed })
}

/// A running local source.
#[derive(Debug)]
struct Running {
    id: SourceId,
    config: SourceConfig,
    task: SourceTask,
}

/// The local sources' tasks, by name, with their stable ids.
#[derive(Debug)]
pub(super) struct LocalSources {
    /// In the configuration's order.
    running: Vec<Running>,
    /// The next id never used.
    next_id: usize,
}

impl LocalSources {
    /// Starts `sources` with ids 0, 1, …; ids from `next_id` on are free.
    pub(super) fn start(sources: &[SourceConfig], next_id: usize, context: &SpawnContext) -> std::io::Result<Self> {
        let mut running = Vec::with_capacity(sources.len());
        for (index, config) in sources.iter().enumerate() {
            let id = SourceId(index);
            let task = sources::spawn(id, config.clone(), context)?;
            running.push(Running { id, config: config.clone(), task });
        }
        Ok(Self { running, next_id: next_id.max(sources.len()) })
    }

    /// The sources as the engines see them, in order.
    pub(super) fn engine_sources(&self) -> Vec<(SourceId, String, SourceKind)> {
        self.running.iter().map(|r| (r.id, r.config.name().to_owned(), sources::kind_of(&r.config))).collect()
    }

    /// Carries `plan` out: starts the added and changed sources' tasks,
    /// then stops the removed and replaced ones. If one cannot start, those
    /// just started are stopped and nothing else changes.
    pub(super) fn apply(&mut self, plan: &Plan, context: &SpawnContext) -> std::io::Result<()> {
        /// Where the new list's task comes from.
        enum Task {
            /// The running one, at this index of `self.running`.
            Running(usize),
            /// Just started.
            Started(SourceTask),
        }
        let mut next_id = self.next_id;
        let mut next: Vec<(SourceId, &SourceConfig, Task)> = Vec::with_capacity(plan.sources.len());
        for (config, change) in &plan.sources {
            let old = self.running.iter().position(|r| r.config.name() == config.name());
            let old_id = old.and_then(|at| self.running.get(at)).map(|r| r.id);
            let (id, task) = match (change, old, old_id) {
                (Change::Kept, Some(at), Some(id)) => (id, Task::Running(at)),
                (change, _, old_id) => {
                    let id = match (change, old_id) {
                        (Change::Restarted { same_kind: true }, Some(id)) => id,
                        _ => {
                            next_id = next_id.saturating_add(1);
                            SourceId(next_id.saturating_sub(1))
                        }
                    };
                    match sources::spawn(id, config.clone(), context) {
                        Ok(task) => (id, Task::Started(task)),
                        Err(e) => {
                            for (_, _, task) in next {
                                if let Task::Started(task) = task {
                                    task.stop();
                                }
                            }
                            return Err(e);
                        }
                    }
                }
            };
            next.push((id, config, task));
        }
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running).into_iter().map(Some).collect();
        for (id, config, task) in next {
            let task = match task {
                Task::Started(task) => task,
                // Names are unique, so each running task is taken once.
                Task::Running(at) => match old.get_mut(at).and_then(Option::take) {
                    Some(running) => running.task,
                    None => continue,
                },
            };
            self.running.push(Running { id, config: config.clone(), task });
        }
        // The removed sources' tasks, and the replaced ones of restarted sources.
        old.into_iter().flatten().for_each(|r| r.task.stop());
        self.next_id = next_id;
        Ok(())
    }
}

/// Reads `path` again and reloads the sources of `running` from it,
/// reconfiguring both engines (`local`: own sources; `site`: own sources,
/// then the peers from id `peer_base` on, unchanged). On error nothing
/// changed.
pub(super) fn reload(
    path: &Path,
    running: &mut Config,
    sources: &mut LocalSources,
    context: &SpawnContext,
    engines: (&mut Engine, &mut Engine),
    peer_base: usize,
) -> Result<Plan, ReloadError> {
    let new = Config::load(path)?;
    let plan = plan(running, &new)?;
    if plan.is_empty() {
        return Ok(plan);
    }
    sources.apply(&plan, context).map_err(ReloadError::Start)?;
    let (local, site) = engines;
    let (site_config, local_config) = super::engine_configs(&new);
    let own = sources.engine_sources();
    let mut all = own.clone();
    all.extend(new.peers.iter().enumerate().map(|(i, p)| (SourceId(peer_base + i), p.name.clone(), SourceKind::Peer)));
    local.reconfigure(local_config, own);
    site.reconfigure(site_config, all);
    *running = new;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::path::Path;

    use super::{Change, ReloadError, plan};
    use crate::config::Config;

    const GPS: &str =
        "[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"127.0.0.1:2947\"\ntimescale = \"utc\"\n";
    const NTP: &str = "[[source]]\nkind = \"ntp\"\nname = \"ntp\"\naddress = \"127.0.0.1:123\"\ntimescale = \"utc\"\n";
    const SITE: &str = "[site]\nname = \"a\"\nlisten = \"127.0.0.1:4460\"\ncluster-dir = \"/etc/tsod/cluster\"\n";
    const PEER: &str = "[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:4461\"\n";

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("tsod.toml")).unwrap()
    }

    fn changes(from: &str, to: &str) -> (Vec<(String, Change)>, Vec<String>) {
        let plan = plan(&config(from), &config(to)).unwrap();
        (plan.sources.iter().map(|(s, c)| (s.name().to_owned(), *c)).collect(), plan.removed)
    }

    fn refusal(from: &str, to: &str) -> String {
        match plan(&config(from), &config(to)) {
            Err(e @ ReloadError::Refused(_)) => e.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let plan = plan(&config(GPS), &config(GPS)).unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.to_string(), "no source changed");
    }

    #[test]
    fn sources_are_added_removed_and_restarted_by_name() {
        let (sources, removed) = changes(GPS, &format!("{GPS}{NTP}"));
        assert_eq!(sources, [("gps".to_owned(), Change::Kept), ("ntp".to_owned(), Change::Added)]);
        assert!(removed.is_empty());

        let (sources, removed) = changes(&format!("{GPS}{NTP}"), NTP);
        assert_eq!(sources, [("ntp".to_owned(), Change::Kept)]);
        assert_eq!(removed, ["gps"]);

        let moved = GPS.replace("2947", "2948");
        let (sources, _) = changes(GPS, &moved);
        assert_eq!(sources, [("gps".to_owned(), Change::Restarted { same_kind: true })]);

        // The same name, now another kind: a new engine slot.
        let gps_as_ntp = NTP.replace("\"ntp\"\naddress", "\"gps\"\naddress");
        let (sources, _) = changes(GPS, &gps_as_ntp);
        assert_eq!(sources, [("gps".to_owned(), Change::Restarted { same_kind: false })]);

        let plan = plan(&config(&format!("{GPS}{NTP}")), &config(&moved)).unwrap();
        assert_eq!(plan.to_string(), "removed ntp; restarted gps");
    }

    #[test]
    fn pools_are_compared_as_their_members() {
        let pool = |n: u8| format!("{GPS}{NTP}pool-size = {n}\n");
        let (sources, removed) = changes(&pool(2), &pool(3));
        let names: Vec<(&str, Change)> = sources.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        // A member knows how many the pool has: the kept two restart.
        let restarted = Change::Restarted { same_kind: true };
        assert_eq!(
            names,
            [("gps", Change::Kept), ("ntp-1", restarted), ("ntp-2", restarted), ("ntp-3", Change::Added)]
        );
        assert!(removed.is_empty());
        let (_, removed) = changes(&pool(3), &pool(1));
        assert_eq!(removed, ["ntp-2", "ntp-3"]);
    }

    #[test]
    fn anything_but_the_sources_refuses_the_reload() {
        let clock = format!("[clock]\nmax-drift-ppm = 50\n{GPS}");
        let why = refusal(GPS, &clock);
        assert!(why.contains("[clock] changed") && why.contains("restart tsod"), "{why}");
        let publish = format!("[publish]\npath = \"/tmp/elsewhere\"\n{GPS}");
        assert!(refusal(GPS, &publish).contains("[publish]"));
        let metrics = format!("[metrics]\nlisten = \"127.0.0.1:9100\"\n{GPS}");
        assert!(refusal(GPS, &metrics).contains("[metrics]"));
    }

    #[test]
    fn a_peer_change_needs_a_restart_of_every_site() {
        let why = refusal(&format!("{SITE}{PEER}{GPS}"), &format!("{SITE}{GPS}"));
        assert!(why.contains("[[peer]]") && why.contains("every site"), "{why}");
    }

    #[test]
    fn a_site_keeps_having_local_sources_or_none() {
        let peers_only = format!("{SITE}{PEER}");
        let why = refusal(&format!("{peers_only}{GPS}"), &peers_only);
        assert!(why.contains("local sources"), "{why}");
    }
}
