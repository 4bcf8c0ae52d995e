//! `tsod-client/1`: remote clients' now, status and TSO requests, one per
//! stream (SPEC.md §4.7–4.9), with a token bucket per connection.
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
use tsod_client::sys::reader_clock_now;
use tsod_proto::shm::BoundError;
use tsod_proto::wire::{self, ErrorCode, ErrorResponse, Message, NowResponse, StatusResponse};
use tsod_proto::{ClockStatus, Timescale};

use super::limit::TokenBucket;
use super::stream::{error_message, read_one, request_id, write_one};
use super::{Cluster, Count, SiteView};
use crate::peer::probe::drift_bound_of;

/// Longest a client may take to deliver its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one client connection until it closes.
pub async fn serve(
    conn: quinn::Connection,
    rate: u32,
    site: String,
    view: watch::Receiver<SiteView>,
    cluster: Arc<Cluster>,
) {
    let mut bucket = TokenBucket::new(rate);
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let now = reader_clock_now().unwrap_or(tsod_proto::MonoInstant::from_nanos(0));
        if !bucket.take(now) {
            cluster.counters.bump(Count::RateLimited);
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
        let (view, cluster, site, generation) =
            (view.clone(), Arc::clone(&cluster), site.clone(), Arc::clone(&generation));
        tokio::spawn(async move {
            let Ok(Ok(bytes)) = tokio::time::timeout(REQUEST_TIMEOUT, read_one(&mut recv)).await else {
                cluster.counters.bump(Count::BadMessage);
                return;
            };
            let generation = generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let report = view.borrow().report.clone();
            let answer = match wire::decode(&bytes) {
                Ok(Message::NowRequest(r)) => now_answer(r.request_id, &view),
                Ok(Message::StatusRequest(r)) => Message::StatusResponse(StatusResponse {
                    request_id: r.request_id,
                    report: report.to_wire(generation),
                }),
                Ok(Message::TsoRequest(r)) => {
                    error_message(r.request_id, ErrorCode::TsoUnavailable, "this site does not serve TSO yet")
                }
                Ok(other) => {
                    cluster.counters.bump(Count::BadMessage);
                    error_message(request_id(&other), ErrorCode::UnknownKind, "not a request on tsod-client/1")
                }
                Err(e) => {
                    cluster.counters.bump(Count::BadMessage);
                    error_message(0, e.response_code(), e.name())
                }
            };
            cluster.counters.bump(Count::ClientRequest);
            if let Err(e) = write_one(&mut send, &answer).await {
                debug!(site = %site, error = %e, "answering a client");
            }
        });
    }
}

/// The published interval now, or the error that says why there is none.
fn now_answer(request_id: u64, view: &watch::Receiver<SiteView>) -> Message<'static> {
    let anchor = view.borrow().published;
    let interval = reader_clock_now().map_err(|_| BoundError::Stale).and_then(|now| anchor.interval_at(now));
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
        Err(_) => {
            let status = if anchor.status == ClockStatus::Disrupted { "disrupted" } else { "no valid bound" };
            error_message(request_id, ErrorCode::Unsynchronized, status)
        }
    }
}
