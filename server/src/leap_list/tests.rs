use super::*;
use proptest::prelude::*;

/// A synthetic list: two real leaps, a made-up 2017 offset, and a
/// deleted second at the end of 2029. Updated 2029-07-08, expires
/// 2030-06-28, like an IERS list.
const BODY: &str = "\
# A synthetic leap-seconds.list.
#
#$\t4087152000
#@\t4117824000
#
2272060800\t10\t# 1 Jan 1972
2287785600\t11\t# 1 Jul 1972
3692217600\t12\t# 1 Jan 2017
4102444800\t11\t# 1 Jan 2030
#
";
/// SHA-1 of "40871520004117824000227206080010228778560011369221760012410244480011",
/// computed with `sha1sum`: pins the hash algorithm, not just its
/// self-consistency.
const PINNED_HASH: &str = "#h\t296322f2 a76c4fdf f1ab83be 5f9f409a 1fd226b9\n";

fn sample() -> String {
    format!("{BODY}{PINNED_HASH}")
}

/// `body` with its `#h` line appended, computed by the parser's own
/// hash (words written without leading zeros, which must also verify).
fn with_hash(body: &str) -> String {
    let words = scan(body).unwrap().digest.map(|w| format!("{w:x}")).join(" ");
    format!("{body}\n#h {words}\n")
}

/// A list of `lines` (line k of the result is `lines[k - 1]`) and its hash.
fn list(lines: &[&str]) -> String {
    with_hash(&lines.join("\n"))
}

fn ts(rfc3339: &str) -> Timestamp {
    Timestamp::try_from(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)).unwrap()
}

fn ntp(seconds: u64) -> Timestamp {
    Timestamp::from_nanos((seconds - NTP_UNIX_OFFSET) * NANOS_PER_SEC)
}

const OK_HEAD: [&str; 3] = ["#$ 4087152000", "#@ 4117824000", "2272060800 10"];

#[test]
fn synthetic_list_verifies_against_the_pinned_hash() {
    let l = LeapList::parse(&sample()).unwrap();
    assert_eq!(l.updated(), ts("2029-07-08T00:00:00Z"));
    assert_eq!(l.expires(), ts("2030-06-28T00:00:00Z"));
    assert_eq!(LeapList::parse(&with_hash(BODY)).unwrap(), l, "the unpadded, computed hash verifies too");
    assert!(!l.is_expired(ts("2030-06-28T00:00:00Z")));
    assert!(l.is_expired(ts("2030-06-28T00:00:00.000000001Z")));
}

#[test]
fn leaps_inserted_deleted_absent_and_unknown() {
    let l = LeapList::parse(&sample()).unwrap();
    assert_eq!(l.leap_at(ts("1972-07-01T00:00:00Z")), Some(LeapAnnouncement::Insert));
    assert_eq!(l.leap_at(ts("2017-01-01T00:00:00Z")), Some(LeapAnnouncement::Insert));
    assert_eq!(l.leap_at(ts("2030-01-01T00:00:00Z")), Some(LeapAnnouncement::Delete));
    assert_eq!(l.leap_at(ts("2029-07-01T00:00:00Z")), Some(LeapAnnouncement::None));
    assert_eq!(l.leap_at(ts("2030-06-01T00:00:00Z")), Some(LeapAnnouncement::None), "covered: before expiry");
    assert_eq!(l.leap_at(ts("1972-01-01T00:00:00Z")), Some(LeapAnnouncement::None), "the baseline");
    assert_eq!(l.leap_at(ts("1971-01-01T00:00:00Z")), Some(LeapAnnouncement::None), "before leap seconds");
    assert_eq!(l.leap_at(ts("2030-07-01T00:00:00Z")), None, "after the expiry: unknown");
    assert_eq!(l.leap_at(ts("2045-01-01T00:00:00Z")), None);
    // Not a month start: no leap can happen there, expiry or not.
    assert_eq!(l.leap_at(ts("2030-01-01T00:00:01Z")), Some(LeapAnnouncement::None));
    assert_eq!(l.leap_at(ts("2031-12-31T00:00:00Z")), Some(LeapAnnouncement::None));
    let leaps: Vec<_> = l.leaps().collect();
    assert_eq!(
        leaps,
        [
            (ts("1972-07-01T00:00:00Z"), LeapAnnouncement::Insert),
            (ts("2017-01-01T00:00:00Z"), LeapAnnouncement::Insert),
            (ts("2030-01-01T00:00:00Z"), LeapAnnouncement::Delete),
        ]
    );
}

#[test]
fn tai_offset_is_known_from_1972_until_the_first_month_start_after_expiry() {
    let l = LeapList::parse(&sample()).unwrap();
    assert_eq!(l.tai_offset_at(ts("1971-12-31T23:59:59Z")), None);
    assert_eq!(l.tai_offset_at(ts("1972-01-01T00:00:00Z")), Some(10));
    assert_eq!(l.tai_offset_at(ts("1972-06-30T23:59:59.999Z")), Some(10));
    assert_eq!(l.tai_offset_at(ts("1972-07-01T00:00:00Z")), Some(11));
    assert_eq!(l.tai_offset_at(ts("2029-12-31T23:59:58Z")), Some(12));
    assert_eq!(l.tai_offset_at(ts("2030-01-01T00:00:00Z")), Some(11));
    assert_eq!(l.tai_offset_at(ts("2030-06-30T23:59:59Z")), Some(11), "expired, but no leap can have happened");
    assert_eq!(l.tai_offset_at(ts("2030-07-01T00:00:00Z")), None);
}

#[test]
fn every_changed_digit_fails_the_hash() {
    let text = sample();
    let mut checked = 0;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let numbers = if line.starts_with("#$") || line.starts_with("#@") {
            line.len()
        } else if line.starts_with('#') {
            0
        } else {
            line.find('#').unwrap_or(line.len())
        };
        for (i, b) in line.bytes().enumerate().take(numbers) {
            if b.is_ascii_digit() {
                let mut altered = text.clone().into_bytes();
                altered[start + i] = b'0' + (b - b'0' + 1) % 10;
                let altered = String::from_utf8(altered).unwrap();
                let err = LeapList::parse(&altered).unwrap_err();
                assert!(matches!(err, LeapListError::HashMismatch { .. }), "{altered}: {err}");
                checked += 1;
            }
        }
        start += line.len();
    }
    assert_eq!(checked, 20 + 4 * 12);
    // A changed hash word fails too, and the message shows both hashes.
    let err = LeapList::parse(&sample().replace("296322f2", "296322f3")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the leap-second list is corrupt: its hash is 296322f3 a76c4fdf f1ab83be 5f9f409a 1fd226b9 \
         but its data hash to 296322f2 a76c4fdf f1ab83be 5f9f409a 1fd226b9; reinstall tzdata"
    );
    // Comments are not hashed.
    assert!(LeapList::parse(&sample().replace("# 1 Jan 2017", "# whatever")).is_ok());
}

#[test]
fn the_system_list_when_present() {
    let path = Path::new(SYSTEM_PATH);
    if !path.exists() {
        println!("{SYSTEM_PATH} is absent: only the embedded synthetic list was checked");
        return;
    }
    let l = LeapList::load(path).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let field = |tag: &str| {
        let line = text.lines().find(|l| l.starts_with(tag)).unwrap();
        ntp(line[2..].trim().parse().unwrap())
    };
    assert_eq!(l.expires(), field("#@"));
    assert_eq!(l.updated(), field("#$"));
    assert_eq!(l.leap_at(ts("2015-07-01T00:00:00Z")), Some(LeapAnnouncement::Insert));
    assert_eq!(l.leap_at(ts("2017-01-01T00:00:00Z")), Some(LeapAnnouncement::Insert));
    assert_eq!(l.leap_at(ts("2016-01-01T00:00:00Z")), Some(LeapAnnouncement::None));
    assert_eq!(l.tai_offset_at(ts("2016-12-31T23:59:59Z")), Some(36));
    assert_eq!(l.tai_offset_at(ts("2017-01-01T00:00:00Z")), Some(37));
    assert_eq!(l.leaps().count(), 27);
    for boundary in ["2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"].map(ts) {
        let want = (boundary <= l.expires()).then_some(LeapAnnouncement::None);
        assert_eq!(l.leap_at(boundary), want, "{boundary}");
    }
    let err = LeapList::parse(&text.replacen("3692217600", "3692217601", 1)).unwrap_err();
    assert!(matches!(err, LeapListError::HashMismatch { .. }), "{err}");
    println!("checked {SYSTEM_PATH}: updated {}, expires {}", l.updated(), l.expires());
}

#[test]
fn io_too_large_and_not_text() {
    let missing = Path::new("/nonexistent/leap-seconds.list");
    let err = LeapList::load(missing).unwrap_err();
    assert!(matches!(&err, LeapListError::Io { path, .. } if path == missing), "{err}");

    let big = format!("{}{}", sample(), "#".repeat(MAX_LEN));
    assert!(matches!(LeapList::parse(&big), Err(LeapListError::TooLarge { max: MAX_LEN })));
    let zero = Path::new("/dev/zero");
    if zero.exists() {
        // Reading stops after MAX_LEN + 1 bytes of an endless file.
        assert!(matches!(LeapList::load(zero), Err(LeapListError::TooLarge { .. })));
    }

    let dir = std::env::temp_dir();
    let binary = dir.join(format!("tsod-leap-list-test-{}.bin", std::process::id()));
    std::fs::write(&binary, b"#$ 4087152000\n\xff\xfe\x00\n").unwrap();
    let result = LeapList::load(&binary);
    std::fs::remove_file(&binary).unwrap();
    assert!(matches!(result, Err(LeapListError::NotText { .. })), "{result:?}");
    let good = dir.join(format!("tsod-leap-list-test-{}.list", std::process::id()));
    std::fs::write(&good, sample()).unwrap();
    let result = LeapList::load(&good);
    std::fs::remove_file(&good).unwrap();
    assert_eq!(result.unwrap(), LeapList::parse(&sample()).unwrap());
}

#[test]
fn malformed_lines_name_their_line() {
    for bad in [
        "#$ 12x",
        "#$",
        "#$ 1 2",
        "#@ -4117824000",
        "#h 1 2 3 4",
        "#h 1 2 3 4 5 6",
        "#h 123456789 2 3 4 5",
        "#h g 2 3 4 5",
        "#h +1 2 3 4 5",
        "2287785600 11 12",
        "2287785600",
        "2287785600 +11",
        "2287785600 -11",
        "0x10 11",
        "\u{0}",
        "2287785600\u{0}11",
    ] {
        let text = [&OK_HEAD[..], &[bad]].concat().join("\n");
        let err = LeapList::parse(&text).unwrap_err();
        assert!(matches!(err, LeapListError::Malformed { line: 4, .. }), "{bad:?}: {err}");
    }
}

#[test]
fn duplicate_and_missing_lines() {
    for (extra, tag) in [("#$ 4087152000", "#$"), ("#@ 4117824000", "#@"), ("#h 1 2 3 4 5", "#h")] {
        let text = [&OK_HEAD[..], &[extra, extra]].concat().join("\n");
        let err = LeapList::parse(&text).unwrap_err();
        assert!(matches!(err, LeapListError::Duplicate { tag: t, .. } if t == tag), "{tag}: {err}");
    }
    let missing = |text: &str| match LeapList::parse(text) {
        Err(LeapListError::Missing { what }) => what,
        other => panic!("{other:?}"),
    };
    assert!(missing(&list(&OK_HEAD[1..])).contains("#$"));
    assert!(missing(&list(&[OK_HEAD[0], OK_HEAD[2]])).contains("#@"));
    assert!(missing(&OK_HEAD.join("\n")).contains("#h"));
    assert!(missing(&list(&OK_HEAD[..2])).contains("data"));
    assert!(matches!(LeapList::parse(""), Err(LeapListError::Missing { .. })));
}

/// The list's rules, on lists whose hash is right.
#[test]
fn rule_violations() {
    let err = |lines: &[&str]| LeapList::parse(&list(&[&OK_HEAD[..], lines].concat())).unwrap_err();
    let e = err(&["2303683200 11", "2287785600 12"]);
    assert!(matches!(e, LeapListError::OutOfOrder { line: 5 }), "{e}");
    let e = err(&["2287785600 11", "2287785600 12"]);
    assert!(matches!(e, LeapListError::OutOfOrder { line: 5 }), "same instant twice: {e}");
    let e = err(&["2287785600 12"]);
    assert!(matches!(e, LeapListError::OffsetStep { line: 4, from: 10, to: 12 }), "{e}");
    let e = err(&["2287785600 10"]);
    assert!(matches!(e, LeapListError::OffsetStep { line: 4, from: 10, to: 10 }), "{e}");
    let e = err(&["2287785601 11"]);
    assert!(matches!(e, LeapListError::NotMonthStart { line: 4 }), "{e}");
    let e = err(&["2287872000 11"]);
    assert!(matches!(e, LeapListError::NotMonthStart { line: 4 }), "2 Jul 1972: {e}");
    let e = err(&["4133980800 11"]);
    assert!(matches!(e, LeapListError::EntryAfterExpiry { line: 4 }), "{e}");
    let e = err(&["2287785600 99999999999"]);
    assert!(matches!(e, LeapListError::Unrepresentable { line: 4 }), "{e}");

    let parse = |lines: &[&str]| LeapList::parse(&list(lines)).unwrap_err();
    let e = parse(&["#$ 100", "#@ 4117824000", "2272060800 10"]);
    assert!(matches!(e, LeapListError::TooEarly { line: 1 }), "{e}");
    let e = parse(&["#$ 4087152000", "#@ 4117824000", "2240524800 9", "2272060800 10"]);
    assert!(matches!(e, LeapListError::TooEarly { line: 3 }), "1971: {e}");
    let e = parse(&["#$ 4087152000", "#@ 30000000000", "2272060800 10"]);
    assert!(matches!(e, LeapListError::Unrepresentable { line: 2 }), "after 2554: {e}");
    let e = parse(&["#$ 4087152000", "#@ 99999999999999999999999", "2272060800 10"]);
    assert!(matches!(e, LeapListError::Unrepresentable { line: 2 }), "beyond u64: {e}");
    let e = parse(&["#$ 4087152000", "#@ 4117824000", "2287785600 11"]);
    assert!(matches!(e, LeapListError::Baseline { line: 3 }), "{e}");
    let e = parse(&["#$ 4087152000", "#@ 4117824000", "2272060800 11"]);
    assert!(matches!(e, LeapListError::Baseline { line: 3 }), "{e}");
    let e = parse(&["#$ 4117824000", "#@ 4087152000", "2272060800 10"]);
    assert!(matches!(e, LeapListError::ExpiryBeforeUpdate { line: 2 }), "{e}");
}

#[test]
fn tolerated_variations() {
    // CRLF line ends, blank lines, data without a comment, unpadded hash words.
    let text = list(&["#$ 4087152000\r", "", "#@ 4117824000", "   ", "2272060800 10\r", "2287785600\t11"]);
    let l = LeapList::parse(&text).unwrap();
    assert_eq!(l.leap_at(ts("1972-07-01T00:00:00Z")), Some(LeapAnnouncement::Insert));
    assert_eq!(l.expires(), ntp(4117824000));
}

proptest! {
    #[test]
    fn garbage_never_panics(text in any::<String>()) {
        let _ = LeapList::parse(&text);
    }

    #[test]
    fn binary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = LeapList::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn a_damaged_list_never_panics(at in 0..400_usize, c in any::<char>()) {
        let mut text = sample();
        let at = at % text.len();
        text.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
        let _ = LeapList::parse(&text);
    }
}
