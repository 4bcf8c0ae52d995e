//! Reloading a running daemon with SIGHUP (`systemctl reload tsod`): the
//! `[[source]]` list changes while the published bound carries on, and a
//! file that does not load, or that changes more than the sources, leaves
//! the running configuration in place.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Running, Scratch, realtime, synchronized, tsod_with};
use tsod::daemon::status_file::{self, StatusSnapshot};
use tsod_client::LocalClock;
use tsod_testbed::sim::gpsd::GpsdSim;
use tsod_testbed::sim::ntp::NtpSim;

fn gps_source(gps: &GpsdSim) -> String {
    format!("[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n", gps.local_addr())
}

fn ntp_source(ntp: &NtpSim) -> String {
    format!(
        "[[source]]\nkind = \"ntp\"\nname = \"ntp\"\naddress = \"{}\"\ntimescale = \"utc\"\npoll-interval-ms = 250\n",
        ntp.local_addr()
    )
}

/// Rewrites the daemon's configuration: `extra` sections, its segment, `sources`.
fn rewrite(config: &Path, segment: &Path, extra: &str, sources: &str) {
    std::fs::write(config, format!("{extra}\n[publish]\npath = \"{}\"\n{sources}", segment.display())).unwrap();
}

fn hangup(daemon: &Running) {
    let status = Command::new("kill").args(["-HUP", &daemon.0.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -HUP failed");
}

fn status(segment: &Path) -> Option<StatusSnapshot> {
    status_file::read(&status_file::status_path(segment)).ok()
}

fn names(status: &StatusSnapshot) -> Vec<&str> {
    status.sources.iter().map(|s| s.name.as_str()).collect()
}

/// Waits until the status file satisfies `done`.
fn wait_for(segment: &Path, what: &str, done: impl Fn(&StatusSnapshot) -> bool) -> StatusSnapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = status(segment).filter(|s| done(s)) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: never happened; status: {:?}", status(segment));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads the segment every 50 ms until dropped: every read must give a
/// bound that contains the host clock.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Watch {
    fn start(segment: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let clock = LocalClock::open_path(&segment).unwrap();
            let mut reads = 0;
            while !flag.load(Ordering::Relaxed) {
                let before = realtime();
                let interval = clock.now().unwrap_or_else(|e| panic!("no bound during a reload: {e}"));
                let after = realtime();
                assert!(
                    interval.earliest() <= after && before <= interval.latest(),
                    "{interval} excludes the host clock [{before}, {after}]"
                );
                reads += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            reads
        });
        Self { stop, thread: Some(thread) }
    }

    /// Stops reading; fails the test if a read failed.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("a read during the reload failed")
    }
}

#[test]
fn a_reload_adds_and_removes_sources_while_the_bound_stays() {
    let scratch = Scratch::new("reload", "add-remove");
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let ntp = NtpSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (daemon, segment) = tsod_with(&scratch.0, "", &gps_source(&gps));
    let config = scratch.join("tsod.toml");
    synchronized(&segment);
    wait_for(&segment, "the GPS source is listed", |s| names(s) == ["gps"]);
    let watch = Watch::start(segment.clone());

    rewrite(&config, &segment, "", &format!("{}{}", gps_source(&gps), ntp_source(&ntp)));
    hangup(&daemon);
    let added = wait_for(&segment, "the NTP source is added and sampled", |s| {
        names(s) == ["gps", "ntp"] && s.sources[1].samples > 0
    });
    assert!(added.sources[0].samples > 0, "the GPS source kept its samples: {added:?}");
    assert!(ntp.answered() > 0);

    rewrite(&config, &segment, "", &ntp_source(&ntp));
    hangup(&daemon);
    wait_for(&segment, "the GPS source is removed", |s| names(s) == ["ntp"]);
    // Published from the NTP source alone for a while.
    std::thread::sleep(Duration::from_secs(2));
    let reads = watch.finish();
    assert!(reads > 20, "only {reads} reads");
    assert!(LocalClock::open_path(&segment).unwrap().now().is_ok());
}

#[test]
fn a_broken_or_restart_only_config_leaves_the_running_one() {
    let scratch = Scratch::new("reload", "refused");
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let ntp = NtpSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (mut daemon, segment) = tsod_with(&scratch.0, "", &gps_source(&gps));
    let config = scratch.join("tsod.toml");
    synchronized(&segment);
    wait_for(&segment, "the GPS source is listed", |s| names(s) == ["gps"]);
    let watch = Watch::start(segment.clone());

    // Each would add the NTP source if it were applied.
    let both = format!("{}{}", gps_source(&gps), ntp_source(&ntp));
    let peer = "[site]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\ncluster-dir = \"/nonexistent\"\n\
                [[peer]]\nname = \"b\"\naddress = \"127.0.0.1:9\"\n";
    for (what, extra, sources) in [
        ("TOML garbage", "this is = = not TOML [[[", both.as_str()),
        ("a [clock] change", "[clock]\nmax-drift-ppm = 50\n", both.as_str()),
        ("a [[peer]]", peer, both.as_str()),
    ] {
        rewrite(&config, &segment, extra, sources);
        hangup(&daemon);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(daemon.0.try_wait().unwrap().is_none(), "{what}: the daemon stopped");
        let status = status(&segment).unwrap();
        assert_eq!(names(&status), ["gps"], "{what}: the running sources changed");
    }
    assert_eq!(ntp.answered(), 0, "a refused reload started the NTP source");

    // The running configuration is intact: a good file still reloads.
    rewrite(&config, &segment, "", &both);
    hangup(&daemon);
    wait_for(&segment, "the NTP source is added after the refusals", |s| names(s) == ["gps", "ntp"]);
    let reads = watch.finish();
    assert!(reads > 20, "only {reads} reads");
}
