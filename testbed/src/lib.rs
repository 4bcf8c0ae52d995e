//! # tsod-testbed (library)
//!
//! The pieces of the testbed that tests elsewhere in the workspace reuse:
//! [`sim`], simulated time sources (a gpsd and an NTP server) that take their
//! truth from the host clock and lie on request. The server's integration
//! tests dev-depend on this crate to feed real `tsod` processes, so it must
//! never depend on the `tsod` server crate itself. [`wan`] emulates the WAN
//! links between sites: a UDP relay on loopback that delays, jitters, loses
//! and partitions the peer traffic it carries.

pub mod sim;
pub mod wan;
