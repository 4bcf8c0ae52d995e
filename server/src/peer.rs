//! Other sites as time sources, sans-IO: probe matching and the sample math
//! ([`probe`]). The QUIC shell that carries probes, gossip and client
//! requests lives in [`crate::net`].
//!
//! The no-echo rule (SPEC.md §4.5) is what makes peers safe to count as
//! independent sources: a site answers probes from its *local basis* (its
//! own NTP, gpsd and kernel sources, selected without any peer), so no
//! site's error can come back to it through a cycle of peers. The daemon
//! keeps two engines for that: one over the local sources only, whose bound
//! answers probes, and one over every source, peers included, whose bound
//! it publishes.

pub mod probe;
