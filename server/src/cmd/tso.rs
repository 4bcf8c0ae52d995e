//! `tsod tso --config FILE [--count N] [--json]`: timestamps from the
//! cluster's TSO through this site's daemon, asked over `tsod-client/1` the
//! way an application asks (through `tsod_client::tso::Tso`), with the
//! site's own certificate as the client identity.

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
    let mut options = TsoOptions::new(dir.join("ca.crt"));
    options.remote.server_name = Some(site.name.clone());
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
