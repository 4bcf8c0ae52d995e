//! `tsod cluster init`, `tsod cluster add-site` and `tsod cluster bootstrap`.

use std::path::Path;

use anyhow::Context;

use tsod::pki::{self, DEFAULT_VALIDITY_DAYS, SiteSpec};
use tsod_client::cluster::{ClusterFile, SiteEntry};

/// The cluster file `tsod cluster init` writes beside the certificates.
pub(crate) const CLUSTER_FILE: &str = "cluster.json";

pub(crate) fn init(out: &Path, sites: &[String], validity_days: Option<i64>, client_port: u16) -> anyhow::Result<()> {
    let specs = sites.iter().map(|s| SiteSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let ca_dir = pki::ca_dir(out);
    pki::init(out, &ca_dir, &specs, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    let file = ClusterFile { ca: "ca.crt".into(), sites: specs.iter().map(|s| entry(s, client_port)).collect() };
    write_cluster_file(out, &file)?;
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    super::print_line(&format!(
        "cluster CA and {} site certificate(s) in {}: {}\nthe CA key is in {}: keep it off the sites (they refuse a cluster-dir holding it); give each site ca.crt and its own .crt/.key\n{}: every site's client address, for applications (Tso::connect_cluster, tsbench --cluster); check the addresses and ports",
        specs.len(),
        out.display(),
        names.join(", "),
        ca_dir.display(),
        out.join(CLUSTER_FILE).display()
    ))
}

/// A site's entry in the cluster file: its first address (or its name, for
/// DNS) and the client port.
fn entry(spec: &SiteSpec, port: u16) -> SiteEntry {
    let address = match spec.addresses.first() {
        Some(ip) => std::net::SocketAddr::new(*ip, port).to_string(),
        None => format!("{}:{port}", spec.name),
    };
    SiteEntry { name: spec.name.clone(), address }
}

/// Writes `dir/cluster.json` (mode 0644: it holds no secret).
fn write_cluster_file(dir: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    let path = dir.join(CLUSTER_FILE);
    let text = serde_json::to_string_pretty(file).context("encoding the cluster file")? + "\n";
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Adds `spec` to `dir/cluster.json`, if there is one and it does not list
/// the site yet (a file that does not parse is left alone, with a warning).
fn add_to_cluster_file(dir: &Path, spec: &SiteSpec, port: u16) -> anyhow::Result<Option<String>> {
    let path = dir.join(CLUSTER_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut file = match std::fs::read_to_string(&path).map(|text| ClusterFile::parse(&text, &path)) {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => return Ok(Some(format!("{e}: not updated; add {} yourself", spec.name))),
        Err(e) => return Ok(Some(format!("{}: {e}: not updated", path.display()))),
    };
    if file.sites.iter().any(|s| s.name == spec.name) {
        return Ok(Some(format!("{} already lists {}", path.display(), spec.name)));
    }
    file.sites.push(entry(spec, port));
    write_cluster_file(dir, &file)?;
    Ok(Some(format!("{} now lists {}", path.display(), spec.name)))
}

pub(crate) fn add_site(
    dir: &Path,
    ca_dir: Option<&Path>,
    site: &str,
    validity_days: Option<i64>,
    client_port: u16,
) -> anyhow::Result<()> {
    let spec = SiteSpec::parse(site)?;
    let ca_dir = ca_dir.map_or_else(|| pki::ca_dir(dir), Path::to_path_buf);
    pki::add_site(dir, &ca_dir, &spec, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    super::print_line(&format!("{}/{}.crt and {}.key written", dir.display(), spec.name, spec.name))?;
    match add_to_cluster_file(dir, &spec, client_port)? {
        Some(note) => super::print_line(&note),
        None => Ok(()),
    }
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
