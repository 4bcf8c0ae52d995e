//! The gpsd source's I/O: a TCP connection to gpsd, `?WATCH` for JSON and
//! PPS, and one line at a time through the pure functions of
//! [`crate::sources::gpsd`]. gpsd stamps events with the host's real
//! `CLOCK_REALTIME`, so the host clock (not a simulated one) is read here.
//!
//! A PPS sample (µs-class) must not be displaced by the next NMEA one
//! (hundreds of ms): the task keeps the last sample of each class and sends
//! the one whose projection to now is narrowest, as measured.

use std::time::Duration;

use crate::clock::{Clock, ClockReading, SystemClock, realtime_rate_bound};
use crate::engine::SourceId;
use crate::sample::Sample;
use crate::sources::gpsd::{self, GpsdMessage, GpsdParams, MAX_LINE, WATCH};
use crate::timescale::{ToService, spans_possible_leap_step};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::warn;
use tsod_proto::{DriftModel, Ppb};

use super::event::SourceEvent as Event;
use crate::site::SiteView;

/// Settings of one gpsd source task.
pub(super) struct GpsdTask {
    pub(super) id: SourceId,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) params: GpsdParams,
    pub(super) to_service: ToService,
    pub(super) max_drift: Ppb,
    /// The site's view, whose measured drift model chooses between the
    /// latest PPS and serial samples (the datasheet bound until measured).
    pub(super) view: watch::Receiver<SiteView>,
}

/// Runs until the daemon stops, reconnecting with backoff.
pub(super) async fn gpsd_task(mut task: GpsdTask, tx: mpsc::Sender<Event>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match follow(&mut task, &tx, &mut backoff).await {
            Ok(()) => return,
            Err(reason) => {
                if tx.send(Event::Reject(task.id, reason.clone())).await.is_err() {
                    return;
                }
                warn!(source = %task.name, %reason, "gpsd source failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(64));
            }
        }
    }
}

/// The last sample of each class.
#[derive(Default)]
struct Recent {
    pps: Option<Sample>,
    serial: Option<Sample>,
}

async fn follow(task: &mut GpsdTask, tx: &mpsc::Sender<Event>, backoff: &mut Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect(&task.address).await.map_err(|e| format!("connect {}: {e}", task.address))?;
    stream.write_all(WATCH.as_bytes()).await.map_err(|e| format!("send WATCH: {e}"))?;
    let mut reader = BufReader::new(stream);
    let datasheet = DriftModel::symmetric(task.max_drift).map_err(|e| e.to_string())?;
    let mut recent = Recent::default();
    let mut line = Vec::with_capacity(1024);
    let mut last_bound = None;
    loop {
        line.clear();
        let n = read_capped_line(&mut reader, &mut line).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("gpsd closed the connection".into());
        }
        let reading = SystemClock.read().map_err(|e| format!("clock: {e}"))?;
        // How fast realtime may have run between the event and this read:
        // the wider bound of the kernel's discipline state now and at the
        // previous line (`realtime_rate_bound` says what it assumes).
        let kernel = tsod_shm::kernel_clock_state().ok();
        let now_bound = realtime_rate_bound(kernel.as_ref());
        task.params.slew_bound = last_bound.map_or(now_bound, |last: Ppb| last.max(now_bound));
        last_bound = Some(now_bound);
        *backoff = Duration::from_secs(1);
        let choose = task.view.borrow().drift.unwrap_or(datasheet);
        let Some(event) = handle_line(task, &line, &reading, &mut recent, &choose) else { continue };
        if tx.send(event).await.is_err() {
            return Ok(());
        }
    }
}

/// One gpsd line to the event for the engine, if it carries one.
fn handle_line(
    task: &mut GpsdTask,
    line: &[u8],
    reading: &ClockReading,
    recent: &mut Recent,
    choose: &DriftModel,
) -> Option<Event> {
    if line.len() > MAX_LINE {
        return Some(Event::Reject(task.id, "line too long".into()));
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Some(Event::Reject(task.id, "line is not UTF-8".into()));
    };
    let sample = match gpsd::parse_line(text) {
        Err(reject) => return Some(Event::Reject(task.id, format!("gpsd line refused: {}", reject.name()))),
        // The host's realtime may step a whole second at a month boundary
        // (the kernel applying a leap): an event read across one is refused.
        Ok(GpsdMessage::Pps(e) | GpsdMessage::Toff(e)) if spans_possible_leap_step(e.clock, reading.realtime) => {
            return Some(Event::Reject(task.id, "event read across a possible leap step of the host clock".into()));
        }
        Ok(GpsdMessage::Pps(pps)) => gpsd::pps_sample(&pps, reading, &task.params).map(|s| (s, true)),
        Ok(GpsdMessage::Toff(toff)) => gpsd::toff_sample(&toff, reading, &task.params).map(|s| (s, false)),
        Ok(GpsdMessage::Tpv(tpv)) => gpsd::tpv_sample(&tpv, reading, &task.params).map(|s| (s, false)),
        Ok(GpsdMessage::Error { message }) => return Some(Event::Reject(task.id, format!("gpsd: {message}"))),
        Ok(_) => return None,
    };
    let (mut sample, is_pps) = match sample {
        Ok(found) => found,
        Err(reject) => return Some(Event::Reject(task.id, format!("no sample: {}", reject.name()))),
    };
    // gpsd announces no leap: the schedule decides, or the hull of every case.
    sample.interval = task.to_service.convert(sample.interval, gpsd::LEAP_ANNOUNCEMENT);
    if is_pps {
        recent.pps = Some(sample);
    } else {
        recent.serial = Some(sample);
    }
    let width = |s: &Sample| choose.extrapolate(s.interval, s.at, reading.raw).map(|i| i.width());
    let best =
        [recent.pps, recent.serial].into_iter().flatten().filter(|s| width(s).is_some()).min_by_key(|s| width(s));
    best.map(|s| Event::Sample(task.id, s))
}

/// Reads one line (up to and including `\n`) into `line`, never buffering
/// more than `MAX_LINE + 1` bytes of it: a longer line is consumed to its end
/// and reported by its length. Returns the bytes consumed (0 at end of stream).
async fn read_capped_line(reader: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i.saturating_add(1), true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_add(1).saturating_sub(line.len());
        line.extend_from_slice(chunk.get(..take.min(room)).unwrap_or_default());
        reader.consume(take);
        consumed = consumed.saturating_add(take);
        if done {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return Ok(consumed);
        }
    }
}
