//! Configuration is honoured or refused: the node binary never runs on
//! something else than what it was told.

use std::process::Command;

use crate::common::{JWT_SECRET, SERVICE_TOKEN};

/// The `inventory-service` binary over files in `dir`, with the tests'
/// secrets and none of the environment's servers, plus `env`.
fn node(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory-service"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env(
            "INVENTORY_JWT_SECRET",
            String::from_utf8_lossy(JWT_SECRET).as_ref(),
        )
        .env_remove("REDIS_URL")
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL")
        .env_remove("INVENTORY_DESCRIPTOR_SQLITE_PATH")
        .envs(env.iter().copied());
    command
}

/// With `MONGODB_URI` set (the documented variable), the default build runs
/// on MongoDB; it used to log `store: SQLite` and keep a private file.
#[test]
fn mongodb_uri_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let uri = testkit::mongodb_uri();
    let mut node = testkit::NodeProcess::spawn(node(
        dir.path(),
        &[
            ("MONGODB_URI", uri.as_str()),
            ("INVENTORY_DESCRIPTOR_SQLITE_PATH", "unused.db"),
        ],
    ));
    let log = node.log().join("\n");
    assert!(log.contains("store: MongoDB"), "{log}");
    assert!(!log.contains("store: SQLite"), "{log}");
    node.kill();
    assert!(!dir.path().join("inventory.db").exists());
}

/// What the binary cannot honour stops it at startup with one clear line
/// naming the setting, and a non-zero exit.
#[test]
fn what_cannot_be_honoured_is_refused_at_startup() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("MONGODB_URI", "postgres://127.0.0.1:5432")],
            "MONGODB_URI",
        ),
        (&[("REDIS_URL", "127.0.0.1:6379")], "REDIS_URL"),
        (
            &[("INVENTORY_DESCRIPTOR_URL", "descriptors:8090")],
            "INVENTORY_DESCRIPTOR_URL",
        ),
        (
            &[
                ("INVENTORY_DESCRIPTOR_URL", "http://127.0.0.1:9"),
                ("INVENTORY_DESCRIPTOR_SQLITE_PATH", "descriptors.db"),
            ],
            "INVENTORY_DESCRIPTOR_SQLITE_PATH",
        ),
    ];
    for (env, setting) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (status, stderr) = testkit::NodeProcess::refused(node(dir.path(), env));
        assert!(!status.success(), "{env:?}");
        assert!(stderr.contains(setting), "{env:?}: {stderr}");
        assert!(!dir.path().join("inventory.db").exists(), "{env:?}");
    }
}
