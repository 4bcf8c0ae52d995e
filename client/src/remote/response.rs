//! The sans-IO half of [`RemoteClock`](super::RemoteClock): checking a
//! response against the request that was sent, widening a now-response by
//! the round trip, and the owned [`SiteStatus`] a status-response becomes.
//! Everything here takes bytes and reader-clock readings as arguments, so
//! it is tested without sockets or a runtime.

use tsod_proto::wire::{self, DecodeError, ErrorResponse, Message, NowResponse, StatusResponse};
use tsod_proto::{ClockStatus, Ppb, TimeInterval, Timescale, Timestamp};

use super::RemoteError;

/// Parts per billion in one.
const BILLION: u128 = 1_000_000_000;

/// `[earliest, latest + ⌈round_trip · (10⁹ + ρ_c) / 10⁹⌉]` (SPEC.md §4.7 with
/// f_c = 0), in exact integer arithmetic. `None` if ρ_c is negative or the
/// result would pass the end of the timestamp range: never a wrong bound.
pub(crate) fn widen_for_round_trip(
    server: TimeInterval,
    round_trip_nanos: u64,
    drift_bound: Ppb,
) -> Option<TimeInterval> {
    let rho = u128::try_from(drift_bound.get()).ok()?;
    let widening = u128::from(round_trip_nanos).checked_mul(BILLION.checked_add(rho)?)?.div_ceil(BILLION);
    let latest = server.latest().as_nanos().checked_add(u64::try_from(widening).ok()?)?;
    TimeInterval::new(server.earliest(), Timestamp::from_nanos(latest)).ok()
}

/// The [`NowResponse`] in `bytes` if it answers request `sent` with a bounded
/// status on `timescale`; otherwise the error SPEC.md §6 calls for.
pub(crate) fn check_now_response(bytes: &[u8], sent: u64, timescale: Timescale) -> Result<NowResponse, RemoteError> {
    match wire::decode(bytes).map_err(decode_error)? {
        Message::NowResponse(response) => {
            check_request_id(sent, response.request_id)?;
            check_timescale(timescale, response.timescale)?;
            match response.status {
                ClockStatus::Synchronized | ClockStatus::Degraded | ClockStatus::FreeRunning => Ok(response),
                ClockStatus::Unsynchronized => Err(RemoteError::Unsynchronized { message: String::new() }),
                ClockStatus::Disrupted => Err(RemoteError::Disrupted { message: String::new() }),
            }
        }
        Message::Error(error) => Err(error_response(&error, sent)),
        other => Err(RemoteError::UnexpectedKind { expected: "now-response", received: other.kind().name() }),
    }
}

/// The site report in `bytes`, owned, if it answers status request `sent`
/// on `timescale`.
pub(crate) fn check_status_response(bytes: &[u8], sent: u64, timescale: Timescale) -> Result<SiteStatus, RemoteError> {
    match wire::decode(bytes).map_err(decode_error)? {
        Message::StatusResponse(StatusResponse { request_id, report }) => {
            check_request_id(sent, request_id)?;
            check_timescale(timescale, report.timescale)?;
            Ok(SiteStatus::from_wire(&report))
        }
        Message::Error(error) => Err(error_response(&error, sent)),
        other => Err(RemoteError::UnexpectedKind { expected: "status-response", received: other.kind().name() }),
    }
}

/// SPEC.md §6: a response that does not decode fails the request, and an
/// unknown timescale is a timescale mismatch.
fn decode_error(error: DecodeError) -> RemoteError {
    match error {
        DecodeError::UnknownTimescale { code, .. } => {
            RemoteError::TimescaleMismatch { message: format!("the response carries timescale code {code}") }
        }
        other => RemoteError::Decode(other),
    }
}

fn check_request_id(sent: u64, received: u64) -> Result<(), RemoteError> {
    if sent == received { Ok(()) } else { Err(RemoteError::RequestIdMismatch { sent, received }) }
}

fn check_timescale(expected: Timescale, received: Timescale) -> Result<(), RemoteError> {
    if expected == received {
        Ok(())
    } else {
        Err(RemoteError::TimescaleMismatch { message: format!("timescale code {}", received.code()) })
    }
}

/// An error response as the typed error it stands for. Its request id must
/// be the one sent, or 0 when the server could not read the request (§4.9).
fn error_response(error: &ErrorResponse<'_>, sent: u64) -> RemoteError {
    if error.request_id != 0 && error.request_id != sent {
        return RemoteError::RequestIdMismatch { sent, received: error.request_id };
    }
    let message = error.message.to_owned();
    match error.code {
        wire::ErrorCode::Unsynchronized => RemoteError::Unsynchronized { message },
        wire::ErrorCode::Disrupted => RemoteError::Disrupted { message },
        wire::ErrorCode::TimescaleMismatch => RemoteError::TimescaleMismatch { message },
        wire::ErrorCode::RateLimited => RemoteError::RateLimited { retry_after: error.retry_after, message },
        code => RemoteError::Refused { code, retry_after: error.retry_after, message },
    }
}

/// A site's report, as [`RemoteClock::site_report`](super::RemoteClock::site_report)
/// returns it: the status-response of SPEC.md §4.8, owned. The one owned
/// form of a site report ([`tsod_proto::observe::SiteSummary`]), shared with
/// the daemon's status file; its JSON form is the spec's report JSON
/// (kebab-case keys, durations in ns, `null` half-width when the site has no
/// valid bound). It carries no instant and is not a time source.
pub type SiteStatus = tsod_proto::observe::SiteSummary;

/// One of a site's sources, in a [`SiteStatus`].
pub type SourceStatus = tsod_proto::observe::SourceSummary;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tsod_proto::Offset;
    use tsod_proto::wire::{ErrorCode, Request, SourceReport};
    use tsod_proto::wire::{SiteReport, SourceKind};

    const UTC: Timescale = Timescale::UtcSmear24h;

    fn interval(e: u64, l: u64) -> TimeInterval {
        TimeInterval::new(Timestamp::from_nanos(e), Timestamp::from_nanos(l)).unwrap()
    }

    fn now_response(request_id: u64, status: ClockStatus) -> Vec<u8> {
        Message::NowResponse(NowResponse {
            request_id,
            interval: interval(1_000, 2_000),
            status,
            timescale: UTC,
            drift_bound: Ppb::from_ppm(15),
        })
        .to_vec()
        .unwrap()
    }

    fn error(request_id: u64, code: ErrorCode, retry_ms: u64, message: &str) -> Vec<u8> {
        let retry_after = (retry_ms > 0).then(|| Duration::from_millis(retry_ms));
        Message::Error(ErrorResponse { request_id, code, retry_after, message }).to_vec().unwrap()
    }

    #[test]
    fn widening_is_the_round_trip_at_the_client_drift_bound_rounded_up() {
        let server = interval(1_000, 2_000);
        // 1 ms at 100 ppm: 1 000 000 · 1.0001 = 1 000 100 ns exactly.
        let w = widen_for_round_trip(server, 1_000_000, Ppb::from_ppm(100)).unwrap();
        assert_eq!((w.earliest().as_nanos(), w.latest().as_nanos()), (1_000, 2_000 + 1_000_100));
        // 1 ns at 1 ppb: 1.000000001 rounds up to 2.
        let w = widen_for_round_trip(server, 1, Ppb::new(1)).unwrap();
        assert_eq!(w.latest().as_nanos(), 2_002);
        // A zero round trip or zero drift adds exactly the round trip.
        assert_eq!(widen_for_round_trip(server, 0, Ppb::from_ppm(100)).unwrap(), server);
        assert_eq!(widen_for_round_trip(server, 7, Ppb::ZERO).unwrap().latest().as_nanos(), 2_007);
    }

    #[test]
    fn widening_past_the_range_or_with_a_negative_bound_is_refused() {
        let top = interval(u64::MAX - 10, u64::MAX - 5);
        assert_eq!(widen_for_round_trip(top, 5, Ppb::ZERO).unwrap().latest().as_nanos(), u64::MAX);
        assert_eq!(widen_for_round_trip(top, 6, Ppb::ZERO), None);
        assert_eq!(widen_for_round_trip(interval(0, 0), u64::MAX, Ppb::from_ppm(1000)), None);
        assert_eq!(widen_for_round_trip(interval(0, 0), 1, Ppb::new(-1)), None);
        // The largest round trip at the largest bound does not overflow the
        // intermediate product.
        let w = widen_for_round_trip(interval(0, 0), u64::MAX / 2, Ppb::from_ppm(1000)).unwrap();
        assert!(w.latest().as_nanos() > u64::MAX / 2);
    }

    #[test]
    fn a_bounded_now_response_for_this_request_is_accepted() {
        for status in [ClockStatus::Synchronized, ClockStatus::Degraded, ClockStatus::FreeRunning] {
            let r = check_now_response(&now_response(7, status), 7, UTC).unwrap();
            assert_eq!((r.request_id, r.status, r.interval), (7, status, interval(1_000, 2_000)));
        }
    }

    #[test]
    fn unbounded_statuses_and_foreign_ids_are_errors() {
        let r = check_now_response(&now_response(7, ClockStatus::Unsynchronized), 7, UTC);
        assert!(matches!(r, Err(RemoteError::Unsynchronized { .. })), "{r:?}");
        let r = check_now_response(&now_response(7, ClockStatus::Disrupted), 7, UTC);
        assert!(matches!(r, Err(RemoteError::Disrupted { .. })), "{r:?}");
        let r = check_now_response(&now_response(8, ClockStatus::Synchronized), 7, UTC);
        assert!(matches!(r, Err(RemoteError::RequestIdMismatch { sent: 7, received: 8 })), "{r:?}");
    }

    #[test]
    fn error_responses_become_typed_errors() {
        let r = check_now_response(&error(7, ErrorCode::Unsynchronized, 0, "no majority"), 7, UTC);
        assert!(matches!(&r, Err(RemoteError::Unsynchronized { message }) if message == "no majority"), "{r:?}");
        let r = check_now_response(&error(0, ErrorCode::Disrupted, 0, ""), 7, UTC);
        assert!(matches!(r, Err(RemoteError::Disrupted { .. })), "id 0 is accepted on errors: {r:?}");
        let r = check_now_response(&error(7, ErrorCode::RateLimited, 250, "slow down"), 7, UTC).unwrap_err();
        assert_eq!(r.retry_after(), Some(Duration::from_millis(250)));
        assert!(matches!(r, RemoteError::RateLimited { .. }));
        let r = check_now_response(&error(7, ErrorCode::TimescaleMismatch, 0, ""), 7, UTC);
        assert!(matches!(r, Err(RemoteError::TimescaleMismatch { .. })), "{r:?}");
        let r = check_now_response(&error(7, ErrorCode::Other(99), 0, "new"), 7, UTC).unwrap_err();
        assert!(matches!(r, RemoteError::Refused { code: ErrorCode::Other(99), .. }), "{r:?}");
        assert!(r.to_string().contains("error-99: new"), "{r}");
        let r = check_now_response(&error(9, ErrorCode::Internal, 0, ""), 7, UTC);
        assert!(matches!(r, Err(RemoteError::RequestIdMismatch { sent: 7, received: 9 })), "{r:?}");
    }

    #[test]
    fn garbage_other_kinds_and_other_timescales_are_refused() {
        let r = check_now_response(b"\x01\x11\x00\x00\x00\x00\x00\x08", 7, UTC);
        assert!(matches!(r, Err(RemoteError::Decode(_))), "{r:?}");
        let mut bytes = now_response(7, ClockStatus::Synchronized);
        bytes[33] = 7; // timescale code 7
        let r = check_now_response(&bytes, 7, UTC);
        assert!(matches!(r, Err(RemoteError::TimescaleMismatch { .. })), "{r:?}");
        let request = Message::NowRequest(Request { request_id: 7 }).to_vec().unwrap();
        let r = check_now_response(&request, 7, UTC);
        assert!(matches!(r, Err(RemoteError::UnexpectedKind { received: "now-request", .. })), "{r:?}");
        let r = check_status_response(&now_response(7, ClockStatus::Synchronized), 7, UTC);
        assert!(matches!(r, Err(RemoteError::UnexpectedKind { expected: "status-response", .. })), "{r:?}");
    }

    #[test]
    fn a_status_response_becomes_an_owned_site_status_with_the_spec_json() {
        let report = SiteReport {
            generation: 3,
            site: "bj-a",
            status: ClockStatus::Degraded,
            local_status: ClockStatus::Synchronized,
            timescale: UTC,
            half_width: Some(Duration::from_micros(40)),
            drift_bound: Ppb::from_ppm(15),
            sources: vec![SourceReport {
                kind: SourceKind::Ntp,
                name: "time1",
                usable: true,
                falseticker: false,
                offset: Offset::from_nanos(-1_200),
                error: Duration::from_micros(30),
            }],
        };
        let bytes = Message::StatusResponse(StatusResponse { request_id: 5, report }).to_vec().unwrap();
        let status = check_status_response(&bytes, 5, UTC).unwrap();
        assert_eq!(status.site, "bj-a");
        assert_eq!((status.status, status.local_status), (ClockStatus::Degraded, ClockStatus::Synchronized));
        assert_eq!(status.sources[0].name, "time1");
        let json = serde_json::to_value(&status).unwrap();
        let expected = serde_json::json!({
            "site": "bj-a", "generation": 3, "status": "degraded", "local-status": "synchronized",
            "timescale": "utc-smear-24h", "half-width": 40_000, "drift-bound": 15_000,
            "sources": [{"kind": "ntp", "name": "time1", "usable": true, "falseticker": false,
                         "offset": -1_200, "error": 30_000}]
        });
        assert_eq!(json, expected);
        let r = check_status_response(&bytes, 6, UTC);
        assert!(matches!(r, Err(RemoteError::RequestIdMismatch { .. })), "{r:?}");
    }
}
