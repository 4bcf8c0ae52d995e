//! Topologies: the built-ins, every file shipped in `testbed/topologies/`,
//! and the errors a wrong file gets.

use std::collections::HashSet;

use super::*;

/// Two sites and their link, with `extra` appended (more keys, sites or links).
fn two_sites(extra: &str) -> String {
    format!(
        r#"
name = "pair"

[[site]]
name = "a"

[[site]]
name = "b"

[[link]]
between = ["a", "b"]
one-way-ms = 1.0
{extra}"#
    )
}

fn error(text: &str) -> String {
    Topology::parse(text, "t.toml").unwrap_err().to_string()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn dr_is_two_close_sites_and_a_far_one() {
    let dr = Topology::builtin("dr").unwrap();
    assert_eq!(dr.name(), "dr");
    assert!(!dr.description().is_empty());
    let names: Vec<&str> = dr.sites().iter().map(Site::name).collect();
    assert_eq!(names, ["bj-a", "bj-b", "xa"]);
    let close = dr.link("bj-b", "bj-a").unwrap();
    assert_eq!(close.round_trip(), ms(1));
    for far in [dr.link("bj-a", "xa").unwrap(), dr.link("xa", "bj-b").unwrap()] {
        assert_eq!(far.round_trip(), ms(25));
    }
    // Every site's clock is wrong, each differently, and each has GPS and NTP.
    let offsets: HashSet<Offset> = dr.sites().iter().map(Site::clock_offset).collect();
    assert_eq!(offsets.len(), 3);
    assert!(!offsets.contains(&Offset::default()));
    assert!(dr.sites().iter().all(|s| s.gps() && s.ntp() && s.clock_drift() != Ppb::ZERO));
    assert_eq!(dr.site("bj-a").unwrap().clock_offset(), Offset::from_nanos(3_000_000));
    assert_eq!(dr.site("bj-b").unwrap().clock_drift(), Ppb::from_ppm(-15));
    assert_eq!(Topology::load("dr").unwrap(), dr);
    assert_eq!(Topology::builtin_names().next(), Some(DEFAULT_TOPOLOGY));
}

#[test]
fn global_round_trips_are_150_to_250_ms_with_one_asymmetric_link() {
    let global = Topology::builtin("global").unwrap();
    assert_eq!(global.sites().len(), 3);
    assert_eq!(global.links().len(), 3);
    for link in global.links() {
        assert!((ms(150)..=ms(250)).contains(&link.round_trip()), "{link:?}");
    }
    let asymmetric: Vec<&Link> = global.links().iter().filter(|l| l.forward_delay() != l.reverse_delay()).collect();
    assert_eq!(asymmetric.len(), 1);
    assert!(global.max_round_trip() < ms(1_000), "within tsod's default max-round-trip-ms");
}

#[test]
fn global_priority_is_global_with_virginia_preferred() {
    let global = Topology::builtin("global").unwrap();
    let preferred = Topology::builtin("global-priority").unwrap();
    assert!(global.sites().iter().all(|s| s.leader_priority().is_none()));
    let priorities: Vec<(&str, Option<u32>)> =
        preferred.sites().iter().map(|s| (s.name(), s.leader_priority())).collect();
    assert_eq!(priorities, [("shanghai", None), ("frankfurt", None), ("virginia", Some(5))]);
    // Otherwise the same cluster.
    assert_eq!(preferred.links(), global.links());
    for (a, b) in preferred.sites().iter().zip(global.sites()) {
        assert_eq!((a.name(), a.clock_offset(), a.clock_drift()), (b.name(), b.clock_offset(), b.clock_drift()));
    }
}

#[test]
fn every_shipped_topology_is_valid_and_built_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("toml"), "{}", path.display());
        let topology = Topology::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(topology.name()), path.file_stem().and_then(|s| s.to_str()), "name = file name");
        assert_eq!(Topology::builtin(topology.name()).unwrap(), topology, "the built-in is this file");
        names.push(topology.name().to_owned());
    }
    names.sort();
    let mut builtin: Vec<String> = Topology::builtin_names().map(str::to_owned).collect();
    builtin.sort();
    assert_eq!(names, builtin, "every file is built in, and every built-in is a file");
}

#[test]
fn defaults() {
    let t = Topology::parse(&two_sites(""), "t.toml").unwrap();
    let a = t.site("a").unwrap();
    assert_eq!((a.clock_offset(), a.clock_drift(), a.gps(), a.ntp()), (Offset::default(), Ppb::ZERO, true, true));
    assert_eq!(a.leader_priority(), None);
    let link = t.link("a", "b").unwrap();
    assert_eq!((link.jitter(), link.loss()), (Duration::ZERO, 0.0));
    assert_eq!(t.description(), "");
    assert!(t.link("a", "a").is_none() && t.link("a", "c").is_none() && t.site("c").is_none());
}

#[test]
fn fractional_values_convert_exactly() {
    let text = two_sites("").replace(
        "name = \"a\"",
        "name = \"a\"\nclock-offset-ms = -2.5\nclock-drift-ppm = 0.25\ngps = false\nntp = false",
    );
    let t = Topology::parse(&text, "t.toml").unwrap();
    let a = t.site("a").unwrap();
    assert_eq!((a.clock_offset(), a.clock_drift()), (Offset::from_nanos(-2_500_000), Ppb::new(250)));
    assert!(!a.gps() && !a.ntp());
}

#[test]
fn leader_priority_is_a_u32() {
    let set = |value: &str| two_sites("").replace("name = \"b\"", &format!("name = \"b\"\nleader-priority = {value}"));
    let t = Topology::parse(&set("7"), "t.toml").unwrap();
    assert_eq!((t.site("a").unwrap().leader_priority(), t.site("b").unwrap().leader_priority()), (None, Some(7)));
    assert_eq!(Topology::parse(&set("0"), "t.toml").unwrap().site("b").unwrap().leader_priority(), Some(0));
    assert_eq!(
        Topology::parse(&set("4294967295"), "t.toml").unwrap().site("b").unwrap().leader_priority(),
        Some(u32::MAX)
    );
    for bad in ["-1", "4294967296", "1.5", "\"high\""] {
        let e = error(&set(bad));
        assert!(e.contains("line 9"), "{bad}: {e}");
    }
}

#[test]
fn link_shape_maps_forward_and_reverse() {
    let text =
        two_sites("").replace("one-way-ms = 1.0", "forward-ms = 5.0\nreverse-ms = 45.0\njitter-ms = 0.5\nloss = 0.01");
    let t = Topology::parse(&text, "t.toml").unwrap();
    let link = t.link("b", "a").unwrap();
    assert_eq!(link.between(), ("a", "b"));
    let (from, to, shape) = link.shape();
    assert_eq!((from, to), ("a", "b"));
    let direction = |delay| DirectionShape { delay, jitter: Duration::from_micros(500), loss: 0.01 };
    assert_eq!(shape, LinkShape { forward: direction(ms(5)), reverse: direction(ms(45)) });
    assert_eq!(link.shape_from("a"), Some(shape));
    assert_eq!(link.shape_from("b"), Some(LinkShape { forward: direction(ms(45)), reverse: direction(ms(5)) }));
    assert_eq!(link.shape_from("c"), None);
    assert_eq!((link.round_trip(), link.max_round_trip()), (ms(50), ms(51)));
    assert_eq!(t.max_round_trip(), ms(51));
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let e = error(&two_sites("").replace("one-way-ms = 1.0", "one-way-ms = 1.0\nlatency-ms = 3"));
    assert!(e.starts_with("t.toml: "), "{e}");
    assert!(e.contains("line 13") && e.contains("latency-ms"), "{e}");
    let e = error(&two_sites("").replace("name = \"b\"", "name = \"b\"\nclock-ofset-ms = 1"));
    assert!(e.contains("line 9") && e.contains("clock-ofset-ms"), "{e}");
    let e = error(&format!("region = \"eu\"{}", two_sites("")));
    assert!(e.contains("line 1,") && e.contains("region"), "{e}");
    // A wrong type too.
    let e = error(&two_sites("").replace("one-way-ms = 1.0", "one-way-ms = \"1\""));
    assert!(e.contains("line 12"), "{e}");
}

#[test]
fn a_missing_pair_is_named() {
    let text = two_sites("\n[[site]]\nname = \"c\"\n\n[[link]]\nbetween = [\"c\", \"a\"]\none-way-ms = 2\n");
    let e = error(&text);
    assert!(e.contains(r#"no [[link]] between "b" and "c""#) && e.contains("full mesh"), "{e}");
}

#[test]
fn bad_links() {
    let text = two_sites("\n[[link]]\nbetween = [\"b\", \"a\"]\none-way-ms = 2\n");
    assert!(error(&text).contains("link #2 (b – a): another link already joins these sites"));
    let e = error(&two_sites("").replace(r#"["a", "b"]"#, r#"["a", "x"]"#));
    assert!(e.contains(r#"link #1 (a – x): between: no site is called "x""#), "{e}");
    let e = error(&two_sites("").replace(r#"["a", "b"]"#, r#"["a", "a"]"#));
    assert!(e.contains("two different sites"), "{e}");
    let e = error(&two_sites("").replace("one-way-ms = 1.0", "forward-ms = 1.0"));
    assert!(e.contains("either one-way-ms, or both forward-ms and reverse-ms"), "{e}");
    let e = error(&two_sites("").replace("one-way-ms = 1.0", "one-way-ms = 1.0\nforward-ms = 1.0\nreverse-ms = 1.0"));
    assert!(e.contains("either one-way-ms"), "{e}");
    let e = error(&two_sites("").replace("one-way-ms = 1.0", "forward-ms = 1.0\nreverse-ms = 1000.5"));
    assert!(e.contains("reverse-ms = 1000.5 must be within 0 … 1000"), "{e}");
    assert!(error(&two_sites("").replace("1.0", "-1")).contains("one-way-ms = -1 must be within 0 … 1000"));
    assert!(error(&two_sites("jitter-ms = 2000")).contains("jitter-ms = 2000 must be"));
    assert!(error(&two_sites("loss = 1.5")).contains("loss = 1.5 must be within 0 … 1"));
    assert!(error(&two_sites("loss = nan")).contains("loss = NaN must be within 0 … 1"));
    assert!(error(&two_sites("").replace(r#"["a", "b"]"#, r#"["a"]"#)).contains("line 11"));
}

#[test]
fn bad_sites() {
    let set = |key: &str| two_sites("").replace("name = \"a\"", &format!("name = \"a\"\n{key}"));
    let e = error(&set("clock-drift-ppm = 600"));
    assert!(e.contains(r#"site #1 ("a"): clock-drift-ppm = 600 must be within -500 … 500"#), "{e}");
    assert!(error(&set("clock-offset-ms = inf")).contains("clock-offset-ms = inf must be within"));
    for bad in ["A", "-a", "a-", "a_b", "", "a.b", &"x".repeat(64)] {
        let e = error(&two_sites("").replace("\"a\"", &format!("{bad:?}")));
        assert!(e.contains("must be a lowercase DNS label"), "{bad:?}: {e}");
    }
    let e = error(&two_sites("").replace("name = \"b\"", "name = \"a\""));
    assert!(e.contains(r#"site #2 ("a"): another site has the same name"#), "{e}");
    // Scenarios write site = "leader" for the TSO leader.
    let e = error(&two_sites("").replace("\"b\"", "\"leader\""));
    assert!(e.contains(r#"site #2 ("leader"): name = "leader" is reserved"#), "{e}");
    let one = "name = \"solo\"\n[[site]]\nname = \"a\"\n";
    assert!(error(one).contains("1 [[site]] given: a topology has 2 … 9 sites"));
    let mut ten = String::from("name = \"big\"\n");
    for i in 0..10 {
        ten.push_str(&format!("[[site]]\nname = \"s{i}\"\n"));
    }
    assert!(error(&ten).contains("10 [[site]] given"));
    assert!(error(&two_sites("").replace("\"pair\"", "\"Pair\"")).contains("name = \"Pair\""));
}

#[test]
fn nine_sites_in_a_full_mesh_are_allowed() {
    let mut text = String::from("name = \"nine\"\n");
    for i in 0..9 {
        text.push_str(&format!("[[site]]\nname = \"s{i}\"\n"));
    }
    for i in 0..9 {
        for j in i + 1..9 {
            text.push_str(&format!("[[link]]\nbetween = [\"s{i}\", \"s{j}\"]\none-way-ms = {i}.{j}\n"));
        }
    }
    let t = Topology::parse(&text, "t.toml").unwrap();
    assert_eq!((t.sites().len(), t.links().len()), (9, 36));
    assert_eq!(t.link("s8", "s2").unwrap().forward_delay(), Duration::from_micros(2_800));
}

#[test]
fn load_errors_name_the_file_and_the_built_ins() {
    let e = Topology::load("/nonexistent/topology.toml").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/topology.toml") && e.contains("built-in topologies: dr, global"), "{e}");
    let e = Topology::builtin("mars").unwrap_err().to_string();
    assert!(e.contains("\"mars\"") && e.contains("dr, global"), "{e}");
}
