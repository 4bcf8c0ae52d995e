//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::path::PathBuf;

/// A fresh scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `$TMPDIR/tsod-<suite>-<pid>-<name>`, emptied first.
    pub(crate) fn new(suite: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsod-{suite}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
