//! [`Builtins`]: the topologies or scenarios shipped in the binary, by
//! name, and loading one of them or else a file, the same way for both
//! formats.

use std::path::Path;

use super::error::{SpecError, SpecKind};

/// One format's built-in files: name and TOML text, in the order listed.
pub(super) struct Builtins {
    kind: SpecKind,
    files: &'static [(&'static str, &'static str)],
}

impl Builtins {
    pub(super) const fn new(kind: SpecKind, files: &'static [(&'static str, &'static str)]) -> Self {
        Self { kind, files }
    }

    /// The names, in the order listed.
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.files.iter().map(|(name, _)| *name)
    }

    /// Whether `name` is one of them.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.names().any(|builtin| builtin == name)
    }

    /// The TOML text of `name`, and the origin its errors name
    /// (`built-in topology dr`).
    pub(super) fn text(&self, name: &str) -> Result<(&'static str, String), SpecError> {
        let (name, text) = self.files.iter().find(|(builtin, _)| *builtin == name).ok_or_else(|| {
            SpecError::UnknownBuiltin { kind: self.kind, name: name.to_owned(), builtins: self.names().collect() }
        })?;
        Ok((text, format!("built-in {} {name}", self.kind)))
    }

    /// The text of the file at `path` (whose errors name the built-ins, in
    /// case a built-in was meant).
    pub(super) fn read(&self, path: &Path) -> Result<String, SpecError> {
        std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            kind: self.kind,
            path: path.to_path_buf(),
            source,
            builtins: self.names().collect(),
        })
    }
}
