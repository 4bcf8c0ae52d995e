//! The `tsod` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::process::Command;

fn tsod(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tsod")).args(args).output().expect("run tsod")
}

#[test]
fn decode_prints_a_probe_reply_as_json() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../proto-spec/vectors/probe-reply.json"))
            .unwrap(),
    )
    .unwrap();
    let case = &doc["valid"][0];
    let out = tsod(&["decode", case["hex"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, case["decoded"]);
}

#[test]
fn decode_rejects_garbage_with_a_message_and_failure_status() {
    let out = tsod(&["decode", "0102"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated"), "stderr: {stderr}");
}

#[test]
fn help_lists_the_commands() {
    let out = tsod(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("decode"));
}

/// Text a peer, gpsd or an NTP server supplied reaches the operator's
/// terminal escaped: no escape sequence, no forged line.
#[test]
fn status_prints_supplied_text_with_control_characters_escaped() {
    let dir = std::env::temp_dir().join(format!("tsod-cli-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let segment = dir.join("segment");
    let json = r#"{"status":"synchronized","half_width_ns":1000,"frequency_ppb":null,"drift_bound_ppb":null,
        "disruption_count":0,"pid":1,"site":"a\u001b]0;owned\u0007",
        "sources":[{"name":"gps\u001b[2J","kind":"gpsd","usable":true,"falseticker":true,"offset_ns":null,
        "error_ns":null,"samples":1,"rejects":1,"last_error":"bad line\nsite-b up synchronized"}]}"#;
    let snapshot = tsod_proto::observe::StatusSnapshot::from_json(json.as_bytes()).unwrap();
    tsod::daemon::status_file::write(&tsod::daemon::status_file::status_path(&segment), &snapshot).unwrap();
    let out = tsod(&["status", "--segment", segment.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    assert!(text.contains(r"gps\u{1b}[2J") && text.contains(r"bad line\u{a}site-b"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("site-b")), "a forged line: {text}");
    // The JSON form escapes them as JSON does.
    let out = tsod(&["status", "--json", "--segment", segment.to_str().unwrap()]);
    assert!(!out.stdout.contains(&0x1b), "{:?}", String::from_utf8_lossy(&out.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `tsod cluster bootstrap` marks an empty TSO store as part of a new
/// cluster, durably and privately, and refuses a state directory that
/// already holds a store.
#[test]
fn cluster_bootstrap_marks_only_an_empty_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tsod-cli-bootstrap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = tsod(&["cluster", "init", "--out", dir.join("certs").to_str().unwrap(), "--site", "a", "--site", "b"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = dir.join("state").join("tso");
    let config = dir.join("tsod.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nname = \"a\"\nlisten = \"127.0.0.1:7443\"\ncluster-dir = \"{}\"\n\n[tso]\nstate-dir = \"{}\"\n\n\
             [[peer]]\nname = \"b\"\naddress = \"127.0.0.1:7444\"\n",
            dir.join("certs").display(),
            state.display()
        ),
    )
    .unwrap();
    let out = tsod(&["cluster", "bootstrap", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(state.join("new-cluster").is_file());
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    // A store exists (the site ran): no new cluster from it.
    std::fs::write(state.join("raft.redb"), b"").unwrap();
    let out = tsod(&["cluster", "bootstrap", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a TSO store"));
    std::fs::remove_dir_all(&dir).unwrap();
}
