//! What a site's status file says about the TSO (the `tso` object of the
//! server's `status_file::StatusSnapshot`, its `TsoStatus`: `role`,
//! `leader`, `term`, …), and which site leads by those files
//! ([`leader_of`]): what `site = "leader"` in a scenario resolves to, and
//! what the live view names.
//!
//! A status file is written by its daemon; a killed or paused daemon's file
//! keeps saying what it said last, so a paused leader's file still says
//! `leader`. The caller therefore says which sites may count (running, not
//! paused), and among several that claim to lead the highest term wins.

use serde_json::Value;

/// The TSO part of one status file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsoRole {
    /// `leader`, `leader-without-quorum` (restored or cut off; it issues
    /// nothing), `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// The site it believes leads (`(this site)` for itself), if any.
    pub leader: Option<String>,
    /// Its Raft term.
    pub term: u64,
}

impl TsoRole {
    /// From a parsed status file; `None` without a `tso` object with a
    /// string `role` and a numeric `term`.
    pub fn from_status_json(status: &Value) -> Option<Self> {
        let tso = status.get("tso")?;
        Some(Self {
            role: tso.get("role")?.as_str()?.to_owned(),
            leader: tso.get("leader").and_then(Value::as_str).map(str::to_owned),
            term: tso.get("term")?.as_u64()?,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(role: &str, term: u64) -> Option<TsoRole> {
        Some(TsoRole { role: role.to_owned(), leader: None, term })
    }

    #[test]
    fn parses_the_tso_object() {
        // Field names as in server/src/status_file.rs (`TsoStatus`).
        let status = json!({"status": "synchronized", "tso": {
            "role": "follower", "leader": "bj-a", "term": 7, "applied_index": 42, "fence_ns": 1,
            "lease_end_ns": null, "last_issued": null, "issued": 0, "refused": 3, "forwarded_batches": 9}});
        assert_eq!(
            TsoRole::from_status_json(&status),
            Some(TsoRole { role: "follower".to_owned(), leader: Some("bj-a".to_owned()), term: 7 })
        );
        let no_leader = json!({"tso": {"role": "candidate", "leader": null, "term": 8}});
        assert_eq!(TsoRole::from_status_json(&no_leader).unwrap().leader, None);
        for garbage in [json!({}), json!(null), json!({"tso": null}), json!({"tso": {"role": 1, "term": 2}})] {
            assert_eq!(TsoRole::from_status_json(&garbage), None, "{garbage}");
        }
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
