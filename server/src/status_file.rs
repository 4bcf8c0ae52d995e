//! The daemon's status for `tsod status`: a small JSON file beside the
//! segment, `<segment>.status.json`, replaced atomically (write + rename)
//! about once a second. The segment carries the bound; this file carries the
//! explanation (sources, falsetickers, the drift model) for people and scripts.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tsod_proto::ClockStatus;

use crate::engine::{SourceState, Tick};

/// What `tsod status --json` prints (stable field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The published status.
    pub status: ClockStatus,
    /// Half-width of the published interval at its reference, ns.
    pub half_width_ns: Option<u64>,
    /// Measured frequency error of the reader clock, ppb.
    pub frequency_ppb: Option<i64>,
    /// Bound ρ on the residual rate error, ppb.
    pub drift_bound_ppb: Option<i64>,
    /// Disruptions seen on the segment.
    pub disruption_count: u64,
    /// The daemon's process id.
    pub pid: u32,
    /// Per source.
    pub sources: Vec<SourceSnapshot>,
}

/// One source in a [`StatusSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Configured name.
    pub name: String,
    /// `ntp`, `gpsd`, `kernel` or `peer`.
    pub kind: String,
    /// Has a sample young enough to use.
    pub usable: bool,
    /// Rejected by selection.
    pub falseticker: bool,
    /// Its midpoint minus the bound's, ns.
    pub offset_ns: Option<i64>,
    /// Half-width of its projected interval, ns.
    pub error_ns: Option<u64>,
    /// Samples accepted.
    pub samples: u64,
    /// Inputs refused.
    pub rejects: u64,
    /// Why the last input was refused.
    pub last_error: Option<String>,
}

impl StatusSnapshot {
    /// The snapshot of a tick and the engine's sources.
    pub fn new<'a>(tick: &Tick, sources: impl Iterator<Item = &'a SourceState>) -> Self {
        let anchor = &tick.state.anchor;
        Self {
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
                    kind: serde_json::to_value(s.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    usable: s.usable,
                    falseticker: s.falseticker,
                    offset_ns: s.offset.map(|o| o.as_nanos()),
                    error_ns: s.error.map(|e| u64::try_from(e.as_nanos()).unwrap_or(u64::MAX)),
                    samples: s.samples,
                    rejects: s.rejects,
                    last_error: s.last_error.clone(),
                })
                .collect(),
        }
    }
}

/// `<segment>.status.json`.
pub fn status_path(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".status.json");
    segment.with_file_name(name)
}

/// Writes `snapshot` to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, snapshot: &StatusSnapshot) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(snapshot).map_err(io::Error::other)?;
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Reads a snapshot.
pub fn read(path: &Path) -> io::Result<StatusSnapshot> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
