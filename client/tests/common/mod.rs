//! What the client's integration tests share: a scratch directory
//! ([`Scratch`]), a test PKI ([`pki::Pki`]: a CA, a server certificate for
//! `site-a` and 127.0.0.1, a client certificate) and a `tsod-client/1` server skeleton
//! ([`server::TestServer`]: its own thread and runtime, stopped gracefully
//! or as if it crashed), to which each test file gives its answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub,
    reason = "test code: a failed unwrap is a failed test; each test crate uses part of this module"
)]

pub mod pki;
pub mod server;

use std::path::PathBuf;

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// An empty `tsod-client-<name>-<pid>` in the system's temporary directory.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsod-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
