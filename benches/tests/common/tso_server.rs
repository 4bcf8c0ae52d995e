//! A tiny `tsod-client/1` TSO server for `tsbench tso`'s tests (the shape of
//! the client crate's `tests/tso.rs` server): quinn on 127.0.0.1 with a
//! certificate from an rcgen CA, answering each `tso-request` on its own
//! stream from one counter, either honestly or, to prove the checks work,
//! handing the same range to two requests in flight at once.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::oneshot;
use tsod_proto::HybridTimestamp;
use tsod_proto::wire::{self, ALPN_CLIENT, MAX_MESSAGE_LEN, Message, TsoResponse};

use super::Scratch;

/// How the server grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grants {
    /// The next `count` timestamps of the counter: every one unique.
    Honest,
    /// Each request waits (up to 200 ms) for a second one; both then get
    /// the same range. Neither starts at or below what the client had
    /// received when it sent them, so the client accepts both.
    DuplicatePairs,
}

/// The counter, and a request waiting for its pair (its ticket, its count,
/// where to send the first timestamp).
struct Counter {
    next: u64,
    tickets: u64,
    waiting: Option<(u64, u32, oneshot::Sender<u64>)>,
    /// The source address of every connection established.
    remotes: BTreeSet<IpAddr>,
    /// Connections established.
    connections: u64,
}

/// A TSO server on its own thread and runtime; stopped when dropped.
pub struct TsoServer {
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    counter: Arc<Mutex<Counter>>,
    _dir: Scratch,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TsoServer {
    pub fn start(name: &str, grants: Grants) -> Self {
        let dir = Scratch::new(name);
        let (ca_pem, config) = pki();
        let ca_path = dir.0.join("ca.crt");
        std::fs::write(&ca_path, ca_pem).unwrap();
        let counter = Arc::new(Mutex::new(Counter {
            next: HybridTimestamp::from_parts(1_700_000_000_000_000, 0).unwrap().raw(),
            tickets: 0,
            waiting: None,
            remotes: BTreeSet::new(),
            connections: 0,
        }));
        let served = Arc::clone(&counter);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let endpoint = quinn::Endpoint::server(config, (Ipv4Addr::LOCALHOST, 0).into()).unwrap();
                addr_tx.send(endpoint.local_addr().unwrap()).unwrap();
                tokio::select! {
                    _ = stop_rx => {}
                    () = serve(endpoint, served, grants) => {}
                }
            });
            runtime.shutdown_background();
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Self { addr, ca_path, counter, _dir: dir, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Connections established so far, and their distinct source addresses.
    pub fn connections(&self) -> (u64, BTreeSet<IpAddr>) {
        let counter = self.counter.lock().unwrap();
        (counter.connections, counter.remotes.clone())
    }
}

impl Drop for TsoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The CA's PEM and a server config with a certificate for `site-a` (a
/// DNS SAN) and 127.0.0.1 (an IP SAN).
fn pki() -> (String, quinn::ServerConfig) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "test cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["site-a".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.distinguished_name.push(DnType::CommonName, "site-a");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &ca).unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivatePkcs8KeyDer::from(key.serialize_der());

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(key))
        .unwrap();
    tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
    Arc::get_mut(&mut config.transport).unwrap().max_concurrent_bidi_streams(1024u32.into());
    (ca.pem(), config)
}

async fn serve(endpoint: quinn::Endpoint, counter: Arc<Mutex<Counter>>, grants: Grants) {
    while let Some(incoming) = endpoint.accept().await {
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            {
                let mut counter = counter.lock().unwrap();
                counter.connections += 1;
                counter.remotes.insert(connection.remote_address().ip());
            }
            while let Ok((send, recv)) = connection.accept_bi().await {
                tokio::spawn(answer(send, recv, Arc::clone(&counter), grants));
            }
        });
    }
}

async fn answer(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    counter: Arc<Mutex<Counter>>,
    grants: Grants,
) {
    let Ok(request) = recv.read_to_end(MAX_MESSAGE_LEN).await else { return };
    let Ok(Message::TsoRequest(request)) = wire::decode(&request) else { panic!("not a tso-request") };
    let first = match grants {
        Grants::Honest => grant(&counter, request.count),
        Grants::DuplicatePairs => paired(&counter, request.count).await,
    };
    let response = Message::TsoResponse(TsoResponse {
        request_id: request.request_id,
        first: HybridTimestamp::from_raw(first),
        count: request.count,
    });
    if send.write_all(&response.to_vec().unwrap()).await.is_ok() && send.finish().is_ok() {
        let _ = send.stopped().await;
    }
}

/// The next `count` timestamps: their first.
fn grant(counter: &Mutex<Counter>, count: u32) -> u64 {
    let mut counter = counter.lock().unwrap();
    let first = counter.next;
    counter.next += u64::from(count);
    first
}

/// The first of a range shared with the request waiting, or with the next
/// one to come within 200 ms (a fresh range if none does).
async fn paired(counter: &Mutex<Counter>, count: u32) -> u64 {
    let (ticket, mut receiver) = {
        let mut state = counter.lock().unwrap();
        if let Some((_, other, partner)) = state.waiting.take() {
            let first = state.next;
            state.next += u64::from(count.max(other));
            let _ = partner.send(first);
            return first;
        }
        let (sender, receiver) = oneshot::channel();
        state.tickets += 1;
        let ticket = state.tickets;
        state.waiting = Some((ticket, count, sender));
        (ticket, receiver)
    };
    if let Ok(Ok(first)) = tokio::time::timeout(Duration::from_millis(200), &mut receiver).await {
        return first;
    }
    {
        let mut state = counter.lock().unwrap();
        if state.waiting.as_ref().is_some_and(|(waiting, _, _)| *waiting == ticket) {
            // Still alone: a range of its own.
            state.waiting = None;
            let first = state.next;
            state.next += u64::from(count);
            return first;
        }
    }
    // A partner took this request just as the wait ended: its value is sent.
    receiver.await.unwrap()
}
