//! The testbed writes its own leap-seconds.list (it cannot depend on this
//! crate): the daemon's parser must accept it, hash included, and read the
//! scenario's leap from it, or every leap scenario would run on "unknown".

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use tsod::leap_list::LeapList;
use tsod::timescale::LeapAnnouncement;
use tsod_proto::Timestamp;
use tsod_testbed::leap_list::{HISTORIC, LeapListPlan};

const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

fn at(unix: u64) -> Timestamp {
    Timestamp::from_nanos(unix * 1_000_000_000)
}

#[test]
fn the_daemon_reads_the_testbeds_leap_lists() {
    let mut entries: Vec<(u64, i32)> = HISTORIC.iter().map(|(ntp, o)| (ntp - NTP_UNIX_OFFSET, *o)).collect();
    let july_2027 = 1_814_400_000;
    entries.push((july_2027, 38));
    let plan = LeapListPlan { entries: entries.clone(), updated: 1_800_000_000, expires: july_2027 + 180 * 86_400 };
    let list = LeapList::parse(&plan.render()).unwrap();
    assert_eq!(list.leap_at(at(july_2027)), Some(LeapAnnouncement::Insert));
    assert_eq!(list.leap_at(at(1_483_228_800)), Some(LeapAnnouncement::Insert), "2017-01-01");
    assert_eq!(list.expires(), at(plan.expires));
    entries.pop();
    entries.push((july_2027, 36));
    let plan = LeapListPlan { entries, ..plan };
    assert_eq!(LeapList::parse(&plan.render()).unwrap().leap_at(at(july_2027)), Some(LeapAnnouncement::Delete));
}
