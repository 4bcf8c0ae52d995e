//! The conversion against an independent model of each case: a true
//! timeline (SI seconds), the UTC value a source reads along it, and the
//! service time the smear gives it.

use std::sync::Arc;

use super::*;
use tsod_testbed::leap_list::LeapListPlan;

use crate::leap_list::LeapList;

const SEC: i128 = 1_000_000_000;
/// 2027-01-01T00:00:00Z: a second inserted before it (in the test list).
const L_INSERT: i128 = 1_798_761_600;
/// 2027-07-01T00:00:00Z: a second deleted before it (in the test list).
const L_DELETE: i128 = 1_814_400_000;
/// 2028-01-01T00:00:00Z: after the test list's expiry.
const L_UNKNOWN: i128 = 1_830_297_600;

fn schedule() -> Arc<LeapSchedule> {
    let (insert, delete) = (u64::try_from(L_INSERT).unwrap(), u64::try_from(L_DELETE).unwrap());
    // The 1972 baseline, then the two test leaps; expires 2027-12-28.
    let entries = vec![(63_072_000, 10), (insert, 11), (delete, 10)];
    let text = LeapListPlan { entries, updated: 1_790_000_000, expires: 1_829_952_000 }.render();
    Arc::new(LeapSchedule::new(Some(LeapList::parse(&text).unwrap())))
}

fn ts(ns: i128) -> Timestamp {
    Timestamp::from_nanos(u64::try_from(ns).unwrap())
}

/// What a `utc` source reads at true time `tau` (ns since W0 = L − 12 h)
/// around a leap of sign `d` at `l` (s), and the service time then (exact, as a rational floor).
fn world(tau: i128, l: i128, d: i128) -> (i128, i128) {
    let w0 = (l - 43_200) * SEC;
    let posix = match d {
        0 => w0 + tau,
        // The inserted second repeats [L − 1, L).
        1 if tau < 43_200 * SEC => w0 + tau,
        1 if tau < 43_201 * SEC => w0 + tau - SEC,
        1 => w0 + tau - SEC,
        // The deleted second [L − 1, L) is skipped.
        _ if tau < 43_199 * SEC => w0 + tau,
        _ => w0 + tau + SEC,
    };
    let len = (86_400 + d) * SEC;
    let service = if tau <= 0 {
        w0 + tau
    } else if tau >= len {
        w0 + tau - d * SEC
    } else {
        w0 + tau * 86_400 / (86_400 + d)
    };
    (posix, service)
}

/// True instants across the window, dense around the leap.
fn taus() -> impl Iterator<Item = i128> {
    let coarse = (-2..=26).map(|h| h * 3_600 * SEC);
    let fine = (-40..=40).map(|q| 43_200 * SEC + q * SEC / 8);
    coarse.chain(fine).chain([43_199 * SEC + SEC / 3, 43_200 * SEC + 2 * SEC / 3, 86_399 * SEC, 86_401 * SEC])
}

fn check(conv: &mut ToService, l: i128, d: i128, announce: Option<LeapAnnouncement>, max_extra: Option<i128>) {
    for tau in taus() {
        let (posix, service) = world(tau, l, d);
        for hw in [0, 1_000, 200_000_000] {
            let interval = TimeInterval::new(ts(posix - hw), ts(posix + hw)).unwrap();
            let out = conv.convert(interval, announce);
            assert!(
                out.contains(ts(service)) && out.contains(ts(service + 1).min(out.latest())),
                "d = {d}, τ = {tau}: UTC {interval} → {out} misses service time {service}"
            );
            if let Some(extra) = max_extra {
                let ambiguous = d == 1 && (posix - l * SEC).abs() <= SEC + hw;
                if !ambiguous {
                    let grown = i128::try_from(out.width().as_nanos()).unwrap() - 2 * hw;
                    // The smear's own rate scales the width by up to 1/86399.
                    assert!(grown <= extra + 2 * hw / 86_000, "d = {d}, τ = {tau}: widened by {grown} ns");
                }
            }
        }
    }
}

#[test]
fn known_leaps_convert_exactly_across_an_inserted_and_a_deleted_second() {
    let mut c = ToService::new(SourceTimescale::Utc, schedule());
    check(&mut c, L_INSERT, 1, None, Some(4));
    check(&mut c, L_DELETE, -1, None, Some(4));
    // A month end the list says has no leap: unchanged.
    check(&mut c, 1_801_440_000, 0, None, Some(0)); // 2027-02-01
}

/// Issue 15, path 1: a gpsd source cannot announce; the leap guard let its
/// UTC through the smear unchanged, up to 0.5 s off the service time.
#[test]
fn a_source_that_cannot_announce_is_converted_by_the_list() {
    let mut c = ToService::new(SourceTimescale::Utc, schedule());
    let (posix, service) = world(43_200 * SEC - SEC / 2, L_INSERT, 1);
    let pps = TimeInterval::around(ts(posix), Duration::from_micros(1));
    let out = c.convert(pps, None);
    assert!(out.contains(ts(service)), "{out} misses {service}");
    assert!(!pps.contains(ts(service)), "unconverted, the PPS sample is {} ns off", posix - service);
}

#[test]
fn unknown_month_ends_get_the_hull_of_every_case() {
    for d in [0, 1, -1] {
        let mut c = ToService::new(SourceTimescale::Utc, schedule());
        check(&mut c, L_UNKNOWN, d, None, None);
        let mut c = ToService::new(SourceTimescale::Utc, Arc::new(LeapSchedule::default()));
        check(&mut c, L_INSERT, d, None, None);
    }
    let mut c = ToService::new(SourceTimescale::Utc, Arc::new(LeapSchedule::default()));
    let at_boundary = c.convert(TimeInterval::point(ts(L_UNKNOWN * SEC)), None);
    assert!(at_boundary.width() >= Duration::from_millis(999), "{at_boundary}");
    let far = TimeInterval::point(ts((L_UNKNOWN - 13 * 3_600) * SEC));
    assert_eq!(c.convert(far, None), far, "13 h away nothing changes");
}

#[test]
fn an_announcement_narrows_an_unknown_month_end_to_it_or_none() {
    for d in [0, 1] {
        let mut c = ToService::new(SourceTimescale::Utc, Arc::new(LeapSchedule::default()));
        check(&mut c, L_UNKNOWN, d, Some(LeapAnnouncement::Insert), None);
    }
    let mut c = ToService::new(SourceTimescale::Utc, Arc::new(LeapSchedule::default()));
    let before = ts((L_UNKNOWN - 3_600) * SEC);
    let announced = c.convert(TimeInterval::point(before), Some(LeapAnnouncement::Insert));
    let mut blind = ToService::new(SourceTimescale::Utc, Arc::new(LeapSchedule::default()));
    let unknown = blind.convert(TimeInterval::point(before), None);
    assert!(announced.width() < unknown.width(), "{announced} vs {unknown}");
    assert_eq!(announced.latest(), before, "no delete possible: nothing after the UTC value");
    // Remembered after the source withdraws the announcement at the leap.
    let after = ts((L_UNKNOWN + 3_600) * SEC);
    let kept = c.convert(TimeInterval::point(after), Some(LeapAnnouncement::None));
    assert!(kept.width() < blind.convert(TimeInterval::point(after), None).width());
}

#[test]
fn smeared_sources_are_unchanged() {
    let mut c = ToService::new(SourceTimescale::UtcSmear24h, Arc::new(LeapSchedule::default()));
    let i = TimeInterval::point(ts(L_INSERT * SEC));
    assert_eq!(c.convert(i, Some(LeapAnnouncement::Insert)), i);
}

#[test]
fn smear_allowance_follows_the_schedule() {
    let s = schedule();
    assert_eq!(smear_allowance(&s, ts((L_INSERT - 11 * 3_600) * SEC)), SMEAR_RATE);
    assert_eq!(smear_allowance(&s, ts((L_DELETE + 12 * 3_600 + 1_800) * SEC)), SMEAR_RATE);
    assert_eq!(smear_allowance(&s, ts(1_801_440_000 * SEC)), Ppb::ZERO, "2027-02-01: no leap listed");
    assert_eq!(smear_allowance(&s, ts(L_UNKNOWN * SEC)), SMEAR_RATE, "after the expiry: unknown");
    assert_eq!(smear_allowance(&s, ts((L_INSERT - 14 * 3_600) * SEC)), Ppb::ZERO);
    assert_eq!(smear_allowance(&LeapSchedule::default(), ts(1_801_440_000 * SEC)), SMEAR_RATE, "no list");
}

#[test]
fn the_kernels_leap_step_is_recognised_only_at_a_month_boundary() {
    let slack = 2_000_000;
    assert!(is_leap_step(-SEC, ts(L_INSERT * SEC - SEC / 2), slack));
    assert!(is_leap_step(SEC + 500_000, ts(L_DELETE * SEC + SEC / 2), slack));
    assert!(!is_leap_step(-SEC, ts((L_INSERT + 3_600) * SEC), slack), "an hour later: a step");
    assert!(!is_leap_step(-SEC / 2, ts(L_INSERT * SEC), slack), "not a whole second");
    assert!(spans_possible_leap_step(ts(L_INSERT * SEC - SEC / 2), ts(L_INSERT * SEC + SEC / 2)));
    assert!(spans_possible_leap_step(ts(L_INSERT * SEC - 3 * SEC), ts(L_INSERT * SEC + 3 * SEC)));
    assert!(!spans_possible_leap_step(ts(L_INSERT * SEC + 3 * SEC), ts(L_INSERT * SEC + 5 * SEC)));
}

#[test]
fn nearest_month_starts() {
    assert_eq!(nearest_month_start(ts(L_INSERT * SEC - 1)), ts(L_INSERT * SEC));
    assert_eq!(nearest_month_start(ts((L_INSERT + 86_400 * 10) * SEC)), ts(L_INSERT * SEC));
    assert_eq!(nearest_month_start(ts((L_INSERT - 86_400 * 10) * SEC)), ts(L_INSERT * SEC));
}
