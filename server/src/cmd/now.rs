//! `tsod now [--json]`: the local daemon's interval, read the way an
//! application reads it (through `tsod-client`).

use std::path::PathBuf;

use anyhow::Context;
use tsod_client::LocalClock;

pub(crate) fn run(segment: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let clock = match segment {
        Some(path) => LocalClock::open_path(path),
        None => LocalClock::open(),
    }
    .context("opening the local tsod segment")?;
    let status = clock.status()?;
    let interval = clock.now().with_context(|| format!("reading {} (status {status})", clock.path().display()))?;
    if json {
        let value = serde_json::json!({
            "earliest_ns": interval.earliest().as_nanos(),
            "latest_ns": interval.latest().as_nanos(),
            "status": status.name(),
        });
        super::print_line(&value.to_string())
    } else {
        super::print_line(&format!("{interval} ±{:?} ({status})", interval.half_width()))
    }
}
