//! `tsbench uncertainty`: how wide a site's bound is over time and which
//! status it claims: the half-width an application reading the site gets,
//! sampled at a fixed interval.
//!
//! # Method
//!
//! Every `--interval` (default 1 s) one sample reads the bound and the
//! status, back to back (`source.rs`):
//!
//! * **local** (`--local`): `LocalClock::now()` (with the suspend
//!   check) and `LocalClock::status()` on the daemon's segment;
//! * **remote** (`--site`): `RemoteClock::now_at()`, whose interval is the
//!   server's widened by the measured round trip, as an application gets
//!   it, and the site's status report.
//!
//! Samples are due at start + k · interval, so the schedule does not drift;
//! a sample that overruns its slot (a slow remote read) skips the slots it
//! overlapped instead of catching up in a burst. A read that fails,
//! including `now` on an unsynchronized or disrupted site, leaves the sample
//! without a half-width (or without a status) and is counted by kind
//! (`timeline.rs`); it never ends the run.
//!
//! A run stops after `--count` samples, or once `--duration` has passed (no
//! sample starts at or after it), or at Ctrl-C, which still reports the
//! samples taken. It fails, after printing its report, only if not a single
//! read succeeded. The report's JSON fields are documented in
//! `uncertainty/report.rs`; `--plot` draws the timeline (`plot.rs`).

mod report;
mod source;
mod timeline;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use tsod_bench::text::{format_ns, plural};

use crate::plan::{self, Plan};
use crate::plot::{self, Picture};
use crate::progress::Progress;
use crate::report::{Mode, RunHeader, round_to};
use crate::site::{self, ClockArgs, ClockTarget};
pub(crate) use report::UncertaintyReport;
use source::Source;
use timeline::{Sample, Timeline};

/// Samples taken when neither `--count` nor `--duration` is given.
const DEFAULT_COUNT: u64 = 60;
/// The shortest `--interval` accepted.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// How often the progress bar is redrawn while waiting for the next sample.
const PROGRESS_REDRAW: Duration = Duration::from_millis(200);
/// Largest half-width the histogram records: 1 hour (larger ones are
/// recorded as that).
pub(crate) const MAX_HALF_WIDTH_NS: u64 = 3_600_000_000_000;

/// Options of `tsbench uncertainty`.
#[derive(Debug, clap::Args)]
pub(crate) struct UncertaintyArgs {
    /// Which clock: `--local` or `--site` and how to trust it.
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Time between two samples (e.g. 1s, 100ms; at least 1ms).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
    /// Stop once this long has passed (e.g. 10m, 1h). Default: 60 samples.
    #[arg(long, value_name = "D", value_parser = plan::parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Stop after this many samples.
    #[arg(long, value_name = "N", value_parser = plan::parse_count)]
    count: Option<u64>,
    /// Draw the half-width over time, coloured by status, into FILE.svg or
    /// FILE.png.
    #[arg(long, value_name = "FILE", value_parser = plot::parse_plot_path)]
    plot: Option<PathBuf>,
    /// Print one JSON object (fields documented in tsbench's
    /// uncertainty/report.rs) instead of a table; no progress bar.
    #[arg(long)]
    json: bool,
}

/// A `--interval`: a duration of at least [`MIN_INTERVAL`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = plan::parse_duration(text)?;
    if interval < MIN_INTERVAL {
        return Err(format!("{text:?} is shorter than the shortest interval, 1ms"));
    }
    Ok(interval)
}

/// Runs `tsbench uncertainty`: samples, plots if asked, prints the report.
pub(crate) fn run(args: &UncertaintyArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.plot {
        plot::check_destination(path)?;
    }
    let (mut report, timeline) = sampled(args)?;

    // A failed plot is reported after the figures, which are not lost with it.
    let plot_failure = args.plot.as_deref().and_then(|path| match plot::write(path, &picture(&report, &timeline)) {
        Ok(()) => {
            report.plot = Some(path.display().to_string());
            None
        }
        Err(error) => Some(error),
    });
    crate::report::print(&report, args.json)?;
    if let Some(error) = plot_failure {
        return Err(error);
    }
    if report.reads > 0 && report.errors.total == report.reads {
        anyhow::bail!(
            "every one of the {} reads failed ({}): nothing was measured",
            report.reads,
            report.errors.kinds_text()
        );
    }
    Ok(())
}

/// Samples as `run` does and returns the report without printing it or
/// plotting (for `tsbench compare`).
pub(crate) fn measure(args: &UncertaintyArgs) -> anyhow::Result<UncertaintyReport> {
    Ok(sampled(args)?.0)
}

/// Samples on a runtime of its own until the plan ends or Ctrl-C.
fn sampled(args: &UncertaintyArgs) -> anyhow::Result<(UncertaintyReport, Timeline)> {
    let plan = Plan::new(args.count, args.duration, DEFAULT_COUNT);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a tokio runtime")?;
    runtime.block_on(open_and_sample(args, plan))
}

/// Opens the clock, samples it until the plan ends or Ctrl-C, and sums up.
async fn open_and_sample(args: &UncertaintyArgs, plan: Plan) -> anyhow::Result<(UncertaintyReport, Timeline)> {
    // Watched from the start, so a Ctrl-C while connecting ends the run with a report too.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C (SIGINT)")?;
    let (mut source, mode, target, address) = match args.clock.target()? {
        ClockTarget::Remote(remote) => {
            let clock = remote.connect().await?;
            let connected = clock.addr().to_string();
            (Source::Remote { clock, site: None }, Mode::Remote, remote.address.to_string(), Some(connected))
        }
        ClockTarget::Local(path) => {
            let clock = site::open_local(&path)?;
            (Source::Local(clock), Mode::Local, path.display().to_string(), None)
        }
    };

    let mut progress = Progress::new(plan, !args.json).counting("samples");
    let (timeline, interrupted) = sample(&mut source, plan, args.interval, &mut progress, &mut interrupt).await?;
    progress.finish();

    let report = UncertaintyReport {
        run: RunHeader { command: "uncertainty", mode: Some(mode), target, address },
        site: source.site().map(str::to_owned),
        interval_s: args.interval.as_secs_f64(),
        elapsed_s: round_to(timeline.elapsed().as_secs_f64(), 3),
        samples: timeline.len(),
        bounded: timeline.bounded(),
        half_width: timeline.half_width(),
        statuses: timeline.statuses(),
        status_changes: u64::try_from(timeline.changes().len()).unwrap_or(u64::MAX),
        changes: timeline.changes().to_vec(),
        reads: timeline.reads(),
        errors: timeline.errors().clone(),
        interrupted,
        plot: None,
    };
    Ok((report, timeline))
}

/// Takes samples on the schedule until `plan` ends; also returns whether
/// Ctrl-C ended it first.
async fn sample(
    source: &mut Source,
    plan: Plan,
    interval: Duration,
    progress: &mut Progress,
    interrupt: &mut Signal,
) -> anyhow::Result<(Timeline, bool)> {
    let mut timeline = Timeline::new()?;
    let start = Instant::now();
    let mut slot: u64 = 0;
    loop {
        if plan.count().is_some_and(|count| timeline.len() >= count) {
            return Ok((timeline, false));
        }
        let offset = slot_offset(interval, slot);
        if plan.duration().is_some_and(|duration| offset >= duration) {
            return Ok((timeline, false));
        }
        let due = start.checked_add(offset).context("the sampling schedule overflows the clock")?;
        if wait_until(due, progress, timeline.len(), interrupt).await {
            return Ok((timeline, true));
        }
        let at = start.elapsed();
        let (half_width, status) = tokio::select! {
            reading = source.read() => reading,
            Some(()) = interrupt.recv() => return Ok((timeline, true)),
        };
        let end = start.elapsed();
        timeline.push(Sample { at, end, half_width, status });
        progress.update(timeline.len());
        slot = next_slot(slot, end, interval);
    }
}

/// Waits until `due`, redrawing the progress bar meanwhile; true if Ctrl-C
/// came first.
async fn wait_until(due: Instant, progress: &mut Progress, done: u64, interrupt: &mut Signal) -> bool {
    loop {
        let now = Instant::now();
        if now >= due {
            return false;
        }
        let step = now.checked_add(PROGRESS_REDRAW).map_or(due, |redraw| redraw.min(due));
        tokio::select! {
            () = tokio::time::sleep_until(step) => progress.update(done),
            Some(()) = interrupt.recv() => return true,
        }
    }
}

/// When slot `slot` is due, after the start.
fn slot_offset(interval: Duration, slot: u64) -> Duration {
    let nanos = interval.as_nanos().saturating_mul(u128::from(slot));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The slot after `slot` to sample next, `elapsed` after the start: the
/// first not yet begun, so that an overrun skips slots rather than bursting.
fn next_slot(slot: u64, elapsed: Duration, interval: Duration) -> u64 {
    let first_not_begun = elapsed.as_nanos().div_ceil(interval.as_nanos().max(1));
    u64::try_from(first_not_begun).unwrap_or(u64::MAX).max(slot.saturating_add(1))
}

/// The plot of a run: its title names the site, its notes sum the run up.
fn picture(report: &UncertaintyReport, timeline: &Timeline) -> Picture {
    let title = match (report.run.is_remote(), &report.site) {
        (false, _) => match host_name() {
            Some(host) => format!("Half-width of the bound: tsod on {host}"),
            None => "Half-width of the bound: local tsod".to_owned(),
        },
        (true, Some(site)) => format!("Half-width of the bound: site {site}"),
        (true, None) => format!("Half-width of the bound: site at {}", report.run.target),
    };
    let half_width = &report.half_width;
    let mut notes = vec![
        format!(
            "{} sample{}, every {:?}",
            report.samples,
            plural(report.samples),
            Duration::try_from_secs_f64(report.interval_s).unwrap_or_default()
        ),
        format!("bounded: {}", report.bounded),
    ];
    if report.bounded > 0 {
        notes.push(format!("p50 {}", format_ns(half_width.p50_ns)));
        notes.push(format!("p99 {}", format_ns(half_width.p99_ns)));
        notes.push(format!("max {}", format_ns(half_width.max_ns)));
    }
    notes.push(format!("{} status change{}", report.status_changes, plural(report.status_changes)));
    notes.push(format!("errors: {} of {} reads", report.errors.total, report.reads));
    Picture {
        title,
        subtitle: report.subject(),
        points: timeline.points(),
        changes: report.changes.iter().map(|c| plot::Change { at_s: c.at_s, to: c.to }).collect(),
        interval_s: report.interval_s,
        notes,
    }
}

/// This host's name, for a local plot's title.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn options_want_one_clock_one_limit_and_a_plot_file() {
        let local =
            UncertaintyArgs::from_words(&["--local", "--segment", "/tmp/x", "--duration", "1s", "--json"]).unwrap();
        assert!(local.clock.local && local.json);
        assert_eq!(local.interval, Duration::from_secs(1), "the default interval");
        assert_eq!(local.duration, Some(Duration::from_secs(1)));
        let remote = UncertaintyArgs::from_words(&[
            "--site",
            "site-a.example:4460",
            "--ca",
            "ca.crt",
            "--interval",
            "100ms",
            "--count",
            "5",
        ])
        .unwrap();
        assert_eq!(remote.clock.site.map(|a| a.to_string()), Some("site-a.example:4460".to_owned()));
        assert_eq!((remote.interval, remote.count), (Duration::from_millis(100), Some(5)));
        assert!(UncertaintyArgs::from_words(&["--local", "--plot", "run.png"]).unwrap().plot.is_some());

        assert!(UncertaintyArgs::from_words(&[]).is_err(), "--local or --site is required");
        assert!(
            UncertaintyArgs::from_words(&["--local", "--site", "127.0.0.1:4460", "--ca", "c"]).is_err(),
            "not both"
        );
        assert!(UncertaintyArgs::from_words(&["--site", "127.0.0.1:4460"]).is_err(), "--site needs --ca");
        assert!(UncertaintyArgs::from_words(&["--local", "--ca", "c"]).is_err(), "--ca needs --site");
        assert!(UncertaintyArgs::from_words(&["--local", "--server-name", "a"]).is_err(), "--server-name needs --site");
        assert!(UncertaintyArgs::from_words(&["--local", "--cert", "c", "--key", "k"]).is_err(), "--cert needs --site");
        assert!(UncertaintyArgs::from_words(&["--segment", "/tmp/x"]).is_err(), "--segment needs --local");
        assert!(UncertaintyArgs::from_words(&["--site", "127.0.0.1:1", "--ca", "c", "--segment", "s"]).is_err());
        assert!(
            UncertaintyArgs::from_words(&["--site", "127.0.0.1:1", "--ca", "c", "--cert", "c.pem"]).is_err(),
            "--cert needs --key"
        );
        assert!(UncertaintyArgs::from_words(&["--local", "--duration", "1s", "--count", "5"]).is_err(), "one limit");
        assert!(UncertaintyArgs::from_words(&["--local", "--interval", "100us"]).is_err(), "below 1ms");
        assert!(UncertaintyArgs::from_words(&["--local", "--plot", "run.jpg"]).is_err());
        assert!(UncertaintyArgs::from_words(&["--site", "no-port", "--ca", "c"]).is_err());
    }

    #[test]
    fn the_schedule_keeps_its_slots_and_skips_overruns() {
        let interval = Duration::from_millis(100);
        assert_eq!(slot_offset(interval, 0), Duration::ZERO);
        assert_eq!(slot_offset(interval, 7), Duration::from_millis(700));
        assert_eq!(slot_offset(Duration::from_secs(3600), u64::MAX), Duration::from_nanos(u64::MAX));
        // On time: the next slot.
        assert_eq!(next_slot(0, Duration::from_millis(3), interval), 1);
        assert_eq!(next_slot(4, Duration::from_millis(400), interval), 5);
        // A sample that ran into slots 5 and 6 resumes at 7.
        assert_eq!(next_slot(4, Duration::from_millis(650), interval), 7);
        assert_eq!(next_slot(4, Duration::from_millis(700), interval), 7);
    }

    #[test]
    fn the_plot_names_the_site_and_sums_up() {
        let mut timeline = Timeline::new().unwrap();
        timeline.push(Sample {
            at: Duration::ZERO,
            end: Duration::from_millis(1),
            half_width: Ok(Duration::from_micros(20)),
            status: Ok(tsod_proto::ClockStatus::Synchronized),
        });
        let report = UncertaintyReport {
            run: RunHeader {
                command: "uncertainty",
                mode: Some(Mode::Remote),
                target: "127.0.0.1:4460".to_owned(),
                address: Some("127.0.0.1:4460".to_owned()),
            },
            site: Some("site-a".to_owned()),
            interval_s: 0.5,
            elapsed_s: 0.001,
            samples: 1,
            bounded: 1,
            half_width: timeline.half_width(),
            statuses: timeline.statuses(),
            status_changes: 0,
            changes: Vec::new(),
            reads: 2,
            errors: crate::report::ErrorTally::default(),
            interrupted: false,
            plot: None,
        };
        let picture = picture(&report, &timeline);
        assert_eq!(picture.title, "Half-width of the bound: site site-a");
        assert_eq!(picture.subtitle, "site site-a at 127.0.0.1:4460");
        assert_eq!(picture.points.len(), 1);
        assert!(picture.notes.contains(&"1 sample, every 500ms".to_owned()), "{:?}", picture.notes);
        assert!(picture.notes.iter().any(|n| n.starts_with("p50 20.0")), "{:?}", picture.notes);
    }
}
