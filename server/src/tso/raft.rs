//! The Raft group's types (openraft 0.9): what the log carries and what
//! applying it answers.
//!
//! The log carries one kind of command, a [`Lease`]: "`holder`, leader in
//! `term`, may hand out timestamps while its bounded clock shows
//! `latest < end`". The state machine keeps the largest lease end ever
//! committed (the *fence*). That single value is both the lease and the TSO
//! window: every timestamp a leader hands out has its physical part at or
//! below its clock's `latest`, so below the committed `end`; a new leader
//! hands out nothing until its clock's `earliest` has passed the fence it
//! found, so all its timestamps are above every earlier one, and later in
//! real time (see [`super::lease`]).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::reset::{PendingReset, ResetRecord, ResetVote, VoteOutcome};

/// A site's node id: the first 8 bytes of SHA-256 of its name, so every
/// site derives the same ids from the same names without coordination.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The tsod TSO group.
    pub TsoRaft:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

/// What a log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// A lease for the leader.
    Lease(Lease),
    /// One site's operator votes to lower the fence ([`super::reset`]).
    FenceResetVote(ResetVote),
}

/// `holder`, leader in `term`, may issue while `latest < end_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lease {
    /// The leader's node id.
    pub holder: NodeId,
    /// The Raft term it leads in.
    pub term: u64,
    /// End of the lease, ns on the service timescale.
    pub end_ns: u64,
}

/// The answer to applying one entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Applied {
    /// The fence before this entry: the largest lease end committed before it.
    pub previous_end_ns: u64,
    /// The fence after this entry.
    pub end_ns: u64,
    /// What a fence-reset vote did (`None` for other entries).
    #[serde(default)]
    pub vote: Option<VoteOutcome>,
}

/// What the state machine holds (and a snapshot carries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoState {
    /// The largest lease end ever committed, ns.
    pub fence_ns: u64,
    /// The last lease applied (for `tsod status`).
    pub last_lease: Option<Lease>,
    /// Fence resets applied so far.
    #[serde(default)]
    pub resets: u64,
    /// Votes for the next reset, if any.
    #[serde(default)]
    pub pending_reset: Option<PendingReset>,
    /// The last reset applied (the audit record).
    #[serde(default)]
    pub last_reset: Option<ResetRecord>,
}

impl TsoState {
    /// Applies `command` and answers it. The fence never goes down, but
    /// for a fence reset voted by a majority of the sites.
    pub fn apply(&mut self, command: &Command) -> Applied {
        let previous_end_ns = self.fence_ns;
        match command {
            Command::Lease(lease) => {
                self.fence_ns = self.fence_ns.max(lease.end_ns);
                self.last_lease = Some(*lease);
                if let Some(p) = self.pending_reset.as_mut() {
                    p.leases_since_ns = p.leases_since_ns.max(lease.end_ns);
                }
                Applied { previous_end_ns, end_ns: self.fence_ns, vote: None }
            }
            Command::FenceResetVote(vote) => {
                let outcome = super::reset::apply_vote(
                    &mut self.fence_ns,
                    &mut self.resets,
                    &mut self.pending_reset,
                    &mut self.last_reset,
                    vote,
                );
                Applied { previous_end_ns, end_ns: self.fence_ns, vote: Some(outcome) }
            }
        }
    }

    /// The answer to an entry that carries no command (blank or membership).
    pub fn unchanged(&self) -> Applied {
        Applied { previous_end_ns: self.fence_ns, end_ns: self.fence_ns, vote: None }
    }
}

/// The node id of the site named `site`.
pub fn node_id(site: &str) -> NodeId {
    let digest = ring::digest::digest(&ring::digest::SHA256, site.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_only_rises() {
        let mut state = TsoState::default();
        let a = state.apply(&Command::Lease(Lease { holder: 1, term: 1, end_ns: 100 }));
        assert_eq!(a, Applied { previous_end_ns: 0, end_ns: 100, vote: None });
        let b = state.apply(&Command::Lease(Lease { holder: 2, term: 2, end_ns: 50 }));
        assert_eq!(b, Applied { previous_end_ns: 100, end_ns: 100, vote: None });
        assert_eq!(state.fence_ns, 100);
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("bj-a"), node_id("bj-a"));
        assert_ne!(node_id("bj-a"), node_id("bj-b"));
    }
}
