//! # tsod-testbed (library)
//!
//! The pieces of the testbed that tests elsewhere in the workspace reuse:
//! [`sim`], simulated time sources (a gpsd and an NTP server) that take their
//! truth from the host clock and lie on request. The server's integration
//! tests dev-depend on this crate to feed real `tsod` processes, so it must
//! never depend on the `tsod` server crate itself.

pub mod sim;
