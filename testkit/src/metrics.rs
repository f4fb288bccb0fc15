//! Checks of a Prometheus text rendering shared by the services' tests.

/// Checks the naming rule of every family in a Prometheus text rendering
/// (`/metrics`): counters are named `*_total` and nothing else is. Returns
/// how many families the rendering declares (`# TYPE` lines).
///
/// # Panics
/// Naming the first family that breaks the rule.
#[must_use]
pub fn check_metric_names(text: &str) -> usize {
    let types: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    for (name, kind) in &types {
        match *kind {
            "counter" => assert!(name.ends_with("_total"), "counter {name}"),
            _ => assert!(!name.ends_with("_total"), "{kind} {name}"),
        }
    }
    types.len()
}
