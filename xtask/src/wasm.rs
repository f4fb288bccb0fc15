//! `cargo xtask wasm`: the release bundle of `sdk-wasm` as npm package
//! directories, `target/npm/web` (`--target web`) and `target/npm/bundler`
//! (`--target bundler`), each with `package.json`, `.js`, `.d.ts` and a
//! `.wasm` shrunk by `wasm-opt -Oz` (npm's binaryen; Debian's produces
//! modules that fail to load).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::install::{self, JS_TOOLS_DIR, WASM_TARGET};
use crate::job::{self, cargo};

/// The crate and its output name (`sdk_wasm.js`, `sdk_wasm_bg.wasm`, ...).
const CRATE: &str = "sdk-wasm";
const OUT_NAME: &str = "sdk_wasm";
/// The npm package's name.
const PACKAGE: &str = "inventory-sdk";
/// The bundle targets: wasm-bindgen's name, which is also the directory.
pub const TARGETS: &[&str] = &["web", "bundler"];

/// Whether the `.wasm` is shrunk by `wasm-opt -Oz`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Optimize {
    /// With npm binaryen's `wasm-opt` (the release bundle).
    WasmOpt,
    /// As `rustc` and `wasm-bindgen` leave it: larger, equally correct.
    Skip,
}

#[derive(Debug, Args)]
pub struct WasmArgs {
    /// Do not check for or install missing tools.
    #[arg(long)]
    skip_install: bool,
}

/// The built bundle.
#[derive(Debug)]
pub struct Bundle {
    /// `target/npm/<target>` for each of [`TARGETS`].
    pub dirs: Vec<PathBuf>,
    /// The optimized `.wasm` of the web package.
    pub wasm: PathBuf,
    pub raw_bytes: u64,
    pub gzip_bytes: u64,
}

pub fn run(root: &Path, args: &WasmArgs) -> Result<()> {
    if !args.skip_install {
        install::ensure_wasm_tools(root)?;
    }
    let bundle = build(root, TARGETS, Optimize::WasmOpt)?;
    for dir in &bundle.dirs {
        eprintln!("package: {}", dir.display());
    }
    println!(
        "{}: {:.1} KB raw, {:.1} KB gzipped",
        bundle.wasm.display(),
        kb(bundle.raw_bytes),
        kb(bundle.gzip_bytes)
    );
    Ok(())
}

/// Kilobytes (1,000 bytes), as the goals are stated.
pub fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1000.0
}

/// Builds the release bundle for `targets` (a subset of [`TARGETS`]); the
/// tools must be installed (`wasm-opt` only to [`Optimize::WasmOpt`]).
pub fn build(root: &Path, targets: &[&str], optimize: Optimize) -> Result<Bundle> {
    job::run(
        cargo()
            .args([
                "build",
                "--profile",
                "wasm-release",
                "--target",
                WASM_TARGET,
            ])
            .args(["-p", CRATE])
            .current_dir(root),
    )?;
    let target_dir = crate::target_dir(root);
    let input = target_dir
        .join(WASM_TARGET)
        .join("wasm-release")
        .join(format!("{}.wasm", CRATE.replace('-', "_")));
    let wasm_bindgen =
        testkit::find_binary("wasm-bindgen").context("wasm-bindgen is not installed")?;
    let wasm_opt = root.join(JS_TOOLS_DIR).join("node_modules/.bin/wasm-opt");
    ensure!(
        optimize == Optimize::Skip || wasm_opt.exists(),
        "{} is missing: run without --skip-install",
        wasm_opt.display()
    );
    let mut dirs = Vec::new();
    for target in targets {
        let dir = target_dir.join("npm").join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        job::run(
            Command::new(&wasm_bindgen)
                .args(["--target", target, "--out-name", OUT_NAME, "--out-dir"])
                .arg(&dir)
                .arg(&input),
        )?;
        let wasm = dir.join(format!("{OUT_NAME}_bg.wasm"));
        if optimize == Optimize::WasmOpt {
            // The features rustc enables by default for wasm32 (its output
            // declares them in a target_features section wasm-bindgen drops).
            job::run(
                Command::new(&wasm_opt)
                    .args(["-Oz", "--enable-bulk-memory", "--enable-mutable-globals"])
                    .args(["--enable-nontrapping-float-to-int", "--enable-sign-ext"])
                    .args(["--enable-reference-types", "--enable-multivalue", "-o"])
                    .arg(&wasm)
                    .arg(&wasm),
            )?;
        }
        write_package_json(&dir, target)?;
        dirs.push(dir);
    }
    let wasm = dirs[0].join(format!("{OUT_NAME}_bg.wasm"));
    let raw_bytes = fs::metadata(&wasm)?.len();
    let gzip_bytes = gzip_size(&wasm)?;
    Ok(Bundle {
        dirs,
        wasm,
        raw_bytes,
        gzip_bytes,
    })
}

fn write_package_json(dir: &Path, target: &str) -> Result<()> {
    let mut files: Vec<String> = fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    files.sort();
    let files: Vec<String> = files.iter().map(|file| format!("\"{file}\"")).collect();
    // wasm-bindgen's bundler entry initializes the module when imported.
    let side_effects = if target == "bundler" {
        format!("[\"./{OUT_NAME}.js\", \"./snippets/*\"]")
    } else {
        "false".to_owned()
    };
    let json = format!(
        r#"{{
  "name": "{PACKAGE}",
  "version": "{version}",
  "description": "Browser SDK of the MMO inventory system (wasm-bindgen, --target {target}).",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "{OUT_NAME}.js",
  "module": "{OUT_NAME}.js",
  "types": "{OUT_NAME}.d.ts",
  "files": [{files}],
  "sideEffects": {side_effects}
}}
"#,
        version = env!("CARGO_PKG_VERSION"),
        files = files.join(", "),
    );
    fs::write(dir.join("package.json"), json).context("cannot write package.json")
}

/// The size of `path` compressed by `gzip -9`.
fn gzip_size(path: &Path) -> Result<u64> {
    let output = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run gzip")?;
    ensure!(output.status.success(), "gzip failed ({})", output.status);
    Ok(output.stdout.len() as u64)
}
