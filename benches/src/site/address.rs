//! A remote site's address as the command line gives it: `IP:PORT`
//! (`127.0.0.1:4460`, `[::1]:4460`) or `HOST:PORT` (`site-a.example:4460`).
//!
//! The form is checked when the command line is parsed, so a typo fails at
//! once; a host name is resolved (the system resolver, through tokio) only
//! when the run starts. An IP address is never looked up.

use std::fmt;
use std::net::SocketAddr;

use anyhow::Context as _;

/// `IP:PORT` or `HOST:PORT`, checked for form but not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SiteAddress {
    /// An IP address and port: nothing to resolve.
    Ip(SocketAddr),
    /// A host name and port, resolved when the run starts.
    Name {
        /// The host name, as given.
        host: String,
        /// The port.
        port: u16,
    },
}

impl SiteAddress {
    /// Parses `IP:PORT` or `HOST:PORT` (clap's value parser for `--remote`
    /// and `--site`). An IPv6 address needs brackets (`[::1]:4460`); the
    /// port must be 1–65535.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(format!("{text:?}: port 0 cannot be connected to"));
            }
            return Ok(Self::Ip(addr));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("{text:?} has no port; write HOST:PORT or IP:PORT, e.g. site-a.example:4460"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(format!("{text:?} is not an address; write an IPv6 address in brackets, e.g. [::1]:4460"));
        }
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
            return Err(format!("{host:?} is not a host name (letters, digits, '-', '.' and '_' only)"));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{port:?} is not a port (1-65535)")),
            Ok(port) => port,
        };
        Ok(Self::Name { host: host.to_owned(), port })
    }

    /// The host name of a `HOST:PORT`, the default server name to verify;
    /// `None` for an `IP:PORT`.
    pub(crate) fn host_name(&self) -> Option<&str> {
        match self {
            Self::Ip(_) => None,
            Self::Name { host, .. } => Some(host),
        }
    }

    /// The addresses to try, in the resolver's order, without duplicates.
    /// Fails with a message naming the host when it resolves to nothing.
    pub(crate) async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        match self {
            Self::Ip(addr) => Ok(vec![*addr]),
            Self::Name { host, port } => {
                let found = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot resolve the host name {host:?} (of {self})"))?;
                distinct_addresses(self, found)
            }
        }
    }
}

impl fmt::Display for SiteAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// `found` in order without repeats, or an error if it is empty.
fn distinct_addresses(
    address: &SiteAddress,
    found: impl IntoIterator<Item = SocketAddr>,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut distinct: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !distinct.contains(&addr) {
            distinct.push(addr);
        }
    }
    anyhow::ensure!(
        !distinct.is_empty(),
        "{address} resolves to no address; check the host name, or give the site's IP:PORT"
    );
    Ok(distinct)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn ip_and_host_forms_parse() {
        assert_eq!(SiteAddress::parse("127.0.0.1:4460"), Ok(SiteAddress::Ip(([127, 0, 0, 1], 4460).into())));
        let v6 = SiteAddress::parse("[::1]:4460").unwrap();
        assert_eq!(v6.to_string(), "[::1]:4460");
        let name = SiteAddress::parse("site-a.example:4460").unwrap();
        assert_eq!(name, SiteAddress::Name { host: "site-a.example".to_owned(), port: 4460 });
        assert_eq!(name.to_string(), "site-a.example:4460");
        assert_eq!(SiteAddress::parse(" localhost:1 ").unwrap().to_string(), "localhost:1");
        assert_eq!(name.host_name(), Some("site-a.example"));
        assert_eq!(v6.host_name(), None);
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_hint() {
        for (bad, hint) in [
            ("site-a.example", "has no port"),
            ("127.0.0.1", "has no port"),
            ("::1:4460", "brackets"),
            ("[::1]", "brackets"),
            (":4460", "not a host name"),
            ("bad host:4460", "not a host name"),
            ("site-a:http", "not a port"),
            ("site-a:70000", "not a port"),
            ("site-a:0", "not a port"),
            ("127.0.0.1:0", "port 0"),
        ] {
            let error = SiteAddress::parse(bad).unwrap_err();
            assert!(error.contains(hint), "{bad:?}: {error}");
        }
    }

    #[test]
    fn localhost_resolves_without_the_network() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let addrs = runtime.block_on(SiteAddress::parse("localhost:4460").unwrap().resolve()).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 4460), "{addrs:?}");
        let ip = runtime.block_on(SiteAddress::parse("192.0.2.7:9").unwrap().resolve()).unwrap();
        assert_eq!(ip, vec![SocketAddr::from(([192, 0, 2, 7], 9))]);
    }

    #[test]
    fn resolving_to_nothing_is_an_error_naming_the_host() {
        let address = SiteAddress::parse("empty.example:4460").unwrap();
        let error = distinct_addresses(&address, []).unwrap_err().to_string();
        assert!(error.contains("empty.example:4460 resolves to no address"), "{error}");
        let a: SocketAddr = ([127, 0, 0, 1], 4460).into();
        let b: SocketAddr = ([127, 0, 0, 2], 4460).into();
        assert_eq!(distinct_addresses(&address, [a, b, a]).unwrap(), vec![a, b]);
    }
}
