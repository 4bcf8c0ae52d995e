//! `tsod check-config FILE`: parse and validate without running. With a
//! `[site]`, also the site's TLS files in its cluster directory: the CA,
//! the site's certificate and key, checked by a handshake with itself
//! ([`tsod::tls::check_identity`]); `--syntax-only` skips them (to check a
//! configuration away from the machine it is for).

use std::path::Path;

use anyhow::Context as _;
use tsod::config::Config;
use tsod::tso::timing::{RoundTrips, StaticTiming, Timing};

pub(crate) fn run(path: &Path, syntax_only: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let mut line = format!(
        "{}: ok ({} source{}, segment {})",
        path.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.publish.path.display()
    );
    if let (Some(_), true) = (&config.site, config.tso.enabled) {
        // What the TSO's timing would be at the declared round trip (it is
        // derived from the measured ones when running).
        if let Some(rtt) = config.tso.declared_round_trip() {
            let rtt = RoundTrips::uniform(rtt);
            let t = Timing::derive(rtt, config.tso.overrides(), StaticTiming::at_start(rtt));
            line.push_str(&format!(
                "; TSO at a {} ms round trip: heartbeat {} ms, election {} ms, lease {} ms",
                rtt.max.as_millis(),
                t.heartbeat.as_millis(),
                t.election.as_millis(),
                t.lease.as_millis()
            ));
        }
    }
    if let (Some(site), false) = (&config.site, syntax_only) {
        tsod::tls::check_identity(&site.cluster_dir, &site.name)
            .with_context(|| format!("{}: the TLS files of site {}", path.display(), site.name))?;
        line.push_str(&format!("; site {}'s certificate verifies under {}", site.name, site.cluster_dir.display()));
    }
    super::print_line(&line)?;
    for warning in config.voting_warnings().into_iter().chain(config.pps_warnings(tsod::config::kernel_pps_present())) {
        super::print_line(&format!("{}: warning: {warning}", path.display()))?;
    }
    if let Some(warning) = leap_list_warning(&config) {
        super::print_line(&format!("{}: warning: {warning}", path.display()))?;
    }
    Ok(())
}

/// Whether the leap-second list is missing, unusable or expired (SPEC.md
/// §2.5: `utc` sources then widen around every month end after it).
fn leap_list_warning(config: &Config) -> Option<String> {
    let Some(path) = &config.clock.leap_seconds_list else {
        return Some("no leap-second list (clock.leap-seconds-list = \"\"): utc sources widen by up to 0.5 s around every month end".into());
    };
    let now = tsod_proto::Timestamp::try_from(chrono::Utc::now()).ok()?;
    match tsod::leap_list::LeapList::load(path) {
        Err(e) => Some(format!("{e}: utc sources widen by up to 0.5 s around every month end")),
        Ok(list) if list.is_expired(now) => Some(format!(
            "the leap-second list {} expired on {} (update tzdata): utc sources widen by up to 0.5 s around every month end after it",
            path.display(),
            list.expires()
        )),
        Ok(_) => None,
    }
}
