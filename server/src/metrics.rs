//! The OpenMetrics/Prometheus endpoint (`[metrics]`, off by default): what
//! `tsod status` shows, as metrics, over HTTP/1.1.
//!
//! The daemon already builds a [`StatusSnapshot`] once a second for the
//! status file; it also puts it, in an `Arc`, into a `watch` channel
//! ([`Snapshots`]). A scrape takes the latest one out and renders it then
//! ([`render`]), so the metrics say exactly what the status file says, and
//! the loop that publishes the bound never waits for a scrape: its side is
//! one `send_replace` of a pointer, the scrape's side one clone of it, and
//! the rendering runs on the runtime's workers with no lock held.
//!
//! * `error`: [`MetricsError`], shared by the two below.
//! * `render`: pure: a snapshot → metric families → text, in OpenMetrics
//!   or the Prometheus text format ([`Format`]); its module doc gives the
//!   naming conventions, `server/contrib/README.md` lists every metric.
//! * `http`: [`bind`] and [`serve`]: routes, content negotiation and the
//!   bounds on connections (count, header timeout, lifetime).
//! * `slots`: the connection slots' core (no I/O): a slow client gives its
//!   slot up to a newer one.
//!
//! The endpoint has no authentication: anyone who can reach the port can
//! scrape. `[metrics] listen` is refused unless it is loopback, or
//! `allow-non-loopback = true` says a firewall or proxy guards it.
//!
//! [`StatusSnapshot`]: tsod_proto::observe::StatusSnapshot

mod error;
mod http;
mod render;
mod slots;

pub use error::MetricsError;
pub use http::{CONNECTION_LIFETIME, HEADER_TIMEOUT, MAX_CONNECTIONS, Snapshots, bind, serve};
pub use render::{Format, render, render_as};
