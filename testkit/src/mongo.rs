//! [`MongoServer`]: a throwaway `secantusd-rs` (MongoDB wire protocol) with its own storage dir.

use std::io::{Read, Write};

use crate::process::{self, Daemon};

/// The line `secantusd-rs --port 0` prints once it listens, followed by `HOST:PORT`.
const LISTENING: &str = "secantusd-rs listening on ";

/// The wire protocol's message opcode, used by requests and replies alike.
const OP_MSG: i32 = 2013;

/// What a deployment advertises to drivers, which decides whether they allow transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// A single-node replica set: multi-document transactions and change streams work.
    ReplicaSet,
    /// A standalone server (`--standalone`): drivers refuse transactions, so
    /// multi-owner changes take the compensation path.
    Standalone,
}

/// A `secantusd-rs` child on `127.0.0.1`, with its own temp storage dir and log.
///
/// Data survives [`kill`](MongoServer::kill) + [`restart`](MongoServer::restart)
/// (same port, same storage). Dropping it kills the server and removes the dir.
#[derive(Debug)]
pub struct MongoServer {
    daemon: Daemon,
    topology: Topology,
    port: u16,
}

impl MongoServer {
    /// Starts a server on a port the kernel picks and waits until it answers a `hello`.
    ///
    /// # Panics
    ///
    /// If `secantusd-rs` is not installed, or it does not start; the message
    /// names the log file.
    pub fn start(topology: Topology) -> MongoServer {
        let mut daemon = Daemon::new(
            "mongo",
            "secantusd-rs",
            "install it with `cargo install secantus-mdb --version 0.5.3-beta.196 --ignore-rust-version`",
        );
        // Port 0 lets the server bind first and tell us the port: no race with
        // other processes looking for a free port.
        daemon.spawn(&args(topology, 0, &daemon));
        let ready = daemon.wait_ready(|daemon| {
            listening_port(&daemon.recent_log()).filter(|&port| answers_hello(port))
        });
        match ready {
            Ok(port) => MongoServer {
                daemon,
                topology,
                port,
            },
            Err(why) => daemon.not_ready(why),
        }
    }

    /// A URI the official `mongodb` driver connects to.
    ///
    /// `directConnection=true` makes the driver talk to this one server as it
    /// is, instead of discovering the replica set from the hosts it advertises.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The file that collects the server's output.
    pub fn log_path(&self) -> &std::path::Path {
        self.daemon.log_path()
    }

    /// SIGKILLs the server and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Starts the server again on the same port and storage (killing it first
    /// if it still runs) and waits until it answers a `hello`. Committed data survives.
    pub fn restart(&mut self) {
        let port = self.port;
        let args = args(self.topology, port, &self.daemon);
        self.daemon.respawn(&args, |daemon| {
            listening_port(&daemon.recent_log()) == Some(port) && answers_hello(port)
        });
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

fn args(topology: Topology, port: u16, daemon: &Daemon) -> Vec<String> {
    let dir = daemon.dir();
    // An empty config file disables the auto-discovery of ./secantusd.toml and
    // ~/.secantus/secantusd.toml, which would make tests depend on the machine.
    let config = dir.join("secantusd.toml");
    if !config.exists() {
        std::fs::write(&config, "")
            .unwrap_or_else(|err| panic!("testkit: cannot write {}: {err}", config.display()));
    }
    let mut args = vec![
        "--config".to_owned(),
        config.display().to_string(),
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--storage-path".to_owned(),
        dir.join("data").display().to_string(),
        // The defaults (a 4 GiB cache, a 128 MB preallocated log file) are sized
        // for production; test servers are many, small and short-lived.
        "--cache-size".to_owned(),
        "1G".to_owned(),
        "--log-file-max".to_owned(),
        "32MB".to_owned(),
        // Without it, writes acknowledged in the last few milliseconds (even
        // with `j: true`) are lost when the server is SIGKILLed, as measured:
        // crash tests would then see "lost" items that a real `mongod` keeps.
        // It costs about half the sequential write rate.
        "--sync-on-commit".to_owned(),
    ];
    if topology == Topology::Standalone {
        args.push("--standalone".to_owned());
    }
    args
}

fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter_map(|line| line.split_once(LISTENING))
        .filter_map(|(_, addr)| addr.trim().rsplit_once(':'))
        .find_map(|(_, port)| port.parse().ok())
}

/// Sends `{hello: 1, $db: "admin"}` as an `OP_MSG` and expects an `OP_MSG`
/// reply: the handshake every driver starts with, so a server that answers it
/// is ready for them.
fn answers_hello(port: u16) -> bool {
    const REQUEST_ID: i32 = 1;
    let Ok(mut stream) = process::connect(port) else {
        return false;
    };
    if stream.write_all(&hello_message(REQUEST_ID)).is_err() {
        return false;
    }
    let mut header = [0_u8; 16];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let field = |at: usize| {
        i32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (length, response_to, op_code) = (field(0), field(8), field(12));
    let Some(body_len) = usize::try_from(length)
        .ok()
        .and_then(|len| len.checked_sub(16))
    else {
        return false;
    };
    let mut body = vec![0_u8; body_len];
    response_to == REQUEST_ID && op_code == OP_MSG && stream.read_exact(&mut body).is_ok()
}

fn hello_message(request_id: i32) -> Vec<u8> {
    let mut elements = Vec::new();
    // BSON int32 element "hello": 1.
    elements.push(0x10);
    elements.extend_from_slice(b"hello\0");
    elements.extend_from_slice(&1_i32.to_le_bytes());
    // BSON string element "$db": "admin" (length includes the trailing NUL).
    elements.push(0x02);
    elements.extend_from_slice(b"$db\0");
    elements.extend_from_slice(&6_i32.to_le_bytes());
    elements.extend_from_slice(b"admin\0");

    let document_len = i32::try_from(4 + elements.len() + 1).expect("a tiny document");
    let mut message = Vec::new();
    // Header: length (patched below), requestID, responseTo, opCode.
    message.extend_from_slice(&0_i32.to_le_bytes());
    message.extend_from_slice(&request_id.to_le_bytes());
    message.extend_from_slice(&0_i32.to_le_bytes());
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    // flagBits, then one kind-0 (body) section holding the document.
    message.extend_from_slice(&0_u32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&document_len.to_le_bytes());
    message.extend_from_slice(&elements);
    message.push(0);
    let total = i32::try_from(message.len()).expect("a tiny message");
    message[..4].copy_from_slice(&total.to_le_bytes());
    message
}
