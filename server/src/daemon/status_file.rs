//! The status file: a [`StatusSnapshot`] (the schema is
//! [`tsod_proto::observe`], shared with every reader) written beside the
//! segment about once a second, replaced atomically (write + rename), and
//! read back by `tsod status`. The segment carries the bound; this file
//! carries the explanation.

use std::io;
use std::path::Path;

use tsod_proto::observe::SourceSnapshot;
pub use tsod_proto::observe::{StatusSnapshot, status_path};

use crate::engine::{SourceState, Tick};
use crate::net::PeerTable;

/// The snapshot of a tick and the engine's sources (no cluster part).
pub fn snapshot<'a>(tick: &Tick, sources: impl Iterator<Item = &'a SourceState>) -> StatusSnapshot {
    let anchor = &tick.state.anchor;
    StatusSnapshot {
        status: anchor.status,
        half_width_ns: anchor
            .status
            .is_bounded()
            .then(|| u64::try_from(anchor.interval.half_width().as_nanos()).unwrap_or(u64::MAX)),
        frequency_ppb: tick.model.map(|m| m.frequency().get()),
        drift_bound_ppb: tick.model.map(|m| m.bound().get()),
        disruption_count: tick.state.disruption_count,
        pid: std::process::id(),
        sources: sources
            .map(|s| SourceSnapshot {
                name: s.name.clone(),
                kind: s.kind,
                usable: s.usable,
                falseticker: s.falseticker,
                offset_ns: s.offset.map(|o| o.as_nanos()),
                error_ns: s.error.map(|e| u64::try_from(e.as_nanos()).unwrap_or(u64::MAX)),
                samples: s.samples,
                rejects: s.rejects,
                last_error: s.last_error.clone(),
            })
            .collect(),
        site: None,
        local_status: None,
        peers: Vec::new(),
        endpoint: Default::default(),
        tso: None,
        bound_latest_ns: anchor.status.is_bounded().then(|| anchor.interval.latest().as_nanos()),
        ntp_server: None,
    }
}

/// Adds a cluster site's name, local basis, peers, endpoint counters and
/// TSO to `snapshot`.
pub fn add_cluster(snapshot: &mut StatusSnapshot, site: &str, local: tsod_proto::ClockStatus, peers: &PeerTable) {
    snapshot.site = Some(site.to_owned());
    snapshot.local_status = Some(local);
    snapshot.peers = peers.snapshot();
    snapshot.endpoint = peers.counters.snapshot();
    snapshot.tso = peers.tso.get().map(|t| t.status());
}

/// Writes `snapshot` to `path` atomically: into a new file of a random
/// name beside it, created exclusively and never through a symlink
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0644), then renamed over `path`
/// (a rename replaces a symlink at `path` itself, never its target). So a
/// local user who can write the directory cannot make the daemon write
/// through a link they planted.
pub fn write(path: &Path, snapshot: &StatusSnapshot) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let json = snapshot.to_json().map_err(io::Error::other)?;
    let random = ring::rand::SystemRandom::new();
    for _ in 0..8 {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&random, &mut bytes).map_err(|_| io::Error::other("no randomness"))?;
        let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        tmp_name.push(format!(".{:016x}.tmp", u64::from_ne_bytes(bytes)));
        let tmp = path.with_file_name(tmp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        let mut file = match file {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => other?,
        };
        let written = file.write_all(&json).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written;
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name beside the status file"))
}

/// `text` with every control character and bidirectional-override
/// character written as `\u{..}`: for printing text a peer, gpsd or an NTP
/// server supplied (names, refusal reasons) on an operator's terminal,
/// where an escape sequence could rewrite the screen or a newline forge a line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().saturating_add(8));
    for c in text.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Reads a status file.
pub fn read(path: &Path) -> io::Result<StatusSnapshot> {
    let bytes = std::fs::read(path)?;
    StatusSnapshot::from_json(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tsod-status-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sample() -> StatusSnapshot {
        let text = r#"{"status":"synchronized","half_width_ns":1000,"frequency_ppb":null,"drift_bound_ppb":null,
            "disruption_count":0,"pid":1,"sources":[]}"#;
        StatusSnapshot::from_json(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = scratch("symlink");
        let path = dir.join("segment.status.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // The name the daemon used to write through, and the status file itself.
        std::os::unix::fs::symlink(&victim, dir.join("segment.status.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write(&path, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(read(&path).unwrap(), sample());
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 3, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_characters_are_printed_escaped() {
        assert_eq!(printable("gps-a"), "gps-a");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\nsite ok"), "x\\u{a}site ok");
        assert_eq!(printable("\u{202E}evil"), "\\u{202e}evil");
        assert_eq!(printable("µs ±"), "µs ±");
    }
}
