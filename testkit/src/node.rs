//! A node binary (`inventory-service`, `inventory-demo`) as a child process:
//! spawned, its address read from its log, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a node may take to log its address.
const STARTUP: Duration = Duration::from_secs(30);

/// A running node process; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
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
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line.clone());
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
            log,
        }
    }

    /// Runs `command`, expecting it to refuse to start: its exit status and
    /// what it wrote on stderr.
    ///
    /// # Panics
    /// If it cannot start, or is still running after the startup time.
    #[must_use]
    pub fn refused(mut command: Command) -> (ExitStatus, String) {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the node");
        let deadline = Instant::now() + STARTUP;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the node") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{command:?} was not refused: it kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        let _ = child
            .stderr
            .take()
            .expect("piped stderr")
            .read_to_string(&mut stderr);
        (status, stderr)
    }

    /// The lines the node has logged so far.
    #[must_use]
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The node's base URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The process id (to read its CPU time and memory under `/proc`).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
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
