//! Who leads the TSO group, and when a site may campaign (SPEC.md §4.14).
//!
//! openraft 0.9 has no pre-vote: a site that was paused, restarted or cut
//! off starts an election with a higher term when it comes back, and the
//! healthy leader steps down for it. tsod therefore keeps openraft's own
//! election timer off and campaigns itself, only after a **pre-vote**: a
//! `pre-vote` RPC asking each peer "would you vote for me now?". A peer
//! says yes only when
//!
//! 1. its store may vote (a new store first catches up),
//! 2. it is not itself a leader a majority acknowledged within the
//!    stickiness,
//! 3. it has not heard from a leader within the stickiness (unless that
//!    leader is handing over to the candidate), and
//! 4. the candidate's log is at least as long as its own.
//!
//! Only with a majority of yes (itself included) does the site call
//! openraft's election. No term is spent otherwise, so a returning site
//! never deposes a leader the others still hear.
//!
//! The same RPC without `campaign` is a **hello**, sent to every peer once a
//! second: both sides learn each other's *merit* (leader priority and total
//! round trip to the other sites). A site waits an extra half election
//! timeout per live site better than itself before campaigning, so the
//! preferred site usually wins; a leader that sees a better site caught up
//! and healthy hands leadership over to it ([`Handover`]).

use std::cmp::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raft::NodeId;

/// A site's claim to lead: its configured priority, then its total round
/// trip to the other sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Merit {
    /// `[tso] leader-priority` (higher leads; none ranks below any).
    pub priority: Option<u32>,
    /// Sum of the round trips to every peer (µs); unmeasured peers count
    /// [`UNMEASURED_US`].
    pub total_round_trip_us: u64,
    /// Half-width of the site's interval (µs) while it is synchronized: a
    /// new leader issues only once its `earliest` passed the old lease, so
    /// leadership is handed only to a site whose bound is about as narrow
    /// as the leader's ([`Merit::ready_to_succeed`]). Not part of the order.
    #[serde(default)]
    pub half_width_us: Option<u64>,
}

/// What an unmeasured peer adds to a total round trip (µs): more than any
/// measured one, so a site that cannot see its peers is never preferred.
pub const UNMEASURED_US: u64 = 10_000_000;

impl Merit {
    /// Whether `self` should lead rather than `other`: a higher priority, or
    /// the same and a total round trip shorter by more than a twentieth
    /// (and 2 ms), so that jitter does not move leadership back and forth.
    pub fn better_than(&self, other: &Self) -> bool {
        match self.priority.cmp(&other.priority) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                let margin = (other.total_round_trip_us / 20).max(2_000);
                self.total_round_trip_us.saturating_add(margin) < other.total_round_trip_us
            }
        }
    }

    /// Whether a site with this merit may take leadership over from a leader
    /// whose half-width is `leader_us`: synchronized, and its half-width at
    /// most the leader's plus 1 ms (the gap a handover costs grows with it).
    pub fn ready_to_succeed(&self, leader_us: Option<u64>) -> bool {
        self.half_width_us.is_some_and(|w| w <= leader_us.unwrap_or(0).saturating_add(1_000))
    }

    /// Why a site with this merit leads, for status.
    pub fn why(&self, others: &[Self]) -> String {
        let best_priority = others.iter().all(|o| self.priority >= o.priority);
        match self.priority {
            Some(p) if best_priority && others.iter().any(|o| o.priority < self.priority) => {
                format!("highest leader-priority ({p})")
            }
            _ if others
                .iter()
                .all(|o| o.priority < self.priority || o.total_round_trip_us >= self.total_round_trip_us) =>
            {
                format!("smallest total round trip ({} ms)", self.total_round_trip_us / 1_000)
            }
            _ if others.iter().all(|o| !o.better_than(self)) => {
                format!("total round trip {} ms, within 1/20 of the smallest", self.total_round_trip_us / 1_000)
            }
            _ => "elected; a better site is not (yet) caught up or reachable".to_owned(),
        }
    }
}

/// The `pre-vote` request: a hello (`campaign: false`) or a pre-vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Campaign {
    /// The sender's node id (must be the authenticated peer's).
    pub from: NodeId,
    /// A pre-vote: would you vote for me now?
    pub campaign: bool,
    /// The sender's Raft term.
    pub term: u64,
    /// The sender's last log index.
    pub last_log_index: Option<u64>,
    /// The sender's merit.
    pub merit: Merit,
    /// The sender leads and hands leadership over to this site.
    pub handover_to: Option<NodeId>,
}

/// The answer to a [`Campaign`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CampaignAnswer {
    /// The pre-vote is granted (always false for a hello).
    pub granted: bool,
    /// Why not, when refused.
    pub refused: Option<String>,
    /// The answering site's merit.
    pub merit: Merit,
    /// The answering site's term.
    pub term: u64,
}

/// What a site knows of itself when a pre-vote arrives.
#[derive(Clone, Copy, Debug)]
pub struct Local {
    /// Its store may vote.
    pub voting: bool,
    /// It leads and a majority acknowledged it within the stickiness.
    pub leading: bool,
    /// Time since it last accepted a leader's AppendEntries.
    pub heard_leader_ago: Duration,
    /// The leader it last heard is handing over to this candidate.
    pub handover_to_candidate: bool,
    /// Its stickiness.
    pub stickiness: Duration,
    /// Its last log index.
    pub last_log_index: Option<u64>,
    /// It is campaigning itself (its own election timeout passed and its
    /// last campaign did not fail) and is the better candidate: a higher
    /// merit, or an equal one and a larger node id. Two sites that lost
    /// their leader at the same moment then do not split the vote.
    pub rival: bool,
}

/// Whether `local` grants the pre-vote `c`; the refusal says why.
pub fn grant(c: &Campaign, local: &Local) -> Result<(), String> {
    if !local.voting {
        return Err("this site's store is new and not caught up yet".into());
    }
    if c.last_log_index < local.last_log_index {
        return Err(format!(
            "the candidate's log ends at {:?}, before this site's {:?}",
            c.last_log_index, local.last_log_index
        ));
    }
    if local.handover_to_candidate {
        return Ok(());
    }
    if local.leading {
        return Err("this site leads and a majority follows it".into());
    }
    if local.heard_leader_ago < local.stickiness {
        return Err(format!("this site heard its leader {} ms ago", local.heard_leader_ago.as_millis()));
    }
    if local.rival {
        return Err("this site campaigns too and is the better candidate".into());
    }
    Ok(())
}

/// Whether a site with merit `mine` and id `me`, campaigning itself, is a
/// better candidate than `theirs` with id `them` (see [`Local::rival`]).
pub fn outranks(mine: &Merit, me: NodeId, theirs: &Merit, them: NodeId) -> bool {
    mine.better_than(theirs) || (!theirs.better_than(mine) && me > them)
}

/// A leader's handover of leadership to a better site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    /// To whom.
    pub to: NodeId,
    /// The term it was started in.
    pub term: u64,
}

/// When a leader whose lease has `left` should hand over: once what is
/// left of its lease is about what the successor needs to be elected (the
/// offer reaches it in half a round trip, its vote takes one) and to commit
/// its first lease (two quorum round trips: openraft 0.9 commits its blank
/// entry first), so that the old lease ends about when the new leader is
/// ready and the gap between them is short. Until then it keeps issuing
/// and does not renew.
pub fn handover_due(left: Duration, to_successor: Duration, quorum: Duration) -> bool {
    left <= to_successor * 3 / 2 + quorum * 2 + Duration::from_millis(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merit(priority: Option<u32>, total_ms: u64) -> Merit {
        Merit { priority, total_round_trip_us: total_ms * 1_000, half_width_us: Some(200) }
    }

    #[test]
    fn priority_first_then_total_round_trip_with_hysteresis() {
        assert!(merit(Some(1), 900).better_than(&merit(None, 10)));
        assert!(merit(Some(2), 900).better_than(&merit(Some(1), 10)));
        assert!(!merit(None, 10).better_than(&merit(Some(0), 900)));
        // Frankfurt (350 ms in all) over Virginia (390) and Shanghai (420).
        assert!(merit(None, 350).better_than(&merit(None, 390)));
        assert!(!merit(None, 390).better_than(&merit(None, 350)));
        // Within a twentieth: neither is better (no flapping on jitter).
        assert!(!merit(None, 380).better_than(&merit(None, 390)));
        assert!(!merit(None, 390).better_than(&merit(None, 380)));
        // Frankfurt (354) against Virginia (390-396), as measured on the testbed.
        assert!(merit(None, 354).better_than(&merit(None, 390)));
        // Nor is any site better than itself.
        assert!(!merit(None, 350).better_than(&merit(None, 350)));
    }

    #[test]
    fn only_a_synchronized_site_with_a_narrow_bound_takes_over() {
        let ready =
            |w: Option<u64>, leader: Option<u64>| Merit { half_width_us: w, ..merit(None, 1) }.ready_to_succeed(leader);
        assert!(ready(Some(200), Some(150)));
        assert!(ready(Some(1_100), Some(150)));
        // Just restarted: a wide bound would cost its half-width in the gap.
        assert!(!ready(Some(400_000), Some(150)));
        assert!(!ready(None, Some(150)));
    }

    #[test]
    fn the_reason_names_priority_or_round_trip() {
        let me = merit(Some(5), 400);
        assert_eq!(me.why(&[merit(Some(1), 300), merit(None, 10)]), "highest leader-priority (5)");
        let me = merit(None, 350);
        assert_eq!(me.why(&[merit(None, 390), merit(None, 420)]), "smallest total round trip (350 ms)");
        let me = merit(None, 420);
        assert!(me.why(&[merit(None, 350)]).starts_with("elected; a better site"));
        // Within the margin: elected, but not "smallest".
        let me = merit(None, 390);
        assert_eq!(me.why(&[merit(None, 380)]), "total round trip 390 ms, within 1/20 of the smallest");
    }

    fn campaign(last: Option<u64>) -> Campaign {
        Campaign { from: 7, campaign: true, term: 3, last_log_index: last, merit: merit(None, 1), handover_to: None }
    }

    fn local() -> Local {
        Local {
            voting: true,
            leading: false,
            heard_leader_ago: Duration::from_secs(1),
            handover_to_candidate: false,
            stickiness: Duration::from_millis(400),
            last_log_index: Some(10),
            rival: false,
        }
    }

    #[test]
    fn a_pre_vote_is_granted_only_by_a_site_that_lost_its_leader() {
        assert_eq!(grant(&campaign(Some(10)), &local()), Ok(()));
        // Heard its leader recently: a returning site cannot depose it.
        let recent = Local { heard_leader_ago: Duration::from_millis(100), ..local() };
        assert!(grant(&campaign(Some(10)), &recent).unwrap_err().contains("heard its leader 100 ms ago"));
        // The leader itself refuses while a majority follows it.
        let leader = Local { leading: true, ..local() };
        assert!(grant(&campaign(Some(10)), &leader).is_err());
        // A shorter log never wins the real vote: refused early.
        assert!(grant(&campaign(Some(9)), &local()).unwrap_err().contains("before this site's"));
        assert!(grant(&campaign(None), &local()).is_err());
        // A new store does not vote.
        assert!(grant(&campaign(Some(10)), &Local { voting: false, ..local() }).is_err());
        // A better rival campaigning at the same time does not split the vote.
        assert!(
            grant(&campaign(Some(10)), &Local { rival: true, ..local() }).unwrap_err().contains("better candidate")
        );
    }

    #[test]
    fn of_two_equal_rivals_the_larger_id_goes_on() {
        let a = merit(None, 460);
        assert!(outranks(&a, 9, &a, 3));
        assert!(!outranks(&a, 3, &a, 9));
        // Merit first: a better site outranks whatever its id.
        assert!(outranks(&merit(Some(1), 900), 1, &merit(None, 10), 9));
        assert!(!outranks(&merit(None, 900), 9, &merit(None, 10), 1));
    }

    #[test]
    fn a_handover_lets_the_chosen_site_through_at_once() {
        let handing = Local { handover_to_candidate: true, heard_leader_ago: Duration::ZERO, leading: true, ..local() };
        assert_eq!(grant(&campaign(Some(10)), &handing), Ok(()));
        // But never with a shorter log, nor from a store that may not vote.
        assert!(grant(&campaign(Some(3)), &handing).is_err());
        assert!(grant(&campaign(Some(10)), &Local { voting: false, ..handing }).is_err());
    }

    #[test]
    fn handover_starts_when_the_lease_left_covers_the_successors_start() {
        let ms = Duration::from_millis;
        // 25 ms to the successor, 1 ms quorum: 44.5 ms.
        assert!(!handover_due(ms(60), ms(25), ms(1)));
        assert!(handover_due(ms(44), ms(25), ms(1)));
        // 160 ms away, 160 ms quorum: 565 ms.
        assert!(handover_due(ms(560), ms(160), ms(160)));
        assert!(!handover_due(ms(600), ms(160), ms(160)));
    }

    #[test]
    fn messages_keep_their_json_shape() {
        let c = Campaign {
            from: 7,
            campaign: true,
            term: 3,
            last_log_index: Some(12),
            merit: merit(Some(2), 350),
            handover_to: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"from":7,"campaign":true,"term":3,"last-log-index":12,"merit":{"priority":2,"total-round-trip-us":350000,"half-width-us":200},"handover-to":null}"#
        );
        assert_eq!(serde_json::from_str::<Campaign>(&text).unwrap(), c);
        assert!(serde_json::from_str::<Campaign>(r#"{"from":7}"#).is_err());
    }
}
