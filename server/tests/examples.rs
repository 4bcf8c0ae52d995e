//! Every example configuration in `server/examples/` is valid, and the
//! `check-config` command says so (and names the problem when it is not),
//! including a site's TLS files.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::path::PathBuf;
use std::process::Command;

use tsod::config::Config;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    found.sort();
    found
}

#[test]
fn every_example_config_is_valid() {
    let all = examples();
    assert!(all.len() >= 2, "examples missing: {all:?}");
    for path in all {
        Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        // The examples name /etc/tsod/cluster, which is not on this machine.
        let out = Command::new(env!("CARGO_BIN_EXE_tsod"))
            .args(["check-config", "--syntax-only"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn check_config_checks_the_sites_tls_files() {
    let dir = std::env::temp_dir().join(format!("tsod-check-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = dir.join("cluster");
    let status = Command::new(env!("CARGO_BIN_EXE_tsod"))
        .args(["cluster", "init", "--out"])
        .arg(&certs)
        .args(["--site", "bj-a=127.0.0.1", "--site", "xa=127.0.0.1"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let example =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join("cluster-site.toml"))
            .unwrap();
    let path = dir.join("site.toml");
    std::fs::write(&path, example.replace("/etc/tsod/cluster", &certs.display().to_string())).unwrap();
    let check = || Command::new(env!("CARGO_BIN_EXE_tsod")).arg("check-config").arg(&path).output().unwrap();

    let good = check();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("certificate verifies"));

    // Another site's certificate and key installed as bj-a's.
    for ext in ["crt", "key"] {
        std::fs::copy(certs.join(format!("xa.{ext}")), certs.join(format!("bj-a.{ext}"))).unwrap();
    }
    let swapped = check();
    let stderr = String::from_utf8_lossy(&swapped.stderr).into_owned();
    assert!(!swapped.status.success() && stderr.contains("bj-a") && stderr.contains("handshake"), "{stderr}");

    // A missing key is named; --syntax-only does not look.
    std::fs::remove_file(certs.join("bj-a.key")).unwrap();
    let missing = check();
    let stderr = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert!(!missing.status.success() && stderr.contains("bj-a.key"), "{stderr}");
    let syntax =
        Command::new(env!("CARGO_BIN_EXE_tsod")).args(["check-config", "--syntax-only"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("tsod-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[clock]\nmax-drift-ppm = 100\nhorizon = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tsod")).arg("check-config").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("horizon") && stderr.contains("line 3"), "{stderr}");
}

#[test]
fn check_config_refuses_tso_timing_that_cannot_work_at_the_declared_round_trip() {
    let dir = std::env::temp_dir().join(format!("tsod-examples-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("timing.toml");
    let write = |tso: &str| {
        std::fs::write(
            &path,
            format!(
                "[site]\nname = \"a\"\nlisten = \"127.0.0.1:4460\"\ncluster-dir = \"/nonexistent\"\n\
                 [[peer]]\nname = \"b\"\naddress = \"127.0.0.1:4461\"\n[tso]\n{tso}\n"
            ),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_tsod")).args(["check-config", "--syntax-only"]).arg(&path).output().unwrap()
    };
    // The old fixed defaults at a continental round trip: refused, with the minimum.
    let out = write("round-trip-ms = 230\nheartbeat-ms = 50\nelection-timeout-ms = 250");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("election-timeout-ms = 250 ms")
            && stderr.contains("230 ms round trip")
            && stderr.contains("at least 330 ms"),
        "{stderr}"
    );
    let out = write("round-trip-ms = 230\nlease-ms = 400");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && stderr.contains("lease-ms = 400 ms") && stderr.contains("at least 1020 ms"),
        "{stderr}"
    );
    // The same settings at 25 ms are fine, and derived timing is shown.
    let out = write("round-trip-ms = 25\nheartbeat-ms = 50\nelection-timeout-ms = 250\nlease-ms = 400");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = write("round-trip-ms = 230");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("TSO at a 230 ms round trip: heartbeat 115 ms, election 460 ms"), "{stdout}");
}
