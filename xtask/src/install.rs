//! Installing the tools the tests need, skipping whatever is already present.
//!
//! CI starts from a machine with only the Rust toolchain, as root and without
//! stdin; a developer machine usually has everything. Each tool has its own
//! `ensure_*` function that probes first, so a warm run costs a few probes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::job::{self, cargo, probe};

/// Debian packages and the executable that proves each is installed.
const APT_TOOLS: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    // WiredTiger inside secantus-mdb builds with cmake.
    ("cmake", "cmake"),
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
];

/// The MongoDB-wire-compatible server the tests use (see DESIGN.md). Run as
/// a separate process only: the crate is GPL-2.0 and needs a newer Rust.
const SECANTUS_CRATE: &str = "secantus-mdb";
const SECANTUS_VERSION: &str = "0.5.3-beta.196";
const SECANTUS_BINARY: &str = "secantusd-rs";

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The lint steps' tools: minimal toolchain installs (such as CI images) lack them.
const RUSTUP_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// The npm project of the wasm tools (committed package.json and
/// package-lock.json): `binaryen` for a `wasm-opt` that works (Debian's does
/// not), `typescript` for `tsc --strict`, `ws` for the stub node of the wasm
/// suites, `playwright-core` to drive the system chromium.
pub const JS_TOOLS_DIR: &str = "sdk-wasm/js";

/// What proves the npm project is installed: one file per package.
const JS_TOOLS: &[&str] = &[
    "node_modules/.bin/wasm-opt",
    "node_modules/.bin/tsc",
    "node_modules/ws/package.json",
    "node_modules/playwright-core/package.json",
];

/// Everything `cargo xtask test` needs.
pub fn ensure_test_tools(root: &Path) -> Result<()> {
    ensure_apt_packages(APT_TOOLS)?;
    ensure_secantus()?;
    ensure_rustup_components(RUSTUP_COMPONENTS)?;
    ensure_schemathesis(root)?;
    ensure_wasm_tools(root)
}

/// The API fuzzer of the test job, pinned, in a virtualenv of its own under
/// the target directory.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Where [`ensure_schemathesis`] installs the `schemathesis` command.
pub fn schemathesis_binary(root: &Path) -> std::path::PathBuf {
    crate::target_dir(root).join("schemathesis-venv/bin/schemathesis")
}

/// Installs schemathesis into `target/schemathesis-venv` unless the pinned
/// version is there; Debian's `python3-venv` first if `venv` cannot make a
/// virtualenv with pip.
pub fn ensure_schemathesis(root: &Path) -> Result<()> {
    let binary = schemathesis_binary(root);
    let installed = probe(Command::new(&binary).arg("--version"));
    if installed.is_some_and(|version| version.trim().ends_with(SCHEMATHESIS_VERSION)) {
        return Ok(());
    }
    if probe(Command::new("python3").args(["-c", "import venv, ensurepip"])).is_none() {
        if testkit::find_binary("apt-get").is_none() {
            bail!("python3 with venv and ensurepip is missing (Debian: python3-venv)");
        }
        job::run(apt_get().arg("update"))?;
        job::run(apt_get().args(["install", "-y", "python3", "python3-venv"]))?;
    }
    let venv = crate::target_dir(root).join("schemathesis-venv");
    job::run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    job::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")),
    )
}

/// What building and testing the wasm SDK needs: the target, the
/// wasm-bindgen CLI matching Cargo.lock, Node and the npm tools.
pub fn ensure_wasm_tools(root: &Path) -> Result<()> {
    if ensure_wasm_build_tools(root)? {
        ensure_apt_packages(NODE_PACKAGES)?;
        ensure_js_tools(root)?;
    }
    Ok(())
}

/// What building the wasm SDK needs without Node: the target and the
/// wasm-bindgen CLI matching Cargo.lock. False if no crate uses wasm-bindgen.
pub fn ensure_wasm_build_tools(root: &Path) -> Result<bool> {
    ensure_rustup_target(WASM_TARGET)?;
    let Some(version) = browser_wasm_bindgen_version(root)? else {
        return Ok(false);
    };
    ensure_wasm_bindgen_cli(&version)?;
    Ok(true)
}

/// Node and npm, as Debian packages and their executables.
const NODE_PACKAGES: &[(&str, &str)] = &[("nodejs", "node"), ("npm", "npm")];

/// Whether Node and npm are installed.
pub fn node_available() -> bool {
    NODE_PACKAGES
        .iter()
        .all(|(_, binary)| testkit::find_binary(binary).is_some())
}

/// Installs the packages whose executable is missing, with one `apt-get update` first.
pub fn ensure_apt_packages(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(_, binary)| testkit::find_binary(binary).is_none())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    if testkit::find_binary("apt-get").is_none() {
        bail!(
            "these tools are missing and this is not a Debian-like system: install {} yourself",
            missing.join(", ")
        );
    }
    job::run(apt_get().arg("update"))?;
    job::run(apt_get().args(["install", "-y"]).args(&missing))?;
    let still_missing: Vec<&str> = tools
        .iter()
        .map(|(_, binary)| *binary)
        .filter(|binary| testkit::find_binary(binary).is_none())
        .collect();
    ensure!(
        still_missing.is_empty(),
        "apt-get succeeded but these are still not on PATH: {}",
        still_missing.join(", ")
    );
    Ok(())
}

fn apt_get() -> Command {
    let is_root = fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0);
    let mut command = if is_root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    // CI has no stdin: never let a package ask a question.
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

/// `cargo install`s secantusd-rs at the pinned version unless it is there
/// (about 6 minutes on 2 cores).
pub fn ensure_secantus() -> Result<()> {
    let installed = testkit::find_binary(SECANTUS_BINARY)
        .and_then(|binary| probe(Command::new(binary).arg("--version")))
        .is_some_and(|version| version.contains(SECANTUS_VERSION));
    if installed {
        return Ok(());
    }
    eprintln!("installing {SECANTUS_BINARY} {SECANTUS_VERSION} (takes several minutes)");
    job::run(cargo().args([
        "install",
        SECANTUS_CRATE,
        "--version",
        SECANTUS_VERSION,
        // It declares a newer rust-version than ours; the daemon builds fine.
        "--ignore-rust-version",
    ]))?;
    ensure!(
        testkit::find_binary(SECANTUS_BINARY).is_some(),
        "`cargo install {SECANTUS_CRATE}` succeeded but {SECANTUS_BINARY} is not on PATH or in Cargo's bin dir"
    );
    Ok(())
}

pub fn ensure_rustup_components(components: &[&str]) -> Result<()> {
    let installed = probe(Command::new("rustup").args(["component", "list", "--installed"]))
        .context("`rustup` is needed to add the rustfmt and clippy components")?;
    let missing = missing_components(&installed, components);
    if missing.is_empty() {
        return Ok(());
    }
    job::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
}

/// The `wanted` components absent from `rustup component list --installed`,
/// which names each with its host triple: `clippy-x86_64-unknown-linux-gnu`.
fn missing_components<'a>(installed: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|component| {
            !installed.lines().any(|line| {
                line.strip_prefix(component)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
            })
        })
        .collect()
}

pub fn ensure_rustup_target(target: &str) -> Result<()> {
    let installed = probe(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("`rustup` is needed to add the wasm target")?;
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    job::run(Command::new("rustup").args(["target", "add", target]))
}

/// The `wasm-bindgen` version in Cargo.lock if a workspace crate uses
/// wasm-bindgen itself: only then are browser tests built and the CLI (whose
/// version must match the library's exactly) needed. Cargo.lock alone is not
/// enough to tell, because crates like uuid depend on it for wasm targets.
fn browser_wasm_bindgen_version(root: &Path) -> Result<Option<String>> {
    let mut uses_wasm_bindgen = false;
    for entry in fs::read_dir(root).context("cannot list the workspace")? {
        let manifest = entry?.path().join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest) {
            uses_wasm_bindgen |= declares_wasm_bindgen(&text);
        }
    }
    if !uses_wasm_bindgen {
        return Ok(None);
    }
    let lock = fs::read_to_string(root.join("Cargo.lock")).context("cannot read Cargo.lock")?;
    locked_version(&lock, "wasm-bindgen")
        .map(Some)
        .context("a crate uses wasm-bindgen but Cargo.lock has no version for it")
}

/// Whether a member's manifest declares a wasm-bindgen dependency (the
/// library, its test crate, in any dependency table).
fn declares_wasm_bindgen(manifest: &str) -> bool {
    manifest
        .lines()
        .any(|line| line.trim_start().starts_with("wasm-bindgen"))
}

/// The version of `package` in a Cargo.lock, if it appears once.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    lines.find(|line| *line == name_line)?;
    lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')
        .map(str::to_owned)
}

/// `cargo install wasm-bindgen-cli` at exactly the library's version.
pub fn ensure_wasm_bindgen_cli(version: &str) -> Result<()> {
    let installed = testkit::find_binary("wasm-bindgen")
        .and_then(|binary| probe(Command::new(binary).arg("--version")))
        .is_some_and(|output| output.split_whitespace().nth(1) == Some(version));
    if installed {
        return Ok(());
    }
    // Without `--locked`, as DESIGN.md's notes on this environment prescribe.
    job::run(cargo().args(["install", "wasm-bindgen-cli", "--version", version]))
}

/// `npm ci`s the wasm tools at their locked versions into
/// sdk-wasm/js/node_modules (git-ignored) unless they are all there.
pub fn ensure_js_tools(root: &Path) -> Result<()> {
    let dir = root.join(JS_TOOLS_DIR);
    if JS_TOOLS.iter().all(|file| dir.join(file).exists()) {
        return Ok(());
    }
    job::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )?;
    let missing: Vec<&str> = JS_TOOLS
        .iter()
        .copied()
        .filter(|file| !dir.join(file).exists())
        .collect();
    ensure!(
        missing.is_empty(),
        "`npm ci` succeeded but these are missing in {JS_TOOLS_DIR}: {}",
        missing.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_versions_are_read_from_the_package_entry() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n\n\
                    [[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "serde"), None);
    }

    #[test]
    fn wasm_bindgen_is_found_in_any_dependency_table() {
        assert!(declares_wasm_bindgen(
            "[dependencies]\nwasm-bindgen.workspace = true\n"
        ));
        assert!(declares_wasm_bindgen(
            "[dev-dependencies]\n  wasm-bindgen-test = \"0.3\"\n"
        ));
        assert!(!declares_wasm_bindgen(
            "# wasm-bindgen later\n[dependencies]\nsdk.workspace = true\n"
        ));
    }

    #[test]
    fn components_are_matched_without_their_host_triple() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert_eq!(
            missing_components(installed, &["rustfmt", "clippy"]),
            ["clippy"]
        );
        assert!(missing_components("rustfmt-preview\n", &["rustfmt"]).is_empty());
    }
}
