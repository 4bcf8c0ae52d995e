//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

pub(crate) mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tsod_client::LocalClock;
use tsod_proto::Timestamp;

/// A fresh scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `$TMPDIR/tsod-<suite>-<pid>-<name>`, emptied first.
    pub(crate) fn new(suite: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsod-{suite}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails the test unless every `(program, package)` is installed and the
/// test runs as root (chronyd and gpsfake start as root and drop
/// privileges). Tests that call this are `#[ignore]`d with the reason when
/// `build.rs` found the programs missing, so reaching here without them
/// means they vanished since the build, or CI did not install them.
pub(crate) fn require(programs: &[(&str, &str)]) {
    for (program, package) in programs {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
            .unwrap_or(false)
            || ["/usr/sbin", "/usr/bin"].iter().any(|d| Path::new(d).join(program).is_file());
        assert!(found, "{program} is not installed: apt-get install {package} (the README's test command does)");
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    assert!(root, "chronyd and gpsfake must be started as root");
}

/// A child process killed when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child started as the leader of its own process group
/// (`CommandExt::process_group(0)`) with the processes it starts (gpsfake
/// runs gpsd): when dropped, the group is asked to stop (SIGTERM, so the
/// leader can stop what it started), then killed after 3 s. A SIGKILL to
/// the leader alone would leave its children running.
pub(crate) struct RunningGroup(pub(crate) Child);

impl Drop for RunningGroup {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        let Ok(id) = i32::try_from(self.0.id()) else { return };
        let group = nix::unistd::Pid::from_raw(id);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What is left of the group (the leader, or a child it did not stop).
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// A port for a daemon to bind in a moment (see `tsod_testbed::ports`).
pub(crate) fn free_udp_port() -> u16 {
    tsod_testbed::ports::free_udp_port().unwrap()
}

/// Starts chronyd on `port`. `source` is its time: `None` serves its own
/// clock at stratum 1; `Some((upstream, offset))` follows another chronyd
/// with a deliberate offset (chrony's `server … offset`), so it serves a
/// consistently wrong time while claiming stratum 2 and a tiny root
/// distance: a confident liar, not a broken server.
pub(crate) fn chronyd(dir: &Path, port: u16, source: Option<(u16, &str)>) -> Running {
    let conf = dir.join(format!("chrony-{port}.conf"));
    let time = match source {
        None => "local stratum 1\n".to_owned(),
        Some((upstream, offset)) => {
            format!("server 127.0.0.1 port {upstream} iburst minpoll -4 maxpoll -4 offset {offset}\n")
        }
    };
    std::fs::write(
        &conf,
        format!(
            "port {port}\n{time}allow 127.0.0.1\ncmdport 0\npidfile {}\n",
            dir.join(format!("chrony-{port}.pid")).display()
        ),
    )
    .unwrap();
    spawn_chronyd(&conf)
}

/// Starts chronyd in the foreground on configuration file `conf`, never
/// touching the host clock (`-x`).
pub(crate) fn spawn_chronyd(conf: &Path) -> Running {
    let child = Command::new("chronyd")
        .args(["-d", "-x", "-u", "root", "-f"])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chronyd");
    Running(child)
}

/// One `[[source]]` table for an NTP server on loopback, polled every 250 ms.
pub(crate) fn ntp_source(name: &str, port: u16) -> String {
    format!(
        "\n[[source]]\nkind = \"ntp\"\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ntimescale = \"utc\"\npoll-interval-ms = 250\n"
    )
}

/// Starts `tsod run` with `sources` (TOML `[[source]]` tables) and `extra`
/// configuration, publishing in `dir`; returns the daemon and the segment path.
pub(crate) fn tsod_with(dir: &Path, extra: &str, sources: &str) -> (Running, PathBuf) {
    let segment = dir.join("segment");
    let conf = format!("{extra}\n[publish]\npath = \"{}\"\n{sources}", segment.display());
    let path = dir.join("tsod.toml");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tsod"))
        .args(["run", "--config"])
        .arg(&path)
        // TSOD_TEST_LOG=tsod=debug shows the daemons' logs in a test's output.
        .env("TSOD_LOG", std::env::var("TSOD_TEST_LOG").unwrap_or_else(|_| "warn,openraft=off".into()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start tsod");
    (Running(child), segment)
}

/// [`tsod_with`] with the default `[clock]` section.
pub(crate) fn tsod(dir: &Path, sources: &str) -> (Running, PathBuf) {
    tsod_with(dir, "", sources)
}

pub(crate) fn realtime() -> Timestamp {
    Timestamp::from_nanos(u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap())
}

/// Opens the segment once it exists and waits for a bound.
pub(crate) fn synchronized(segment: &Path) -> LocalClock {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(clock) = LocalClock::open_path(segment) {
            if clock.wait_until_synchronized(Duration::from_secs(20)).is_ok() {
                return clock;
            }
        }
        if Instant::now() >= deadline {
            // Say why: the daemon's own account of its sources and state.
            let mut status = segment.as_os_str().to_owned();
            status.push(".status.json");
            let report = std::fs::read_to_string(&status).unwrap_or_else(|e| format!("(no status file: {e})"));
            panic!("tsod did not synchronize within 20 s ({}); its status: {report}", segment.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the clock for `span`, checking every interval against the host
/// clock read just before and just after; returns the half-widths seen (ns).
/// With `must_be_bounded` false, errors (no bound, e.g. while sources that
/// disagree arrive one by one) are allowed: only a wrong bound fails.
pub(crate) fn check_truth(clock: &LocalClock, span: Duration, must_be_bounded: bool) -> Vec<u64> {
    let mut widths = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let before = realtime();
        let interval = match clock.now() {
            Ok(interval) => interval,
            Err(e) if !must_be_bounded => {
                eprintln!("no bound for now: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => panic!("expected a bound: {e}"),
        };
        let after = realtime();
        assert!(
            interval.earliest() <= after && before <= interval.latest(),
            "{interval} excludes the host clock [{before}, {after}]"
        );
        widths.push(u64::try_from(interval.half_width().as_nanos()).unwrap());
        std::thread::sleep(Duration::from_millis(2));
    }
    widths.sort_unstable();
    widths
}
