//! The testbed runs each site's daemon in its own process group: a
//! `--tsod` wrapper that forks the daemon (a profiler, a shell script) is
//! paused, resumed and killed with it, and no daemon outlives the cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::Scratch;
use tsod_testbed::cluster::{Cluster, ClusterPlan};
use tsod_testbed::spec::topology::Topology;

/// The state letter of process `pid` (`R`, `S`, `T`, `Z` …), `None` once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S …": the comm may hold spaces, the state follows its ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Gone, or a zombie nobody has reaped yet: either way it runs no more.
fn dead(pid: u32) -> bool {
    matches!(state(pid), None | Some('Z' | 'X'))
}

#[test]
fn a_forking_wrapper_is_paused_resumed_and_killed_with_its_daemon() {
    let scratch = Scratch::new("testbed", "process-group");
    // Not `exec`: the shell forks the daemon and waits for it, as heaptrack does.
    let wrapper = scratch.join("wrapper.sh");
    std::fs::write(&wrapper, format!("#!/bin/sh\n{} \"$@\"\necho the daemon ended\n", env!("CARGO_BIN_EXE_tsod")))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plan = ClusterPlan::from_topology(&Topology::builtin("pair").unwrap());
    let mut cluster = Cluster::start(&plan, &wrapper, &scratch.join("work")).unwrap();
    let wrappers: Vec<u32> = cluster.sites().iter().map(|s| s.pid().unwrap()).collect();
    let mut daemons = Vec::new();
    for &w in &wrappers {
        wait_until("the wrapper started its daemon", || !children(w).is_empty());
        daemons.push(children(w)[0]);
    }

    cluster.pause(0).unwrap();
    wait_until("the paused site's daemon stopped", || state(daemons[0]) == Some('T'));
    // Its stopping child wakes the wrapper (SIGCHLD) before the wrapper's
    // own SIGSTOP takes: on a busy host it shows `R` for a moment first.
    // Paused alone, without the group, it would never show `T`.
    wait_until("the wrapper is paused with it", || state(wrappers[0]) == Some('T'));
    assert_ne!(state(daemons[1]), Some('T'), "the other site runs on");
    cluster.resume(0).unwrap();
    wait_until("the resumed site's daemon runs", || state(daemons[0]).is_some_and(|s| s != 'T'));

    cluster.kill(0);
    wait_until("the killed site's daemon died with its wrapper", || dead(daemons[0]) && dead(wrappers[0]));
    assert!(!dead(daemons[1]), "the other site's daemon lives");

    drop(cluster);
    wait_until("no daemon outlives the cluster", || daemons.iter().all(|&d| dead(d)));
}
