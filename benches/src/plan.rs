//! How long a measurement runs: `--count` and `--duration`, whichever ends
//! first, and how a count is shared out among threads.
//!
//! Invariant: a [`Plan`] always ends — it has a count, a duration, or both.

use std::time::Duration;

/// When a measurement stops: after `count` calls, after `duration`, or at
/// whichever comes first when both are set. Never neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    count: Option<u64>,
    duration: Option<Duration>,
}

impl Plan {
    /// The plan for the command-line values: both as given; only a duration
    /// runs for that long however many calls it takes; neither runs
    /// `default_count` calls.
    pub(crate) fn new(count: Option<u64>, duration: Option<Duration>, default_count: u64) -> Self {
        match (count, duration) {
            (None, None) => Self { count: Some(default_count), duration: None },
            _ => Self { count, duration },
        }
    }

    /// The most calls to make, if bounded.
    pub(crate) fn count(&self) -> Option<u64> {
        self.count
    }

    /// The longest to run, if bounded.
    pub(crate) fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// How far along a run is after `done` calls and `elapsed` time, from 0
    /// to 1: the larger of the two fractions, since the run stops at
    /// whichever limit comes first.
    pub(crate) fn fraction_done(&self, done: u64, elapsed: Duration) -> f64 {
        let by_count = self.count.map_or(0.0, |n| if n == 0 { 1.0 } else { done as f64 / n as f64 });
        let by_time =
            self.duration.map_or(0.0, |d| if d.is_zero() { 1.0 } else { elapsed.as_secs_f64() / d.as_secs_f64() });
        by_count.max(by_time).clamp(0.0, 1.0)
    }
}

/// The number of batches of `batch` calls each of `threads` threads makes
/// so that together they make at least `count` calls: `count` rounded up to
/// whole batches, shared as evenly as possible (the first threads take one
/// batch more when it does not divide).
pub(crate) fn batches_per_thread(count: u64, batch: u64, threads: u32) -> Vec<u64> {
    let batch = batch.max(1);
    let threads = u64::from(threads.max(1));
    let batches = count.div_ceil(batch);
    let (base, extra) = (batches / threads, batches % threads);
    (0..threads).map(|i| base.saturating_add(u64::from(i < extra))).collect()
}

/// Parses a duration such as `10s`, `1.5s`, `250ms`, `2m`, `1h`, `500us`
/// (or `µs`) or `100ns`. A unit is required and the value must be positive.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a number (e.g. 10s)"));
    }
    let value: f64 = number.parse().map_err(|_| format!("{number:?} is not a number"))?;
    let seconds_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("{text:?} has no unit; write e.g. {number}s or {number}ms")),
        other => return Err(format!("unknown unit {other:?} (use ns, us, ms, s, m or h)")),
    };
    let duration =
        Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|e| format!("{text:?} is out of range: {e}"))?;
    if duration.is_zero() {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(duration)
}

/// Parses a positive count, allowing `_` between digits (`1_000_000`).
pub(crate) fn parse_count(text: &str) -> Result<u64, String> {
    let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
    match digits.parse::<u64>() {
        Ok(0) => Err("the count must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a count: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "10", "s", "-1s", "1.2.3s", "10 parsecs", "0s", "0.0ms", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn counts_parse_with_underscores() {
        assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_count("20000"), Ok(20_000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-5").is_err());
        assert!(parse_count("ten").is_err());
    }

    #[test]
    fn plan_defaults_only_without_any_limit() {
        let ten = Duration::from_secs(10);
        assert_eq!(Plan::new(None, None, 1_000), Plan { count: Some(1_000), duration: None });
        assert_eq!(Plan::new(Some(5), None, 1_000), Plan { count: Some(5), duration: None });
        assert_eq!(Plan::new(None, Some(ten), 1_000), Plan { count: None, duration: Some(ten) });
        assert_eq!(Plan::new(Some(5), Some(ten), 1_000), Plan { count: Some(5), duration: Some(ten) });
    }

    #[test]
    fn fraction_done_takes_the_nearer_limit() {
        let plan = Plan::new(Some(100), Some(Duration::from_secs(10)), 0);
        assert!((plan.fraction_done(50, Duration::from_secs(1)) - 0.5).abs() < 1e-9);
        assert!((plan.fraction_done(10, Duration::from_secs(8)) - 0.8).abs() < 1e-9);
        assert!((plan.fraction_done(500, Duration::ZERO) - 1.0).abs() < 1e-9);
        let by_time = Plan::new(None, Some(Duration::from_secs(4)), 0);
        assert!((by_time.fraction_done(1_000_000, Duration::from_secs(1)) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn counts_are_shared_in_whole_batches() {
        assert_eq!(batches_per_thread(20_000, 64, 1), vec![313]);
        assert_eq!(batches_per_thread(64, 64, 1), vec![1]);
        assert_eq!(batches_per_thread(1, 64, 1), vec![1]);
        assert_eq!(batches_per_thread(640, 64, 3), vec![4, 3, 3]);
        assert_eq!(batches_per_thread(64, 64, 2), vec![1, 0]);
        assert_eq!(batches_per_thread(10, 1, 0), vec![10]);
        let shares = batches_per_thread(1_000_000, 64, 7);
        assert_eq!(shares.iter().sum::<u64>(), 1_000_000u64.div_ceil(64));
    }
}
