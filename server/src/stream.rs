//! One message per stream direction (SPEC.md §4.1): read at most 65 535
//! bytes, decode, and write one message then finish. Shared by the QUIC
//! shell ([`crate::net`]) and the TSO's Raft and forwarding RPCs
//! ([`crate::tso`]), which both speak on QUIC streams.

use quinn::{RecvStream, SendStream};
use tsod_proto::wire::{self, ErrorCode, ErrorResponse, MAX_MESSAGE_LEN, Message};

/// Why a stream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer sent more than one message's worth, or the stream broke.
    #[error("reading: {0}")]
    Read(#[from] quinn::ReadToEndError),
    /// Writing failed.
    #[error("writing: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was already finished.
    #[error("stream closed")]
    Closed(#[from] quinn::ClosedStream),
    /// A message could not be encoded (a bug; never sent half-made).
    #[error("encoding: {0}")]
    Encode(#[from] wire::EncodeError),
    /// The reader did not take the message within [`WRITE_TIMEOUT`]; the
    /// stream was reset.
    #[error("the other side did not read the answer within {WRITE_TIMEOUT:?}; stream reset")]
    WriteTimeout,
}

/// Longest a message may take to be accepted by the other side's flow
/// control: a peer or client that never reads would otherwise hold the
/// task answering it for as long as the connection lives.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the whole of one direction, at most `limit` bytes (never more than
/// the largest message, SPEC.md §4.1); a longer one is an error.
pub async fn read_one(recv: &mut RecvStream, limit: usize) -> Result<Vec<u8>, StreamError> {
    Ok(recv.read_to_end(limit.min(MAX_MESSAGE_LEN)).await?)
}

/// Stream reset code when an answer could not be made (never an empty answer).
const RESET_INTERNAL: u32 = 1;

/// Writes `message` and finishes the direction. A message that does not
/// encode resets the stream instead, so the other side sees a failure, not
/// an empty answer; so does one the other side does not take within
/// [`WRITE_TIMEOUT`].
pub async fn write_one(send: &mut SendStream, message: &Message<'_>) -> Result<(), StreamError> {
    let bytes = match message.to_vec() {
        Ok(b) => b,
        Err(e) => {
            let _ = send.reset(RESET_INTERNAL.into());
            return Err(e.into());
        }
    };
    match tokio::time::timeout(WRITE_TIMEOUT, send.write_all(&bytes)).await {
        Ok(written) => written?,
        Err(_) => {
            let _ = send.reset(RESET_INTERNAL.into());
            return Err(StreamError::WriteTimeout);
        }
    }
    send.finish()?;
    Ok(())
}

/// An `error` message (SPEC.md §4.9).
pub fn error_message(request_id: u64, code: ErrorCode, message: &str) -> Message<'_> {
    Message::Error(ErrorResponse { request_id, code, retry_after: None, message })
}

/// The request id of a request message, else 0.
pub fn request_id(message: &Message<'_>) -> u64 {
    match message {
        Message::NowRequest(r) | Message::StatusRequest(r) => r.request_id,
        Message::TsoRequest(r) => r.request_id,
        _ => 0,
    }
}
