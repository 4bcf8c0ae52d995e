//! `[clockbound]`: also publish the bound in AWS ClockBound's shared-memory
//! layout ([`crate::clockbound`], SPEC.md §5.8), so that ClockBound's
//! readers (libclockbound, the `clock-bound-client` crate, YugabyteDB's
//! `time_source=clockbound`) run unchanged on tsod.
//!
//! Off unless the section is present; `[clockbound]` alone publishes at
//! ClockBound's default path, [`ClockBoundConfig::DEFAULT_PATH`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[clockbound]`: the ClockBound-compatible segment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClockBoundConfig {
    /// Where the segment is published (default [`ClockBoundConfig::DEFAULT_PATH`]).
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// How much the system clock's discipline may change the rate of
    /// `CLOCK_MONOTONIC` (and so of `CLOCK_REALTIME`) between two
    /// measurements, in ppm (default [`ClockBoundConfig::DEFAULT_SLEW_ALLOWANCE_PPM`]):
    /// added to the published drift so that the bound readers compute stays
    /// true when it does (SPEC.md §5.8).
    #[serde(default = "default_slew_allowance")]
    pub slew_allowance_ppm: u32,
}

fn default_path() -> PathBuf {
    PathBuf::from(ClockBoundConfig::DEFAULT_PATH)
}

fn default_slew_allowance() -> u32 {
    ClockBoundConfig::DEFAULT_SLEW_ALLOWANCE_PPM
}

impl Default for ClockBoundConfig {
    fn default() -> Self {
        Self { path: default_path(), slew_allowance_ppm: Self::DEFAULT_SLEW_ALLOWANCE_PPM }
    }
}

impl ClockBoundConfig {
    /// ClockBound's own default path, where its readers look first.
    pub const DEFAULT_PATH: &str = "/var/run/clockbound/shm0";
    /// 500 ppm: the rate at which `adjtime(3)` slews, and the most the
    /// kernel's frequency (`ADJ_FREQUENCY`) may be set off zero.
    pub const DEFAULT_SLEW_ALLOWANCE_PPM: u32 = 500;
    /// The largest allowance accepted, 100 000 ppm (10 %): chronyd slews at
    /// most 83 333 ppm.
    pub const MAX_SLEW_ALLOWANCE_PPM: u32 = 100_000;

    /// Checks the section against the rest of the configuration
    /// (`segment`: tsod's own segment path); the error names the key and
    /// says what to do.
    pub fn validate(&self, segment: &Path) -> Result<(), String> {
        let path = self.path.display();
        if !self.path.is_absolute() || self.path.file_name().is_none() {
            return Err(format!(
                "clockbound.path = \"{path}\": give the absolute path of a file, as ClockBound's readers need one \
                 (default {})",
                Self::DEFAULT_PATH
            ));
        }
        let beside = |p: &Path, suffix: &str| {
            let mut name = p.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let taken = [
            segment.to_path_buf(),
            beside(segment, ".lock"),
            beside(segment, ".status.json"),
            beside(segment, ".control"),
        ];
        if taken.contains(&self.path) || beside(&self.path, ".lock") == segment {
            return Err(format!(
                "clockbound.path = \"{path}\" collides with tsod's own segment {} or the files beside it; publish \
                 the ClockBound segment elsewhere (default {})",
                segment.display(),
                Self::DEFAULT_PATH
            ));
        }
        if self.slew_allowance_ppm > Self::MAX_SLEW_ALLOWANCE_PPM {
            return Err(format!(
                "clockbound.slew-allowance-ppm = {} must be at most {}",
                self.slew_allowance_ppm,
                Self::MAX_SLEW_ALLOWANCE_PPM
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        clockbound: Option<ClockBoundConfig>,
    }

    fn parse(text: &str) -> Result<Option<ClockBoundConfig>, String> {
        toml::from_str::<File>(text).map(|f| f.clockbound).map_err(|e| e.to_string())
    }

    const SEGMENT: &str = "/run/tsod/segment";

    #[test]
    fn absent_is_off_and_an_empty_section_publishes_at_clockbounds_default_path() {
        assert_eq!(parse("").unwrap(), None);
        let on = parse("[clockbound]").unwrap().unwrap();
        assert_eq!(on, ClockBoundConfig::default());
        assert_eq!(on.path, Path::new("/var/run/clockbound/shm0"));
        assert_eq!(on.slew_allowance_ppm, 500);
        on.validate(Path::new(SEGMENT)).unwrap();
        let custom = parse("[clockbound]\npath = \"/run/cb/shm1\"\nslew-allowance-ppm = 50").unwrap().unwrap();
        assert_eq!((custom.path.as_path(), custom.slew_allowance_ppm), (Path::new("/run/cb/shm1"), 50));
        custom.validate(Path::new(SEGMENT)).unwrap();
    }

    #[test]
    fn relative_colliding_and_out_of_range_settings_are_refused_with_the_key() {
        for (text, says) in [
            ("path = \"shm0\"", "absolute"),
            ("path = \"/\"", "absolute"),
            ("path = \"/run/tsod/segment\"", "collides"),
            ("path = \"/run/tsod/segment.lock\"", "collides"),
            ("path = \"/run/tsod/segment.status.json\"", "collides"),
            ("path = \"/run/tsod/segment.control\"", "collides"),
            ("slew-allowance-ppm = 100001", "at most 100000"),
        ] {
            let config = parse(&format!("[clockbound]\n{text}")).unwrap().unwrap();
            let error = config.validate(Path::new(SEGMENT)).unwrap_err();
            assert!(error.contains(says) && error.contains("clockbound."), "{text}: {error}");
        }
        // tsod's segment must not be the lock file of the ClockBound one either.
        let config = parse("[clockbound]\npath = \"/run/tsod/seg\"").unwrap().unwrap();
        assert!(config.validate(Path::new("/run/tsod/seg.lock")).unwrap_err().contains("collides"));
        assert!(parse("[clockbound]\nmax-drift = 1").unwrap_err().contains("unknown field"));
    }
}
