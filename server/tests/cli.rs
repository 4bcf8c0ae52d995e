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
