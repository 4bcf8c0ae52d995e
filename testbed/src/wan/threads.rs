//! The relay's threads (module [`super`], "Bounds, threads and lifetime"):
//! one receives from the clients, one per client receives from the target,
//! one delivers what is due. All of them stop within [`POLL`] of the stop flag.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, warn};

use super::queue::{Pending, Route, Way};
use super::rng::Rng;
use super::{MAX_CLIENTS, MAX_DATAGRAM, POLL, Shared, bump};

pub(super) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_owned()).spawn(body)
}

/// Whether a receive error only means "nothing this time".
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::TimedOut
            | ErrorKind::Interrupted
            // ICMP port unreachable from an earlier send (the target or a
            // client is not listening yet, or any more).
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
    )
}

/// The listening thread: takes datagrams from clients, gives each new client
/// an upstream socket and its receiving thread, and queues the datagram
/// forward. Joins the client threads when it stops.
pub(super) fn receive_from_clients(listen: &UdpSocket, target: SocketAddr, shared: &Arc<Shared>) {
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut threads = Vec::new();
    let mut rng = Rng::from_time();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stopping() {
        let (len, client) = match listen.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                warn!("wan-relay: receive from clients failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let arrival = Instant::now();
        let upstream = if let Some(upstream) = clients.get(&client) {
            Arc::clone(upstream)
        } else if clients.len() >= MAX_CLIENTS {
            bump(&shared.over_client_limit);
            continue;
        } else {
            match open_upstream(client, target, shared) {
                Ok((upstream, thread)) => {
                    debug!(%client, "wan-relay: new client");
                    threads.push(thread);
                    clients.insert(client, Arc::clone(&upstream));
                    shared.clients.store(clients.len(), Ordering::Relaxed);
                    upstream
                }
                Err(e) => {
                    warn!(%client, "wan-relay: cannot open an upstream socket: {e}");
                    bump(&shared.forward.send_failed);
                    continue;
                }
            }
        };
        let payload = buf.get(..len).unwrap_or_default();
        shared.admit(Way::Forward, arrival, Route::ToTarget(upstream), payload, &mut rng);
    }
    drop(clients);
    for thread in threads {
        let _ = thread.join();
    }
}

/// A socket for `client`'s traffic to `target` (bound to an ephemeral port
/// on the target's loopback, connected to it) and the thread that relays
/// the target's replies back to `client`.
fn open_upstream(
    client: SocketAddr,
    target: SocketAddr,
    shared: &Arc<Shared>,
) -> io::Result<(Arc<UdpSocket>, JoinHandle<()>)> {
    let socket = UdpSocket::bind(SocketAddr::new(target.ip(), 0))?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(POLL))?;
    let upstream = Arc::new(socket);
    let (socket, state) = (Arc::clone(&upstream), Arc::clone(shared));
    let thread = spawn("wan-relay-up", move || receive_from_target(&socket, client, &state))?;
    Ok((upstream, thread))
}

/// A client's upstream thread: takes the target's datagrams to that client
/// and queues them in reverse.
fn receive_from_target(upstream: &UdpSocket, client: SocketAddr, shared: &Shared) {
    let mut rng = Rng::from_time();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stopping() {
        let len = match upstream.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                warn!(%client, "wan-relay: receive from target failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let arrival = Instant::now();
        let payload = buf.get(..len).unwrap_or_default();
        shared.admit(Way::Reverse, arrival, Route::ToClient(client), payload, &mut rng);
    }
}

/// The delivery thread: sleeps until the first datagram is due (or the
/// queue gets an earlier one, or [`POLL`] passes), then sends whatever is
/// due. Empties the queue when it stops.
pub(super) fn deliver(listen: &UdpSocket, shared: &Shared) {
    let mut due: Vec<Pending> = Vec::new();
    loop {
        {
            let mut queue = shared.lock_queue();
            loop {
                if shared.stopping() {
                    queue.clear();
                    return;
                }
                let now = Instant::now();
                let wait = match queue.next_release() {
                    Some(release) if release <= now => break,
                    Some(release) => release.saturating_duration_since(now).min(POLL),
                    None => POLL,
                };
                queue = match shared.queue_changed.wait_timeout(queue, wait) {
                    Ok((queue, _)) => queue,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            queue.pop_due(Instant::now(), &mut due);
        }
        for pending in due.drain(..) {
            send(listen, shared, pending);
        }
    }
}

/// Sends one released datagram, unless the link is cut.
fn send(listen: &UdpSocket, shared: &Shared, pending: Pending) {
    let counters = shared.counters(pending.way);
    if shared.partitioned.load(Ordering::Relaxed) {
        bump(&counters.partitioned);
        return;
    }
    let sent = match &pending.route {
        Route::ToTarget(upstream) => upstream.send(&pending.payload),
        Route::ToClient(client) => listen.send_to(&pending.payload, client),
    };
    match sent {
        Ok(_) => bump(&counters.forwarded),
        Err(e) => {
            debug!(way = ?pending.way, "wan-relay: send failed: {e}");
            bump(&counters.send_failed);
        }
    }
}
