//! Integration tests of the descriptor service: the HTTP API without a
//! socket, over a real socket, the store conformance suite on every store,
//! the cache's query counts and cross-replica invalidation.

mod cache;
mod common;
mod config;
mod http;
mod replicas;
mod stores;
