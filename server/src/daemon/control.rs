//! The control socket: operator commands to the running daemon (today one,
//! `tsod tso reset-fence`).
//!
//! A UNIX stream socket beside the segment (`<segment>.control`, so
//! `/run/tsod/segment.control` by default), created mode 0600 in the
//! daemon's own directory. Who may use it: root and the daemon's own user,
//! checked per connection by the peer's credentials (`SO_PEERCRED`) as well
//! as by the mode, so a socket left group- or world-writable by mistake
//! still refuses other local users. One JSON request per connection (one
//! line, at most [`MAX_REQUEST`] bytes, within [`REQUEST_TIMEOUT`]), one
//! JSON answer.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use crate::net::PeerTable;
use crate::tso::reset::ResetVoteAnswer;

/// Longest request, in bytes.
pub const MAX_REQUEST: usize = 4 * 1024;
/// Longest a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an answer may take (a reset vote goes to the leader and commits).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// `<segment>.control`: the control socket of the daemon publishing `segment`.
pub fn control_path(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".control");
    segment.with_file_name(name)
}

/// A command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// This site's operator votes to reset the TSO fence.
    ResetFence {
        /// Why (recorded in the Raft log and shown by `tsod status`).
        reason: String,
    },
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// The vote was committed.
    ResetFence(ResetVoteAnswer),
    /// The command failed: why.
    Error(String),
}

/// Whether a connection from `uid` may give commands: root, or the daemon's
/// own user `daemon_uid`.
pub fn allowed(uid: u32, daemon_uid: u32) -> bool {
    uid == 0 || uid == daemon_uid
}

/// Binds the control socket at `path`, replacing a stale one the daemon's
/// user left (a socket file it owns); anything else at the path is refused.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() && meta.uid() == tsod_shm::effective_uid() => {
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket this user left: refusing to replace it", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves `listener` for ever, answering with the site's TSO in `peers`.
pub async fn serve(listener: UnixListener, peers: Arc<PeerTable>) {
    let daemon_uid = tsod_shm::effective_uid();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peers = Arc::clone(&peers);
        tokio::spawn(async move {
            if let Err(e) = serve_one(stream, daemon_uid, &peers).await {
                debug!(error = %e, "control socket: connection ended");
            }
        });
    }
}

async fn serve_one(stream: UnixStream, daemon_uid: u32, peers: &PeerTable) -> io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if !allowed(uid, daemon_uid) {
        warn!(uid, "control socket: refused a command from a user that is neither root nor tsod's");
        let answer = Answer::Error(format!("uid {uid} may not control tsod (only root and uid {daemon_uid})"));
        return write_answer(&mut write, &answer).await;
    }
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX) + 1));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let answer = match read {
        Err(_) => Answer::Error(format!("no request within {REQUEST_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => Answer::Error(format!("request longer than {MAX_REQUEST} bytes")),
        Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Answer::Error(format!("not a control request: {e}")),
            Ok(request) => match tokio::time::timeout(ANSWER_TIMEOUT, execute(request, uid, peers)).await {
                Ok(answer) => answer,
                Err(_) => Answer::Error(format!("no outcome within {ANSWER_TIMEOUT:?}")),
            },
        },
    };
    write_answer(&mut write, &answer).await
}

async fn execute(request: Request, uid: u32, peers: &PeerTable) -> Answer {
    match request {
        Request::ResetFence { reason } => {
            let Some(tso) = peers.tso.get() else {
                return Answer::Error("the TSO is not running at this site".into());
            };
            info!(uid, reason = %reason, "control socket: the operator votes to reset the TSO fence");
            match tso.vote_reset(&reason).await {
                Ok(answer) => Answer::ResetFence(answer),
                Err(e) => Answer::Error(e),
            }
        }
    }
}

async fn write_answer(write: &mut tokio::net::unix::OwnedWriteHalf, answer: &Answer) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(answer).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

/// Sends `request` to the daemon at `path` and returns its answer.
pub async fn ask(path: &Path, request: &Request) -> io::Result<Answer> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(request).map_err(io::Error::other)?;
    bytes.push(b'\n');
    // A daemon that refuses this user answers without reading the request
    // and closes: the write may fail, and the answer still says why.
    let written = write.write_all(&bytes).await;
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(64 * 1024));
    tokio::time::timeout(ANSWER_TIMEOUT + REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the daemon did not answer"))??;
    if line.is_empty() {
        written?;
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn only_root_and_the_daemons_user_may_command() {
        assert!(allowed(0, 999));
        assert!(allowed(999, 999));
        assert!(!allowed(1000, 999));
        assert!(!allowed(65_534, 0));
    }

    #[test]
    fn requests_parse_strictly() {
        let r: Request = serde_json::from_str(r#"{"reset-fence":{"reason":"gps spoofed"}}"#).unwrap();
        assert_eq!(r, Request::ResetFence { reason: "gps spoofed".into() });
        assert!(serde_json::from_str::<Request>(r#"{"reset-fence":{"reason":"x","extra":1}}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"shutdown":{}}"#).is_err());
    }

    #[test]
    fn the_path_sits_beside_the_segment() {
        assert_eq!(control_path(Path::new("/run/tsod/segment")), Path::new("/run/tsod/segment.control"));
    }

    #[tokio::test]
    async fn a_file_planted_at_the_path_is_not_replaced() {
        let dir = std::env::temp_dir().join(format!("tsod-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment.control");
        std::fs::write(&path, b"planted").unwrap();
        let e = bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"planted");
        std::fs::remove_file(&path).unwrap();
        // A stale socket of ours is replaced, and the new one is 0600.
        drop(bind(&path).unwrap());
        let listener = bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
