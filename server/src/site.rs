//! What this site is right now, as everything outside the engine needs it:
//! the [`SiteView`] the daemon's main loop sends on a watch channel after
//! every tick, read by the QUIC shell (probe answers, now and status
//! requests, gossip) and by the TSO (its bounded clock and merit).
//!
//! The view holds two published states (the no-echo rule, SPEC.md §4.5):
//! the *local basis*, over this site's own sources only, which answers
//! peers' probes; and the site's published state, over every source, peers
//! included, which answers clients. Its report is this site's own
//! [`SiteSummary`] (SPEC.md §4.6), stamped with a generation when sent.

use std::time::Duration;

use tsod_proto::observe::{SiteSummary, SourceSummary};
use tsod_proto::shm::PublishedState;
use tsod_proto::{ClockStatus, DriftModel, Offset, Timescale};

use crate::engine::{SourceState, Tick};

/// What the engine last produced, as the shell and the TSO need it.
#[derive(Clone, Debug)]
pub struct SiteView {
    /// The local basis (own sources only): answers probes.
    pub local: PublishedState,
    /// The published state (all sources): answers remote clients.
    pub published: PublishedState,
    /// The local drift model, for turning probe replies into samples;
    /// `None` when the reader clock cannot be modelled (replies are refused).
    pub drift: Option<DriftModel>,
    /// This site's report for gossip and status responses (generation 0:
    /// the sender stamps its own).
    pub report: SiteSummary,
}

impl SiteView {
    /// The view after one tick of each engine: `local` over the site's own
    /// sources, `site` over all of them. A site with no sources of its own
    /// (`own_sources` false) reports its local basis as unsynchronized;
    /// `datasheet` is the drift bound reported until one is measured.
    pub fn new<'a>(
        name: &str,
        local: &Tick,
        own_sources: bool,
        site: &Tick,
        datasheet: DriftModel,
        sources: impl Iterator<Item = &'a SourceState>,
    ) -> Self {
        let published = site.state;
        let anchor = published.anchor;
        let report = SiteSummary {
            site: name.to_owned(),
            generation: 0,
            status: anchor.status,
            local_status: if own_sources { local.state.anchor.status } else { ClockStatus::Unsynchronized },
            timescale: Timescale::UtcSmear24h,
            half_width: anchor.status.is_bounded().then(|| anchor.interval.half_width()),
            drift_bound: site.model.map_or(datasheet.bound(), |m| m.bound()),
            sources: sources
                .map(|s| SourceSummary {
                    kind: s.kind,
                    name: s.name.clone(),
                    usable: s.usable,
                    falseticker: s.falseticker,
                    offset: s.offset.unwrap_or(Offset::from_nanos(0)),
                    error: s.error.unwrap_or(Duration::ZERO),
                })
                .collect(),
        };
        Self { local: local.state, published, drift: site.model, report }
    }
}
