//! `cargo xtask node`: the zone node with its live page (the `inventory-demo`
//! binary: the node over the embedded stack, with the demo's routes), from a
//! machine with only the Rust toolchain. Installs the wasm32 target and
//! wasm-bindgen's CLI if missing, builds the browser SDK's web package
//! (shrunk by `wasm-opt` only where Node and npm are installed), then runs the
//! release demo with `--web-dir` pointing at it; the remaining arguments go
//! to the demo.

use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::Result;
use clap::Args;

use crate::install;
use crate::job::{cargo, display};
use crate::wasm::{self, Optimize};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Do not check for or install missing tools.
    #[arg(long)]
    skip_install: bool,
    /// Passed to the demo binary: `-- --listen 0.0.0.0:8080`, `-- --help`, ...
    #[arg(last = true)]
    node_args: Vec<String>,
}

pub fn run(root: &Path, args: &NodeArgs) -> Result<()> {
    let optimize = if install::node_available() {
        Optimize::WasmOpt
    } else {
        eprintln!(
            "notice: Node and npm are not installed, so the browser SDK is not shrunk by \
             wasm-opt (npm's binaryen); the page works the same, with a larger download"
        );
        Optimize::Skip
    };
    if !args.skip_install {
        install::ensure_wasm_build_tools(root)?;
        if optimize == Optimize::WasmOpt {
            install::ensure_js_tools(root)?;
        }
    }
    let bundle = wasm::build(root, &["web"], optimize)?;
    let web_dir = &bundle.dirs[0];
    eprintln!(
        "browser SDK: {} ({:.1} KB, {:.1} KB gzipped)",
        web_dir.display(),
        wasm::kb(bundle.raw_bytes),
        wasm::kb(bundle.gzip_bytes)
    );
    let mut node = cargo();
    node.args(["run", "--release", "-p", "inventory-demo", "--"])
        .arg("--web-dir")
        .arg(web_dir)
        .args(&args.node_args)
        .current_dir(root);
    eprintln!("$ {}", display(&node));
    // The demo replaces this process, so Ctrl-C and its exit status are the
    // demo's own (it drains on SIGINT and SIGTERM).
    Err(anyhow::Error::new(node.exec()).context("cannot run cargo"))
}
