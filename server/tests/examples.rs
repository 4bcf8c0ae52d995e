//! Every example configuration in `server/examples/` is valid, and the
//! `check-config` command says so (and names the problem when it is not).

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
        let out = Command::new(env!("CARGO_BIN_EXE_tsod")).arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
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
