//! A site's status file (`<segment>.status.json`, rewritten by its daemon
//! about once a second), read into the daemon's own schema,
//! [`StatusSnapshot`] (`tsod_proto::observe`): the live view, the
//! timeline's polls and the TSO's leader all read it through [`read`].

use std::path::Path;

use tsod_proto::observe::StatusSnapshot;

/// The status file at `path`; `None` when there is none yet or it is not a
/// status file (the daemon replaces it atomically, so a half-written one
/// is not seen).
pub fn read(path: &Path) -> Option<StatusSnapshot> {
    StatusSnapshot::from_json(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use tsod_proto::ClockStatus;

    use super::*;

    #[test]
    fn reads_what_the_daemon_writes_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("tsod-testbed-status-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment.status.json");
        assert_eq!(read(&path), None, "no file yet");
        let old = br#"{"status":"degraded","half_width_ns":1500,"frequency_ppb":null,"drift_bound_ppb":null,
            "disruption_count":0,"pid":7,"sources":[]}"#;
        std::fs::write(&path, old).unwrap();
        let status = read(&path).unwrap();
        assert_eq!((status.status, status.half_width_ns, &status.tso), (ClockStatus::Degraded, Some(1500), &None));
        std::fs::write(&path, status.to_json().unwrap()).unwrap();
        assert_eq!(read(&path), Some(status));
        std::fs::write(&path, br#"{"status":"fine"}"#).unwrap();
        assert_eq!(read(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
