//! The testbed's live view: one screen, redrawn about once a second, that
//! says for every site whether its daemon runs (or is paused), what it
//! claims (status and half-width), what its local basis alone claims, how
//! many peers it reaches, which of its sources it has rejected, and how
//! often the truth checker caught it lying; then one line on the TSO
//! ([`TsoLine`]: leader, its priority, term and why it leads, timestamps and
//! errors a second; two lines when that does not fit one); then the last
//! few scenario events.
//!
//! This module only formats. It reads nothing and writes nothing: the caller
//! collects a [`SiteRow`] per site (usually with [`SiteRow::from_status`]
//! on the daemon's status file), calls
//! [`render`], and prints the string, preceded by [`clear_screen`] when
//! stdout is a terminal.
//!
//! # Invariants
//!
//! * Every line [`render`] returns is at most [`WIDTH`] characters, whatever
//!   the names, statuses and notes it is given: long cells are cut at a
//!   character boundary and end in `…`.
//! * Control characters in any input (a site name with an escape sequence,
//!   a note with a newline) are shown as `?`, so input cannot move the
//!   cursor or break the layout.
//! * Widths are counted in `char`s, which assumes every character takes one
//!   terminal column (true for the ASCII names the testbed uses, and for
//!   `µ` and `…`; East Asian wide characters would overflow).

use std::time::Duration;

use tsod_proto::Offset;
use tsod_proto::observe::StatusSnapshot;

/// Columns a rendered line may use at most.
pub const WIDTH: usize = 80;

/// How many of the most recent notes [`render`] shows.
pub const NOTES_SHOWN: usize = 6;

/// The ANSI sequence that moves the cursor home and clears the screen.
///
/// Print it before [`render`]'s output only when stdout is a terminal; in a
/// log file it is noise.
pub fn clear_screen() -> &'static str {
    "\x1b[H\x1b[2J"
}

/// What the live view shows about one site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteRow {
    /// The site's name.
    pub name: String,
    /// Its daemon process is running.
    pub up: bool,
    /// Its daemon process is paused (SIGSTOP).
    pub paused: bool,
    /// The status it publishes (`synchronized`, `degraded`, `free-running`,
    /// `unsynchronized`, `disrupted`); `None` before its first status file.
    pub status: Option<String>,
    /// Half-width of the interval it publishes; `None` when it has no bound.
    pub half_width: Option<Duration>,
    /// Status of its local basis (its own sources, without peers).
    pub local_status: Option<String>,
    /// Names of the sources this site currently rejects as falsetickers.
    pub falsetickers: Vec<String>,
    /// The signed offset of the site's clock from true time, as the caller
    /// knows it (in the testbed: the offset its simulated clock was given).
    /// [`SiteRow::from_status`] leaves it `None`: the status file does not
    /// know true time.
    pub clock_offset: Option<Offset>,
    /// Peers its connection to is up.
    pub peers_up: usize,
    /// Peers it is configured with.
    pub peers: usize,
    /// Times the truth checker found true time outside this site's interval.
    pub violations: u64,
}

impl SiteRow {
    /// The row for site `name` from its status file (`None`: none yet, or
    /// unreadable: every cell but the name is empty).
    ///
    /// Shows `status`, `half_width_ns`, `local_status`, the sources that
    /// are falsetickers, and how many peers are connected.
    /// [`SiteRow::clock_offset`] is left `None`.
    pub fn from_status(name: &str, up: bool, status: Option<&StatusSnapshot>, violations: u64) -> Self {
        let mut row = Self { name: name.to_owned(), up, violations, ..Self::default() };
        if let Some(status) = status {
            row.status = Some(status.status.name().to_owned());
            row.half_width = status.half_width_ns.map(Duration::from_nanos);
            row.local_status = status.local_status.map(|s| s.name().to_owned());
            row.falsetickers = status.sources.iter().filter(|s| s.falseticker).map(|s| s.name.clone()).collect();
            row.peers_up = status.peers.iter().filter(|p| p.connected).count();
            row.peers = status.peers.len();
        }
        row
    }
}

/// One column of the table: header, width and alignment.
struct Column {
    header: &'static str,
    width: usize,
    right: bool,
}

/// The table's columns; widths plus one space between columns sum to [`WIDTH`].
const COLUMNS: [Column; 8] = [
    Column { header: "site", width: 10, right: false },
    Column { header: "status", width: 9, right: false },
    Column { header: "half-width", width: 10, right: true },
    Column { header: "local", width: 9, right: false },
    Column { header: "offset", width: 9, right: true },
    Column { header: "peers", width: 5, right: true },
    Column { header: "falsetickers", width: 16, right: false },
    Column { header: "viol", width: 5, right: true },
];

/// What the live view says about the TSO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TsoLine {
    /// The site that leads, by the status files, if any.
    pub leader: Option<String>,
    /// Its Raft term.
    pub term: Option<u64>,
    /// Its `leader-priority`, when it has one.
    pub priority: Option<u32>,
    /// Why it leads, as its status file says (`why_leading`).
    pub why: Option<String>,
    /// The site it is handing leadership over to, if any (`handover_to`).
    pub handover_to: Option<String>,
    /// Timestamps the testbed's clients received per second, lately (all sites).
    pub per_second: f64,
    /// Their failed calls per second, lately.
    pub errors_per_second: f64,
    /// Failed calls since the start.
    pub errors: u64,
}

impl TsoLine {
    /// `TSO: leader frankfurt (term 3; smallest total round trip (350 ms)),
    /// 245 timestamps/s, 0 errors/s (0 in all)` (priority and handover
    /// when there are some): one line if it fits in [`WIDTH`], else the
    /// leader on one and the rates on the next.
    fn lines(&self) -> Vec<String> {
        let leader = match &self.leader {
            Some(leader) => {
                let mut about: Vec<String> = Vec::new();
                if let Some(priority) = self.priority {
                    about.push(format!("priority {priority}"));
                }
                if let Some(term) = self.term {
                    about.push(format!("term {term}"));
                }
                let mut why: Vec<String> = Vec::new();
                if let Some(reason) = &self.why {
                    why.push(reason.clone());
                }
                if let Some(to) = &self.handover_to {
                    why.push(format!("handing over to {to}"));
                }
                let mut about = about.join(", ");
                if !why.is_empty() {
                    if !about.is_empty() {
                        about.push_str("; ");
                    }
                    about.push_str(&why.join(", "));
                }
                if about.is_empty() { format!("leader {leader}") } else { format!("leader {leader} ({about})") }
            }
            None => "no leader".to_owned(),
        };
        let rates = format!(
            "{:.0} timestamps/s, {:.0} errors/s ({} in all)",
            self.per_second, self.errors_per_second, self.errors
        );
        let one = format!("TSO: {leader}, {rates}");
        if one.chars().count() <= WIDTH { vec![one] } else { vec![format!("TSO: {leader}"), format!("     {rates}")] }
    }
}

/// The live view: a header line with `title` and `elapsed`, a table with one
/// line per row, the TSO line if given, and the last [`NOTES_SHOWN`] of
/// `notes` (oldest first, as given). Every line is at most [`WIDTH`]
/// characters; the string ends in a newline.
pub fn render(title: &str, elapsed: Duration, rows: &[SiteRow], tso: Option<&TsoLine>, notes: &[String]) -> String {
    let mut out = String::new();
    let clock = format!("t={:.1}s", elapsed.as_secs_f64());
    let title_width = WIDTH.saturating_sub(clock.chars().count() + 1);
    push_line(&mut out, &format!("{} {clock}", pad(title, title_width, false)));
    push_line(&mut out, &table_line(COLUMNS.iter().map(|c| c.header.to_owned())));
    push_line(&mut out, &table_line(COLUMNS.iter().map(|c| "-".repeat(c.width))));
    for row in rows {
        push_line(&mut out, &table_line(cells(row)));
    }
    if rows.is_empty() {
        push_line(&mut out, "(no sites)");
    }
    if let Some(tso) = tso {
        for line in tso.lines() {
            push_line(&mut out, &line);
        }
    }
    if !notes.is_empty() {
        push_line(&mut out, "");
        for note in notes.iter().skip(notes.len().saturating_sub(NOTES_SHOWN)) {
            push_line(&mut out, note);
        }
    }
    out
}

/// The cells of one site's line, in [`COLUMNS`] order.
fn cells(row: &SiteRow) -> [String; 8] {
    let status = match (&row.status, row.up) {
        (_, false) => "DOWN".to_owned(),
        (_, true) if row.paused => "PAUSED".to_owned(),
        (None, true) => "starting".to_owned(),
        (Some(s), true) => short_status(s),
    };
    [
        row.name.clone(),
        status,
        row.half_width.map_or_else(|| "-".to_owned(), format_duration),
        row.local_status.as_deref().map_or_else(|| "-".to_owned(), short_status),
        row.clock_offset.map_or_else(|| "-".to_owned(), format_offset),
        if row.peers == 0 { "-".to_owned() } else { format!("{}/{}", row.peers_up, row.peers) },
        if row.falsetickers.is_empty() { "-".to_owned() } else { row.falsetickers.join(",") },
        row.violations.to_string(),
    ]
}

/// A status name short enough for its column (9 characters).
fn short_status(status: &str) -> String {
    match status {
        "synchronized" => "sync",
        "unsynchronized" => "unsync",
        "free-running" => "free-run",
        other => other,
    }
    .to_owned()
}

/// `cells` padded to the [`COLUMNS`] widths and joined by single spaces,
/// without trailing blanks.
fn table_line(cells: impl IntoIterator<Item = String>) -> String {
    let line: Vec<String> =
        COLUMNS.iter().zip(cells).map(|(column, cell)| pad(&cell, column.width, column.right)).collect();
    line.join(" ").trim_end().to_owned()
}

/// Appends `line`, made safe and cut to [`WIDTH`], and a newline.
fn push_line(out: &mut String, line: &str) {
    out.push_str(&fit(line, WIDTH));
    out.push('\n');
}

/// `text` with control characters replaced by `?` and cut to at most
/// `width` characters, the last of them `…` when something was cut.
fn fit(text: &str, width: usize) -> String {
    let clean = text.chars().map(|c| if c.is_control() { '?' } else { c });
    if text.chars().count() <= width {
        return clean.collect();
    }
    let mut cut: String = clean.take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    cut
}

/// `text` fitted to exactly `width` characters: cut as by [`fit`], then
/// padded with spaces on the right (or, if `right`, on the left).
fn pad(text: &str, width: usize, right: bool) -> String {
    let text = fit(text, width);
    let fill = " ".repeat(width.saturating_sub(text.chars().count()));
    if right { fill + &text } else { text + &fill }
}

/// A duration with three significant figures in the largest unit that keeps
/// the number at least 1: `850 ns`, `12.3 µs`, `1.23 ms`, `4.00 s`.
fn format_duration(duration: Duration) -> String {
    format_nanos(duration.as_nanos() as f64)
}

/// An offset like [`format_duration`], with its sign (`+`, `-`, or none for 0).
fn format_offset(offset: Offset) -> String {
    let nanos = offset.as_nanos();
    let sign = match nanos.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    format!("{sign}{}", format_nanos(nanos.unsigned_abs() as f64))
}

/// `nanos` (non-negative) with three significant figures and a unit.
fn format_nanos(nanos: f64) -> String {
    const UNITS: [(&str, f64); 4] = [("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)];
    // From 999.5 on, a unit would print as "1000": the next one is used instead.
    let (unit, scale) = UNITS.iter().rev().find(|(_, scale)| nanos / scale >= 0.9995).copied().unwrap_or(UNITS[0]);
    let value = nanos / scale;
    if unit == "ns" || value >= 99.95 {
        format!("{value:.0} {unit}")
    } else if value >= 9.995 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(name: &str) -> SiteRow {
        SiteRow {
            name: name.to_owned(),
            up: true,
            paused: false,
            status: Some("synchronized".to_owned()),
            half_width: Some(Duration::from_micros(123)),
            local_status: Some("degraded".to_owned()),
            falsetickers: vec!["gps".to_owned()],
            clock_offset: Some(Offset::from_nanos(-1_500)),
            peers_up: 2,
            peers: 3,
            violations: 0,
        }
    }

    fn assert_fits(text: &str) {
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "line too wide ({}): {line:?}", line.chars().count());
        }
    }

    #[test]
    fn durations_have_three_significant_figures() {
        let cases = [
            (0, "0 ns"),
            (850, "850 ns"),
            (999, "999 ns"),
            (1_000, "1.00 µs"),
            (12_345, "12.3 µs"),
            (123_456, "123 µs"),
            (999_600, "1.00 ms"),
            (1_234_567, "1.23 ms"),
            (99_960_000, "100 ms"),
            (4_000_000_000, "4.00 s"),
            (12_345_000_000_000, "12345 s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(Duration::from_nanos(nanos)), text, "{nanos} ns");
        }
        assert_eq!(format_offset(Offset::from_nanos(-1_500)), "-1.50 µs");
        assert_eq!(format_offset(Offset::from_nanos(2_000_000)), "+2.00 ms");
        assert_eq!(format_offset(Offset::from_nanos(0)), "0 ns");
        assert_eq!(format_offset(Offset::from_nanos(i64::MIN)), "-9223372037 s");
    }

    #[test]
    fn render_shows_every_site_and_the_last_notes() {
        let mut down = row("xb");
        down.up = false;
        let mut paused = row("xd");
        paused.paused = true;
        let rows = [row("xa"), down, SiteRow { name: "xc".to_owned(), up: true, ..SiteRow::default() }, paused];
        let notes: Vec<String> = (0..10).map(|i| format!("t={i}.0s event {i}")).collect();
        let tso = TsoLine {
            leader: Some("xa".to_owned()),
            term: Some(3),
            per_second: 598.4,
            errors_per_second: 0.0,
            errors: 12,
            ..TsoLine::default()
        };
        let text = render("three sites", Duration::from_millis(12_345), &rows, Some(&tso), &notes);
        assert_fits(&text);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("three sites") && lines[0].ends_with("t=12.3s"), "{}", lines[0]);
        let xa = lines.iter().find(|l| l.starts_with("xa ")).unwrap();
        for cell in ["sync", "123 µs", "degraded", "-1.50 µs", "2/3", "gps"] {
            assert!(xa.contains(cell), "{cell:?} missing from {xa:?}");
        }
        assert!(lines.iter().any(|l| l.starts_with("xb ") && l.contains("DOWN")));
        assert!(lines.iter().any(|l| l.starts_with("xc ") && l.contains("starting")));
        assert!(lines.iter().any(|l| l.starts_with("xd ") && l.contains("PAUSED")));
        assert!(lines.contains(&"TSO: leader xa (term 3), 598 timestamps/s, 0 errors/s (12 in all)"), "{text}");
        assert!(!text.contains("event 3"));
        assert!(text.contains("t=4.0s event 4") && text.ends_with("t=9.0s event 9\n"));
    }

    #[test]
    fn render_fits_80_columns_whatever_the_input() {
        let mut wide = row("a-site-name-far-too-long-for-any-column-ü-ü-ü-ü-ü-ü-ü");
        wide.status = Some("a-status-nobody-has-heard-of".to_owned());
        wide.local_status = Some("ünsynchronized-and-then-some".to_owned());
        wide.falsetickers = (0..40).map(|i| format!("source-number-{i}")).collect();
        wide.half_width = Some(Duration::MAX);
        wide.clock_offset = Some(Offset::from_nanos(i64::MAX));
        wide.peers_up = usize::MAX;
        wide.peers = usize::MAX;
        wide.violations = u64::MAX;
        let evil = row("esc\x1b[2Jape\nnewline");
        let title = "ü".repeat(200);
        let notes = vec!["n".repeat(500), "t=1.0s kill\r\x1b[31m xa".to_owned()];
        let tso = TsoLine {
            leader: Some("a\x1b[2J-leader-whose-name-goes-on-".repeat(5)),
            term: Some(u64::MAX),
            priority: Some(u32::MAX),
            why: Some("because\nit \x1b[31mcan ".repeat(20)),
            handover_to: Some("x\ry".repeat(30)),
            per_second: f64::MAX,
            errors_per_second: f64::NAN,
            errors: u64::MAX,
        };
        let text = render(&title, Duration::from_secs(u64::MAX / 4), &[wide, evil], Some(&tso), &notes);
        assert_fits(&text);
        assert!(!text.contains('\x1b') && !text.contains('\r'));
        assert_eq!(text.lines().count(), 3 + 2 + 2 + 1 + 2);
        let wide_line = text.lines().nth(3).unwrap();
        assert!(wide_line.starts_with("a-site-na… "), "{wide_line:?}");
        assert!(wide_line.contains(" source-number-0… "), "{wide_line:?}");
        assert_eq!(wide_line.matches('…').count(), 8, "{wide_line:?}");
    }

    #[test]
    fn the_tso_line_says_why_the_leader_leads() {
        let line = |tso: &TsoLine| render("t", Duration::ZERO, &[], Some(tso), &[]);
        let mut tso = TsoLine {
            leader: Some("frankfurt".to_owned()),
            term: Some(3),
            why: Some("smallest total round trip (350 ms)".to_owned()),
            per_second: 245.2,
            ..TsoLine::default()
        };
        // Too long for one line: the leader, then the rates.
        let text = line(&tso);
        assert_fits(&text);
        let tso_lines: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            tso_lines,
            [
                "TSO: leader frankfurt (term 3; smallest total round trip (350 ms))",
                "     245 timestamps/s, 0 errors/s (0 in all)"
            ]
        );
        tso.why = Some("highest leader-priority (5)".to_owned());
        tso.priority = Some(5);
        tso.leader = Some("xa".to_owned());
        tso.per_second = 9.0;
        let text = line(&tso);
        assert!(text.contains("TSO: leader xa (priority 5, term 3; highest leader-priority (5))\n"), "{text}");
        // Short enough: one line.
        tso.why = Some("best".to_owned());
        assert!(line(&tso).contains("TSO: leader xa (priority 5, term 3; best), 9 timestamps/s, 0 errors/s"));
        tso.why = Some("highest leader-priority (5)".to_owned());
        tso.handover_to = Some("bj-a".to_owned());
        tso.priority = None;
        let text = line(&tso);
        assert!(
            text.contains("TSO: leader xa (term 3; highest leader-priority (5), handing over to bj-a)\n"),
            "{text}"
        );
        // Only what is known.
        let bare = TsoLine { leader: Some("xa".to_owned()), ..TsoLine::default() };
        assert!(line(&bare).contains("TSO: leader xa, 0 timestamps/s"), "{}", line(&bare));
        let nobody = TsoLine { why: Some("stale".to_owned()), ..TsoLine::default() };
        assert!(line(&nobody).contains("TSO: no leader, 0 timestamps/s, 0 errors/s (0 in all)\n"));
    }

    #[test]
    fn render_without_rows_or_notes() {
        let text = render("", Duration::ZERO, &[], None, &[]);
        assert_fits(&text);
        assert!(text.contains("(no sites)"));
        assert_eq!(text.lines().count(), 4);
    }

    #[test]
    fn row_from_a_status_file() {
        // As the daemon writes it (`tsod_proto::observe::StatusSnapshot`).
        let status = json!({
            "status": "degraded",
            "half_width_ns": 250_000,
            "frequency_ppb": 12,
            "drift_bound_ppb": 500,
            "disruption_count": 0,
            "pid": 4242,
            "sources": [
                {"name": "gps", "kind": "gpsd", "usable": true, "falseticker": false, "offset_ns": 10,
                 "error_ns": 1_000, "samples": 9, "rejects": 0, "last_error": null},
                {"name": "ntp-liar", "kind": "ntp", "usable": true, "falseticker": true, "offset_ns": 9_000_000,
                 "error_ns": 20_000, "samples": 9, "rejects": 0, "last_error": null},
                {"name": "xb", "kind": "peer", "usable": false, "falseticker": true, "offset_ns": null,
                 "error_ns": null, "samples": 0, "rejects": 1, "last_error": "stale"}
            ],
            "site": "xa",
            "local_status": "unsynchronized",
            "peers": [
                {"name": "xb", "address": "127.0.0.1:4001", "connected": true, "last_round_trip_ns": 40_000_000,
                 "probes_sent": 5, "replies_used": 5, "replies_refused": 0, "connects": 1,
                 "dial_failures": 0, "last_dial_error": null, "report": null},
                {"name": "xc", "address": "127.0.0.1:4002", "connected": false, "last_round_trip_ns": null,
                 "probes_sent": 5, "replies_used": 0, "replies_refused": 0, "connects": 0, "report": null}
            ],
            "endpoint": {"handshakes_refused": 0, "unknown_peers": 0, "connections_over_limit": 0,
                         "bad_datagrams": 0, "bad_messages": 0, "gossip_refused": 0, "rate_limited": 0,
                         "client_requests": 7}
        });
        let status = StatusSnapshot::from_json(status.to_string().as_bytes()).unwrap();
        let row = SiteRow::from_status("xa", true, Some(&status), 2);
        assert_eq!(
            row,
            SiteRow {
                name: "xa".to_owned(),
                up: true,
                paused: false,
                status: Some("degraded".to_owned()),
                half_width: Some(Duration::from_micros(250)),
                local_status: Some("unsynchronized".to_owned()),
                falsetickers: vec!["ntp-liar".to_owned(), "xb".to_owned()],
                clock_offset: None,
                peers_up: 1,
                peers: 2,
                violations: 2,
            }
        );
        let line = render("t", Duration::ZERO, &[row], None, &[]).lines().nth(3).unwrap().to_owned();
        assert!(line.contains("degraded") && line.contains("250 µs") && line.contains("unsync"), "{line:?}");
        assert!(line.contains("1/2") && line.contains("ntp-liar,xb"), "{line:?}");
    }

    #[test]
    fn row_from_garbage_is_empty_not_a_panic() {
        for garbage in [
            json!({}),
            json!(null),
            json!([1, 2, 3]),
            json!("synchronized"),
            json!({"status": 3, "half_width_ns": -5, "local_status": [], "sources": {"name": "x"}, "peers": 7}),
            json!({"sources": [1, null, {"falseticker": true}], "peers": [null, {"connected": "yes"}]}),
        ] {
            assert!(StatusSnapshot::from_json(garbage.to_string().as_bytes()).is_err(), "{garbage}");
        }
        let row = SiteRow::from_status("xa", false, None, 0);
        assert_eq!(row, SiteRow { name: "xa".to_owned(), ..SiteRow::default() });
        assert_fits(&render("g", Duration::ZERO, &[row], None, &[]));
    }
}
