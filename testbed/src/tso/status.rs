//! What a site's status file says about the TSO (the `tso` object of the
//! server's `status_file::StatusSnapshot`, its `TsoStatus`: `role`,
//! `leader`, `term`, the leader preference: `priority`, `why_leading`,
//! `handover_to`, …), and which site leads by those files
//! ([`leader_of`]): what `site = "leader"` in a scenario resolves to, and
//! what the live view names; and whether the sites agree that a given site
//! leads ([`agreed_leader`]): a scenario's `expect-leader`.
//!
//! A status file is written by its daemon; a killed or paused daemon's file
//! keeps saying what it said last, so a paused leader's file still says
//! `leader`. The caller therefore says which sites may count (running, not
//! paused), and among several that claim to lead the highest term wins.

use serde_json::Value;

/// The TSO part of one status file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TsoRole {
    /// `leader`, `leader-without-quorum` (restored or cut off; it issues
    /// nothing), `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// The site it believes leads (`(this site)` for itself), if any.
    pub leader: Option<String>,
    /// Its Raft term.
    pub term: u64,
    /// Its own `[tso] leader-priority`, if it has one.
    pub priority: Option<u32>,
    /// When it leads: why it is the preferred leader (`highest
    /// leader-priority (5)`, `smallest total round trip (350 ms)`).
    pub why_leading: Option<String>,
    /// When it leads: the better site it is handing leadership over to.
    pub handover_to: Option<String>,
}

impl TsoRole {
    /// From a parsed status file; `None` without a `tso` object with a
    /// string `role` and a numeric `term` (the other fields are optional:
    /// `None` when missing or mistyped).
    pub fn from_status_json(status: &Value) -> Option<Self> {
        let tso = status.get("tso")?;
        let text = |key: &str| tso.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            role: tso.get("role")?.as_str()?.to_owned(),
            leader: text("leader"),
            term: tso.get("term")?.as_u64()?,
            priority: tso.get("priority").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok()),
            why_leading: text("why_leading"),
            handover_to: text("handover_to"),
        })
    }

    /// Reads and parses the status file at `path`.
    pub fn read(path: &std::path::Path) -> Option<Self> {
        let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        Self::from_status_json(&json)
    }

    /// It says it leads.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

/// The index of the site that leads: among the sites that may count
/// (`.0`), those whose role is `leader`, the one with the highest term
/// (the first on a tie); `None` if none claims to lead.
pub fn leader_of(sites: &[(bool, Option<TsoRole>)]) -> Option<usize> {
    sites
        .iter()
        .enumerate()
        .filter_map(|(i, (counts, role))| match role {
            Some(role) if *counts && role.is_leader() => Some((i, role.term)),
            _ => None,
        })
        .fold(None, |best: Option<(usize, u64)>, (i, term)| match best {
            Some((_, best_term)) if best_term >= term => best,
            _ => Some((i, term)),
        })
        .map(|(i, _)| i)
}

/// One site as [`agreed_leader`] sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteView {
    /// Its name.
    pub name: String,
    /// Why it does not count (`down`, `paused`, `partitioned`), if it does not.
    pub absent: Option<&'static str>,
    /// What its status file says (`None`: no file, none written since the
    /// site came back, or no TSO in it).
    pub role: Option<TsoRole>,
}

/// Whether every site that counts agrees that `expected` leads: `expected`
/// counts and says it leads, and every other site that counts names it as
/// its leader in the same term (a file of a site that has not heard of the
/// new term yet, or is stale, does not agree). `Ok(term)` if so, else `Err`
/// with what each site says, for a report.
pub fn agreed_leader(sites: &[SiteView], expected: &str) -> Result<u64, String> {
    let term = sites
        .iter()
        .find(|s| s.name == expected && s.absent.is_none())
        .and_then(|s| s.role.as_ref())
        .filter(|r| r.is_leader())
        .map(|r| r.term);
    let agrees = |site: &SiteView| {
        site.absent.is_some()
            || site.name == expected
            || site.role.as_ref().is_some_and(|r| r.leader.as_deref() == Some(expected) && Some(r.term) == term)
    };
    match term {
        Some(term) if sites.iter().all(agrees) => Ok(term),
        _ => Err(sites.iter().map(SiteView::describe).collect::<Vec<_>>().join(", ")),
    }
}

impl SiteView {
    /// `bj-a leads (term 3)`, `xa follower of bj-a (term 3)`, `bj-b paused`, …
    fn describe(&self) -> String {
        let name = &self.name;
        match (self.absent, &self.role) {
            (Some(absent), _) => format!("{name} {absent}"),
            (None, None) => format!("{name} has no fresh TSO status"),
            (None, Some(r)) if r.is_leader() => format!("{name} leads (term {})", r.term),
            (None, Some(r)) => {
                format!("{name} {} of {} (term {})", r.role, r.leader.as_deref().unwrap_or("no leader"), r.term)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(role: &str, term: u64) -> Option<TsoRole> {
        Some(TsoRole { role: role.to_owned(), term, ..TsoRole::default() })
    }

    #[test]
    fn parses_the_tso_object() {
        // Field names as in server/src/status_file.rs (`TsoStatus`).
        let status = json!({"status": "synchronized", "tso": {
            "role": "follower", "leader": "bj-a", "term": 7, "applied_index": 42, "fence_ns": 1,
            "lease_end_ns": null, "last_issued": null, "issued": 0, "refused": 3, "forwarded_batches": 9}});
        assert_eq!(
            TsoRole::from_status_json(&status),
            Some(TsoRole {
                role: "follower".to_owned(),
                leader: Some("bj-a".to_owned()),
                term: 7,
                ..TsoRole::default()
            })
        );
        // The leader preference (fields added with leader-priority; older
        // daemons leave them out).
        let leading = json!({"tso": {
            "role": "leader", "leader": "(this site)", "term": 4, "priority": 5, "leader_priority": 5,
            "why_leading": "highest leader-priority (5)", "handover_to": "xa",
            "timing": {"round_trip_ms": 233, "quorum_round_trip_ms": 193, "heartbeat_ms": 116,
                       "election_timeout_ms": 583, "stickiness_ms": 437, "lease_ms": 969, "renew_left_ms": 436,
                       "vote_timeout_ms": 434, "explicit": false, "problem": null}}});
        assert_eq!(
            TsoRole::from_status_json(&leading),
            Some(TsoRole {
                role: "leader".to_owned(),
                leader: Some("(this site)".to_owned()),
                term: 4,
                priority: Some(5),
                why_leading: Some("highest leader-priority (5)".to_owned()),
                handover_to: Some("xa".to_owned()),
            })
        );
        let odd = json!({"tso": {"role": "leader", "term": 4, "priority": -1, "why_leading": 3, "handover_to": null}});
        let odd = TsoRole::from_status_json(&odd).unwrap();
        assert_eq!((odd.priority, odd.why_leading, odd.handover_to), (None, None, None));
        let no_leader = json!({"tso": {"role": "candidate", "leader": null, "term": 8}});
        assert_eq!(TsoRole::from_status_json(&no_leader).unwrap().leader, None);
        for garbage in [json!({}), json!(null), json!({"tso": null}), json!({"tso": {"role": 1, "term": 2}})] {
            assert_eq!(TsoRole::from_status_json(&garbage), None, "{garbage}");
        }
    }

    fn view(name: &str, absent: Option<&'static str>, role: Option<TsoRole>) -> SiteView {
        SiteView { name: name.to_owned(), absent, role }
    }

    fn follower(of: &str, term: u64) -> Option<TsoRole> {
        Some(TsoRole { role: "follower".to_owned(), leader: Some(of.to_owned()), term, ..TsoRole::default() })
    }

    #[test]
    fn the_expected_leader_needs_every_counting_site_to_agree() {
        let leads = || role("leader", 4);
        let agreed =
            [view("fr", None, leads()), view("sh", None, follower("fr", 4)), view("va", None, follower("fr", 4))];
        assert_eq!(agreed_leader(&agreed, "fr"), Ok(4));
        // Sites that do not count are left out, whatever their stale files say.
        let one_down = [
            view("fr", None, leads()),
            view("sh", Some("down"), role("leader", 9)),
            view("va", None, follower("fr", 4)),
        ];
        assert_eq!(agreed_leader(&one_down, "fr"), Ok(4));
        // Another site leads, or a follower is in another term, or has no file.
        let e = agreed_leader(&agreed, "va").unwrap_err();
        assert_eq!(e, "fr leads (term 4), sh follower of fr (term 4), va follower of fr (term 4)");
        let behind =
            [view("fr", None, leads()), view("sh", None, follower("fr", 3)), view("va", None, follower("fr", 4))];
        assert!(agreed_leader(&behind, "fr").is_err());
        let silent = [view("fr", None, leads()), view("sh", None, None)];
        assert_eq!(agreed_leader(&silent, "fr").unwrap_err(), "fr leads (term 4), sh has no fresh TSO status");
        // The expected site itself must count.
        let paused = [view("fr", Some("paused"), leads()), view("sh", None, follower("fr", 4))];
        assert_eq!(agreed_leader(&paused, "fr").unwrap_err(), "fr paused, sh follower of fr (term 4)");
        let candidate = [view("fr", None, role("candidate", 5)), view("sh", None, follower("fr", 5))];
        assert!(agreed_leader(&candidate, "fr").is_err());
        assert!(agreed_leader(&agreed, "mars").is_err());
        assert!(agreed_leader(&[], "fr").is_err());
    }

    #[test]
    fn the_leader_is_the_highest_term_claim_that_counts() {
        assert_eq!(leader_of(&[(true, role("follower", 3)), (true, role("leader", 3)), (true, None)]), Some(1));
        // A paused old leader still says so in its file: it does not count.
        assert_eq!(leader_of(&[(false, role("leader", 2)), (true, role("follower", 3))]), None);
        // Two claims (one stale): the higher term wins.
        assert_eq!(
            leader_of(&[(true, role("leader", 2)), (true, role("leader", 5)), (true, role("leader", 4))]),
            Some(1)
        );
        assert_eq!(leader_of(&[(true, role("leader", 5)), (true, role("leader", 5))]), Some(0));
        assert_eq!(leader_of(&[]), None);
    }
}
