//! `tsod cluster init` / `add-site` produce certificates that rustls (on
//! ring, as the peers will use it) accepts for the right site and only
//! from the right cluster.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::Scratch;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn tsod(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tsod")).args(args).output().unwrap()
}

fn cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn verifier(ca: &Path) -> Arc<WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert(ca)).unwrap();
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(rustls::crypto::ring::default_provider()))
        .build()
        .unwrap()
}

fn accepts(verifier: &WebPkiServerVerifier, site_cert: &Path, name: &str) -> bool {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    verifier.verify_server_cert(&cert(site_cert), &[], &name, &[], UnixTime::now()).is_ok()
}

#[test]
fn sites_are_certified_by_their_cluster_only() {
    let dir = Scratch::new("cluster", "init");
    let out = dir.join("cluster");
    let out_s = out.to_str().unwrap();
    let done = tsod(&["cluster", "init", "--out", out_s, "--site", "bj-a=127.0.0.2", "--site", "xa"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    for (file, mode) in [("ca.crt", 0o644), ("bj-a.key", 0o600), ("bj-a.crt", 0o644)] {
        let m = std::fs::metadata(out.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    // The CA key is beside the cluster directory, never in it.
    assert!(!out.join("ca.key").exists());
    let ca_dir = dir.join("cluster-ca");
    assert_eq!(std::fs::metadata(ca_dir.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&ca_dir).unwrap().permissions().mode() & 0o777, 0o700);
    let v = verifier(&out.join("ca.crt"));
    assert!(accepts(&v, &out.join("bj-a.crt"), "bj-a"));
    assert!(accepts(&v, &out.join("bj-a.crt"), "127.0.0.2"), "the address is in the SAN");
    assert!(!accepts(&v, &out.join("bj-a.crt"), "xa"), "a site's certificate does not name another site");

    // The cluster file lists every site's client address for applications.
    let file = tsod_client::ClusterFile::load(&out.join("cluster.json")).unwrap();
    assert_eq!(file.ca, out.join("ca.crt"));
    let listed: Vec<(&str, &str)> = file.sites.iter().map(|s| (s.name.as_str(), s.address.as_str())).collect();
    assert_eq!(listed, [("bj-a", "127.0.0.2:4460"), ("xa", "xa:4460")]);

    // A site added later, with the CA read back from disk, is trusted too,
    // and the cluster file lists it.
    let added = tsod(&["cluster", "add-site", "--dir", out_s, "--site", "sh-c=::1", "--client-port", "4470"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(accepts(&v, &out.join("sh-c.crt"), "sh-c"));
    let file = tsod_client::ClusterFile::load(&out.join("cluster.json")).unwrap();
    assert_eq!(file.sites.last().map(|s| s.address.as_str()), Some("[::1]:4470"));

    // An application's certificate: client authentication only, named
    // NAME.client, so it can serve as no site (a server verifier refuses
    // it under any name) and names no site a peer could be configured as.
    let client = tsod(&["cluster", "add-client", "--dir", out_s, "--name", "billing"]);
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let client_cert = out.join("billing.client.crt");
    assert_eq!(std::fs::metadata(out.join("billing.client.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!accepts(&v, &client_cert, "billing.client"), "a client certificate must not pass as a server");
    assert!(!accepts(&v, &client_cert, "billing"));
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert(&out.join("ca.crt"))).unwrap();
            roots
        }),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    assert!(client_verifier.verify_client_cert(&cert(&client_cert), &[], UnixTime::now()).is_ok());
    assert!(!tsod(&["cluster", "add-client", "--dir", out_s, "--name", "bad.name"]).status.success());

    // Another cluster's site is not.
    let other = dir.join("other");
    assert!(tsod(&["cluster", "init", "--out", other.to_str().unwrap(), "--site", "bj-a"]).status.success());
    assert!(!accepts(&v, &other.join("bj-a.crt"), "bj-a"));
}

#[test]
fn nothing_is_ever_overwritten_and_bad_names_are_refused() {
    let dir = Scratch::new("cluster", "refuse");
    let out = dir.join("cluster");
    let out_s = out.to_str().unwrap();
    assert!(tsod(&["cluster", "init", "--out", out_s, "--site", "a"]).status.success());
    let ca_before = std::fs::read(dir.join("cluster-ca").join("ca.key")).unwrap();
    let again = tsod(&["cluster", "init", "--out", out_s, "--site", "b"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert_eq!(std::fs::read(dir.join("cluster-ca").join("ca.key")).unwrap(), ca_before, "the CA survives");
    assert!(!out.join("b.key").exists(), "nothing half-written");
    assert!(!tsod(&["cluster", "add-site", "--dir", out_s, "--site", "a"]).status.success());
    let bad = tsod(&["cluster", "add-site", "--dir", out_s, "--site", "../etc"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("DNS label"));
}
