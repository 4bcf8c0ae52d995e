//! `Tso` against a small in-test `tsod-client/1` TSO server (quinn on
//! 127.0.0.1, certificates from an rcgen CA): batching of concurrent calls,
//! pipelining, retries with `retry-after`, the deadline, the real-time-order
//! check, mismatched responses and redialling after a server restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::{Pki, SERVER_NAME};
use common::server::{Stop, TestServer};
use tsod_client::tso::{Tso, TsoError, TsoOptions, TsoRange};
use tsod_client::{ErrorCode, HybridTimestamp, RemoteError};
use tsod_proto::wire::{self, ErrorResponse, MAX_MESSAGE_LEN, MAX_TSO_COUNT, Message, TsoResponse};

/// What the test server does with one tso-request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// The next `count` timestamps of its counter.
    Grant,
    /// Moves its counter back by this many ticks, then grants.
    Rewind(u64),
    /// An error response.
    Error(ErrorCode, Option<Duration>),
    /// A grant of one timestamp more than asked.
    WrongCount,
    /// A grant for another request id.
    WrongId,
    /// Nothing: the stream stays open, unanswered.
    Silent,
}

/// The server's TSO and what it has seen; survives restarts.
#[derive(Debug)]
struct ServerState {
    /// The next raw timestamp to grant.
    next: u64,
    /// Replies used one per request, before `default`.
    script: VecDeque<Reply>,
    default: Reply,
    /// Wait before answering.
    delay: Duration,
    requests: usize,
    granted: u64,
    max_count: u32,
    counts: Vec<u32>,
    /// Requests being answered now, and the most at once.
    busy: usize,
    max_busy: usize,
}

type State = Arc<Mutex<ServerState>>;

fn state() -> State {
    Arc::new(Mutex::new(ServerState {
        next: HybridTimestamp::from_parts(1_700_000_000_000_000, 0).unwrap().raw(),
        script: VecDeque::new(),
        default: Reply::Grant,
        delay: Duration::ZERO,
        requests: 0,
        granted: 0,
        max_count: 0,
        counts: Vec::new(),
        busy: 0,
        max_busy: 0,
    }))
}

impl TestServer<Mutex<ServerState>> {
    fn start(pki: &Pki, state: &State) -> Self {
        Self::start_on((Ipv4Addr::LOCALHOST, 0).into(), pki, state)
    }

    fn start_on(bind: SocketAddr, pki: &Pki, state: &State) -> Self {
        Self::spawn(bind, pki.server_config(false), Arc::clone(state), answer)
    }

    fn script(&self, replies: &[Reply], default: Reply) {
        let mut state = self.state.lock().unwrap();
        state.script = replies.iter().copied().collect();
        state.default = default;
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Requests being answered now, and the most at once so far.
    fn busy(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.busy, state.max_busy)
    }
}

async fn answer(mut send: quinn::SendStream, mut recv: quinn::RecvStream, state: State) {
    let Ok(request) = recv.read_to_end(MAX_MESSAGE_LEN).await else { return };
    let Ok(Message::TsoRequest(request)) = wire::decode(&request) else { panic!("not a tso-request") };
    let (reply, delay, first) = {
        let mut state = state.lock().unwrap();
        state.busy += 1;
        state.max_busy = state.max_busy.max(state.busy);
        state.requests += 1;
        state.max_count = state.max_count.max(request.count);
        state.counts.push(request.count);
        let reply = state.script.pop_front().unwrap_or(state.default);
        if let Reply::Rewind(ticks) = reply {
            state.next -= ticks;
        }
        let first = state.next;
        if matches!(reply, Reply::Grant | Reply::Rewind(_) | Reply::WrongCount | Reply::WrongId) {
            state.next += u64::from(request.count) + 1;
            state.granted += u64::from(request.count);
        }
        (reply, state.delay, HybridTimestamp::from_raw(first))
    };
    if !delay.is_zero() {
        // (sleep(0) would still wait for the timer's next 1 ms tick.)
        tokio::time::sleep(delay).await;
    }
    let (request_id, count) = (request.request_id, request.count);
    let response = match reply {
        Reply::Grant | Reply::Rewind(_) => Message::TsoResponse(TsoResponse { request_id, first, count }),
        Reply::WrongCount => Message::TsoResponse(TsoResponse { request_id, first, count: count + 1 }),
        Reply::WrongId => Message::TsoResponse(TsoResponse { request_id: request_id + 1000, first, count }),
        Reply::Error(code, retry_after) => {
            Message::Error(ErrorResponse { request_id, code, retry_after, message: "test server says no" })
        }
        Reply::Silent => {
            state.lock().unwrap().busy -= 1;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
    };
    state.lock().unwrap().busy -= 1;
    if send.write_all(&response.to_vec().unwrap()).await.is_ok() && send.finish().is_ok() {
        let _ = send.stopped().await;
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_unique_increasing_timestamps_from_few_requests() {
    let pki = Pki::new("concurrent");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    const TASKS: u32 = 200;
    const CALLS: u32 = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let tso = tso.clone();
            tokio::spawn(async move {
                let mut got: Vec<TsoRange> = Vec::new();
                for call in 0..CALLS {
                    let range = if (task + call) % 2 == 0 {
                        TsoRange::new(tso.next().await.unwrap(), 1).unwrap()
                    } else {
                        let range = tso.reserve(1 + (task + call) % 4).await.unwrap();
                        assert_eq!(range.count(), 1 + (task + call) % 4);
                        range
                    };
                    if let Some(previous) = got.last() {
                        assert!(range.first() > previous.last(), "task {task}: {range:?} after {previous:?}");
                    }
                    got.push(range);
                }
                got
            })
        })
        .collect();
    let mut all = HashSet::new();
    let mut timestamps = 0u64;
    for task in tasks {
        for range in task.await.unwrap() {
            for h in range {
                assert!(all.insert(h), "{h} handed out twice");
                timestamps += 1;
            }
        }
    }
    let stats = tso.stats();
    let calls = u64::from(TASKS * CALLS);
    assert_eq!(stats.calls, calls);
    assert_eq!(stats.timestamps_received, timestamps);
    assert_eq!(stats.requests_sent, server.requests() as u64);
    assert_eq!(state.lock().unwrap().granted, timestamps, "every granted timestamp reached a caller");
    assert!(stats.requests_sent < calls / 4, "batching: {} requests for {calls} calls", stats.requests_sent);
    assert_eq!((stats.retries, stats.errors), (0, Default::default()));
    let (busy, max_busy) = server.busy();
    assert!(max_busy <= TsoOptions::DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(busy, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_overlap_up_to_max_in_flight_and_never_exceed_max_batch() {
    let pki = Pki::new("pipeline");
    let state = state();
    state.lock().unwrap().delay = ms(30);
    let server = TestServer::start(&pki, &state);
    let options = TsoOptions { max_in_flight: 2, max_batch: 10, ..pki.tso_options() };
    let tso = Tso::connect(server.addr, options).await.unwrap();
    // Callers arriving over a few milliseconds: the first request is in
    // flight when the next ones come, so a second one overlaps it.
    let calls: Vec<_> = (0..60u64)
        .map(|i| {
            let tso = tso.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(100 * i)).await;
                tso.next().await.unwrap()
            })
        })
        .collect();
    let mut got = HashSet::new();
    for call in calls {
        assert!(got.insert(call.await.unwrap()));
    }
    assert_eq!(server.busy().1, 2, "two requests in flight at most, and two were");
    let state = state.lock().unwrap();
    assert!(state.max_count <= 10, "a request asked for {}", state.max_count);
    assert!(state.requests >= 6 && state.requests < 60, "{} requests for 60 calls", state.requests);
}

#[tokio::test]
async fn large_reservations_go_in_separate_requests_of_whole_calls() {
    let pki = Pki::new("large");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    let (a, b, c, d) = tokio::join!(tso.reserve(40_000), tso.reserve(40_000), tso.reserve(40_000), tso.next());
    let ranges = [a.unwrap(), b.unwrap(), c.unwrap(), TsoRange::new(d.unwrap(), 1).unwrap()];
    for (i, x) in ranges.iter().enumerate() {
        for y in &ranges[i + 1..] {
            assert!(x.last() < y.first() || y.last() < x.first(), "{x:?} overlaps {y:?}");
        }
    }
    assert_eq!(ranges[0].iter().len(), 40_000);
    {
        let state = state.lock().unwrap();
        assert!(state.max_count <= MAX_TSO_COUNT && state.requests >= 3, "{:?}", state.counts);
    }
    let full = tso.reserve(MAX_TSO_COUNT).await.unwrap();
    assert_eq!(full.count(), MAX_TSO_COUNT);
    assert!(matches!(tso.reserve(0).await, Err(TsoError::InvalidCount(0))));
    assert!(matches!(tso.reserve(MAX_TSO_COUNT + 1).await, Err(TsoError::InvalidCount(65_537))));
}

#[tokio::test]
async fn unavailable_and_rate_limited_are_retried_after_their_advice() {
    let pki = Pki::new("retry");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    server.script(
        &[Reply::Error(ErrorCode::TsoUnavailable, Some(ms(60))), Reply::Error(ErrorCode::RateLimited, Some(ms(60)))],
        Reply::Grant,
    );
    let started = Instant::now();
    let h = tso.next().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= ms(120) && elapsed < ms(2000), "{elapsed:?}");
    let stats = tso.stats();
    assert_eq!((stats.requests_sent, stats.retries, stats.timestamps_received), (3, 2, 1));
    assert_eq!((stats.errors.unavailable, stats.errors.rate_limited), (1, 1));
    assert_eq!(server.requests(), 3);
    assert!(tso.next().await.unwrap() > h);

    // The advice is capped by max_retry_after.
    drop(tso);
    let options = TsoOptions { max_retry_after: ms(20), ..pki.tso_options() };
    let tso = Tso::connect(server.addr, options).await.unwrap();
    server.script(&[Reply::Error(ErrorCode::TsoUnavailable, Some(Duration::from_secs(30)))], Reply::Grant);
    let started = Instant::now();
    tso.next().await.unwrap();
    assert!(started.elapsed() < ms(2000), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_always_unavailable_service_fails_at_the_deadline_with_the_last_error() {
    let pki = Pki::new("deadline");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let options = TsoOptions { deadline: ms(600), ..pki.tso_options() };
    let tso = Tso::connect(server.addr, options).await.unwrap();
    server.script(&[], Reply::Error(ErrorCode::TsoUnavailable, Some(ms(100))));
    let started = Instant::now();
    let (a, b) = tokio::join!(tso.next(), tso.reserve(3));
    let elapsed = started.elapsed();
    assert!(elapsed >= ms(450) && elapsed < ms(1600), "gave up after {elapsed:?}");
    for e in [a.unwrap_err(), b.unwrap_err()] {
        match &e {
            TsoError::DeadlineExceeded { deadline, attempts, last } => {
                assert_eq!(*deadline, ms(600));
                assert!((5..=7).contains(attempts), "{attempts} attempts");
                assert!(matches!(**last, TsoError::Unavailable { .. }), "{last:?}");
            }
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert!(e.to_string().contains("TSO is unavailable"), "{e}");
    }
    let stats = tso.stats();
    assert_eq!(stats.errors.deadline_exceeded, 2);
    assert_eq!(stats.errors.unavailable, stats.requests_sent);

    // A silent server: attempts time out, then the call gives up.
    let options = TsoOptions {
        deadline: ms(700),
        remote: tsod_client::RemoteOptions { request_timeout: ms(200), ..pki.tso_options().remote },
        ..pki.tso_options()
    };
    let tso = Tso::connect(server.addr, options).await.unwrap();
    server.script(&[], Reply::Silent);
    let started = Instant::now();
    let e = tso.next().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= ms(600) && elapsed < ms(1500), "gave up after {elapsed:?}");
    match e {
        TsoError::DeadlineExceeded { last, .. } => {
            assert!(matches!(&*last, TsoError::Transport(r) if matches!(**r, RemoteError::Timeout { .. })), "{last:?}")
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(tso.stats().errors.timeout >= 2);
}

#[tokio::test]
async fn other_errors_are_returned_at_once() {
    let pki = Pki::new("refused");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    server.script(&[Reply::Error(ErrorCode::Unauthorized, None)], Reply::Grant);
    let e = tso.next().await.unwrap_err();
    assert!(matches!(e, TsoError::Refused { code: ErrorCode::Unauthorized, .. }), "{e:?}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert_eq!((server.requests(), tso.stats().errors.refused), (1, 1));
    tso.next().await.unwrap();
}

#[tokio::test]
async fn a_response_with_another_count_or_request_id_is_a_failed_request() {
    let pki = Pki::new("mismatch");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    server.script(&[Reply::WrongCount, Reply::WrongId], Reply::Grant);
    let e = tso.reserve(5).await.unwrap_err();
    assert!(matches!(e, TsoError::CountMismatch { asked: 5, granted: 6 }), "{e:?}");
    let e = tso.next().await.unwrap_err();
    match e {
        TsoError::RequestIdMismatch { sent, received } => assert_eq!(received, sent + 1000),
        other => panic!("expected a request-id mismatch, got {other:?}"),
    }
    let stats = tso.stats();
    assert_eq!((stats.requests_sent, stats.retries, stats.errors.mismatch, stats.timestamps_received), (2, 0, 2, 0));
    assert_eq!(tso.reserve(5).await.unwrap().count(), 5);
}

#[tokio::test]
async fn a_service_that_goes_backwards_is_refused_and_never_yields_a_smaller_timestamp() {
    let pki = Pki::new("backwards");
    let state = state();
    let server = TestServer::start(&pki, &state);
    let tso = Tso::connect(server.addr, pki.tso_options()).await.unwrap();
    let mut largest = tso.next().await.unwrap();
    for _ in 0..3 {
        largest = largest.max(tso.next().await.unwrap());
    }
    // The server's counter goes back: its next grants start at or below
    // what was already received. (It skips one tick per grant.)
    server.script(&[Reply::Rewind(8)], Reply::Grant);
    let mut refused = 0;
    let accepted = loop {
        match tso.next().await {
            Ok(h) => break h,
            Err(TsoError::WentBackwards { floor, first }) => {
                assert_eq!(floor, largest);
                assert!(first <= floor);
                refused += 1;
                assert!(refused <= 4, "still refused after {refused}");
            }
            Err(other) => panic!("expected WentBackwards, got {other:?}"),
        }
    };
    assert!(accepted > largest, "{accepted} is not above {largest}");
    assert_eq!(refused, 4, "grants at largest − 6, −4, −2 and largest are refused; largest + 2 is not");
    let stats = tso.stats();
    assert_eq!((stats.errors.went_backwards, stats.retries), (4, 0));
}

#[tokio::test]
async fn redials_after_the_server_restarts_during_a_call() {
    let pki = Arc::new(Pki::new("restart"));
    let state = state();
    let server = TestServer::start(&pki, &state);
    let addr = server.addr;
    let options = TsoOptions {
        remote: tsod_client::RemoteOptions { request_timeout: ms(300), ..pki.tso_options().remote },
        ..pki.tso_options()
    };
    let tso = Tso::connect(addr, options).await.unwrap();
    let before = tso.next().await.unwrap();

    // A clean restart: the connection closes, dialling fails until the
    // server is back, the call is retried meanwhile.
    server.stop(Stop::Graceful);
    let restart = {
        let (pki, state) = (Arc::clone(&pki), Arc::clone(&state));
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(ms(300));
            TestServer::start_on(addr, &pki, &state)
        })
    };
    let started = Instant::now();
    let after = tso.next().await.unwrap();
    assert!(after > before);
    assert!(started.elapsed() >= ms(250) && started.elapsed() < ms(2500), "{:?}", started.elapsed());
    let server = restart.await.unwrap();
    assert!(tso.stats().retries >= 1, "{:?}", tso.stats());

    // A crash: nothing tells the client; its request on the dead connection
    // times out and the retry dials the new server.
    server.stop(Stop::Crash);
    let server = TestServer::start_on(addr, &pki, &state);
    let started = Instant::now();
    let last = tso.next().await.unwrap();
    assert!(last > after);
    assert!(started.elapsed() < ms(2500), "{:?}", started.elapsed());
    assert!(server.requests() >= 1);
    let stats = tso.stats();
    assert_eq!(stats.errors.deadline_exceeded, 0, "{stats:?}");
}

#[tokio::test]
async fn bad_options_are_refused_before_any_traffic() {
    let pki = Pki::new("options");
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, 9).into();
    for options in [
        TsoOptions { max_in_flight: 0, ..pki.tso_options() },
        TsoOptions { max_batch: 0, ..pki.tso_options() },
        TsoOptions { max_batch: MAX_TSO_COUNT + 1, ..pki.tso_options() },
        TsoOptions { deadline: Duration::ZERO, ..pki.tso_options() },
        TsoOptions { max_retry_after: Duration::ZERO, ..pki.tso_options() },
        TsoOptions { max_queued: 0, ..pki.tso_options() },
    ] {
        let e = Tso::connect(addr, options).await.unwrap_err();
        assert!(matches!(e, TsoError::InvalidOptions(_)), "{e:?}");
    }
    let e = Tso::connect(addr, TsoOptions::new(pki.ca_path.with_file_name("nope.crt"), SERVER_NAME)).await.unwrap_err();
    assert!(matches!(&e, TsoError::Transport(r) if matches!(**r, RemoteError::Pem { .. })), "{e:?}");
}

/// Throughput on loopback: `cargo test --release -p tsod-client --test tso -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn throughput_with_hundreds_of_callers() {
    let pki = Pki::new("throughput");
    let state = state();
    let server = TestServer::start(&pki, &state);
    for (callers, in_flight) in [(1u32, 1usize), (300, 1), (300, 2), (300, 4), (50, 4)] {
        let options = TsoOptions { max_in_flight: in_flight, ..pki.tso_options() };
        let tso = Tso::connect(server.addr, options).await.unwrap();
        let run = Duration::from_secs(2);
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let tso = tso.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while started.elapsed() < run {
                        tso.next().await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let stats = tso.stats();
        println!(
            "{callers} callers, {in_flight} in flight: {:.0} timestamps/s, {:.0} requests/s, {:.1} per request",
            total as f64 / secs,
            stats.requests_sent as f64 / secs,
            total as f64 / stats.requests_sent as f64
        );
    }
}

/// A server that stops answering holds the callers back: no more than
/// `max_queued` calls are taken up (the rest wait in `reserve`), and none
/// is lost once the server answers again.
#[tokio::test]
async fn the_call_queue_is_bounded_when_the_server_stops_answering() {
    let pki = Pki::new("bounded");
    let state = state();
    let server = TestServer::start(&pki, &state);
    server.script(&[], Reply::Silent);
    let ms = Duration::from_millis;
    let options = TsoOptions {
        max_queued: 50,
        deadline: Duration::from_secs(20),
        remote: tsod_client::RemoteOptions { request_timeout: ms(200), ..pki.tso_options().remote },
        ..pki.tso_options()
    };
    let tso = Tso::connect(server.addr, options).await.unwrap();
    let calls: Vec<_> = (0..300)
        .map(|_| {
            let tso = tso.clone();
            tokio::spawn(async move { tso.next().await })
        })
        .collect();
    tokio::time::sleep(ms(500)).await;
    let taken = tso.stats().calls;
    assert_eq!(taken, 50, "calls taken up while the server is silent");
    server.script(&[], Reply::Grant);
    let mut seen = HashSet::new();
    for call in calls {
        let t = tokio::time::timeout(Duration::from_secs(15), call).await.unwrap().unwrap().unwrap();
        assert!(seen.insert(t.raw()), "a timestamp twice");
    }
    assert_eq!(tso.stats().calls, 300);
    drop(server);
}
