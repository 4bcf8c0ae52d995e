//! [`TestServer`]: a `tsod-client/1` server on its own thread and tokio
//! runtime, so that a test can stop it like a process (gracefully, or as
//! if it died) and start another on the same address. It accepts
//! connections and streams; what it answers on each stream is the test
//! file's `answer`, given the server's shared state.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a [`TestServer`] stops.
pub enum Stop {
    /// Close every connection (the clients are told) and the endpoint.
    Graceful,
    /// Drop the runtime: nothing is sent, as when the process dies.
    Crash,
}

/// A running server; stopped as by [`Stop::Crash`] when dropped.
pub struct TestServer<S> {
    pub addr: SocketAddr,
    /// What `answer` is given with each stream; may outlive the server.
    pub state: Arc<S>,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
    /// Their clients' addresses, in the order they were accepted.
    remotes: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Option<tokio::sync::oneshot::Sender<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: Send + Sync + 'static> TestServer<S> {
    /// Binds `bind` (waiting up to 5 s for a stopped server's port to be
    /// released) and answers every bidirectional stream with `answer`, each
    /// on its own task.
    pub fn spawn<A, F>(bind: SocketAddr, config: quinn::ServerConfig, state: Arc<S>, answer: A) -> Self
    where
        A: Fn(quinn::SendStream, quinn::RecvStream, Arc<S>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let remotes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&remotes);
        let shared = Arc::clone(&state);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                let endpoint = loop {
                    match quinn::Endpoint::server(config.clone(), bind) {
                        Ok(endpoint) => break endpoint,
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("binding the test server to {bind}: {e}"),
                    }
                };
                addr_tx.send(endpoint.local_addr().unwrap()).unwrap();
                let stop = tokio::select! {
                    stop = stop_rx => stop.unwrap_or(Stop::Crash),
                    () = serve(endpoint.clone(), shared, counter, seen, Arc::new(answer)) => Stop::Crash,
                };
                if let Stop::Graceful = stop {
                    endpoint.close(0u32.into(), b"restart");
                    endpoint.wait_idle().await;
                }
            });
            // Dropping the runtime cancels every connection task unsent.
            runtime.shutdown_background();
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Self { addr, state, connections, remotes, stop: Some(stop_tx), thread: Some(thread) }
    }
}

impl<S> TestServer<S> {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The clients' addresses of the connections accepted so far.
    #[allow(dead_code, reason = "not every test file asks")]
    pub fn remotes(&self) -> Vec<SocketAddr> {
        self.remotes.lock().unwrap().clone()
    }

    pub fn stop(mut self, how: Stop) {
        self.halt(how);
    }

    fn halt(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl<S> Drop for TestServer<S> {
    fn drop(&mut self) {
        self.halt(Stop::Crash);
    }
}

async fn serve<S, A, F>(
    endpoint: quinn::Endpoint,
    state: Arc<S>,
    connections: Arc<AtomicUsize>,
    remotes: Arc<Mutex<Vec<SocketAddr>>>,
    answer: Arc<A>,
) where
    S: Send + Sync + 'static,
    A: Fn(quinn::SendStream, quinn::RecvStream, Arc<S>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    while let Some(incoming) = endpoint.accept().await {
        let (state, connections, answer) = (Arc::clone(&state), Arc::clone(&connections), Arc::clone(&answer));
        let remotes = Arc::clone(&remotes);
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            connections.fetch_add(1, Ordering::SeqCst);
            remotes.lock().unwrap().push(connection.remote_address());
            while let Ok((send, recv)) = connection.accept_bi().await {
                tokio::spawn(answer(send, recv, Arc::clone(&state)));
            }
        });
    }
}
