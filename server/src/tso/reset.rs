//! The operators' fence reset (SPEC.md §4.13, "Fence reset"): pure rules.
//!
//! The fence only rises with leases. If a majority of sites ever had wrong
//! clocks at once (a fleet-wide GPS spoof, a bug), leases far beyond true
//! time can commit, and every later leader waits for true time to pass that
//! fence: the TSO is down until then. A reset lowers the fence, and so
//! breaks the TSO order for every timestamp issued above the new fence by
//! those wrong clocks. Hence:
//!
//! * **Majority-confirmed.** Each site's operator votes at their own site
//!   (`tsod tso reset-fence`, through the daemon's control socket); the
//!   vote reaches the leader on that site's authenticated peer connection
//!   and is committed in the Raft log in that site's name. The reset takes
//!   effect when votes of a majority of the sites for the same reset are in
//!   the log, each within [`VOTE_TTL`] of the first.
//! * **Never below an honest lease.** Each vote carries a floor: the voting
//!   site's `latest` + the longest lease + twice the largest half-width a
//!   leader proposes at. A lease committed by a leader with a bounded clock
//!   before the vote ends below it; leases committed after the first vote
//!   are tracked. The new fence is the largest of both, so every timestamp
//!   issued from a lease judged by a true clock stays below it; only those
//!   issued by the wrong clocks are left above.
//! * **Audited.** The state machine keeps the count of resets and the last
//!   one (who voted, why, the fence before and after); every site logs it
//!   when it applies, and `tsod status` shows it.

use serde::{Deserialize, Serialize};

use super::raft::NodeId;

/// Longest time between the first and the last vote of one reset, on the
/// voters' clocks (ns): older votes expire and the count starts again.
pub const VOTE_TTL_NS: u64 = 15 * 60 * 1_000_000_000;

/// Longest reason an operator may give, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// One site's vote for a reset, as committed in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResetVote {
    /// The voting site (the authenticated sender the leader heard it from).
    pub site: NodeId,
    /// Which reset it is for: the number of resets applied before it + 1.
    pub reset: u64,
    /// The voting site's `latest` when its operator voted (ns).
    pub at_ns: u64,
    /// The lowest fence this vote allows (ns): `at_ns` + the longest lease
    /// + twice the largest half-width a leader proposes at.
    pub floor_ns: u64,
    /// How many sites the group has (the majority is over these).
    pub sites: u32,
    /// The operator's reason.
    pub reason: String,
}

/// Votes for the next reset, and the leases committed since the first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PendingReset {
    /// One per site, in the order they were committed.
    pub votes: Vec<ResetVote>,
    /// The largest lease end committed since the first vote (ns).
    pub leases_since_ns: u64,
}

/// A reset that took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResetRecord {
    /// Its number (1 for the first reset of the group).
    pub reset: u64,
    /// The fence before (ns).
    pub from_ns: u64,
    /// The fence after (ns): equal to `from_ns` if the fence was already
    /// low enough.
    pub to_ns: u64,
    /// The votes that made it.
    pub votes: Vec<ResetVote>,
}

/// What applying a vote did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VoteOutcome {
    /// The reset the vote counted for (0: it counted for none, being for
    /// another reset than the next).
    pub reset: u64,
    /// Votes for it in the log now (after this one).
    pub votes: u32,
    /// Votes it needs.
    pub needed: u32,
    /// It took effect with this vote.
    pub applied: bool,
}

/// A site's vote as it travels to the leader (`reset-vote` RPC payload):
/// the leader adds the sender's node (from its certificate), the reset
/// number and the number of sites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResetVoteRequest {
    /// The voting site's `latest` when its operator voted (ns).
    pub at_ns: u64,
    /// The lowest fence the vote allows (ns).
    pub floor_ns: u64,
    /// The operator's reason.
    pub reason: String,
}

/// What became of a vote, as the operator is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResetVoteAnswer {
    /// Counted, and with what effect.
    pub outcome: VoteOutcome,
    /// The fence before the vote (ns).
    pub fence_before_ns: u64,
    /// The fence after it (ns).
    pub fence_after_ns: u64,
}

/// Why a reason cannot be recorded, if it cannot: 1 … [`MAX_REASON_LEN`]
/// bytes, no control characters.
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("a fence reset needs a reason (it is recorded for the audit)".into());
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(format!("the reason is longer than {MAX_REASON_LEN} bytes"));
    }
    if reason.chars().any(char::is_control) {
        return Err("the reason holds control characters".into());
    }
    Ok(())
}

/// The majority of `sites`.
pub fn majority(sites: u32) -> u32 {
    sites / 2 + 1
}

/// Applies `vote` to a state whose fence is `fence_ns`, with `resets`
/// resets applied and `pending` votes: counts it, and when a majority
/// voted, lowers the fence (never raises it) and records the reset.
pub fn apply_vote(
    fence_ns: &mut u64,
    resets: &mut u64,
    pending: &mut Option<PendingReset>,
    last: &mut Option<ResetRecord>,
    vote: &ResetVote,
) -> VoteOutcome {
    let next = resets.saturating_add(1);
    let needed = majority(vote.sites);
    if vote.reset != next {
        let votes = pending.as_ref().map_or(0, |p| u32::try_from(p.votes.len()).unwrap_or(u32::MAX));
        return VoteOutcome { reset: 0, votes, needed, applied: false };
    }
    let p = pending.get_or_insert_with(PendingReset::default);
    // Votes older than the TTL (on this vote's clock) no longer count.
    p.votes.retain(|v| vote.at_ns.saturating_sub(v.at_ns) <= VOTE_TTL_NS);
    match p.votes.iter_mut().find(|v| v.site == vote.site) {
        // A site votes once: a repeated vote renews it.
        Some(v) => *v = vote.clone(),
        None => p.votes.push(vote.clone()),
    }
    let votes = u32::try_from(p.votes.len()).unwrap_or(u32::MAX);
    if votes < needed {
        return VoteOutcome { reset: next, votes, needed, applied: false };
    }
    let floor = p.votes.iter().map(|v| v.floor_ns).max().unwrap_or(0).max(p.leases_since_ns);
    let from_ns = *fence_ns;
    *fence_ns = from_ns.min(floor);
    *resets = next;
    let votes_made = std::mem::take(&mut p.votes);
    *pending = None;
    *last = Some(ResetRecord { reset: next, from_ns, to_ns: *fence_ns, votes: votes_made });
    VoteOutcome { reset: next, votes, needed, applied: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(site: NodeId, reset: u64, at_ns: u64, floor_ns: u64) -> ResetVote {
        ResetVote { site, reset, at_ns, floor_ns, sites: 3, reason: format!("site {site}") }
    }

    struct State {
        fence: u64,
        resets: u64,
        pending: Option<PendingReset>,
        last: Option<ResetRecord>,
    }

    impl State {
        fn new(fence: u64) -> Self {
            Self { fence, resets: 0, pending: None, last: None }
        }
        fn vote(&mut self, v: &ResetVote) -> VoteOutcome {
            apply_vote(&mut self.fence, &mut self.resets, &mut self.pending, &mut self.last, v)
        }
    }

    #[test]
    fn one_site_alone_cannot_reset_and_voting_twice_counts_once() {
        let mut s = State::new(1_000_000);
        assert_eq!(s.vote(&vote(1, 1, 10, 100)), VoteOutcome { reset: 1, votes: 1, needed: 2, applied: false });
        assert_eq!(s.vote(&vote(1, 1, 20, 120)), VoteOutcome { reset: 1, votes: 1, needed: 2, applied: false });
        assert_eq!(s.fence, 1_000_000);
        let done = s.vote(&vote(2, 1, 30, 110));
        assert_eq!(done, VoteOutcome { reset: 1, votes: 2, needed: 2, applied: true });
        // The highest floor of the votes that made it.
        assert_eq!(s.fence, 120);
        assert_eq!(s.resets, 1);
        let record = s.last.clone().unwrap();
        assert_eq!((record.reset, record.from_ns, record.to_ns, record.votes.len()), (1, 1_000_000, 120, 2));
        assert!(s.pending.is_none());
    }

    #[test]
    fn leases_committed_after_the_first_vote_keep_the_fence_above_them() {
        let mut s = State::new(1_000_000);
        s.vote(&vote(1, 1, 10, 100));
        s.pending.as_mut().unwrap().leases_since_ns = 500;
        s.vote(&vote(2, 1, 30, 110));
        assert_eq!(s.fence, 500);
    }

    #[test]
    fn a_reset_never_raises_the_fence() {
        let mut s = State::new(50);
        s.vote(&vote(1, 1, 10, 100));
        assert!(s.vote(&vote(3, 1, 10, 100)).applied);
        assert_eq!(s.fence, 50);
        assert_eq!(s.last.as_ref().map(|r| (r.from_ns, r.to_ns)), Some((50, 50)));
    }

    #[test]
    fn votes_for_another_reset_or_too_old_do_not_count() {
        let mut s = State::new(1_000_000);
        // For reset 2 while 1 is next: ignored.
        assert_eq!(s.vote(&vote(1, 2, 10, 100)).reset, 0);
        assert!(s.pending.is_none());
        s.vote(&vote(1, 1, 10, 100));
        // Site 2 votes after the first vote expired: it is alone again.
        let late = s.vote(&vote(2, 1, 10 + VOTE_TTL_NS + 1, 100));
        assert_eq!((late.votes, late.applied), (1, false));
        assert_eq!(s.fence, 1_000_000);
    }

    #[test]
    fn five_sites_need_three_votes() {
        let mut s = State::new(1_000_000);
        for site in 1..=2 {
            let mut v = vote(site, 1, 10, 100);
            v.sites = 5;
            assert!(!s.vote(&v).applied);
        }
        let mut v = vote(3, 1, 10, 100);
        v.sites = 5;
        assert!(s.vote(&v).applied);
    }
}
