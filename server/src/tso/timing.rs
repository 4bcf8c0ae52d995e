//! The TSO's timing, derived from the round trips the site measures to its
//! peers (SPEC.md §4.14): heartbeat, election timeout, pre-vote stickiness,
//! lease and renewal point. Pure: the inputs are durations, so every rule
//! is unit-tested.
//!
//! ## The rule
//!
//! Let `R` be the largest round trip to any peer (each peer's is the
//! largest of its recent probes) and `Rq` the *quorum round trip*: the
//! round trip to the nearest majority (with 3 sites, the nearest peer). A
//! leader commits in `Rq`; a follower may wait up to `R` for its leader.
//!
//! * **heartbeat** `h = clamp(R / 2, 20 ms, 500 ms)`. Raft RPCs to one
//!   follower go one at a time, so a follower hears its leader every
//!   `g = max(h, R)` at best.
//! * **election timeout** `Te = clamp(g + 2·h, 150 ms, 10 s)`: the longest
//!   regular gap and two heartbeats of slack before a follower suspects its
//!   leader. A false suspicion costs only a refused pre-vote, so it can be
//!   short. Each attempt waits a random time in `[Te, 1.25·Te)`, plus
//!   `Te / 2` per site that is a better leader than this one (priority,
//!   then total round trip), so the preferred site usually goes first.
//! * **pre-vote stickiness** `G = max(g + h, Vr + 1 ms)`: a site that
//!   heard a leader within `G` refuses to help elect another (a returning
//!   or partitioned site cannot depose a healthy leader: a live leader is
//!   heard every `g`). `Vr` is the vote timeout fixed at start (below):
//!   openraft refuses real votes for `Vr + 1 ms` after a heartbeat, so a
//!   pre-vote may not pass earlier.
//! * **renewal point** `Lr = 2·Rq + 50 ms` before the lease ends: time for
//!   a renewal to commit, or to be retransmitted once.
//! * **lease** `L = clamp(max(Te + 2·Rq, 2·Lr), 200 ms, 60 s)`. After the
//!   leader is lost a successor needs about `Te` (detection) plus a pre-vote
//!   and a vote round trip; a lease of that length has ended by then, so
//!   the old leader's fence does not add to the failover, and a renewal
//!   happens at most every `L / 2`.
//!
//! openraft 0.9 fixes three times when its node is created: the
//! AppendEntries timeout (its `heartbeat_interval`), the vote timeout
//! (`election_timeout_min`) and its own vote stickiness
//! (`election_timeout_max`). [`StaticTiming`] sets them from the round trip
//! at start: vote `Vr = clamp(1.5·R + 50 ms, 100 ms, 5 s)` (a round trip,
//! with room for it to grow by a third and some jitter), AppendEntries
//! `Vr − 1 ms` (openraft requires it below the vote timeout). openraft's own timers stay off;
//! tsod sends heartbeats and starts elections (after a pre-vote) itself.
//!
//! Explicit `[tso]` settings replace the derived values; [`check`] refuses
//! those that cannot work at a given round trip and says the minimum.

use std::time::Duration;

/// Heartbeat bounds.
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(20);
/// Heartbeat bounds.
pub const HEARTBEAT_MAX: Duration = Duration::from_millis(500);
/// Election timeout bounds.
pub const ELECTION_MIN: Duration = Duration::from_millis(150);
/// Election timeout bounds.
pub const ELECTION_MAX: Duration = Duration::from_secs(10);
/// Lease bounds.
pub const LEASE_MIN: Duration = Duration::from_millis(200);
/// Lease bounds.
pub const LEASE_MAX: Duration = Duration::from_secs(60);
/// Slack added to the renewal point and the vote timeout: scheduling,
/// fsync and one lost packet's worth of jitter.
const SLACK: Duration = Duration::from_millis(50);
/// The round trip assumed when none is measured or declared.
pub const ASSUMED_ROUND_TRIP: Duration = Duration::from_millis(100);

/// Settings that replace derived values (the `[tso]` section).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `heartbeat-ms`.
    pub heartbeat: Option<Duration>,
    /// `election-timeout-ms`.
    pub election: Option<Duration>,
    /// `lease-ms`.
    pub lease: Option<Duration>,
}

/// The round trips a site's timing is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrips {
    /// Largest round trip to any peer.
    pub max: Duration,
    /// Round trip to the nearest majority of the group (this site counts).
    pub quorum: Duration,
}

impl RoundTrips {
    /// From each peer's round trip (`None`: not measured) in a group of
    /// `peers.len() + 1` sites; unmeasured peers are left out, and with none
    /// measured `fallback` stands for every peer.
    pub fn from_peers(peers: &[Option<Duration>], fallback: Duration) -> Self {
        let mut measured: Vec<Duration> = peers.iter().flatten().copied().collect();
        measured.sort_unstable();
        let Some(&max) = measured.last() else {
            return Self { max: fallback, quorum: fallback };
        };
        // A majority of n = peers + 1 sites needs n/2 peers besides us.
        let need = peers.len().saturating_add(1) / 2;
        let quorum = if need == 0 { Duration::ZERO } else { measured.get(need - 1).copied().unwrap_or(max) };
        Self { max, quorum }
    }

    /// The same round trip to every peer.
    pub fn uniform(rtt: Duration) -> Self {
        Self { max: rtt, quorum: rtt }
    }
}

/// What openraft fixes at start (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticTiming {
    /// AppendEntries timeout (openraft's `heartbeat_interval`).
    pub append_timeout: Duration,
    /// Vote timeout (`election_timeout_min`); openraft's stickiness is 1 ms more.
    pub vote_timeout: Duration,
}

impl StaticTiming {
    /// For round trips `rtt` measured (or declared) at start.
    pub fn at_start(rtt: RoundTrips) -> Self {
        let vote_timeout = (rtt.max * 3 / 2 + SLACK).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let append_timeout = vote_timeout.saturating_sub(Duration::from_millis(1));
        Self { append_timeout, vote_timeout }
    }

    /// How long openraft refuses votes after hearing a leader.
    pub fn raft_stickiness(&self) -> Duration {
        self.vote_timeout + Duration::from_millis(1)
    }

    /// The largest round trip these timeouts carry with some margin:
    /// beyond it votes may time out.
    pub fn carries(&self) -> Duration {
        self.vote_timeout * 3 / 4
    }
}

/// The timing in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The round trips it was derived from.
    pub round_trips: RoundTrips,
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Least time without a leader before this site campaigns.
    pub election: Duration,
    /// A site that heard a leader within this refuses pre-votes.
    pub stickiness: Duration,
    /// Lease length.
    pub lease: Duration,
    /// The leader renews once this little of its lease is left.
    pub renew_left: Duration,
}

impl Timing {
    /// Derives the timing from `rtt`, then applies `overrides`; `fixed` is
    /// what openraft was started with.
    pub fn derive(rtt: RoundTrips, overrides: Overrides, fixed: StaticTiming) -> Self {
        let heartbeat = overrides.heartbeat.unwrap_or_else(|| derived_heartbeat(rtt));
        let election = overrides.election.unwrap_or_else(|| min_election(rtt, heartbeat).max(ELECTION_MIN));
        let election = election.min(ELECTION_MAX);
        let stickiness = (heartbeat.max(rtt.max) + heartbeat).max(fixed.raft_stickiness());
        let renew_left = min_renew_left(rtt);
        let lease = overrides
            .lease
            .unwrap_or_else(|| (election + rtt.quorum * 2).max(renew_left * 2).clamp(LEASE_MIN, LEASE_MAX));
        // An explicit lease shorter than twice the renewal point renews at
        // its middle.
        let renew_left = renew_left.min(lease / 2);
        Self { round_trips: rtt, heartbeat, election, stickiness, lease, renew_left }
    }

    /// The shortest and longest wait before campaigning, for a site with
    /// `better` sites ahead of it.
    pub fn campaign_window(&self, better: usize) -> (Duration, Duration) {
        let step = self.election / 2;
        let extra = step.saturating_mul(u32::try_from(better).unwrap_or(u32::MAX));
        (self.election + extra, self.election + self.election / 4 + extra)
    }
}

fn derived_heartbeat(rtt: RoundTrips) -> Duration {
    (rtt.max / 2).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX)
}

/// The longest regular gap and two heartbeats: `max(h, R) + 2·h`.
fn min_election(rtt: RoundTrips, heartbeat: Duration) -> Duration {
    heartbeat.max(rtt.max) + heartbeat * 2
}

/// `2·Rq + 50 ms`.
fn min_renew_left(rtt: RoundTrips) -> Duration {
    rtt.quorum * 2 + SLACK
}

/// An explicit setting that cannot work at a round trip.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "tso.{setting} = {value_ms} ms cannot work at a {rtt_ms} ms round trip ({what}): it must be at least {min_ms} ms"
)]
pub struct TooShort {
    /// The setting's name.
    pub setting: &'static str,
    /// Its value.
    pub value_ms: u64,
    /// The round trip.
    pub rtt_ms: u64,
    /// Where the round trip comes from (declared, measured to a peer).
    pub what: String,
    /// The least value that works.
    pub min_ms: u64,
}

/// Refuses explicit settings that cannot work at round trips `rtt` (`what`
/// says where they come from): an election timeout shorter than the longest
/// heartbeat gap and two heartbeats (followers would suspect a live leader
/// all the time), a
/// lease shorter than twice the renewal point (renewals could not commit
/// before it ends). The election rule also keeps the heartbeat at most a
/// third of the election timeout.
pub fn check(overrides: Overrides, rtt: RoundTrips, what: &str) -> Result<(), TooShort> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let heartbeat = overrides.heartbeat.unwrap_or_else(|| derived_heartbeat(rtt));
    let too_short = |setting, value: Duration, min: Duration| TooShort {
        setting,
        value_ms: ms(value),
        rtt_ms: ms(rtt.max),
        what: what.to_owned(),
        min_ms: ms(min),
    };
    if let Some(election) = overrides.election {
        let min = min_election(rtt, heartbeat);
        if election < min {
            return Err(too_short("election-timeout-ms", election, min));
        }
    }
    if let Some(lease) = overrides.lease {
        let min = min_renew_left(rtt) * 2;
        if lease < min {
            let mut e = too_short("lease-ms", lease, min);
            e.rtt_ms = ms(rtt.quorum);
            e.what = format!("{what}, to the nearest majority");
            return Err(e);
        }
    }
    Ok(())
}

/// Whether a derived timing moved enough from `old` to be worth logging.
pub fn changed_much(old: &Timing, new: &Timing) -> bool {
    let off = |a: Duration, b: Duration| a.abs_diff(b) * 5 > a.max(b);
    off(old.election, new.election) || off(old.lease, new.lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn derive(rtt: RoundTrips) -> Timing {
        Timing::derive(rtt, Overrides::default(), StaticTiming::at_start(rtt))
    }

    #[test]
    fn the_quorum_round_trip_is_the_nearest_majority() {
        // 3 sites: the nearest peer.
        let r = RoundTrips::from_peers(&[Some(ms(230)), Some(ms(190))], ms(100));
        assert_eq!(r, RoundTrips { max: ms(230), quorum: ms(190) });
        // 5 sites: the second nearest of four peers.
        let r = RoundTrips::from_peers(&[Some(ms(40)), Some(ms(10)), Some(ms(90)), Some(ms(20))], ms(100));
        assert_eq!(r, RoundTrips { max: ms(90), quorum: ms(20) });
        // Unmeasured peers are left out; none measured: the fallback.
        let r = RoundTrips::from_peers(&[None, Some(ms(25))], ms(100));
        assert_eq!(r, RoundTrips { max: ms(25), quorum: ms(25) });
        assert_eq!(RoundTrips::from_peers(&[None, None], ms(100)), RoundTrips::uniform(ms(100)));
        // A lone site commits alone.
        assert_eq!(RoundTrips::from_peers(&[], ms(100)).quorum, ms(100));
    }

    #[test]
    fn a_nearby_cluster_gets_the_floors() {
        let t = derive(RoundTrips { max: ms(25), quorum: ms(1) });
        assert_eq!(t.heartbeat, HEARTBEAT_MIN);
        assert_eq!(t.election, ELECTION_MIN);
        assert_eq!(t.renew_left, ms(52));
        assert_eq!(t.lease, ms(200));
        // The vote timeout (100 ms) sets openraft's stickiness at 101 ms.
        assert_eq!(t.stickiness, ms(101));
    }

    #[test]
    fn a_continental_cluster_gets_longer_timing() {
        // Frankfurt in the global topology: 190 ms to Shanghai, 160 ms to Virginia.
        let rtt = RoundTrips::from_peers(&[Some(ms(190)), Some(ms(160))], ms(100));
        let t = derive(rtt);
        assert_eq!(t.heartbeat, ms(95));
        assert_eq!(t.election, ms(380));
        assert_eq!(t.renew_left, ms(370));
        assert_eq!(t.lease, ms(740));
        // Stickiness may not be shorter than openraft's (1.5·190 + 50 + 1).
        assert_eq!(t.stickiness, ms(336));
        // Every derived timing passes its own check.
        let explicit = Overrides { heartbeat: Some(t.heartbeat), election: Some(t.election), lease: Some(t.lease) };
        assert_eq!(check(explicit, rtt, "measured"), Ok(()));
    }

    #[test]
    fn derived_timing_always_passes_the_check_and_keeps_its_invariants() {
        for rtt_ms in [0u64, 1, 5, 25, 60, 100, 160, 230, 400, 900, 2_000] {
            for quorum_ms in [0u64, 1, rtt_ms / 2, rtt_ms] {
                let rtt = RoundTrips { max: ms(rtt_ms), quorum: ms(quorum_ms.min(rtt_ms)) };
                let fixed = StaticTiming::at_start(rtt);
                let t = Timing::derive(rtt, Overrides::default(), fixed);
                let explicit =
                    Overrides { heartbeat: Some(t.heartbeat), election: Some(t.election), lease: Some(t.lease) };
                assert_eq!(check(explicit, rtt, "x"), Ok(()), "rtt {rtt_ms} ms");
                // A live leader is heard within the election timeout, with
                // two heartbeats to spare, and within the stickiness.
                let gap = t.heartbeat.max(rtt.max);
                assert!(t.election >= gap + t.heartbeat * 2 && t.stickiness > gap, "rtt {rtt_ms}");
                // A renewal has two commit round trips before the lease ends.
                assert!(t.renew_left >= rtt.quorum * 2 && t.lease >= t.renew_left * 2, "rtt {rtt_ms}");
                // Pre-votes never pass before openraft would grant the vote.
                assert!(t.stickiness > fixed.vote_timeout, "rtt {rtt_ms}");
                // The vote and AppendEntries timeouts cover the round trip with room.
                assert!(fixed.vote_timeout >= rtt.max * 3 / 2 || fixed.vote_timeout == Duration::from_secs(5));
                assert!(fixed.append_timeout > rtt.max * 5 / 4 || rtt.max > Duration::from_secs(3));
            }
        }
    }

    #[test]
    fn short_explicit_settings_are_refused_with_the_minimum() {
        let rtt = RoundTrips { max: ms(230), quorum: ms(190) };
        let e = check(Overrides { heartbeat: Some(ms(50)), election: Some(ms(250)), lease: None }, rtt, "declared")
            .unwrap_err();
        assert_eq!(e.setting, "election-timeout-ms");
        assert_eq!((e.value_ms, e.rtt_ms, e.min_ms), (250, 230, 330));
        let text = e.to_string();
        assert!(text.contains("230 ms round trip") && text.contains("at least 330 ms"), "{text}");
        let e = check(Overrides { lease: Some(ms(400)), ..Overrides::default() }, rtt, "declared").unwrap_err();
        assert_eq!((e.setting, e.rtt_ms, e.min_ms), ("lease-ms", 190, 860));
        // The same settings work at 25 ms.
        let near = RoundTrips::uniform(ms(25));
        let ok = Overrides { heartbeat: Some(ms(50)), election: Some(ms(250)), lease: Some(ms(400)) };
        assert_eq!(check(ok, near, "declared"), Ok(()));
        // A long heartbeat needs a longer election timeout (3 heartbeats at least).
        let e =
            check(Overrides { heartbeat: Some(ms(100)), election: Some(ms(250)), lease: None }, near, "d").unwrap_err();
        assert_eq!((e.setting, e.min_ms), ("election-timeout-ms", 300));
    }

    #[test]
    fn better_sites_wait_longer_windows_that_do_not_overlap_much() {
        let t = derive(RoundTrips::uniform(ms(25)));
        let (a0, b0) = t.campaign_window(0);
        let (a1, b1) = t.campaign_window(1);
        assert_eq!((a0, b0), (ms(150), Duration::from_micros(187_500)));
        assert_eq!((a1, b1), (ms(225), Duration::from_micros(262_500)));
    }

    #[test]
    fn overrides_replace_derived_values() {
        let rtt = RoundTrips::uniform(ms(25));
        let o = Overrides { heartbeat: Some(ms(50)), election: Some(ms(250)), lease: Some(ms(400)) };
        let t = Timing::derive(rtt, o, StaticTiming::at_start(rtt));
        assert_eq!((t.heartbeat, t.election, t.lease), (ms(50), ms(250), ms(400)));
        assert!(changed_much(&derive(rtt), &t));
        assert!(!changed_much(&t, &t));
    }
}
