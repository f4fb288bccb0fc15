//! `cargo xtask test`: install the tools, start the servers, then lint, build for wasm and test.

use std::ffi::OsString;
use std::panic::{self, UnwindSafe};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use testkit::{MongoServer, RedisServer, Topology};

use crate::install::{self, JS_TOOLS_DIR, WASM_TARGET};
use crate::job::{Job, cargo};
use crate::{fuzz, tidy, wasm};

/// Crates that must build for `wasm32-unknown-unknown`, proving they do no
/// native IO: the wire contract and the SDK's IO-free core (its native
/// transports are the default `native` feature, hence `--no-default-features`).
const WASM_CHECKED_CRATES: &[&str] = &["protocol", "sdk", "sdk-wasm"];

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Do not check for or install missing tools.
    #[arg(long)]
    skip_install: bool,
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Skip the wasm SDK's suites (Node, headless Chromium), its release
    /// bundle and the `tsc --strict` check of its declarations.
    #[arg(long)]
    no_wasm: bool,
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
    job.step("crate boundaries", tidy::check_crate_boundaries)?;
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
        // The wasm suite compiles only for wasm32 (the bench only natively).
        let mut clippy_wasm = cargo();
        clippy_wasm.args(["clippy", "-p", "sdk-wasm", "--lib", "--tests", "--target"]);
        clippy_wasm.args([WASM_TARGET, "--", "-D", "warnings"]);
        job.command("cargo clippy (wasm32)", clippy_wasm)?;
    }
    let mut wasm = cargo();
    wasm.args(["build", "--target", WASM_TARGET, "--no-default-features"]);
    for krate in WASM_CHECKED_CRATES {
        wasm.args(["-p", krate]);
    }
    job.command("build for wasm32", wasm)?;
    // The descriptor domain never imports axum: without the `http` feature
    // axum is no dependency of descriptor-service, so this check fails if the
    // domain reaches for it.
    let mut domain = cargo();
    domain.args(["check", "-p", "descriptor-service", "--no-default-features"]);
    domain.args(["--features", "sqlite,mongodb,redis"]);
    job.command("check the descriptor domain without HTTP", domain)?;

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
    job.command("cargo test", test)?;
    drop(servers);
    job.step("API fuzzing (schemathesis)", fuzz::run)?;
    if !args.no_wasm {
        wasm_steps(job)?;
    }
    Ok(())
}

/// The wasm SDK: its suite in Node and in headless Chromium against the stub
/// node, then the release bundle, `tsc --strict` on TypeScript using it, and
/// the live page served by the demo binary (the real zone node with the
/// demo's routes).
fn wasm_steps(job: &mut Job) -> Result<()> {
    let stub = job.step("start the stub node", StubNode::start)?;
    eprintln!("SDK_WASM_STUB_NODE={}", stub.url);
    let webdriver_json = job.root().join(WEBDRIVER_JSON);
    let suite = |browser: bool| -> Result<std::process::Command> {
        let mut test = cargo();
        test.args([
            "test",
            "-p",
            "sdk-wasm",
            "--test",
            "web",
            "--target",
            WASM_TARGET,
        ])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        )
        .env("SDK_WASM_STUB_NODE", &stub.url)
        .env("PATH", path_with_cargo_bin()?);
        if browser {
            let chromedriver = testkit::find_binary("chromedriver").ok_or_else(|| {
                anyhow!("chromedriver is not installed (Debian: chromium-driver)")
            })?;
            test.env("WASM_BINDGEN_USE_BROWSER", "1")
                .env("CHROMEDRIVER", chromedriver)
                .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver_json);
        } else {
            // Node 20 has a WebSocket global only behind this flag.
            test.env("NODE_ARGS", "--experimental-websocket");
        }
        Ok(test)
    };
    job.command("wasm tests in Node", suite(false)?)?;
    job.command("wasm tests in headless Chromium", suite(true)?)?;
    drop(stub);
    job.step("wasm release bundle", |root| {
        let bundle = wasm::build(root, wasm::TARGETS, wasm::Optimize::WasmOpt)?;
        eprintln!(
            "{}: {:.1} KB raw, {:.1} KB gzipped",
            bundle.wasm.display(),
            wasm::kb(bundle.raw_bytes),
            wasm::kb(bundle.gzip_bytes)
        );
        Ok(())
    })?;
    let tools = job.root().join(JS_TOOLS_DIR);
    let mut tsc = std::process::Command::new(tools.join("node_modules/.bin/tsc"));
    tsc.arg("-p").arg(tools.join("tsconfig.json"));
    job.command("tsc --strict (declarations)", tsc)?;

    // The live page, served by the demo binary with the bundle just built,
    // driven by Playwright in the system chromium.
    let mut build = cargo();
    build.args(["build", "-p", "inventory-demo", "--bin", "inventory-demo"]);
    job.command("build the demo", build)?;
    let web_dir = crate::target_dir(job.root()).join("npm/web");
    let node = job.step("start the demo with the page", |root| {
        DemoNode::start(root, "inventory-demo", &web_dir, &[])
    })?;
    eprintln!("demo: {} (log: {})", node.url, node.log.display());
    let artifacts = job.root().join(ARTIFACTS_DIR);
    std::fs::create_dir_all(&artifacts)?;
    let mut e2e = std::process::Command::new("node");
    e2e.arg(tools.join("e2e-page.mjs"))
        .arg(&node.url)
        .arg(artifacts.join("page.png"))
        .env("INVENTORY_SERVICE_TOKEN", E2E_SERVICE_TOKEN);
    job.command("live page in headless Chromium (Playwright)", e2e)?;

    // The operator console, served by the plain node with an operator
    // credential from a tokens file.
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "inventory-service",
        "--bin",
        "inventory-service",
    ]);
    job.command("build the node", build)?;
    let tokens = std::env::temp_dir().join(testkit::unique_name("console-tokens"));
    std::fs::write(&tokens, format!("operator ci {E2E_OPERATOR_TOKEN}\n"))?;
    let node = job.step("start the node with the console", |root| {
        DemoNode::start(
            root,
            "inventory-service",
            &web_dir,
            &["--tokens-file".as_ref(), tokens.as_os_str()],
        )
    })?;
    eprintln!("node: {} (log: {})", node.url, node.log.display());
    let mut e2e = std::process::Command::new("node");
    e2e.arg(tools.join("e2e-console.mjs"))
        .arg(&node.url)
        .arg(artifacts.join("console.png"))
        .env("INVENTORY_SERVICE_TOKEN", E2E_SERVICE_TOKEN)
        .env("CONSOLE_OPERATOR_TOKEN", E2E_OPERATOR_TOKEN);
    let outcome = job.command("operator console in headless Chromium (Playwright)", e2e);
    let _ = std::fs::remove_file(&tokens);
    outcome
}

/// Where CI collects files to keep (git-ignored).
const ARTIFACTS_DIR: &str = ".ci-artifacts";

/// The gameplay API token of the page test's demo and the console's node.
const E2E_SERVICE_TOKEN: &str = "e2e-page-service-token";

/// The console test's operator credential.
const E2E_OPERATOR_TOKEN: &str = "e2e-console-operator-token";

/// The chromedriver capabilities of the browser suite: headless flags that
/// work as root on this kind of machine (see DESIGN.md).
const WEBDRIVER_JSON: &str = "sdk-wasm/webdriver.json";

/// `sdk-wasm/js/stub-node.mjs`, the scripted node of the wasm suites; killed
/// when dropped.
#[derive(Debug)]
struct StubNode {
    child: std::process::Child,
    url: String,
}

impl StubNode {
    fn start(root: &Path) -> Result<StubNode> {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new("node")
            .arg("stub-node.mjs")
            .current_dir(root.join(JS_TOOLS_DIR))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot run node")?;
        let stdout = child.stdout.take().context("the stub's stdout is piped")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            return Err(anyhow!("the stub node did not start: {line:?}"));
        };
        Ok(StubNode {
            url: url.to_owned(),
            child,
        })
    }
}

impl Drop for StubNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node binary (`inventory-demo`, the zone node with the page, or
/// `inventory-service`) over the embedded stack's SQLite files in a fresh
/// temp dir, with the web package, on a port the kernel picks; killed (and
/// its files removed) when dropped.
#[derive(Debug)]
struct DemoNode {
    child: std::process::Child,
    url: String,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl DemoNode {
    fn start(
        root: &Path,
        name: &str,
        web_dir: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> Result<DemoNode> {
        use std::io::{BufRead, BufReader, Write};
        let dir = std::env::temp_dir().join(testkit::unique_name("e2e-page"));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("node.log");
        let binary = crate::target_dir(root).join("debug").join(name);
        let mut child = std::process::Command::new(&binary)
            .args(extra)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--sqlite-path")
            .arg(dir.join("inventory.db"))
            .arg("--descriptor-sqlite-path")
            .arg(dir.join("descriptors.db"))
            .arg("--web-dir")
            .arg(web_dir)
            .env("INVENTORY_SERVICE_TOKEN", E2E_SERVICE_TOKEN)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            // The embedded stack (the demo refuses any other), whatever the
            // caller's environment says.
            .env_remove("REDIS_URL")
            .env_remove("MONGODB_URI")
            .env_remove("INVENTORY_DESCRIPTOR_URL")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let stdout = child.stdout.take().context("the demo's stdout is piped")?;
        let mut file = std::fs::File::create(&log)?;
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Copies the log to a file for the whole run, so the demo never
        // blocks on a full pipe, and hands over the address it listens on.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("inventory node listening")
                    && let Some(address) = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("address="))
                {
                    let _ = address_tx.send(address.to_owned());
                }
            }
        });
        let mut node = DemoNode {
            child,
            url: String::new(),
            dir,
            log,
        };
        match address_rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(address) => node.url = format!("http://{address}"),
            Err(_) => {
                return Err(anyhow!(
                    "the demo did not start (log: {})",
                    node.log.display()
                ));
            }
        }
        Ok(node)
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
