//! The relay on real loopback sockets: timing, loss, partitions, clients,
//! bounds and shutdown.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A socket on 127.0.0.1 that gives up waiting after `timeout`.
fn socket(timeout: Duration) -> UdpSocket {
    let socket = UdpSocket::bind(loopback()).unwrap();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket
}

/// A UDP echo server on its own thread, stopped and joined on drop.
struct Echo {
    addr: SocketAddr,
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Self {
        let server = socket(ms(10));
        let addr = server.local_addr().unwrap();
        let (echoed, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, flag) = (Arc::clone(&echoed), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = server.recv_from(&mut buf) {
                    server.send_to(&buf[..len], peer).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self { addr, echoed, stop, thread: Some(thread) }
    }

    fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Sends `payload` through the relay and waits for the same bytes back:
/// the round-trip time, or `None` if nothing came back in the client's timeout.
fn round_trip(client: &UdpSocket, relay: &WanRelay, payload: &[u8]) -> Option<Duration> {
    let sent = Instant::now();
    client.send_to(payload, relay.local_addr()).unwrap();
    let mut buf = [0u8; 2048];
    let (len, from) = client.recv_from(&mut buf).ok()?;
    let elapsed = sent.elapsed();
    assert_eq!(from, relay.local_addr(), "replies come from the relay's listening address");
    assert_eq!(&buf[..len], payload);
    Some(elapsed)
}

/// Waits (at most 2 s) until `done` holds for the relay's counters.
fn wait_for_stats(relay: &WanRelay, done: impl Fn(&RelayStats) -> bool) -> RelayStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = relay.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(ms(1));
    }
}

fn shape(forward: Duration, reverse: Duration) -> LinkShape {
    LinkShape { forward: DirectionShape::with_delay(forward), reverse: DirectionShape::with_delay(reverse) }
}

#[test]
fn round_trip_takes_both_one_way_delays() {
    let echo = Echo::start();
    let relay = WanRelay::start(loopback(), echo.addr, shape(ms(10), ms(30))).unwrap();
    let client = socket(Duration::from_secs(1));
    let rtts: Vec<Duration> = (0..3u8).map(|i| round_trip(&client, &relay, &[i; 32]).unwrap()).collect();
    // Never early; late only by scheduling noise, so the best of three must be close.
    assert!(rtts.iter().all(|rtt| *rtt >= ms(40)), "round trips {rtts:?}");
    assert!(rtts.iter().min().is_some_and(|rtt| *rtt < ms(60)), "round trips {rtts:?}");
    // The counter moves just after the send, maybe after the client got the reply.
    let stats = wait_for_stats(&relay, |s| s.reverse.forwarded == 3);
    assert_eq!((stats.forward.forwarded, stats.reverse.forwarded, stats.clients), (3, 3, 1));
    assert_eq!((stats.forward.in_flight, stats.reverse.in_flight), (0, 0));
    // Every datagram arrived once each way, 32 bytes each.
    assert_eq!((stats.forward.arrived, stats.forward.arrived_bytes), (3, 96));
    assert_eq!((stats.reverse.arrived, stats.reverse.arrived_bytes), (3, 96));
}

#[test]
fn short_delays_stay_within_a_millisecond() {
    let echo = Echo::start();
    let half = Duration::from_micros(500);
    let relay = WanRelay::start(loopback(), echo.addr, shape(half, half)).unwrap();
    let client = socket(Duration::from_secs(1));
    let mut rtts: Vec<Duration> = (0..20u8).map(|i| round_trip(&client, &relay, &[i]).unwrap()).collect();
    rtts.sort();
    assert!(rtts[0] >= ms(1), "fastest round trip {:?}", rtts[0]);
    // The median, so that one descheduling on a busy host does not fail the test.
    assert!(rtts[10] < ms(3), "median round trip {:?}", rtts[10]);
}

#[test]
fn jitter_spreads_delivery_within_its_bound() {
    let echo = Echo::start();
    let jittery = DirectionShape { delay: ms(10), jitter: ms(20), loss: 0.0 };
    let relay =
        WanRelay::start(loopback(), echo.addr, LinkShape { forward: jittery, reverse: DirectionShape::IDEAL }).unwrap();
    let client = socket(Duration::from_secs(1));
    let sent = Instant::now();
    for i in 0..20u8 {
        client.send_to(&[i], relay.local_addr()).unwrap();
    }
    let mut buf = [0u8; 16];
    let mut arrivals = Vec::new();
    for _ in 0..20 {
        client.recv_from(&mut buf).unwrap();
        arrivals.push(sent.elapsed());
    }
    let (first, last) = (arrivals[0], arrivals[19]);
    assert!(first >= ms(10), "first after {first:?}");
    assert!(last < ms(10 + 20 + 20), "last after {last:?}");
    // 20 uniform draws from 20 ms all within 2 ms of each other: chance ~1e-18.
    assert!(last - first > ms(2), "no spread: {first:?}..{last:?}");
}

#[test]
fn total_loss_drops_everything_and_counts_it() {
    let echo = Echo::start();
    let lossy = LinkShape { forward: DirectionShape { loss: 1.0, ..DirectionShape::IDEAL }, ..LinkShape::IDEAL };
    let relay = WanRelay::start(loopback(), echo.addr, lossy).unwrap();
    let client = socket(ms(100));
    for i in 0..20u8 {
        client.send_to(&[i], relay.local_addr()).unwrap();
    }
    let stats = wait_for_stats(&relay, |s| s.forward.lost == 20);
    assert_eq!(stats.forward.lost, 20);
    assert_eq!(stats.forward.forwarded, 0);
    // Lost datagrams arrived all the same: they count as sent.
    assert_eq!((stats.forward.arrived, stats.forward.arrived_bytes), (20, 20));
    assert!(client.recv_from(&mut [0u8; 16]).is_err(), "nothing comes back");
    assert_eq!(echo.echoed(), 0);

    // Restoring the shape restores the link (for datagrams from now on).
    relay.set_shape(LinkShape::IDEAL);
    assert_eq!(relay.shape(), LinkShape::IDEAL);
    assert!(round_trip(&client, &relay, b"back").is_some());
}

#[test]
fn partition_drops_both_ways_until_healed() {
    // The target is a plain socket here, so that it can talk first.
    let target = socket(ms(100));
    let relay = WanRelay::start(loopback(), target.local_addr().unwrap(), LinkShape::IDEAL).unwrap();
    let client = socket(ms(100));
    let mut buf = [0u8; 16];
    client.send_to(b"hello", relay.local_addr()).unwrap();
    let (_, upstream) = target.recv_from(&mut buf).unwrap();

    let handle = relay.handle();
    handle.set_partitioned(true);
    assert!(relay.is_partitioned());
    client.send_to(b"lost forward", relay.local_addr()).unwrap();
    target.send_to(b"lost reverse", upstream).unwrap();
    let stats = wait_for_stats(&relay, |s| s.forward.partitioned == 1 && s.reverse.partitioned == 1);
    assert_eq!((stats.forward.partitioned, stats.reverse.partitioned), (1, 1));
    // "hello" and "lost forward" arrived forward, "lost reverse" in reverse.
    assert_eq!((stats.forward.arrived, stats.forward.arrived_bytes), (2, 17));
    assert_eq!((stats.reverse.arrived, stats.reverse.arrived_bytes), (1, 12));
    assert!(target.recv_from(&mut buf).is_err(), "nothing reaches the target");
    assert!(client.recv_from(&mut buf).is_err(), "nothing reaches the client");

    handle.set_partitioned(false);
    client.send_to(b"again", relay.local_addr()).unwrap();
    let (len, from) = target.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..len], from), (&b"again"[..], upstream), "same client, same upstream socket");
    target.send_to(b"reply", upstream).unwrap();
    let (len, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..len], from), (&b"reply"[..], relay.local_addr()));
}

#[test]
fn partition_drops_datagrams_already_in_flight() {
    let echo = Echo::start();
    let relay = WanRelay::start(loopback(), echo.addr, shape(ms(50), Duration::ZERO)).unwrap();
    let client = socket(ms(200));
    client.send_to(b"in flight", relay.local_addr()).unwrap();
    let stats = wait_for_stats(&relay, |s| s.forward.in_flight == 1);
    assert_eq!(stats.forward.in_flight, 1);
    relay.set_partitioned(true);
    let stats = wait_for_stats(&relay, |s| s.forward.partitioned == 1);
    assert_eq!((stats.forward.partitioned, stats.forward.in_flight, stats.forward.forwarded), (1, 0, 0));
    assert_eq!(echo.echoed(), 0);
}

#[test]
fn each_client_gets_its_own_upstream_and_replies() {
    let target = socket(Duration::from_secs(1));
    let relay = WanRelay::start(loopback(), target.local_addr().unwrap(), shape(ms(5), ms(5))).unwrap();
    let (alice, bob) = (socket(Duration::from_secs(1)), socket(Duration::from_secs(1)));
    alice.send_to(b"alice", relay.local_addr()).unwrap();
    bob.send_to(b"bob", relay.local_addr()).unwrap();
    let mut buf = [0u8; 16];
    let mut sources = HashMap::new();
    for _ in 0..2 {
        let (len, from) = target.recv_from(&mut buf).unwrap();
        sources.insert(buf[..len].to_vec(), from);
    }
    let (to_alice, to_bob) = (sources[&b"alice"[..]], sources[&b"bob"[..]]);
    assert_ne!(to_alice, to_bob, "the target sees one source per client");
    assert!(to_alice.ip().is_loopback() && to_bob.ip().is_loopback());
    // Answer in the opposite order, twice each: no cross-talk.
    for _ in 0..2 {
        target.send_to(b"for bob", to_bob).unwrap();
        target.send_to(b"for alice", to_alice).unwrap();
    }
    for (client, expected) in [(&alice, &b"for alice"[..]), (&bob, &b"for bob"[..])] {
        for _ in 0..2 {
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], from), (expected, relay.local_addr()));
        }
    }
    assert_eq!(relay.stats().clients, 2);
}

#[test]
fn clients_beyond_the_limit_are_dropped_and_counted() {
    let echo = Echo::start();
    let relay = WanRelay::start(loopback(), echo.addr, LinkShape::IDEAL).unwrap();
    let clients: Vec<UdpSocket> = (0..=MAX_CLIENTS).map(|_| socket(Duration::from_secs(1))).collect();
    let seen = |s: &RelayStats| s.clients + usize::try_from(s.over_client_limit).unwrap();
    for (i, client) in clients.iter().enumerate() {
        client.send_to(&i.to_be_bytes(), relay.local_addr()).unwrap();
        // One at a time, so that the first MAX_CLIENTS are the ones admitted.
        assert_eq!(seen(&wait_for_stats(&relay, |s| seen(s) > i)), i + 1);
    }
    let stats = relay.stats();
    assert_eq!((stats.clients, stats.over_client_limit), (MAX_CLIENTS, 1));
    let mut buf = [0u8; 16];
    for client in &clients[..MAX_CLIENTS] {
        client.recv_from(&mut buf).unwrap();
    }
    clients[MAX_CLIENTS].set_read_timeout(Some(ms(50))).unwrap();
    assert!(clients[MAX_CLIENTS].recv_from(&mut buf).is_err());
    // A known client still gets through.
    assert!(round_trip(&clients[0], &relay, b"known").is_some());
}

#[test]
fn a_full_queue_drops_and_counts_the_excess() {
    let echo = Echo::start();
    // Nothing comes due during the test: the queue only fills.
    let relay = WanRelay::start(loopback(), echo.addr, shape(Duration::from_secs(30), Duration::ZERO)).unwrap();
    let client = socket(ms(100));
    let total = QUEUE_CAPACITY + 100;
    let accounted = |s: &RelayStats| s.forward.in_flight + usize::try_from(s.forward.overflowed).unwrap();
    for batch_start in (0..total).step_by(64) {
        let batch_end = (batch_start + 64).min(total);
        for i in batch_start..batch_end {
            client.send_to(&i.to_be_bytes(), relay.local_addr()).unwrap();
        }
        // A batch fits in the relay socket's receive buffer; waiting for the
        // relay to take it before sending more keeps the kernel from dropping any.
        assert_eq!(accounted(&wait_for_stats(&relay, |s| accounted(s) == batch_end)), batch_end);
    }
    let stats = relay.stats();
    assert_eq!(stats.forward.in_flight, QUEUE_CAPACITY);
    assert_eq!(stats.forward.overflowed, u64::try_from(total - QUEUE_CAPACITY).unwrap());
    // Shutting down with a full queue is prompt and discards it.
    let started = Instant::now();
    relay.shutdown();
    assert!(started.elapsed() < ms(500), "shutdown took {:?}", started.elapsed());
    assert_eq!(echo.echoed(), 0);
}

#[test]
fn shutdown_joins_the_threads_and_closes_the_sockets() {
    let target = socket(Duration::from_secs(1));
    let relay = WanRelay::start(loopback(), target.local_addr().unwrap(), LinkShape::IDEAL).unwrap();
    let listen = relay.local_addr();
    let client = socket(Duration::from_secs(1));
    client.send_to(b"x", listen).unwrap();
    let (_, upstream) = target.recv_from(&mut [0u8; 4]).unwrap();
    let handle = relay.handle();

    let started = Instant::now();
    relay.shutdown();
    assert!(started.elapsed() < ms(500), "shutdown took {:?}", started.elapsed());
    // Both the listening and the upstream socket are closed: their ports are free again.
    drop(UdpSocket::bind(listen).unwrap());
    drop(UdpSocket::bind(upstream).unwrap());
    // A handle outlives the relay harmlessly.
    handle.set_partitioned(true);
    assert_eq!(handle.stats().forward.forwarded, 1);
}

#[test]
fn only_loopback_addresses_are_accepted() {
    let echo = Echo::start();
    let public = SocketAddr::from(([192, 0, 2, 1], 4433));
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    assert!(WanRelay::start(any, echo.addr, LinkShape::IDEAL).is_err());
    assert!(WanRelay::start(loopback(), public, LinkShape::IDEAL).is_err());
    assert!(WanRelay::start(loopback(), loopback(), LinkShape::IDEAL).is_err(), "target without a port");
    let relay = WanRelay::start(loopback(), echo.addr, LinkShape::IDEAL).unwrap();
    assert_eq!(relay.target(), echo.addr);
}
