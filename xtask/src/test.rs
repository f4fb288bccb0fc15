//! `cargo xtask test`: install the tools, start the servers, then lint, build for wasm and test.

use std::ffi::OsString;
use std::panic::{self, UnwindSafe};
use std::path::Path;

use anyhow::{Result, anyhow};
use clap::Args;
use testkit::{MongoServer, RedisServer, Topology};

use crate::install;
use crate::job::{Job, cargo};

/// Crates that must build for `wasm32-unknown-unknown`, proving they do no
/// native IO: the wire contract and the SDK's IO-free core (its native
/// transports are the default `native` feature, hence `--no-default-features`).
const WASM_CHECKED_CRATES: &[&str] = &["protocol", "sdk"];

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Do not check for or install missing tools.
    #[arg(long)]
    skip_install: bool,
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Passed to `cargo test`: a test name filter, `-- --nocapture`, ...
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

pub fn run(root: &Path, args: &TestArgs) -> Result<()> {
    let mut job = Job::new(root);
    let result = steps(&mut job, args);
    job.print_summary("cargo xtask test");
    if result.is_ok() {
        eprintln!("all steps passed");
    }
    result
}

fn steps(job: &mut Job, args: &TestArgs) -> Result<()> {
    if !args.skip_install {
        job.step("install missing tools", install::ensure_test_tools)?;
    }
    if !args.no_lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--check"]);
        job.command("cargo fmt --check", fmt)?;
        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]);
        job.command("cargo clippy", clippy)?;
    }
    let mut wasm = cargo();
    wasm.args([
        "build",
        "--target",
        "wasm32-unknown-unknown",
        "--no-default-features",
    ]);
    for krate in WASM_CHECKED_CRATES {
        wasm.args(["-p", krate]);
    }
    job.command("build for wasm32", wasm)?;

    // Dropped at the end of this function, on failure too, which stops them.
    let servers = job.step("start test servers", |_| Servers::start())?;
    for (var, address) in servers.env() {
        eprintln!("{var}={address}");
    }
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features"])
        .args(&args.cargo_test_args)
        .envs(servers.env())
        .env("PATH", path_with_cargo_bin()?);
    job.command("cargo test", test)
}

/// The servers of one test run, unless the environment names existing ones
/// (for example a real `mongod`).
#[derive(Debug)]
struct Servers {
    redis: Endpoint<RedisServer>,
    mongo: Endpoint<MongoServer>,
    mongo_standalone: Endpoint<MongoServer>,
}

#[derive(Debug)]
enum Endpoint<S> {
    FromEnv(String),
    Started(S),
}

impl Servers {
    fn start() -> Result<Servers> {
        Ok(Servers {
            redis: Endpoint::get("REDIS_URL", RedisServer::start)?,
            mongo: Endpoint::get("MONGODB_URI", || MongoServer::start(Topology::ReplicaSet))?,
            mongo_standalone: Endpoint::get("MONGODB_STANDALONE_URI", || {
                MongoServer::start(Topology::Standalone)
            })?,
        })
    }

    fn env(&self) -> [(&'static str, String); 3] {
        [
            ("REDIS_URL", self.redis.address(RedisServer::url)),
            ("MONGODB_URI", self.mongo.address(MongoServer::uri)),
            (
                "MONGODB_STANDALONE_URI",
                self.mongo_standalone.address(MongoServer::uri),
            ),
        ]
    }
}

impl<S> Endpoint<S> {
    fn get(var: &str, start: impl FnOnce() -> S + UnwindSafe) -> Result<Endpoint<S>> {
        if let Some(address) = std::env::var(var).ok().filter(|value| !value.is_empty()) {
            eprintln!("using {var}={address}");
            return Ok(Endpoint::FromEnv(address));
        }
        // testkit panics with the server's log path; the panic message is
        // already printed, so turn it into an error that ends the job cleanly.
        let server = panic::catch_unwind(start)
            .map_err(|_| anyhow!("the server for {var} did not start (see the message above)"))?;
        Ok(Endpoint::Started(server))
    }

    fn address(&self, of_server: impl Fn(&S) -> String) -> String {
        match self {
            Endpoint::FromEnv(address) => address.clone(),
            Endpoint::Started(server) => of_server(server),
        }
    }
}

/// `PATH` with Cargo's bin dir appended, so tools that `cargo install` put
/// there (wasm-bindgen's test runner) are found even when it is not on `PATH`.
fn path_with_cargo_bin() -> Result<OsString> {
    let mut dirs: Vec<_> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    if let Some(cargo_bin) = testkit::cargo_bin_dir().filter(|dir| !dirs.contains(dir)) {
        dirs.push(cargo_bin);
    }
    Ok(std::env::join_paths(dirs)?)
}
