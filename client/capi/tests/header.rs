//! `include/tsod.h` is what cbindgen generates from `src/` with
//! `cbindgen.toml`: regenerated here and compared, so the checked-in
//! header cannot drift from the library. To update it after changing the
//! API:
//!
//! ```text
//! TSOD_UPDATE_HEADER=1 cargo test -p tsod-capi --test header
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;

#[test]
fn the_checked_in_header_is_the_generated_one() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include").join("tsod.h");
    if std::env::var_os("TSOD_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first = checked_in.lines().zip(generated.lines()).position(|(a, b)| a != b);
        panic!(
            "{} is out of date with client/capi/src (first difference at line {}); regenerate it with\n\n    \
             TSOD_UPDATE_HEADER=1 cargo test -p tsod-capi --test header\n\nand commit it",
            path.display(),
            first.map_or_else(|| "the end".to_owned(), |l| (l + 1).to_string())
        );
    }
}

/// The header compiles as C and as C++ (cbindgen's `cpp_compat`), warnings
/// as errors, when a compiler is there.
#[test]
#[cfg_attr(tsod_no_cc, ignore = "needs a C compiler (cc): apt-get install gcc")]
fn the_header_compiles_as_c_and_cpp() {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let dir = std::env::temp_dir().join(format!("tsod-capi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("include.c");
    std::fs::write(&source, "#include <tsod.h>\nint main(void) { return TSOD_OK; }\n").unwrap();
    let compilers: &[(&str, &[&str])] = &[("cc", &["-std=c99"]), ("c++", &["-x", "c++"])];
    for (compiler, flags) in compilers {
        if *compiler == "c++" && std::process::Command::new("c++").arg("--version").output().is_err() {
            continue;
        }
        let output = std::process::Command::new(compiler)
            .args(*flags)
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-I"])
            .arg(&include)
            .arg(&source)
            .output()
            .unwrap();
        assert!(output.status.success(), "{compiler}: {}", String::from_utf8_lossy(&output.stderr));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
