//! `tsod tso --config FILE [--count N] [--json]`: timestamps from the
//! cluster's TSO through this site's daemon, asked over `tsod-client/1` the
//! way an application asks (through `tsod_client::tso::Tso`), with the
//! site's own certificate as the client identity.
//!
//! `tsod tso reset-fence --config FILE --reason TEXT`: this site's
//! operator's vote to lower the fence, given to the daemon through its
//! control socket (`tsod::daemon::control`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tsod::config::Config;
use tsod_client::tso::{Tso, TsoOptions};

pub(crate) fn run(config_path: &Path, count: u32, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let site = config.site.as_ref().context("the configuration has no [site]: this daemon serves no TSO")?;
    anyhow::ensure!(config.tso.enabled, "[tso] enabled = false in {}", config_path.display());
    anyhow::ensure!(count >= 1, "--count must be at least 1");
    // A wildcard listen address is reached on loopback.
    let ip = match site.listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, site.listen.port());
    let dir = &site.cluster_dir;
    let mut options = TsoOptions::new(dir.join("ca.crt"), site.name.as_str());
    options.remote.client_identity =
        Some((dir.join(format!("{}.crt", site.name)), dir.join(format!("{}.key", site.name))));
    options.deadline = Duration::from_secs(5);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    let range = runtime.block_on(async {
        let tso = Tso::connect(addr, options).await.with_context(|| format!("connecting to {addr}"))?;
        tso.reserve(count).await.with_context(|| format!("asking {} ({addr}) for {count} timestamp(s)", site.name))
    })?;
    for ts in range.iter() {
        let line = if json {
            serde_json::json!({
                "raw": ts.raw(),
                "physical-us": ts.physical_micros(),
                "logical": ts.logical(),
            })
            .to_string()
        } else {
            let micros = ts.physical_micros();
            let at = i64::try_from(micros / 1_000_000)
                .ok()
                .and_then(|s| {
                    chrono::DateTime::from_timestamp(s, u32::try_from(micros % 1_000_000).unwrap_or(0) * 1_000)
                })
                .map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            format!("{} {at} +{}", ts.raw(), ts.logical())
        };
        super::print_line(&line)?;
    }
    Ok(())
}

pub(crate) fn reset_fence(config_path: &Path, reason: &str, json: bool) -> anyhow::Result<()> {
    use tsod::daemon::control::{self, Answer, Request};
    let config = Config::load(config_path)?;
    anyhow::ensure!(config.site.is_some(), "the configuration has no [site]: this daemon serves no TSO");
    anyhow::ensure!(config.tso.enabled, "[tso] enabled = false in {}", config_path.display());
    tsod::tso::reset::check_reason(reason).map_err(anyhow::Error::msg)?;
    let path = control::control_path(&config.publish.path);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    let request = Request::ResetFence { reason: reason.to_owned() };
    let answer = runtime
        .block_on(control::ask(&path, &request))
        .with_context(|| format!("asking the daemon through {}", path.display()))?;
    let answer = match answer {
        Answer::ResetFence(a) => a,
        Answer::Error(e) => anyhow::bail!("the daemon refused the vote: {e}"),
    };
    if json {
        return super::print_line(&serde_json::to_string(&answer)?);
    }
    let o = answer.outcome;
    let line = if o.reset == 0 {
        "the vote did not count: a reset took effect meanwhile; check `tsod status`".to_owned()
    } else if o.applied {
        let (from, to) = (answer.fence_before_ns, answer.fence_after_ns);
        if to < from {
            format!(
                "fence reset #{} took effect ({} of {} votes): the fence went from {} to {}; the TSO issues again once the \
                 leader's clock passes it",
                o.reset,
                o.votes,
                o.needed,
                at(from),
                at(to)
            )
        } else {
            format!(
                "fence reset #{} took effect ({} of {} votes) and left the fence at {}: it was already no higher than true \
                 time allows",
                o.reset,
                o.votes,
                o.needed,
                at(from)
            )
        }
    } else {
        format!(
            "vote for fence reset #{} recorded ({} of {} votes): the operators of other sites confirm it with `tsod tso \
             reset-fence` at their sites within 15 minutes",
            o.reset, o.votes, o.needed
        )
    };
    super::print_line(&line)
}

/// `ns` since the epoch as an RFC 3339 UTC time.
fn at(ns: u64) -> String {
    let secs = i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
    let nanos = u32::try_from(ns % 1_000_000_000).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, nanos)
        .map_or_else(|| format!("{ns} ns"), |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}
