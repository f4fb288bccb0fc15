//! The zone node end to end: real sockets, real Redis, SQLite, SDK clients.

mod cluster;
mod common;
mod config;
mod crash;
mod edge;
mod gameplay;
mod loadgen;
mod no_demo;
