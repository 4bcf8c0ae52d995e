//! Cluster identity for mutual TLS: a cluster CA, one certificate per site
//! and one per application client, made by `tsod cluster init`, `tsod
//! cluster add-site` and `tsod cluster add-client` (with `rcgen`, on `ring`).
//!
//! Layout of the cluster directory `DIR` (what a site's `cluster-dir` holds)
//! and of the CA directory beside it, `DIR-ca` ([`ca_dir`]):
//!
//! | file | mode | what |
//! |---|---|---|
//! | `DIR/ca.crt` | 0644 | the cluster CA certificate every site and client trusts |
//! | `DIR-ca/ca.key` | 0600 | the CA's private key: never on a site (a site refuses a `cluster-dir` that holds it) |
//! | `DIR/<site>.crt` | 0644 | a site's certificate: SAN = the site name (DNS) and its addresses (IP); server and client authentication |
//! | `DIR/<site>.key` | 0600 | the site's private key |
//! | `DIR/<name>.client.crt` | 0644 | an application's certificate: SAN = `<name>.client` (DNS), client authentication only |
//! | `DIR/<name>.client.key` | 0600 | its private key |
//!
//! Keys are ECDSA P-256. Site certificates carry both server and client
//! authentication, since every site is both to every other. Application
//! certificates carry client authentication only, and a name with a dot,
//! which no site name has: one can neither serve as a site nor be taken
//! for a peer. Nothing is ever overwritten: an existing CA, site or client
//! is an error, so a typo cannot revoke a cluster's trust root.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration as Days, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A site to certify: its name and the addresses peers reach it at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSpec {
    /// The site name: 1–63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
    pub name: String,
    /// IP addresses to put in the certificate.
    pub addresses: Vec<IpAddr>,
}

/// Why cluster identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A site argument is not `NAME` or `NAME=ADDR[,ADDR…]`, or the name is not a DNS label.
    #[error("site {0:?}: expected NAME or NAME=IP[,IP…] with NAME a lowercase DNS label (a-z, 0-9, -)")]
    BadSite(String),
    /// A file that would be written exists already.
    #[error("{0} exists already; tsod never overwrites cluster keys or certificates")]
    Exists(PathBuf),
    /// The CA files could not be read back.
    #[error("cannot use the cluster CA in {dir}: {why}")]
    Ca {
        /// The cluster directory.
        dir: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How long certificates are valid, from yesterday (clock skew between
/// sites at issue time is then harmless).
pub const DEFAULT_VALIDITY_DAYS: i64 = 825;

impl SiteSpec {
    /// Parses `NAME` or `NAME=IP[,IP…]`.
    pub fn parse(arg: &str) -> Result<Self, ClusterError> {
        let bad = || ClusterError::BadSite(arg.to_owned());
        let (name, addresses) = match arg.split_once('=') {
            None => (arg, Vec::new()),
            Some((name, list)) => {
                let addresses =
                    list.split(',').map(|a| a.trim().parse::<IpAddr>().map_err(|_| bad())).collect::<Result<_, _>>()?;
                (name, addresses)
            }
        };
        let label_ok = (1..=63).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !label_ok {
            return Err(bad());
        }
        Ok(Self { name: name.to_owned(), addresses })
    }
}

/// The directory that holds the CA key of cluster directory `dir`: `dir`
/// with `-ca` appended to its last component (`cluster` → `cluster-ca`).
pub fn ca_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_else(|| "cluster".into());
    name.push("-ca");
    dir.with_file_name(name)
}

/// Creates `dir` (if needed) with a new cluster CA certificate in it and a
/// certificate for each site, and the CA key in `ca_dir` (created 0700).
pub fn init(dir: &Path, ca_dir: &Path, sites: &[SiteSpec], validity_days: i64) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io { path: dir.to_path_buf(), source })?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(ca_dir)
            .map_err(|source| ClusterError::Io { path: ca_dir.to_path_buf(), source })?;
    }
    for site in sites {
        refuse_existing(&dir.join(format!("{}.key", site.name)))?;
    }
    let ca_key_path = ca_dir.join("ca.key");
    refuse_existing(&ca_key_path)?;
    refuse_existing(&dir.join("ca.key"))?;
    refuse_existing(&dir.join("ca.crt"))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "tsod cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, validity_days.saturating_mul(4));
    let cert = params.self_signed(&key)?;
    write_new(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join("ca.crt"), cert.pem().as_bytes(), 0o644)?;
    let issuer = Issuer::new(params, key);
    for site in sites {
        certify(dir, site, &issuer, validity_days)?;
    }
    Ok(())
}

/// The cluster CA of `dir`, with its key from `ca_dir`.
fn issuer(dir: &Path, ca_dir: &Path) -> Result<Issuer<'static, KeyPair>, ClusterError> {
    let ca_error = |why: String| ClusterError::Ca { dir: dir.to_path_buf(), why };
    let key_path = ca_dir.join("ca.key");
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| ca_error(format!("{}: {e}", key_path.display())))?;
    let cert_pem = std::fs::read_to_string(dir.join("ca.crt")).map_err(|e| ca_error(format!("ca.crt: {e}")))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| ca_error(format!("ca.key: {e}")))?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| ca_error(format!("ca.crt: {e}")))
}

/// Adds a certificate for `site` to an existing cluster directory, signed
/// with the CA key in `ca_dir`.
pub fn add_site(dir: &Path, ca_dir: &Path, site: &SiteSpec, validity_days: i64) -> Result<(), ClusterError> {
    certify(dir, site, &issuer(dir, ca_dir)?, validity_days)
}

/// Adds an application client's certificate, `<name>.client.crt` and
/// `.key` (name a DNS label, as a site's), signed with the CA key in
/// `ca_dir`: client authentication only, SAN `<name>.client`.
pub fn add_client(dir: &Path, ca_dir: &Path, name: &str, validity_days: i64) -> Result<(), ClusterError> {
    let spec = SiteSpec::parse(name)?;
    if !spec.addresses.is_empty() {
        return Err(ClusterError::BadSite(name.to_owned()));
    }
    let issuer = issuer(dir, ca_dir)?;
    let full = format!("{}.client", spec.name);
    let key_path = dir.join(format!("{full}.key"));
    let cert_path = dir.join(format!("{full}.crt"));
    refuse_existing(&key_path)?;
    refuse_existing(&cert_path)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![full.clone()])?;
    params.distinguished_name.push(DnType::CommonName, full.as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, validity_days);
    let cert = params.signed_by(&key, &issuer)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)
}

fn certify(dir: &Path, site: &SiteSpec, issuer: &Issuer<'_, KeyPair>, validity_days: i64) -> Result<(), ClusterError> {
    let key_path = dir.join(format!("{}.key", site.name));
    let cert_path = dir.join(format!("{}.crt", site.name));
    refuse_existing(&key_path)?;
    refuse_existing(&cert_path)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![site.name.clone()])?;
    params.subject_alt_names.extend(site.addresses.iter().map(|a| SanType::IpAddress(*a)));
    params.distinguished_name.push(DnType::CommonName, site.name.as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, validity_days);
    let cert = params.signed_by(&key, issuer)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)
}

/// Valid from yesterday for `days` days.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let from = Utc::now() - Days::days(1);
    let until = from + Days::days(days.max(1));
    let ymd = |d: chrono::DateTime<Utc>| {
        rcgen::date_time_ymd(d.year(), u8::try_from(d.month()).unwrap_or(1), u8::try_from(d.day()).unwrap_or(1))
    };
    params.not_before = ymd(from);
    params.not_after = ymd(until);
}

fn refuse_existing(path: &Path) -> Result<(), ClusterError> {
    if path.exists() { Err(ClusterError::Exists(path.to_path_buf())) } else { Ok(()) }
}

/// Writes a new file with `mode` (never following or replacing anything).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), ClusterError> {
    let io = |source| ClusterError::Io { path: path.to_path_buf(), source };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_arguments() {
        assert_eq!(SiteSpec::parse("bj-a").unwrap(), SiteSpec { name: "bj-a".into(), addresses: vec![] });
        let s = SiteSpec::parse("xa=127.0.0.3,::1").unwrap();
        assert_eq!(s.addresses.len(), 2);
        for bad in ["", "-a", "a-", "Bj", "a b", "a=notanip", &"x".repeat(64), "a/../b"] {
            assert!(SiteSpec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
