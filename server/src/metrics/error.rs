//! What can go wrong with the metrics endpoint (below both the rendering
//! and the HTTP server, which share it).

use std::net::SocketAddr;

/// Why the metrics could not be rendered or served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Writing the text into memory failed: a bug in tsod or in
    /// `prometheus-client`, never the snapshot's content (report it).
    #[error("encoding the metrics failed (a bug, please report it): {0}")]
    Encode(#[from] std::fmt::Error),
    /// The listening socket could not be opened.
    #[error(
        "cannot listen on {listen} for the metrics endpoint (is another process using the port? change \
         metrics.listen): {source}"
    )]
    Bind {
        /// The configured `metrics.listen`.
        listen: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
