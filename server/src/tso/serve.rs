//! The TSO's answers on QUIC streams: a `tso-request` (a client's, or a
//! follower site's batch) and a peer's `raft-request` (SPEC.md §4.8,
//! §4.13). The QUIC shell ([`crate::net`]) reads and decodes the message,
//! routes it here with the TSO it serves (`None` until the TSO has started)
//! and counts what comes back; everything about what to answer lives here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quinn::SendStream;
use tracing::{debug, warn};
use tsod_proto::HybridTimestamp;
use tsod_proto::wire::{self, ErrorCode, ErrorResponse, Message, RaftMessage, RaftRpc, TsoRequest};

use super::network::Refused;
use super::node::TsoNode;
use super::unavailable::Unavailable;
use crate::stream::{StreamError, error_message, write_one};

/// Longest the local Raft may take to answer a peer's RPC (a stuck core
/// must not pile up tasks until the stream limit).
const RAFT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Whether a refusal from a differently configured group was logged (once).
static OTHER_GROUP_WARNED: AtomicBool = AtomicBool::new(false);

/// Who sent a `tso-request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An application, on `tsod-client/1`: batched with this site's other
    /// callers and forwarded when this site does not lead.
    Client,
    /// A follower site's batch, on `tsod-peer/1`: served here as leader,
    /// never forwarded again.
    Follower,
}

/// Answers a `tso-request`: the granted range, or the error saying why not.
pub async fn answer_tso(
    tso: Option<&TsoNode>,
    send: &mut SendStream,
    request: &TsoRequest,
    origin: Origin,
) -> Result<(), StreamError> {
    let result = match (tso, origin) {
        (None, _) => Err(not_started()),
        (Some(tso), Origin::Client) => tso.serve_local(request.count).await,
        (Some(tso), Origin::Follower) => tso.serve_forwarded(request.count).await,
    };
    write_one(send, &tso_answer(request.request_id, request.count, &result)).await
}

/// The answer to a TSO request: the range, or the error.
fn tso_answer(request_id: u64, count: u32, result: &Result<HybridTimestamp, Unavailable>) -> Message<'_> {
    match result {
        Ok(first) => Message::TsoResponse(wire::TsoResponse { request_id, first: *first, count }),
        Err(e) => Message::Error(ErrorResponse {
            request_id,
            code: e.code,
            retry_after: e.retry_after,
            message: e.message.get(..e.message.len().min(wire::MAX_ERROR_MESSAGE_LEN)).unwrap_or("unavailable"),
        }),
    }
}

/// Unavailable because the TSO has not started yet.
fn not_started() -> Unavailable {
    Unavailable {
        code: ErrorCode::TsoUnavailable,
        retry_after: Some(Duration::from_millis(200)),
        message: "TSO not running at this site (yet)".into(),
    }
}

/// What became of a peer's Raft RPC, for the shell's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftOutcome {
    /// Answered: by Raft, or with an error saying why not now.
    Answered,
    /// Refused as malformed, from another group or from an impostor: the
    /// shell counts it as a bad message.
    Refused,
}

/// Answers a peer's `raft-request`. `sender` is the site the peer's
/// certificate names (the only identity a Raft message may claim).
pub async fn answer_raft(
    tso: Option<&TsoNode>,
    send: &mut SendStream,
    m: &RaftMessage<'_>,
    sender: &str,
) -> RaftOutcome {
    let (outcome, written) = match tso {
        None => (
            RaftOutcome::Answered,
            write_one(send, &error_message(m.request_id, ErrorCode::TsoUnavailable, "TSO not running at this site"))
                .await,
        ),
        // A new store votes only once a leader caught it up.
        Some(tso) if m.rpc == RaftRpc::Vote && !tso.voting() => (
            RaftOutcome::Answered,
            write_one(send, &error_message(m.request_id, ErrorCode::TsoUnavailable, "new Raft store: not voting yet"))
                .await,
        ),
        Some(tso) => match tokio::time::timeout(RAFT_ANSWER_TIMEOUT, tso.answer(m.rpc, m.payload, sender)).await {
            Ok(Ok(answered)) => {
                let answer = Message::RaftResponse(RaftMessage {
                    request_id: m.request_id,
                    rpc: m.rpc,
                    payload: &answered.payload,
                });
                (RaftOutcome::Answered, write_one(send, &answer).await)
            }
            Ok(Err(e)) => (RaftOutcome::Refused, write_one(send, &refusal(m.request_id, &e.to_string(), &e)).await),
            Err(_) => (
                RaftOutcome::Answered,
                write_one(send, &error_message(m.request_id, ErrorCode::TsoUnavailable, "Raft did not answer in time"))
                    .await,
            ),
        },
    };
    if let Err(e) = written {
        debug!(error = %e, "answering a raft request");
    }
    outcome
}

/// The error answering a refused Raft RPC (logged once for another group).
fn refusal<'a>(request_id: u64, text: &'a str, e: &Refused) -> Message<'a> {
    if matches!(e, Refused::OtherGroup { .. }) && !OTHER_GROUP_WARNED.swap(true, Ordering::Relaxed) {
        warn!(error = %e, "refusing Raft RPCs from a site configured with other sites (check every site's [[peer]] list)");
    }
    let code = if matches!(e, Refused::Malformed(_)) { ErrorCode::Malformed } else { ErrorCode::Unauthorized };
    Message::Error(ErrorResponse {
        request_id,
        code,
        retry_after: None,
        message: text.get(..text.len().min(wire::MAX_ERROR_MESSAGE_LEN)).unwrap_or("refused"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_range_answers_with_its_first_timestamp_and_count() {
        let ok = Ok(HybridTimestamp::from_raw(4096));
        let Message::TsoResponse(r) = tso_answer(7, 3, &ok) else { panic!("not a tso-response") };
        assert_eq!((r.request_id, r.first.raw(), r.count), (7, 4096, 3));
    }

    #[test]
    fn an_unavailable_tso_answers_with_its_code_and_advice_cut_to_the_wire_limit() {
        let long = Unavailable::new("x".repeat(wire::MAX_ERROR_MESSAGE_LEN + 10), Duration::from_millis(30));
        let err = Err(long);
        let Message::Error(e) = tso_answer(9, 1, &err) else { panic!("not an error") };
        assert_eq!(
            (e.request_id, e.code, e.retry_after),
            (9, ErrorCode::TsoUnavailable, Some(Duration::from_millis(30)))
        );
        assert_eq!(e.message.len(), wire::MAX_ERROR_MESSAGE_LEN);
        assert_eq!(not_started().code, ErrorCode::TsoUnavailable);
    }

    #[test]
    fn malformed_raft_rpcs_are_malformed_and_foreign_ones_unauthorized() {
        let malformed = Refused::Malformed(serde_json::from_str::<u8>("x").unwrap_err());
        let Message::Error(e) = refusal(1, "m", &malformed) else { panic!() };
        assert_eq!(e.code, ErrorCode::Malformed);
        let impostor = Refused::Impostor { claimed: 3, sender: "bj-b".into() };
        let Message::Error(e) = refusal(1, "i", &impostor) else { panic!() };
        assert_eq!(e.code, ErrorCode::Unauthorized);
    }
}
