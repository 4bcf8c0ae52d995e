//! Which site a [`RemoteClock`](super::RemoteClock) asks (sans-IO): the
//! nearest by measured round trip; on a site's failure, whichever other
//! site answers a handshake first; and, while not on the nearest, a probe
//! of the nearer ones every [`PROBE_EVERY`] to move back.

use std::time::{Duration, Instant};

/// A failed site is not dialled again for this long unless every site failed.
pub(crate) const FAILED_HOLD: Duration = Duration::from_secs(5);
/// While the client is not on its nearest site, it probes the nearer ones this often.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(10);
/// After the first choice, the first probe (of every site) comes this soon:
/// round trips measured while everything starts at once (a fleet of
/// clients, a site just up) rank by noise.
pub(crate) const FIRST_PROBE_AFTER: Duration = Duration::from_secs(2);
/// Every this many probe times, every other site is measured again, nearer
/// or not (once a minute): a round trip measured while a site or the host
/// was busy would otherwise rank a near site far for good.
pub(crate) const REMEASURE_ALL_EVERY: u32 = 6;

/// The choice among `n` sites.
#[derive(Debug)]
pub(crate) struct Choice {
    current: usize,
    /// When each site last failed (a request or a dial), until it is chosen again.
    failed_at: Vec<Option<Instant>>,
    /// When the nearer sites may next be probed.
    next_probe: Option<Instant>,
    /// Site changes so far.
    switches: u64,
    /// Probe times so far (every [`REMEASURE_ALL_EVERY`]th measures all).
    probes: u32,
}

impl Choice {
    pub(crate) fn new(sites: usize, current: usize) -> Self {
        Self { current, failed_at: vec![None; sites], next_probe: None, switches: 0, probes: 0 }
    }

    pub(crate) fn current(&self) -> usize {
        self.current
    }

    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Whether the current site may be asked (it has not failed since chosen).
    pub(crate) fn current_usable(&self) -> bool {
        self.failed_at.get(self.current).is_some_and(Option::is_none)
    }

    /// Site `site` failed at `now`.
    pub(crate) fn fail(&mut self, site: usize, now: Instant) {
        if let Some(slot) = self.failed_at.get_mut(site) {
            *slot = Some(now);
        }
    }

    /// The sites to race when the current one failed, nearest first: every
    /// other site that has not failed within [`FAILED_HOLD`]; if there is
    /// none, every site (the current one last), since something must be tried.
    pub(crate) fn candidates(&self, round_trips: &[Option<Duration>], now: Instant) -> Vec<usize> {
        let recent = |i: usize| {
            self.failed_at.get(i).copied().flatten().is_some_and(|at| now.saturating_duration_since(at) < FAILED_HOLD)
        };
        let mut sites: Vec<usize> = (0..self.failed_at.len()).filter(|&i| i != self.current && !recent(i)).collect();
        let everyone = sites.is_empty();
        if everyone {
            sites = (0..self.failed_at.len()).filter(|&i| i != self.current).collect();
        }
        sites.sort_by_key(|&i| rank(round_trips, i));
        if everyone {
            sites.push(self.current);
        }
        sites
    }

    /// Site `site` answered: it becomes the current one.
    pub(crate) fn choose(&mut self, site: usize, now: Instant) {
        if site != self.current {
            self.switches += 1;
        }
        self.current = site;
        if let Some(slot) = self.failed_at.get_mut(site) {
            *slot = None;
        }
        self.next_probe = Some(now + PROBE_EVERY);
    }

    /// The sites worth a probe at `now`, nearest first: those nearer than
    /// the current one and those never measured (every site, every
    /// [`REMEASURE_ALL_EVERY`]th time), except sites that failed within
    /// [`FAILED_HOLD`] (none before the next probe is due). Asking
    /// schedules the next probe.
    pub(crate) fn probe(&mut self, round_trips: &[Option<Duration>], now: Instant) -> Vec<usize> {
        if self.next_probe.is_some_and(|at| now < at) {
            return Vec::new();
        }
        self.next_probe = Some(now + PROBE_EVERY);
        self.probes = self.probes.wrapping_add(1);
        let everyone = self.probes % REMEASURE_ALL_EVERY == 0;
        let mine = rank(round_trips, self.current);
        let recent = |i: usize| {
            self.failed_at.get(i).copied().flatten().is_some_and(|at| now.saturating_duration_since(at) < FAILED_HOLD)
        };
        let mut worth: Vec<usize> = (0..self.failed_at.len())
            .filter(|&i| i != self.current && !recent(i))
            .filter(|&i| everyone || rank(round_trips, i) < mine || round_trips.get(i).copied().flatten().is_none())
            .collect();
        worth.sort_by_key(|&i| rank(round_trips, i));
        worth
    }

    /// The client just connected: the first probe comes after
    /// [`FIRST_PROBE_AFTER`] and measures every site.
    pub(crate) fn remeasure_soon(&mut self, now: Instant) {
        self.next_probe = Some(now + FIRST_PROBE_AFTER);
        self.probes = REMEASURE_ALL_EVERY - 1;
    }

    /// Whether to move from the current site to `site`: it is clearly
    /// nearer (by a fifth of the current round trip, and at least 0.5 ms),
    /// so that sites about as near do not take turns.
    pub(crate) fn clearly_nearer(&self, round_trips: &[Option<Duration>], site: usize) -> bool {
        let get = |i: usize| round_trips.get(i).copied().flatten();
        match (get(site), get(self.current)) {
            (Some(there), Some(here)) => there + (here / 5).max(Duration::from_micros(500)) <= here,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Sort key: measured round trip (unknown last), then the listed order.
fn rank(round_trips: &[Option<Duration>], site: usize) -> (Duration, usize) {
    (round_trips.get(site).copied().flatten().unwrap_or(Duration::MAX), site)
}

/// The nearest site by measured round trip (unknown last, then listed order).
pub(crate) fn nearest(round_trips: &[Option<Duration>]) -> Option<usize> {
    (0..round_trips.len())
        .filter(|&i| round_trips.get(i).copied().flatten().is_some())
        .min_by_key(|&i| rank(round_trips, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn the_nearest_answering_site_is_chosen_and_failures_move_on() {
        let rtts = [ms(25), ms(1), None, ms(100)];
        assert_eq!(nearest(&rtts), Some(1));
        assert_eq!(nearest(&[None, None]), None);
        let t0 = Instant::now();
        let mut choice = Choice::new(4, 1);
        choice.choose(1, t0);
        assert!(choice.current_usable());
        choice.fail(1, t0);
        assert!(!choice.current_usable());
        assert_eq!(choice.candidates(&rtts, t0), vec![0, 3, 2]);
        choice.choose(0, t0);
        assert_eq!(choice.switches(), 1);
        // Site 1 failed just now: not a candidate; once the hold is over it is.
        choice.fail(0, t0);
        assert_eq!(choice.candidates(&rtts, t0), vec![3, 2]);
        assert_eq!(choice.candidates(&rtts, t0 + FAILED_HOLD), vec![1, 3, 2]);
        // Every other site failed recently: all are tried, the current last.
        for i in [1, 2, 3] {
            choice.fail(i, t0);
        }
        assert_eq!(choice.candidates(&rtts, t0), vec![1, 3, 2, 0]);
    }

    #[test]
    fn a_client_away_from_its_nearest_site_probes_it_every_so_often() {
        let rtts = [ms(25), ms(1), ms(100)];
        let t0 = Instant::now();
        let mut choice = Choice::new(3, 1);
        choice.choose(1, t0);
        assert!(choice.probe(&rtts, t0 + PROBE_EVERY).is_empty(), "on the nearest: nothing to probe");
        for k in 2..REMEASURE_ALL_EVERY {
            assert!(choice.probe(&rtts, t0 + PROBE_EVERY * k).is_empty());
        }
        assert_eq!(choice.probe(&rtts, t0 + PROBE_EVERY * REMEASURE_ALL_EVERY), vec![0, 2], "all, now and then");
        // Just connected: all of them, soon.
        choice.remeasure_soon(t0);
        assert!(choice.probe(&rtts, t0 + FIRST_PROBE_AFTER / 2).is_empty());
        assert_eq!(choice.probe(&rtts, t0 + FIRST_PROBE_AFTER), vec![0, 2]);
        assert!(choice.probe(&rtts, t0 + FIRST_PROBE_AFTER + PROBE_EVERY).is_empty());
        choice.choose(2, t0);
        assert!(choice.probe(&rtts, t0).is_empty(), "not due yet");
        assert_eq!(choice.probe(&rtts, t0 + PROBE_EVERY), vec![1, 0]);
        assert!(choice.probe(&rtts, t0 + PROBE_EVERY).is_empty(), "scheduled again");
        assert_eq!(choice.probe(&rtts, t0 + 2 * PROBE_EVERY), vec![1, 0]);
        // A site that failed lately is left alone; one never measured is probed.
        choice.fail(1, t0 + 3 * PROBE_EVERY);
        assert_eq!(choice.probe(&rtts, t0 + 3 * PROBE_EVERY), vec![0]);
        let unmeasured = [ms(25), None, ms(100)];
        choice.choose(0, t0);
        assert_eq!(choice.probe(&unmeasured, t0 + 5 * PROBE_EVERY), vec![1]);
        // Moving needs a clear difference.
        assert!(choice.clearly_nearer(&[ms(25), ms(1), None], 1));
        assert!(!choice.clearly_nearer(&[ms(25), ms(21), None], 1));
        assert!(!choice.clearly_nearer(&[Some(Duration::from_micros(900)), Some(Duration::from_micros(600)), None], 1));
        assert!(!choice.clearly_nearer(&[ms(25), ms(1), None], 2));
    }
}
