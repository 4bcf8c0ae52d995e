//! [`SpecError`]: why a topology or a scenario cannot be used. One type for
//! both formats, since loading either fails the same ways (an unknown
//! built-in, an unreadable file, bad TOML, an impossible value); a
//! scenario can also fail on its topology, which then nests.

use std::fmt;
use std::path::PathBuf;

/// Which of the two formats an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    /// A topology (`testbed/topologies/`).
    Topology,
    /// A scenario (`testbed/scenarios/`).
    Scenario,
}

impl SpecKind {
    /// `topologies`, `scenarios`.
    fn plural(self) -> &'static str {
        match self {
            Self::Topology => "topologies",
            Self::Scenario => "scenarios",
        }
    }
}

impl fmt::Display for SpecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Topology => "topology",
            Self::Scenario => "scenario",
        })
    }
}

/// A topology or a scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `builtin` was asked for a name it does not know.
    #[error("no built-in {kind} {name:?}; the built-in ones are {}", .builtins.join(", "))]
    UnknownBuiltin {
        /// Topology or scenario.
        kind: SpecKind,
        /// The name asked for.
        name: String,
        /// The names it knows.
        builtins: Vec<&'static str>,
    },
    /// The file could not be read.
    #[error(
        "cannot read {kind} {}: {source} (built-in {}: {})",
        .path.display(),
        .kind.plural(),
        .builtins.join(", ")
    )]
    Read {
        /// Topology or scenario.
        kind: SpecKind,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
        /// The built-in names, which the caller may have meant.
        builtins: Vec<&'static str>,
    },
    /// Not valid TOML, an unknown key, or a wrong type (the message has line and column).
    #[error("{origin}: {source}")]
    Parse {
        /// The file or built-in it came from.
        origin: String,
        /// What and where.
        source: Box<toml::de::Error>,
    },
    /// Parsed, but impossible or incomplete.
    #[error("{origin}: {what}")]
    Invalid {
        /// The file or built-in it came from.
        origin: String,
        /// Which site, link, event or key, and why.
        what: String,
    },
    /// A scenario's topology could not be loaded.
    #[error("{origin}: topology: {source}")]
    Topology {
        /// The scenario's file or built-in.
        origin: String,
        /// Why.
        source: Box<SpecError>,
    },
}

impl SpecError {
    /// [`SpecError::Parse`] of `origin`.
    pub(super) fn parse(origin: &str, source: toml::de::Error) -> Self {
        Self::Parse { origin: origin.to_owned(), source: Box::new(source) }
    }

    /// [`SpecError::Invalid`] of `origin`.
    pub(super) fn invalid(origin: &str, what: String) -> Self {
        Self::Invalid { origin: origin.to_owned(), what }
    }
}
