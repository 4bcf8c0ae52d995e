//! How tsbench reaches a tsod site, for every subcommand: the local
//! daemon's shared-memory segment, or a remote site over QUIC (its address
//! in `address.rs`), and the kebab-case names of each clock's failures that
//! the reports count errors by (and of the TSO client's and the hybrid
//! clock's).

mod address;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tsod_client::hlc::{HlcError, RemoteSourceError};
use tsod_client::tso::{Tso, TsoError, TsoOptions};
use tsod_client::{ClockError, LocalClock, RemoteClock, RemoteError, RemoteOptions};
use tsod_proto::shm::{SHM_DEFAULT_PATH, SHM_PATH_ENV};

pub(crate) use address::SiteAddress;

/// The segment `LocalClock::open` would open: `$TSOD_SHM`, else `/run/tsod/segment`.
pub(crate) fn default_segment() -> PathBuf {
    std::env::var_os(SHM_PATH_ENV).map_or_else(|| PathBuf::from(SHM_DEFAULT_PATH), PathBuf::from)
}

/// Opens the local daemon's segment at `path`, with a message that says
/// what to check when it cannot.
pub(crate) fn open_local(path: &Path) -> anyhow::Result<LocalClock> {
    LocalClock::open_path(path).with_context(|| {
        format!(
            "cannot open the tsod segment {}; is tsod running? Give the segment with --segment PATH or {SHM_PATH_ENV}",
            path.display()
        )
    })
}

/// The kebab-case kind of a `LocalClock` failure, for the error tallies.
pub(crate) fn clock_error_kind(error: &ClockError) -> &'static str {
    match error {
        ClockError::Bound(e) => e.name(),
        ClockError::Segment(e) => e.name(),
        ClockError::Clock(_) => "clock",
        ClockError::Open { .. } => "open",
        ClockError::Map { .. } => "map",
        ClockError::Insecure { .. } => "insecure",
        _ => "other",
    }
}

/// Which clock a subcommand reads (`commit-wait`, `uncertainty`): the
/// local daemon's segment (`--local`) or a remote site over QUIC (`--site`).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("clock").required(true).args(["local", "site"])))]
pub(crate) struct ClockArgs {
    /// Use the local tsod's bound, from its shared-memory segment.
    #[arg(long)]
    pub(crate) local: bool,
    /// Local mode: the segment file. Default: $TSOD_SHM, else /run/tsod/segment
    /// (as LocalClock::open).
    #[arg(long, value_name = "PATH", requires = "local", conflicts_with = "site")]
    pub(crate) segment: Option<PathBuf>,
    /// Use a remote site's bound over QUIC, at its tsod-client/1 address:
    /// IP:PORT or HOST:PORT (every address the name resolves to is tried in
    /// turn).
    #[arg(long, value_name = "ADDR", requires = "ca", value_parser = SiteAddress::parse)]
    pub(crate) site: Option<SiteAddress>,
    /// Remote mode: PEM file of the cluster CA (ca.crt from `tsod cluster init`).
    #[arg(long, value_name = "FILE", requires = "site", conflicts_with = "local")]
    pub(crate) ca: Option<PathBuf>,
    /// Remote mode: the site's name as its certificate carries it (e.g.
    /// bj-a). Default: the host of a --site HOST:PORT; required with an
    /// IP:PORT. An IP address given here is matched against the
    /// certificate's IP addresses instead.
    #[arg(long, value_name = "SITE", requires = "site", conflicts_with = "local")]
    pub(crate) server_name: Option<String>,
    /// Remote mode: client certificate chain (PEM), for servers that require
    /// mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires_all = ["site", "key"], conflicts_with = "local")]
    pub(crate) cert: Option<PathBuf>,
    /// Remote mode: the client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires_all = ["site", "cert"], conflicts_with = "local")]
    pub(crate) key: Option<PathBuf>,
}

/// Where [`ClockArgs`] point.
#[derive(Debug)]
pub(crate) enum ClockTarget {
    /// The local daemon's segment at this path.
    Local(PathBuf),
    /// A remote site.
    Remote(RemoteTarget),
}

impl ClockArgs {
    /// The clock the options name.
    pub(crate) fn target(&self) -> anyhow::Result<ClockTarget> {
        match (&self.site, &self.ca) {
            (Some(address), Some(ca)) => Ok(ClockTarget::Remote(RemoteTarget::new(
                "--site",
                address.clone(),
                ca.clone(),
                self.server_name.clone(),
                self.cert.clone().zip(self.key.clone()),
            )?)),
            (Some(_), None) => anyhow::bail!("--site needs --ca FILE"),
            (None, _) => Ok(ClockTarget::Local(self.segment.clone().unwrap_or_else(default_segment))),
        }
    }
}

/// A remote site and how to trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteTarget {
    /// Its `tsod-client/1` address, as given.
    pub(crate) address: SiteAddress,
    /// PEM file of the cluster CA.
    pub(crate) ca: PathBuf,
    /// The name its certificate must carry: the site's DNS name, or an IP
    /// address only when the command line gave one as `--server-name`.
    pub(crate) server_name: String,
    /// Client certificate chain and key (PEM files) for mutual TLS.
    pub(crate) identity: Option<(PathBuf, PathBuf)>,
}

impl RemoteTarget {
    /// The site at `address` (given as the command-line option `option`,
    /// `--site` or `--remote`), trusted through the CA in `ca`, verified
    /// by `server_name`, else by the host of a `HOST:PORT` address. An
    /// `IP:PORT` without a server name is refused: the client verifies the
    /// site's name, never by default the address it dials.
    pub(crate) fn new(
        option: &str,
        address: SiteAddress,
        ca: PathBuf,
        server_name: Option<String>,
        identity: Option<(PathBuf, PathBuf)>,
    ) -> anyhow::Result<Self> {
        let server_name = match (server_name, address.host_name()) {
            (Some(name), _) => name,
            (None, Some(host)) => host.to_owned(),
            (None, None) => anyhow::bail!(
                "{option} {address} is an IP address, and the site's certificate is verified by its name: pass \
                 --server-name SITE, the site's name as its certificate carries it (e.g. bj-a), or \
                 --server-name IP to verify the certificate's IP address instead"
            ),
        };
        Ok(Self { address, ca, server_name, identity })
    }

    /// The connection options: the CA, the server name, the identity.
    pub(crate) fn remote_options(&self) -> RemoteOptions {
        let mut options = RemoteOptions::new(&self.ca, self.server_name.as_str());
        options.client_identity.clone_from(&self.identity);
        options
    }

    /// Resolves the address and connects to the first of its addresses
    /// that answers, in the resolver's order; call inside a tokio runtime
    /// with IO and time enabled.
    pub(crate) async fn connect(&self) -> anyhow::Result<RemoteClock> {
        let options = self.remote_options();
        self.connect_first(|addr| RemoteClock::connect_with(addr, options.clone())).await
    }

    /// As [`RemoteTarget::connect`], a TSO client with `options` (whose
    /// `remote` field this target fills in).
    pub(crate) async fn connect_tso(&self, options: TsoOptions) -> anyhow::Result<Tso> {
        let options = TsoOptions { remote: self.remote_options(), ..options };
        self.connect_first(|addr| Tso::connect(addr, options.clone())).await
    }

    /// `connect` to each resolved address in turn until one succeeds; the
    /// error names the address as given, and every failure for a name.
    async fn connect_first<T, E, F>(&self, connect: impl Fn(SocketAddr) -> F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let addrs = self.address.resolve().await?;
        let mut failures: Vec<(SocketAddr, E)> = Vec::new();
        for &addr in &addrs {
            match connect(addr).await {
                Ok(connected) => return Ok(connected),
                Err(error) => failures.push((addr, error)),
            }
        }
        let tried = match (&self.address, failures.as_slice()) {
            (SiteAddress::Ip(_), _) | (_, [_]) => String::new(),
            (SiteAddress::Name { .. }, _) => {
                let each: Vec<String> = failures.iter().map(|(addr, error)| format!("{addr}: {error}")).collect();
                format!("; tried {}", each.join("; "))
            }
        };
        let context = format!("cannot connect to tsod at {} (CA {}{tried})", self.address, self.ca.display());
        match failures.pop() {
            Some((_, last)) => Err(anyhow::Error::new(last).context(context)),
            None => Err(anyhow::anyhow!(context)),
        }
    }
}

/// The kebab-case kind of a `RemoteClock` failure, for the error tallies;
/// refusals carry the server's error code (`refused-overloaded`).
pub(crate) fn remote_error_kind(error: &RemoteError) -> String {
    let kind = match error {
        RemoteError::Connect { .. } => "connect",
        RemoteError::Handshake { .. } => "handshake",
        RemoteError::ConnectionLost { .. } => "connection-lost",
        RemoteError::StreamAborted { .. } => "stream-aborted",
        RemoteError::Timeout { .. } => "timeout",
        RemoteError::ResponseTooLong => "response-too-long",
        RemoteError::Encode(_) => "encode",
        RemoteError::Decode(_) => "decode",
        RemoteError::UnexpectedKind { .. } => "unexpected-kind",
        RemoteError::RequestIdMismatch { .. } => "request-id-mismatch",
        RemoteError::TimescaleMismatch { .. } => "timescale-mismatch",
        RemoteError::Unsynchronized { .. } => "unsynchronized",
        RemoteError::Disrupted { .. } => "disrupted",
        RemoteError::RateLimited { .. } => "rate-limited",
        RemoteError::Refused { code, .. } => return format!("refused-{code}"),
        RemoteError::RoundTripTooLong { .. } => "round-trip-too-long",
        RemoteError::OutOfRange => "out-of-range",
        RemoteError::Clock(_) => "clock",
        RemoteError::NoSiteAnswered { .. } => "no-site-answered",
        RemoteError::Socket(_) => "socket",
        RemoteError::Bind { .. } => "bind",
        _ => "other",
    };
    kind.to_owned()
}

/// The kebab-case kind of a `Tso` failure, for the error tallies: the
/// transport's kind as [`remote_error_kind`] names it, `refused-<code>`, or
/// the variant's name (`unavailable`, `went-backwards`, `deadline-exceeded`, …).
pub(crate) fn tso_error_kind(error: &TsoError) -> String {
    let kind = match error {
        TsoError::Transport(inner) => return remote_error_kind(inner),
        TsoError::Refused { code, .. } => return format!("refused-{code}"),
        TsoError::InvalidOptions(_) => "invalid-options",
        TsoError::InvalidCount(_) => "invalid-count",
        TsoError::Unavailable { .. } => "unavailable",
        TsoError::RateLimited { .. } => "rate-limited",
        TsoError::Overloaded { .. } => "overloaded",
        TsoError::RequestIdMismatch { .. } => "request-id-mismatch",
        TsoError::CountMismatch { .. } => "count-mismatch",
        TsoError::UnexpectedKind { .. } => "unexpected-kind",
        TsoError::Decode(_) => "decode",
        TsoError::WentBackwards { .. } => "went-backwards",
        TsoError::DeadlineExceeded { .. } => "deadline-exceeded",
        TsoError::Stopped => "stopped",
    };
    kind.to_owned()
}

/// The kebab-case kind of a `HybridClock` failure whose source failure is
/// named by `source_kind`: that name for a clock without a bound, else
/// `too-far-ahead`, `exhausted` or `out-of-range`.
pub(crate) fn hlc_error_kind<E>(error: &HlcError<E>, source_kind: impl Fn(&E) -> String) -> String {
    match error {
        HlcError::Clock(inner) => source_kind(inner),
        HlcError::TooFarAhead { .. } => "too-far-ahead".to_owned(),
        HlcError::Exhausted(_) => "exhausted".to_owned(),
        HlcError::OutOfRange(_) => "out-of-range".to_owned(),
    }
}

/// The kebab-case kind of a `RemoteSource` failure: the bound's name
/// (`unsynchronized`, `disrupted`), or `not-refreshed`, `stale`, `suspended`, `clock`.
pub(crate) fn remote_source_error_kind(error: &RemoteSourceError) -> String {
    let kind = match error {
        RemoteSourceError::Bound(bound) => bound.name(),
        RemoteSourceError::NotRefreshed => "not-refreshed",
        RemoteSourceError::Stale { .. } => "stale",
        RemoteSourceError::Suspended => "suspended",
        RemoteSourceError::Clock(_) => "clock",
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::time::Duration;

    use super::*;
    use tsod_client::{BoundError, ErrorCode, ShmError};

    #[test]
    fn local_error_kinds_are_the_client_names() {
        assert_eq!(clock_error_kind(&ClockError::Bound(BoundError::Unsynchronized)), "unsynchronized");
        assert_eq!(clock_error_kind(&ClockError::Bound(BoundError::Stale)), "stale");
        assert_eq!(clock_error_kind(&ClockError::Segment(ShmError::Busy)), "busy");
        assert_eq!(clock_error_kind(&ClockError::Clock(std::io::Error::other("x"))), "clock");
    }

    #[test]
    fn remote_error_kinds_are_kebab_case() {
        let addr: SocketAddr = ([127, 0, 0, 1], 4460).into();
        let timeout = RemoteError::Timeout { addr, after: Duration::from_secs(2) };
        assert_eq!(remote_error_kind(&timeout), "timeout");
        let refused = RemoteError::Refused { code: ErrorCode::Overloaded, retry_after: None, message: String::new() };
        assert_eq!(remote_error_kind(&refused), "refused-overloaded");
        assert_eq!(remote_error_kind(&RemoteError::Unsynchronized { message: String::new() }), "unsynchronized");
        assert_eq!(remote_error_kind(&RemoteError::InvalidOptions("x".to_owned())), "other");
    }

    #[test]
    fn tso_and_hlc_error_kinds_are_kebab_case() {
        let addr: SocketAddr = ([127, 0, 0, 1], 4460).into();
        let timeout = TsoError::Transport(std::sync::Arc::new(RemoteError::Timeout { addr, after: Duration::ZERO }));
        assert_eq!(tso_error_kind(&timeout), "timeout");
        let refused = TsoError::Refused { code: ErrorCode::Unauthorized, retry_after: None, message: String::new() };
        assert_eq!(tso_error_kind(&refused), "refused-unauthorized");
        let deadline = TsoError::DeadlineExceeded {
            deadline: Duration::from_secs(3),
            attempts: 4,
            last: Box::new(TsoError::Stopped),
        };
        assert_eq!(tso_error_kind(&deadline), "deadline-exceeded");
        let unbounded: HlcError<ClockError> = HlcError::Clock(ClockError::Bound(BoundError::Stale));
        assert_eq!(hlc_error_kind(&unbounded, |e| clock_error_kind(e).to_owned()), "stale");
        assert_eq!(remote_source_error_kind(&RemoteSourceError::Bound(BoundError::Unsynchronized)), "unsynchronized");
        assert_eq!(remote_source_error_kind(&RemoteSourceError::NotRefreshed), "not-refreshed");
    }

    #[test]
    fn a_missing_segment_is_explained() {
        let path = std::env::temp_dir().join(format!("tsbench-no-such-segment-{}", std::process::id()));
        let text = open_local(&path).err().map_or_else(String::new, |e| format!("{e:#}"));
        assert!(text.contains("is tsod running?") && text.contains(&path.display().to_string()), "{text}");
    }

    fn unreachable(address: &str) -> String {
        let address = SiteAddress::parse(address).unwrap();
        let ca = PathBuf::from("/nonexistent/ca.crt");
        let target = RemoteTarget::new("--site", address, ca, Some("site-a".to_owned()), None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(target.connect()).err().map_or_else(String::new, |e| format!("{e:#}"))
    }

    #[test]
    fn the_server_name_defaults_to_a_host_name_and_is_required_with_an_ip() {
        let target = |address: &str, server_name: Option<&str>| {
            let address = SiteAddress::parse(address).unwrap();
            RemoteTarget::new("--remote", address, PathBuf::from("ca.crt"), server_name.map(str::to_owned), None)
        };
        let named = target("bj-a.example:4460", None).unwrap();
        assert_eq!(named.server_name, "bj-a.example");
        assert_eq!(named.remote_options().server_name, "bj-a.example");
        assert_eq!(target("bj-a.example:4460", Some("bj-a")).unwrap().server_name, "bj-a");
        assert_eq!(target("10.1.0.10:4460", Some("bj-a")).unwrap().server_name, "bj-a");
        // An IP address is verified only when asked for.
        assert_eq!(target("10.1.0.10:4460", Some("10.1.0.10")).unwrap().server_name, "10.1.0.10");
        for ip in ["10.1.0.10:4460", "[::1]:4460"] {
            let error = target(ip, None).unwrap_err().to_string();
            assert!(error.contains(&format!("--remote {ip} is an IP address")), "{error}");
            assert!(error.contains("pass --server-name SITE"), "{error}");
        }
    }

    #[test]
    fn a_failed_connection_names_the_address_as_given() {
        let text = unreachable("127.0.0.1:9");
        assert!(text.contains("cannot connect to tsod at 127.0.0.1:9 (CA /nonexistent/ca.crt)"), "{text}");
        let text = unreachable("localhost:9");
        assert!(text.contains("cannot connect to tsod at localhost:9"), "{text}");
    }
}
