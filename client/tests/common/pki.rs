//! [`Pki`]: a cluster CA, a server certificate for `site-a` (its DNS SAN,
//! [`SERVER_NAME`], what clients verify) and 127.0.0.1 (an IP SAN, as site
//! certificates carry), and a client certificate `client-1`, with the QUIC
//! configuration of a `tsod-client/1` server that uses them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tsod_client::RemoteOptions;
use tsod_client::tso::TsoOptions;
use tsod_proto::wire::ALPN_CLIENT;

use super::Scratch;

/// The site name the server's certificate carries as a DNS SAN: the name
/// clients verify unless a test asks for the IP address.
pub const SERVER_NAME: &str = "site-a";

/// The CA (its PEM file in `dir`), the server's chain and key, and the
/// client identity (PEM files in `dir`).
pub struct Pki {
    pub dir: Scratch,
    pub ca_path: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let dir = Scratch::new(name);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, "test cluster CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            (params.signed_by(&key, &ca).unwrap(), key)
        };
        let (server_cert, server_key) = leaf(SERVER_NAME);
        let (client_cert, client_key) = leaf("client-1");
        let ca_path = dir.0.join("ca.crt");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let client_cert_path = dir.0.join("client-1.crt");
        let client_key_path = dir.0.join("client-1.key");
        std::fs::write(&client_cert_path, client_cert.pem()).unwrap();
        std::fs::write(&client_key_path, client_key.serialize_pem()).unwrap();
        // Private keys are the owner's alone (the client refuses others).
        std::fs::set_permissions(&client_key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        Self {
            ca_path,
            client_cert: client_cert_path,
            client_key: client_key_path,
            ca_der: ca.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
            dir,
        }
    }

    /// The server's QUIC configuration (TLS 1.3, ALPN `tsod-client/1`, up
    /// to 1024 streams at once), optionally requiring a client certificate
    /// from this CA.
    pub fn server_config(&self, require_client_cert: bool) -> quinn::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut tls = builder
            .with_single_cert(self.server_chain.clone(), PrivateKeyDer::Pkcs8(self.server_key.clone_key()))
            .unwrap();
        tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
        // Hundreds of concurrent requests, each on its own stream.
        Arc::get_mut(&mut config.transport).unwrap().max_concurrent_bidi_streams(1024u32.into());
        config
    }

    /// A `RemoteClock`'s options trusting this CA for [`SERVER_NAME`].
    pub fn remote_options(&self) -> RemoteOptions {
        RemoteOptions::new(&self.ca_path, SERVER_NAME)
    }

    /// A `Tso`'s options trusting this CA for [`SERVER_NAME`].
    pub fn tso_options(&self) -> TsoOptions {
        TsoOptions::new(&self.ca_path, SERVER_NAME)
    }
}
