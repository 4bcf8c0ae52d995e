//! TLS for `tsod-peer/1` and `tsod-client/1`: rustls on the `ring`
//! provider, chosen explicitly (no process-wide default), TLS 1.3 only (QUIC
//! requires it), mutual authentication against the cluster CA made by
//! `tsod cluster init` (see [`crate::cluster`]).
//!
//! A site presents `<site>.crt`/`<site>.key` and trusts only `ca.crt`. As a
//! client it names the peer site it expects, so a certificate for another
//! site — even from the same cluster — is refused; as a server it requires a
//! client certificate from the cluster CA (the endpoint then checks which
//! site it names against its configured peers).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A site's certificate chain and private key.
#[derive(Debug)]
pub struct Identity {
    /// The site's certificate (then any intermediates).
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A private key file that users other than its owner may read.
    #[error("{path} is readable by its group or others (mode {mode:o}); chmod 600 it")]
    KeyReadable {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The cluster directory a site uses holds the CA's private key.
    #[error(
        "{path} is on a site: the CA key signs any site's or client's identity, so a site refuses a cluster-dir that holds it; move it off the site (tsod cluster init keeps it in <dir>-ca)"
    )]
    CaKeyOnSite {
        /// The CA key file.
        path: PathBuf,
    },
    /// The site's own certificate and key, presented to itself, fail a
    /// handshake under the cluster CA (wrong CA, wrong name, expired, key
    /// not matching the certificate).
    #[error("site {site}'s certificate fails a TLS handshake with itself under the cluster CA: {why}")]
    SelfCheck {
        /// The site.
        site: String,
        /// rustls's reason.
        why: String,
    },
}

/// The one crypto provider tsod uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The cluster CA from `<dir>/ca.crt`.
pub fn load_roots(dir: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let path = dir.join("ca.crt");
    let pem_error = |why: String| TlsError::Pem { path: path.clone(), why };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&path).map_err(|e| pem_error(e.to_string()))? {
        roots.add(cert.map_err(|e| pem_error(e.to_string()))?).map_err(|e| pem_error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(pem_error("no certificate".into()));
    }
    Ok(Arc::new(roots))
}

/// `<dir>/<site>.crt` and `<dir>/<site>.key`. Refused: a `dir` that holds
/// the CA key (`ca.key`), and a key file its group or others may read.
pub fn load_identity(dir: &Path, site: &str) -> Result<Identity, TlsError> {
    use std::os::unix::fs::MetadataExt;
    let ca_key = dir.join("ca.key");
    if std::fs::symlink_metadata(&ca_key).is_ok() {
        return Err(TlsError::CaKeyOnSite { path: ca_key });
    }
    let cert_path = dir.join(format!("{site}.crt"));
    let key_path = dir.join(format!("{site}.key"));
    let mode =
        std::fs::metadata(&key_path).map_err(|e| TlsError::Pem { path: key_path.clone(), why: e.to_string() })?.mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyReadable { path: key_path, mode: mode & 0o7777 });
    }
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem { path: cert_path.clone(), why: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert_path, why: "no certificate".into() });
    }
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::Pem { path: key_path, why: e.to_string() })?;
    Ok(Identity { chain, key })
}

/// Whether the server side demands a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client presents a certificate from the cluster CA.
    Required,
    /// A client may present none (anonymous remote clients); one it presents
    /// is still verified. Peer connections check for a certificate themselves.
    Optional,
}

/// The server side: verifies client certificates against the cluster CA.
pub fn server_config(
    roots: Arc<RootCertStore>,
    identity: Identity,
    alpn: &[&[u8]],
    client_auth: ClientAuth,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
    let verifier = match client_auth {
        ClientAuth::Required => builder.build()?,
        ClientAuth::Optional => builder.allow_unauthenticated().build()?,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The client side: trusts only the cluster CA and presents the site's identity.
pub fn client_config(roots: Arc<RootCertStore>, identity: Identity, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain, identity.key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Checks `<dir>`'s files for `site` as a peer would: a TLS handshake in
/// memory between the site as server and the site as client, both trusting
/// only the cluster CA, the client expecting the site's name. Catches what
/// loading alone does not: a certificate from another cluster or for
/// another site, an expired one, a key that is not the certificate's.
pub fn check_identity(dir: &Path, site: &str) -> Result<(), TlsError> {
    let roots = load_roots(dir)?;
    let server = server_config(Arc::clone(&roots), load_identity(dir, site)?, &[b"check"], ClientAuth::Required)?;
    let client = client_config(roots, load_identity(dir, site)?, &[b"check"])?;
    handshake(client, server, site).map_err(|why| TlsError::SelfCheck { site: site.to_owned(), why })
}

/// Runs a TLS handshake in memory; the first error, as text.
fn handshake(client: ClientConfig, server: ServerConfig, name: &str) -> Result<(), String> {
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
    let mut s = rustls::ServerConnection::new(Arc::new(server)).map_err(|e| e.to_string())?;
    // TLS 1.3 with client authentication takes two flights each way; a few
    // more rounds cost nothing and bound the loop.
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        s.process_new_packets().map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        c.process_new_packets().map_err(|e| e.to_string())?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, SiteSpec};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, ServerConnection};
    use tsod_proto::wire::ALPN_PEER;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            let _ = std::fs::remove_dir_all(pki::ca_dir(&self.0));
        }
    }

    fn cluster_dir(name: &str, sites: &[&str]) -> Dir {
        let dir = std::env::temp_dir().join(format!("tsod-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(pki::ca_dir(&dir));
        let specs: Vec<SiteSpec> = sites.iter().map(|s| SiteSpec::parse(s).unwrap()).collect();
        pki::init(&dir, &pki::ca_dir(&dir), &specs, 30).unwrap();
        Dir(dir)
    }

    /// Runs a TLS handshake in memory; Ok(negotiated ALPN) or the first error.
    fn handshake(client: ClientConfig, server: ServerConfig, name: &str) -> Result<Option<Vec<u8>>, rustls::Error> {
        let mut c = ClientConnection::new(Arc::new(client), ServerName::try_from(name.to_owned()).unwrap())?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(s.alpn_protocol().map(<[u8]>::to_vec));
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn sites_of_one_cluster_authenticate_each_other() {
        let d = cluster_dir("ok", &["bj-a", "xa"]);
        let roots = load_roots(&d.0).unwrap();
        let server =
            server_config(Arc::clone(&roots), load_identity(&d.0, "bj-a").unwrap(), &[ALPN_PEER], ClientAuth::Required)
                .unwrap();
        let client = client_config(roots, load_identity(&d.0, "xa").unwrap(), &[ALPN_PEER]).unwrap();
        assert_eq!(handshake(client, server, "bj-a").unwrap().as_deref(), Some(ALPN_PEER));
    }

    #[test]
    fn the_wrong_site_or_a_foreign_cluster_is_refused() {
        let d = cluster_dir("mine", &["bj-a", "xa"]);
        let other = cluster_dir("theirs", &["xa", "bj-a"]);
        let roots = load_roots(&d.0).unwrap();
        let server = || {
            server_config(Arc::clone(&roots), load_identity(&d.0, "bj-a").unwrap(), &[ALPN_PEER], ClientAuth::Required)
                .unwrap()
        };
        // Expecting site xa, but bj-a answers: refused by name.
        let client = client_config(Arc::clone(&roots), load_identity(&d.0, "xa").unwrap(), &[ALPN_PEER]).unwrap();
        assert!(handshake(client, server(), "xa").is_err());
        // A client with a certificate from another cluster: refused by the server.
        let foreign = client_config(Arc::clone(&roots), load_identity(&other.0, "xa").unwrap(), &[ALPN_PEER]).unwrap();
        assert!(handshake(foreign, server(), "bj-a").is_err());
        // A server from another cluster: refused by the client.
        let foreign_server = server_config(
            load_roots(&other.0).unwrap(),
            load_identity(&other.0, "bj-a").unwrap(),
            &[ALPN_PEER],
            ClientAuth::Required,
        )
        .unwrap();
        let client = client_config(Arc::clone(&roots), load_identity(&d.0, "xa").unwrap(), &[ALPN_PEER]).unwrap();
        assert!(handshake(client, foreign_server, "bj-a").is_err());
    }

    #[test]
    fn check_identity_passes_a_site_and_catches_swapped_or_foreign_files() {
        let d = cluster_dir("check", &["bj-a", "xa"]);
        check_identity(&d.0, "bj-a").unwrap();
        check_identity(&d.0, "xa").unwrap();
        // xa's certificate and key installed as bj-a's: loadable, but for
        // another name.
        for ext in ["crt", "key"] {
            std::fs::copy(d.0.join(format!("xa.{ext}")), d.0.join(format!("bj-a.{ext}"))).unwrap();
        }
        assert!(matches!(check_identity(&d.0, "bj-a"), Err(TlsError::SelfCheck { .. })));
        // bj-a's files from another cluster: the CA does not vouch for them.
        let other = cluster_dir("check-other", &["bj-a"]);
        for ext in ["crt", "key"] {
            std::fs::copy(other.0.join(format!("bj-a.{ext}")), d.0.join(format!("bj-a.{ext}"))).unwrap();
        }
        assert!(matches!(check_identity(&d.0, "bj-a"), Err(TlsError::SelfCheck { .. })));
        // A certificate whose key is another's: refused before any handshake
        // or by it, but refused.
        std::fs::copy(d.0.join("xa.key"), d.0.join("bj-a.key")).unwrap();
        assert!(check_identity(&d.0, "bj-a").is_err());
        // A missing file is named.
        std::fs::remove_file(d.0.join("bj-a.crt")).unwrap();
        let err = check_identity(&d.0, "bj-a").unwrap_err().to_string();
        assert!(err.contains("bj-a.crt"), "{err}");
    }

    /// A certificate from the right CA, for the right name, but expired.
    fn expired_identity(dir: &Path, site: &str) -> Identity {
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki::ca_dir(dir).join("ca.key")).unwrap()).unwrap();
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.crt")).unwrap(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![site.to_owned()]).unwrap();
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 2);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Identity { chain: vec![cert.der().clone()], key: PrivateKeyDer::try_from(key.serialize_der()).unwrap() }
    }

    #[test]
    fn an_expired_certificate_is_refused_either_way() {
        let d = cluster_dir("expired", &["bj-a", "xa"]);
        let roots = load_roots(&d.0).unwrap();
        let server = |id| server_config(Arc::clone(&roots), id, &[ALPN_PEER], ClientAuth::Required).unwrap();
        let client = |id| client_config(Arc::clone(&roots), id, &[ALPN_PEER]).unwrap();
        let good = || load_identity(&d.0, "bj-a").unwrap();
        let xa = || load_identity(&d.0, "xa").unwrap();
        assert!(handshake(client(xa()), server(good()), "bj-a").is_ok());
        // An expired server: the client refuses it.
        assert!(handshake(client(xa()), server(expired_identity(&d.0, "bj-a")), "bj-a").is_err());
        // An expired client: the server refuses it.
        assert!(handshake(client(expired_identity(&d.0, "xa")), server(good()), "bj-a").is_err());
    }

    #[test]
    fn a_readable_key_or_a_ca_key_on_the_site_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = cluster_dir("key-modes", &["bj-a"]);
        assert!(load_identity(&dir.0, "bj-a").is_ok());
        let key = dir.0.join("bj-a.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(load_identity(&dir.0, "bj-a"), Err(TlsError::KeyReadable { mode: 0o640, .. })));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::copy(pki::ca_dir(&dir.0).join("ca.key"), dir.0.join("ca.key")).unwrap();
        let err = load_identity(&dir.0, "bj-a").err().unwrap();
        assert!(matches!(err, TlsError::CaKeyOnSite { .. }), "{err}");
        assert!(check_identity(&dir.0, "bj-a").is_err());
    }

    #[test]
    fn missing_or_garbage_files_are_typed_errors() {
        let d = cluster_dir("bad", &["bj-a"]);
        assert!(matches!(load_identity(&d.0, "nope"), Err(TlsError::Pem { .. })));
        std::fs::write(d.0.join("ca.crt"), "not pem").unwrap();
        assert!(matches!(load_roots(&d.0), Err(TlsError::Pem { .. })));
    }
}
