//! Where `tsbench clients` connects from: each client its own source
//! address, spread over the /24s of an IPv4 range (`--sources`, e.g.
//! `127.0.0.0/8`, all of it this host's on Linux), at most `--per-prefix`
//! in each, since a tsod site counts connections per /24
//! (`max-connections-per-prefix`, default 64).
//!
//! Client `i` takes /24 number `i / per_prefix` of the range, in address
//! order, and host `2 + i % per_prefix` in it: `.0`, `.1` and `.255` are
//! never used (the network, the address a host's services usually take,
//! broadcast), so at most 253 per /24.

use std::fmt;
use std::net::Ipv4Addr;

/// The most clients one /24 can hold here: hosts `.2` … `.254`.
pub(crate) const MAX_PER_PREFIX: u32 = 253;
/// The first host number used in each /24.
const FIRST_HOST: u32 = 2;

/// An IPv4 range of whole /24s: `a.b.c.d/len` with `len` 8 … 24 and no
/// bits set below the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceRange {
    base: u32,
    len: u8,
}

impl SourceRange {
    /// Parses `a.b.c.d/len` (the `--sources` value).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (ip, len) =
            text.trim().split_once('/').ok_or_else(|| format!("{text:?} is not a range such as 127.0.0.0/8"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let len: u8 = len.parse().map_err(|_| format!("{len:?} is not a prefix length"))?;
        if !(8..=24).contains(&len) {
            return Err(format!("/{len}: the range must be /8 … /24 (whole /24s, each a prefix the server counts)"));
        }
        let base = u32::from(ip);
        let host_bits = 32 - u32::from(len);
        if base & ((1u32 << host_bits) - 1) != 0 {
            let network = Ipv4Addr::from(base >> host_bits << host_bits);
            return Err(format!("{ip}/{len} has host bits set; did you mean {network}/{len}?"));
        }
        Ok(Self { base, len })
    }

    /// How many /24s the range holds.
    pub(crate) fn prefixes(&self) -> u32 {
        1u32 << (24 - u32::from(self.len))
    }

    /// How many clients fit at `per_prefix` a /24.
    pub(crate) fn capacity(&self, per_prefix: u32) -> u64 {
        u64::from(self.prefixes()) * u64::from(per_prefix.min(MAX_PER_PREFIX))
    }

    /// Client `index`'s source address, or `None` past the range's
    /// capacity (or with `per_prefix` 0 or above [`MAX_PER_PREFIX`]).
    pub(crate) fn address(&self, index: u64, per_prefix: u32) -> Option<Ipv4Addr> {
        if per_prefix == 0 || per_prefix > MAX_PER_PREFIX || index >= self.capacity(per_prefix) {
            return None;
        }
        let prefix = u32::try_from(index / u64::from(per_prefix)).ok()?;
        let host = u32::try_from(index % u64::from(per_prefix)).ok()? + FIRST_HOST;
        Some(Ipv4Addr::from(self.base + (prefix << 8) + host))
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::collections::{HashMap, HashSet};

    use super::*;

    #[test]
    fn ranges_parse_and_refuse_what_is_not_whole_slash_24s() {
        let r = SourceRange::parse("127.0.0.0/8").unwrap();
        assert_eq!((r.prefixes(), r.to_string()), (65_536, "127.0.0.0/8".to_owned()));
        assert_eq!(SourceRange::parse("10.1.2.0/24").unwrap().prefixes(), 1);
        assert_eq!(SourceRange::parse(" 127.64.0.0/10 ").unwrap().prefixes(), 16_384);
        for (bad, why) in [
            ("127.0.0.1", "not a range"),
            ("127.0.0.1/8", "did you mean 127.0.0.0/8"),
            ("127.0.0.0/25", "/8 … /24"),
            ("0.0.0.0/0", "/8 … /24"),
            ("::1/128", "not an IPv4 address"),
            ("127.0.0.0/x", "prefix length"),
        ] {
            let error = SourceRange::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn clients_fill_each_slash_24_up_to_its_share_skipping_0_1_and_255() {
        let r = SourceRange::parse("127.0.0.0/8").unwrap();
        assert_eq!(r.address(0, 50), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(r.address(49, 50), Some(Ipv4Addr::new(127, 0, 0, 51)));
        assert_eq!(r.address(50, 50), Some(Ipv4Addr::new(127, 0, 1, 2)));
        // 10 000 clients at 50 a /24: 200 /24s, none over its share, all distinct.
        let addresses: Vec<Ipv4Addr> = (0..10_000).map(|i| r.address(i, 50).unwrap()).collect();
        assert_eq!(addresses.iter().collect::<HashSet<_>>().len(), 10_000);
        let mut per_prefix: HashMap<[u8; 3], u32> = HashMap::new();
        for a in &addresses {
            let [x, y, z, host] = a.octets();
            assert_eq!(x, 127);
            assert!((2..=254).contains(&host), "{a}");
            *per_prefix.entry([x, y, z]).or_default() += 1;
        }
        assert_eq!(per_prefix.len(), 200);
        assert!(per_prefix.values().all(|&n| n == 50));
        assert_eq!(addresses.last(), Some(&Ipv4Addr::new(127, 0, 199, 51)));
        // Past the 256th /24 the second octet moves on.
        assert_eq!(r.address(256 * 10, 10), Some(Ipv4Addr::new(127, 1, 0, 2)));
    }

    #[test]
    fn capacity_bounds_the_addresses() {
        let r = SourceRange::parse("10.9.8.0/24").unwrap();
        assert_eq!(r.capacity(253), 253);
        assert_eq!(r.address(252, 253), Some(Ipv4Addr::new(10, 9, 8, 254)));
        assert_eq!(r.address(253, 253), None);
        assert_eq!(r.address(0, 0), None);
        assert_eq!(r.address(0, 254), None, "only .2 … .254");
        let wide = SourceRange::parse("127.0.0.0/8").unwrap();
        assert_eq!(wide.capacity(253), 65_536 * 253);
        assert_eq!(wide.address(65_536 * 253 - 1, 253), Some(Ipv4Addr::new(127, 255, 255, 254)));
    }
}
