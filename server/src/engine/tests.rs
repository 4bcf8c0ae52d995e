//! The engine on a simulated host: a perfect reader clock (true time =
//! T0 + raw) unless a test says otherwise, sources whose samples are built
//! from the truth, and checks that every bounded publication contains it.

use super::*;
#[allow(unused_imports, reason = "used by the smear regression test")]
use crate::timescale::SMEAR_RATE;
use tsod_proto::Ppb;

const T0: u64 = 1_795_462_647_000_000_000;
const SEC: u64 = 1_000_000_000;

fn config(min_agreeing: usize) -> EngineConfig {
    EngineConfig {
        max_faulty: None,
        min_agreeing,
        horizon: Duration::from_secs(1),
        max_sample_age: Duration::from_secs(64),
        holdover: Duration::from_secs(3600),
        frequency: FrequencyConfig::default(),
    }
}

/// A reading of a quiet host at raw time `raw` ns.
fn reading(raw: u64) -> ClockReading {
    ClockReading {
        raw: MonoInstant::from_nanos(raw),
        monotonic: MonoInstant::from_nanos(raw),
        boottime: MonoInstant::from_nanos(raw + 5 * SEC),
        realtime: Timestamp::from_nanos(T0 + raw),
        hypervisor_epoch: 0,
    }
}

fn truth(raw: u64) -> Timestamp {
    Timestamp::from_nanos(T0 + raw)
}

/// A sample at `raw` of half-width `hw`, its centre `off` ns from the truth.
fn sample(raw: u64, hw: u64, off: i64) -> Sample {
    let centre = Timestamp::from_nanos(T0.checked_add_signed(off).unwrap() + raw);
    Sample { at: MonoInstant::from_nanos(raw), interval: TimeInterval::around(centre, Duration::from_nanos(hw)) }
}

fn engine(n: usize, min_agreeing: usize) -> Engine {
    let sources = (0..n).map(|i| (format!("s{i}"), SourceKind::Ntp)).collect();
    Engine::new(config(min_agreeing), sources, 42, None, reading(0))
}

/// Asserts the tick's anchor contains the truth over its whole horizon.
fn assert_true(tick: &Tick, raw: u64) {
    let a = &tick.state.anchor;
    assert!(a.status.is_bounded(), "{:?}", a.status);
    for later in [raw, raw + SEC / 2, a.valid_until.as_nanos()] {
        let i = a.interval_at(MonoInstant::from_nanos(later)).unwrap();
        assert!(i.contains(truth(later)), "{i} misses {} at +{}", truth(later), later - raw);
    }
}

#[test]
fn agreeing_sources_give_a_synchronized_true_bound() {
    let mut e = engine(3, 3);
    let raw = SEC;
    e.on_sample(SourceId(0), sample(raw, 20_000, 5_000));
    e.on_sample(SourceId(1), sample(raw, 30_000, -10_000));
    e.on_sample(SourceId(2), sample(raw, 50_000, 0));
    let t = e.tick(reading(raw));
    assert_eq!(t.state.anchor.status, ClockStatus::Synchronized);
    assert_true(&t, raw);
    // With f = 1 every point covered by two sources: [−40 µs, +25 µs]. (The
    // overlap of all three, 35 µs, would not survive one liar; see selection.rs.)
    assert_eq!(t.state.anchor.interval.width(), Duration::from_micros(65));
    assert_eq!(t.state.writer_instance, 42);
}

#[test]
fn a_lying_source_is_a_falseticker_and_the_site_degraded() {
    let mut e = engine(3, 3);
    let raw = SEC;
    e.on_sample(SourceId(0), sample(raw, 20_000, 0));
    e.on_sample(SourceId(1), sample(raw, 20_000, 3_000));
    e.on_sample(SourceId(2), sample(raw, 1_000, 5_000_000)); // a spoofed, confident GPS
    let t = e.tick(reading(raw));
    assert_eq!(t.state.anchor.status, ClockStatus::Degraded);
    assert_true(&t, raw);
    let liar = e.sources().nth(2).unwrap();
    assert!(liar.falseticker && liar.usable);
    assert!(liar.offset.unwrap().as_nanos() > 4_900_000);
    assert!(!e.sources().next().unwrap().falseticker);
}

/// Two disjoint sources, one of them lying: the bound spans both (true
/// whichever lies), and the status says a liar is present but unidentified.
#[test]
fn two_disagreeing_sources_give_a_degraded_hull() {
    let mut e = engine(2, 2);
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    e.on_sample(SourceId(1), sample(SEC, 10_000, 1_000_000));
    let t = e.tick(reading(SEC));
    assert_eq!(t.state.anchor.status, ClockStatus::Degraded);
    assert_true(&t, SEC);
    assert!(t.state.anchor.interval.width() >= Duration::from_micros(1_020));
}

/// Issue 15, path 4: an NTP server and one peer (n = 2). The peer lies by
/// an interval that only partly overlaps the truthful one; with f = 0 their
/// intersection missed true time. Now neither narrows the other.
#[test]
fn a_partly_overlapping_liar_of_two_cannot_move_the_bound_off_truth() {
    let sources = vec![("ntp".to_owned(), SourceKind::Ntp), ("peer".to_owned(), SourceKind::Peer)];
    let mut e = Engine::new(config(2), sources, 1, None, reading(0));
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    e.on_sample(SourceId(1), sample(SEC, 10_000, 15_000)); // overlaps [+5 µs, +10 µs]: not the truth
    let t = e.tick(reading(SEC));
    assert_true(&t, SEC);
    // One of the two heard alone carries no bound of its own.
    let mut e = Engine::new(
        config(2),
        vec![("a".into(), SourceKind::Ntp), ("b".into(), SourceKind::Peer)],
        1,
        None,
        reading(0),
    );
    e.on_sample(SourceId(1), sample(SEC, 10_000, 15_000));
    assert!(!e.tick(reading(SEC)).state.anchor.status.is_bounded());
}

#[test]
fn without_sources_the_site_free_runs_then_gives_up() {
    let mut e = Engine::new(
        EngineConfig { holdover: Duration::from_secs(100), ..config(1) },
        vec![("s".into(), SourceKind::Ntp)],
        1,
        None,
        reading(0),
    );
    assert_eq!(e.tick(reading(SEC / 2)).state.anchor.status, ClockStatus::Unsynchronized, "never synchronized");
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    assert_eq!(e.tick(reading(SEC)).state.anchor.status, ClockStatus::Synchronized);
    // The sample ages out after 64 s; holdover carries the bound at 100 ppm.
    let t = e.tick(reading(70 * SEC));
    assert_eq!(t.state.anchor.status, ClockStatus::FreeRunning);
    assert_true(&t, 70 * SEC);
    let hw = t.state.anchor.interval.half_width();
    assert!(hw >= Duration::from_micros(10 + 6_900), "69 s at 100 ppm: {hw:?}");
    assert_eq!(e.tick(reading(102 * SEC)).state.anchor.status, ClockStatus::Unsynchronized, "holdover over");
}

#[test]
fn a_suspend_disrupts_until_sources_agree_again() {
    let mut e = engine(1, 1);
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    assert_eq!(e.tick(reading(SEC)).state.anchor.status, ClockStatus::Synchronized);
    // 30 s of suspend: boottime and realtime jump, raw and monotonic do not.
    let mut r = reading(2 * SEC);
    r.boottime = MonoInstant::from_nanos(r.boottime.as_nanos() + 30 * SEC);
    r.realtime = Timestamp::from_nanos(r.realtime.as_nanos() + 30 * SEC);
    let t = e.tick(r);
    assert_eq!(t.disruption, Some(Disruption::Suspend));
    assert_eq!(t.state.anchor.status, ClockStatus::Disrupted, "no holdover across a suspend");
    assert_eq!(t.state.disruption_count, 1);
    assert!(!e.sources().next().unwrap().usable, "pre-suspend samples are gone");
    // The next good sample (taken after resume) re-synchronizes.
    let mut s = sample(3 * SEC, 10_000, 0);
    s.interval = TimeInterval::around(Timestamp::from_nanos(T0 + 33 * SEC), Duration::from_micros(10));
    e.on_sample(SourceId(0), s);
    let mut r = reading(3 * SEC);
    r.boottime = MonoInstant::from_nanos(r.boottime.as_nanos() + 30 * SEC);
    r.realtime = Timestamp::from_nanos(r.realtime.as_nanos() + 30 * SEC);
    let t = e.tick(r);
    assert_eq!(t.disruption, None);
    assert_eq!(t.state.anchor.status, ClockStatus::Synchronized);
}

#[test]
fn realtime_steps_and_backward_raw_are_disruptions_but_slews_are_not() {
    let a = reading(SEC);
    let mut stepped = reading(2 * SEC);
    stepped.realtime = Timestamp::from_nanos(stepped.realtime.as_nanos() + 200_000_000);
    assert_eq!(detect_disruption(&a, &stepped), Some(Disruption::RealtimeStep));
    let mut slewed = reading(2 * SEC);
    slewed.realtime = Timestamp::from_nanos(slewed.realtime.as_nanos() + 80_000_000); // 8 % slew
    assert_eq!(detect_disruption(&a, &slewed), None);
    assert_eq!(detect_disruption(&a, &reading(SEC / 2)), Some(Disruption::ReaderClockBackwards));
    assert_eq!(detect_disruption(&a, &reading(2 * SEC)), None);
}

#[test]
fn a_restarted_daemon_adopts_the_previous_bound_unless_suspended() {
    let mut first = engine(1, 1);
    first.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    let previous = first.tick(reading(SEC)).state;
    // Restarted 200 ms later, no samples yet: free-running from the previous bound.
    let mut second = Engine::new(config(1), vec![("s0".into(), SourceKind::Ntp)], 43, Some(previous), reading(SEC));
    let t = second.tick(reading(SEC + 200_000_000));
    assert_eq!(t.state.anchor.status, ClockStatus::FreeRunning);
    assert_true(&t, SEC + 200_000_000);
    assert_eq!(t.state.writer_instance, 43);
    // After a suspend between the two daemons, the old bound is not trusted.
    let mut resumed = reading(SEC + 200_000_000);
    resumed.boottime = MonoInstant::from_nanos(resumed.boottime.as_nanos() + 60 * SEC);
    let mut third = Engine::new(config(1), vec![("s0".into(), SourceKind::Ntp)], 44, Some(previous), resumed);
    assert_eq!(third.tick(resumed).state.anchor.status, ClockStatus::Unsynchronized);
}

#[test]
fn a_drifting_reader_clock_is_measured_and_the_bound_stays_true() {
    // The reader clock runs 40 ppm fast: true time advances 1/(1 + 40e-6) per raw ns.
    let truth = |raw: u64| T0 + u64::try_from(u128::from(raw) * 1_000_000 / 1_000_040).unwrap();
    let mut e = engine(1, 1);
    let mut last_hw = Duration::MAX;
    for k in 1..=120u64 {
        let raw = k * SEC;
        let at = MonoInstant::from_nanos(raw);
        let t_now = Timestamp::from_nanos(truth(raw));
        e.on_sample(SourceId(0), Sample { at, interval: TimeInterval::around(t_now, Duration::from_micros(15)) });
        let tick = e.tick(ClockReading { realtime: t_now, ..reading(raw) });
        let a = tick.state.anchor;
        for later in [raw, raw + SEC / 2, raw + SEC] {
            let i = a.interval_at(MonoInstant::from_nanos(later)).unwrap();
            assert!(i.contains(Timestamp::from_nanos(truth(later))), "k={k}: {i} at +{}", later - raw);
        }
        // Half a second after the reference, what a client sees.
        last_hw = a.interval_at(MonoInstant::from_nanos(raw + SEC / 2)).unwrap().half_width();
    }
    let model = e.frequency.model().unwrap();
    assert!((-41_000..=-39_000).contains(&model.frequency().get()), "measured {model:?}");
    assert!(last_hw < Duration::from_micros(15 + 5), "measured frequency keeps the bound tight: {last_hw:?}");
    let _ = Ppb::ZERO;
}

// Regressions found in review: each of these published a wrong bound before
// the fix named in its comment.

fn resumed(raw: u64) -> ClockReading {
    let mut r = reading(raw);
    r.boottime = MonoInstant::from_nanos(r.boottime.as_nanos() + 30 * SEC);
    r.realtime = Timestamp::from_nanos(r.realtime.as_nanos() + 30 * SEC);
    r
}

/// A sample measured before a suspend but delivered after it is detected
/// is refused (`not_before`).
#[test]
fn a_pre_suspend_sample_delivered_late_is_refused() {
    let mut e = engine(1, 1);
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    let _ = e.tick(reading(SEC));
    assert_eq!(e.tick(resumed(2 * SEC)).disruption, Some(Disruption::Suspend));
    e.on_sample(SourceId(0), sample(SEC + SEC / 2, 10_000, 0)); // measured before the suspend
    let a = e.tick(resumed(2 * SEC + 100_000_000)).state.anchor;
    assert!(!a.status.is_bounded(), "{:?} {}", a.status, a.interval);
    assert_eq!(e.sources().next().unwrap().last_error.as_deref(), Some("measured before a clock disruption"));
}

/// Feeds `e` one ±15 µs sample a second for `seconds` s of `truth(raw)`,
/// checking that each tick's bound contains it.
fn feed_drifting(e: &mut Engine, seconds: u64, truth: impl Fn(u64) -> u64) {
    for k in 1..=seconds {
        let raw = k * SEC;
        let t = Timestamp::from_nanos(truth(raw));
        e.on_sample(
            SourceId(0),
            Sample { at: MonoInstant::from_nanos(raw), interval: TimeInterval::around(t, Duration::from_micros(15)) },
        );
        assert!(e.tick(ClockReading { realtime: t, ..reading(raw) }).state.anchor.interval.contains(t));
    }
}

/// One source; the first reading's realtime is `first_realtime` (ns).
fn single_source(max_sample_age: Duration, first_realtime: u64) -> Engine {
    let first = ClockReading { realtime: Timestamp::from_nanos(first_realtime), ..reading(0) };
    Engine::new(EngineConfig { max_sample_age, ..config(1) }, vec![("s".into(), SourceKind::Ntp)], 1, None, first)
}

/// A clock 3 ppm beyond its datasheet: the measurement is no longer cut at
/// the datasheet edge.
#[test]
fn a_clock_slightly_beyond_its_datasheet_is_modelled_where_measured() {
    let truth = |raw: u64| T0 + u64::try_from(u128::from(raw) * 1_000_000 / 1_000_103).unwrap();
    let mut e = single_source(Duration::from_secs(200), T0);
    feed_drifting(&mut e, 120, truth);
    let raw = 150 * SEC;
    let a = e.tick(ClockReading { realtime: Timestamp::from_nanos(truth(raw)), ..reading(raw) }).state.anchor;
    assert!(a.status.is_bounded() && a.interval.contains(Timestamp::from_nanos(truth(raw))), "{}", a.interval);
}

/// Holdover of a clock measured at −150 ppm against a 100 ppm datasheet.
#[test]
fn holdover_covers_a_clock_measured_beyond_its_datasheet() {
    let truth = |raw: u64| T0 + u64::try_from(u128::from(raw) * 1_000_000 / 1_000_150).unwrap();
    let mut e = single_source(Duration::from_secs(5), T0);
    feed_drifting(&mut e, 120, truth);
    for s in [126u64, 130, 140, 160, 600] {
        let raw = s * SEC;
        let a = e.tick(ClockReading { realtime: Timestamp::from_nanos(truth(raw)), ..reading(raw) }).state.anchor;
        assert_eq!(a.status, ClockStatus::FreeRunning);
        assert!(a.interval.contains(Timestamp::from_nanos(truth(raw))), "at {s} s: {}", a.interval);
    }
}

/// With f = 1 of three sources, a lone reporting source may be the liar:
/// it never carries a bound on its own.
#[test]
fn a_lone_source_cannot_outvote_the_configured_number_of_liars() {
    for max_faulty in [Some(1), None] {
        let mut e = Engine::new(
            EngineConfig { max_faulty, ..config(3) },
            (0..3).map(|i| (format!("s{i}"), SourceKind::Ntp)).collect(),
            1,
            None,
            reading(0),
        );
        e.on_sample(SourceId(2), sample(SEC, 1_000, 5_000_000)); // the liar, alone
        let a = e.tick(reading(SEC)).state.anchor;
        assert!(!a.status.is_bounded(), "{max_faulty:?}: {:?} {}", a.status, a.interval);
        // Two of three reporting and agreeing: a bound.
        e.on_sample(SourceId(0), sample(2 * SEC, 10_000, 0));
        e.on_sample(SourceId(1), sample(2 * SEC, 10_000, 1_000));
        let a = e.tick(reading(2 * SEC)).state.anchor;
        assert!(a.status.is_bounded() && a.interval.contains(truth(2 * SEC)), "{:?} {}", a.status, a.interval);
    }
}

/// A smear starting while the site free-runs on a measured model: the
/// timescale's rate changes by 1/86400, more than the 5 ppm wander.
#[test]
fn a_smear_starting_is_covered_by_the_drift_bound() {
    // 2026-12-31T11:56:40Z + raw: the smear (noon to noon) starts at raw = 200 s.
    const NOON_MINUS_200: u64 = 1_798_718_200_000_000_000;
    const START: u64 = 200 * SEC;
    let truth = |raw: u64| NOON_MINUS_200 + if raw <= START { raw } else { raw - (raw - START) / 86_400 };
    let mut e = single_source(Duration::from_secs(64), truth(0));
    feed_drifting(&mut e, 201, truth);
    let at = |raw: u64| ClockReading { realtime: Timestamp::from_nanos(truth(raw)), ..reading(raw) };
    let a = e.tick(at(230 * SEC)).state.anchor;
    assert!(a.status.is_bounded() && a.interval.contains(Timestamp::from_nanos(truth(230 * SEC))), "{}", a.interval);
}

/// A host whose VM is paused for `pause` ns at raw `at`: every guest clock
/// (RAW, MONOTONIC, BOOTTIME, REALTIME) freezes and resumes where it
/// stopped, so the readings look like a quiet host's while true time has
/// moved on by `pause`.
fn paused_truth(raw: u64, at: u64, pause: u64) -> Timestamp {
    truth(raw).checked_add(Duration::from_nanos(if raw > at { pause } else { 0 })).unwrap()
}

/// A ±20 µs sample of the paused host's truth at `raw`.
fn paused_sample(raw: u64, at: u64, pause: u64) -> Sample {
    Sample {
        at: MonoInstant::from_nanos(raw),
        interval: TimeInterval::around(paused_truth(raw, at, pause), Duration::from_micros(20)),
    }
}

/// Issue 15, path 2: a 30 s VM pause, seen by nothing but the sources.
/// Three sources (f = 1) sampling once a second at staggered instants; the
/// engine ticks every 100 ms. Before any fresh sample nothing can tell
/// (SPEC.md §2.6); once more than f sources' fresh samples miss the bound,
/// it is dropped as disrupted, and from then on every bounded publication
/// contains true time.
#[test]
fn a_vm_pause_freezing_all_four_clocks_is_caught_by_contradicting_sources() {
    const PAUSE_AT: u64 = 20 * SEC;
    const PAUSE: u64 = 30 * SEC;
    let mut e = engine(3, 3);
    let mut fresh_after_pause = [false; 3];
    let mut disruptions = 0;
    for step in 1..=400u64 {
        let raw = step * SEC / 10;
        for (i, fresh) in fresh_after_pause.iter_mut().enumerate() {
            // Source i samples at x.{3 i + 1} s.
            if step % 10 == 3 * i as u64 + 1 {
                e.on_sample(SourceId(i), paused_sample(raw, PAUSE_AT, PAUSE));
                *fresh |= raw > PAUSE_AT;
            }
        }
        let t = e.tick(reading(raw));
        disruptions += usize::from(t.disruption == Some(Disruption::SourcesContradict));
        let a = &t.state.anchor;
        let covered = fresh_after_pause.iter().filter(|f| **f).count();
        if (raw <= PAUSE_AT || covered >= 2) && a.status.is_bounded() {
            let i = a.interval_at(MonoInstant::from_nanos(raw)).unwrap();
            assert!(i.contains(paused_truth(raw, PAUSE_AT, PAUSE)), "at {raw}: {:?} {i}", a.status);
        }
    }
    assert_eq!(disruptions, 1, "one pause, one disruption");
    assert_eq!(e.tick(reading(41 * SEC)).state.anchor.status, ClockStatus::Synchronized, "re-established");
}

/// A lone liar disjoint from the bound is a falseticker, not a disruption.
#[test]
fn one_contradicting_source_of_three_is_no_disruption() {
    let mut e = engine(3, 3);
    for k in 1..=5u64 {
        for i in 0..3 {
            e.on_sample(SourceId(i), sample(k * SEC, 20_000, if i == 2 && k > 2 { 5_000_000 } else { 0 }));
        }
        let t = e.tick(reading(k * SEC));
        assert_eq!(t.disruption, None, "{k}");
        assert_true(&t, k * SEC);
    }
    assert!(e.sources().nth(2).unwrap().falseticker);
}

/// Issue 15, path 2: the hypervisor announces a migration through VMClock
/// (the reading's `hypervisor_epoch` moves on): disrupted at once, before
/// any source could tell, and no bound until the sources agree again.
#[test]
fn a_hypervisor_announced_disruption_drops_the_bound_at_once() {
    let mut e = engine(1, 1);
    e.on_sample(SourceId(0), sample(SEC, 10_000, 0));
    assert_eq!(e.tick(reading(SEC)).state.anchor.status, ClockStatus::Synchronized);
    let migrated = ClockReading { hypervisor_epoch: 1, ..reading(2 * SEC) };
    let t = e.tick(migrated);
    assert_eq!(t.disruption, Some(Disruption::Hypervisor));
    assert_eq!(t.state.anchor.status, ClockStatus::Disrupted);
    assert_eq!(t.state.disruption_count, 1);
    let later = ClockReading { hypervisor_epoch: 1, ..reading(3 * SEC) };
    e.on_sample(SourceId(0), sample(3 * SEC, 10_000, 0));
    assert_eq!(e.tick(later).state.anchor.status, ClockStatus::Synchronized);
}

/// Issue 15, path 1: the kernel inserting a leap second steps realtime back
/// 1 s at 00:00:00 (chronyd's `leapsecmode system`), on every site at once.
/// That used to be a disruption cluster-wide; it is recognised now. The
/// same step an hour later is still a disruption.
#[test]
fn the_kernels_leap_step_is_not_a_disruption() {
    const BOUNDARY: u64 = 1_798_761_600 * SEC; // 2027-01-01T00:00:00Z
    let at = |raw: u64, realtime: u64| ClockReading { realtime: Timestamp::from_nanos(realtime), ..reading(raw) };
    let before = at(SEC, BOUNDARY - SEC / 2);
    let inserted = at(2 * SEC, BOUNDARY + SEC / 2 - SEC);
    assert_eq!(detect_disruption(&before, &inserted), None);
    let deleted = at(2 * SEC, BOUNDARY + SEC / 2 + SEC);
    assert_eq!(detect_disruption(&before, &deleted), None);
    let later = at(SEC, BOUNDARY + 3_600 * SEC);
    let stepped = at(2 * SEC, BOUNDARY + 3_600 * SEC);
    assert_eq!(detect_disruption(&later, &stepped), Some(Disruption::RealtimeStep));
}

/// A reload adds one source and removes another: kept sources keep their
/// samples (the bound stays synchronized at once), a removed one's samples
/// no longer count, ids not of this engine are ignored, and the new source
/// joins selection when it reports.
#[test]
fn a_reconfiguration_keeps_the_bound_and_the_kept_sources() {
    let mut e = engine(3, 3);
    let raw = SEC;
    for id in 0..3 {
        e.on_sample(SourceId(id), sample(raw, 20_000, 0));
    }
    let before = e.tick(reading(raw));
    assert_eq!(before.state.anchor.status, ClockStatus::Synchronized);
    // Keep s0 and s2 (renamed), drop s1, add s5 as id 5.
    let sources = vec![
        (SourceId(0), "s0".to_owned(), SourceKind::Ntp),
        (SourceId(2), "s2-renamed".to_owned(), SourceKind::Ntp),
        (SourceId(5), "s5".to_owned(), SourceKind::Ntp),
    ];
    e.reconfigure(config(2), sources);
    let names: Vec<&str> = e.sources().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s0", "s2-renamed", "s5"]);
    assert_eq!(e.sources().nth(1).unwrap().samples, 1, "s2 kept its counters");
    let raw = raw + SEC / 4;
    let t = e.tick(reading(raw));
    assert_eq!(t.state.anchor.status, ClockStatus::Synchronized, "two kept sources agree");
    assert_true(&t, raw);
    // The removed id is ignored, even with a lie.
    e.on_sample(SourceId(1), sample(raw, 1_000, 5_000_000));
    e.on_sample(SourceId(5), sample(raw, 20_000, 1_000));
    e.on_sample(SourceId(0), sample(raw, 20_000, 0));
    e.on_sample(SourceId(2), sample(raw, 20_000, 0));
    let t = e.tick(reading(raw));
    assert_true(&t, raw);
    assert!(e.sources().all(|s| s.usable && !s.falseticker), "{:?}", e.sources().collect::<Vec<_>>());
    assert_eq!(e.sources().nth(2).unwrap().samples, 1);
}
