//! # tsod — the time daemon
//!
//! The daemon as a library: `tsod run` is [`daemon::run`] on a loaded
//! [`config::Config`], and the `tsod` binary (`main.rs`, `cmd/`) only
//! parses arguments, calls in here and prints. `docs/ARCHITECTURE.md` draws
//! the data flow; this is where each part lives.
//!
//! **The bound (pure, no I/O; time is an argument):**
//! * [`sample`]: a source's sample, an interval at a reader-clock instant.
//! * [`sources`]: NTP, gpsd and kernel inputs → samples ([`sources::ntp`],
//!   [`sources::gpsd`], [`sources::kernel`]).
//! * [`peer`]: other sites as sources: probe matching and sample math.
//! * [`selection`]: the intersection that out-votes falsetickers.
//! * [`frequency`]: the reader clock's measured rate and its bound ρ.
//! * [`engine`]: samples in, a published state (anchor, status) out;
//!   disruption detection.
//! * [`timescale`]: the smeared timescale and the leap guard; [`leap_list`]: the
//!   IERS leap-second schedule tzdata ships.
//! * [`clock`]: the `Clock` trait, the system clock and the simulated one.
//!
//! **The shell (I/O):**
//! * [`daemon`]: the main loop, the source tasks, the status file.
//! * [`site`]: the [`site::SiteView`] the loop hands to the shell and TSO.
//! * [`publish`]: the shared-memory segment writer (over `tsod-shm`).
//! * [`clockbound`]: the same bound in AWS ClockBound's segment layout (`[clockbound]`).
//! * [`net`]: the QUIC endpoint: peer links (probes, gossip), the client
//!   service, rate limits, the peer table.
//! * [`ntp_server`]: serving the bound to NTP clients (`[ntp-server]`):
//!   a pure core (requests, replies, stratum, rate limit) and one thread
//!   per listen socket.
//! * [`stream`]: one message per QUIC stream direction (net and TSO).
//! * [`tso`]: the replicated TSO: Raft node, leases, elections, timing,
//!   forwarding, and its answers on streams.
//! * [`tls`]: rustls configurations for mutual TLS; [`pki`]: the cluster
//!   CA and site certificates (`tsod cluster`).
//! * [`config`]: the TOML configuration and its checks.
//! * [`decode`]: `tsod decode`, a message in hex → its JSON form.
//!
//! Dependencies run one way: the pure modules import no shell module;
//! `daemon` → `net` → `tso` → `site`/`stream`; `config` → `tso::timing`.

pub mod clock;
pub mod clockbound;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod engine;
pub mod frequency;
pub mod leap_list;
pub mod metrics;
pub mod net;
pub mod ntp_server;
pub mod peer;
pub mod pki;
pub mod publish;
pub mod sample;
pub mod selection;
pub mod site;
pub mod sources;
pub mod stream;
pub mod timescale;
pub mod tls;
pub mod tso;
