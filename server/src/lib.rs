//! # tsod — the time daemon
//!
//! Will hold (see `ARCHITECTURE.md`): the `Clock` abstraction, time sources
//! (NTP, gpsd, kernel, peers) as sans-IO state machines, the bound model and
//! selection, shared-memory publication, the QUIC peer and client endpoints,
//! and the replicated TSO. Today it holds the command-line tools that work
//! on the protocol itself.

pub mod clock;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod frequency;
pub mod inspect;
pub mod net;
pub mod peer;
pub mod publish;
pub mod sample;
pub mod selection;
pub mod sources;
pub mod status_file;
pub mod timescale;
pub mod tls;
pub mod tso;
