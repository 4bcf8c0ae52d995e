//! One NTP server as a sans-IO state machine: when to poll, what to send,
//! what to make of a reply, and what went wrong how often.
//!
//! The shell drives it and is the only one to read clocks or touch sockets:
//!
//! ```text
//! loop:
//!     now = reader clock
//!     if source.poll_due(now):
//!         send(source.start_request(now, random u64))    # now is t1: read before sending
//!     wait for a datagram from the server or until source.next_poll(now)
//!     on a datagram: t4 = reader clock                   # read after receiving
//!         source.handle_reply(bytes, t4, realtime as pivot)
//!     bound model: source.best(now, drift)
//! ```
//!
//! At most one request is outstanding. A new poll supersedes an unanswered
//! one (counted as a timeout), so a late reply to it fails the cookie check.
//! A reply that echoes the cookie spends the request whatever the verdict,
//! so a replayed or duplicated reply finds no request and is rejected; one
//! that does not echo it (spoofed, or for an older request) leaves the
//! request outstanding, so a forger cannot cancel the genuine answer.
//!
//! Kiss-o'-death codes are obeyed (RFC 5905 §7.4): `RATE` doubles the poll
//! interval (up to 1024 s, for good); `DENY` and `RSTR` stop the polling.

use std::time::Duration;

use tsod_proto::{DriftModel, MonoInstant, Timestamp};

use super::filter::{FilterConfig, SampleFilter};
use super::packet::{KissCode, NtpPacket, PACKET_LEN, log2_seconds_ceil};
use super::{NtpConfigError, NtpParams, NtpReject, NtpSample, PendingRequest, WireTimes, sample_from_answer};

/// The shortest poll interval accepted: 1/16 s (NTP poll exponent −4), for
/// a server that allows it (a stratum 1 on the LAN, your own).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_micros(62_500);
/// The longest poll interval accepted: 1024 s.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1024);

/// Everything one server's source is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpSourceConfig {
    /// What the bound assumes and what replies are accepted.
    pub params: NtpParams,
    /// How many samples to keep and for how long.
    pub filter: FilterConfig,
    /// Time between polls, [`MIN_POLL_INTERVAL`]..=[`MAX_POLL_INTERVAL`].
    /// Default 1 s: tight bounds need fresh samples. Only poll servers that
    /// allow it (your own, or ones whose operators agreed).
    pub poll_interval: Duration,
}

impl Default for NtpSourceConfig {
    fn default() -> Self {
        Self { params: NtpParams::default(), filter: FilterConfig::default(), poll_interval: Duration::from_secs(1) }
    }
}

/// Per-server counters: requests, outcomes, and each kind of rejection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NtpCounters {
    requests: u64,
    accepted: u64,
    timeouts: u64,
    rejected: [u64; NtpReject::COUNT],
}

impl NtpCounters {
    /// Requests started.
    pub const fn requests(&self) -> u64 {
        self.requests
    }

    /// Replies turned into samples.
    pub const fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Requests superseded by the next poll without an answer.
    pub const fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Replies rejected for the same reason as `kind` (its data ignored).
    pub fn rejected(&self, kind: &NtpReject) -> u64 {
        self.rejected.get(kind.index()).copied().unwrap_or(0)
    }

    /// All replies rejected.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// `(name, count)` for every kind of rejection, in [`NtpReject::index`] order.
    pub fn rejections(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        NtpReject::NAMES.into_iter().zip(self.rejected.iter().copied())
    }

    fn record_rejection(&mut self, reason: &NtpReject) {
        if let Some(count) = self.rejected.get_mut(reason.index()) {
            *count = count.saturating_add(1);
        }
    }
}

/// One NTP server's poll schedule, outstanding request, samples and counters.
#[derive(Debug)]
pub struct NtpSource {
    config: NtpSourceConfig,
    poll_interval: Duration,
    last_poll: Option<MonoInstant>,
    pending: Option<PendingRequest>,
    denied: Option<KissCode>,
    filter: SampleFilter,
    counters: NtpCounters,
}

impl NtpSource {
    /// A source that has not polled yet, or an error if `config` is invalid.
    pub fn new(config: NtpSourceConfig) -> Result<Self, NtpConfigError> {
        config.params.validate()?;
        config.filter.validate()?;
        let interval = config.poll_interval;
        if !(MIN_POLL_INTERVAL..=MAX_POLL_INTERVAL).contains(&interval) {
            return Err(NtpConfigError::PollIntervalOutOfRange(interval));
        }
        Ok(Self {
            config,
            poll_interval: interval,
            last_poll: None,
            pending: None,
            denied: None,
            filter: SampleFilter::new(config.filter),
            counters: NtpCounters::default(),
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &NtpSourceConfig {
        &self.config
    }

    /// The current poll interval: the configured one, doubled per `RATE` kiss.
    pub const fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// When the next request is due: `now` before the first poll, `None`
    /// once the server has told us to stop (`DENY`, `RSTR`).
    pub fn next_poll(&self, now: MonoInstant) -> Option<MonoInstant> {
        if self.denied.is_some() {
            return None;
        }
        Some(
            self.last_poll
                .map_or(now, |last| last.checked_add(self.poll_interval).unwrap_or(MonoInstant::from_nanos(u64::MAX))),
        )
    }

    /// Whether a request is due at `now`.
    pub fn poll_due(&self, now: MonoInstant) -> bool {
        self.next_poll(now).is_some_and(|due| due <= now)
    }

    /// Starts a request at reader instant `now` (t1: read before sending)
    /// carrying `cookie` (random, from a CSPRNG); returns the bytes to send.
    /// An unanswered earlier request is abandoned and counted as a timeout.
    pub fn start_request(&mut self, now: MonoInstant, cookie: u64) -> [u8; PACKET_LEN] {
        if self.pending.is_some() {
            self.counters.timeouts = self.counters.timeouts.saturating_add(1);
        }
        let request = PendingRequest::new(cookie, now);
        let bytes = request.to_bytes(poll_exponent(self.poll_interval));
        self.pending = Some(request);
        self.last_poll = Some(now);
        self.counters.requests = self.counters.requests.saturating_add(1);
        bytes
    }

    /// Judges a datagram from this server received at reader instant `t4`
    /// (read after receiving), resolving the NTP era with `pivot` (any
    /// clock within 68 years). An accepted sample is kept in the filter.
    pub fn handle_reply(&mut self, reply: &[u8], t4: MonoInstant, pivot: Timestamp) -> Result<NtpSample, NtpReject> {
        self.handle_reply_with(reply, t4, pivot, &WireTimes::NONE, |sample| sample)
    }

    /// [`NtpSource::handle_reply`], with what the kernel's timestamps of
    /// this exchange add (`wire`), and with `convert` applied to an
    /// accepted sample before it is kept (the daemon brings it onto the
    /// service timescale there, so the filter carries smeared time, which
    /// has no repeated or skipped second).
    pub fn handle_reply_with(
        &mut self,
        reply: &[u8],
        t4: MonoInstant,
        pivot: Timestamp,
        wire: &WireTimes,
        convert: impl FnOnce(NtpSample) -> NtpSample,
    ) -> Result<NtpSample, NtpReject> {
        let verdict = self.judge(reply, t4, pivot, wire).map(convert);
        match &verdict {
            Ok(sample) => {
                self.counters.accepted = self.counters.accepted.saturating_add(1);
                self.filter.push(*sample);
            }
            Err(reason) => {
                self.counters.record_rejection(reason);
                if let NtpReject::KissOfDeath(code) = reason {
                    self.obey_kiss(*code);
                }
            }
        }
        verdict
    }

    fn judge(
        &mut self,
        reply: &[u8],
        t4: MonoInstant,
        pivot: Timestamp,
        wire: &WireTimes,
    ) -> Result<NtpSample, NtpReject> {
        let pending = self.pending.as_ref().ok_or(NtpReject::NoRequestOutstanding)?;
        let packet = NtpPacket::decode(reply)?;
        if !pending.is_answered_by(&packet) {
            return Err(NtpReject::OriginMismatch);
        }
        // Answered: the request is spent whatever the verdict.
        let request = self.pending.take().ok_or(NtpReject::NoRequestOutstanding)?;
        sample_from_answer(&request, &packet, t4, pivot, &self.config.params, wire)
    }

    fn obey_kiss(&mut self, code: KissCode) {
        if code.is_denial() {
            self.denied = Some(code);
        } else if code == KissCode::RATE {
            self.poll_interval = self.poll_interval.saturating_mul(2).min(MAX_POLL_INTERVAL);
        }
    }

    /// The narrowest of this server's recent samples carried to `now`; see
    /// [`SampleFilter::best`].
    pub fn best(&self, now: MonoInstant, drift: &DriftModel) -> Option<NtpSample> {
        self.filter.best(now, drift)
    }

    /// The kept samples.
    pub const fn filter(&self) -> &SampleFilter {
        &self.filter
    }

    /// The request in flight, if any.
    pub const fn pending(&self) -> Option<&PendingRequest> {
        self.pending.as_ref()
    }

    /// The kiss code with which the server told us to stop, if it did.
    pub const fn denied(&self) -> Option<KissCode> {
        self.denied
    }

    /// The counters.
    pub const fn counters(&self) -> &NtpCounters {
        &self.counters
    }

    /// Forgets the samples and the request in flight: after a disruption
    /// (suspend, VM migration) the reader clock no longer relates to them.
    /// The schedule, back-off and counters stay.
    pub fn reset(&mut self) {
        self.filter.clear();
        self.pending = None;
    }
}

/// The poll exponent advertised in requests: ⌊log2(interval in seconds)⌋
/// within −4..=10.
fn poll_exponent(interval: Duration) -> i8 {
    let mut exponent: i8 = -4;
    while exponent < 10 && log2_seconds_ceil(exponent.saturating_add(1)) <= interval {
        exponent = exponent.saturating_add(1);
    }
    exponent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ntp::packet::{Mode, NtpTimestamp, ReferenceId};
    use crate::sources::ntp::tests::{COOKIE, Exchange};
    use tsod_proto::Ppb;

    const MS: u64 = 1_000_000;

    fn source() -> NtpSource {
        NtpSource::new(NtpSourceConfig::default()).unwrap()
    }

    /// A source with `ex`'s request outstanding.
    fn polled(ex: &Exchange) -> NtpSource {
        let mut s = source();
        let bytes = s.start_request(ex.request().sent_at(), COOKIE);
        assert_eq!(NtpPacket::decode(&bytes).unwrap().transmit.to_bits(), COOKIE);
        s
    }

    fn kiss(ex: &Exchange, code: [u8; 4]) -> [u8; PACKET_LEN] {
        let mut p = ex.packet();
        p.stratum = 0;
        p.reference_id = ReferenceId(code);
        p.encode()
    }

    #[test]
    fn polls_on_schedule_with_time_passed_in() {
        let mut s = source();
        let t0 = MonoInstant::from_nanos(5_000 * MS);
        assert!(s.poll_due(t0), "the first poll is due at once");
        assert_eq!(s.next_poll(t0), Some(t0));
        let bytes = s.start_request(t0, 42);
        let request = NtpPacket::decode(&bytes).unwrap();
        assert_eq!((request.version, request.mode, request.poll), (4, Mode::Client, 0));
        assert_eq!(request.transmit.to_bits(), 42, "the cookie, not our clock, is on the wire");
        assert_eq!(s.next_poll(t0), MonoInstant::from_nanos(6_000 * MS).into());
        assert!(!s.poll_due(MonoInstant::from_nanos(5_999 * MS)));
        assert!(s.poll_due(MonoInstant::from_nanos(6_000 * MS)));
        assert_eq!(s.pending().map(PendingRequest::cookie), Some(42));
    }

    #[test]
    fn a_reply_is_accepted_once_and_feeds_the_filter() {
        let ex = Exchange::exact(2 * MS, 10_000, 3 * MS);
        let mut s = polled(&ex);
        let reply = ex.packet().encode();
        let sample = s.handle_reply(&reply, ex.t4(), ex.pivot()).unwrap();
        assert!(sample.sample.interval.contains(ex.truth()));
        assert_eq!(s.best(ex.t4(), &DriftModel::ZERO), Some(sample));
        let later = ex.t4().checked_add(Duration::from_secs(1)).unwrap();
        assert!(s.best(later, &DriftModel::symmetric(Ppb::from_ppm(100)).unwrap()).is_some());
        // The same reply again (a replay or a duplicate) finds no request.
        assert_eq!(s.handle_reply(&reply, ex.t4(), ex.pivot()), Err(NtpReject::NoRequestOutstanding));
        assert_eq!(s.counters().accepted(), 1);
        assert_eq!(s.counters().rejected(&NtpReject::NoRequestOutstanding), 1);
        assert_eq!(s.filter().len(), 1);
    }

    #[test]
    fn spoofed_replies_do_not_cancel_the_request() {
        let ex = Exchange::exact(2 * MS, 10_000, 3 * MS);
        let mut s = polled(&ex);
        let mut forged = ex.packet();
        forged.origin = NtpTimestamp::from_bits(COOKIE.wrapping_add(1));
        assert_eq!(s.handle_reply(&forged.encode(), ex.t4(), ex.pivot()), Err(NtpReject::OriginMismatch));
        assert_eq!(s.handle_reply(&[0u8; 12], ex.t4(), ex.pivot()).map_err(|r| r.name()), Err("malformed"));
        assert!(s.pending().is_some(), "still waiting for the genuine answer");
        assert!(s.handle_reply(&ex.packet().encode(), ex.t4(), ex.pivot()).is_ok());
        // A reply that echoes the cookie but is rejected still spends the request.
        let mut s = polled(&ex);
        let mut unsynced = ex.packet();
        unsynced.stratum = 16;
        assert_eq!(s.handle_reply(&unsynced.encode(), ex.t4(), ex.pivot()), Err(NtpReject::BadStratum(16)));
        assert!(s.pending().is_none());
    }

    #[test]
    fn a_new_poll_supersedes_an_unanswered_one() {
        let ex = Exchange::exact(2 * MS, 10_000, 3 * MS);
        let mut s = polled(&ex);
        let t1 = ex.request().sent_at();
        let _ = s.start_request(t1.checked_add(Duration::from_secs(1)).unwrap(), COOKIE ^ 0xFF);
        assert_eq!(s.counters().timeouts(), 1);
        assert_eq!(s.counters().requests(), 2);
        // The late answer to the first request no longer matches.
        assert_eq!(s.handle_reply(&ex.packet().encode(), ex.t4(), ex.pivot()), Err(NtpReject::OriginMismatch));
        assert_eq!(s.counters().rejected_total(), 1);
        let names: Vec<_> = s.counters().rejections().filter(|(_, n)| *n > 0).collect();
        assert_eq!(names, [("origin-mismatch", 1)]);
    }

    #[test]
    fn kiss_codes_are_obeyed() {
        let ex = Exchange::exact(2 * MS, 10_000, 3 * MS);
        let mut s = polled(&ex);
        let verdict = s.handle_reply(&kiss(&ex, *b"RATE"), ex.t4(), ex.pivot());
        assert_eq!(verdict, Err(NtpReject::KissOfDeath(KissCode::RATE)));
        assert_eq!(s.poll_interval(), Duration::from_secs(2));
        for _ in 0..20 {
            let _ = s.start_request(ex.request().sent_at(), COOKIE);
            let _ = s.handle_reply(&kiss(&ex, *b"RATE"), ex.t4(), ex.pivot());
        }
        assert_eq!(s.poll_interval(), MAX_POLL_INTERVAL, "backs off up to 1024 s");
        let _ = s.start_request(ex.request().sent_at(), COOKIE);
        assert_eq!(
            s.handle_reply(&kiss(&ex, *b"XYZW"), ex.t4(), ex.pivot()),
            Err(NtpReject::KissOfDeath(KissCode(*b"XYZW")))
        );
        assert_eq!(s.denied(), None, "unknown codes are only counted");
        let _ = s.start_request(ex.request().sent_at(), COOKIE);
        let _ = s.handle_reply(&kiss(&ex, *b"DENY"), ex.t4(), ex.pivot());
        assert_eq!(s.denied(), Some(KissCode::DENY));
        assert_eq!(s.next_poll(ex.t4()), None);
        assert!(!s.poll_due(MonoInstant::from_nanos(u64::MAX)));
        assert_eq!(s.counters().rejected(&NtpReject::KissOfDeath(KissCode::RSTR)), 23, "all codes share a counter");
    }

    #[test]
    fn reset_forgets_samples_and_the_request() {
        let ex = Exchange::exact(2 * MS, 10_000, 3 * MS);
        let mut s = polled(&ex);
        assert!(s.handle_reply(&ex.packet().encode(), ex.t4(), ex.pivot()).is_ok());
        let _ = s.start_request(ex.t4(), COOKIE);
        s.reset();
        assert!(s.pending().is_none() && s.filter().is_empty());
        assert_eq!(s.best(ex.t4(), &DriftModel::ZERO), None);
        assert_eq!(s.counters().accepted(), 1, "counters survive a reset");
    }

    #[test]
    fn configuration_is_checked() {
        let bad_poll = |d| NtpSource::new(NtpSourceConfig { poll_interval: d, ..NtpSourceConfig::default() }).err();
        assert_eq!(
            bad_poll(Duration::from_millis(62)),
            Some(NtpConfigError::PollIntervalOutOfRange(Duration::from_millis(62)))
        );
        assert_eq!(
            bad_poll(Duration::from_secs(1025)),
            Some(NtpConfigError::PollIntervalOutOfRange(Duration::from_secs(1025)))
        );
        assert_eq!(bad_poll(MIN_POLL_INTERVAL), None);
        assert_eq!(bad_poll(MAX_POLL_INTERVAL), None);
        let bad_filter = NtpSourceConfig {
            filter: FilterConfig { capacity: 0, ..FilterConfig::default() },
            ..NtpSourceConfig::default()
        };
        assert_eq!(NtpSource::new(bad_filter).err(), Some(NtpConfigError::FilterCapacity(0)));
        let bad_drift = NtpSourceConfig {
            params: NtpParams { local_drift: Ppb::new(-1), ..NtpParams::default() },
            ..NtpSourceConfig::default()
        };
        assert!(matches!(NtpSource::new(bad_drift), Err(NtpConfigError::DriftOutOfRange { name: "local-drift", .. })));
    }

    #[test]
    fn poll_exponents() {
        assert_eq!(poll_exponent(MIN_POLL_INTERVAL), -4);
        assert_eq!(poll_exponent(Duration::from_millis(125)), -3);
        assert_eq!(poll_exponent(Duration::from_millis(999)), -1);
        assert_eq!(poll_exponent(Duration::from_secs(1)), 0);
        assert_eq!(poll_exponent(Duration::from_secs(64)), 6);
        assert_eq!(poll_exponent(MAX_POLL_INTERVAL), 10);
    }
}
