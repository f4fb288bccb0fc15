//! The zone node end to end: real sockets, real Redis, SQLite, SDK clients.

mod cluster;
mod common;
mod config;
mod crafts;
mod crash;
mod edge;
mod game_server_client;
mod gameplay;
#[cfg(feature = "mongodb")]
mod loadgen;
#[cfg(feature = "mongodb")]
mod mongo_load;
mod no_demo;
mod support;
mod tokens;
