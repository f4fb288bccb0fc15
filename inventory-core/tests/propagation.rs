//! Propagation across zone nodes.
