//! A supervised server child process: its binary lookup, temp dir, log file, readiness wait and watchdog.
//!
//! Shared servers live in statics that are never dropped, so nothing in this
//! process would ever kill them. Each server therefore gets a watchdog: a tiny
//! `sh` whose stdin is a pipe held open by this process. When this process
//! exits, however it exits (panic, SIGKILL, a test-runner timeout), the kernel
//! closes the pipe, `read` returns, and the watchdog kills the server and
//! removes its temp dir. This needs no `unsafe` and no polling.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ConstantBuilder};
use tempfile::TempDir;

/// How long a server gets to answer after it was spawned. Generous because the
/// machines that run tests are often busy compiling at the same time.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What both servers log (from `strerror`) when their port is taken.
const PORT_IN_USE: &str = "Address already in use";

/// A restart must reuse its port, so it waits for it to be free: 50 attempts,
/// 100 to 200 ms apart (jittered), 5 to 10 s in all.
const RESPAWN_ATTEMPTS: usize = 50;
const RESPAWN_PAUSE: Duration = Duration::from_millis(100);

/// `$1` is the server pid, `$2` its temp dir. The short sleep lets the kernel
/// finish tearing the server down before its files are removed.
const WATCHDOG_SCRIPT: &str = r#"read -r _; kill -9 "$1" 2>/dev/null; sleep 0.2; rm -rf "$2""#;

/// Finds an executable on `PATH` or in Cargo's bin directory, where
/// `cargo install` puts it even when that directory is not on `PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(cargo_bin_dir())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// `$CARGO_HOME/bin`, else `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Asks the kernel for a free loopback port. Another process may take it
/// before the server binds it, so callers retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("testkit: cannot bind a loopback port: {err}"))
}

/// Why a server did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// The process ended before answering.
    Exited(ExitStatus),
    /// It was still running but did not answer within [`READY_TIMEOUT`].
    TimedOut,
}

/// Why one attempt of a restart failed.
#[derive(Debug)]
enum Respawn {
    /// The port was still taken: worth another attempt after a pause.
    PortInUse,
    /// Anything else: final.
    NotReady(NotReady),
}

/// One server binary with its own temp dir and log, started and stopped on demand.
#[derive(Debug)]
pub struct Daemon {
    kind: &'static str,
    program: PathBuf,
    /// `None` only after a failed start, when the dir is kept for inspection.
    dir: Option<TempDir>,
    log: PathBuf,
    /// Length of the log when the current process was spawned, so that
    /// messages from earlier runs are not mistaken for this one's.
    log_mark: usize,
    running: Option<Supervised>,
}

#[derive(Debug)]
struct Supervised {
    server: Child,
    watchdog: Child,
}

impl Daemon {
    /// Prepares a temp dir for `kind` (used in names and messages), finding
    /// `binary` or panicking with `install_hint`.
    pub fn new(kind: &'static str, binary: &str, install_hint: &str) -> Daemon {
        let program = find_binary(binary).unwrap_or_else(|| {
            panic!(
                "testkit: `{binary}` was not found on PATH or in ~/.cargo/bin; {install_hint} \
                 (run `cargo xtask test`, which installs it)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{kind}-"))
            .tempdir()
            .unwrap_or_else(|err| panic!("testkit: cannot create a temp dir for {kind}: {err}"));
        let log = dir.path().join(format!("{kind}.log"));
        Daemon {
            kind,
            program,
            dir: Some(dir),
            log,
            log_mark: 0,
            running: None,
        }
    }

    pub fn dir(&self) -> &Path {
        self.log
            .parent()
            .expect("the log file lives in the temp dir")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Spawns the server with `args`, its stdout and stderr appended to the log.
    pub fn spawn(&mut self, args: &[String]) {
        self.kill();
        self.log_mark = self.log_bytes().len();
        let log = self.open_log();
        let log_err = log
            .try_clone()
            .unwrap_or_else(|err| self.fail(&format!("cannot reopen the log: {err}")));
        let mut server = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|err| {
                self.fail(&format!("cannot spawn {}: {err}", self.program.display()))
            });
        // Its own process group, so a Ctrl-C aimed at the test run does not kill
        // the watchdog before it has cleaned up.
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG_SCRIPT, "testkit-watchdog"])
            .arg(server.id().to_string())
            .arg(self.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match watchdog {
            Ok(watchdog) => self.running = Some(Supervised { server, watchdog }),
            Err(err) => {
                // Best effort: the spawn error is what the caller needs to see.
                let _ = server.kill();
                let _ = server.wait();
                self.fail(&format!("cannot spawn the `sh` watchdog: {err}"));
            }
        }
    }

    /// Polls `probe` until it returns a value, the process exits, or the timeout passes.
    pub fn wait_ready<T>(
        &mut self,
        mut probe: impl FnMut(&Daemon) -> Option<T>,
    ) -> Result<T, NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(ready) = probe(self) {
                return Ok(ready);
            }
            if let Some(status) = self.exit_status() {
                return Err(NotReady::Exited(status));
            }
            if Instant::now() >= deadline {
                return Err(NotReady::TimedOut);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        let supervised = self.running.as_mut()?;
        match supervised.server.try_wait() {
            Ok(status) => status,
            Err(err) => panic!("testkit: cannot query the {} process: {err}", self.kind),
        }
    }

    /// True if the current process exited because its port was taken.
    pub fn lost_port_race(&self) -> bool {
        self.recent_log().contains(PORT_IN_USE)
    }

    /// Spawns with `args` on a port that must not change (a restart) until
    /// `answers` says it is ready, waiting while the port is still busy.
    pub fn respawn(&mut self, args: &[String], mut answers: impl FnMut(&Daemon) -> bool) {
        let policy = ConstantBuilder::default()
            .with_delay(RESPAWN_PAUSE)
            .with_max_times(RESPAWN_ATTEMPTS - 1)
            .with_jitter();
        let outcome = (|| {
            self.spawn(args);
            match self.wait_ready(|daemon| answers(daemon).then_some(())) {
                Err(NotReady::Exited(_)) if self.lost_port_race() => Err(Respawn::PortInUse),
                other => other.map_err(Respawn::NotReady),
            }
        })
        .retry(policy)
        .sleep(thread::sleep)
        .when(|e| matches!(e, Respawn::PortInUse))
        .call();
        match outcome {
            Ok(()) => {}
            Err(Respawn::NotReady(why)) => self.not_ready(why),
            Err(Respawn::PortInUse) => self.fail(&format!(
                "its port stayed in use across {RESPAWN_ATTEMPTS} restart attempts"
            )),
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.running.is_some() && self.exit_status().is_none()
    }

    /// SIGKILLs the server (the watchdog first, so it cannot act on a reused
    /// pid) and reaps both. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut supervised) = self.running.take() {
            // Errors here mean the process is already gone, which is the goal.
            let _ = supervised.watchdog.kill();
            let _ = supervised.watchdog.wait();
            let _ = supervised.server.kill();
            let _ = supervised.server.wait();
        }
    }

    pub fn read_log(&self) -> String {
        String::from_utf8_lossy(&self.log_bytes()).into_owned()
    }

    /// What the current process has logged so far. Readiness checks look for
    /// its "listening" line here before probing the port, so that another
    /// server that took the port first is never mistaken for this one.
    pub fn recent_log(&self) -> String {
        let log = self.log_bytes();
        String::from_utf8_lossy(log.get(self.log_mark..).unwrap_or_default()).into_owned()
    }

    fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    /// Stops the server, keeps its temp dir for inspection, and panics with
    /// the log's path and its last lines.
    pub fn fail(&mut self, why: &str) -> ! {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _kept: PathBuf = dir.keep();
        }
        let log = self.read_log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "testkit: {} server: {why}\nlog: {}\n--- last lines of the log ---\n{}",
            self.kind,
            self.log.display(),
            tail.join("\n")
        )
    }

    pub fn not_ready(&mut self, why: NotReady) -> ! {
        match why {
            NotReady::Exited(status) => {
                self.fail(&format!("exited before it was ready ({status})"))
            }
            NotReady::TimedOut => self.fail(&format!("not ready after {READY_TIMEOUT:?}")),
        }
    }

    fn open_log(&mut self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|err| self.fail(&format!("cannot open the log: {err}")))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to a loopback port with a short timeout, for readiness probes.
pub fn connect(port: u16) -> io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}
