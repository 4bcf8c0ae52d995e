//! Who the server says it is: stratum and reference ID (RFC 5905 §7.3),
//! from the sources the last selection kept (SPEC.md §2.7, "Stratum").
//!
//! Each local source task records what it last handed on in the
//! [`Upstreams`] table: gpsd a reference clock (stratum 0, `GPS`, or `PPS`
//! when the sample rested on a pulse), an NTP source its server's stratum
//! and address. Peers and the kernel are recorded at start as upstreams
//! whose stratum tsod cannot see ([`UNKNOWN_STRATUM`]).
//!
//! The served stratum is one more than the smallest upstream stratum among
//! the truechimers (usable and not out-voted), with that upstream's
//! reference ID: 1 when the bound rests on GPS. While no source is usable
//! (holdover) the last identity stays. The rule only ever names a source
//! the bound rests on; it is an honest hop count, not an accuracy claim —
//! the root dispersion carries that.

use std::net::IpAddr;
use std::sync::Mutex;

use tsod_proto::wire::SourceKind;

use super::refid::address_refid;
use crate::sources::ntp::ReferenceId;

/// The stratum counted for an upstream tsod cannot see into (the kernel's
/// discipline, a peer site): tsod then serves 10, as deep as chrony's
/// `local stratum` default and ntpd's orphan mode, leaving clients room
/// below it.
pub const UNKNOWN_STRATUM: u8 = 9;
/// NTP's "unsynchronized" stratum.
pub const UNSYNCHRONIZED_STRATUM: u8 = 16;

/// What one source rests on, as the NTP server names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The upstream's own stratum (0 for a reference clock).
    pub stratum: u8,
    /// Its reference ID: a reference clock's code, or the upstream's address.
    pub reference_id: ReferenceId,
}

impl Upstream {
    /// A GPS receiver; `pps` when the sample rests on its pulse.
    pub const fn gps(pps: bool) -> Self {
        Self { stratum: 0, reference_id: ReferenceId(if pps { *b"PPS\0" } else { *b"GPS\0" }) }
    }

    /// An NTP server at `address` that answered at `stratum`.
    pub fn ntp(stratum: u8, address: IpAddr) -> Self {
        Self { stratum, reference_id: address_refid(address) }
    }

    /// An upstream whose stratum tsod cannot see, at `address` (a peer
    /// site; the host's own discipline for the kernel source, 127.0.0.1).
    pub fn unknown(address: IpAddr) -> Self {
        Self { stratum: UNKNOWN_STRATUM, reference_id: address_refid(address) }
    }
}

/// Each source's [`Upstream`], by source index (local sources in
/// configuration order, then peers: the engine's order). Written by the
/// source tasks, read by the NTP server once per published tick.
#[derive(Debug, Default)]
pub struct Upstreams(Mutex<std::collections::HashMap<String, Upstream>>);

impl Upstreams {
    /// A table with no source known yet.
    pub fn new() -> Self {
        Self(Mutex::default())
    }

    /// Records that the source named `name` rests on `upstream` (by name,
    /// so a reload that adds or removes sources keeps the table right).
    pub fn set(&self, name: &str, upstream: Upstream) {
        let mut table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.insert(name.to_owned(), upstream);
    }

    /// The upstream of each source named in `names`, in that order.
    pub fn of<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<Option<Upstream>> {
        let table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        names.map(|n| table.get(n).copied()).collect()
    }
}

/// A source as selection last judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judged {
    /// Its kind.
    pub kind: SourceKind,
    /// It has a sample young enough to use.
    pub usable: bool,
    /// Selection out-voted it.
    pub falseticker: bool,
}

/// Stratum and reference ID as served while the bound is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 1 … 15, or [`UNSYNCHRONIZED_STRATUM`] when the only upstreams are at 15.
    pub stratum: u8,
    /// The upstream's reference ID.
    pub reference_id: ReferenceId,
}

impl Identity {
    /// Before any source was seen (a bound adopted from a previous daemon):
    /// an unknown upstream on this host.
    pub fn unknown() -> Self {
        Self { stratum: UNKNOWN_STRATUM.saturating_add(1), reference_id: ReferenceId([127, 0, 0, 1]) }
    }

    /// The reference ID as text: four letters for a reference clock, else
    /// the address (or address hash) in dotted form.
    pub fn reference_name(&self) -> String {
        let id = self.reference_id.0;
        if self.stratum <= 1 {
            id.iter().take_while(|b| **b != 0).map(|b| char::from(*b)).collect()
        } else {
            format!("{}.{}.{}.{}", id[0], id[1], id[2], id[3])
        }
    }
}

/// The identity the truechimers among `sources` give (`upstreams` by the
/// same index), or `None` when no truechimer has one (holdover: keep the
/// last).
pub fn identity(sources: &[Judged], upstreams: &[Option<Upstream>]) -> Option<Identity> {
    sources
        .iter()
        .zip(upstreams)
        .filter(|(s, _)| s.usable && !s.falseticker)
        .filter_map(|(_, u)| *u)
        .min_by_key(|u| u.stratum)
        .map(|u| Identity {
            stratum: u.stratum.saturating_add(1).min(UNSYNCHRONIZED_STRATUM),
            reference_id: u.reference_id,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(kind: SourceKind, usable: bool, falseticker: bool) -> Judged {
        Judged { kind, usable, falseticker }
    }

    #[test]
    fn gps_among_the_truechimers_makes_stratum_1() {
        let sources = [judged(SourceKind::Ntp, true, false), judged(SourceKind::Gpsd, true, false)];
        let upstreams = [Some(Upstream::ntp(2, "192.0.2.7".parse().unwrap())), Some(Upstream::gps(true))];
        let id = identity(&sources, &upstreams).unwrap();
        assert_eq!((id.stratum, id.reference_name()), (1, "PPS".to_owned()));
        let serial = [None, Some(Upstream::gps(false))];
        assert_eq!(identity(&sources, &serial).unwrap().reference_name(), "GPS");
    }

    #[test]
    fn otherwise_one_more_than_the_best_ntp_server_with_its_address() {
        let sources = [
            judged(SourceKind::Ntp, true, false),
            judged(SourceKind::Ntp, true, false),
            judged(SourceKind::Gpsd, true, true), // an out-voted GPS is not rested on
        ];
        let upstreams = [
            Some(Upstream::ntp(3, "192.0.2.3".parse().unwrap())),
            Some(Upstream::ntp(2, "192.0.2.2".parse().unwrap())),
            Some(Upstream::gps(true)),
        ];
        let id = identity(&sources, &upstreams).unwrap();
        assert_eq!((id.stratum, id.reference_id), (3, ReferenceId([192, 0, 2, 2])));
        assert_eq!(id.reference_name(), "192.0.2.2");
    }

    #[test]
    fn peers_and_the_kernel_count_as_unknown_and_stratum_15_upstreams_as_16() {
        let sources = [judged(SourceKind::Peer, true, false), judged(SourceKind::Kernel, false, false)];
        let upstreams = [Some(Upstream::unknown("10.0.0.2".parse().unwrap())), None];
        assert_eq!(identity(&sources, &upstreams).unwrap().stratum, 10);
        let deep = [Some(Upstream::ntp(15, "10.0.0.3".parse().unwrap())), None];
        assert_eq!(identity(&sources, &deep).unwrap().stratum, UNSYNCHRONIZED_STRATUM);
    }

    #[test]
    fn no_usable_truechimer_gives_no_identity() {
        let sources = [judged(SourceKind::Gpsd, false, false)];
        assert_eq!(identity(&sources, &[Some(Upstream::gps(true))]), None);
        assert_eq!(Identity::unknown().stratum, 10);
        // The table is by name: a reload that adds or removes sources keeps
        // each source's upstream.
        let table = Upstreams::new();
        table.set("gps", Upstream::gps(false));
        table.set("ntp", Upstream::gps(true));
        assert_eq!(table.of(["kernel", "gps"].into_iter()), vec![None, Some(Upstream::gps(false))]);
    }
}
