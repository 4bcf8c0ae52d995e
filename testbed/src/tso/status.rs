//! What the sites' status files say about the TSO (the `tso` object of
//! the daemon's [`StatusSnapshot`](tsod_proto::observe::StatusSnapshot), a
//! [`TsoStatus`]: `role`, `leader`, `term`, the leader preference:
//! `priority`, `why_leading`, `handover_to`, …), and which site leads by
//! those files ([`leader_of`]): what `site = "leader"` in a scenario
//! resolves to, and what the live view names; and whether the sites agree
//! that a given site leads ([`agreed_leader`]): a scenario's
//! `expect-leader`.
//!
//! A status file is written by its daemon; a killed or paused daemon's file
//! keeps saying what it said last, so a paused leader's file still says
//! `leader`. The caller therefore says which sites may count (running, not
//! paused), and among several that claim to lead the highest term wins.

use std::path::Path;

use tsod_proto::observe::{TsoRole, TsoStatus};

use crate::status_file;

/// The TSO part of the status file at `path`; `None` without a status file
/// or without a TSO in it.
pub fn read(path: &Path) -> Option<TsoStatus> {
    status_file::read(path)?.tso
}

/// The index of the site that leads: among the sites that may count
/// (`.0`), those whose role is `leader`, the one with the highest term
/// (the first on a tie); `None` if none claims to lead.
pub fn leader_of(sites: &[(bool, Option<TsoStatus>)]) -> Option<usize> {
    sites
        .iter()
        .enumerate()
        .filter_map(|(i, (counts, tso))| match tso {
            Some(tso) if *counts && tso.role == TsoRole::Leader => Some((i, tso.term)),
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
    pub tso: Option<TsoStatus>,
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
        .and_then(|s| s.tso.as_ref())
        .filter(|t| t.role == TsoRole::Leader)
        .map(|t| t.term);
    let agrees = |site: &SiteView| {
        site.absent.is_some()
            || site.name == expected
            || site.tso.as_ref().is_some_and(|t| t.leader.as_deref() == Some(expected) && Some(t.term) == term)
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
        match (self.absent, &self.tso) {
            (Some(absent), _) => format!("{name} {absent}"),
            (None, None) => format!("{name} has no fresh TSO status"),
            (None, Some(t)) if t.role == TsoRole::Leader => format!("{name} leads (term {})", t.term),
            (None, Some(t)) => {
                format!("{name} {} of {} (term {})", t.role, t.leader.as_deref().unwrap_or("no leader"), t.term)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tsod_proto::ClockStatus;
    use tsod_proto::observe::StatusSnapshot;

    use super::*;

    fn role(role: TsoRole, term: u64) -> Option<TsoStatus> {
        Some(TsoStatus { role, term, ..TsoStatus::default() })
    }

    #[test]
    fn reads_the_tso_of_a_status_file() {
        let dir = std::env::temp_dir().join(format!("tsod-testbed-tso-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment.status.json");
        let tso = TsoStatus {
            role: TsoRole::Leader,
            leader: Some("(this site)".to_owned()),
            term: 4,
            priority: Some(5),
            why_leading: Some("highest leader-priority (5)".to_owned()),
            handover_to: Some("xa".to_owned()),
            ..TsoStatus::default()
        };
        let mut status = StatusSnapshot::from_json(
            br#"{"status":"synchronized","half_width_ns":900,"frequency_ppb":null,"drift_bound_ppb":null,
                "disruption_count":0,"pid":1,"sources":[]}"#,
        )
        .unwrap();
        assert_eq!(status.status, ClockStatus::Synchronized);
        std::fs::write(&path, status.to_json().unwrap()).unwrap();
        assert_eq!(read(&path), None, "no TSO at this site");
        status.tso = Some(tso.clone());
        std::fs::write(&path, status.to_json().unwrap()).unwrap();
        assert_eq!(read(&path), Some(tso));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read(&path), None, "no file");
    }

    fn view(name: &str, absent: Option<&'static str>, tso: Option<TsoStatus>) -> SiteView {
        SiteView { name: name.to_owned(), absent, tso }
    }

    fn follower(of: &str, term: u64) -> Option<TsoStatus> {
        Some(TsoStatus { role: TsoRole::Follower, leader: Some(of.to_owned()), term, ..TsoStatus::default() })
    }

    #[test]
    fn the_expected_leader_needs_every_counting_site_to_agree() {
        let leads = || role(TsoRole::Leader, 4);
        let agreed =
            [view("fr", None, leads()), view("sh", None, follower("fr", 4)), view("va", None, follower("fr", 4))];
        assert_eq!(agreed_leader(&agreed, "fr"), Ok(4));
        // Sites that do not count are left out, whatever their stale files say.
        let one_down = [
            view("fr", None, leads()),
            view("sh", Some("down"), role(TsoRole::Leader, 9)),
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
        let candidate = [view("fr", None, role(TsoRole::Candidate, 5)), view("sh", None, follower("fr", 5))];
        assert!(agreed_leader(&candidate, "fr").is_err());
        assert!(agreed_leader(&agreed, "mars").is_err());
        assert!(agreed_leader(&[], "fr").is_err());
    }

    #[test]
    fn the_leader_is_the_highest_term_claim_that_counts() {
        assert_eq!(
            leader_of(&[(true, role(TsoRole::Follower, 3)), (true, role(TsoRole::Leader, 3)), (true, None)]),
            Some(1)
        );
        // A paused old leader still says so in its file: it does not count.
        assert_eq!(leader_of(&[(false, role(TsoRole::Leader, 2)), (true, role(TsoRole::Follower, 3))]), None);
        // Two claims (one stale): the higher term wins.
        assert_eq!(
            leader_of(&[
                (true, role(TsoRole::Leader, 2)),
                (true, role(TsoRole::Leader, 5)),
                (true, role(TsoRole::Leader, 4))
            ]),
            Some(1)
        );
        assert_eq!(leader_of(&[(true, role(TsoRole::Leader, 5)), (true, role(TsoRole::Leader, 5))]), Some(0));
        assert_eq!(leader_of(&[]), None);
    }
}
