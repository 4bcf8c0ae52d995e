//! The `leap-seconds.list` the testbed gives its daemons (`[clock]
//! leap-seconds-list`), so that no run depends on the host's tzdata.
//!
//! The file is in the IERS format tzdata ships: `#$` the last update, `#@`
//! the expiry, data lines `<NTP seconds> <TAI − UTC>` (the first instant
//! after each change, from the 1972 baseline on), and `#h`, SHA-1 over the
//! digits of those numbers in file order. The daemon only parses lists
//! (`tsod::leap_list`); this is the project's one writer, here because the
//! server's tests may use the testbed but not the other way round. The
//! daemon's parser checks every list it is given (hash included;
//! `server/tests/testbed_leap_list.rs` checks this writer against it), and
//! a run whose list it refused would show it in the site's log ("no usable
//! leap-second list").
//!
//! [`for_run`] says what the list holds: every real leap second to
//! 1 January 2017, plus the scenario's leap when it is announced, with an
//! expiry that covers the run and its leap, or, for a leap nobody announces,
//! an expiry before it (old tzdata: the daemon cannot know).

use ring::digest;
use tsod_proto::Timestamp;

use crate::truth::{LeapKind, TrueTime};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

const DAY_S: u64 = 86_400;

/// Every change of TAI − UTC since 1972 as the IERS published it: (NTP
/// seconds of the first instant after it, TAI − UTC from then on); the
/// first is the 1972 baseline, the last 1 January 2017.
pub const HISTORIC: [(u64, i32); 28] = [
    (2_272_060_800, 10),
    (2_287_785_600, 11),
    (2_303_683_200, 12),
    (2_335_219_200, 13),
    (2_366_755_200, 14),
    (2_398_291_200, 15),
    (2_429_913_600, 16),
    (2_461_449_600, 17),
    (2_492_985_600, 18),
    (2_524_521_600, 19),
    (2_571_782_400, 20),
    (2_603_318_400, 21),
    (2_634_854_400, 22),
    (2_698_012_800, 23),
    (2_776_982_400, 24),
    (2_840_140_800, 25),
    (2_871_676_800, 26),
    (2_918_937_600, 27),
    (2_950_473_600, 28),
    (2_982_009_600, 29),
    (3_029_443_200, 30),
    (3_076_704_000, 31),
    (3_124_137_600, 32),
    (3_345_062_400, 33),
    (3_439_756_800, 34),
    (3_550_089_600, 35),
    (3_644_697_600, 36),
    (3_692_217_600, 37),
];

/// A list's contents, in Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeapListPlan {
    /// Every entry, baseline first: (first instant after the change, TAI − UTC).
    pub entries: Vec<(u64, i32)>,
    /// `#$`: when it was last updated.
    pub updated: u64,
    /// `#@`: until when it speaks.
    pub expires: u64,
}

/// The list for a run whose true time is `truth`, started at host realtime
/// `host_now`:
///
/// * no leap: the real leaps, updated 30 days before the run's date,
///   expiring 180 days after it;
/// * an announced leap at `L`: the real leaps and it, updated 30 days
///   before the run, expiring 180 days after `L`;
/// * a leap nobody announces: the real leaps only, updated 200 days and
///   expiring 15 days before `L` (expired when the run starts).
pub fn for_run(truth: &TrueTime, host_now: Timestamp) -> LeapListPlan {
    let now = u64::try_from(truth.posix(host_now).max(0) / 1_000_000_000).unwrap_or(0);
    let mut entries: Vec<(u64, i32)> = HISTORIC.iter().map(|(ntp, offset)| (ntp - NTP_UNIX_OFFSET, *offset)).collect();
    let (updated, expires) = match truth.leap() {
        None => (now.saturating_sub(30 * DAY_S), now.saturating_add(180 * DAY_S)),
        Some(leap) if leap.announced => {
            let last = entries.last().map_or(37, |e| e.1);
            let changed = match leap.kind {
                LeapKind::Insert => last.saturating_add(1),
                LeapKind::Delete => last.saturating_sub(1),
            };
            entries.push((leap.boundary_s, changed));
            (now.saturating_sub(30 * DAY_S), leap.boundary_s.saturating_add(180 * DAY_S))
        }
        Some(leap) => (leap.boundary_s.saturating_sub(200 * DAY_S), leap.boundary_s.saturating_sub(15 * DAY_S)),
    };
    LeapListPlan { entries, updated, expires }
}

impl LeapListPlan {
    /// The file's text, `#h` included.
    pub fn render(&self) -> String {
        let ntp = |unix: u64| unix.saturating_add(NTP_UNIX_OFFSET);
        let mut digits = format!("{}{}", ntp(self.updated), ntp(self.expires));
        let mut body = String::new();
        for (at, offset) in &self.entries {
            digits.push_str(&format!("{}{offset}", ntp(*at)));
            body.push_str(&format!("{}\t{offset}\t# {}\n", ntp(*at), date(*at)));
        }
        format!(
            "# leap-seconds.list written by tsod-testbed (not published by the IERS)\n#$\t{}\n#@\t{}\n#\n{body}#\n\
             #h\t{}\n",
            ntp(self.updated),
            ntp(self.expires),
            sha1_words(&digits)
        )
    }
}

/// SHA-1 of `digits` as the list writes it: five words of eight hex digits.
fn sha1_words(digits: &str) -> String {
    let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, digits.as_bytes());
    hash.as_ref()
        .chunks(4)
        .map(|word| word.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1 Jul 2027`, for the comment of a data line.
fn date(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map_or_else(String::new, |d| d.format("%-d %b %Y").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::Leap;

    /// 2027-07-01T00:00:00Z.
    const L: u64 = 1_814_400_000;

    #[test]
    fn the_hash_is_sha1_over_the_digits() {
        // The daemon's pinned vector (server/src/leap_list/tests.rs), computed with sha1sum.
        let digits = "40871520004117824000227206080010228778560011369221760012410244480011";
        assert_eq!(sha1_words(digits), "296322f2 a76c4fdf f1ab83be 5f9f409a 1fd226b9");
    }

    #[test]
    fn the_real_list_is_reproduced() {
        // The list tzdata 2025b ships (updated 2025-07-07, expires
        // 2026-06-28), as the IERS published it: the same numbers give the
        // same hash.
        let plan = LeapListPlan {
            entries: HISTORIC.iter().map(|(ntp, offset)| (ntp - NTP_UNIX_OFFSET, *offset)).collect(),
            updated: 3_960_835_200 - NTP_UNIX_OFFSET,
            expires: 3_991_593_600 - NTP_UNIX_OFFSET,
        };
        let text = plan.render();
        assert!(text.contains("#$\t3960835200\n#@\t3991593600\n"), "{text}");
        assert!(text.contains("2272060800\t10\t# 1 Jan 1972\n"), "{text}");
        assert!(
            text.ends_with("3692217600\t37\t# 1 Jan 2017\n#\n#h\t49db2447 571e5e1b 2f002a53 9c8da8e4 39b8e49e\n"),
            "{text}"
        );
    }

    #[test]
    fn each_run_gets_the_list_its_leap_needs() {
        let host = Timestamp::from_nanos(1_796_000_000 * 1_000_000_000);
        let plain = for_run(&TrueTime::default(), host);
        assert_eq!(plain.entries.len(), 28);
        assert_eq!((plain.updated, plain.expires), (1_796_000_000 - 30 * DAY_S, 1_796_000_000 + 180 * DAY_S));
        let day_ends = Timestamp::from_nanos(1_796_000_100 * 1_000_000_000);
        let leap = |kind, announced| TrueTime::for_leap(Leap { boundary_s: L, kind, announced }, day_ends);
        let insert = for_run(&leap(LeapKind::Insert, true), host);
        assert_eq!(insert.entries.last(), Some(&(L, 38)));
        assert!(insert.updated < L - 100 && insert.expires > L);
        let delete = for_run(&leap(LeapKind::Delete, true), host);
        assert_eq!(delete.entries.last(), Some(&(L, 36)));
        let quiet = for_run(&leap(LeapKind::Insert, false), host);
        assert_eq!(quiet.entries.len(), 28);
        assert!(quiet.updated < quiet.expires && quiet.expires < L - 100, "expired before the run, and the leap");
    }
}
