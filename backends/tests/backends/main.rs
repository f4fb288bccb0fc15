//! The foundations against real servers: SQLite files on disk and a
//! `redis-server` that is killed and restarted.

mod redis;
mod sqlite;
