//! Where `tsbench uncertainty` reads a bound from: the local daemon's
//! segment or a remote site. One [`Source::read`] is one sample's two
//! reads, `now` then status; a failure of either is its kebab-case kind,
//! never an error of the run.

use std::time::Duration;

use tsod_client::{LocalClock, RemoteClock};
use tsod_proto::ClockStatus;

use crate::site::{clock_error_kind, remote_error_kind};

/// One sample's reads: the half-width (or why there is none) and the
/// status (or why it could not be read).
pub(super) type Reading = (Result<Duration, String>, Result<ClockStatus, String>);

/// The clock sampled.
#[derive(Debug)]
pub(super) enum Source {
    /// `LocalClock::now()` (with the suspend check) and `LocalClock::status()`.
    Local(LocalClock),
    /// `RemoteClock::now_at()` and the site's status report (what
    /// `RemoteClock::status()` returns, with the site's name).
    Remote {
        /// The connected clock.
        clock: RemoteClock,
        /// The site's name, from its first status report.
        site: Option<String>,
    },
}

impl Source {
    /// Reads the bound, then the status. Local reads are two seqlock copies
    /// a few nanoseconds apart (a publication in between can make them
    /// disagree for that one sample); remote reads are two requests, each
    /// bounded by the client's request timeout.
    pub(super) async fn read(&mut self) -> Reading {
        match self {
            Self::Local(clock) => {
                let half_width = clock.now().map(|i| i.half_width()).map_err(|e| clock_error_kind(&e).to_owned());
                let status = clock.status().map_err(|e| clock_error_kind(&e).to_owned());
                (half_width, status)
            }
            Self::Remote { clock, site } => {
                let half_width =
                    clock.now_at().await.map(|n| n.interval.half_width()).map_err(|e| remote_error_kind(&e));
                let status = match clock.site_report().await {
                    Ok(report) => {
                        site.get_or_insert(report.site);
                        Ok(report.status)
                    }
                    Err(error) => Err(remote_error_kind(&error)),
                };
                (half_width, status)
            }
        }
    }

    /// The remote site's name, once it reported one.
    pub(super) fn site(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote { site, .. } => site.as_deref(),
        }
    }
}
