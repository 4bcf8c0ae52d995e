//! What the C API's tests share: the built `libtsod` installed into a
//! scratch prefix with `install.sh` (so `tsod.pc` is what the C compiler
//! is given), C programs compiled with `pkg-config --cflags --libs tsod`,
//! and real `tsod` daemons on simulated GPS receivers (the testbed's gpsd
//! simulator, whose truth is the host clock), alone or as a three-site
//! cluster with a TSO.
//!
//! The server's `tests/common` cannot be reused here: it names the daemon
//! through `CARGO_BIN_EXE_tsod`, which only the server's own tests have,
//! and builds the PKI through the server crate; this starts the `tsod`
//! binary and its `tsod cluster init` / `bootstrap` commands instead.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tsod_client::LocalClock;
use tsod_proto::observe::{StatusSnapshot, TsoRole, status_path};
use tsod_testbed::sim::gpsd::GpsdSim;

/// A fresh scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `$TMPDIR/tsod-capi-<pid>-<name>`, emptied first.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsod-capi-{}-{name}", std::process::id()));
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

/// A child process killed when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cargo profile this test was built in and its output directory:
/// the test executable is `<target>/<profile dir>/deps/<test>-<hash>`.
fn profile_dir() -> (String, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).expect("the test runs from <target>/<profile>/deps").to_path_buf();
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
    let profile = if name == "debug" { "dev".to_owned() } else { name };
    (profile, dir)
}

/// `cargo build` of `args` in this test's profile and target directory.
/// Cargo builds neither a cdylib nor another package's binary for an
/// integration test, so the tests ask for them (a no-op when up to date).
fn cargo_build(args: &[&str]) {
    let (profile, _) = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // Its output is kept, and shown only if it fails: the test's output is
    // the test's.
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--profile", &profile])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo build {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// The `tsod` daemon binary, built if this test run did not build it.
pub(crate) fn tsod_binary() -> PathBuf {
    let (_, dir) = profile_dir();
    let binary = dir.join("tsod");
    if !binary.is_file() {
        cargo_build(&["-p", "tsod", "--bin", "tsod"]);
    }
    assert!(binary.is_file(), "{} missing after cargo build", binary.display());
    binary
}

/// libtsod built in this profile and installed into `prefix` by
/// `install.sh`; returns `prefix/lib/pkgconfig`, for `PKG_CONFIG_PATH`.
pub(crate) fn install_libtsod(prefix: &Path) -> PathBuf {
    cargo_build(&["-p", "tsod-capi"]);
    let (profile, dir) = profile_dir();
    let target = dir.parent().unwrap();
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .args(["--no-build", "--profile", &profile, "--prefix"])
        .arg(prefix)
        .arg("--target-dir")
        .arg(target)
        .output()
        .unwrap();
    assert!(output.status.success(), "install.sh failed: {}", String::from_utf8_lossy(&output.stderr));
    prefix.join("lib").join("pkgconfig")
}

/// `pkg-config ARGS tsod` with `pkgconfig` searched first: its words.
pub(crate) fn pkg_config(pkgconfig: &Path, args: &[&str]) -> Vec<String> {
    let output = Command::new("pkg-config").env("PKG_CONFIG_PATH", pkgconfig).args(args).arg("tsod").output().unwrap();
    assert!(output.status.success(), "pkg-config {args:?} tsod: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().split_whitespace().map(str::to_owned).collect()
}

/// Compiles the C program `source` against the installed libtsod (the
/// flags are pkg-config's, and an rpath to its libdir so it runs without
/// `LD_LIBRARY_PATH`) into `exe`, with `extra` compiler flags.
pub(crate) fn compile_c(pkgconfig: &Path, source: &Path, exe: &Path, extra: &[&str]) {
    let flags = pkg_config(pkgconfig, &["--cflags", "--libs"]);
    let libdir = pkg_config(pkgconfig, &["--variable=libdir"]).concat();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .args(extra)
        .arg(source)
        .arg("-o")
        .arg(exe)
        .args(&flags)
        .arg(format!("-Wl,-rpath,{libdir}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{cc} {} {flags:?} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `exe` with `args` and `env`, with the output printed (the test
/// shows it with --nocapture, or when it fails).
pub(crate) fn run(exe: &Path, args: &[&Path], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(exe);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Starts `tsod run` with `config` (TOML, without `[publish]`) publishing
/// in `dir`; returns the daemon and the segment path.
pub(crate) fn start_tsod(dir: &Path, config: &str) -> (Running, PathBuf) {
    let segment = dir.join("segment");
    let path = dir.join("tsod.toml");
    std::fs::write(&path, format!("{config}\n[publish]\npath = \"{}\"\n", segment.display())).unwrap();
    let child = Command::new(tsod_binary())
        .args(["run", "--config"])
        .arg(&path)
        // TSOD_TEST_LOG=tsod=debug shows the daemons' logs in a test's output.
        .env("TSOD_LOG", std::env::var("TSOD_TEST_LOG").unwrap_or_else(|_| "warn,openraft=off".into()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start tsod");
    (Running(child), segment)
}

/// One `[[source]]` for the simulated GPS receiver `gps`.
pub(crate) fn gps_source(gps: &GpsdSim) -> String {
    format!("\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n", gps.local_addr())
}

/// Waits until the segment gives a bound (20 s at most).
pub(crate) fn wait_synchronized(segment: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(clock) = LocalClock::open_path(segment) {
            if clock.wait_until_synchronized(Duration::from_secs(20)).is_ok() {
                return;
            }
        }
        if Instant::now() >= deadline {
            let status = std::fs::read_to_string(status_path(segment)).unwrap_or_else(|e| format!("(none: {e})"));
            panic!("tsod did not synchronize within 20 s ({}); its status: {status}", segment.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One daemon on a simulated GPS receiver: what the benchmark reads.
pub(crate) struct Single {
    pub(crate) segment: PathBuf,
    _daemon: Running,
    _gps: GpsdSim,
}

/// Starts [`Single`] in `dir` and waits for its bound.
pub(crate) fn single(dir: &Path) -> Single {
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let (daemon, segment) = start_tsod(dir, &gps_source(&gps));
    wait_synchronized(&segment);
    Single { segment, _daemon: daemon, _gps: gps }
}

/// The sites of [`Cluster`], in order.
pub(crate) const SITES: [&str; 3] = ["bj-a", "bj-b", "xa"];
/// Each site's simulated clock: offset (ns) and frequency error (ppb), so
/// the sites disagree with the host (and each other) as real ones would.
const CLOCKS: [(i64, i64); 3] = [(3_000_000_000, 40_000), (-2_500_000, -25_000), (7_000_000, 0)];

/// Three sites with a TSO, each on its own wrong simulated clock and its
/// own simulated GPS, peered with each other, and the cluster file that
/// names them.
pub(crate) struct Cluster {
    /// `cluster.json`: `{"ca": ..., "sites": [{"name", "address"}]}`.
    pub(crate) file: PathBuf,
    /// The cluster directory (`tsod cluster init --out`).
    pub(crate) certs: PathBuf,
    /// Each site's segment, in [`SITES`] order.
    pub(crate) segments: Vec<PathBuf>,
    _daemons: Vec<Running>,
    _gps: Vec<GpsdSim>,
}

/// Runs `tsod ARGS`, which must succeed.
fn tsod_command(args: &[&std::ffi::OsStr]) {
    let output = Command::new(tsod_binary()).args(args).output().unwrap();
    assert!(output.status.success(), "tsod {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Starts [`Cluster`] under `dir`: the PKI from `tsod cluster init`, each
/// site's TSO store marked new by `tsod cluster bootstrap`; waits until
/// every site has a bound and one leads the TSO with a lease.
pub(crate) fn cluster(dir: &Path) -> Cluster {
    let certs = dir.join("certs");
    let mut init: Vec<std::ffi::OsString> = vec!["cluster".into(), "init".into(), "--out".into(), certs.clone().into()];
    for site in SITES {
        init.push("--site".into());
        init.push(format!("{site}=127.0.0.1").into());
    }
    tsod_command(&init.iter().map(std::ffi::OsString::as_os_str).collect::<Vec<_>>());
    let ports: Vec<u16> = SITES.iter().map(|_| tsod_testbed::ports::free_udp_port().unwrap()).collect();
    let (mut daemons, mut gps_sims, mut segments) = (Vec::new(), Vec::new(), Vec::new());
    for (i, name) in SITES.iter().enumerate() {
        let site_dir = dir.join(name);
        std::fs::create_dir_all(&site_dir).unwrap();
        let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let (offset, frequency) = CLOCKS[i];
        let mut peers = String::new();
        for (j, peer) in SITES.iter().enumerate() {
            if j != i {
                peers.push_str(&format!("\n[[peer]]\nname = \"{peer}\"\naddress = \"127.0.0.1:{}\"\n", ports[j]));
            }
        }
        let config = format!(
            "[clients]\nallow-anonymous = true\nmax-requests-per-second = 1000000\n\
             [site]\nname = \"{name}\"\nlisten = \"127.0.0.1:{}\"\ncluster-dir = \"{}\"\n\
             probe-interval-ms = 250\ngossip-interval-ms = 250\n\
             [tso]\nstate-dir = \"{}\"\n\
             [testing.simulated-clock]\noffset-ns = {offset}\nfrequency-ppb = {frequency}\n{}{peers}",
            ports[i],
            certs.display(),
            site_dir.join("tso").display(),
            gps_source(&gps),
        );
        // `bootstrap` reads the configuration for its [tso] state-dir.
        let bootstrap_config = site_dir.join("bootstrap.toml");
        std::fs::write(
            &bootstrap_config,
            format!("{config}\n[publish]\npath = \"{}\"\n", site_dir.join("segment").display()),
        )
        .unwrap();
        tsod_command(&["cluster".as_ref(), "bootstrap".as_ref(), "--config".as_ref(), bootstrap_config.as_os_str()]);
        let (daemon, segment) = start_tsod(&site_dir, &config);
        daemons.push(daemon);
        gps_sims.push(gps);
        segments.push(segment);
    }
    let sites: Vec<serde_json::Value> = SITES
        .iter()
        .zip(&ports)
        .map(|(name, port)| serde_json::json!({ "name": name, "address": SocketAddr::from(([127, 0, 0, 1], *port)) }))
        .collect();
    let file = dir.join("cluster.json");
    let json = serde_json::json!({ "ca": certs.join("ca.crt"), "sites": sites });
    std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    for segment in &segments {
        wait_synchronized(segment);
    }
    wait_for_leader(&segments, Duration::from_secs(30));
    Cluster { file, certs, segments, _daemons: daemons, _gps: gps_sims }
}

impl Cluster {
    /// A client certificate and key for `name` (`tsod cluster add-client`).
    pub(crate) fn add_client(&self, name: &str) -> (PathBuf, PathBuf) {
        tsod_command(&[
            "cluster".as_ref(),
            "add-client".as_ref(),
            "--dir".as_ref(),
            self.certs.as_os_str(),
            "--name".as_ref(),
            name.as_ref(),
        ]);
        (self.certs.join(format!("{name}.client.crt")), self.certs.join(format!("{name}.client.key")))
    }
}

/// Waits until a site reports leading the TSO with a committed lease.
fn wait_for_leader(segments: &[PathBuf], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        for segment in segments {
            let status = std::fs::read(status_path(segment)).ok().and_then(|b| StatusSnapshot::from_json(&b).ok());
            if let Some(tso) = status.and_then(|s| s.tso) {
                if tso.role == TsoRole::Leader && tso.lease_end_ns.is_some_and(|e| e > 0) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "no TSO leader within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
