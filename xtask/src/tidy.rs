//! Checks of the workspace's shape that no compiler enforces: which crate
//! may depend on which.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::job::{cargo, display};

/// The crate boundaries: `(crate, dependency it must never have)`, directly
/// or through any other crate, with every feature of the crate on. Dev
/// dependencies do not count (a test may use the real service on the other
/// side of a port).
const CRATE_BOUNDARIES: &[(&str, &str)] = &[
    // The node is what production runs; the demo mints tokens for anyone.
    ("inventory-service", "inventory-demo"),
    // The domain knows no HTTP and no descriptor service: the registry is a
    // port, its adapters live with the node.
    ("inventory-core", "descriptor-service"),
    ("inventory-core", "axum"),
    ("inventory-core", "reqwest"),
    // Descriptors are decoupled from inventories: both stand on `backends`.
    ("descriptor-service", "inventory-core"),
    // The load generator is not the system: it speaks the protocol only.
    ("loadgen", "inventory-core"),
    ("loadgen", "inventory-service"),
];

/// Fails, naming every broken boundary, if a crate of [`CRATE_BOUNDARIES`]
/// depends on what it must not (`cargo tree -e normal`).
pub fn check_crate_boundaries(root: &Path) -> Result<()> {
    let mut broken = Vec::new();
    let crates: BTreeSet<&str> = CRATE_BOUNDARIES.iter().map(|(krate, _)| *krate).collect();
    for krate in crates {
        let mut tree = cargo();
        tree.args(["tree", "-p", krate, "-e", "normal", "--prefix", "none"])
            .arg("--all-features")
            .current_dir(root);
        let shown = display(&tree);
        let output = tree
            .output()
            .with_context(|| format!("cannot run `{shown}`"))?;
        ensure!(
            output.status.success(),
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        broken.extend(violations(krate, &dependencies(&tree)));
    }
    ensure!(
        broken.is_empty(),
        "crate boundaries broken:\n  {}",
        broken.join("\n  ")
    );
    eprintln!(
        "crate boundaries hold: {}",
        CRATE_BOUNDARIES
            .iter()
            .map(|(krate, forbidden)| format!("{krate} !-> {forbidden}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The package names in `cargo tree --prefix none` output (one package per
/// line: `name vX.Y.Z [(path)] [(*)]`).
fn dependencies(tree: &str) -> BTreeSet<&str> {
    tree.lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

/// The boundaries of `krate` that `dependencies` (its whole tree) break.
fn violations(krate: &str, dependencies: &BTreeSet<&str>) -> Vec<String> {
    CRATE_BOUNDARIES
        .iter()
        .filter(|(owner, forbidden)| *owner == krate && dependencies.contains(forbidden))
        .map(|(owner, forbidden)| format!("{owner} depends on {forbidden}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbidden_crate_anywhere_in_the_tree_is_a_violation() {
        let tree = "inventory-service v0.1.0 (/w/inventory-service)\n\
                    axum v0.8.4\n\
                    inventory-demo v0.1.0 (/w/inventory-demo)\n\
                    axum v0.8.4 (*)\n";
        let found = dependencies(tree);
        assert_eq!(
            violations("inventory-service", &found),
            ["inventory-service depends on inventory-demo"]
        );
        assert_eq!(
            violations("inventory-core", &found),
            ["inventory-core depends on axum"],
            "each crate is held to its own rows"
        );
    }

    #[test]
    fn a_name_that_only_starts_like_a_forbidden_one_is_not() {
        let tree = "inventory-service v0.1.0 (/w/inventory-service)\n\
                    inventory-demo-assets v1.0.0\n\
                    inventory-core v0.1.0 (/w/inventory-core)\n";
        assert!(violations("inventory-service", &dependencies(tree)).is_empty());
    }
}
