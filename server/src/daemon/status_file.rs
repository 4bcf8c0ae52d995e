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

/// Writes `snapshot` to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, snapshot: &StatusSnapshot) -> io::Result<()> {
    let json = snapshot.to_json().map_err(io::Error::other)?;
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Reads a status file.
pub fn read(path: &Path) -> io::Result<StatusSnapshot> {
    let bytes = std::fs::read(path)?;
    StatusSnapshot::from_json(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
