//! The segment both benches read: written by the bench itself, as the
//! daemon would (a synchronized state valid for an hour), so no daemon is
//! needed: the read path does not depend on who wrote the segment.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tsod_client::sys;
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, DriftModel, Ppb, TimeInterval, Timescale};
use tsod_shm::WriteMapping;

/// A published segment in the temporary directory, removed on drop.
pub(crate) struct BenchSegment {
    path: PathBuf,
    _writer: WriteMapping,
}

impl BenchSegment {
    /// Writes `tsod-bench-<name>-<pid>`: a header of this boot and a
    /// synchronized ±20 µs interval around the system clock, valid for an hour.
    pub(crate) fn publish(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tsod-bench-{name}-{}", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
        let writer = WriteMapping::new(&file).unwrap();
        ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(writer.segment());
        let reference = sys::reader_clock_now().unwrap();
        writer.segment().publish(&PublishedState {
            anchor: Anchor {
                reference,
                interval: TimeInterval::around(sys::realtime_now().unwrap(), Duration::from_micros(20)),
                rates: DriftModel::new(Ppb::new(23_456), Ppb::from_ppm(2)).unwrap().rates(),
                status: ClockStatus::Synchronized,
                valid_until: reference.checked_add(Duration::from_secs(3600)).unwrap(),
            },
            disruption_count: 0,
            reference_boottime: sys::boottime_now().unwrap(),
            writer_instance: 1,
        });
        Self { path, _writer: writer }
    }

    /// The segment file, for `LocalClock::open_path`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BenchSegment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
