//! `tsod run --config FILE`: loads the configuration and runs the daemon
//! ([`tsod::daemon`]) until SIGTERM or Ctrl-C.

use std::path::Path;

use tsod::config::Config;

pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    Ok(tsod::daemon::run(config)?)
}
