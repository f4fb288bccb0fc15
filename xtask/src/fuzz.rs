//! The API fuzzing step of `cargo xtask test`: schemathesis (PyPI) derives
//! requests from the OpenAPI documents of a live zone node (embedded: its
//! descriptor API is in the same document) and a live descriptor service,
//! and checks that no answer is a 5xx, that every answer's status and body
//! match the document (every error body carries its code), and that every
//! answer says its content type. The seed and the example count are fixed,
//! so a run is repeatable and bounded.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::install::schemathesis_binary;
use crate::job::{self, cargo};

const SERVICE_TOKEN: &str = "schemathesis-service-token-0123";
const JWT_SECRET: &str = "schemathesis-jwt-secret-0123456789";
const WRITE_TOKEN: &str = "schemathesis-descriptor-writer";
const SEED: &str = "20261205";
const EXAMPLES: &str = "40";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Builds the two binaries, starts them over fresh SQLite files and fuzzes
/// each API in turn.
pub fn run(root: &Path) -> Result<()> {
    let mut build = cargo();
    build
        .args([
            "build",
            "-p",
            "inventory-service",
            "-p",
            "descriptor-service",
            "--bins",
        ])
        .current_dir(root);
    job::run(&mut build)?;
    let dir = std::env::temp_dir().join(testkit::unique_name("schemathesis"));
    std::fs::create_dir_all(&dir)?;
    let result = fuzz_both(root, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn fuzz_both(root: &Path, dir: &Path) -> Result<()> {
    let bin = crate::target_dir(root).join("debug");
    let mut node = Command::new(bin.join("inventory-service"));
    node.args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("INVENTORY_JWT_SECRET", JWT_SECRET)
        .env_remove("REDIS_URL")
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL");
    let node = testkit::NodeProcess::spawn(node);
    // The WebSocket upgrade is the edge's, tested by its own suites.
    schemathesis(
        root,
        node.base(),
        SERVICE_TOKEN,
        &["--exclude-path", "/v1/ws"],
    )?;
    drop(node);

    let service = DescriptorService::start(&bin, dir)?;
    schemathesis(root, &service.url, WRITE_TOKEN, &[])
}

fn schemathesis(root: &Path, base: &str, token: &str, extra: &[&str]) -> Result<()> {
    // schemathesis keeps a crash cache in `.schemathesis/` under its working
    // directory: keep it in target/, out of the checkout.
    let scratch = root.join("target").join("schemathesis-run");
    std::fs::create_dir_all(&scratch)?;
    let mut command = Command::new(schemathesis_binary(root));
    command
        .args(["run", &format!("{base}/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            CHECKS,
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
        ])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "1",
        ])
        .args(extra)
        .current_dir(&scratch);
    job::run(&mut command)
}

/// The descriptor service binary on a free loopback port, over `dir`.
struct DescriptorService {
    child: Child,
    url: String,
}

impl DescriptorService {
    fn start(bin: &Path, dir: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let path: PathBuf = dir.join("descriptors.db");
        let child = Command::new(bin.join("descriptor-service"))
            .args(["--listen", &address, "--write-tokens", WRITE_TOKEN])
            .arg("--sqlite-path")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("cannot run descriptor-service")?;
        let service = Self {
            child,
            url: format!("http://{address}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&address).is_err() {
            if Instant::now() > deadline {
                bail!("the descriptor service did not listen on {address}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(service)
    }
}

impl Drop for DescriptorService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
