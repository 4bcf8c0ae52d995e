//! `tsod cluster init` and `tsod cluster add-site`.

use std::path::Path;

use tsod::pki::{self, DEFAULT_VALIDITY_DAYS, SiteSpec};

pub(crate) fn init(out: &Path, sites: &[String], validity_days: Option<i64>) -> anyhow::Result<()> {
    let specs = sites.iter().map(|s| SiteSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    pki::init(out, &specs, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    super::print_line(&format!(
        "cluster CA and {} site certificate(s) in {}: {}\nkeep ca.key off the sites if you can; give each site ca.crt and its own .crt/.key",
        specs.len(),
        out.display(),
        names.join(", ")
    ))
}

pub(crate) fn add_site(dir: &Path, site: &str, validity_days: Option<i64>) -> anyhow::Result<()> {
    let spec = SiteSpec::parse(site)?;
    pki::add_site(dir, &spec, validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS))?;
    super::print_line(&format!("{}/{}.crt and {}.key written", dir.display(), spec.name, spec.name))
}
