//! # tsod-testbed (library)
//!
//! The pieces of the testbed that tests elsewhere in the workspace reuse:
//! [`sim`], simulated time sources (a gpsd and an NTP server) that take their
//! truth from the host clock and lie on request. The server's integration
//! tests dev-depend on this crate to feed real `tsod` processes, so it must
//! never depend on the `tsod` server crate itself. [`wan`] emulates the WAN
//! links between sites: a UDP relay on loopback that delays, jitters, loses
//! and partitions the peer traffic it carries.
//! [`spec`] holds the testbed's data formats (TOML), topologies and
//! scenarios: which sites a cluster has and how they are linked, and which
//! faults happen to it when; built-in ones ship in `testbed/topologies/`
//! and `testbed/scenarios/`. [`tso`] puts the cluster's TSO under load
//! while it runs, judges the timestamps (no duplicate, real-time order,
//! honest physical parts) and reads which site leads.
//! [`ports`] picks loopback ports for daemons where port-0 sockets cannot
//! take them first. [`status_file`] reads a site's status file as the
//! daemon's own schema (`tsod_proto::observe`), [`description`] is
//! `cluster.json` (where a running cluster's sites are, read back by
//! `tsbench`), [`links_file`] is `links.json` (what the WAN relays
//! carried, for the measuring scripts), and [`plot::axis`] the axis code
//! `tsbench`'s plot shares.
//! [`truth`] is true time on the service timescale (the host's realtime,
//! shifted and smeared for a scenario's leap second: the testbed's own
//! arithmetic, never the daemon's), and [`leap_list`] the
//! `leap-seconds.list` every daemon of a cluster reads.
//!
//! Who uses whom, one way only: [`truth`] depends on nothing here;
//! [`spec`] (formats) depends on [`wan`] (shapes) and [`truth`] (a leap's
//! sign); [`sim`] and [`leap_list`] on [`truth`]; [`links_file`] on
//! [`wan`] (its counters); [`cluster`] runs a topology with [`sim`],
//! [`wan`], [`leap_list`] and [`links_file`]; [`timeline`] runs a
//! scenario on a cluster with [`checker`], [`tso`] and [`status_file`];
//! the binary adds [`view`].

pub mod checker;
pub mod cluster;
pub mod description;
pub mod leap_list;
pub mod links_file;
pub mod plot;
pub mod ports;
pub mod sim;
pub mod spec;
pub mod status_file;
pub mod timeline;
pub mod truth;
pub mod tso;
pub mod view;
pub mod wan;
