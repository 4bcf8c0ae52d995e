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
use super::packet::{KissCode, NtpPacket, NtpShort, PACKET_LEN, log2_seconds_ceil};
use super::{
    NtpConfigError, NtpParams, NtpReject, NtpSample, PendingRequest, ReplyMode, WireTimes, sample_from_answer,
};

/// The shortest poll interval accepted: 1/64 s (NTP poll exponent −6, as
/// chrony's `minpoll`), for
/// a server that allows it (a stratum 1 on the LAN, your own).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_micros(15_625);
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
    /// Ask for interleaved replies (RFC 9769): each reply then reports when
    /// the server's previous reply really left, which takes the server's
    /// send path out of the round trip. Only for servers that take that
    /// timestamp before the reply reaches the wire, in the kernel or the
    /// NIC (chrony on Linux does); see the module doc of [`super`],
    /// "Interleaved mode". Default off.
    pub interleaved: bool,
}

impl Default for NtpSourceConfig {
    fn default() -> Self {
        Self {
            params: NtpParams::default(),
            filter: FilterConfig::default(),
            poll_interval: Duration::from_secs(1),
            interleaved: false,
        }
    }
}

/// Per-server counters: requests, outcomes, and each kind of rejection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NtpCounters {
    requests: u64,
    accepted: u64,
    timeouts: u64,
    interleaved: u64,
    interleaved_refused: u64,
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

    /// Interleaved replies whose report of the earlier reply's departure
    /// became a sample of that earlier exchange.
    pub const fn interleaved(&self) -> u64 {
        self.interleaved
    }

    /// Interleaved replies whose report of the earlier departure was
    /// refused (it contradicts the earlier exchange); the reply's own
    /// exchange may still have been accepted.
    pub const fn interleaved_refused(&self) -> u64 {
        self.interleaved_refused
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
    /// The last exchange whose reply was accepted: the next interleaved
    /// request names it.
    answered: Option<Answered>,
}

/// An exchange whose reply was accepted, kept for the interleaved reply
/// that will report when that reply really left the server.
#[derive(Clone, Copy, Debug)]
struct Answered {
    /// t1.
    sent_at: MonoInstant,
    /// t4.
    received_at: MonoInstant,
    /// What the kernel's timestamps added to it.
    wire: WireTimes,
    /// The reply as received (its receive timestamp names the exchange).
    reply: NtpPacket,
}

/// What an accepted reply backs.
struct Judged {
    /// This exchange's sample.
    current: NtpSample,
    /// For an interleaved reply, the earlier exchange's sample with the
    /// departure the reply reports (or why that was refused).
    earlier: Option<Result<NtpSample, NtpReject>>,
    /// This exchange, for the next interleaved request.
    answered: Answered,
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
            answered: None,
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
        let request = match self.answered.as_ref().filter(|_| self.config.interleaved) {
            Some(earlier) => PendingRequest::interleaved(cookie, now, earlier.reply.receive.to_bits()),
            None => PendingRequest::new(cookie, now),
        };
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
    /// this exchange add (`wire`), and with `convert` applied to each
    /// accepted sample before it is kept (the daemon brings it onto the
    /// service timescale there, so the filter carries smeared time, which
    /// has no repeated or skipped second). Returns this exchange's sample;
    /// an interleaved reply also keeps one for the earlier exchange it
    /// reports on (counted in [`NtpCounters::interleaved`]).
    pub fn handle_reply_with(
        &mut self,
        reply: &[u8],
        t4: MonoInstant,
        pivot: Timestamp,
        wire: &WireTimes,
        mut convert: impl FnMut(NtpSample) -> NtpSample,
    ) -> Result<NtpSample, NtpReject> {
        match self.judge(reply, t4, pivot, wire) {
            Ok(judged) => {
                match judged.earlier {
                    Some(Ok(earlier)) => {
                        self.counters.interleaved = self.counters.interleaved.saturating_add(1);
                        self.filter.push(convert(earlier));
                    }
                    Some(Err(_)) => {
                        self.counters.interleaved_refused = self.counters.interleaved_refused.saturating_add(1)
                    }
                    None => {}
                }
                let current = convert(judged.current);
                self.counters.accepted = self.counters.accepted.saturating_add(1);
                self.filter.push(current);
                self.answered = Some(judged.answered);
                Ok(current)
            }
            Err(reason) => {
                self.counters.record_rejection(&reason);
                if let NtpReject::KissOfDeath(code) = reason {
                    self.obey_kiss(code);
                }
                Err(reason)
            }
        }
    }

    fn judge(
        &mut self,
        reply: &[u8],
        t4: MonoInstant,
        pivot: Timestamp,
        wire: &WireTimes,
    ) -> Result<Judged, NtpReject> {
        let pending = self.pending.as_ref().ok_or(NtpReject::NoRequestOutstanding)?;
        let packet = NtpPacket::decode(reply)?;
        let mode = pending.answer(&packet).ok_or(NtpReject::OriginMismatch)?;
        // Answered: the request is spent whatever the verdict, and the
        // earlier exchange is not named again.
        let request = self.pending.take().ok_or(NtpReject::NoRequestOutstanding)?;
        let earlier = self.answered.take();
        let params = &self.config.params;
        let answered = Answered { sent_at: request.sent_at(), received_at: t4, wire: *wire, reply: packet };
        if mode == ReplyMode::Basic {
            let current = sample_from_answer(&request, &packet, t4, pivot, params, wire)?;
            return Ok(Judged { current, earlier: None, answered });
        }
        // Interleaved: the transmit timestamp is not this exchange's, so
        // this one is bounded by T2 alone (T3 := T2, no residence credit).
        let current =
            sample_from_answer(&request, &NtpPacket { transmit: packet.receive, ..packet }, t4, pivot, params, wire)?;
        let earlier = earlier
            .filter(|e| Some(e.reply.receive.to_bits()) == request.names())
            .map(|e| earlier_sample(&e, &packet, pivot, params));
        Ok(Judged { current, earlier, answered })
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
        self.answered = None;
    }
}

/// The earlier exchange `earlier`, bounded with the departure of its reply
/// that the interleaved `reply` reports: its header, with the wider of the
/// two replies' root delay, root dispersion and precision (the server's
/// error claim may have grown since).
fn earlier_sample(
    earlier: &Answered,
    reply: &NtpPacket,
    pivot: Timestamp,
    params: &NtpParams,
) -> Result<NtpSample, NtpReject> {
    let wider = |a: NtpShort, b: NtpShort| NtpShort::from_bits(a.to_bits().max(b.to_bits()));
    let header = NtpPacket {
        transmit: reply.transmit,
        root_delay: wider(earlier.reply.root_delay, reply.root_delay),
        root_dispersion: wider(earlier.reply.root_dispersion, reply.root_dispersion),
        precision: earlier.reply.precision.max(reply.precision),
        ..earlier.reply
    };
    let request = PendingRequest::new(earlier.reply.origin.to_bits(), earlier.sent_at);
    sample_from_answer(&request, &header, earlier.received_at, pivot, params, &earlier.wire)
}

/// The poll exponent advertised in requests: ⌊log2(interval in seconds)⌋
/// within −6..=10.
fn poll_exponent(interval: Duration) -> i8 {
    let mut exponent: i8 = -6;
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
            bad_poll(Duration::from_millis(15)),
            Some(NtpConfigError::PollIntervalOutOfRange(Duration::from_millis(15)))
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

    /// 20 µs in 2⁻³² s units, rounded up.
    const SEND_PATH_FIXED: u64 = 85_900;

    fn interleaving() -> NtpSource {
        NtpSource::new(NtpSourceConfig { interleaved: true, ..NtpSourceConfig::default() }).unwrap()
    }

    /// Exchange `a` answered in basic mode by a server whose T3 is read 20 µs
    /// before its reply really left; returns that basic reply.
    fn answered_basic(s: &mut NtpSource, a: &Exchange) -> NtpPacket {
        let first = NtpPacket::decode(&s.start_request(a.request().sent_at(), COOKIE)).unwrap();
        assert_eq!(
            (first.origin, first.receive),
            (NtpTimestamp::ZERO, NtpTimestamp::ZERO),
            "the first request is basic"
        );
        let mut basic = a.packet();
        basic.transmit = NtpTimestamp::from_bits(basic.transmit.to_bits() - SEND_PATH_FIXED);
        assert!(s.handle_reply(&basic.encode(), a.t4(), a.pivot()).unwrap().sample.interval.contains(a.truth()));
        basic
    }

    /// The exchange one second after `a`, and its request's cookie.
    fn next_exchange(a: &Exchange) -> (Exchange, u64) {
        (Exchange { theta1: a.theta1 + 1_000_000_000, m1: a.m1 + 1_000 * MS, ..*a }, COOKIE ^ 0xFFFF)
    }

    #[test]
    fn interleaved_replies_report_the_earlier_departure() {
        let a = Exchange::exact(2 * MS, 50_000, 3 * MS);
        let mut s = interleaving();
        let basic = answered_basic(&mut s, &a);
        let basic_width = s.filter().iter().next().unwrap().sample.interval.width();

        let (b, cookie) = next_exchange(&a);
        let request = NtpPacket::decode(&s.start_request(b.request().sent_at(), cookie)).unwrap();
        assert_eq!(request.origin, basic.receive, "names exchange a by the T2 its reply carried");
        assert_eq!((request.receive.to_bits(), request.transmit.to_bits()), (!cookie, cookie));
        // The server remembers a, and reports when its reply really left.
        let mut reply = b.packet();
        reply.origin = NtpTimestamp::from_bits(!cookie);
        reply.transmit = a.packet().transmit;
        let current = s.handle_reply(&reply.encode(), b.t4(), b.pivot()).unwrap();
        assert!(current.sample.interval.contains(b.truth()), "b is bounded by its T2 alone");
        assert_eq!((s.counters().interleaved(), s.counters().accepted()), (1, 2));

        let kept: Vec<_> = s.filter().iter().map(|k| (k.sample.at, k.sample.interval)).collect();
        assert_eq!(kept.len(), 3, "a basic, a interleaved, b: {kept:?}");
        let (at, earlier) = kept[1];
        assert_eq!(at, a.t4());
        assert!(earlier.contains(a.truth()));
        let narrower = basic_width.checked_sub(earlier.width()).unwrap();
        assert!(narrower >= Duration::from_micros(19), "the send path is out of the round trip: {narrower:?}");
        // The next request names b.
        let (c, cookie) = next_exchange(&b);
        let request = NtpPacket::decode(&s.start_request(c.request().sent_at(), cookie)).unwrap();
        assert_eq!(request.origin, reply.receive);
    }

    #[test]
    fn interleaved_requests_accept_basic_answers_and_refuse_forgeries() {
        let a = Exchange::exact(2 * MS, 50_000, 3 * MS);
        let (b, cookie) = next_exchange(&a);
        // A server that forgot a answers in basic mode: judged as basic.
        let mut s = interleaving();
        answered_basic(&mut s, &a);
        let _ = s.start_request(b.request().sent_at(), cookie);
        let mut basic = b.packet();
        basic.origin = NtpTimestamp::from_bits(cookie);
        let sample = s.handle_reply(&basic.encode(), b.t4(), b.pivot()).unwrap();
        assert!(sample.sample.interval.contains(b.truth()));
        assert_eq!(s.counters().interleaved(), 0);

        // Echoing neither cookie: refused, and the request still waits.
        let mut s = interleaving();
        answered_basic(&mut s, &a);
        let _ = s.start_request(b.request().sent_at(), cookie);
        let mut forged = b.packet();
        forged.origin = NtpTimestamp::from_bits(!cookie ^ 1);
        assert_eq!(s.handle_reply(&forged.encode(), b.t4(), b.pivot()), Err(NtpReject::OriginMismatch));
        assert!(s.pending().is_some());

        // A departure before a's T2 contradicts a: that sample is refused
        // and counted, b's own is kept.
        let mut reply = b.packet();
        reply.origin = NtpTimestamp::from_bits(!cookie);
        reply.transmit = NtpTimestamp::from_bits(a.packet().receive.to_bits() - SEND_PATH_FIXED);
        assert!(s.handle_reply(&reply.encode(), b.t4(), b.pivot()).is_ok());
        assert_eq!((s.counters().interleaved(), s.counters().interleaved_refused()), (0, 1));
        assert_eq!(s.filter().len(), 2);

        // A basic request's complement is no answer.
        let mut s = source();
        let _ = s.start_request(a.request().sent_at(), cookie);
        let mut reply = a.packet();
        reply.origin = NtpTimestamp::from_bits(!cookie);
        assert_eq!(s.handle_reply(&reply.encode(), a.t4(), a.pivot()), Err(NtpReject::OriginMismatch));
    }

    #[test]
    fn only_a_configured_source_after_an_answer_asks_for_interleaved_replies() {
        let a = Exchange::exact(2 * MS, 50_000, 3 * MS);
        let (b, cookie) = next_exchange(&a);
        let mut plain = source();
        answered_basic(&mut plain, &a);
        let request = NtpPacket::decode(&plain.start_request(b.request().sent_at(), cookie)).unwrap();
        assert_eq!((request.origin, request.receive), (NtpTimestamp::ZERO, NtpTimestamp::ZERO));
        // After a disruption, or a refused reply, there is nothing to name.
        let mut s = interleaving();
        answered_basic(&mut s, &a);
        s.reset();
        let request = NtpPacket::decode(&s.start_request(b.request().sent_at(), cookie)).unwrap();
        assert_eq!(request.origin, NtpTimestamp::ZERO);
        let mut unsynced = b.packet();
        unsynced.origin = NtpTimestamp::from_bits(cookie);
        unsynced.stratum = 16;
        assert!(s.handle_reply(&unsynced.encode(), b.t4(), b.pivot()).is_err());
        let request = NtpPacket::decode(&s.start_request(b.t4(), cookie ^ 1)).unwrap();
        assert_eq!(request.origin, NtpTimestamp::ZERO);
    }

    #[test]
    fn poll_exponents() {
        assert_eq!(poll_exponent(MIN_POLL_INTERVAL), -6);
        assert_eq!(poll_exponent(Duration::from_micros(62_500)), -4);
        assert_eq!(poll_exponent(Duration::from_millis(125)), -3);
        assert_eq!(poll_exponent(Duration::from_millis(999)), -1);
        assert_eq!(poll_exponent(Duration::from_secs(1)), 0);
        assert_eq!(poll_exponent(Duration::from_secs(64)), 6);
        assert_eq!(poll_exponent(MAX_POLL_INTERVAL), 10);
    }
}
