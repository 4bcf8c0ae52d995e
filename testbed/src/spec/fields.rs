//! What the fields of both formats share: the reserved site name
//! [`LEADER`], the rule for names, range checks, and the conversions from
//! the units a file writes (ms, ppm) to the types the testbed uses. Every
//! check returns the text of what is wrong; the caller adds which site,
//! link or event it was.

use std::time::Duration;

use tsod_proto::{Offset, Ppb};

/// The `site` that names whichever site leads the TSO when a scenario's
/// event fires (for `kill`, `pause` and `partition`), or the site the
/// matching earlier `kill`, `pause` or `partition` of `"leader"` hit (for
/// `restart`, `resume` and `heal`). No topology may call a site this.
pub const LEADER: &str = "leader";

/// Checks a name that becomes a site name (or part of a path): a lowercase
/// DNS label, as `tsod cluster init` requires of site names.
pub(super) fn check_label(key: &str, name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{key} = {name:?} must be a lowercase DNS label (a-z, 0-9, '-', 1 … 63 bytes, no '-' at the ends)"))
    }
}

/// `Ok` if `value` is a number within `min ..= max` (NaN is not).
pub(super) fn check_range(key: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(format!("{key} = {value} must be within {min} … {max}")) }
}

/// A non-negative number of milliseconds as a duration.
pub(super) fn millis(key: &str, ms: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(ms / 1e3).map_err(|e| format!("{key} = {ms}: {e}"))
}

/// Seconds, already range-checked, as a duration.
pub(super) fn seconds(key: &str, s: f64) -> Result<Duration, String> {
    millis(key, s * 1e3)
}

/// Milliseconds, already range-checked, as an offset (rounded to the nanosecond).
pub(super) fn offset_from_ms(ms: f64) -> Offset {
    Offset::from_nanos(round_to_i64(ms * 1e6))
}

/// Parts per million, already range-checked, as parts per billion (rounded).
pub(super) fn ppb_from_ppm(ppm: f64) -> Ppb {
    Ppb::new(round_to_i64(ppm * 1e3))
}

#[expect(clippy::cast_possible_truncation, reason = "callers range-check first; `as` saturates and maps NaN to 0")]
fn round_to_i64(x: f64) -> i64 {
    x.round() as i64
}
