//! `tsod cluster init`, `tsod cluster add-site` and `tsod cluster bootstrap`.

use std::path::Path;

use anyhow::Context;

use tsod::pki::{self, DEFAULT_VALIDITY_DAYS, SiteSpec};

pub(crate) fn init(out: &Path, sites: &[String], validity_days: Option<i64>) -> anyhow::Result<()> {
    let specs = sites.iter().map(|s| SiteSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let ca_dir = pki::ca_dir(out);
    pki::init(out, &ca_dir, &specs, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    super::print_line(&format!(
        "cluster CA and {} site certificate(s) in {}: {}\nthe CA key is in {}: keep it off the sites (they refuse a cluster-dir holding it); give each site ca.crt and its own .crt/.key",
        specs.len(),
        out.display(),
        names.join(", "),
        ca_dir.display()
    ))
}

pub(crate) fn add_site(
    dir: &Path,
    ca_dir: Option<&Path>,
    site: &str,
    validity_days: Option<i64>,
) -> anyhow::Result<()> {
    let spec = SiteSpec::parse(site)?;
    let ca_dir = ca_dir.map_or_else(|| pki::ca_dir(dir), Path::to_path_buf);
    pki::add_site(dir, &ca_dir, &spec, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    super::print_line(&format!("{}/{}.crt and {}.key written", dir.display(), spec.name, spec.name))
}

/// `tsod cluster add-client --dir DIR --name NAME`.
pub(crate) fn add_client(
    dir: &Path,
    ca_dir: Option<&Path>,
    name: &str,
    validity_days: Option<i64>,
) -> anyhow::Result<()> {
    let ca_dir = ca_dir.map_or_else(|| pki::ca_dir(dir), Path::to_path_buf);
    pki::add_client(dir, &ca_dir, name, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    super::print_line(&format!(
        "{}/{name}.client.crt and .key written: client authentication only, as {name}.client; give the application them and ca.crt",
        dir.display()
    ))
}

/// `tsod cluster bootstrap --config FILE`: writes the new-cluster marker
/// into the site's `[tso] state-dir` (created, mode 0700, durably), refusing
/// a state directory that already holds a store.
pub(crate) fn bootstrap(config_path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let config = tsod::config::Config::load(config_path)?;
    anyhow::ensure!(config.site.is_some() && config.tso.enabled, "{}: no [site] with a TSO", config_path.display());
    let dir = &config.tso.state_dir;
    let store = dir.join(tsod::tso::store::FILE_NAME);
    anyhow::ensure!(
        !store.exists(),
        "{} already holds a TSO store: a new cluster starts from empty stores only (a site that lost its store \
         rejoins without this step, once the leader has caught it up)",
        dir.display()
    );
    tsod::tso::node::create_durable_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let marker = dir.join(tsod::tso::node::NEW_CLUSTER_MARKER);
    let mut file = std::fs::File::create(&marker).with_context(|| format!("writing {}", marker.display()))?;
    file.write_all(b"this site's TSO store is part of a new cluster (tsod cluster bootstrap)\n")?;
    file.sync_all()?;
    std::fs::File::open(dir)?.sync_all()?;
    super::print_line(&format!(
        "{} written: this site may form the new TSO group; do the same at every site, then start them",
        marker.display()
    ))
}
