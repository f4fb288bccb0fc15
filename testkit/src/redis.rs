//! [`RedisServer`]: a throwaway `redis-server` on a free loopback port, without persistence.

use std::io::{Read, Write};

use crate::process::{self, Daemon, NotReady};

/// How many ports to try when another process takes the chosen one first.
const BIND_ATTEMPTS: usize = 5;

/// What redis-server logs once it has bound its port.
const READY: &str = "Ready to accept connections";

/// A `redis-server` child on `127.0.0.1`, with its own temp dir and log.
///
/// It persists nothing: a [`restart`](RedisServer::restart) comes back empty,
/// which is what a Redis used as a pub/sub fabric looks like after a crash.
/// Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    daemon: Daemon,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or it does not start; the message
    /// names the log file.
    pub fn start() -> RedisServer {
        let mut daemon = Daemon::new(
            "redis",
            "redis-server",
            "install Debian's `redis-server` package",
        );
        for _ in 0..BIND_ATTEMPTS {
            let port = process::free_port();
            daemon.spawn(&args(port, &daemon));
            match daemon.wait_ready(|daemon| is_ready(daemon, port).then_some(())) {
                Ok(()) => return RedisServer { daemon, port },
                Err(NotReady::Exited(_)) if daemon.lost_port_race() => continue,
                Err(why) => daemon.not_ready(why),
            }
        }
        daemon.fail(&format!(
            "could not bind a free port in {BIND_ATTEMPTS} attempts"
        ))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file that collects the server's output.
    pub fn log_path(&self) -> &std::path::Path {
        self.daemon.log_path()
    }

    /// SIGKILLs the server and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Starts the server again on the same port (killing it first if it still
    /// runs) and waits until it answers `PING`. The data is gone.
    pub fn restart(&mut self) {
        let port = self.port;
        let args = args(port, &self.daemon);
        self.daemon.respawn(&args, |daemon| is_ready(daemon, port));
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

fn args(port: u16, daemon: &Daemon) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &daemon.dir().display().to_string(),
        // No RDB snapshots and no AOF: nothing survives a restart, and nothing
        // slows a test down with disk writes.
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        // An empty log file name means stdout, which the daemon sends to the log.
        "--logfile",
        "",
    ]
    .map(String::from)
    .to_vec()
}

/// Our server says it listens (so the port is not someone else's) and answers.
fn is_ready(daemon: &Daemon, port: u16) -> bool {
    daemon.recent_log().contains(READY) && answers_ping(port)
}

/// Sends an inline `PING` and expects `+PONG` (a loading server answers `-LOADING`).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = process::connect(port) else {
        return false;
    };
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
