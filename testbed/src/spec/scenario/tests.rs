//! Scenarios: the built-ins, every file shipped in `testbed/scenarios/`,
//! the timeline's order and checks, and the errors a wrong file gets.

use tsod_proto::Ppb;

use super::*;
use crate::wan::{DirectionShape, LinkShape};

/// A scenario on `dr` with the given events (TOML text of `[[event]]` tables).
fn on_dr(events: &str) -> String {
    format!("name = \"t\"\ntopology = \"dr\"\nduration-s = 60\n{events}")
}

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, "s.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Scenario::parse(text, "s.toml").unwrap_err().to_string()
}

fn event(at: u32, action: &str, keys: &str) -> String {
    format!("\n[[event]]\nat-s = {at}\naction = \"{action}\"\n{keys}\n")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn every_shipped_scenario_is_valid_and_built_in_and_short_ones_are_short() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("toml"), "{}", path.display());
        let scenario = Scenario::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(scenario.name()), path.file_stem().and_then(|s| s.to_str()), "name = file name");
        assert_eq!(Scenario::builtin(scenario.name()).unwrap(), scenario, "the built-in is this file");
        if scenario.is_short() {
            assert!((secs(40)..=secs(60)).contains(&scenario.duration()), "{}", scenario.name());
        } else {
            assert!(scenario.description().starts_with("long:"), "{}: short or long", scenario.name());
        }
        assert!(!scenario.events().is_empty());
        names.push(scenario.name().to_owned());
    }
    // Only the ones that must exercise many cycles are long.
    let long: Vec<&String> = names.iter().filter(|n| !Scenario::builtin(n).unwrap().is_short()).collect::<Vec<_>>();
    assert_eq!(long, ["tso-restart-cycles"]);
    names.sort();
    let mut builtin: Vec<String> = Scenario::builtin_names().map(str::to_owned).collect();
    builtin.sort();
    assert_eq!(names, builtin, "every file is built in, and every built-in is a file");
}

#[test]
fn built_ins_do_what_their_names_say() {
    let lose = Scenario::load("lose-each-site").unwrap();
    assert_eq!(lose.topology().name(), "dr");
    assert_eq!((lose.duration(), lose.warmup()), (secs(60), secs(10)));
    let killed: Vec<&str> = lose
        .events()
        .iter()
        .filter(|e| matches!(e.action(), Action::Kill { .. }))
        .filter_map(|e| e.action().site())
        .collect();
    assert_eq!(killed, ["bj-a", "bj-b", "xa"]);

    let restarts = Scenario::builtin("daemon-restarts").unwrap();
    for site in ["bj-a", "bj-b", "xa"] {
        let kills = restarts.events().iter().filter(|e| *e.action() == Action::Kill { site: site.into() }).count();
        assert_eq!(kills, 2, "{site}");
    }

    let asymmetric = Scenario::builtin("asymmetric-wan").unwrap();
    let Action::Link(link) = asymmetric.events()[0].action() else { panic!("{:?}", asymmetric.events()) };
    assert_eq!((link.forward_delay(), link.reverse_delay()), (Duration::from_millis(5), Duration::from_millis(45)));

    let step = Scenario::builtin("clock-step").unwrap();
    assert_eq!(step.clock_changes("xa"), [(secs(15), Offset::from_nanos(50_000_000), Duration::ZERO)]);

    let loss = Scenario::builtin("tso-leader-loss").unwrap();
    let actions: Vec<&Action> = loss.events().iter().map(Event::action).collect();
    assert_eq!(actions, [&Action::Kill { site: LEADER.into() }, &Action::Restart { site: LEADER.into() }]);

    let pause = Scenario::builtin("tso-leader-pause").unwrap();
    let pauses: Vec<(Duration, &Action)> = pause.events().iter().map(|e| (e.at(), e.action())).collect();
    assert_eq!(pauses.len(), 4);
    for pair in pauses.chunks(2) {
        assert_eq!(pair[0].1, &Action::Pause { site: LEADER.into() });
        assert_eq!(pair[1].1, &Action::Resume { site: LEADER.into() });
        // Paused far longer than the TSO lease (400 ms).
        assert_eq!(pair[1].0 - pair[0].0, secs(2));
    }

    let partition = Scenario::builtin("tso-minority-partition").unwrap();
    assert_eq!(partition.events()[0].action(), &Action::Partition { site: "xa".into() });

    let cycles = Scenario::builtin("tso-restart-cycles").unwrap();
    for site in ["bj-a", "bj-b", "xa"] {
        let kills = cycles.events().iter().filter(|e| *e.action() == Action::Kill { site: site.into() }).count();
        assert_eq!(kills, 20, "{site}");
    }
    // Never two sites down at once: each restart comes before the next kill.
    let down: Vec<bool> = cycles.events().iter().map(|e| matches!(e.action(), Action::Kill { .. })).collect();
    assert!(down.windows(2).all(|w| w[0] != w[1]), "kills and restarts alternate");

    // The returning follower is paused for many election timeouts, and
    // the other sites' gaps after it resumes are bounded.
    for (name, follower, max_ms) in
        [("tso-returning-follower", "xa", 150), ("tso-global-returning-follower", "virginia", 250)]
    {
        let returning = Scenario::builtin(name).unwrap();
        let resume = returning.events().iter().find(|e| matches!(e.action(), Action::Resume { .. })).unwrap();
        assert_eq!(resume.action(), &Action::Resume { site: follower.into() });
        let pause = returning.events().iter().find(|e| matches!(e.action(), Action::Pause { .. })).unwrap();
        assert_eq!(resume.at() - pause.at(), secs(10), "{name}");
        let limit = resume.gap_limit().unwrap();
        assert_eq!((limit.max, limit.sites), (Duration::from_millis(max_ms), GapSites::Others), "{name}");
    }

    // The global ones: frankfurt leads without priorities, virginia with
    // its priority, and leadership returns to them.
    let expected = |s: &Scenario| -> Vec<(Duration, String)> {
        s.events()
            .iter()
            .filter_map(|e| match e.action() {
                Action::ExpectLeader { site, .. } => Some((e.at(), site.clone())),
                _ => None,
            })
            .collect()
    };
    let loss = Scenario::builtin("tso-global-leader-loss").unwrap();
    assert_eq!(loss.topology().name(), "global");
    assert_eq!(expected(&loss), [(secs(5), "frankfurt".to_owned()), (secs(35), "frankfurt".to_owned())]);
    let priority = Scenario::builtin("tso-global-priority").unwrap();
    assert_eq!(priority.topology().site("virginia").unwrap().leader_priority(), Some(5));
    assert_eq!(expected(&priority), [(secs(5), "virginia".to_owned()), (secs(30), "virginia".to_owned())]);
    let pause = Scenario::builtin("tso-global-leader-pause").unwrap();
    let paused: Vec<Duration> = pause
        .events()
        .windows(2)
        .filter(|w| matches!(w[0].action(), Action::Pause { .. }))
        .map(|w| w[1].at() - w[0].at())
        .collect();
    assert_eq!(paused, [secs(3), secs(3)], "far longer than the lease at these round trips (about 0.8 s)");

    let liar = Scenario::builtin("ntp-falseticker").unwrap();
    assert!(matches!(
        liar.events()[0].action(),
        Action::NtpOffset { claimed_error: Some(claim), offset, .. }
            if *claim == Duration::from_micros(50) && *offset == Offset::from_nanos(20_000_000)
    ));
}

#[test]
fn events_are_sorted_with_ties_in_file_order() {
    let s = parse(&on_dr(&format!(
        "{}{}{}{}",
        event(30, "restart", "site = \"xa\""),
        event(10, "kill", "site = \"xa\""),
        event(30, "kill", "site = \"bj-a\""),
        event(0, "partition", "site = \"bj-b\"")
    )));
    let order: Vec<String> = s.events().iter().map(ToString::to_string).collect();
    assert_eq!(
        order,
        ["t+0.000 s: partition bj-b", "t+10.000 s: kill xa", "t+30.000 s: restart xa", "t+30.000 s: kill bj-a"]
    );
    // Sorting happens before the order is checked: the restart at 30 s follows the kill at 10 s.
    let e = error(&on_dr(&format!("{}{}", event(30, "kill", "site = \"xa\""), event(10, "restart", "site = \"xa\""))));
    assert!(e.contains(r#"event #2 (at-s = 10), restart: "xa" is not killed"#), "{e}");
}

#[test]
fn every_action_parses() {
    let s = parse(&on_dr(
        &[
            event(1, "kill", "site = \"xa\""),
            event(2, "restart", "site = \"xa\""),
            event(3, "gps-offset", "site = \"bj-a\"\noffset-ms = 5"),
            event(4, "gps-drift", "site = \"bj-a\"\ndrift-ppm = -2.5"),
            event(5, "gps-outage", "site = \"bj-a\""),
            event(6, "gps-restore", "site = \"bj-a\""),
            event(7, "ntp-offset", "site = \"bj-b\"\noffset-ms = -1.5"),
            event(8, "ntp-outage", "site = \"bj-b\""),
            event(9, "ntp-restore", "site = \"bj-b\""),
            event(10, "partition", "site = \"xa\""),
            event(11, "heal", "site = \"xa\""),
            event(12, "link", "between = [\"xa\", \"bj-a\"]\nforward-ms = 1\nreverse-ms = 2\nloss = 0.5"),
            event(13, "clock-step", "site = \"bj-b\"\nby-ms = -7"),
            event(14, "pause", "site = \"bj-a\""),
            event(15, "resume", "site = \"bj-a\""),
        ]
        .concat(),
    ));
    let actions: Vec<&Action> = s.events().iter().map(Event::action).collect();
    let site = |name: &str| name.to_owned();
    assert_eq!(actions[2], &Action::GpsOffset { site: site("bj-a"), offset: Offset::from_nanos(5_000_000) });
    assert_eq!(actions[3], &Action::GpsDrift { site: site("bj-a"), drift: Ppb::new(-2_500) });
    assert_eq!(
        actions[6],
        &Action::NtpOffset { site: site("bj-b"), offset: Offset::from_nanos(-1_500_000), claimed_error: None }
    );
    assert_eq!(actions[12], &Action::ClockStep { site: site("bj-b"), by: Offset::from_nanos(-7_000_000) });
    assert_eq!(actions[13], &Action::Pause { site: site("bj-a") });
    assert_eq!(actions[14].to_string(), "resume bj-a");
    let names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
    assert_eq!(names.len(), 15);
    assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), 15);
    let Action::Link(link) = actions[11] else { panic!("{:?}", actions[11]) };
    assert_eq!(link.between(), ("xa", "bj-a"));
    let direction = |ms| DirectionShape { delay: Duration::from_millis(ms), jitter: Duration::ZERO, loss: 0.5 };
    assert_eq!(link.shape_from("bj-a"), Some(LinkShape { forward: direction(2), reverse: direction(1) }));
    assert_eq!(actions[11].site(), None);
    assert_eq!(actions[11].to_string(), "link xa → bj-a 1 ms, bj-a → xa 2 ms, jitter 0 ms, loss 0.5");
    assert_eq!(actions[6].to_string(), "ntp-offset bj-b -1.5 ms");
}

#[test]
fn expect_leader_parses_with_or_without_a_window() {
    let s = parse(&on_dr(&format!(
        "{}{}",
        event(5, "expect-leader", "site = \"bj-a\"\nwithin-s = 2.5"),
        event(6, "expect-leader", "site = \"xa\"")
    )));
    assert_eq!(
        s.events()[0].action(),
        &Action::ExpectLeader { site: "bj-a".to_owned(), within: Duration::from_millis(2_500) }
    );
    assert_eq!(s.events()[0].to_string(), "t+5.000 s: expect-leader bj-a within 2.5 s");
    assert_eq!(s.events()[1].action(), &Action::ExpectLeader { site: "xa".to_owned(), within: Duration::ZERO });
    assert_eq!(s.events()[1].action().to_string(), "expect-leader xa");
    assert!(s.events().iter().all(|e| e.action().is_check() && e.gap_limit().is_none()));
    assert!(!Action::Kill { site: "xa".to_owned() }.is_check());
    // After its restart (same time, file order), not while the site is down.
    let kill = event(1, "kill", "site = \"xa\"");
    let expect = event(2, "expect-leader", "site = \"xa\"\nwithin-s = 5");
    let e = error(&on_dr(&format!("{kill}{expect}")));
    assert!(e.contains(r#"event #2 (at-s = 2), expect-leader: "xa" is killed (restart it"#), "{e}");
    let restarted = format!("{kill}{}{expect}", event(2, "restart", "site = \"xa\""));
    assert_eq!(parse(&on_dr(&restarted)).events().len(), 3);
    let e = error(&on_dr(&format!("{}{expect}", event(1, "pause", "site = \"xa\""))));
    assert!(e.contains(r#""xa" is paused"#), "{e}");
    let e = error(&on_dr(&format!("{}{expect}", event(1, "partition", "site = \"xa\""))));
    assert!(e.contains(r#""xa" is partitioned"#), "{e}");
    // A kill of "leader" is no kill of a named site.
    assert!(Scenario::parse(&on_dr(&format!("{}{expect}", event(1, "kill", "site = \"leader\""))), "s").is_ok());
    // Its window ends within the timeline; it names a real site, not "leader".
    let e = error(&on_dr(&event(50, "expect-leader", "site = \"xa\"\nwithin-s = 11")));
    assert!(e.contains("within-s = 11: the window ends at 61 s, after duration-s = 60"), "{e}");
    assert!(error(&on_dr(&event(5, "expect-leader", "site = \"xa\"\nwithin-s = -1"))).contains("within-s = -1"));
    let e = error(&on_dr(&event(5, "expect-leader", "site = \"leader\"")));
    assert!(e.contains(r#"site = "leader" is only for kill"#), "{e}");
    let e = error(&on_dr(&event(5, "expect-leader", "site = \"mars\"")));
    assert!(e.contains(r#"no site called "mars""#), "{e}");
    let e = error(&on_dr(&event(5, "expect-leader", "site = \"xa\"\nterm = 3")));
    assert!(e.contains("term") && e.contains("line 5"), "{e}");
}

#[test]
fn max_gap_ms_and_gap_sites() {
    let s = parse(&on_dr(&format!(
        "{}{}{}",
        event(10, "pause", "site = \"xa\""),
        event(20, "resume", "site = \"xa\"\nmax-gap-ms = 50\ngap-sites = \"others\""),
        event(30, "link", "between = [\"xa\", \"bj-a\"]\none-way-ms = 1\nmax-gap-ms = 2500.5")
    )));
    assert_eq!(s.events()[0].gap_limit(), None);
    let resume = s.events()[1].gap_limit().unwrap();
    assert_eq!(resume, &GapLimit { max: Duration::from_millis(50), sites: GapSites::Others });
    assert_eq!(resume.to_string(), "longest TSO gap at every other site ≤ 50 ms");
    assert!(resume.covers("bj-a", Some("xa")) && !resume.covers("xa", Some("xa")) && resume.covers("xa", None));
    // "all" is the default.
    let link = s.events()[2].gap_limit().unwrap();
    assert_eq!(link, &GapLimit { max: Duration::from_micros(2_500_500), sites: GapSites::All });
    assert!(link.covers("xa", Some("xa")));
    assert_eq!(link.to_string(), "longest TSO gap at every site ≤ 2500.5 ms");
    assert_eq!(serde_json::to_value(resume).unwrap(), serde_json::json!({"max-gap-ms": 50.0, "gap-sites": "others"}));
    // The keys still go with the action's own: the action's unknown keys are errors.
    let e = error(&on_dr(&event(1, "kill", "site = \"xa\"\nmax-gap-ms = 9\nmax-gap = 1")));
    assert!(e.contains("max-gap") && e.contains("line 5"), "{e}");
    let bad = |keys: &str| error(&on_dr(&event(1, "kill", &format!("site = \"xa\"\n{keys}"))));
    assert!(bad("gap-sites = \"others\"").contains("event #1 (at-s = 1): gap-sites needs max-gap-ms"));
    assert!(bad("max-gap-ms = 0").contains("max-gap-ms = 0 must be within 1 … 3600000"));
    assert!(bad("max-gap-ms = nan").contains("max-gap-ms = NaN"));
    let e = bad("max-gap-ms = 5\ngap-sites = \"mine\"");
    assert!(e.contains("unknown variant `mine`, expected `all` or `others`") && e.contains("line 10"), "{e}");
    let e = error(&on_dr(&event(
        1,
        "link",
        "between = [\"xa\", \"bj-a\"]\none-way-ms = 1\nmax-gap-ms = 5\ngap-sites = \"others\"",
    )));
    assert!(e.contains(r#"gap-sites = "others": link names no one site (use "all")"#), "{e}");
    let e = error(&on_dr(&event(1, "expect-leader", "site = \"xa\"\nmax-gap-ms = 5")));
    assert!(e.contains("max-gap-ms is for an event that changes the cluster, not for expect-leader"), "{e}");
}

#[test]
fn clock_steps_are_per_site_in_time_order() {
    let s = parse(&on_dr(&format!(
        "{}{}{}",
        event(40, "clock-step", "site = \"xa\"\nby-ms = -0.5"),
        event(20, "clock-step", "site = \"xa\"\nby-ms = 50"),
        event(30, "clock-step", "site = \"bj-a\"\nby-ms = 1")
    )));
    assert_eq!(
        s.clock_changes("xa"),
        [
            (secs(20), Offset::from_nanos(50_000_000), Duration::ZERO),
            (secs(40), Offset::from_nanos(-500_000), Duration::ZERO)
        ]
    );
    assert_eq!(s.clock_changes("bj-a"), [(secs(30), Offset::from_nanos(1_000_000), Duration::ZERO)]);
    assert!(s.clock_changes("bj-b").is_empty());
}

#[test]
fn slews_are_clock_changes_spread_over_their_duration() {
    let s = parse(&on_dr(&format!(
        "{}{}{}",
        event(10, "clock-slew", "site = \"xa\"\nrate-ppm = 83333\nduration-s = 12"),
        event(15, "clock-step", "site = \"xa\"\nby-ms = 1"),
        event(30, "clock-slew", "site = \"xa\"\nrate-ppm = -50000\nduration-s = 30")
    )));
    assert_eq!(
        s.clock_changes("xa"),
        [
            (secs(10), Offset::from_nanos(999_996_000), secs(12)),
            (secs(15), Offset::from_nanos(1_000_000), Duration::ZERO),
            (secs(30), Offset::from_nanos(-1_500_000_000), secs(30)),
        ]
    );
    let slew = &s.events()[0];
    assert_eq!(
        *slew.action(),
        Action::ClockSlew { site: "xa".into(), rate: Ppb::from_ppm(83_333), duration: secs(12) }
    );
    assert_eq!(slew.to_string(), "t+10.000 s: clock-slew xa +83333 ppm for 12 s");
    assert_eq!(s.leap(), None);
    let slew = |at: u32, keys: &str| event(at, "clock-slew", &format!("site = \"xa\"\n{keys}"));
    for (events, why) in [
        (slew(1, "rate-ppm = 83335\nduration-s = 1"), "rate-ppm = 83335 must be within -83334 … 83334"),
        (slew(1, "rate-ppm = 0\nduration-s = 1"), "rate-ppm = 0 is no slew"),
        (slew(1, "rate-ppm = 10\nduration-s = 0"), "duration-s = 0 must be within"),
        (slew(50, "rate-ppm = 10\nduration-s = 11"), "the slew ends at 61 s, after duration-s = 60"),
        (
            slew(1, "rate-ppm = 10\nduration-s = 10") + &slew(5, "rate-ppm = -10\nduration-s = 1"),
            "still slewing until 11 s",
        ),
        (slew(1, "rate-ppm = 10"), "missing field `duration-s`"),
        (event(1, "clock-slew", "site = \"nowhere\"\nrate-ppm = 10\nduration-s = 1"), "no site called \"nowhere\""),
    ] {
        let e = error(&on_dr(&events));
        assert!(e.contains(why), "{events}: {e}");
    }
    // Back to back is fine, and on another site at the same time.
    parse(&on_dr(&(slew(1, "rate-ppm = 10\nduration-s = 10") + &slew(11, "rate-ppm = -10\nduration-s = 1"))));
    parse(&on_dr(
        &(slew(1, "rate-ppm = 10\nduration-s = 10")
            + &event(2, "clock-slew", "site = \"bj-a\"\nrate-ppm = 10\nduration-s = 1")),
    ));
}

#[test]
fn a_leap_is_one_whole_second_event_of_the_whole_cluster() {
    let s = parse(&on_dr(&event(40, "leap", "kind = \"delete\"")));
    assert_eq!(s.leap(), Some((secs(40), LeapKind::Delete, true)));
    assert_eq!(s.events()[0].action().site(), None);
    assert_eq!(s.events()[0].to_string(), "t+40.000 s: leap delete (announced)");
    let s = parse(&on_dr(&event(40, "leap", "kind = \"insert\"\nannounced = false")));
    assert_eq!(s.leap(), Some((secs(40), LeapKind::Insert, false)));
    assert_eq!(s.events()[0].to_string(), "t+40.000 s: leap insert (unannounced)");
    let leap = |at: u32| event(at, "leap", "kind = \"insert\"");
    for (text, why) in [
        (on_dr(&(leap(10) + &leap(20))), "at most one leap second"),
        (on_dr(&leap(60)), "a leap must fall before duration-s = 60"),
        (
            on_dr("\n[[event]]\nat-s = 10.5\naction = \"leap\"\nkind = \"insert\"\n"),
            "whole seconds of at-s and warmup-s",
        ),
        (format!("name = \"t\"\nduration-s = 60\nwarmup-s = 9.5\n{}", leap(10)), "(given 10 and 9.5)"),
        (on_dr(&event(10, "leap", "kind = \"sideways\"")), "unknown variant `sideways`"),
        (on_dr(&event(10, "leap", "kind = \"insert\"\nsite = \"xa\"")), "unknown field `site`"),
        (on_dr(&event(10, "leap", "announced = true")), "missing field `kind`"),
        (
            on_dr(&event(10, "leap", "kind = \"insert\"\nmax-gap-ms = 5\ngap-sites = \"others\"")),
            "leap names no one site",
        ),
    ] {
        let e = error(&text);
        assert!(e.contains(why), "{text}: {e}");
    }
}

#[test]
fn defaults_and_fractional_times() {
    let s = parse("name = \"quiet\"\nduration-s = 1.5\n");
    assert_eq!(s.topology().name(), DEFAULT_TOPOLOGY);
    assert_eq!((s.duration(), s.warmup()), (Duration::from_millis(1_500), secs(10)));
    assert!(s.events().is_empty() && !s.is_short());
    let s = parse(&format!(
        "name = \"t\"\ndescription = \"Short one\"\nduration-s = 5\nwarmup-s = 0{}",
        event(0, "kill", "site = \"xa\"")
    ));
    assert!(s.is_short());
    assert_eq!(s.warmup(), Duration::ZERO);
    let s = parse(&on_dr("[[event]]\nat-s = 2.25\naction = \"kill\"\nsite = \"xa\"\n"));
    assert_eq!(s.events()[0].at(), Duration::from_millis(2_250));
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let e = error(&on_dr("\n[[event]]\nat-s = 1\naction = \"kill\"\nsite = \"xa\"\nsignal = 9\n"));
    assert!(e.starts_with("s.toml: ") && e.contains("signal"), "{e}");
    assert!(e.contains("line 5"), "{e}");
    // A key of another action.
    let e = error(&on_dr("\n[[event]]\nat-s = 1\naction = \"kill\"\nsite = \"xa\"\noffset-ms = 9\n"));
    assert!(e.contains("offset-ms") && e.contains("line 5"), "{e}");
    let e = error(&on_dr("\n[[event]]\nat-s = 1\naction = \"explode\"\nsite = \"xa\"\n"));
    assert!(e.contains("explode") && e.contains("line 5"), "{e}");
    let e = error(&on_dr("\n[[event]]\nat-s = 1\naction = \"gps-offset\"\nsite = \"xa\"\n"));
    assert!(e.contains("offset-ms") && e.contains("line 5"), "{e}");
    let e = error(&on_dr("\n[[event]]\nat = 1\naction = \"kill\"\nsite = \"xa\"\n"));
    assert!(e.contains("at-s") && e.contains("line 5"), "{e}");
    let e = error("name = \"t\"\nduration-s = 5\nlength-s = 3\n");
    assert!(e.contains("length-s") && e.contains("line 3"), "{e}");
}

#[test]
fn events_must_name_what_the_topology_has() {
    let e = error(&on_dr(&event(5, "kill", "site = \"mars\"")));
    assert!(e.contains(r#"event #1 (at-s = 5), kill: site: the topology has no site called "mars""#), "{e}");
    let e = error(&on_dr(&event(5, "link", "between = [\"xa\", \"mars\"]\none-way-ms = 1")));
    assert!(e.contains(r#"between: the topology has no link between "xa" and "mars""#), "{e}");
    let e = error(&on_dr(&event(5, "link", "between = [\"xa\", \"xa\"]\none-way-ms = 1")));
    assert!(e.contains("no link between \"xa\" and \"xa\""), "{e}");
    let e = error(&on_dr(&event(5, "link", "between = [\"xa\", \"bj-a\"]\nforward-ms = 1")));
    assert!(e.contains("event #1 (at-s = 5): give either one-way-ms"), "{e}");
}

#[test]
fn events_must_make_sense_in_order() {
    let kill = event(1, "kill", "site = \"xa\"");
    assert!(error(&on_dr(&event(1, "restart", "site = \"xa\""))).contains("restart only follows a kill"));
    assert!(error(&on_dr(&format!("{kill}{}", event(2, "kill", "site = \"xa\"")))).contains("already killed"));
    assert!(error(&on_dr(&event(1, "heal", "site = \"xa\""))).contains("heal only follows a partition"));
    let partition = event(1, "partition", "site = \"xa\"");
    assert!(error(&on_dr(&format!("{partition}{partition}"))).contains("already partitioned"));
    assert!(error(&on_dr(&event(1, "gps-restore", "site = \"xa\""))).contains("no GPS fault to restore"));
    assert!(error(&on_dr(&event(1, "ntp-restore", "site = \"xa\""))).contains("no NTP fault to restore"));
    let restored = format!("{}{}", event(1, "gps-outage", "site = \"xa\""), event(2, "gps-restore", "site = \"xa\""));
    assert!(error(&on_dr(&format!("{restored}{}", event(3, "gps-restore", "site = \"xa\"")))).contains("event #3"));
}

#[test]
fn pause_and_resume_must_make_sense_in_order() {
    let pause = |at| event(at, "pause", "site = \"xa\"");
    let resume = |at| event(at, "resume", "site = \"xa\"");
    assert_eq!(parse(&on_dr(&format!("{}{}{}{}", pause(1), resume(2), pause(3), resume(4)))).events().len(), 4);
    let e = error(&on_dr(&resume(1)));
    assert!(e.contains(r#"event #1 (at-s = 1), resume: "xa" is not paused (resume only follows a pause)"#), "{e}");
    let e = error(&on_dr(&format!("{}{}", pause(1), pause(2))));
    assert!(e.contains(r#"event #2 (at-s = 2), pause: "xa" is already paused"#), "{e}");
    // A killed daemon cannot be paused; a kill ends a pause.
    let kill = |at| event(at, "kill", "site = \"xa\"");
    let e = error(&on_dr(&format!("{}{}", kill(1), pause(2))));
    assert!(e.contains("\"xa\" is killed (restart it before pausing it)"), "{e}");
    let e = error(&on_dr(&format!("{}{}{}", pause(1), kill(2), resume(3))));
    assert!(e.contains("event #3") && e.contains("is not paused"), "{e}");
    let restarted = format!("{}{}{}{}", pause(1), kill(2), event(3, "restart", "site = \"xa\""), pause(4));
    assert_eq!(parse(&on_dr(&restarted)).events().len(), 4);
    // Other sites keep their own state.
    let e = error(&on_dr(&format!("{}{}", pause(1), event(2, "resume", "site = \"bj-a\""))));
    assert!(e.contains(r#""bj-a" is not paused"#), "{e}");
    let e = error(&on_dr(&event(1, "pause", "site = \"mars\"")));
    assert!(e.contains(r#"pause: site: the topology has no site called "mars""#), "{e}");
}

#[test]
fn the_leader_is_a_site_of_its_own_for_the_order_checks() {
    let leader = |at, action: &str| event(at, action, "site = \"leader\"");
    let s = parse(&on_dr(
        &[
            leader(1, "kill"),
            leader(2, "restart"),
            leader(3, "pause"),
            leader(4, "resume"),
            leader(5, "partition"),
            leader(6, "heal"),
        ]
        .concat(),
    ));
    assert_eq!(s.events()[0].action(), &Action::Kill { site: LEADER.to_owned() });
    assert_eq!(s.events()[2].to_string(), "t+3.000 s: pause leader");
    // Restart of "leader" follows a kill of "leader", not of a named site.
    let e = error(&on_dr(&format!("{}{}", event(1, "kill", "site = \"xa\""), leader(2, "restart"))));
    assert!(e.contains(r#"event #2 (at-s = 2), restart: "leader" is not killed"#), "{e}");
    let e = error(&on_dr(&format!("{}{}", leader(1, "kill"), event(2, "restart", "site = \"xa\""))));
    assert!(e.contains(r#""xa" is not killed"#), "{e}");
    assert!(error(&on_dr(&leader(1, "resume"))).contains(r#""leader" is not paused"#));
    assert!(error(&on_dr(&format!("{}{}", leader(1, "kill"), leader(2, "kill")))).contains("already killed"));
    // Only the process and partition actions may name it.
    for (action, keys) in [("gps-outage", ""), ("ntp-offset", "offset-ms = 1"), ("clock-step", "by-ms = 1")] {
        let e = error(&on_dr(&event(1, action, &format!("site = \"leader\"\n{keys}"))));
        assert!(e.contains(r#"site = "leader" is only for kill, restart, pause, resume, partition and heal"#), "{e}");
    }
}

#[test]
fn actions_move_to_another_site() {
    let pause = Action::Pause { site: LEADER.to_owned() };
    assert!(pause.may_target_leader());
    assert_eq!(pause.on_site("bj-b"), Action::Pause { site: "bj-b".to_owned() });
    let step = Action::ClockStep { site: "xa".to_owned(), by: Offset::from_nanos(1) };
    assert!(!step.may_target_leader());
    assert_eq!(step.on_site("bj-a").site(), Some("bj-a"));
}

#[test]
fn sources_a_site_lacks_cannot_fail() {
    let dir = temp_dir("no-sources");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dr.toml")).unwrap();
    let text = text.replace("name = \"xa\"", "name = \"xa\"\ngps = false\nntp = false");
    std::fs::write(dir.join("bare.toml"), text).unwrap();
    let scenario = |events: &str| format!("name = \"t\"\ntopology = \"bare.toml\"\nduration-s = 10\n{events}");
    let load = |events: &str| {
        std::fs::write(dir.join("s.toml"), scenario(events)).unwrap();
        Scenario::load(dir.join("s.toml").to_str().unwrap())
    };
    assert!(load(&event(1, "gps-offset", "site = \"bj-a\"\noffset-ms = 1")).is_ok());
    let e = load(&event(1, "gps-outage", "site = \"xa\"")).unwrap_err().to_string();
    assert!(e.contains("\"xa\" has no GPS"), "{e}");
    let e = load(&event(1, "ntp-outage", "site = \"xa\"")).unwrap_err().to_string();
    assert!(e.contains("\"xa\" has no NTP server"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn values_out_of_range() {
    assert!(error(&on_dr(&event(61, "kill", "site = \"xa\""))).contains("at-s = 61 must be within 0 … 60"));
    assert!(error(&on_dr("[[event]]\nat-s = -1\naction = \"kill\"\nsite = \"xa\"\n")).contains("at-s = -1"));
    assert!(error("name = \"t\"\nduration-s = 0\n").contains("duration-s = 0 must be within 1 … 21600"));
    assert!(error("name = \"t\"\nduration-s = 5\nwarmup-s = 601\n").contains("warmup-s = 601 must be"));
    assert!(error("name = \"T\"\nduration-s = 5\n").contains("lowercase DNS label"));
    let gps = |keys: &str| error(&on_dr(&event(1, "gps-drift", &format!("site = \"xa\"\n{keys}"))));
    assert!(gps("drift-ppm = 1001").contains("drift-ppm = 1001 must be within -1000 … 1000"));
    let ntp = |keys: &str| error(&on_dr(&event(1, "ntp-offset", &format!("site = \"xa\"\n{keys}"))));
    assert!(ntp("offset-ms = 1\nclaimed-error-us = -1").contains("claimed-error-us = -1 must be"));
    assert!(ntp("offset-ms = 4000000").contains("offset-ms = 4000000 must be within -3600000 … 3600000"));
    let step = error(&on_dr(&event(1, "clock-step", "site = \"xa\"\nby-ms = nan")));
    assert!(step.contains("by-ms = NaN"), "{step}");
    let link = error(&on_dr(&event(1, "link", "between = [\"xa\", \"bj-a\"]\none-way-ms = 1\nloss = 2")));
    assert!(link.contains("loss = 2 must be within 0 … 1"), "{link}");
}

#[test]
fn topology_paths_are_relative_to_the_scenario_file() {
    let dir = temp_dir("relative");
    std::fs::create_dir_all(dir.join("nets")).unwrap();
    let dr = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/dr.toml")).unwrap();
    std::fs::write(dir.join("nets/mine.toml"), dr.replace("name = \"dr\"", "name = \"mine\"")).unwrap();
    std::fs::write(dir.join("s.toml"), "name = \"t\"\ntopology = \"nets/mine.toml\"\nduration-s = 5\n").unwrap();
    let s = Scenario::load(dir.join("s.toml").to_str().unwrap()).unwrap();
    assert_eq!(s.topology().name(), "mine");
    // Parsed from text, a relative path is relative to the current directory.
    let e = Scenario::parse("name = \"t\"\ntopology = \"nets/mine.toml\"\nduration-s = 5\n", "x").unwrap_err();
    let SpecError::Topology { source, .. } = &e else { panic!("{e}") };
    assert!(matches!(**source, SpecError::Read { kind: SpecKind::Topology, .. }), "{e}");
    std::fs::write(dir.join("broken.toml"), "name = \"t\"\ntopology = \"nets/none.toml\"\nduration-s = 5\n").unwrap();
    let e = Scenario::load(dir.join("broken.toml").to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("broken.toml: topology: cannot read topology") && e.contains("nets/none.toml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_errors_name_the_file_and_the_built_ins() {
    let e = Scenario::load("/nonexistent/s.toml").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/s.toml") && e.contains("built-in scenarios: lose-each-site, "), "{e}");
    assert!(Scenario::builtin("mars").unwrap_err().to_string().contains("\"mars\""));
}

/// A fresh directory for one test, removed by the test when it passes.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsod-testbed-scenario-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
