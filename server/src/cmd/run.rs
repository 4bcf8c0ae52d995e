//! `tsod run --config FILE`: loads the configuration and runs the daemon
//! ([`tsod::daemon`]) until SIGTERM or Ctrl-C; SIGHUP reloads the sources
//! from the same file.

use std::path::Path;

use tsod::config::Config;

pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    Ok(tsod::daemon::run_reloadable(config, config_path.to_path_buf())?)
}
