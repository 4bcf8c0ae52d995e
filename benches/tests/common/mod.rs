//! Helpers shared by tsbench's end-to-end tests: a scratch directory, and a
//! shared-memory segment the test publishes itself (as the daemon would), so
//! no daemon is needed: the read path does not depend on who wrote it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub,
    reason = "test code: a failed unwrap is a failed test; each test crate uses part of this module"
)]

pub mod tso_server;

use std::fs::{OpenOptions, Permissions};
use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tsod_client::sys;
use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, DriftModel, Ppb, TimeInterval, Timescale, Timestamp};
use tsod_shm::WriteMapping;

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsbench-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the published bound widens with time.
#[derive(Clone, Copy, Debug)]
pub enum Drift {
    /// 23.456 ppm frequency correction, ±2 ppm: a realistic segment.
    Realistic,
    /// Exactly one: the half-width stays what was published.
    None,
}

/// A segment file this test publishes into, kept mapped so it can publish again.
pub struct Segment {
    pub path: PathBuf,
    mapping: WriteMapping,
    writer_instance: u64,
}

impl Segment {
    /// Creates `dir/name` holding a ±`half_width` bound with `status`, valid for an hour.
    pub fn publish(dir: &Scratch, name: &str, status: ClockStatus, half_width: Duration, drift: Drift) -> Self {
        let path = dir.0.join(name);
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(&path).unwrap();
        // Readers refuse a segment others may write, whatever the umask.
        file.set_permissions(Permissions::from_mode(0o600)).unwrap();
        file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
        let mapping = WriteMapping::new(&file).unwrap();
        ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(mapping.segment());
        let segment = Self { path, mapping, writer_instance: 1 };
        segment.republish(status, half_width, drift);
        segment
    }

    /// Publishes a new bound, as the daemon does on every update.
    pub fn republish(&self, status: ClockStatus, half_width: Duration, drift: Drift) {
        let reference = sys::reader_clock_now().unwrap();
        let rates = match drift {
            Drift::Realistic => DriftModel::new(Ppb::new(23_456), Ppb::from_ppm(2)).unwrap().rates(),
            Drift::None => RateBounds::EXACT,
        };
        self.mapping.segment().publish(&PublishedState {
            anchor: Anchor {
                reference,
                interval: TimeInterval::around(Timestamp::from_nanos(1_795_462_647_000_000_000), half_width),
                rates,
                status,
                valid_until: reference.checked_add(Duration::from_secs(3600)).unwrap(),
            },
            disruption_count: 0,
            reference_boottime: sys::boottime_now().unwrap(),
            writer_instance: self.writer_instance,
        });
    }
}

/// Writes a segment at `dir/name` holding a ±20 µs bound with `status`,
/// valid for an hour, as the daemon would publish it.
pub fn publish_segment(dir: &Scratch, name: &str, status: ClockStatus) -> PathBuf {
    Segment::publish(dir, name, status, Duration::from_micros(20), Drift::Realistic).path
}

/// The one-line JSON report a `--json` run printed on stdout (whether or
/// not it succeeded).
pub fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line: {stdout}\n{}", stderr(output));
    serde_json::from_str(&stdout).unwrap()
}

/// What a run printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn u64_at(json: &Value, pointer: &str) -> u64 {
    json.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a count in {json}"))
}

/// Waits (at most `limit`, else fails the test) until process `pid` has
/// mapped the file at `path`: a tsbench that has opened its segment and is
/// about to sample it.
pub fn wait_until_mapped(pid: u32, path: &std::path::Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    // /proc shows the resolved path (a symlinked temporary directory too).
    let needle = path.canonicalize().unwrap_or_else(|_| path.to_owned()).display().to_string();
    loop {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.lines().any(|line| line.ends_with(&needle)) {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not map {needle} within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A reader that closes the pipe before the report is written (as `| head
/// -c1` may) ends tsbench cleanly: success, and no panic on stderr, with
/// `--json` and without. `command` is a tsbench run that lasts long enough
/// (a few hundred ms) for the pipe to be closed well before it reports.
pub fn assert_a_closed_stdout_is_a_clean_exit(command: impl Fn() -> Command) {
    for json in [true, false] {
        let mut command = command();
        if json {
            command.arg("--json");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let status = wait_at_most(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "json {json}: {stderr}");
        assert!(status.success(), "json {json}: {status}, stderr: {stderr}");
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test after that.
pub fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tsbench did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
