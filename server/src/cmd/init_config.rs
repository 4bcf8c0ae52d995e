//! `tsod init-config [--out FILE] [--force] [--root DIR]`: a commented
//! configuration that runs with the NTP servers this host already uses.
//!
//! The servers are read from the host's own time daemon, where one is
//! configured: chrony (`/etc/chrony/chrony.conf`, its `confdir`/`include`
//! files under `/etc/chrony/conf.d`, and `sourcedir` files under
//! `/etc/chrony/sources.d` and `/run/chrony-dhcp`), ntpd/ntpsec
//! (`/etc/ntpsec/ntp.conf`, `/etc/ntp.conf`) and systemd-timesyncd
//! (`NTP=` and `FallbackNTP=` in `/etc/systemd/timesyncd.conf` and its
//! `.conf.d`). With none found, Debian's pool. The Debian package runs it
//! once, when `/etc/tsod/tsod.toml` does not exist yet.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What `/etc` files name, when the host names nothing.
const FALLBACK_POOL: &str = "2.debian.pool.ntp.org";
/// At most this many servers go into the configuration.
const MAX_SERVERS: usize = 8;

/// One NTP server or pool the host's configuration names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Found {
    /// Host name or address, as written.
    pub(crate) host: String,
    /// UDP port (123 unless the file says otherwise).
    pub(crate) port: u16,
    /// A pool (several addresses behind one name).
    pub(crate) pool: bool,
    /// The file that named it.
    pub(crate) from: PathBuf,
}

pub(crate) fn run(out: Option<&Path>, force: bool, root: &Path) -> anyhow::Result<()> {
    let found = discover(root);
    let text = render(&found);
    // The result must be a configuration the daemon accepts.
    tsod::config::Config::parse(&text, Path::new("(generated)"))
        .context("the generated configuration is not valid (a bug)")?;
    match out {
        None => super::print_line(text.trim_end()),
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).mode(0o644);
            if force {
                options.create(true).truncate(true);
            } else {
                options.create_new(true);
            }
            let mut file = options
                .open(path)
                .with_context(|| format!("writing {} (it exists? --force replaces it)", path.display()))?;
            file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            file.sync_all().with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} with {} NTP source(s)", path.display(), found.len().clamp(1, MAX_SERVERS));
            Ok(())
        }
    }
}

/// The servers and pools the host's time daemons name under `root` (`/`
/// normally), in the order found, each host once (the first port named),
/// at most
/// [`MAX_SERVERS`].
pub(crate) fn discover(root: &Path) -> Vec<Found> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mut found = Vec::new();
    // chrony
    let chrony = at("/etc/chrony/chrony.conf");
    let mut chrony_files = vec![chrony.clone()];
    let mut source_dirs = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&chrony) {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("confdir") => chrony_files.extend(words.flat_map(|d| files_in(&at(d), ".conf"))),
                Some("include") => chrony_files.extend(words.map(&at)),
                Some("sourcedir") => source_dirs.extend(words.map(&at)),
                _ => {}
            }
        }
    }
    for file in
        chrony_files.iter().chain(source_dirs.iter().flat_map(|d| files_in(d, ".sources")).collect::<Vec<_>>().iter())
    {
        found.extend(chrony_sources(file));
    }
    // ntpd / ntpsec
    for file in [at("/etc/ntpsec/ntp.conf"), at("/etc/ntp.conf")] {
        found.extend(chrony_sources(&file));
    }
    // systemd-timesyncd: the drop-ins override the main file's lists.
    let mut timesyncd = vec![at("/etc/systemd/timesyncd.conf")];
    timesyncd.extend(files_in(&at("/etc/systemd/timesyncd.conf.d"), ".conf"));
    let (mut ntp, mut fallback) = (Vec::new(), Vec::new());
    for file in &timesyncd {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().map(str::trim) {
            let named =
                |key: &str| line.strip_prefix(key).map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
            if let Some(list) = named("NTP=") {
                ntp = list.into_iter().map(|h| (h, file.clone())).collect();
            } else if let Some(list) = named("FallbackNTP=") {
                fallback = list.into_iter().map(|h| (h, file.clone())).collect();
            }
        }
    }
    let timesyncd_servers = if ntp.is_empty() { fallback } else { ntp };
    for (host, from) in timesyncd_servers {
        let pool = host.contains("pool.ntp.org");
        found.push(Found { host, port: 123, pool, from });
    }
    let mut seen = BTreeSet::new();
    found.retain(|f| seen.insert(f.host.clone()));
    found.truncate(MAX_SERVERS);
    found
}

/// `server`/`pool`/`peer` lines of a chrony or ntpd file: the name, and
/// chrony's `port N` option.
fn chrony_sources(file: &Path) -> Vec<Found> {
    let Ok(text) = std::fs::read_to_string(file) else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', '!', ';']).next().unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        let pool = match words.first() {
            Some(&"pool") => true,
            Some(&"server" | &"peer") => false,
            _ => continue,
        };
        let Some(host) = words.get(1).filter(|h| valid_host(h)) else { continue };
        // ntpd's reference clocks (127.127.t.u) are not NTP servers.
        if host.starts_with("127.127.") {
            continue;
        }
        let port = words
            .windows(2)
            .find(|w| w[0] == "port")
            .and_then(|w| w[1].parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(123);
        out.push(Found { host: (*host).to_owned(), port, pool, from: file.to_path_buf() });
    }
    out
}

/// A host name or address that can go into TOML and a `host:port` as is.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
}

/// Files in `dir` whose names end with `suffix`, sorted.
fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

/// `host:port`, bracketing an IPv6 address.
fn address(f: &Found) -> String {
    if f.host.contains(':') { format!("[{}]:{}", f.host, f.port) } else { format!("{}:{}", f.host, f.port) }
}

/// A source name from a host name: lowercase letters, digits and `-`.
fn source_name(host: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    name.truncate(48);
    let base = name.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The configuration text for `found` (Debian's pool if empty).
pub(crate) fn render(found: &[Found]) -> String {
    let fallback =
        [Found { host: FALLBACK_POOL.to_owned(), port: 123, pool: true, from: PathBuf::from("(none found)") }];
    let servers = if found.is_empty() { &fallback[..] } else { found };
    let mut text = String::from(
        "# tsod configuration (generated by `tsod init-config`; edit freely).\n\
         # Reference: server/examples/*.toml in the source, and `tsod check-config`.\n\
         #\n\
         # tsod publishes an interval that contains true time, read by\n\
         # applications through /run/tsod/segment (tsod-client, `tsod now`).\n\
         # The sources below are the NTP servers this host's time daemon uses;\n\
         # tsod never sets the system clock.\n\
         \n\
         [publish]\n\
         path = \"/run/tsod/segment\"\n\
         \n\
         [clock]\n\
         # Sources that may be wrong at once; the rest out-vote them.\n\
         # max-faulty = 1\n\
         # The leap-second list (Debian's tzdata).\n\
         leap-seconds-list = \"/usr/share/zoneinfo/leap-seconds.list\"\n",
    );
    let mut taken = BTreeSet::new();
    for f in servers {
        text.push_str(&format!(
            "\n# from {}{}\n[[source]]\nkind = \"ntp\"\nname = \"{}\"\naddress = \"{}\"\ntimescale = \"utc\"\npoll-interval-ms = 16000\n{}",
            f.from.display(),
            if f.pool { " (a pool: four of its addresses, NAME-1 … NAME-4, each replaced when unreachable or a falseticker)" } else { "" },
            source_name(&f.host, &mut taken),
            address(f),
            if f.pool { "pool-size = 4\n" } else { "" }
        ));
    }
    text.push_str(
        "\n# Serve NTP to the rest of the fleet (port 123 needs CAP_NET_BIND_SERVICE,\n\
         # which the packaged unit grants):\n\
         # [ntp-server]\n\
         # listen = [\"0.0.0.0:123\", \"[::]:123\"]\n\
         \n\
         # Prometheus metrics on loopback:\n\
         # [metrics]\n\
         # listen = \"127.0.0.1:9465\"\n",
    );
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn root(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tsod-init-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, text) in files {
            let path = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn chrony_servers_pools_and_source_files_are_found_in_order() {
        let dir = root(
            "chrony",
            &[
                (
                    "/etc/chrony/chrony.conf",
                    "# comment\npool 2.debian.pool.ntp.org iburst\nserver ntp1.example.net iburst port 1123\n\
                     server 127.127.1.0\nsourcedir /etc/chrony/sources.d\nconfdir /etc/chrony/conf.d\n\
                     server bad\"host\nserver ntp1.example.net\n",
                ),
                ("/etc/chrony/sources.d/local.sources", "server 192.0.2.7 iburst\nserver 2001:db8::7\n"),
                ("/etc/chrony/conf.d/extra.conf", "peer ntp2.example.net\n"),
            ],
        );
        let found = discover(&dir);
        let hosts: Vec<(&str, u16, bool)> = found.iter().map(|f| (f.host.as_str(), f.port, f.pool)).collect();
        assert_eq!(
            hosts,
            [
                ("2.debian.pool.ntp.org", 123, true),
                ("ntp1.example.net", 1123, false),
                ("ntp2.example.net", 123, false),
                ("192.0.2.7", 123, false),
                ("2001:db8::7", 123, false),
            ]
        );
        let text = render(&found);
        assert!(text.contains("address = \"ntp1.example.net:1123\""), "{text}");
        assert!(text.contains("address = \"[2001:db8::7]:123\""), "{text}");
        let config = tsod::config::Config::parse(&text, Path::new("t")).unwrap();
        assert_eq!(config.sources.len(), 8, "the pool is four sources");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timesyncd_drop_ins_override_and_fallback_is_used_only_alone() {
        let dir = root(
            "timesyncd",
            &[(
                "/etc/systemd/timesyncd.conf",
                "[Time]\n#NTP=\nFallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org\n",
            )],
        );
        let found = discover(&dir);
        assert_eq!(
            found.iter().map(|f| f.host.as_str()).collect::<Vec<_>>(),
            ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]
        );
        std::fs::write(dir.join("etc/systemd/timesyncd.conf.d/local.conf").as_path(), "").ok();
        std::fs::create_dir_all(dir.join("etc/systemd/timesyncd.conf.d")).unwrap();
        std::fs::write(dir.join("etc/systemd/timesyncd.conf.d/local.conf"), "[Time]\nNTP=time.example.org\n").unwrap();
        let found = discover(&dir);
        assert_eq!(found.iter().map(|f| f.host.as_str()).collect::<Vec<_>>(), ["time.example.org"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_host_without_a_time_daemon_gets_debians_pool_and_a_valid_configuration() {
        let dir = root("empty", &[]);
        assert!(discover(&dir).is_empty());
        let text = render(&[]);
        assert!(text.contains("2-debian-pool-ntp-org") && text.contains("2.debian.pool.ntp.org:123"), "{text}");
        let config = tsod::config::Config::parse(&text, Path::new("t")).unwrap();
        assert_eq!(config.sources.len(), 4, "Debian's pool, four of its servers");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn writing_never_replaces_a_file_without_force() {
        let dir = root("write", &[]);
        let out = dir.join("tsod.toml");
        run(Some(&out), false, &dir).unwrap();
        assert!(run(Some(&out), false, &dir).is_err());
        std::fs::write(&out, "edited").unwrap();
        assert!(run(Some(&out), false, &dir).is_err());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "edited");
        run(Some(&out), true, &dir).unwrap();
        assert!(std::fs::read_to_string(&out).unwrap().contains("[[source]]"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
