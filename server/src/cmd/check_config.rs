//! `tsod check-config FILE`: parse and validate without running.

use std::path::Path;

use tsod::config::Config;

pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    super::print_line(&format!(
        "{}: ok ({} source{}, segment {})",
        path.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.publish.path.display()
    ))
}
