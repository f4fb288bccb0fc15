//! A node binary (`inventory-service`, `inventory-demo`) as a child process:
//! spawned, its address read from its log, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may take to log its address.
const STARTUP: Duration = Duration::from_secs(30);

/// A running node process; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    base: String,
}

impl NodeProcess {
    /// Spawns `command` (a node binary listening on `127.0.0.1:0`, logging at
    /// `info`) and waits for the log line that names its address. Its log
    /// keeps being drained so that it never blocks on a full pipe.
    ///
    /// # Panics
    /// If the process cannot start or does not log its address in time.
    #[must_use]
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("inventory node listening") {
                    let address = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("address="))
                        .map(str::to_owned);
                    let _ = address_tx.send(address);
                }
            }
        });
        let address = address_rx
            .recv_timeout(STARTUP)
            .expect("the node logs its address")
            .expect("an address= field");
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    /// The node's base URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Kills the process at once (SIGKILL: no drain, no shutdown) and waits
    /// for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
