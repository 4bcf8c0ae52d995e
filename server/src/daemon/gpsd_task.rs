//! The gpsd source's I/O: a TCP connection to gpsd, `?WATCH` for JSON and
//! PPS, and one line at a time through the pure functions of
//! [`crate::sources::gpsd`]. gpsd stamps events with the host's real
//! `CLOCK_REALTIME`, so the host clock (not a simulated one) is read here.
//!
//! A PPS sample (µs-class) must not be displaced by the next NMEA one
//! (hundreds of ms): the task keeps the last sample of each class and sends
//! the one whose projection to now is narrowest, as measured.
//!
//! Who can reach it: gpsd listens on TCP (127.0.0.1:2947 by default), a
//! port any local user may bind while gpsd is down. On loopback the task
//! looks up who owns the listening end (`/proc/net/tcp`, `tcp6`) and talks
//! only to root, the `gpsd` system user or its own user; anything else is
//! an impostor, refused and retried. A gpsd that stops talking (hung, or a
//! listener that never answers) is dropped after [`SILENCE`] and the
//! connection made again; connecting and sending `?WATCH` have their own
//! timeouts. What remains: a process running as root or as `gpsd` is
//! trusted (it could feed the receiver's serial line anyway), and a remote
//! gpsd is whoever answers at its address.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
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
    /// Where the sample handed on is recorded as resting on `PPS` or `GPS`
    /// (the NTP server's reference ID).
    pub(super) upstreams: std::sync::Arc<crate::ntp_server::Upstreams>,
}

/// Longest wait for a line from gpsd before the connection is dropped and
/// made again: gpsd reports every second while a receiver is attached.
pub(super) const SILENCE: Duration = Duration::from_secs(10);
/// Longest wait to connect, or to send `?WATCH`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&task.address));
    let mut stream = connect
        .await
        .map_err(|_| format!("connect {}: no answer within {CONNECT_TIMEOUT:?}", task.address))?
        .map_err(|e| format!("connect {}: {e}", task.address))?;
    check_listener(&stream)?;
    tokio::time::timeout(CONNECT_TIMEOUT, stream.write_all(WATCH.as_bytes()))
        .await
        .map_err(|_| "send WATCH: gpsd does not read".to_owned())?
        .map_err(|e| format!("send WATCH: {e}"))?;
    let mut reader = BufReader::new(stream);
    let datasheet = DriftModel::symmetric(task.max_drift).map_err(|e| e.to_string())?;
    let mut recent = Recent::default();
    let mut line = Vec::with_capacity(1024);
    let mut last_bound = None;
    loop {
        line.clear();
        let n = tokio::time::timeout(SILENCE, read_capped_line(&mut reader, &mut line))
            .await
            .map_err(|_| format!("gpsd sent no complete line for {SILENCE:?}; reconnecting"))?
            .map_err(|e| format!("read: {e}"))?;
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

/// On loopback, refuses a gpsd whose listening socket belongs to another
/// user than root, `gpsd` or our own (module doc).
fn check_listener(stream: &TcpStream) -> Result<(), String> {
    let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else { return Ok(()) };
    if !peer.ip().is_loopback() {
        return Ok(());
    }
    let table = if peer.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(table).map_err(|e| format!("reading {table} to check gpsd's owner: {e}"))?;
    let owner = listener_owner(&text, local, peer)
        .ok_or_else(|| format!("cannot find who serves {peer} in {table}; not trusting it"))?;
    let ours = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let gpsd = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| passwd_uid(&p, "gpsd"));
    if owner == 0 || Some(owner) == ours || Some(owner) == gpsd {
        Ok(())
    } else {
        Err(format!("{peer} is served by uid {owner}, not root, gpsd or tsod's own user: an impostor; not reading it"))
    }
}

/// The uid owning the server end of the TCP connection from `local` to
/// `peer`, in the text of `/proc/net/tcp` or `tcp6` (its local address is
/// `peer`, its remote `local`).
fn listener_owner(table: &str, local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let (ours, theirs) = (proc_address(local), proc_address(peer));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(at), Some(remote), Some(uid)) = (fields.get(1), fields.get(2), fields.get(7)) else { return None };
        (at.eq_ignore_ascii_case(&theirs) && remote.eq_ignore_ascii_case(&ours)).then(|| uid.parse().ok()).flatten()
    })
}

/// An address as the kernel prints it in `/proc/net/tcp*`: each 32-bit
/// word of the address in host byte order as 8 hex digits, then the port.
fn proc_address(address: SocketAddr) -> String {
    let words = |bytes: &[u8]| {
        bytes
            .chunks_exact(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect::<String>()
    };
    let ip = match address.ip() {
        std::net::IpAddr::V4(v4) => words(&v4.octets()),
        std::net::IpAddr::V6(v6) => words(&v6.octets()),
    };
    format!("{ip}:{:04X}", address.port())
}

/// The uid of `user` in the text of `/etc/passwd`.
fn passwd_uid(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(user)).then(|| fields.nth(1).and_then(|uid| uid.parse().ok())).flatten()
    })
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
    let best = best?;
    let pps = recent.pps == Some(best);
    task.upstreams.set(&task.name, crate::ntp_server::identity::Upstream::gps(pps));
    Some(Event::Sample(task.id, best))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn the_owner_of_a_loopback_listener_is_read_from_the_kernels_table() {
        // Two lines as Linux prints them: a listener on 2947 owned by uid
        // 118, and the accepted end of a connection from port 40000.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0B83 00000000:0000 0A 00000000:00000000 00:00000000 00000000   118        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0B83 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   65534        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:9C40 0100007F:0B83 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1";
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:2947".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(proc_address(peer), "0100007F:0B83");
            assert_eq!(listener_owner(table, local, peer), Some(65534));
        }
        let v6: SocketAddr = "[::1]:2947".parse().unwrap();
        assert_eq!(proc_address(v6).len(), 32 + 5);
        assert_eq!(listener_owner(table, local, "127.0.0.1:2948".parse().unwrap()), None);
    }

    #[test]
    fn the_gpsd_user_is_found_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ngpsd:x:118:20::/run/gpsd:/bin/false\n";
        assert_eq!(passwd_uid(passwd, "gpsd"), Some(118));
        assert_eq!(passwd_uid(passwd, "gps"), None);
    }

    #[tokio::test]
    async fn a_real_loopback_connection_is_found_and_owned_by_us() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (_accepted, _) = listener.accept().await.unwrap();
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let owner = listener_owner(&text, stream.local_addr().unwrap(), stream.peer_addr().unwrap());
        assert_eq!(owner, Some(std::fs::metadata("/proc/self").unwrap().uid()));
        assert_eq!(check_listener(&stream), Ok(()));
    }
}
