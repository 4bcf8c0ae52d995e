//! `tsod-client/1`: remote clients' now, status and TSO requests, one per
//! stream (SPEC.md §4.7–4.9), with a token bucket per connection (requests)
//! and, shared by all connections, one per client identity and one for the
//! site, weighted by the timestamps a request asks for ([`ClientLimits`]).
//!
//! A now-response carries the published interval at the instant the
//! response is made, which is before it is sent; the client widens it by
//! its whole round trip (SPEC.md §4.7), so the server needs no allowance for
//! its own send delay. Without a valid bound the answer is an `error`
//! (`unsynchronized` or `disrupted`), never an interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::debug;
use tsod_client::suspended_since;
use tsod_client::sys::reader_clock_now;
use tsod_proto::Timescale;
use tsod_proto::shm::BoundError;
use tsod_proto::wire::{self, ErrorCode, ErrorResponse, Message, NowResponse, StatusResponse};

use super::limit::{ClientIdentity, ClientLimits, Limited, TokenBucket};
use super::{Count, PeerTable};
use crate::clock::Clock;
use crate::peer::probe::drift_bound_of;
use crate::site::SiteView;
use crate::stream::{error_message, read_one, request_id, write_one};
use crate::tso::serve::{self, Origin};

/// Largest request a client may send: every client request is 16 or 24 bytes.
const CLIENT_REQUEST_LIMIT: usize = 64;
/// Longest a client may take to deliver its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one client connection of `who` until it closes.
#[allow(clippy::too_many_arguments, reason = "the connection's context, passed once")]
pub async fn serve(
    conn: quinn::Connection,
    rate: u32,
    limits: Arc<ClientLimits>,
    who: ClientIdentity,
    site: String,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    peers: Arc<PeerTable>,
) {
    let mut bucket = TokenBucket::new(rate);
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let now = reader_clock_now().unwrap_or(tsod_proto::MonoInstant::from_nanos(0));
        if !bucket.take(now) {
            peers.counters.bump(Count::RateLimited);
            let wait = bucket.wait();
            let message = Message::Error(ErrorResponse {
                request_id: 0,
                code: ErrorCode::RateLimited,
                retry_after: Some(wait),
                message: "too many requests on this connection",
            });
            tokio::spawn(async move {
                let _ = write_one(&mut send, &message).await;
            });
            continue;
        }
        let (view, peers, site, generation, clock) =
            (view.clone(), Arc::clone(&peers), site.clone(), Arc::clone(&generation), Arc::clone(&clock));
        let (limits, who) = (Arc::clone(&limits), who.clone());
        tokio::spawn(async move {
            let Ok(Ok(bytes)) = tokio::time::timeout(REQUEST_TIMEOUT, read_one(&mut recv, CLIENT_REQUEST_LIMIT)).await
            else {
                peers.counters.bump(Count::BadMessage);
                return;
            };
            let weight = match wire::decode(&bytes) {
                Ok(Message::TsoRequest(r)) => u64::from(r.count).max(1),
                _ => 1,
            };
            let now = reader_clock_now().unwrap_or(tsod_proto::MonoInstant::from_nanos(0));
            if let Err(limited) = limits.take(&who, weight, now) {
                peers.counters.bump(Count::RateLimited);
                let (wait, message) = match limited {
                    Limited::Identity(wait) => (wait, "too many timestamps for this client"),
                    Limited::Site(wait) => (wait, "too many timestamps for this site"),
                };
                let refusal = Message::Error(ErrorResponse {
                    request_id: wire::decode(&bytes).map(|m| request_id(&m)).unwrap_or(0),
                    code: ErrorCode::RateLimited,
                    retry_after: Some(wait),
                    message,
                });
                let _ = write_one(&mut send, &refusal).await;
                return;
            }
            // Only a status request needs the report: cloned out of the watch
            // (so the borrow is not held while answering), never for `now`.
            let report;
            let answer = match wire::decode(&bytes) {
                Ok(Message::NowRequest(r)) => now_answer(r.request_id, clock.as_ref(), &view),
                Ok(Message::StatusRequest(r)) => {
                    let generation = generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    report = view.borrow().report.clone();
                    Message::StatusResponse(StatusResponse {
                        request_id: r.request_id,
                        report: report.to_wire(generation),
                    })
                }
                Ok(Message::TsoRequest(r)) => {
                    peers.counters.bump(Count::ClientRequest);
                    let tso = peers.tso.get().map(AsRef::as_ref);
                    if let Err(e) = serve::answer_tso(tso, &mut send, &r, Origin::Client).await {
                        debug!(site = %site, error = %e, "answering a TSO request");
                    }
                    return;
                }
                Ok(other) => {
                    peers.counters.bump(Count::BadMessage);
                    error_message(request_id(&other), ErrorCode::UnknownKind, "not a request on tsod-client/1")
                }
                Err(e) => {
                    peers.counters.bump(Count::BadMessage);
                    error_message(0, e.response_code(), e.name())
                }
            };
            peers.counters.bump(Count::ClientRequest);
            if let Err(e) = write_one(&mut send, &answer).await {
                debug!(site = %site, error = %e, "answering a client");
            }
        });
    }
}

/// The published interval now, or the error that says why there is none.
/// A suspend since the last tick (BOOTTIME ran ahead of the reader clock,
/// SPEC.md §5.6) is `disrupted`: the anchor cannot be carried across it.
fn now_answer(request_id: u64, clock: &dyn Clock, view: &watch::Receiver<SiteView>) -> Message<'static> {
    let published = view.borrow().published;
    let anchor = published.anchor;
    let interval = match clock.read() {
        Err(_) => Err(BoundError::Stale),
        Ok(now) if suspended_since(&published, now.raw, now.boottime) => Err(BoundError::Disrupted),
        Ok(now) => anchor.interval_at(now.raw),
    };
    match interval {
        Ok(interval) => Message::NowResponse(NowResponse {
            request_id,
            interval,
            status: anchor.status,
            timescale: Timescale::UtcSmear24h,
            drift_bound: drift_bound_of(anchor.rates),
        }),
        Err(BoundError::Disrupted) => {
            error_message(request_id, ErrorCode::Disrupted, "clock disrupted; waiting for re-synchronization")
        }
        Err(_) => error_message(request_id, ErrorCode::Unsynchronized, "no valid bound"),
    }
}
