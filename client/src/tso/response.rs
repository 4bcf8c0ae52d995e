//! Checking a `tso-response` against the `tso-request` that was sent
//! (SPEC.md §4.8, §4.9, §4.11): sans-IO, bytes in, first timestamp or a
//! typed error out.

use tsod_proto::HybridTimestamp;
use tsod_proto::wire::{self, ErrorCode, ErrorResponse, Message};

use super::TsoError;

/// The first timestamp granted by the answer in `bytes` to request `sent`
/// for `asked` timestamps. Refused: another request id, another count, a
/// range past [`HybridTimestamp::MAX`] (the decoder checks that), another
/// kind, or an error response (as the error it stands for).
pub(crate) fn check_tso_response(bytes: &[u8], sent: u64, asked: u32) -> Result<HybridTimestamp, TsoError> {
    match wire::decode(bytes).map_err(TsoError::Decode)? {
        Message::TsoResponse(response) => {
            if response.request_id != sent {
                return Err(TsoError::RequestIdMismatch { sent, received: response.request_id });
            }
            if response.count != asked {
                return Err(TsoError::CountMismatch { asked, granted: response.count });
            }
            Ok(response.first)
        }
        Message::Error(error) => Err(error_response(&error, sent)),
        other => Err(TsoError::UnexpectedKind { received: other.kind().name() }),
    }
}

/// An error response as the typed error it stands for. Its request id must
/// be the one sent, or 0 when the server could not read the request (§4.9).
fn error_response(error: &ErrorResponse<'_>, sent: u64) -> TsoError {
    if error.request_id != 0 && error.request_id != sent {
        return TsoError::RequestIdMismatch { sent, received: error.request_id };
    }
    let retry_after = error.retry_after;
    let message = error.message.to_owned();
    match error.code {
        ErrorCode::TsoUnavailable => TsoError::Unavailable { retry_after, message },
        ErrorCode::RateLimited => TsoError::RateLimited { retry_after, message },
        ErrorCode::Overloaded => TsoError::Overloaded { retry_after, message },
        code => TsoError::Refused { code, retry_after, message },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tsod_proto::wire::{NowResponse, Request, TsoResponse};
    use tsod_proto::{ClockStatus, Ppb, TimeInterval, Timescale, Timestamp};

    use super::*;

    fn grant(request_id: u64, first: u64, count: u32) -> Vec<u8> {
        Message::TsoResponse(TsoResponse { request_id, first: HybridTimestamp::from_raw(first), count })
            .to_vec()
            .unwrap()
    }

    fn error(request_id: u64, code: ErrorCode, retry_after: Option<Duration>) -> Vec<u8> {
        Message::Error(ErrorResponse { request_id, code, retry_after, message: "why" }).to_vec().unwrap()
    }

    #[test]
    fn a_matching_grant_gives_its_first_timestamp() {
        assert_eq!(check_tso_response(&grant(7, 4096, 3), 7, 3).unwrap(), HybridTimestamp::from_raw(4096));
    }

    #[test]
    fn another_id_or_count_is_a_failed_request() {
        let e = check_tso_response(&grant(8, 4096, 3), 7, 3).unwrap_err();
        assert!(matches!(e, TsoError::RequestIdMismatch { sent: 7, received: 8 }), "{e:?}");
        let e = check_tso_response(&grant(7, 4096, 4), 7, 3).unwrap_err();
        assert!(matches!(e, TsoError::CountMismatch { asked: 3, granted: 4 }), "{e:?}");
        let e = check_tso_response(&grant(7, 4096, 2), 7, 3).unwrap_err();
        assert!(matches!(e, TsoError::CountMismatch { asked: 3, granted: 2 }), "{e:?}");
        assert!(!e.is_retryable());
        let e = check_tso_response(&error(9, ErrorCode::TsoUnavailable, None), 7, 3).unwrap_err();
        assert!(matches!(e, TsoError::RequestIdMismatch { sent: 7, received: 9 }), "{e:?}");
    }

    #[test]
    fn error_responses_become_typed_errors_and_only_the_transient_ones_retry() {
        let advice = Some(Duration::from_millis(40));
        let e = check_tso_response(&error(7, ErrorCode::TsoUnavailable, advice), 7, 1).unwrap_err();
        assert!(matches!(&e, TsoError::Unavailable { message, .. } if message == "why"), "{e:?}");
        assert_eq!((e.is_retryable(), e.retry_after()), (true, advice));
        // Id 0: the server could not read the request; still this request's error.
        let e = check_tso_response(&error(0, ErrorCode::RateLimited, advice), 7, 1).unwrap_err();
        assert!(matches!(e, TsoError::RateLimited { .. }) && e.is_retryable(), "{e:?}");
        let e = check_tso_response(&error(7, ErrorCode::Overloaded, None), 7, 1).unwrap_err();
        assert!(matches!(e, TsoError::Overloaded { .. }) && e.is_retryable(), "{e:?}");
        for code in [ErrorCode::Unauthorized, ErrorCode::Internal, ErrorCode::Malformed, ErrorCode::Other(99)] {
            let e = check_tso_response(&error(7, code, None), 7, 1).unwrap_err();
            assert!(matches!(e, TsoError::Refused { code: c, .. } if c == code) && !e.is_retryable(), "{e:?}");
        }
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let now = Message::NowResponse(NowResponse {
            request_id: 7,
            interval: TimeInterval::point(Timestamp::from_nanos(1)),
            status: ClockStatus::Synchronized,
            timescale: Timescale::UtcSmear24h,
            drift_bound: Ppb::from_ppm(1),
        })
        .to_vec()
        .unwrap();
        let e = check_tso_response(&now, 7, 1).unwrap_err();
        assert!(matches!(e, TsoError::UnexpectedKind { received: "now-response" }), "{e:?}");
        let request = Message::NowRequest(Request { request_id: 7 }).to_vec().unwrap();
        assert!(matches!(check_tso_response(&request, 7, 1), Err(TsoError::UnexpectedKind { .. })));
        assert!(matches!(check_tso_response(&[1, 0x15, 0], 7, 1), Err(TsoError::Decode(_))));
        // A range past HybridTimestamp::MAX never decodes.
        let mut past_max = grant(7, u64::MAX - 1, 2);
        past_max[27] = 3;
        assert!(matches!(check_tso_response(&past_max, 7, 3), Err(TsoError::Decode(_))));
    }
}
