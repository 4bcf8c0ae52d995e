//! The QUIC client configuration of a [`RemoteClock`](super::RemoteClock):
//! rustls on the `ring` provider, chosen explicitly (no process-wide
//! default), TLS 1.3 only, trusting only the cluster CA, ALPN exactly
//! `tsod-client/1`, and optionally a client certificate for mutual TLS;
//! and the check of the server name the certificate must carry.

use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tsod_proto::wire::ALPN_CLIENT;

use super::{RemoteError, RemoteOptions};

/// The quinn client configuration `options` ask for.
pub(crate) fn quic_client_config(options: &RemoteOptions) -> Result<quinn::ClientConfig, RemoteError> {
    let roots = load_roots(&options.ca_path)?;
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut tls = match &options.client_identity {
        Some((cert_path, key_path)) => {
            let chain = load_chain(cert_path)?;
            let key = load_key(key_path)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    let quic = QuicClientConfig::try_from(tls)
        .map_err(|e| RemoteError::InvalidOptions(format!("TLS configuration unusable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.packet_threshold(REORDERING_PACKETS);
    // A dead or cut-off site shows within `dead_after` even between
    // requests: keep-alives every third of it, and silence that long closes
    // the connection (quinn waits at least three probe timeouts, so a slow
    // path is not taken for a dead one).
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(options.dead_after).ok());
    transport.keep_alive_interval(Some(options.dead_after / 3));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// `name`, if rustls can verify a certificate against it: a DNS name
/// (matched against the certificate's DNS SANs) or an IP address (its IP
/// SANs). Anything else, the empty name included, is
/// [`RemoteError::InvalidOptions`] before any traffic.
pub(crate) fn check_server_name(name: &str) -> Result<String, RemoteError> {
    const HINT: &str = "give the site's name as its certificate carries it, e.g. bj-a";
    if name.is_empty() {
        return Err(RemoteError::InvalidOptions(format!("server_name is empty; {HINT}")));
    }
    ServerName::try_from(name).map_err(|e| {
        RemoteError::InvalidOptions(format!(
            "server_name {name:?} is neither a DNS name nor an IP address ({e}); {HINT}"
        ))
    })?;
    Ok(name.to_owned())
}

/// Reordering, in packets, before QUIC takes a packet as lost (client and
/// daemon alike). QUIC's default, 3 (RFC 9002), makes a burst of small
/// requests over a path that reorders them (multi-path WAN links, the
/// testbed's jittered relays) look lossy: each spurious loss halves the
/// congestion window, until the burst is paced over round trips (a far
/// site's TSO p99 was three round trips, 78 ms at 26 ms). Loss is still
/// found by the time threshold (9/8 of the round trip, as RACK does) and
/// the probe timeout.
pub const REORDERING_PACKETS: u32 = 1_000;

/// The private key in the PEM file at `path`, refused if users other than
/// its owner may read it (a key anyone can read is anyone's identity).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, RemoteError> {
    use std::os::unix::fs::MetadataExt;
    let pem_error = |why: String| RemoteError::Pem { path: path.to_path_buf(), why };
    let mode = std::fs::metadata(path).map_err(|e| pem_error(e.to_string()))?.mode();
    if mode & 0o077 != 0 {
        return Err(pem_error(format!(
            "the private key is readable by its group or others (mode {:o}); chmod 600 it",
            mode & 0o7777
        )));
    }
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(e.to_string()))
}

/// Every certificate in the PEM file at `path`, as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, RemoteError> {
    let mut roots = RootCertStore::empty();
    for cert in load_chain(path)? {
        roots.add(cert).map_err(|e| RemoteError::Pem { path: path.to_path_buf(), why: e.to_string() })?;
    }
    Ok(roots)
}

/// The certificates in the PEM file at `path`, in order; at least one.
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, RemoteError> {
    let pem_error = |why: String| RemoteError::Pem { path: path.to_path_buf(), why };
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error("no certificate in the file".to_owned()));
    }
    Ok(chain)
}
