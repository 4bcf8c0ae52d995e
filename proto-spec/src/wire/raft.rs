//! TSO replication: Raft RPCs between sites on `tsod-peer/1` streams
//! (SPEC.md §4.13). The RPC's arguments and result travel as JSON text:
//! openraft 0.9's serde form for append-entries, vote and install-snapshot,
//! tsod's own for pre-vote (§4.14); SPEC.md §4.13 writes every shape down
//! and the vectors carry an example of each. This layer only frames the
//! text, names the RPC and matches answers to requests.

use serde::Serialize;

use super::cursor::{Reader, Writer};
use super::{DecodeError, EncodeError, HEADER_LEN, MAX_MESSAGE_LEN};

/// Bytes of a raft message before its payload: header, request id, rpc,
/// reserved, payload length.
const FIXED_LEN: usize = HEADER_LEN + 16;
/// Longest payload: what fits in one message.
pub const MAX_RAFT_PAYLOAD: usize = MAX_MESSAGE_LEN - FIXED_LEN;

/// Which Raft RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaftRpc {
    /// 1: append entries (also the heartbeat).
    AppendEntries,
    /// 2: request a vote.
    Vote,
    /// 3: one chunk of a snapshot.
    InstallSnapshot,
    /// 4: a pre-vote or a hello: tsod's own, not openraft's (§4.14).
    PreVote,
    /// 5: a site's vote to reset the fence, sent to the leader: tsod's own
    /// (§4.13, "Fence reset").
    ResetVote,
}

impl RaftRpc {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            Self::AppendEntries => 1,
            Self::Vote => 2,
            Self::InstallSnapshot => 3,
            Self::PreVote => 4,
            Self::ResetVote => 5,
        }
    }

    /// The RPC with this code, or `None`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::AppendEntries),
            2 => Some(Self::Vote),
            3 => Some(Self::InstallSnapshot),
            4 => Some(Self::PreVote),
            5 => Some(Self::ResetVote),
            _ => None,
        }
    }
}

/// A `raft-request` (0x40) or `raft-response` (0x41): the same layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RaftMessage<'a> {
    /// Chosen by the requester; echoed in the response.
    pub request_id: u64,
    /// The RPC.
    pub rpc: RaftRpc,
    /// The RPC's arguments (request) or result (response): JSON text,
    /// 1 … [`MAX_RAFT_PAYLOAD`] bytes, no control characters.
    pub payload: &'a str,
}

impl<'a> RaftMessage<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let request_id = r.u64()?;
        let rpc_at = r.position();
        let rpc = RaftRpc::from_code(r.u8()?).ok_or(DecodeError::InvalidField { offset: rpc_at, field: "rpc" })?;
        r.reserved(3)?;
        let len_at = r.position();
        let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if len == 0 || len > MAX_RAFT_PAYLOAD {
            return Err(DecodeError::InvalidField { offset: len_at, field: "payload-len" });
        }
        let payload = r.text(len, "payload")?;
        Ok(Self { request_id, rpc, payload })
    }

    pub(crate) fn body_len(&self) -> usize {
        self.payload.len().saturating_add(FIXED_LEN - HEADER_LEN)
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        let len = self.payload.len();
        if len == 0 || len > MAX_RAFT_PAYLOAD || self.payload.chars().any(char::is_control) {
            return Err(EncodeError::Invalid { field: "payload" });
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        w.u8(self.rpc.code());
        w.zeros(3);
        w.u32(u32::try_from(self.payload.len()).unwrap_or(u32::MAX));
        w.bytes(self.payload.as_bytes());
    }
}
