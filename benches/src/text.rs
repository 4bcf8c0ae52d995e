//! How tsbench writes numbers for people, in the library's comparison table
//! and in every subcommand's text report alike.

/// Nanoseconds for people: `45 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn format_ns(ns: u64) -> String {
    let value = ns as f64;
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..1_000_000 => format!("{:.1} µs", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", value / 1e6),
        _ => format!("{:.2} s", value / 1e9),
    }
}

/// `"s"` after a count other than one: `1 sample`, `2 samples`.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_read_well() {
        assert_eq!(format_ns(45), "45 ns");
        assert_eq!(format_ns(9_999), "9999 ns");
        assert_eq!(format_ns(12_345), "12.3 µs");
        assert_eq!(format_ns(999_949), "999.9 µs");
        assert_eq!(format_ns(4_560_000), "4.56 ms");
        assert_eq!(format_ns(45_600_000), "45.60 ms");
        assert_eq!(format_ns(12_000_000_000), "12.00 s");
        assert_eq!((plural(1), plural(0), plural(2)), ("", "s", "s"));
    }
}
