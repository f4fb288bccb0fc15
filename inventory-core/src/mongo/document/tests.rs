//! Unit tests of the pure document rules.
